"""PubMed XML ingestion: golden records pinned to real PMIDs, bad input, streaming."""

from __future__ import annotations

import gzip
import socket

import pytest
from conftest import need_data

from medrag.errors import ConfigError, IngestError
from medrag.ingest import IngestReport, iter_pubmed, iter_pubmed_events
from medrag.types import Deletion, Document

EXCERPT = ("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")


@pytest.fixture(scope="module")
def excerpt_docs() -> dict[str, Document]:
    path = need_data(*EXCERPT)
    docs: dict[str, Document] = {}
    for d in iter_pubmed(path):
        docs.setdefault(d.pmid, d)  # versioned PMIDs repeat; keep the first
    return docs


def test_excerpt_reads_every_record_and_the_deletions():
    path = need_data(*EXCERPT)
    report = IngestReport()
    events = list(iter_pubmed_events(path, report=report))
    docs = [e for e in events if isinstance(e, Document)]
    dels = [e for e in events if isinstance(e, Deletion)]
    assert len(docs) == 103 == report.documents
    assert len(dels) == 20 == len(report.deletions)
    assert dels[0].pmid == "31688362" and dels[-1].pmid == "34096142"
    assert dels[0].doc_id == "pmid:31688362"
    # deletions come after the articles, in file order
    assert isinstance(events[-1], Deletion) and isinstance(events[0], Document)
    assert not report.skipped


def test_iter_pubmed_puts_deletions_in_the_report():
    report = IngestReport()
    list(iter_pubmed(need_data(*EXCERPT), report=report))
    assert [d.pmid for d in report.deletions][:2] == ["31688362", "31764432"]


def test_structured_abstract_keeps_every_section(excerpt_docs):
    d = excerpt_docs["10704411"]
    assert d.id == "pmid:10704411"
    assert d.title == "Dopamine modulates acute responses to cocaine, nicotine and ethanol in Drosophila."
    assert [(s.label, s.category) for s in d.sections] == [
        ("BACKGROUND", "BACKGROUND"),
        ("RESULTS", "RESULTS"),
        ("CONCLUSIONS", "CONCLUSIONS"),
    ]
    first, last = d.sections[0], d.sections[-1]
    assert d.text[first.start : first.end].startswith("Drugs of abuse have a common property in mammals")
    assert d.text[last.start : last.end].endswith("underlying behavioral responses to multiple drugs of abuse.")
    assert d.year == 2000 and d.pubmed.pub_date.month == 2 and d.pubmed.pub_date.day == 24
    assert d.pubmed.journal.iso_abbreviation == "Curr Biol"
    assert d.pubmed.journal.volume == "10" and d.pubmed.journal.issue == "4"
    assert d.pubmed.pages == "187-94"
    assert d.pubmed.doi == "10.1016/s0960-9822(00)00336-5"
    assert d.pubmed.authors[0].last_name == "Bainton"
    assert d.pubmed.authors[0].affiliations[0].startswith("Department of Anesthesia")
    cocaine = next(m for m in d.pubmed.mesh if m.descriptor == "Cocaine")
    assert cocaine.ui == "D003042" and not cocaine.major and cocaine.is_major
    assert cocaine.qualifiers[0].name == "metabolism" and cocaine.qualifiers[0].major
    assert d.source.sha256 and len(d.source.sha256) == 64
    assert not d.retracted


def test_nlm_category_differs_from_label(excerpt_docs):
    d = excerpt_docs["29426732"]
    assert ("MATERIAL AND METHOD", "METHODS") in [(s.label, s.category) for s in d.sections]
    assert d.pubmed.vernacular_title.startswith("Valor predictivo de cambios Modic tipo II")


def test_mathml_title_is_flattened(excerpt_docs):
    assert excerpt_docs["33780037"].title == (
        "Free-breathing simultaneous T1 , T2 , and T2∗ quantification in the myocardium."
    )


@pytest.mark.parametrize("pmid", ["29225084", "29450256", "29807784", "29744390", "31993508"])
def test_inline_markup_loses_nothing(excerpt_docs, pmid):
    d = excerpt_docs[pmid]
    for s in (d.title, d.text):
        assert "<i>" not in s and "<sup>" not in s and "<sub>" not in s and "<b>" not in s
        assert "&amp;" not in s and "&lt;" not in s
    assert d.title.endswith(".")


def test_inline_sup_text_kept_in_order(excerpt_docs):
    # <sup>1</sup> H NMR ... <sup>13</sup> C NMR: text after each inline tag survives
    d = excerpt_docs["33403765"]
    assert "Their 1 H NMR and 13 C NMR spectra were obtained" in d.text
    # δ<sub>H</sub> becomes δH; the source's private-use bond glyphs (U+F8FE) are kept
    assert "chemical shifts (δH (CH\uf8feN), δC (CH\uf8feN), δH (OH), and δC (C\uf8ffOH)) were studied" in d.text


