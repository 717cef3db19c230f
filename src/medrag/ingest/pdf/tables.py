"""Tables: a node of the XY-cut with three or more columns whose text shares baselines."""

from __future__ import annotations

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
