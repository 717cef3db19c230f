"""Clinical guideline PDFs into :class:`~medrag.types.Document` objects, with pypdf.

The pipeline, page by page:

1. **Spans.** ``PageObject.extract_text(visitor_text=...)`` reports each run of text with
   its text matrix, font and size. A span is that run placed on the page: start ``x``,
   baseline ``y``, effective font size, bold or not, and an end ``x`` computed from the
   font's glyph widths.
2. **Lines.** Spans on one baseline form a row; a row is cut where the horizontal gap
   between two spans is wider than a word gap, so two columns that share baselines
   give two lines.
3. **Reading order.** A recursive XY-cut over the lines: cut at vertical gutters first
   (columns, read left to right); where no gutter runs the whole height, cut into
   horizontal slabs and merge consecutive slabs back together while their union still
   has a gutter, so a full-width heading or box above two columns is read first and
   each column is read whole. A node cut into three or more columns is a table: it is
   kept as rows (cells joined by ``" | "``) and marked as a ``"table"`` section.
4. **Running headers and footers.** Lines in the top or bottom 8 % of the page whose
   text (digits masked) repeats on several pages, and bare page numbers there, are dropped.

Then, for the whole document: lines become paragraphs (a paragraph may run on across a
column or a page break when it ends mid-sentence), words hyphenated across line ends are
rejoined (using the document's own vocabulary to keep real compounds such as
``hospital-based``), ligatures and odd whitespace are normalized, headings (larger or bold
type, numbered headings) become nested ``"body"`` sections, and graded recommendations
("Strong recommendation, very low quality of evidence") become
:class:`~medrag.types.Recommendation` objects and ``"recommendation"`` sections.

Errors: an encrypted PDF is opened with the empty password when it has one; otherwise it,
a file that is not a PDF, a truncated or corrupt file, and a PDF with no text layer at all
raise :class:`~medrag.errors.IngestError` (or are recorded and skipped with
``on_error="skip"``). A page that pypdf cannot read is an ``IngestError`` with
``record_id="page N"``; skipped, the other pages of the file are kept. A page that reads
but has no text (a scanned page, a full-page picture) is listed in
:attr:`~medrag.types.GuidelineMetadata.pages_without_text` and contributes no text.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
import statistics
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pypdf
from pypdf.errors import DependencyError, PyPdfError

from ..errors import IngestError
from ..types import Document, GuidelineMetadata, Recommendation, Section, SourceFile
from ._common import (
    IngestReport,
    OnError,
    PathLike,
    check_on_error,
    expand_paths,
    handle,
    sha256_file,
)

try:  # pypdf's font model gives glyph widths; private, so guarded.
    from pypdf.generic._font import Font as _PdfFont
except ImportError:  # pragma: no cover - older or newer pypdf
    _PdfFont = None

__all__ = ["iter_guideline_pdf"]

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------
# Text normalization
# ---------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------
# Spans and lines
# ---------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------
# Reading order: XY-cut
# ---------------------------------------------------------------------------------------


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
        if len(cols) >= 3 and _looks_tabular(cols):
            out.append(_table_block(lines, cuts))
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
        if _x_gaps(merged, gutter):
            # the columns of the slabs before go on: read them as one column set
            groups[-1] = merged
        else:
            groups.append(slab)
    # Consecutive groups without a gutter are stacked single-column slabs: one block,
    # read top to bottom. Groups with a gutter are cut again.
    leaf: list[_Line] = []
    for g in groups:
        if len(g) == 1 or not _x_gaps(g, gutter):
            leaf.extend(g)
            continue
        if leaf:
            out.append(_Block(leaf))
            leaf = []
        _xy_cut(g, gutter, out, depth + 1)
    if leaf:
        out.append(_Block(leaf))


def _looks_tabular(cols: list[list[_Line]]) -> bool:
    """Three or more columns with text on the same baselines in at least three of them,
    on several rows: a table, not columns of prose."""
    filled = [c for c in cols if c]
    if len(filled) < 3:
        return False
    per_col = [{round(ln.y / 2) for ln in c} for c in filled]
    counts: Counter[int] = Counter()
    for ys in per_col:
        counts.update(ys)
    rows = sum(1 for n in counts.values() if n >= 3)
    return rows >= 2


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


def _page_blocks(lines: list[_Line]) -> list[_Block]:
    if not lines:
        return []
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
    """Remove running headers, footers and page numbers, in place."""
    n = len(pages)
    seen: dict[str, set[int]] = {}
    for i, lines in enumerate(pages):
        h = heights[i]
        for ln in lines:
            if ln.y > h * (1 - _MARGIN) or ln.y < h * _MARGIN:
                seen.setdefault(_furniture_key(ln.text), set()).add(i)
    need = 2 if n <= 4 else 3
    running = {k for k, v in seen.items() if len(v) >= need and k}
    for i, lines in enumerate(pages):
        h = heights[i]
        keep = []
        for ln in lines:
            in_margin = ln.y > h * (1 - _MARGIN) or ln.y < h * _MARGIN
            if in_margin and (_furniture_key(ln.text) in running or _PAGE_NO.match(ln.text.strip())):
                continue
            keep.append(ln)
        pages[i] = keep


# ---------------------------------------------------------------------------------------
# Paragraphs, hyphenation, text
# ---------------------------------------------------------------------------------------

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


def _vocabulary(pages: list[list[_Block]]) -> set[str]:
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


@dataclass(slots=True)
class _Para:
    lines: list[_Line] = field(default_factory=list)
    table: bool = False

    @property
    def first(self) -> _Line:
        return self.lines[0]


def _is_heading_style(ln: _Line, body: float, family: str = "") -> bool:
    return ln.size >= body * 1.12 or ln.bold or bool(family) and ln.family != family and len(ln.text) < 90


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
                if new_block:
                    # a paragraph cut by a column or page break runs on
                    cont = (
                        not _END_SENTENCE.search(prev.text)
                        and not style_change
                        and not _is_heading_style(prev, body, family)
                        and (ln.text[:1].islower() or ln.text[:1].isalnum() or ln.text[:1] in "(")
                        and not _BULLET_START.match(ln.text)
                    )
                    brk = not cont
                else:
                    gap = prev.y - ln.y
                    brk = (
                        gap > 1.75 * max(prev.size, ln.size)
                        or gap < 0
                        or style_change
                        or bool(_BULLET_START.match(ln.text))
                    )
                if brk:
                    paras.append(cur)
                    cur = _Para([ln])
                else:
                    cur.lines.append(ln)
    if cur:
        paras.append(cur)
    return paras


# ---------------------------------------------------------------------------------------
# Headings, recommendations
# ---------------------------------------------------------------------------------------

_NUMBERED = re.compile(r"^(\d{1,2}(\.\d{1,2})*\.?|[A-Z]\.|\d{1,2}[a-z]\.)\s+\S")
_GRADE = re.compile(
    r"\(?\s*(?P<strength>strong|conditional|weak|discretionary)\s+recommendation\s*[,;]\s*"
    r"(?P<certainty>very\s+low|low|moderate|high)[- ]+(?:quality|certainty)\s+(?:of\s+)?evidence\s*\)?",
    re.I,
)
_REC_LABEL = re.compile(r"^(recommendations?|recommandations?|good practice statements?)\s*:?$", re.I)
_REC_LEAD = re.compile(r"(?:recommendations?|recommandations?)\s*:?\s+", re.I)


def _heading_style(p: _Para, text: str, body: float, family: str) -> tuple[float, bool] | None:
    """(size, bold) when paragraph ``p`` reads as a heading, else None."""
    if p.table or len(p.lines) > 4:
        return None
    words = text.split()
    if not words or len(words) > 25 or len(text) > 200:
        return None
    if _BULLET_START.match(text) and not _NUMBERED.match(text):
        return None
    if _GRADE.search(text):
        return None
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


# ---------------------------------------------------------------------------------------
# Metadata: title, organization, year
# ---------------------------------------------------------------------------------------

_WHO_REGION = re.compile(
    r"World Health Organi[sz]ation\.\s+Regional Office for (the )?(?P<r>[A-Z][a-z]+( [A-Z][a-z]+)*?)(?= [A-Z][a-z]+ [a-z]|[^A-Za-z ]|$)"
)
_COPYRIGHT_HOLDER = re.compile(r"©\s*(?:Copyright\s+)?(?P<org>[A-Z][A-Za-z .,&()-]{3,100}?)[ ,]*(19|20)\d\d")
_ORGS = [
    (re.compile(r"World Health Organi[sz]ation"), "World Health Organization"),
    (re.compile(r"Centers for Disease Control and Prevention"), "Centers for Disease Control and Prevention"),
    (re.compile(r"National Institute for Health and (Care|Clinical) Excellence"), "National Institute for Health and Care Excellence"),
    (re.compile(r"Scottish Intercollegiate Guidelines Network"), "Scottish Intercollegiate Guidelines Network"),
    (re.compile(r"European Centre for Disease Prevention and Control"), "European Centre for Disease Prevention and Control"),
]
_ORG_WORDS = re.compile(
    r"organi[sz]ation|centers?|centres?|institute|agency|ministry|society|college|association|"
    r"department|committee|council|network|\bWHO\b|\bCDC\b|\bNICE\b",
    re.I,
)
_YEAR = r"(19[5-9]\d|20\d\d)"
_COPYRIGHT_YEAR = re.compile(r"(?:©|\(c\)|copyright)\s*(?:[^\n\d]{0,80}?)\s*" + _YEAR, re.I)
_MONTH_YEAR = re.compile(
    r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December)\s+" + _YEAR
)
_BAD_TITLE = re.compile(r"^(untitled|microsoft word|document\d*)|\.(docx?|indd|pdf|pptx?)$", re.I)


def _meta_str(meta: Any, key: str) -> str | None:
    if not meta:
        return None
    try:
        value = meta.get(key)
    except (PyPdfError, KeyError, ValueError, TypeError):
        return None
    if value is None:
        return None
    s = _MULTISPACE.sub(" ", _normalize(str(value))).strip()
    return s or None


def _organization(meta_author: str | None, front: str) -> str | None:
    """The publisher: a WHO regional office's cataloguing line, else the copyright
    holder, else the first well-known organization named, else the PDF's author."""
    m = _WHO_REGION.search(front)
    if m:
        return f"World Health Organization Regional Office for the {m.group('r')}"
    m = _COPYRIGHT_HOLDER.search(front)
    if m and _ORG_WORDS.search(m.group("org")):
        holder = m.group("org").strip(" ,.")
        for pattern, name in _ORGS:
            if pattern.search(holder):
                return name
        return holder
    hits = [(m.start(), name) for pattern, name in _ORGS if (m := pattern.search(front))]
    if hits:
        return min(hits)[1]
    if meta_author and _ORG_WORDS.search(meta_author):
        return re.sub(r"\s*\((CDC|WHO|NICE)\)\s*$", "", meta_author)
    return None


