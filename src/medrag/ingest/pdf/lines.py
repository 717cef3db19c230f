"""The text layer: spans placed on the page (PDFium), grouped into lines.

A span is one run of text in one font on one baseline: start and end ``x`` of its ink,
baseline ``y``, effective font size, bold or not, and the font family.
Spans on one baseline form a row; a row is cut where the horizontal gap between two spans
is wider than a word gap, so two columns that share baselines give two lines.
"""

from __future__ import annotations

import ctypes
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pypdfium2.raw as _pr

from .repair import _MULTISPACE, _SPACE_PUNCT, _normalize


logger = logging.getLogger(__name__)

_SYMBOL_FONT = re.compile(r"wingding|dingbat|webding|symbol", re.I)
_BOLD = re.compile(r"bold|black|heavy|semibold|demi|[-,+](bd|hv|blk)\b|[-,](bd|hv)[a-z]*$", re.I)


@dataclass(slots=True)
class _Span:
    text: str
    x0: float
    x1: float
    y: float
    size: float
    bold: bool
    family: str = ""
    space: bool = False  # a space character came before it in the text layer


@dataclass(slots=True)
class _Line:
    spans: list[_Span]
    text: str = ""
    x0: float = 0.0
    x1: float = 0.0
    y: float = 0.0
    size: float = 0.0
    bold: bool = False
    family: str = ""
    page: int = 0
    block: int = 0
    table_row: bool = False
    table: int = -1
    #: a class-of-recommendation row: (its cells "1 | A | 1.", its text lines), so that
    #: words hyphenated at line ends are rejoined once the document's vocabulary is known
    row_parts: tuple[str, tuple[str, ...]] | None = None
    #: the line opens with a marker set apart in the margin ("A", "R", "GPP", a tick)
    margin_mark: bool = False

    def finish(self) -> "_Line":
        self.spans.sort(key=lambda s: s.x0)
        parts: list[str] = []
        prev: _Span | None = None
        for s in self.spans:
            t = s.text
            if prev is not None and parts:
                gap = s.x0 - prev.x1
                if ((gap > 0.15 * max(s.size, prev.size) or s.space and gap > -0.1 * s.size)
                        and not parts[-1].endswith(" ") and not t.startswith(" ")):
                    parts.append(" ")
            parts.append(t)
            prev = s
        self.text = _SPACE_PUNCT.sub(r"\1", _MULTISPACE.sub(" ", "".join(parts))).strip()
        self.x0 = min(s.x0 for s in self.spans)
        self.x1 = max(s.x1 for s in self.spans)
        weights: Counter[float] = Counter()
        for s in self.spans:
            weights[round(s.size, 1)] += len(s.text.strip())
        big = max(self.spans, key=lambda s: (len(s.text.strip()), s.size))
        self.size = weights.most_common(1)[0][0] if weights else big.size
        self.y = big.y
        letters = [s for s in self.spans if any(c.isalnum() for c in s.text)]
        self.bold = bool(letters) and all(s.bold for s in letters)
        fams: Counter[str] = Counter()
        for s in letters or self.spans:
            fams[s.family] += len(s.text)
        self.family = fams.most_common(1)[0][0]
        return self

    @property
    def top(self) -> float:
        return self.y + 0.75 * self.size

    @property
    def bottom(self) -> float:
        return self.y - 0.25 * self.size


def _family(base_font: str) -> str:
    """``/ABCDEF+AGaramondPro-Italic`` -> ``agaramondpro``."""
    name = base_font.lstrip("/")
    name = name.split("+", 1)[-1]
    return re.split(r"[-,]", name, maxsplit=1)[0].lower()


