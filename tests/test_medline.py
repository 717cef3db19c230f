"""MEDLINE text (.nbib) through Bio.Medline into the same Documents as the XML."""

from __future__ import annotations

import pytest
from conftest import need_data

from medrag.errors import IngestError
from medrag.ingest import IngestReport, iter_medline


@pytest.fixture(scope="module")
def docs():
    return {d.pmid: d for d in iter_medline(need_data("pubmed", "medline_text", "biopython"))}


def test_all_records_read(docs):
    assert sorted(docs) == sorted(["12230038", "16403221", "16377612", "14871861", "14630660", "23039619"])


def test_golden_record(docs):
    d = docs["12230038"]
    assert d.id == "pmid:12230038" and d.kind == "pubmed"
    assert d.title == "The Bio* toolkits--a brief overview."
    assert d.text.startswith("Bioinformatics research is often difficult to do with commercial software. The Open")
    assert d.year == 2002 and d.pubmed.pub_date.month == 9
    assert d.pubmed.journal.iso_abbreviation == "Brief Bioinform"
    assert d.pubmed.journal.volume == "3" and d.pubmed.pages == "296-302"
    assert d.pubmed.authors[0].last_name == "Mangalam" and d.pubmed.authors[0].fore_name == "Harry"
    mesh = {m.descriptor: m for m in d.pubmed.mesh}
    assert mesh["Software"].major and not mesh["Humans"].major
    assert [p.name for p in d.pubmed.publication_types] == ["Journal Article"]


def test_structured_abstract_labels_recovered(docs):
    d = docs["23039619"]
    assert [s.label for s in d.sections] == ["PURPOSE", "METHODS", "RESULTS", "CONCLUSIONS"]
    for s in d.sections:
        assert not d.text[s.start : s.end].startswith(s.label)
    assert docs["16403221"].pubmed.doi == "10.1186/1471-2105-7-10"
    assert docs["16403221"].pubmed.pmc_id == "PMC1373603"


def test_not_medline_text(tmp_path):
    p = tmp_path / "x.nbib"
    p.write_text("hello\nworld\n")
    with pytest.raises(IngestError, match="x.nbib"):
        list(iter_medline(p))
    report = IngestReport()
    assert list(iter_medline(p, on_error="skip", report=report)) == []
    assert len(report.skipped) == 1


def test_record_without_pmid_is_skipped(tmp_path):
    p = tmp_path / "y.nbib"
    p.write_text("PMID- 1\nTI  - One.\n\nTI  - No pmid here.\n\nPMID- 3\nTI  - Three.\n")
    report = IngestReport()
    assert [d.pmid for d in iter_medline(p, on_error="skip", report=report)] == ["1", "3"]
    assert report.skipped[0].position == 1