def _year(front: str, creation: Any) -> int | None:
    for pattern in (_COPYRIGHT_YEAR, _MONTH_YEAR):
        m = pattern.search(front)
        if m:
            return int(m.group(m.lastindex or 1))
    try:
        if creation is not None:
            return int(creation.year)
    except (AttributeError, ValueError, TypeError):
        pass
    return None


def _front_title(first_page: list[_Line]) -> str | None:
    lines = [ln for ln in first_page if any(c.isalpha() for c in ln.text)]
    if not lines:
        return None
    lines = [ln for ln in lines if not re.fullmatch(r"[A-Z0-9/.\-]+", ln.text)]  # document codes
    if not lines:
        return None
    biggest = max(ln.size for ln in lines)
    picked = [ln for ln in lines if ln.size >= biggest * 0.6][:4]
    title = _join_lines([ln.text for ln in picked], None)
    title = _MULTISPACE.sub(" ", title).strip()
    return title[:300] or None


# ---------------------------------------------------------------------------------------
# One file
# ---------------------------------------------------------------------------------------


def _damaged_content(page: pypdf.PageObject) -> str | None:
    """Why a page's content stream cannot be decoded, or None.

    pypdf logs a corrupt Flate stream and carries on with no text; a page that lost its
    text that way must not pass for a scanned page."""
    try:
        contents = page.get("/Contents")
        if contents is None:
            return None
        contents = contents.get_object()
        streams = contents if isinstance(contents, list) else [contents]
        for ref in streams:
            stream = ref.get_object()
            filters = stream.get("/Filter")
            names = [str(f) for f in filters] if isinstance(filters, list) else [str(filters)]
            if names and names[0] == "/FlateDecode":
                raw = getattr(stream, "_data", b"")
                if raw:
                    zlib.decompressobj().decompress(raw)
    except zlib.error as err:
        return f"corrupt content stream: {err}"
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as err:
        return f"unreadable content stream: {err}"
    return None


