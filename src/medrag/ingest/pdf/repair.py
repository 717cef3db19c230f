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
_BULLETS = "\uf0b7\uf0a7\uf0d8\uf076\u25aa\u25cf\u25e6\u2022\u2023\u2043\u00b7\u25a0\u25a1"
_TRANS = str.maketrans(
    {
        **_LIGATURES,
        **{c: " " for c in _SPACES},
        **{c: None for c in _DROP},
        **{c: "\u2022" for c in _BULLETS},
        "\uf0fc": "\u2713",  # the Wingdings tick, as a private-use code point: a tick
    }
)
_MULTISPACE = re.compile(r" {2,}")
_SPACE_PUNCT = re.compile(r"(?<=\w) +([.,;:](?:\s|$))")


_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


def _normalize(text: str) -> str:
    """Ligatures expanded, odd spaces made plain, private-use bullets made ``•``."""
    text = text.translate(_TRANS)
    text = _PRIVATE_USE.sub("", text)
    return unicodedata.normalize("NFC", text)


_BULLET_START = re.compile(r"^(\u2022|›|»|–|-|\*|o\s|\(?\d{1,2}[.)]\s|\(?[a-z][.)]\s|\(?[ivx]{1,4}[.)]\s)")
_END_SENTENCE = re.compile(r"[.:;!?\u201d\"')\]]\s*$")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019]*")
_HYPHEN_END = re.compile(r"([A-Za-z]+)[-\u00ad]$")
_LEAD_WORD = re.compile(r"^([a-z]+)")


_URL_TAIL = re.compile(r"(https?:|www\.)\S*[/.]$")


def _join_step(tail: str, t: str, vocab: set[str] | None) -> tuple[int, str]:
    """How line ``t`` joins text ending in ``tail`` (its last ~200 characters): how many
    characters to drop from the end (a hyphen), and the separator (``""`` or ``" "``)."""
    m = _HYPHEN_END.search(tail)
    if m and tail[-1] == "\u00ad":
        return 1, ""
    last_token = tail.rsplit(" ", 1)[-1]
    if m and ("/" in last_token or "www." in last_token):
        return 0, ""  # a URL broken after a hyphen: keep it
    lead = _LEAD_WORD.match(t)
    if m and lead:
        if _drop_hyphen(m.group(1).lower(), lead.group(1), vocab):
            return 1, ""
        return 0, ""
    if _URL_TAIL.search(last_token) and not t[0].isupper():
        return 0, ""  # a URL broken after a slash
    if len(tail) >= 2 and tail[-1] == "-" and tail[-2].isdigit() and t[:1].isalpha() and t[:1].islower():
        return 0, ""  # a compound broken after its hyphen: "60–69-" / "year"
    return 0, " "


def _join_parts(lines: list[str], vocab: set[str] | None) -> tuple[str, list[int]]:
    """Join the lines of one paragraph, rejoining words hyphenated at line ends; also
    the offset in the result where each line's text begins. Linear in the text length."""
    parts: list[str] = []
    offsets: list[int] = []
    length = 0
    tail = ""
    for raw in lines:
        t = raw.strip()
        if "\u00ad" in t[:-1]:  # a soft hyphen inside a line is invisible: drop it
            t = t[:-1].replace("\u00ad", "") + t[-1]
        if not parts:
            offsets.append(0)
            if t:
                parts.append(t)
                length = len(t)
                tail = t[-200:]
            continue
        if not t:
            offsets.append(length)
            continue
        drop, sep = _join_step(tail, t, vocab)
        if drop:
            parts[-1] = parts[-1][:-drop] if len(parts[-1]) >= drop else ""
            length -= drop
        offsets.append(max(0, length + len(sep)))
        parts.append(sep + t)
        length += len(sep) + len(t)
        tail = (tail[: len(tail) - drop] + sep + t)[-200:]
    if parts and parts[-1].endswith("\u00ad"):
        parts[-1] = parts[-1][:-1]
    return "".join(parts), offsets


