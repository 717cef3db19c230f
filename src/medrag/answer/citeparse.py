"""Read the citations out of a generated answer, in the styles real models write them.

A model asked to cite "[2]" at the end of each sentence writes, in practice, any of::

    ... per day [1].      ... per day. [1]      ... per day.[1][2]     ... [1, 2]  [1-3]
    ... per day (1).      ... per day [Passage 1].       ... per day.¹     ... per day[^1]

and sometimes a footnote block (``[^1]: ...``) or a "References:" list at the end, or
(small models) the numbered passages echoed as ``[1] Title`` headings over their text.
:func:`split_cited` turns such an output into ``(sentence text, cited numbers)`` pairs:
citations written after a sentence's final punctuation belong to that sentence (the most
common style of real models), ranges are expanded, footnote definitions and reference
lists are dropped (they are not claims), and the text keeps no citation markers.

Parenthesised and superscript numbers count as citations only where a citation can
stand (at the end of a clause, numbers of at most two digits), so that "type (2)
diabetes" mid-sentence or "(2019)" stay text. A sentence with no citation is returned
with an empty list: the composer removes it, with a reason.
"""

from __future__ import annotations

import re

from ..sentences import split_sentences

__all__ = ["split_cited", "parse_citations"]

_SEP = r"\s*(?:,|;|and|&)\s*"
_NUM_LIST = r"\d+(?:\s*[–—-]\s*\d+)?(?:" + _SEP + r"\d+(?:\s*[–—-]\s*\d+)?)*"
_SMALL_LIST = r"\d{1,2}(?:\s*[–—-]\s*\d{1,2})?(?:" + _SEP + r"\d{1,2}(?:\s*[–—-]\s*\d{1,2})?)*"
_LABEL = r"(?:\^|#|(?:passages?|sources?|refs?\.?|references?|documents?|docs?\.?|citations?|evidence)\s*:?\s*#?\s*)?"

#: [1]  [1, 2]  [1-3]  [^1]  [Passage 1]  [passages 1 and 3]
_BRACKET = re.compile(r"\[\s*" + _LABEL + r"(" + _NUM_LIST + r")\s*\]", re.IGNORECASE)
#: (1)  (1, 2)  (Passage 2): only at the end of a clause
_PAREN = re.compile(
    r"\(\s*" + _LABEL + r"(" + _SMALL_LIST + r")\s*\)(?=\s*(?:[.!?;,:]|$|\n|\[|\())", re.IGNORECASE
)
#: ¹  ²³  ¹˒²  ¹⁻³ : superscript digits after a word or punctuation
_SUP_DIGITS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_SUPER = re.compile(r"(?<=[\w.,;:!?)\]])([" + _SUP_DIGITS + r"]{1,2}(?:[˒,⁻–-][" + _SUP_DIGITS + r"]{1,2})*)")
_SUP_MAP = str.maketrans(_SUP_DIGITS + "˒⁻", "0123456789,-")

#: the canonical marker every style is rewritten to before splitting into sentences
_MARK = re.compile(r"\s*⟦([\d,]+)⟧")
_TRAILING_MARKS = re.compile(r"([.!?][\"”’')]*)((?:[ \t]*⟦[\d,]+⟧)+)")
_FOOTNOTE_DEF = re.compile(r"^\s*(?:\[\^?\d+\]|[" + _SUP_DIGITS + r"]+)\s*:.*$", re.MULTILINE)
_REFS_HEADER = re.compile(
    r"^\s*(?:[#*_]+\s*)?(?:references?|sources?|citations?|footnotes?|bibliography)\s*(?:[*_]+\s*)?:?\s*(?:[*_]+)?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+", re.MULTILINE)
_ANSWER_PREFIX = re.compile(r"^\s*(?:[*_]+)?(?:final\s+)?answer(?:[*_]+)?\s*:\s*(?:[*_]+)?", re.IGNORECASE | re.MULTILINE)
_LINE_START_MARKS = re.compile(r"\n[ \t]*((?:⟦[\d,]+⟧[ \t]*)+)(?=\n|$)")
#: "[2] Title of the passage" on its own line: a heading whose block cites passage 2
_HEADER = re.compile(r"^[ \t]*((?:⟦[\d,]+⟧[ \t]*)+)([^\n]{0,200}?)[ \t]*$")
_LABEL_ONLY = re.compile(r"^(?:answer|sources?|references?|citations?|passages?)\s*:?$", re.IGNORECASE)

