"""Structure: paragraphs, headings and their levels, nested body sections."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...types import Recommendation, Section
from .lines import _Block, _Line
from .grades import find_grades, looks_graded
from .recommendations import _REC_LABEL, find_recommendations
from .repair import _BULLET_START, _END_SENTENCE, _MULTISPACE

@dataclass(slots=True)
class _Para:
    lines: list[_Line] = field(default_factory=list)
    table: bool = False

    @property
    def first(self) -> _Line:
        return self.lines[0]


def _is_heading_style(ln: _Line, body: float, family: str = "") -> bool:
    return ln.size >= body * 1.12 or ln.bold or bool(family) and ln.family != family and len(ln.text) < 90


_FRAGMENT_END = re.compile(
    r"(?:\b(?:the|of|to|and|or|than|a|an|in|for|with|by|from|as|at|on|is|are|that|which)|[,(\[-])\s*$", re.I
)


def _open_bracket(lines: list[_Line]) -> bool:
    """True when the last lines leave a bracket open: "(recommendation category:" / "B, ..." """
    t = " ".join(ln.text for ln in lines)
    return t.count("(") > t.count(")")


def _paragraphs(pages: list[list[_Block]], body: float, family: str) -> list[_Para]:
    paras: list[_Para] = []
    cur: _Para | None = None
    for blocks in pages:
        for bi, b in enumerate(blocks):
            if b.table:
                if cur:
                    paras.append(cur)
                paras.append(_Para(list(b.lines), table=True))
                cur = None
                continue
            # the block's own line pitch: double-spaced drafts are not one paragraph a line
            gaps = sorted(g for a, c in zip(b.lines, b.lines[1:])
                          if 0 < (g := a.y - c.y) < 4 * max(a.size, c.size))
            pitch = gaps[len(gaps) // 4] if len(gaps) >= 8 else 0.0  # the lower quartile
            if pitch < 1.6 * body:
                pitch = 0.0  # single-spaced: the usual rule
            left = min((ln.x0 for ln in b.lines), default=0.0)
            right = max((ln.x1 for ln in b.lines), default=0.0)
            for li, ln in enumerate(b.lines):
                if cur is None:
                    cur = _Para([ln])
                    continue
                prev = cur.lines[-1]
                new_block = li == 0
                style_change = (
                    abs(ln.size - prev.size) >= 0.6
                    or (ln.bold != prev.bold or ln.family != prev.family)
                    and (_is_heading_style(ln, body, family) or _is_heading_style(prev, body, family))
                )
                if style_change and abs(ln.size - prev.size) < 0.6 and not _END_SENTENCE.search(prev.text) \
                        and (ln.text[:1].islower() or ln.text[:1] == "(") and len(prev.text) > 25:
                    style_change = False  # a sentence goes on in another face: "(weak" / "low-quality evidence)"
                if new_block:
                    # a paragraph cut by a column or page break runs on
                    cont = (
                        not _END_SENTENCE.search(prev.text)
                        and not style_change
                        and (not _is_heading_style(prev, body, family)
                             # a bold box's sentence goes on in the next column
                             or ln.text[:1].islower() and len(cur.lines) >= 2 and ln.bold == prev.bold)
                        and (ln.text[:1].islower() or ln.text[:1].isalnum() or ln.text[:1] in "(")
                        and not _BULLET_START.match(ln.text)
                        and not ln.margin_mark  # a marked statement ("A Patients ...") opens its own
                        and not _ends_graded(prev.text)  # "Grade B, Level 2++" ended a statement
                    )
                    brk = not cont
                else:
                    gap = prev.y - ln.y
                    wide = gap > max(1.75 * max(prev.size, ln.size), 1.3 * pitch)
                    if wide and gap < 3 * max(prev.size, ln.size) and (
                            not _END_SENTENCE.search(prev.text) and ln.text[:1].islower()
                            or _open_bracket(cur.lines[-3:])):
                        wide = False  # a sentence (or a bracket) goes on: not a new paragraph
                    brk = (
                        wide
                        or ln.table_row or prev.table_row  # a class/level table row: its own paragraph
                        or gap < 0
                        or style_change
                        or bool(_BULLET_START.match(ln.text))
                        or bool(_MARK_START.match(ln.text))
                        or _indented_first_line(cur.lines, ln, b.lines[li + 1] if li + 1 < len(b.lines) else None,
                                                left, right)
                    )
                if brk:
                    paras.append(cur)
                    cur = _Para([ln])
                else:
                    cur.lines.append(ln)
    if cur:
        paras.append(cur)
    return paras


def _ends_graded(text: str) -> bool:
    """True when a printed grade ends ``text`` (only punctuation after it)."""
    hits = find_grades(text)
    return bool(hits) and hits[-1].grader.trailing and not text[hits[-1].end:].strip(" .;)")


def _indented_first_line(cur: list[_Line], ln: _Line, nxt: _Line | None, left: float, right: float) -> bool:
    """True when ``ln`` opens a paragraph by its first-line indent, as journals set them:
    it starts 0.8 to 4 font sizes right of the block's left edge with a capital, the line
    after it (if any) goes back to the left, and the paragraph so far (``cur``) ended: its
    last line ends a sentence or stops before the middle of the block (a label line such
    as "Recommendations"), no bracket is open and it is not a bulleted item whose later
    lines hang indented."""
    prev = cur[-1]
    size = max(ln.size, 1.0)
    if not 0.8 * size <= ln.x0 - left <= 4 * size or ln.table_row or prev.table_row:
        return False
    if not (ln.text[:1].isupper() or ln.text[:1].isdigit()):
        return False
    if nxt is not None and not (nxt.x0 < ln.x0 - 0.5 * size and abs(nxt.y - ln.y) < 3 * size):
        return False
    if _BULLET_START.match(cur[0].text) and ln.x0 > cur[0].x0 + 0.5 * size or _open_bracket(cur[-3:]):
        return False
    return bool(_END_SENTENCE.search(prev.text)) or prev.x1 < left + 0.6 * (right - left)


# A line that opens a marked statement: SIGN's "R", a margin grade letter, a tick, a
# three-level recommendation number.
_MARK_START = re.compile(r"^(?:R|GPP|[A-D])\s+(?=[A-Z(])|^[\u2713\u2714]|^\d{1,2}\.\d{1,2}\.\d{1,2}\s+[A-Z]")
_NUMBERED = re.compile(r"^(\d{1,2}(\.\d{1,2})*\.?|[A-Z]\.|\d{1,2}[a-z]\.)\s+\S")


def _heading_style(p: _Para, text: str, body: float, family: str) -> tuple[float, bool] | None:
    """(size, bold) when paragraph ``p`` reads as a heading, else None."""
    if p.table or len(p.lines) > 4:
        return None
    words = text.split()
    if not words or len(words) > 25 or len(text) > 200:
        return None
    if _BULLET_START.match(text) and not _NUMBERED.match(text):
        return None
    if looks_graded(text):
        return None
    if _FRAGMENT_END.search(text) or text[:1].islower() or re.search(r"[a-z]\d+$", text):
        return None  # a sentence cut short ("... from fats to less than"), a footnote glued on
    if len(words) > 14 and text.rstrip().endswith((".", "!", "?")):
        return None  # a sentence of prose in a larger face, not a heading
    size = max(ln.size for ln in p.lines)
    bold = all(ln.bold for ln in p.lines)
    if not any(c.isalpha() for c in text):
        return None
    if size >= body * 1.12 and not text.endswith((",",)):
        return (round(size * 2) / 2, bold)
    short = len(words) <= 14 and not text.rstrip().endswith((".", ",", ";"))
    if bold and size >= body * 0.9 and short:
        return (round(size * 2) / 2, bold)
    other_face = all(ln.family != family for ln in p.lines)
    if (other_face and short and size >= body * 0.9 and len(p.lines) <= 2 and text[:1].isupper()
            and "http" not in text and "www." not in text):
        return (round(size * 2) / 2, bold)
    return None


@dataclass(slots=True)
class _Placed:
    para: _Para
    text: str
    start: int
    end: int


def _level_map(styles: Iterable[tuple[float, bool]]) -> dict[tuple[float, bool], int]:
    ordered = sorted(set(styles), key=lambda s: (-s[0], not s[1]))
    return {s: i for i, s in enumerate(ordered)}


def _sections(
    placed: list[_Placed], text: str, body: float, family: str, page_starts: list[int]
) -> tuple[list[Section], list[Recommendation]]:
    def page_at(off: int) -> int:
        return max(1, bisect.bisect_right(page_starts, off))

    # Headings and their levels.
    heads: list[tuple[int, tuple[float, bool], str]] = []
    absorbed = 0
    for i, p in enumerate(placed):
        style = _heading_style(p.para, p.text, body, family)
        if style is not None and not _REC_LABEL.match(p.text):
            if heads and heads[-1][0] == i - 1 - absorbed and heads[-1][1] == style:
                # a heading set on two lines that became two paragraphs
                heads[-1] = (heads[-1][0], style, heads[-1][2] + " " + p.text)
                absorbed += 1
                continue
            heads.append((i, style, p.text))
        absorbed = 0
    levels = _level_map(s for _, s, _ in heads)
    # Styles seen only on the first page are the cover's title lines: sections, but
    # not parents of the rest of the document.
    first_page_only = {
        s for s in levels if all(placed[i].para.first.page == 1 for i, s2, _ in heads if s2 == s)
    }

    body_secs: list[Section] = []
    stack: list[tuple[int, str]] = []
    head_at = {i: (levels[s], t, s in first_page_only) for i, s, t in heads}
    cur_start = placed[0].start if placed else 0
    cur_label: str | None = None
    cur_path: tuple[str, ...] = ()
    for i, p in enumerate(placed):
        if i in head_at:
            if p.start > cur_start or cur_label is not None:
                body_secs.append(Section("body", cur_label, cur_start, placed[i - 1].end if i else p.start, path=cur_path))
            level, label, cover = head_at[i]
            label = _MULTISPACE.sub(" ", label.replace("\n", " "))
            if cover:
                cur_start, cur_label, cur_path = p.start, label, (label,)
                continue
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, label))
            cur_start, cur_label, cur_path = p.start, label, tuple(t for _, t in stack)
    if placed:
        body_secs.append(Section("body", cur_label, cur_start, placed[-1].end, path=cur_path))

    # Special spans: tables and graded recommendations.
    special: list[Section] = []
    recs: list[Recommendation] = []
    for i, p in enumerate(placed):
        if p.para.table:
            special.append(Section("table", None, p.start, p.end))
    for rec in find_recommendations(placed, text, set(head_at), body_secs, page_at):
        recs.append(rec)
        special.append(Section("recommendation", rec.label, rec.start, rec.end))
    special.sort(key=lambda s: (s.start, s.end))
    kept: list[Section] = []
    for s in special:
        if kept and s.start < kept[-1].end:
            if s.kind == "recommendation" and kept[-1].kind == "table":
                kept[-1] = s
            continue
        kept.append(s)
    recs = [r for r in recs if any(k.kind == "recommendation" and k.start == r.start for k in kept)]

    # Cut the special spans out of the body sections.
    out: list[Section] = []
    for sec in body_secs:
        start = sec.start
        for sp in kept:
            if sp.end <= start or sp.start >= sec.end:
                continue
            if sp.start > start:
                piece = Section("body", sec.label, start, _rstrip_end(text, start, sp.start), path=sec.path)
                if piece.end > piece.start:
                    out.append(piece)
            start = max(start, sp.end)
        if sec.end > start:
            s2 = _lstrip_start(text, start, sec.end)
            if sec.end > s2:
                out.append(Section("body", sec.label, s2, sec.end, path=sec.path))
    for sp in kept:
        path = ()
        for sec in body_secs:
            if sec.start <= sp.start < sec.end:
                path = sec.path
        out.append(Section(sp.kind, sp.label, sp.start, sp.end, path=path))
    out.sort(key=lambda s: (s.start, s.end))
    return out, recs


def _rstrip_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def _lstrip_start(text: str, start: int, end: int) -> int:
    while start < end and text[start].isspace():
        start += 1
    return start