def _join_lines(lines: list[str], vocab: set[str] | None) -> str:
    """Join the lines of one paragraph, rejoining words hyphenated at line ends."""
    return _join_parts(lines, vocab)[0]


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
                for text in ln.row_parts[1] if ln.row_parts else (ln.text,):
                    words = text.split()
                    for w in words[:-1] if words and words[-1].endswith("-") else words:
                        w = w.strip(".,;:()[]\"'\u201c\u201d\u2018\u2019").lower()
                        if w and "-" in w.strip("-") and w.replace("-", "").isalpha():
                            vocab.add(w)
                            vocab.update(w.split("-"))
                        elif w.isalpha():
                            vocab.add(w)
    return vocab


def _rejoin_rows(pages: list[list["_Block"]], vocab: set[str]) -> None:
    """Rejoin the text lines of class-of-recommendation rows with the document's
    vocabulary (words hyphenated at line ends: "recom-" / "mended")."""
    for blocks in pages:
        for b in blocks:
            for ln in b.lines:
                if ln.row_parts:
                    cells, parts = ln.row_parts
                    ln.text = f"{cells} {_join_lines(list(parts), vocab)}"


# ---------------------------------------------------------------------------------------
# Words run together by the text layer ("ofevidence", "toaround", "humanmilk")
# ---------------------------------------------------------------------------------------

_FUNCTION_WORDS = frozenset(
    "a an and are as at be by for from in into is it not of on or than that the their this "
    "to was were which who with".split()
)
_TOKEN = re.compile(r"[A-Za-z]{4,}")


class _Unglue:
    """Split words the PDF's text layer ran together, guided by the document's own
    vocabulary: a token is split only when it is neither a word of the document (seen
    twice or more) nor a common English word, and when word segmentation (Norvig's
    unigram/bigram model as packaged by ``wordsegment``; P. Norvig, "Natural Language
    Corpus Data", in *Beautiful Data*, 2009) cuts it into two or three parts that each
    occur on their own in this document (or are function words). Without
    ``wordsegment`` installed nothing is split.
    """

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.memo: dict[str, str | None] = {}
        try:
            import wordsegment
        except ImportError:  # optional: the "guidelines" extra
            self.segment = None
            return
        if not wordsegment.UNIGRAMS:
            wordsegment.load()
        self.segment = wordsegment.segment
        self.english = wordsegment.UNIGRAMS

    def _split(self, token: str) -> str | None:
        low = token.lower()
        if low in self.memo:
            return self.memo[low]
        out = None
        if self.counts.get(low, 0) < 2 and self.english.get(low, 0) < 200_000 and (
                len(low) >= 7 or any(low.startswith(f) or low.endswith(f) for f in ("a", "to", "of", "the"))):
            parts = self.segment(low)
            if 2 <= len(parts) <= 3 and "".join(parts) == low and all(
                (len(p) >= 2 or p == "a") and self._known(p) for p in parts
            ) and (len(low) >= 7 or any(p in _FUNCTION_WORDS for p in parts)):
                out = " ".join(parts)
        self.memo[low] = out
        return out

    def _known(self, part: str) -> bool:
        """A function word, a word of this document, or one of the commonest English words."""
        return part in _FUNCTION_WORDS or self.counts.get(part, 0) >= 2 or self.english.get(part, 0) >= 20_000_000

    def __call__(self, line: str) -> str:
        if self.segment is None or not _TOKEN.search(line):
            return line

        def fix(m: re.Match[str]) -> str:
            tok = m.group(0)
            split = self._split(tok)
            if split is None:
                return tok
            out, k = [], 0
            for part in split.split(" "):  # keep the token's own letters and case
                out.append(tok[k:k + len(part)])
                k += len(part)
            return " ".join(out)

        return _TOKEN.sub(fix, line)


def _word_counts(pages: list[list["_Block"]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for blocks in pages:
        for b in blocks:
            for ln in b.lines:
                for w in re.findall(r"[A-Za-z]+", ln.text):
                    w = w.lower()
                    counts[w] = counts.get(w, 0) + 1
    return counts
