"""Reading order (recursive XY-cut) and running headers and footers.

A recursive XY-cut over the lines: cut at vertical gutters first (columns, read left to
right); where no gutter runs the whole height, cut into horizontal slabs and merge
consecutive slabs back together while their union still has a gutter, so a full-width
heading or box above two columns is read first and each column is read whole. A node cut
into three or more columns is a table (:mod:`.tables`). Lines in the top or bottom 8 % of
the page whose text (digits masked) repeats on several pages, and bare page numbers
there, are dropped.

Reference: G. Nagy and S. Seth, "Hierarchical representation of optically scanned
documents", ICPR 1984 (the XY-cut).
"""

from __future__ import annotations

import re
import statistics

from .grades import looks_graded
from .lines import _Block, _Line, _x_gaps, _y_slabs
from .tables import _class_level_rows, _looks_tabular, _table_block

def _trim_table(lines: list[_Line], cuts: list[float]) -> tuple[list[_Line], list[_Line], list[_Line]]:
    """A table node split into (lines above the table, the table, lines below it): rows
    at its top or bottom that fill a single column while its rows typically fill two or
    more (a footer or a caption that happened to sit in one of its columns: "U.S.
    Department of Health and Human Services" under a symptoms grid) are not the table."""
    size = statistics.median(ln.size for ln in lines)
    rows = _y_slabs(lines, 0.45 * size)
    if len(rows) < 3:
        return [], lines, []

    def filled(row: list[_Line]) -> int:
        cols = set()
        for ln in row:
            i = 0
            while i < len(cuts) and ln.x0 > cuts[i]:
                i += 1
            cols.add(i)
        return len(cols)

    counts = [filled(r) for r in rows]
    if statistics.median(counts) < 2:
        return [], lines, []
    a, b = 0, len(rows)
    while a < b and counts[a] == 1:
        a += 1
    while b > a and counts[b - 1] == 1:
        b -= 1
    if b - a < 2:
        return [], lines, []
    flat = lambda rs: [ln for r in rs for ln in r]  # noqa: E731
    return flat(rows[:a]), flat(rows[a:b]), flat(rows[b:])


def _side_by_side(lines: list[_Line], gutter: float) -> bool:
    """True when ``lines`` have a gutter and the text on its two sides shares height:
    columns. Lines on either side of a gap at different heights ("Grade D, Level 4" set
    right, then a heading at the left below it) are stacked, read top to bottom."""
    cuts = _x_gaps(lines, gutter)
    if not cuts:
        return False
    spans: list[tuple[float, float] | None] = [None] * (len(cuts) + 1)
    for ln in lines:
        i = 0
        while i < len(cuts) and ln.x0 > cuts[i]:
            i += 1
        lo, hi = spans[i] or (ln.bottom, ln.top)
        spans[i] = (min(lo, ln.bottom), max(hi, ln.top))
    cols = [sp for sp in spans if sp is not None]
    return all(any(min(a[1], b[1]) > max(a[0], b[0]) for b in cols if b is not a) for a in cols)


def _xy_cut(lines: list[_Line], gutter: float, out: list[_Block], depth: int = 0) -> None:
    if len(lines) == 1 or depth > 40:
        out.append(_Block(sorted(lines, key=lambda ln: (-ln.y, ln.x0))))
        return
    cuts = _x_gaps(lines, gutter)
    if cuts:
        cols: list[list[_Line]] = [[] for _ in range(len(cuts) + 1)]
        for ln in lines:
            i = 0
            while i < len(cuts) and ln.x0 > cuts[i]:
                i += 1
            cols[i].append(ln)
        if len(cols) >= 2 and _looks_tabular(cols):
            before, table, after = _trim_table(lines, cuts)
            if before:
                _xy_cut(before, gutter, out, depth + 1)
            out.append(_table_block(table, cuts))
            if after:
                _xy_cut(after, gutter, out, depth + 1)
            return
        # A heading set above a later column, higher than everything before it
        # (a title over the right-hand column), is read before the columns.
        size = statistics.median(ln.size for ln in lines)
        lifted: list[_Line] = []
        for k in range(1, len(cols)):
            if not cols[k]:
                continue
            ceiling = max((ln.top for c in cols[:k] for ln in c), default=0.0)
            up = [ln for ln in cols[k] if ln.bottom > ceiling and ln.size >= 1.2 * size]
            if up and len(up) < len(cols[k]):
                lifted.extend(up)
                cols[k] = [ln for ln in cols[k] if ln not in up]
        if lifted:
            out.append(_Block(sorted(lifted, key=lambda ln: (-ln.y, ln.x0))))
        for col in cols:
            if col:
                _xy_cut(col, gutter, out, depth + 1)
        return
    slabs = _y_slabs(lines, 0.01)
    if len(slabs) == 1:
        out.append(_Block(sorted(lines, key=lambda ln: (-ln.y, ln.x0))))
        return
    groups: list[list[_Line]] = [slabs[0]]
    for slab in slabs[1:]:
        merged = groups[-1] + slab
        if _side_by_side(merged, gutter):
            # the columns of the slabs before go on: read them as one column set
            groups[-1] = merged
        else:
            groups.append(slab)
    # Consecutive groups without a gutter are stacked single-column slabs: one block,
    # read top to bottom. Groups with a gutter are cut again.
    leaf: list[_Line] = []
    for g in groups:
        one_row = max(ln.y for ln in g) - min(ln.y for ln in g) < 0.5 * min(ln.size for ln in g)
        if len(g) == 1 or one_row or not _side_by_side(g, gutter):  # a gutter needs two rows
            leaf.extend(g)
            continue
        if leaf:
            out.append(_Block(leaf))
            leaf = []
        _xy_cut(g, gutter, out, depth + 1)
    if leaf:
        out.append(_Block(leaf))


