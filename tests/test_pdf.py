"""Guideline PDFs: real WHO and CDC guidelines, and bad input the tests make themselves.

Expected pages below were checked against the PDFs page by page (pypdf's plain
``extract_text`` of that page holds the sentence).
"""

from __future__ import annotations

import io
import re

import pypdf
import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, StreamObject

from conftest import need_data
from medrag.errors import ConfigError, IngestError
from medrag.ingest import IngestReport
from medrag.ingest.pdf import iter_guideline_pdf

CDC_OUTPATIENT = "cdc_guide_infection_prevention_outpatient_2016.pdf"
CDC_TB = "cdc_what_you_need_to_know_about_tb_2023.pdf"
WHO_IPC = "who_ipc_core_components_guidelines_2016.pdf"
WHO_DIET = "who_emro_healthy_diet_2019.pdf"

_CACHE: dict[str, object] = {}


def _doc(name: str):
    """Each real guideline is parsed once per test session (pypdf is the slow part)."""
    path = need_data("guidelines", name)
    if name not in _CACHE:
        _CACHE[name] = next(iter_guideline_pdf(path))
    return _CACHE[name]


def _squash(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def _page_text(name: str, page: int) -> str:
    reader = pypdf.PdfReader(need_data("guidelines", name))
    return _squash(reader.pages[page - 1].extract_text()).replace("- ", "-")


# --- documents ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, pages, title, org, year",
    [
        (CDC_OUTPATIENT, 44, "Guide to Infection Prevention For Outpatient Settings", "Centers for Disease Control and Prevention", 2016),
        (CDC_TB, 2, "What You Need to Know About Tuberculosis", "Centers for Disease Control and Prevention", 2023),
        (WHO_IPC, 91, "Guidelines on Core Components of Infection Prevention and Control", "World Health Organization", 2016),
        (WHO_DIET, 20, "Healthy diet", "World Health Organization Regional Office for the Eastern Mediterranean", 2019),
    ],
)
def test_document_metadata(name, pages, title, org, year):
    doc = _doc(name)
    assert doc.kind == "guideline"
    assert re.fullmatch(r"pdf:[0-9a-f]{16}", doc.id)
    assert doc.id == "pdf:" + doc.source.sha256[:16]
    assert doc.source.path.endswith(name)
    assert doc.guideline.page_count == pages
    assert len(doc.page_starts) == pages
    assert doc.title.startswith(title)
    assert doc.guideline.organization == org
    assert doc.year == year
    # the contract Document checks, plus: offsets non-decreasing and within the text
    assert list(doc.page_starts) == sorted(doc.page_starts)
    assert doc.page_starts[0] == 0 and doc.page_starts[-1] <= len(doc.text)
    assert doc.sections and all(s.kind in {"body", "recommendation", "table"} for s in doc.sections)
    # normalized: no ligatures, no odd spaces, no soft hyphens, no private-use glyphs
    assert not re.search("[\ufb00-\ufb06\u00a0\u00ad\u200b\ufeff\ue000-\uf8ff\t]", doc.text)
    assert "  " not in doc.text


def test_round_trips_through_dict():
    doc = _doc(CDC_TB)
    assert type(doc).from_dict(doc.to_dict()) == doc


# --- WHO IPC: graded recommendations -----------------------------------------------------

WHO_RECS = [
    # (page, strength, certainty, start of the statement, its heading)
    (30, "strong", "very low", "The panel recommends that an IPC programme with a dedicated, trained team", "1a. Health care facility level"),
    (37, "strong", "very low", "The panel recommends that evidence-based guidelines should be developed", "Core component 2"),
    (40, "strong", "very low", "The panel recommends that IPC education should be in place for all health care workers", "3a. Health care facility level"),
    (44, "strong", "very low", "The panel recommends that facility-based HAI surveillance should be performed", "4a. Health care facility level"),
    (48, "strong", "very low", "The panel recommends that national HAI surveillance programmes and networks", "4b. National level"),
    (53, "strong", "low", "The panel recommends that IPC activities using multimodal strategies", "5a. Health care facility level"),
    (57, "strong", "low", "The panel recommends that national IPC programmes should coordinate and facilitate", "5b. National level"),
    (61, "strong", "low", "The panel recommends that regular monitoring/audit and timely feedback", "6a. Health care facility level"),
    (64, "strong", "moderate", "The panel recommends that a national IPC monitoring and evaluation programme", "6b. National level"),
    (67, "strong", "very low", "The panel recommends that the following elements should be adhered to", "Core component 7"),
    (73, "strong", "very low", "The panel recommends that materials and equipment to perform appropriate hand hygiene", "8b"),
]


