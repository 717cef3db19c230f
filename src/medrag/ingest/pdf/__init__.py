"""Clinical guideline PDFs into :class:`~medrag.types.Document` objects.

One job per module:

* :mod:`.lines` -- the **text layer**: PDFium (``pypdfium2``) places every glyph with the
  full text state, so a justified line keeps its width and a column gutter stays empty;
  glyphs become spans (one font, one baseline), spans become lines, cut at gaps wider
  than a word gap; citation superscripts and columns of line numbers are dropped.
* :mod:`.layout` -- **reading order**: a recursive XY-cut (columns left to right, a
  full-width heading or box read before the columns below it; a gutter needs two rows),
  margin markers ("R", a grade letter, a tick, a list number) joined to the line they
  label, running headers and footers removed.
* :mod:`.tables` -- **tables**: three or more aligned columns, two columns one of which
  holds short cells (checklists), and class-of-recommendation tables read one row per
  recommendation.
* :mod:`.repair` -- **text repair**: ligatures and odd spaces, words hyphenated at line
  ends rejoined using the document's own vocabulary, words the text layer ran together
  split (:class:`.repair._Unglue`).
* :mod:`.structure` -- **paragraphs, headings and sections** (a paragraph runs on across
  a column or page break when its sentence does).
* :mod:`.grades` and :mod:`.recommendations` -- **recommendations and their grades** in
  any grading system, normalized (see :mod:`.grades` for the mapping and how to add a
  system).
* :mod:`.metadata` -- title, organization, year; :mod:`.reader` -- one file, end to end.

Errors: an encrypted PDF is opened with the empty password when it has one; otherwise it,
a file that is not a PDF, a truncated or corrupt file, and a PDF with no text layer at all
raise :class:`~medrag.errors.IngestError` (or are recorded and skipped with
``on_error="skip"``). A page that cannot be read is an ``IngestError`` with
``record_id="page N"``; skipped, the other pages of the file are kept. A page that reads
but has no text (a scanned page, a full-page picture) is listed in
:attr:`~medrag.types.GuidelineMetadata.pages_without_text` and contributes no text.
"""

from .reader import iter_guideline_pdf

__all__ = ["iter_guideline_pdf"]
