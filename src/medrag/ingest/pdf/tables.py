"""Tables: a node of the XY-cut with three or more columns whose text shares baselines."""

from __future__ import annotations

import re
import statistics
from collections import Counter

from .lines import _Block, _Line, _y_slabs
from .repair import _join_lines

def _looks_tabular(cols: list[list[_Line]]) -> bool:
    """A table, not columns of prose: three or more columns with text on the same
    baselines in at least three of them on two or more rows; or two columns side by side
    on three or more rows where one holds only short cells ("Yes No", a grade, a
    number: a checklist or a two-column table), never two columns of running text."""
    filled = [c for c in cols if c]
    if len(filled) < 2:
        return False
    per_col = [{round(ln.y / 2) for ln in c} for c in filled]
    counts: Counter[int] = Counter()
    for ys in per_col:
        counts.update(ys)
    if len(filled) >= 3 and sum(1 for n in counts.values() if n >= 3) >= 2:
        return True
    if sum(1 for n in counts.values() if n >= 2) < 3:
        return False
    short = [c for c in filled if len(c) >= 3 and statistics.median(len(ln.text) for ln in c) <= 12
             and max(len(ln.text) for ln in c) <= 30]
    prose = [c for c in filled if statistics.median(len(ln.text) for ln in c) >= 25]
    return bool(short) and len(short) + len(prose) == len(filled)


def _table_block(lines: list[_Line], cuts: list[float]) -> _Block:
    """A table kept as rows: each row's cells (lines in one column) joined by ``|``."""
    size = statistics.median(ln.size for ln in lines)
    rows = _y_slabs(lines, 0.45 * size)
    out: list[_Line] = []
    for row in rows:
        cells: list[list[_Line]] = [[] for _ in range(len(cuts) + 1)]
        for ln in row:
            i = 0
            while i < len(cuts) and ln.x0 > cuts[i]:
                i += 1
            cells[i].append(ln)
        texts = []
        for cell in cells:
            cell.sort(key=lambda ln: (-ln.y, ln.x0))
            t = _join_lines([ln.text for ln in cell], None) if cell else ""
            if t:
                texts.append(t)
        if not texts:
            continue
        first = max(row, key=lambda ln: ln.top)
        line = _Line(list(first.spans))
        line.text = " | ".join(texts)
        line.x0 = min(ln.x0 for ln in row)
        line.x1 = max(ln.x1 for ln in row)
        line.y = first.y
        line.size = statistics.median(ln.size for ln in row)
        line.bold = all(ln.bold for ln in row)
        line.table_row = True
        out.append(line)
    return _Block(out, table=True)


def _top_down(lines) -> list[_Line]:
    """Lines from the top of the page down; lines on one baseline (within 0.3 of the
    font size) left to right, so that a row's number "4." comes before its text."""
    out: list[_Line] = []
    group: list[_Line] = []
    for ln in sorted(lines, key=lambda ln: -ln.y):
        if group and group[0].y - ln.y > 0.3 * max(ln.size, group[0].size):
            out.extend(sorted(group, key=lambda g: g.x0))
            group = []
        group.append(ln)
    out.extend(sorted(group, key=lambda g: g.x0))
    return out


_VALUE = re.compile(r"Value\s+Statement\s*:\s*[A-Za-z ]{2,40}\(\s*(?:A|B-R|B-NR|C-LD|C-EO)\s*\)")
_NUM_START = re.compile(r"^(\d{1,2}\.)(?:\s+(.*))?$")


def _class_level_rows(lines: list[_Line]) -> list[_Line]:
    """Class-of-recommendation tables (a header "COR | LOE | Recommendations" as in the
    ACC/AHA guidelines) read one row per recommendation: ``"1 | A | 1. In patients ..."``.

    The class and level cells are centred on their row, so they are matched to the row
    (opened by its number, "1.") whose lines they sit beside; the row's text lines are
    joined. Other lines are returned unchanged.
    """
    heads = [ln for ln in lines if ln.text in ("COR", "LOE")]
    if len(heads) < 2:
        return lines
    out = list(lines)
    for cor in [h for h in heads if h.text == "COR"]:
        loe = next((h for h in heads if h.text == "LOE" and abs(h.y - cor.y) < 1.0 and h.x0 > cor.x1), None)
        rec = next((ln for ln in lines if abs(ln.y - cor.y) < 1.0 and ln.x0 > (loe.x1 if loe else 1e9)
                    and ln.text.lower().startswith("recommendation")), None)
        if loe is None or rec is None:
            continue
        left, text_x = cor.x0 - 8, rec.x0 - 4
        split = (cor.x1 + loe.x0) / 2  # cells are centred under their headers
        below = _top_down((ln for ln in out if ln.y < cor.y - 1 and left <= ln.x0 < rec.x0 + 24))
        body: list[_Line] = []
        for ln in below:  # the table ends at the first line set further left
            if ln.x0 < left:
                break
            body.append(ln)
        rows: list[list[_Line]] = []  # [the line with the number, then the text lines]
        nums: list[str] = []
        texts: list[list[str]] = []
        cells: list[_Line] = []
        for ln in body:
            m = _NUM_START.match(ln.text)
            if m and loe.x1 < ln.x0 < rec.x0 + 8:
                rows.append([ln])
                nums.append(m.group(1))
                texts.append([m.group(2)] if m.group(2) else [])
            elif ln.x0 < text_x:
                cells.append(ln)
            elif rows:
                rows[-1].append(ln)
                texts[-1].append(ln.text)
        if not rows:
            continue
        # the table ends after the last row that has a text line below its number
        spans = [(r[0].y + 1, min(x.y for x in r) - 1) for r in rows]
        cor_of: list[list[str]] = [[] for _ in rows]
        loe_of: list[list[str]] = [[] for _ in rows]
        whole_of: list[list[str]] = [[] for _ in rows]  # a cell across both columns
        used = set()
        for c in cells:
            k = min(range(len(rows)), key=lambda k: abs((spans[k][0] + spans[k][1]) / 2 - c.y))
            if not spans[k][1] - 12 <= c.y <= spans[k][0] + 12:
                continue
            # by span: a class cell and a level cell close together may share a line
            a = " ".join(sp.text for sp in c.spans if sp.x0 < split)
            b = " ".join(sp.text for sp in c.spans if sp.x0 >= split)
            if a:
                cor_of[k].append(a)
            if b:
                loe_of[k].append(b)
            whole_of[k].append(c.text)
            used.add(id(c))
        new_rows = []
        for k, r in enumerate(rows):
            if not texts[k]:
                continue
            value = _VALUE.fullmatch(" ".join(whole_of[k]))
            if value:  # "Value Statement: Uncertain Value (B-NR)" across both columns
                cells = " ".join(value.group(0).split())
            elif cor_of[k] and loe_of[k]:
                cells = f"{' '.join(cor_of[k])} | {' '.join(loe_of[k])}"
            else:
                continue
            text = _join_lines(texts[k], None)
            line = _Line(list(r[0].spans))
            line.text = f"{cells} | {nums[k]} {text}"
            line.row_parts = (line.text[: len(line.text) - len(text) - 1], tuple(texts[k]))
            line.x0, line.x1 = cor.x0, max(x.x1 for x in r)
            line.y, line.size = r[0].y, statistics.median(x.size for x in r)
            line.bold, line.family, line.table_row = False, r[-1].family, True
            new_rows.append((line, r))
        if not new_rows:
            continue
        drop = {id(x) for _, r in new_rows for x in r} | used
        out = [ln for ln in out if id(ln) not in drop] + [line for line, _ in new_rows]
    return out