def test_who_recommendations_with_grade_and_page():
    doc = _doc(WHO_IPC)
    recs = [r for r in doc.guideline.recommendations if r.strength != "good-practice"]
    assert len(recs) == len(WHO_RECS)
    for rec, (page, strength, certainty, opening, heading) in zip(recs, WHO_RECS):
        assert (rec.system, rec.grade) == ("GRADE", f"{strength.capitalize()} recommendation, {certainty} quality of evidence")
        assert rec.pages == (page,)
        assert rec.text == doc.text[rec.start:rec.end]
        assert rec.text.startswith(opening), rec.text[:80]
        assert rec.page == page == doc.page_at(rec.start)
        assert (rec.strength, rec.certainty) == (strength, certainty)
        assert rec.text.endswith(f"({strength.capitalize()} recommendation, {certainty} quality of evidence)")
        assert rec.label and rec.label.startswith(heading)
        # the statement is really on that page of the PDF
        assert _squash(opening) in _page_text(WHO_IPC, page)
        # and it is a recommendation section with the same span
        sec = doc.section_at(rec.start)
        assert sec is not None and sec.kind == "recommendation"
        assert (sec.start, sec.end) == (rec.start, rec.end)
    first = recs[0].text
    assert "through IPC good practices." in first and "RECOMMENDATION" not in first


def test_who_good_practice_statements_are_recommendations():
    doc = _doc(WHO_IPC)
    gps = [r for r in doc.guideline.recommendations if r.strength == "good-practice"]
    # pages 34, 43 and 69 each hold one "GOOD PRACTICE STATEMENT" box
    assert [r.page for r in gps] == [34, 43, 69]
    assert gps[1].text.startswith("The national IPC programme should support education and training")
    assert all(r.text == doc.text[r.start:r.end] and "GOOD PRACTICE" not in r.text for r in gps)
    assert all(r.certainty is None and r.grade == "good practice statement" for r in gps)


def test_who_summary_table_is_a_table_not_prose():
    doc = _doc(WHO_IPC)
    tables = [s for s in doc.sections if s.kind == "table" and doc.page_at(s.start) == 11]
    assert tables, "Table 1 (page 11) is marked as a table"
    t = doc.text[tables[0].start:tables[0].end]
    assert "Core component | Recommendation or good practice statement" in t
    # its grading column does not become a recommendation
    assert all(doc.page_at(r.start) >= 30 for r in doc.guideline.recommendations)


def test_who_sections_nest_under_core_components():
    doc = _doc(WHO_IPC)
    sec = doc.section_at(doc.text.index("Rationale for the recommendation", doc.guideline.recommendations[0].end))
    assert sec.kind == "body"
    assert sec.label == "Rationale for the recommendation"
    assert sec.path[-3:] == (
        "Core component 1: Infection prevention and control programmes",
        "1a. Health care facility level",
        "Rationale for the recommendation",
    )


def test_who_two_column_page_in_reading_order():
    doc = _doc(WHO_IPC)
    # page 19: left column, then the right column, with the heading 2.2 in between
    a = doc.text.index("2.1 Target audience")
    b = doc.text.index("The core components of IPC programmes at the national and acute health care facility level have the potential")
    c = doc.text.index("Finally, the core components of IPC programmes should be implemented not only in the public health care system, but also in private")
    d = doc.text.index("2.2 Objectives and scope of the guidelines")
    assert a < b < c < d
    assert {doc.page_at(x) for x in (a, b, c, d)} == {19}