#: a range wider than this is read as two citations, not expanded (``[3-250]`` is a typo)
_MAX_RANGE = 20


def _numbers(group: str) -> list[int]:
    out: list[int] = []
    for part in re.split(_SEP, group.strip()):
        if not part:
            continue
        ends = [int(x) for x in re.split(r"\s*[–—-]\s*", part) if x]
        if len(ends) == 2:
            a, b = ends
            out.extend(range(a, b + 1) if 0 < b - a <= _MAX_RANGE else [a, b])
        else:
            out.extend(ends)
    return out


def _canonical(text: str) -> str:
    """Every citation style rewritten to ``⟦1,2⟧`` (a marker no model writes)."""

    def mark(nums: list[int]) -> str:
        return " ⟦" + ",".join(str(n) for n in nums) + "⟧"

    text = _BRACKET.sub(lambda m: mark(_numbers(m.group(1))), text)
    text = _PAREN.sub(lambda m: mark(_numbers(m.group(1))), text)
    text = _SUPER.sub(lambda m: mark(_numbers(m.group(1).translate(_SUP_MAP))), text)
    return text


def _strip_apparatus(output: str) -> str:
    """Drop what is not a claim: a trailing reference list, footnote definitions, list
    bullets."""
    m = _REFS_HEADER.search(output)
    if m and m.start() > 0:
        output = output[: m.start()]
    output = _FOOTNOTE_DEF.sub("", output)
    output = _ANSWER_PREFIX.sub("", output)
    return _LIST_MARKER.sub("", output)


def parse_citations(sentence: str) -> tuple[str, list[int]]:
    """The sentence without its citation markers, and the numbers it cites (in order,
    repeats kept)."""
    canon = _canonical(sentence)
    nums = [int(n) for m in _MARK.finditer(canon) for n in m.group(1).split(",")]
    clean = " ".join(_MARK.sub("", canon).split())
    clean = re.sub(r"\s+([.,;:!?])", r"\1", clean)
    return clean, nums


def split_cited(output: str) -> list[tuple[str, list[int]]]:
    """``(sentence, cited numbers)`` for each sentence of a generated answer.

    Citations after a sentence's final punctuation (``"... per day. [1]"``) are moved
    in front of it before the split, so they stay with the sentence they follow.
    A line break ends a sentence (list items rarely end with a full stop); a line
    holding only citations belongs to the line before it. Sentences left empty, or
    holding only a label such as "Answer:", are dropped.
    """
    text = _canonical(_strip_apparatus(output))
    text = _LINE_START_MARKS.sub(lambda m: " " + m.group(1).strip() + "\n", text)
    text = _TRAILING_MARKS.sub(lambda m: m.group(2) + m.group(1), text)
    # a heading line "[2] Some title" (no final punctuation, a few words) is dropped, and
    # the uncited sentences of its block (up to a blank line) cite what it cites: the
    # style of small models that echo the numbered passages
    raws: list[tuple[str, str]] = []
    block = ""
    for line in text.split("\n"):
        h = _HEADER.match(line)
        if h and h.group(2) and not re.search(r"[.!?:;]$", h.group(2)) and len(h.group(2).split()) <= 15:
            block = h.group(1).strip()
            continue
        if not line.strip():
            block = ""
            continue
        raws.extend((line[a:b], block) for a, b in split_sentences(line))
    out: list[tuple[str, list[int]]] = []
    for raw, inherited in raws:
        if inherited and not _MARK.search(raw):
            raw = raw + " " + inherited
        nums = [int(n) for m in _MARK.finditer(raw) for n in m.group(1).split(",")]
        clean = " ".join(_MARK.sub("", raw).split())
        clean = re.sub(r"\s+([.,;:!?])", r"\1", clean)
        if not clean or _LABEL_ONLY.match(clean) or not re.search(r"\w", clean):
            continue
        out.append((clean, nums))
    return out