def _open(path: Path) -> pypdf.PdfReader:
    src = str(path)
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError as err:
        raise IngestError(f"cannot read file: {err}", source=src) from err
    if b"%PDF-" not in head:
        raise IngestError("not a PDF (no %PDF- header)", source=src)
    try:
        reader = pypdf.PdfReader(path, strict=False)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as err:
        raise IngestError(f"corrupt or truncated PDF: {err}", source=src) from err
    if reader.is_encrypted:
        try:
            ok = reader.decrypt("")
        except DependencyError as err:
            raise IngestError(f"encrypted PDF needs a crypto library: {err}", source=src) from err
        except (PyPdfError, ValueError, KeyError, TypeError) as err:
            raise IngestError(f"encrypted PDF could not be decrypted: {err}", source=src) from err
        if not ok:
            raise IngestError("encrypted PDF: a password is required", source=src)
    try:
        n = len(reader.pages)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as err:
        raise IngestError(f"corrupt or truncated PDF (page tree unreadable): {err}", source=src) from err
    if n == 0:
        raise IngestError("corrupt or truncated PDF: no pages", source=src)
    return reader


def _read_document(path: Path, on_error: OnError, report: IngestReport) -> Document:
    src = str(path)
    reader = _open(path)
    n_pages = len(reader.pages)
    fonts: dict[Any, _Widths] = {}  # by the font's object number: shared across pages
    page_lines: list[list[_Line]] = []
    heights: list[float] = []
    without_text: list[int] = []
    failed: list[int] = []
    for i in range(n_pages):
        try:
            page = reader.pages[i]
            box = page.mediabox
            heights.append(float(box.top) - float(box.bottom) or 792.0)
            spans = _page_spans(page, fonts)
            bottom = float(box.bottom)
            if bottom:
                for s in spans:
                    s.y -= bottom
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
                RecursionError, ZeroDivisionError, OverflowError) as err:
            if len(heights) <= i:
                heights.append(792.0)
            page_lines.append([])
            failed.append(i + 1)
            handle(
                IngestError(f"page cannot be read: {type(err).__name__}: {err}", source=src,
                            record_id=f"page {i + 1}", position=i),
                on_error,
                report,
            )
            continue
        lines = _rows(spans)
        if not lines:
            damage = _damaged_content(page)
            if damage:
                page_lines.append([])
                failed.append(i + 1)
                handle(
                    IngestError(f"page cannot be read: {damage}", source=src,
                                record_id=f"page {i + 1}", position=i),
                    on_error,
                    report,
                )
                continue
            without_text.append(i + 1)
        page_lines.append(lines)
    if len(failed) == n_pages:
        raise IngestError("no page could be read", source=src)
    if not any(page_lines):
        raise IngestError("no text layer (a scanned PDF?): no page has extractable text", source=src)
    if without_text:
        logger.info("%s: pages without a text layer: %s", src, without_text)

    front_lines = next((p for p in page_lines if p), [])
    front_title = _front_title(front_lines)
    _drop_furniture(page_lines, heights)
    pages = [_page_blocks(lines) for lines in page_lines]

    sizes: Counter[float] = Counter()
    for blocks in pages:
        for b in blocks:
            for ln in b.lines:
                sizes[round(ln.size * 2) / 2] += len(ln.text)
    body = sizes.most_common(1)[0][0] if sizes else 10.0
    fams: Counter[str] = Counter()
    for blocks in pages:
        for b in blocks:
            for ln in b.lines:
                fams[ln.family] += len(ln.text)
    family = fams.most_common(1)[0][0] if fams else ""
    for pi, blocks in enumerate(pages):
        for bi, b in enumerate(blocks):
            for ln in b.lines:
                ln.page = pi + 1
                ln.block = bi

    vocab = _vocabulary(pages)
    paras = _paragraphs(pages, body, family)

    # Assemble the text, remembering where each paragraph and each page begins.
    text_parts: list[str] = []
    pos = 0
    page_first: dict[int, int] = {}
    placed: list[_Placed] = []
    for p in paras:
        if p.table:
            t = "\n".join(ln.text for ln in p.lines)
            offsets = []
            acc = 0
            for ln in p.lines:
                offsets.append(acc)
                acc += len(ln.text) + 1
        else:
            t, offsets = _join_with_offsets(p.lines, vocab)
        t = t.strip()
        if not t:
            continue
        if text_parts:
            text_parts.append("\n\n")
            pos += 2
        start = pos
        for ln, off in zip(p.lines, offsets):
            page_first.setdefault(ln.page, start + min(off, len(t)))
        text_parts.append(t)
        pos += len(t)
        placed.append(_Placed(p, t, start, pos))
    text = "".join(text_parts)

    page_starts: list[int] = [0] * n_pages
    nxt = len(text)
    for pn in range(n_pages, 0, -1):
        if pn in page_first:
            nxt = page_first[pn]
        page_starts[pn - 1] = nxt
    page_starts[0] = 0
    for i in range(1, n_pages):  # monotone even if a paragraph ran back across a page
        page_starts[i] = max(page_starts[i], page_starts[i - 1])

    sections, recs = _sections(placed, text, body, family, page_starts)

    meta = None
    try:
        meta = reader.metadata
    except (PyPdfError, ValueError, KeyError, TypeError) as err:
        logger.debug("%s: unreadable metadata: %s", src, err)
    pdf_title = _meta_str(meta, "/Title")
    author = _meta_str(meta, "/Author")
    front_text = "\n".join(p.text for p in placed if p.para.first.page <= 4)
    if n_pages > 4:
        front_text += "\n" + "\n".join(p.text for p in placed if p.para.first.page == n_pages)
    title = pdf_title if pdf_title and not _BAD_TITLE.search(pdf_title) else None
    if title is None:
        title = front_title or path.stem
    creation = None
    try:
        creation = meta.creation_date if meta else None
    except (PyPdfError, ValueError, KeyError, TypeError) as err:
        logger.debug("%s: unreadable creation date: %s", src, err)

    digest = sha256_file(path)
    return Document(
        id=f"pdf:{digest[:16]}",
        kind="guideline",
        title=title,
        text=text,
        sections=tuple(sections),
        source=SourceFile(src, digest),
        year=_year(front_text, creation),
        page_starts=tuple(page_starts),
        guideline=GuidelineMetadata(
            organization=_organization(author, front_text),
            page_count=n_pages,
            pdf_title=pdf_title,
            recommendations=tuple(recs),
            pages_without_text=tuple(without_text),
            unreadable_pages=tuple(failed),
        ),
    )