def test_who_running_header_and_footer_removed():
    doc = _doc(WHO_IPC)
    footer = "Guidelines on Core Components of Infection Prevention and Control Programmes at the National and Acute Health Care Facility Level"
    assert footer not in doc.text  # printed at the foot of 89 pages
    assert "CORE COMPONENTS" not in doc.text  # running header of part 8
    assert "EXECUTIVE SUMMARY" not in doc.text
    _assert_no_page_numbers(doc)


def _assert_no_page_numbers(doc):
    for page, start in enumerate(doc.page_starts, 1):
        end = doc.page_starts[page] if page < len(doc.page_starts) else len(doc.text)
        paragraphs = doc.text[start:end].split("\n\n")
        assert str(page) not in paragraphs, f"page number {page} left in the text"


# --- CDC outpatient guide: two columns, running footer --------------------------------


def test_cdc_paragraph_read_across_the_column_break():
    doc = _doc(CDC_OUTPATIENT)
    # page 6: the left column ends in the middle of this sentence, the right column goes on
    sentence = (
        "This process (referred to as risk assessment by the Infection Prevention profession) "
        "will allow facilities to better prioritize resources and focus extra attention on those "
        "areas that are determined to pose greater risk to their patients."
    )
    at = doc.text.index(sentence)
    assert doc.page_at(at) == 6
    para = doc.text[doc.text.rindex("\n\n", 0, at) + 2: doc.text.index("\n\n", at)]
    assert para.startswith("Infection prevention programs must extend beyond Occupational Safety and Health Administration (OSHA)")
    assert para.endswith("a clinic primarily serving patients infected with tuberculosis will have infection prevention needs beyond those of a general pediatric office.")


def test_cdc_reading_order_heading_before_its_columns():
    doc = _doc(CDC_OUTPATIENT)
    intro = doc.text.index("INTRODUCTION")
    first = doc.text.index("The transition of healthcare delivery from acute care hospitals to outpatient (ambulatory care) settings")
    right = doc.text.index("Compared to inpatient acute care settings, outpatient settings have traditionally lacked infrastructure")
    assert intro < first < right
    assert doc.page_at(intro) == doc.page_at(first) == doc.page_at(right) == 3
    assert doc.section_at(first).label == "INTRODUCTION"


def test_cdc_running_footer_and_page_numbers_removed():
    doc = _doc(CDC_OUTPATIENT)
    assert "Version 2.3" not in doc.text
    assert "September 2016" not in doc.text
    _assert_no_page_numbers(doc)


def test_cdc_page_map():
    doc = _doc(CDC_OUTPATIENT)
    cases = {
        "public health clinics, imaging centers, oncology clinics": 3,  # runs on to page 4
        "Healthcare personnel (HCP) are defined as all persons, paid and unpaid": 4,
        "Dedicate Resources to Infection Prevention": 6,
        "Use aseptic technique when preparing and administering medications.": 11,
        "Outpatient facilities should establish policies and procedures for routine cleaning": 11,
    }
    for sentence, page in cases.items():
        at = doc.text.index(sentence)
        assert doc.page_at(at) == page, sentence
        assert _squash(sentence.split(",")[0]) in _page_text(CDC_OUTPATIENT, page)
    imaging = doc.text.index("imaging centers, oncology clinics")
    assert doc.page_at(imaging) == 4


def test_cdc_hyphenation_and_urls():
    doc = _doc(CDC_OUTPATIENT)
    # "hospital-" / "based" at a line end keeps its hyphen (a compound) ...
    assert "hospital-based outpatient clinics" in doc.text
    # ... a URL broken at a hyphen or a slash is rejoined without a space
    assert "http://www.cdc.gov/HAI/settings/outpatient/outbreaks-patient-notifications.html" in doc.text
    assert "http://www.cdc.gov/hicpac/pdf/InfectControl98.pdf" in doc.text
    # citation superscripts do not glue onto words
    assert "surveillance activities. While data" in doc.text or "surveillance activities." in doc.text
    assert "parasites8,9" not in doc.text


