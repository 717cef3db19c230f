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

from .reader import iter_guideline_pdf

__all__ = ["iter_guideline_pdf"]