def _drop_markers(spans: list[_Span]) -> list[_Span]:
    """Drop footnote/citation markers: small raised runs of digits next to body text."""
    if len(spans) < 2:
        return spans
    out = []
    dropped: list[tuple[_Span, _Span]] = []  # (marker, the body span it is raised over)
    for i, s in enumerate(spans):
        if _MARKER.match(s.text.strip()):
            near = [t for t in spans[max(0, i - 3):i + 4] if t is not s and t.size > s.size * 1.3]
            base = next((t for t in near if 0.15 * t.size < s.y - t.y < 0.8 * t.size
                         and t.x0 - 2 <= s.x0 <= t.x1 + 2), None)
            if base is not None:
                dropped.append((s, base))
                continue
        out.append(s)
    # The text right after a dropped marker ("activities4. While") closes up to where
    # the marker began, so the marker's width is not read as a gap between columns.
    for m, base in dropped:
        for u in out:
            if abs(u.y - base.y) < 0.3 * base.size and m.x0 - 1 <= u.x0 <= m.x1 + 0.3 * base.size:
                u.x0 = min(u.x0, m.x0)
    return out


_MARKER = re.compile(r"^[\d,\-–*†‡]{1,12}$")


# PDFium calls that hand back handles as plain addresses (ints): cheaper than ctypes
# pointer objects on the per-glyph path, and comparable by value.
_get_text_object = ctypes.cast(
    _pr.FPDFText_GetTextObject,
    ctypes.CFUNCTYPE(ctypes.c_void_p, _pr.FPDFText_GetTextObject.argtypes[0], ctypes.c_int),
)
_get_font = ctypes.cast(_pr.FPDFTextObj_GetFont, ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p))
_font_name = ctypes.cast(
    _pr.FPDFFont_GetBaseFontName,
    ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t),
)


