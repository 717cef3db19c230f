"""One PDF file into a :class:`~medrag.types.Document`: opening, pages, assembly."""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pypdf
import pypdfium2 as pdfium
from pypdf.errors import DependencyError, PyPdfError

from ...errors import IngestError
from ...types import Document, GuidelineMetadata, SourceFile
from .._common import (
    IngestReport,
    OnError,
    PathLike,
    check_on_error,
    expand_paths,
    handle,
    sha256_file,
)
from .layout import _drop_furniture, _page_blocks
from .lines import _Line, _page_spans, _rows, _Span
from .metadata import _BAD_TITLE, _front_title, _meta_str, _organization, _year
from .repair import _join_parts, _rejoin_rows, _Unglue, _vocabulary, _word_counts
from .structure import _Placed, _paragraphs, _sections

logger = logging.getLogger(__name__)

# A content stream may inflate to at most this much (bytes): a decompression bomb (a few
# hundred KB that inflate to hundreds of MB) is refused as an unreadable page before the
# text layer decodes it.
_MAX_INFLATED = 64 * 1024 * 1024
_CHECK_ABOVE = 32 * 1024  # streams smaller than this cannot inflate past the limit


def _flate_streams(page: pypdf.PageObject) -> list[bytes]:
    contents = page.get("/Contents")
    if contents is None:
        return []
    contents = contents.get_object()
    out = []
    for ref in contents if isinstance(contents, list) else [contents]:
        stream = ref.get_object()
        filters = stream.get("/Filter")
        names = [str(f) for f in filters] if isinstance(filters, list) else [str(filters)]
        if names and names[0] == "/FlateDecode":
            raw = getattr(stream, "_data", b"")
            if raw:
                out.append(raw)
    return out


def _inflates_past_limit(page: pypdf.PageObject) -> str | None:
    """Why a page's content is refused before decoding it (a decompression bomb), or None."""
    try:
        for raw in _flate_streams(page):
            if len(raw) < _CHECK_ABOVE:
                continue
            d = zlib.decompressobj()
            d.decompress(raw, _MAX_INFLATED)
            if d.unconsumed_tail:
                return f"content stream inflates past {_MAX_INFLATED // 2**20} MB (a decompression bomb?)"
    except zlib.error:
        return None  # a corrupt stream: reported by _damaged_content if it costs the text
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return None


def _damaged_content(page: pypdf.PageObject) -> str | None:
    """Why a page's content stream cannot be decoded, or None.

    A corrupt Flate stream decodes to no text; a page that lost its text that way must
    not pass for a scanned page."""
    try:
        for raw in _flate_streams(page):
            zlib.decompressobj().decompress(raw, _MAX_INFLATED)
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
    try:
        pdfium_doc = pdfium.PdfDocument(str(path), password="" if reader.is_encrypted else None)
    except (pdfium.PdfiumError, OSError, ValueError) as err:
        raise IngestError(f"corrupt or truncated PDF (PDFium): {err}", source=src) from err
    try:
        return _read_pages(path, reader, pdfium_doc, n_pages, on_error, report)
    finally:
        pdfium_doc.close()


def _read_pages(path: Path, reader: pypdf.PdfReader, pdfium_doc: Any, n_pages: int,
                on_error: OnError, report: IngestReport) -> Document:
    src = str(path)
    page_lines: list[list[_Line]] = []
    heights: list[float] = []
    without_text: list[int] = []
    failed: list[int] = []
    for i in range(n_pages):
        try:
            page = reader.pages[i]
            box = page.mediabox
            heights.append(float(box.top) - float(box.bottom) or 792.0)
            bomb = _inflates_past_limit(page)
            if bomb:
                raise ValueError(bomb)
            spans = _pdfium_page_spans(pdfium_doc, i, float(box.bottom))
        except (PyPdfError, pdfium.PdfiumError, ValueError, KeyError, TypeError, AttributeError,
                IndexError, RecursionError, ZeroDivisionError, OverflowError) as err:
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
    _rejoin_rows(pages, vocab)
    unglue = _Unglue(_word_counts(pages))
    for blocks in pages:
        for b in blocks:
            if not b.table:
                for ln in b.lines:
                    ln.text = unglue(ln.text)
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


def _pdfium_page_spans(doc: Any, index: int, y_offset: float) -> list[_Span]:
    page = doc[index]
    try:
        textpage = page.get_textpage()
        try:
            return _page_spans(textpage, y_offset)
        finally:
            textpage.close()
    finally:
        page.close()


def _join_with_offsets(lines: list[_Line], vocab: set[str]) -> tuple[str, list[int]]:
    """Like :func:`_join_lines`, also giving the offset where each line starts."""
    return _join_parts([ln.text for ln in lines], vocab)


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
    for path in expand_paths(paths, suffixes=(".pdf",), on_error=on_error, report=report):
        report.files += 1
        try:
            doc = _read_document(path, on_error, report)
        except IngestError as err:
            handle(err, on_error, report)
            continue
        report.documents += 1
        yield doc