def test_retracted_publication_flag(excerpt_docs):
    for pmid in ["27602157", "31031480", "32743968", "33104149"]:
        d = excerpt_docs[pmid]
        assert d.retracted, pmid
        assert "RetractionIn" in [c.ref_type for c in d.pubmed.comments_corrections]
    rin = next(c for c in excerpt_docs["27602157"].pubmed.comments_corrections if c.ref_type == "RetractionIn")
    assert rin.pmid == "34093767" and rin.ref_source.startswith("Oncol Lett. 2021")


def test_retraction_notice_is_not_itself_retracted(excerpt_docs):
    d = excerpt_docs["34082697"]
    assert not d.retracted
    assert "Retraction of Publication" in [p.name for p in d.pubmed.publication_types]
    assert "RetractionOf" in [c.ref_type for c in d.pubmed.comments_corrections]


def test_erratum_and_expression_of_concern(excerpt_docs):
    assert "ErratumIn" in [c.ref_type for c in excerpt_docs["21388667"].pubmed.comments_corrections]
    eoc = excerpt_docs["32090497"]
    assert [c.ref_type for c in eoc.pubmed.comments_corrections] == ["ExpressionOfConcernIn"]
    assert not eoc.retracted


def test_collective_author(excerpt_docs):
    d = excerpt_docs["31719001"]
    names = [a.collective for a in d.pubmed.authors if a.collective]
    assert names == ["Collaborators"]


def test_versioned_pmid(excerpt_docs):
    path = need_data(*EXCERPT)
    versions = [d.pubmed.pmid_version for d in iter_pubmed(path) if d.pmid == "30271887"]
    assert len(versions) >= 2 and max(versions) > 1
    assert excerpt_docs["33728380"].pubmed.pmid_version == 2


def test_other_abstract_in_another_language(excerpt_docs):
    d = excerpt_docs["30600808"]
    other = [s for s in d.sections if s.kind == "other_abstract"]
    assert other and other[0].label == "Objetivo" and other[0].language == "spa"
    assert d.text[other[0].start : other[0].end].startswith("El propósito de este estudio")


def test_no_abstract_gives_empty_text_not_an_error(excerpt_docs):
    d = excerpt_docs["25205585"]
    assert d.text == "" and d.sections == () and d.title


def test_keywords_and_publication_type_ui(excerpt_docs):
    d = excerpt_docs["24111943"]
    assert d.pubmed.keywords
    assert all(p.ui and p.ui.startswith("D") for p in d.pubmed.publication_types)


def test_medline_date_parsed_to_a_year(excerpt_docs):
    dates = [d.pubmed.pub_date for d in excerpt_docs.values() if d.pubmed.pub_date.raw]
    assert any(p.raw == "2018 Jul-Aug" and p.year == 2018 for p in dates)


def test_book_article():
    d = next(iter_pubmed(need_data("pubmed", "efetch", "eutils_json_samples", "efetch.pubmedbook.xml")))
    assert d.id == "pmid:20301295" and d.kind == "pubmed_book"
    assert d.pubmed.book_title == "GeneReviews™"
    assert d.pubmed.publisher == "University of Washington, Seattle"
    assert d.year == 1993
    body = [s for s in d.sections if s.kind == "body"]
    assert len(body) == 577
    assert body[0].label == "1p36 Deletion Syndrome"
    assert d.text.startswith("GeneReviews are expert-authored")
    assert d.pubmed.copyright.startswith("Copyright © 1993-2012")


def test_efetch_files_and_the_empty_result_set():
    report = IngestReport()
    docs = list(iter_pubmed(need_data("pubmed", "efetch", "metapub"), report=report))
    assert report.files == 164 and len(docs) == 163 and not report.skipped
    assert list(iter_pubmed(need_data("pubmed", "efetch", "metapub", "37909814.xml"))) == []


def test_document_round_trips_through_dict(excerpt_docs):
    for d in list(excerpt_docs.values())[:20]:
        assert Document.from_dict(d.to_dict()) == d


def test_sections_partition_text(excerpt_docs):
    for d in excerpt_docs.values():
        if d.sections:
            assert d.text == "\n\n".join(d.text[s.start : s.end] for s in d.sections)


# --------------------------------------------------------------------- bad input

ARTICLE = """<PubmedArticle><MedlineCitation Status="MEDLINE"><PMID Version="1">{pmid}</PMID>
<Article><Journal><JournalIssue><PubDate><Year>2020</Year></PubDate></JournalIssue></Journal>
<ArticleTitle>Title {pmid}</ArticleTitle><Abstract><AbstractText>Text {pmid}.</AbstractText></Abstract>
</Article></MedlineCitation></PubmedArticle>"""
NO_PMID = """<PubmedArticle><MedlineCitation><Article><ArticleTitle>x</ArticleTitle></Article>
</MedlineCitation></PubmedArticle>"""
HEAD = '<?xml version="1.0"?>\n'


