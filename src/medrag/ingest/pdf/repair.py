"""Text repair: Unicode normalization, line joining, hyphenation across line ends.

Everything here maps extracted text to cleaner text; offsets into the final document text
are computed by the caller from what these functions return.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lines import _Block

_LIGATURES = {
    "\ufb00": "ff",
    "\ufb01": "fi",
    "\ufb02": "fl",
    "\ufb03": "ffi",
    "\ufb04": "ffl",
    "\ufb05": "st",
    "\ufb06": "st",
}
_SPACES = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\t\r\n\x0b\x0c"
_DROP = "\u200b\u200c\u200d\u2060\ufeff\x00"
_BULLETS = "\uf0b7\uf0a7\uf0d8\uf076\uf0fc\u25aa\u25cf\u25e6\u2022\u2023\u2043\u00b7\u25a0\u25a1"
_TRANS = str.maketrans(
    {
        **_LIGATURES,
        **{c: " " for c in _SPACES},
        **{c: None for c in _DROP},
        **{c: "\u2022" for c in _BULLETS},
    }
)
_MULTISPACE = re.compile(r" {2,}")
_SPACE_PUNCT = re.compile(r"(?<=\w) +([.,;:](?:\s|$))")


def _normalize(text: str) -> str:
    """Ligatures expanded, odd spaces made plain, private-use bullets made ``•``."""
    text = text.translate(_TRANS)
    if any("\ue000" <= c <= "\uf8ff" for c in text):
        text = "".join(c for c in text if not "\ue000" <= c <= "\uf8ff")
    return unicodedata.normalize("NFC", text)


_BULLET_START = re.compile(r"^(\u2022|›|»|–|-|\*|o\s|\(?\d{1,2}[.)]\s|\(?[a-z][.)]\s|\(?[ivx]{1,4}[.)]\s)")
_END_SENTENCE = re.compile(r"[.:;!?\u201d\"')\]]\s*$")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019]*")
_HYPHEN_END = re.compile(r"([A-Za-z]+)[-\u00ad]$")
_LEAD_WORD = re.compile(r"^([a-z]+)")


def _join_lines(lines: list[str], vocab: set[str] | None) -> str:
    """Join the lines of one paragraph, rejoining words hyphenated at line ends."""
    out = ""
    for t in lines:
        t = t.strip()
        if not t:
            continue
        if not out:
            out = t
            continue
        m = _HYPHEN_END.search(out)
        if m and out[-1] == "\u00ad":
            out = out[:-1] + t
            continue
        lead = _LEAD_WORD.match(t)
        last_token = out.rsplit(" ", 1)[-1]
        if m and ("/" in last_token or "www." in last_token):
            out = out + t  # a URL broken after a hyphen: keep it
            continue
        if m and lead:
            prefix, suffix = m.group(1).lower(), lead.group(1)
            if _drop_hyphen(prefix, suffix, vocab):
                out = out[:-1] + t
            else:
                out = out + t
            continue
        if re.search(r"(https?:|www\.)\S*[/.]$", out) and not t[0].isupper():
            out = out + t  # a URL broken after a slash
            continue
        out = out + " " + t
    return out.replace("\u00ad", "")


def _drop_hyphen(prefix: str, suffix: str, vocab: set[str] | None) -> bool:
    whole = prefix + suffix
    if vocab is None:
        return len(suffix) <= 3 or suffix in _SUFFIXES
    if whole in vocab:
        return True
    if f"{prefix}-{suffix}" in vocab:
        return False
    if prefix in vocab and suffix in vocab and len(prefix) > 2 and len(suffix) > 2:
        return False
    return True


_SUFFIXES = {"tion", "tions", "sion", "ment", "ments", "ing", "ness", "ance", "ence", "ity", "ies", "ed", "ly"}


def _vocabulary(pages: list[list["_Block"]]) -> set[str]:
    vocab: set[str] = set()
    for blocks in pages:
        for b in blocks:
            for ln in b.lines:
                words = ln.text.split()
                for w in words[:-1] if words and words[-1].endswith("-") else words:
                    w = w.strip(".,;:()[]\"'\u201c\u201d\u2018\u2019").lower()
                    if w and "-" in w.strip("-") and w.replace("-", "").isalpha():
                        vocab.add(w)
                        vocab.update(w.split("-"))
                    elif w.isalpha():
                        vocab.add(w)
    return vocab