def _join_with_offsets(lines: list[_Line], vocab: set[str]) -> tuple[str, list[int]]:
    """Like :func:`_join_lines`, also giving the offset where each line starts."""
    out = ""
    offsets: list[int] = []
    for ln in lines:
        before = len(out)
        joined = _join_lines([out, ln.text], vocab) if out else ln.text.strip()
        # where the new line's text begins: after the old text and any added space
        if joined.startswith(out):
            start = before + (1 if len(joined) > before and joined[before:before + 1] == " " else 0)
        else:  # a hyphen was dropped
            start = before - 1
        offsets.append(max(0, start))
        out = joined
    return out, offsets


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
    for i, p in enumerate(placed):
        if p.para.table:
            continue
        for m in _GRADE.finditer(p.text):
            # The statement: this paragraph up to the grade, or the paragraphs just
            # before it back to a "RECOMMENDATION" label or a heading.
            g_end = p.start + m.end()
            s_idx = i
            if m.start() < 20:
                j = i - 1
                while j >= 0 and i - j <= 4:
                    q = placed[j]
                    if q.para.table or _REC_LABEL.match(q.text) or j in head_at:
                        break
                    s_idx = j
                    j -= 1
            start = placed[s_idx].start
            lead = _REC_LEAD.match(text, start, g_end)
            if lead:
                start = lead.end()
            label = None
            for s in body_secs:
                if s.start <= start < max(s.end, s.start + 1):
                    label = s.label
            if start >= g_end:
                continue
            rec_text = text[start:g_end]
            recs.append(
                Recommendation(
                    text=rec_text,
                    start=start,
                    end=g_end,
                    page=page_at(start),
                    strength=m.group("strength").lower(),
                    certainty=" ".join(m.group("certainty").lower().split()),
                    label=label,
                )
            )
            special.append(Section("recommendation", label, start, g_end))
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


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


def iter_guideline_pdf(
    paths: PathLike | Iterable[PathLike],
    *,
    on_error: OnError = "raise",
    report: IngestReport | None = None,
) -> Iterator[Document]:
    """Yield one :class:`~medrag.types.Document` (``kind="guideline"``) per PDF.

    Args:
        paths: a PDF, a directory (its ``*.pdf`` files, sorted, recursively) or several
            of either.
        on_error: ``"raise"`` to raise :class:`~medrag.errors.IngestError` on the first
            bad file or page; ``"skip"`` to record it in ``report`` and go on (a bad page
            is skipped and the file's other pages kept).
        report: an :class:`~medrag.ingest.IngestReport` to count files, documents and
            skipped inputs into.

    Yields:
        Documents with ``id="pdf:<first 16 hex of sha256>"``, text in reading order,
        ``page_starts``, nested body sections, table sections, and graded
        recommendations both as sections and in ``guideline.recommendations``.
    """
    check_on_error(on_error)
    if report is None:
        report = IngestReport()
    for path in expand_paths(paths, suffixes=(".pdf",)):
        report.files += 1
        try:
            doc = _read_document(path, on_error, report)
        except IngestError as err:
            handle(err, on_error, report)
            continue
        report.documents += 1
        yield doc