def _write(tmp_path, name, body, doctype=""):
    p = tmp_path / name
    p.write_text(HEAD + doctype + "<PubmedArticleSet>" + body + "</PubmedArticleSet>", encoding="utf-8")
    return p


def test_record_missing_pmid_raise_and_skip(tmp_path):
    p = _write(tmp_path, "a.xml", ARTICLE.format(pmid=1) + NO_PMID + ARTICLE.format(pmid=3))
    with pytest.raises(IngestError) as ei:
        list(iter_pubmed(p))
    assert ei.value.source == str(p) and ei.value.position == 1
    report = IngestReport()
    docs = list(iter_pubmed(p, on_error="skip", report=report))
    assert [d.pmid for d in docs] == ["1", "3"]
    assert len(report.skipped) == 1 and report.skipped[0].position == 1


def test_truncated_gzip_keeps_good_records(tmp_path):
    body = "".join(ARTICLE.format(pmid=i) for i in range(1, 400))
    raw = gzip.compress((HEAD + "<PubmedArticleSet>" + body + "</PubmedArticleSet>").encode())
    p = tmp_path / "t.xml.gz"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(IngestError, match="t.xml.gz"):
        list(iter_pubmed(p))
    report = IngestReport()
    docs = list(iter_pubmed(p, on_error="skip", report=report))
    assert 0 < len(docs) < 399 and [d.pmid for d in docs] == [str(i) for i in range(1, len(docs) + 1)]
    assert len(report.skipped) == 1 and "truncated" in report.skipped[0].reason or "malformed" in report.skipped[0].reason


def test_not_xml(tmp_path):
    p = tmp_path / "notes.xml"
    p.write_text("this is not XML at all\n")
    with pytest.raises(IngestError, match="notes.xml"):
        list(iter_pubmed(p))
    report = IngestReport()
    assert list(iter_pubmed([p, _write(tmp_path, "ok.xml", ARTICLE.format(pmid=7))], on_error="skip", report=report))
    assert report.files == 2 and len(report.skipped) == 1


def test_malformed_mid_file_names_last_good_record(tmp_path):
    p = _write(tmp_path, "m.xml", ARTICLE.format(pmid=11) + "<PubmedArticle><oops></PubmedArticle>")
    report = IngestReport()
    docs = list(iter_pubmed(p, on_error="skip", report=report))
    assert [d.pmid for d in docs] == ["11"]
    assert "after PMID 11" in report.skipped[0].reason


class _NoNetwork:
    def __enter__(self):
        self.calls = []
        self._orig = socket.socket.connect

        def deny(sock, addr):
            self.calls.append(addr)
            raise OSError("network disabled in test")

        socket.socket.connect = deny
        return self

    def __exit__(self, *a):
        socket.socket.connect = self._orig


def test_remote_dtd_is_never_fetched(tmp_path):
    doctype = (
        '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2019//EN" '
        '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_190101.dtd">\n'
    )
    p = _write(tmp_path, "dtd.xml", ARTICLE.format(pmid=5), doctype)
    with _NoNetwork() as net:
        docs = list(iter_pubmed(p))
    assert [d.pmid for d in docs] == ["5"] and net.calls == []


def test_entity_bomb_is_refused(tmp_path):
    doctype = (
        '<!DOCTYPE PubmedArticleSet [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>\n'
    )
    p = _write(tmp_path, "bomb.xml", ARTICLE.format(pmid="&d;"), doctype)
    with pytest.raises(IngestError, match="entit"):
        list(iter_pubmed(p))
    report = IngestReport()
    assert list(iter_pubmed(p, on_error="skip", report=report)) == []
    assert len(report.skipped) == 1


def test_external_entity_is_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    doctype = f'<!DOCTYPE PubmedArticleSet [<!ENTITY x SYSTEM "file://{secret}">]>\n'
    p = _write(tmp_path, "xxe.xml", ARTICLE.format(pmid=9).replace("Text 9.", "&x;"), doctype)
    report = IngestReport()
    docs = list(iter_pubmed(p, on_error="skip", report=report))
    assert all("TOP-SECRET" not in d.text for d in docs)
    assert len(report.skipped) == 1


def test_on_error_is_validated(tmp_path):
    with pytest.raises(ConfigError):
        list(iter_pubmed(tmp_path, on_error="ignore"))


def test_missing_file_is_an_ingest_error(tmp_path):
    with pytest.raises(IngestError, match="cannot read"):
        list(iter_pubmed(tmp_path / "nope.xml"))
