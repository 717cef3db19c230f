"""The text layer: spans placed on the page, grouped into lines (pypdf visitor).

A span is one run of text with its text matrix, font and size: start ``x``, baseline ``y``,
effective font size, bold or not, and an end ``x`` computed from the font's glyph widths.
Spans on one baseline form a row; a row is cut where the horizontal gap between two spans
is wider than a word gap, so two columns that share baselines give two lines.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pypdf
from pypdf.errors import PyPdfError

from .repair import _MULTISPACE, _SPACE_PUNCT, _normalize

try:  # pypdf's font model gives glyph widths; private, so guarded.
    from pypdf.generic._font import Font as _PdfFont
except ImportError:  # pragma: no cover - older or newer pypdf
    _PdfFont = None

logger = logging.getLogger(__name__)

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

    def finish(self) -> "_Line":
        self.spans.sort(key=lambda s: s.x0)
        parts: list[str] = []
        prev: _Span | None = None
        for s in self.spans:
            t = s.text
            if prev is not None and parts:
                gap = s.x0 - prev.x1
                if gap > 0.15 * max(s.size, prev.size) and not parts[-1].endswith(" ") and not t.startswith(" "):
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


class _Widths:
    """Glyph widths (per 1000 em) by Unicode character, for one font resource."""

    __slots__ = ("widths", "default")

    def __init__(self, font_dict: Any) -> None:
        self.widths: dict[str, float] = {}
        self.default = 500.0
        if _PdfFont is None or font_dict is None:
            return
        try:
            font = _PdfFont.from_font_resource(font_dict)
        except (PyPdfError, KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
            logger.debug("no widths for font %s: %s", font_dict.get("/BaseFont"), err)
            return
        cw = {k: float(v) for k, v in font.character_widths.items() if k != "default" and v}
        if isinstance(font.encoding, str) and font.character_map:
            # A CID font: widths are keyed by code; map them through ToUnicode.
            for code, uni in font.character_map.items():
                w = cw.get(code)
                if w and isinstance(uni, str) and uni:
                    for ch in uni:
                        self.widths.setdefault(ch, w / len(uni))
        else:
            self.widths = cw
        if self.widths:
            self.default = statistics.median(self.widths.values())

    def width(self, text: str) -> float:
        w = self.widths
        d = self.default
        return sum(w.get(c, d) for c in text)


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
    for i, s in enumerate(spans):
        if _MARKER.match(s.text.strip()):
            near = [t for t in spans[max(0, i - 3):i + 4] if t is not s and t.size > s.size * 1.3]
            if any(0.15 * t.size < s.y - t.y < 0.8 * t.size and t.x0 - 2 <= s.x0 <= t.x1 + 2 for t in near):
                continue
        out.append(s)
    return out


_MARKER = re.compile(r"^[\d,\-–*†‡]{1,12}$")


def _page_spans(page: pypdf.PageObject, fonts: dict[Any, _Widths]) -> list[_Span]:
    spans: list[_Span] = []
    prev: list[Any] = [None, None, 0.0]  # last span, its reported (x, y), where it ended

    def visit(text: str, cm: Any, tm: Any, font_dict: Any, font_size: float) -> None:
        if not text or not text.strip():
            return
        a = tm[0] * cm[0] + tm[1] * cm[2]
        b = tm[0] * cm[1] + tm[1] * cm[3]
        if abs(b) > 0.05 * abs(a) or a <= 0:
            return  # rotated or mirrored text: margin decorations, not reading text
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        size = abs(font_size * math.hypot(a, b))
        if size < 1.0:
            return
        text = _normalize(text.replace("\n", " "))
        if not text.strip():
            return
        ref = getattr(font_dict, "indirect_reference", None)
        key = (ref.idnum, ref.generation) if ref is not None else id(font_dict)
        widths = fonts.get(key)
        if widths is None:
            widths = fonts[key] = _Widths(font_dict)
        name = str(font_dict.get("/BaseFont", "")) if font_dict is not None else ""
        last, last_xy, _ = prev
        # pypdf reports the position where the text object was last moved, so a run
        # after an inline font change sits at the start of its line: put it after the
        # previous run instead.
        if last is not None and last_xy is not None and abs(last_xy[1] - y) < 0.5 and x <= last_xy[0] + 0.5:
            x = prev[2]
        # Spaces carry no ink: measure the span without them, so that a column's
        # trailing spaces do not bridge the gutter.
        scale = size / 1000.0
        stripped = text.lstrip()
        x += widths.width(text[: len(text) - len(stripped)]) * scale
        x_next = x + widths.width(stripped) * scale
        stripped = stripped.rstrip()
        width = widths.width(stripped) * scale
        span = _Span(stripped, x, x + width, y, size, bool(_BOLD.search(name)), _family(name))
        spans.append(span)
        prev[0] = span
        prev[1] = (tm[4] * cm[0] + tm[5] * cm[2] + cm[4], y)
        prev[2] = x_next

    page.extract_text(visitor_text=visit)
    return _drop_markers(spans)


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
        cur = [row[0]]
        right = row[0].x1
        for s in row[1:]:
            if s.x0 - right > 0.75 * max(s.size, cur[-1].size):
                lines.append(_Line(cur).finish())
                cur = [s]
                right = s.x1
            else:
                cur.append(s)
                right = max(right, s.x1)
        lines.append(_Line(cur).finish())
    return [ln for ln in lines if ln.text]


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