# A margin marker: a recommendation's "R", a grade letter, "GPP", a good-practice tick, a
# class/level cell ("2a", "B-NR", "3: Harm").
# A list number or a bullet set apart from its item by a tab is one too.
_MARGIN_MARK = re.compile(
    r"^(?:[A-D]|R|GPP|\u2713|\u2714|[123][ab]?|[A-C]-[A-Z]{1,2}|3:\s*(?:Harm|No Benefit)"
    r"|\(?\d{1,2}[.)]|\d{1,2}(?:\.\d{1,2}){1,3}\.?|\(?[a-z][.)]|[\u2022\u25aa\u25a0\u25cf\u2013\u203a\u00bb-]"
    r"|[\u2751\u2610\u25a1\u25a2])$"  # checkboxes
)


_GRADE_MARK = re.compile(r"^(?:[A-D]|R|GPP|\u2713|\u2714)$")


def _attach_margin_marks(lines: list[_Line]) -> list[_Line]:
    """Join each margin marker to the line it labels: the nearest line to its right on
    the same baseline, so "R" and its statement are read as one line, not as a narrow
    column of their own."""
    marks = [ln for ln in lines if len(ln.text) <= 13 and _MARGIN_MARK.match(ln.text)]
    if not marks:
        return lines
    taken: set[int] = set()
    for mk in sorted(marks, key=lambda ln: -ln.x0):  # rightmost first: "1 A 1. In ..."
        best = None
        for ln in lines:
            if ln is mk or id(ln) in taken or ln.x0 <= mk.x1:
                continue
            if abs(ln.y - mk.y) > 0.5 * max(ln.size, mk.size) or ln.x0 - mk.x1 > 6 * mk.size:
                continue
            if best is None or ln.x0 < best.x0:
                best = ln
        if best is None:
            continue
        best.spans = list(mk.spans) + list(best.spans)
        best.finish()
        best.margin_mark = best.margin_mark or bool(_GRADE_MARK.match(mk.text))
        taken.add(id(mk))
    return [ln for ln in lines if id(ln) not in taken]


def _page_blocks(lines: list[_Line]) -> list[_Block]:
    if not lines:
        return []
    lines = _attach_margin_marks(_class_level_rows(lines))
    size = statistics.median(ln.size for ln in lines)
    out: list[_Block] = []
    _xy_cut(lines, max(4.0, 0.6 * size), out)
    return [b for b in out if b.lines]


# ---------------------------------------------------------------------------------------
# Running headers and footers
# ---------------------------------------------------------------------------------------

_PAGE_NO = re.compile(r"^(page\s*)?(\d{1,4}|[ivxlcdm]{1,6})(\s*(of|/)\s*\d{1,4})?$", re.I)
_MARGIN = 0.08


def _furniture_key(text: str) -> str:
    return re.sub(r"[^a-z#]", "", re.sub(r"\d+", "#", text.lower()))


def _drop_furniture(pages: list[list[_Line]], heights: list[float]) -> None:
    """Remove running headers, footers and page numbers, in place: lines in the top or
    bottom margin whose text (digits masked) recurs at the same height (within 4 pt) on
    several pages. A grade line that happens to end a column in the margin on several
    pages sits at a different height on each, and stays."""
    n = len(pages)
    seen: dict[str, list[tuple[int, float]]] = {}
    for i, lines in enumerate(pages):
        h = heights[i]
        for ln in lines:
            if ln.y > h * (1 - _MARGIN) or ln.y < h * _MARGIN:
                seen.setdefault(_furniture_key(ln.text), []).append((i, ln.y))
    need = 2 if n <= 4 else 3

    def running(key: str, y: float) -> bool:
        if not key:
            return False
        hits = seen.get(key, ())
        return len({i for i, y2 in hits if abs(y2 - y) <= 4.0}) >= need

    for i, lines in enumerate(pages):
        h = heights[i]
        keep = []
        for ln in lines:
            in_margin = ln.y > h * (1 - _MARGIN) or ln.y < h * _MARGIN
            if in_margin and (_PAGE_NO.match(ln.text.strip()) or running(_furniture_key(ln.text), ln.y)) \
                    and not _GRADE_MARK.match(ln.text) and not looks_graded(ln.text):
                # (a grade or a marker ending a column sits in the margin on many pages)
                continue
            keep.append(ln)
        pages[i] = keep