def _page_spans(textpage: Any, y_offset: float = 0.0, font_cache: dict[Any, Any] | None = None) -> list[_Span]:
    """The spans of one page, from PDFium's text page (``pypdfium2``).

    PDFium places every glyph with the full text state (character and word spacing,
    horizontal scaling, TJ adjustments; PDF 32000-1 section 9.4.4), so a justified line
    keeps its true width and a column gutter stays empty. Words are measured by the
    loose boxes of their first and last glyphs; a word whose glyphs come from more than
    one text object (an inline font change) is measured glyph by glyph.
    """
    raw = textpage.raw
    n = _pr.FPDFText_CountChars(raw)
    if n <= 0:
        return []
    buf = (ctypes.c_ushort * (n + 1))()
    _pr.FPDFText_GetText(raw, 0, n, buf)
    # PDFium writes a hyphen that ends a line as 0xFFFE (older builds: 2): keep it a hyphen
    codes = [45 if c in (2, 0xFFFE) else c for c in buf[:n]]
    rect = _pr.FS_RECTF()
    prect = ctypes.byref(rect)
    mat = _pr.FS_MATRIX()
    pmat = ctypes.byref(mat)
    get_obj = _get_text_object
    get_box = _pr.FPDFText_GetLooseCharBox
    infos: dict[Any, tuple[float, bool, str, bool] | None] = {}
    faces = font_cache if font_cache is not None else {}
    namebuf = ctypes.create_string_buffer(256)

    def info_of(i: int) -> tuple[Any, tuple[float, bool, str, bool] | None]:
        """(text object, (size, bold, family, True)) of glyph ``i``; None for rotated text."""
        key = get_obj(raw, i)
        if key in infos:
            return key, infos[key]
        _pr.FPDFText_GetMatrix(raw, i, pmat)
        a, b = mat.a, mat.b
        size = abs(_pr.FPDFText_GetFontSize(raw, i) * math.hypot(a, b))
        inf: tuple[float, bool, str, bool] | None
        if abs(b) > 0.05 * abs(a) or a <= 0 or size < 1.0:
            inf = None  # rotated or mirrored text: margin decorations, not reading text
        else:
            fkey = _get_font(key) if key else None
            face = faces.get(fkey)
            if face is None:
                name = ""
                if fkey and _font_name(fkey, namebuf, 256):
                    name = namebuf.value.decode("latin-1", "replace")
                family = _family(name)
                face = faces[fkey] = (bool(_BOLD.search(name)), family,
                                      bool(_SYMBOL_FONT.search(family)))
            inf = (round(size, 2), face[0], face[1], face[2])
        infos[key] = inf
        return key, inf

    spans: list[_Span] = []
    cur: _Span | None = None
    cur_key: Any = None

    def place(text: str, x0: float, x1: float, y: float, key: Any,
              inf: tuple[float, bool, str, bool], space: bool) -> None:
        nonlocal cur, cur_key
        size = inf[0]
        if inf[3]:
            # a symbol font has no letters: an ASCII glyph code there is a picture
            # (Wingdings and Dingbats ticks and boxes); written as a tick
            text = "".join("\u2713" if c.isascii() and c.isalnum() else c for c in text)
        if (cur is not None and cur_key == key and abs(cur.y - y) < 0.3 * size
                and -0.5 * size < x0 - cur.x1 < 0.6 * size):
            gap = x0 - cur.x1
            cur.text += (" " if space or gap > 0.1 * size else "") + text
            cur.x1 = max(cur.x1, x1)
            return
        cur = _Span(text, x0, x1, y, size, inf[1], inf[2], space)
        cur_key = key
        spans.append(cur)

    i = 0
    space = False
    while i < n:
        c = codes[i]
        if c <= 32 or c == 0xFFFF:
            i += 1
            space = True
            continue
        j = i + 1
        while j < n and codes[j] > 32 and codes[j] != 0xFFFF:
            j += 1
        k1, inf1 = info_of(i)
        k2, inf2 = info_of(j - 1) if j - 1 > i else (k1, inf1)
        if k1 == k2:
            if inf1 is not None:
                get_box(raw, i, prect)
                x0, bottom, top = rect.left, rect.bottom, rect.top
                if j - 1 > i:
                    get_box(raw, j - 1, prect)
                if abs(rect.bottom - bottom) < 0.3 * inf1[0]:
                    word = "".join(map(chr, codes[i:j]))
                    place(word, x0, max(rect.right, x0), bottom + 0.22 * (top - bottom), k1, inf1, space)
                    i = j
                    space = False
                    continue
        # glyph by glyph: an inline font change, or a word broken across lines
        for q in range(i, j):
            kq, infq = info_of(q)
            if infq is None:
                continue
            get_box(raw, q, prect)
            ch = chr(codes[q])
            if ch:
                place(ch, rect.left, rect.right, rect.bottom + 0.22 * (rect.top - rect.bottom), kq, infq,
                      space and q == i)
        i = j
        space = False
    kept = []
    for s in spans:
        s.y -= y_offset
        s.text = _normalize(s.text).strip()
        if s.text:
            kept.append(s)
    return _drop_markers(_drop_line_numbers(kept))


_INT = re.compile(r"^\d{1,5}$")


def _drop_line_numbers(spans: list[_Span]) -> list[_Span]:
    """Drop a column of line numbers (drafts exported with numbered lines): integers set
    at one x position, counting up line by line down the page, five or more of them."""
    nums = [s for s in spans if _INT.match(s.text)]
    if len(nums) < 5:
        return spans
    columns: dict[int, list[_Span]] = {}
    for s in nums:
        columns.setdefault(round(s.x1 / 3), []).append(s)  # right-aligned numbers
    drop: set[int] = set()
    for col in columns.values():
        if len(col) < 5:
            continue
        col.sort(key=lambda s: -s.y)
        values = [int(s.text) for s in col]
        steps = sum(1 for a, b in zip(values, values[1:]) if 0 < b - a <= 2)
        if steps >= 0.7 * (len(values) - 1):
            drop.update(id(s) for s in col)
    return [s for s in spans if id(s) not in drop] if drop else spans