def test_cdc_sections_from_headings():
    doc = _doc(CDC_OUTPATIENT)
    labels = [s.label for s in doc.sections if s.kind == "body"]
    for heading in ("INTRODUCTION", "OBJECTIVES", "Hand Hygiene", "Injection Safety", "Environmental Cleaning"):
        assert heading in labels
    sec = next(s for s in doc.sections if s.label == "Hand Hygiene")
    assert sec.path[0].startswith("FUNDAMENTAL ELEMENTS NEEDED TO PREVENT TRANSMISSION")
    assert doc.text[sec.start:].startswith("Hand Hygiene")


# --- the brochure and the fact sheet ---------------------------------------------------


def test_who_diet_pages_without_text_layer():
    doc = _doc(WHO_DIET)
    # pages 2 and 6 are full-page pictures
    assert doc.guideline.pages_without_text == (2, 6)
    assert doc.page_at(doc.text.index("WHO Library Cataloguing in Publication Data")) == 4


def test_tb_fact_sheet_two_columns():
    doc = _doc(CDC_TB)
    inactive = doc.text.index("A Person With Inactive TB")
    active = doc.text.index("A Person With Active TB Disease")
    assert inactive < doc.text.index("Cannot spread TB germs to others.") < active
    assert active < doc.text.index("May spread TB germs to others.")
    assert doc.page_at(doc.text.index("Testing for TB")) == 2


def test_tb_fact_sheet_symptom_table_stops_before_the_footer():
    """p1 (pdftotext -layout): the 3x3 symptoms grid is a table; the agency footer set
    below its right-hand column ("U.S. Department of Health and Human Services", the
    publication number) is text after it, not rows of it."""
    doc = _doc(CDC_TB)
    (table,) = [s for s in doc.sections if s.kind == "table"]
    rows = doc.text[table.start:table.end].split("\n")
    assert rows == ["A cough that lasts 3 weeks or longer | Coughing up blood or sputum | Weakness or fatigue",
                    "Chest pain | Fever | Chills", "Night sweats | Loss of appetite | Weight loss"]
    footer = doc.text.index("U.S. Department of Health and Human Services")
    assert footer > table.end and doc.page_at(footer) == 1 and doc.section_at(footer).kind == "body"


# --- bad input ---------------------------------------------------------------------------


def _make_pdf(pages, *, broken=()):
    """A PDF with one Helvetica text line per string; None is a page with no text."""
    w = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
            NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
        }
    )
    font_ref = w._add_object(font)
    for i, lines in enumerate(pages):
        page = w.add_blank_page(612, 792)
        if lines is None:
            continue
        if i in broken:
            stream = StreamObject()
            stream._data = b"x\x9c\x00not a zlib stream"
            stream[NameObject("/Filter")] = NameObject("/FlateDecode")
        else:
            ops = ["BT /F1 11 Tf 72 720 Td 14 TL"]
            ops += ["(%s) Tj T*" % ln for ln in lines]
            ops.append("ET")
            stream = DecodedStreamObject()
            stream.set_data("\n".join(ops).encode("latin-1"))
        page[NameObject("/Contents")] = w._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
        )
    return w


def _write(w: PdfWriter, path):
    buf = io.BytesIO()
    w.write(buf)
    path.write_bytes(buf.getvalue())
    return path


def test_small_generated_pdf(tmp_path):
    path = _write(_make_pdf([["Hand hygiene saves lives.", "Clean your hands."], ["Second page text."]]), tmp_path / "ok.pdf")
    report = IngestReport()
    (doc,) = iter_guideline_pdf(path, report=report)
    assert doc.text == "Hand hygiene saves lives. Clean your hands.\n\nSecond page text."
    assert doc.page_starts == (0, doc.text.index("Second"))
    assert (report.files, report.documents, report.skipped) == (1, 1, [])


