"""Well-formed quotes that cite their own section and page(s) (issue 12)."""

from __future__ import annotations

import pytest
from conftest import need_data

from medrag.answer import AnswerConfig, answer
from medrag.answer.cite import citation
from medrag.answer.parts import question_parts
from medrag.answer.render import to_markdown
from medrag.answer.units import quote_units
from medrag.chunking import ChunkConfig, chunk_document
from medrag.index import Index, IndexConfig
from medrag.ingest import iter_guideline_pdf, iter_pubmed
from medrag.types import Answer, AnswerSentence, Passage, SourceInfo


@pytest.fixture(scope="module")
def tb():
    return next(iter(iter_guideline_pdf(need_data("guidelines", "cdc_what_you_need_to_know_about_tb_2023.pdf"))))


@pytest.fixture(scope="module")
def outpatient():
    return next(iter(iter_guideline_pdf(need_data("guidelines", "cdc_guide_infection_prevention_outpatient_2016.pdf"))))


def _texts(text: str) -> list[str]:
    return [text[u.start : u.end] for u in quote_units(text)]


def test_no_heading_or_dangling_lead_in_is_a_quote(tb):
    texts = _texts(tb.text)
    headings = [s.label for s in tb.sections if s.label and not s.label.rstrip().endswith((".", ":", "?"))]
    assert headings
    for h in headings:
        assert h not in texts, f"heading quoted alone: {h!r}"
    for t in texts:
        assert not t.rstrip().endswith(":"), f"dangling lead-in: {t!r}"
    # the lead-in is quoted together with its list, the bullet with the heading over it
    assert any(t.startswith("Symptoms of active TB disease include:") and "Night sweats" in t for t in texts)
    assert any(t.startswith("A Person With Inactive TB") and "Cannot spread TB germs to others." in t for t in texts)
    assert "• Cannot spread TB germs to others." not in texts


def test_sentence_cut_by_a_break_is_one_quote(outpatient):
    texts = _texts(outpatient.text)
    assert not any(t.startswith("because of its activity against a broad spectrum") for t in texts)
    assert any("(WHO)" in t and "because of its activity against a broad spectrum" in t for t in texts)


def test_a_quote_across_a_page_break_cites_both_pages(outpatient):
    crossing = []
    for ch in chunk_document(outpatient, ChunkConfig(max_tokens=1024)):
        for u in quote_units(ch.text):
            a, b = ch.start + u.start, ch.start + u.end
            if outpatient.page_at(a) != outpatient.page_at(b - 1):
                crossing.append((ch, a, b))
    assert crossing, "the 44-page guideline has quotes across page breaks"
    src = SourceInfo.from_document(outpatient)
    for ch, a, b in crossing:
        c = citation(Passage(chunk=ch, source=src, score=1.0, rank=1), a, b, 1.0)
        assert c.pages == tuple(range(outpatient.page_at(a), outpatient.page_at(b - 1) + 1))
        assert c.page == outpatient.page_at(a)
    # every quote cites the page it is on, not the chunk's first page
    for ch in chunk_document(outpatient, ChunkConfig(max_tokens=1024)):
        for u in quote_units(ch.text):
            a = ch.start + u.start
            c = citation(Passage(chunk=ch, source=src, score=1.0, rank=1), a, ch.start + u.end, 1.0)
            assert c.page == outpatient.page_at(a)


def test_citation_names_the_quotes_own_section():
    docs = list(iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")))
    n = 0
    for d in docs:
        for ch in chunk_document(d):
            if ";" not in (ch.section or ""):
                continue
            src = SourceInfo.from_document(d)
            for u in quote_units(ch.text):
                a = ch.start + u.start
                c = citation(Passage(chunk=ch, source=src, score=1.0, rank=1), a, ch.start + u.end, 1.0)
                assert c.section == d.section_at(a).label
                n += 1
    assert n > 50


def test_reference_shows_every_cited_page_and_the_file(outpatient):
    index = Index.build([outpatient], IndexConfig(encoder=None))
    a = answer("When should hand hygiene be performed?", index, config=AnswerConfig(threshold=0.0, max_sentences=3))
    assert a.answered
    pages = sorted({p for s in a.sentences for c in s.citations for p in c.pages})
    md = to_markdown(a)
    ref = md.split("**References**")[1]
    for p in pages:
        assert str(p) in ref
    assert "cdc_guide_infection_prevention_outpatient_2016.pdf" in ref.replace("\\", "")
    assert "?." not in md and ".." not in md.replace("...", "")


def test_multi_part_question_names_the_unanswered_part(tb):
    index = Index.build([tb], IndexConfig(encoder=None))
    a = answer("Can a person with inactive TB spread TB germs, and what is the dose of isoniazid?", index,
               config=AnswerConfig(threshold=0.0))
    assert len(question_parts(a.question)) == 2
    assert a.status == "partial" and "isoniazid" in (a.abstain_reason or "")


def test_a_dose_question_needs_a_sentence_stating_a_dose(tb):
    index = Index.build([tb], IndexConfig(encoder=None))
    a = answer("What dose of TB medicine should be taken?", index, config=AnswerConfig(threshold=0.0))
    assert a.status == "abstained" and "number" in a.abstain_reason


def test_old_chunks_without_offsets_still_cite(outpatient):
    import dataclasses

    ch = next(c for c in chunk_document(outpatient, ChunkConfig(max_tokens=1024)) if len(c.pages) > 1)
    old = dataclasses.replace(ch, page_starts=(), section_spans=())  # as read from a 0.1 index
    src = SourceInfo.from_document(outpatient)
    u = quote_units(old.text)[-1]
    c = citation(Passage(chunk=old, source=src, score=1.0, rank=1), old.start + u.start, old.start + u.end, 1.0)
    assert c.page == ch.pages[0] and c.section == ch.section
    Answer(question="q", status="answered", sentences=(AnswerSentence(c.quote, (c,)),),
           passages=(Passage(chunk=old, source=src, score=1.0, rank=1),), index_id="x")


@pytest.mark.slow
def test_a_graded_recommendation_leads_with_its_grade():
    who = list(iter_guideline_pdf(need_data("guidelines", "who_ipc_core_components_guidelines_2016.pdf")))
    assert who[0].guideline.recommendations
    index = Index.build(who, IndexConfig(encoder=None))
    a = answer("Should acute health care facilities have an IPC programme with a dedicated, trained team?", index)
    first = a.sentences[0].citations[0]
    assert first.grade and "strong" in first.grade.lower()
    assert "dedicated, trained team" in first.quote
    assert a.to_markdown().startswith("**Recommendation (")


def test_number_questions_name_what_they_ask_about():
    from medrag.answer.scorer import number_subject, states_asked_number

    assert number_subject("What is the recommended dose of amoxicillin for acute otitis media?") == ["amoxicillin"]
    assert number_subject("How many portions of fruit and vegetables should be eaten a day?") == ["fruit"]
    assert number_subject("Can a person with inactive TB spread TB germs?") == []
    dose = "What is the maximum daily dose of metformin?"
    assert not states_asked_number(dose, "The mean renal clearance of metformin was 34.2 L/h.")
    assert states_asked_number(dose, "Metformin up to 2550 mg per day.")
    assert not states_asked_number("How long should isoniazid be taken?", "Resistance was 12% in new cases.")
    assert states_asked_number("How long should isoniazid be taken?", "Take isoniazid for 9 months.")