def _justified(row: list[_Span]) -> bool:
    """True when a row (spans sorted by x) reads as one justified line whose word gaps
    were stretched past the usual cut: four or more word gaps, all alike (the widest at
    most 1.3 times the narrowest) and under 1.6 font sizes. A gutter between columns is
    one gap much wider than the row's word gaps, so it stays a cut."""
    gaps = []
    right = row[0].x1
    for s in row[1:]:
        g = s.x0 - right
        if g > 0.15 * s.size:
            gaps.append(g / s.size)
        right = max(right, s.x1)
    if len(gaps) < 4 or max(gaps) <= 0.75 or max(gaps) > 1.6:
        return False
    return max(gaps) <= 1.3 * min(gaps)


def _rows(spans: list[_Span]) -> list[_Line]:
    """Spans grouped by baseline, each row cut at gaps wider than a word gap."""
    spans = sorted(spans, key=lambda s: (-s.y, s.x0))
    rows: list[list[_Span]] = []
    row_y = row_size = 0.0
    for s in spans:
        if rows and abs(s.y - row_y) <= 0.45 * max(row_size, s.size):
            rows[-1].append(s)
            if s.size > row_size:
                row_y, row_size = s.y, s.size
        else:
            rows.append([s])
            row_y, row_size = s.y, s.size
    lines: list[_Line] = []
    for row in rows:
        row.sort(key=lambda s: s.x0)
        for seg in _cut_row(row, 1.6):  # gutters; then word gaps, unless justified
            for piece in ([seg] if _justified(seg) else _cut_row(seg, 0.75)):
                lines.append(_Line(piece).finish())
    return _attach_scripts([ln for ln in lines if ln.text])


def _attach_scripts(lines: list[_Line]) -> list[_Line]:
    """Join a superscript or subscript left as a line of its own (the "+" of "Level 1+",
    set smaller and higher, read in another row) to the line it ends: a line of at most
    three characters, under 0.8 of the other's size, starting within 0.3 of that size of
    its end and within 0.7 of that size above or below its baseline."""
    small = [ln for ln in lines if len(ln.text) <= 3 and ln.spans]
    if not small:
        return lines
    taken: set[int] = set()
    for sm in small:
        best = None
        for ln in lines:
            if ln is sm or id(ln) in taken or sm.size >= 0.8 * ln.size:
                continue
            if abs(sm.x0 - ln.x1) <= 0.3 * ln.size and abs(sm.y - ln.y) <= 0.7 * ln.size:
                if best is None or abs(sm.y - ln.y) < abs(sm.y - best.y):
                    best = ln
        if best is not None:
            best.spans = list(best.spans) + list(sm.spans)
            best.finish()
            taken.add(id(sm))
    return [ln for ln in lines if id(ln) not in taken] if taken else lines


def _cut_row(row: list[_Span], cut: float) -> list[list[_Span]]:
    """A row of spans (sorted by x) cut at gaps wider than ``cut`` font sizes."""
    out = [[row[0]]]
    right = row[0].x1
    for s in row[1:]:
        if s.x0 - right > cut * max(s.size, out[-1][-1].size):
            out.append([s])
            right = s.x1
        else:
            out[-1].append(s)
            right = max(right, s.x1)
    return out


def _x_gaps(lines: list[_Line], min_gap: float) -> list[float]:
    """x positions of gutters (empty vertical strips at least ``min_gap`` wide)."""
    ivs = sorted((ln.x0, ln.x1) for ln in lines)
    cuts: list[float] = []
    right = ivs[0][1]
    for x0, x1 in ivs[1:]:
        if x0 - right >= min_gap:
            cuts.append((x0 + right) / 2)
        right = max(right, x1)
    return cuts


def _y_slabs(lines: list[_Line], min_gap: float) -> list[list[_Line]]:
    """Lines cut into horizontal slabs at empty horizontal strips, top to bottom."""
    order = sorted(lines, key=lambda ln: -ln.top)
    slabs: list[list[_Line]] = [[order[0]]]
    low = order[0].bottom
    for ln in order[1:]:
        if low - ln.top >= min_gap:
            slabs.append([ln])
        else:
            slabs[-1].append(ln)
        low = min(low, ln.bottom)
    return slabs


@dataclass(slots=True)
class _Block:
    lines: list[_Line]
    table: bool = False
