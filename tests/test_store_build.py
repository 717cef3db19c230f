"""medrag.store.build: the process-pool build over real PubMed files equals the
single-process build row for row and score for score; a bad record aborts it with the
file named and the store left at its previous generation."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from conftest import need_data, real_pubmed_parts

from medrag.errors import ConfigError, IngestError
from medrag.ingest import IngestReport, iter_pubmed
from medrag.retrieve import Analyzer
from medrag.store import StoreSearcher, StoreWriter, collect_garbage, read_current
from medrag.store.build import build_pubmed, pubmed_text

AN = Analyzer()


def test_process_build_equals_single_process(tmp_path):
    files = real_pubmed_parts(tmp_path)
    rep = IngestReport()
    gen = build_pubmed(files, tmp_path / "par", workers=2, analyzer=AN, segment_tokens=2_000, report=rep)
    assert gen == 1
    report = IngestReport()
    docs = list(iter_pubmed(files, report=report))
    assert (rep.files, rep.documents, rep.deletions) == (report.files, report.documents, report.deletions)
    assert rep.deletions  # the update-file excerpt carries <DeleteCitation> PMIDs
    with StoreWriter(tmp_path / "one", analyzer=AN) as w:
        for d in docs:
            w.add(d.id, AN.tokenize(pubmed_text(d)))
    one = StoreSearcher.open(tmp_path / "one")
    par = StoreSearcher.open(tmp_path / "par", verify=True)
    assert par.n_segments > len(files)  # each file was cut into several segments
    assert (par.n_docs, par.total_len, par.n_terms_live) == (one.n_docs, one.total_len, one.n_terms_live)
    assert [par.doc_id(r) for r in range(par.n_rows)] == [d.id for d in docs]
    with open(need_data("scifact", "queries.jsonl"), encoding="utf-8") as f:
        claims = [json.loads(line)["text"] for line in itertools.islice(f, 20)]
    titles = [d.title for d in docs[::37]][:20]
    for q in (AN.tokenize(t) for t in titles + claims):
        if not q:
            continue
        r1, s1 = one.search_rows(q, 10, mode="exact")
        r2, s2 = par.search_rows(q, 10, mode="maxscore")
        assert np.array_equal(r1, r2) and np.array_equal(s1, s2), q


def test_in_process_build_appends_a_generation(tmp_path):
    files = real_pubmed_parts(tmp_path)
    root = tmp_path / "s"
    assert build_pubmed(files[:1], root, workers=1, analyzer=AN) == 1
    n1 = StoreSearcher.open(root).n_docs
    assert build_pubmed(files[1:2], root, workers=1, analyzer=AN) == 2
    s = StoreSearcher.open(root, verify=True)
    assert s.n_docs == n1 + 450


def test_bad_record_aborts_and_keeps_previous_generation(tmp_path):
    files = real_pubmed_parts(tmp_path)
    root = tmp_path / "s"
    build_pubmed(files[:1], root, workers=1, analyzer=AN)
    before = read_current(root).generation
    n_before = StoreSearcher.open(root).n_docs
    bad = tmp_path / "bad.xml"
    text = files[1].read_text(encoding="utf-8")
    cut = text.index("<PMID", text.index("<PubmedArticle>", 1000))
    bad.write_text(text[:cut] + "<PMID Version=\"1\"></PMID>" + text[text.index("</PMID>", cut) + 7 :], encoding="utf-8")
    with pytest.raises(IngestError) as ei:
        build_pubmed([files[2], bad], root, workers=2, analyzer=AN)
    assert str(bad) in str(ei.value)
    assert read_current(root).generation == before
    assert StoreSearcher.open(root, verify=True).n_docs == n_before
    # the abandoned generation's segments are unreferenced and collectable
    collect_garbage(root)
    s = StoreSearcher.open(root, verify=True)
    assert (read_current(root).generation, s.n_docs) == (before, n_before)
    rep = IngestReport()
    build_pubmed([files[2], bad], root, workers=2, analyzer=AN, on_error="skip", report=rep)
    assert len(rep.skipped) == 1 and rep.skipped[0].source == str(bad)


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError):
        build_pubmed([], tmp_path / "s")
    with pytest.raises(ConfigError):
        build_pubmed([tmp_path / "x.xml"], tmp_path / "s", on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        build_pubmed([tmp_path / "x.xml"], tmp_path / "s", workers=2.0)  # type: ignore[arg-type]