def test_encrypted_with_a_password(tmp_path):
    w = _make_pdf([["Secret text."]])
    w.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    path = _write(w, tmp_path / "locked.pdf")
    with pytest.raises(IngestError, match="password") as exc:
        list(iter_guideline_pdf(path))
    assert exc.value.source == str(path)
    report = IngestReport()
    assert list(iter_guideline_pdf(path, on_error="skip", report=report)) == []
    assert (report.files, report.documents, len(report.skipped)) == (1, 0, 1)
    assert "password" in report.skipped[0].reason


def test_encrypted_with_the_empty_password_is_read(tmp_path):
    w = _make_pdf([["Owner-only protection."]])
    w.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    path = _write(w, tmp_path / "owner.pdf")
    (doc,) = iter_guideline_pdf(path)
    assert doc.text == "Owner-only protection."


def test_truncated_file(tmp_path):
    src = tmp_path / "full.pdf"
    _write(_make_pdf([["Line one."], ["Line two."], ["Line three."]]), src)
    data = src.read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError, match="corrupt or truncated") as exc:
        list(iter_guideline_pdf(cut))
    assert exc.value.source == str(cut)
    report = IngestReport()
    docs = list(iter_guideline_pdf([cut, src], on_error="skip", report=report))
    assert [d.guideline.page_count for d in docs] == [3]  # the good file still comes through
    assert (report.files, report.documents, len(report.skipped)) == (2, 1, 1)
    assert report.skipped[0].source == str(cut)


def test_not_a_pdf(tmp_path):
    path = tmp_path / "notes.pdf"
    path.write_text("This is a plain text file, not a PDF.\n")
    with pytest.raises(IngestError, match="not a PDF"):
        list(iter_guideline_pdf(path))
    report = IngestReport()
    assert list(iter_guideline_pdf(path, on_error="skip", report=report)) == []
    assert report.skipped[0].reason.startswith("not a PDF")


def test_missing_file(tmp_path):
    with pytest.raises(IngestError, match="cannot read"):
        list(iter_guideline_pdf(tmp_path / "absent.pdf"))


def test_scanned_pdf_without_text_layer(tmp_path):
    path = _write(_make_pdf([None, None]), tmp_path / "scan.pdf")
    with pytest.raises(IngestError, match="no text layer"):
        list(iter_guideline_pdf(path))
    report = IngestReport()
    assert list(iter_guideline_pdf(path, on_error="skip", report=report)) == []
    assert len(report.skipped) == 1


def test_page_without_text_is_listed_not_passed_on(tmp_path):
    path = _write(_make_pdf([["First page."], None, ["Third page."]]), tmp_path / "mixed.pdf")
    (doc,) = iter_guideline_pdf(path)
    assert doc.guideline.pages_without_text == (2,)
    assert doc.text == "First page.\n\nThird page."
    assert doc.page_at(doc.text.index("Third")) == 3


def test_one_bad_page_keeps_the_good_pages(tmp_path):
    path = _write(_make_pdf([["Good page one."], ["Lost page."], ["Good page three."]], broken={1}), tmp_path / "bad.pdf")
    with pytest.raises(IngestError) as exc:
        list(iter_guideline_pdf(path))
    assert exc.value.record_id == "page 2"
    report = IngestReport()
    (doc,) = iter_guideline_pdf(path, on_error="skip", report=report)
    assert doc.text == "Good page one.\n\nGood page three."
    assert doc.page_at(doc.text.index("three")) == 3
    assert [(s.record_id, s.position) for s in report.skipped] == [("page 2", 1)]
    assert report.documents == 1
    # the document itself says which page it lost
    assert doc.guideline.unreadable_pages == (2,) and doc.guideline.pages_without_text == ()


def test_directory_takes_only_pdfs(tmp_path):
    _write(_make_pdf([["A."]]), tmp_path / "a.pdf")
    (tmp_path / "README.txt").write_text("not a guideline")
    report = IngestReport()
    docs = list(iter_guideline_pdf(tmp_path, report=report))
    assert len(docs) == 1 and report.files == 1


def test_bad_on_error():
    with pytest.raises(ConfigError):
        list(iter_guideline_pdf([], on_error="ignore"))
