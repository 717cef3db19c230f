"""British and American spellings find the same evidence (issue 12)."""

from __future__ import annotations

import json

import pytest
from conftest import need_data

from medrag.index import Index, IndexConfig
from medrag.ingest import iter_pubmed
from medrag.retrieve.analyzer import Analyzer
from medrag.spelling import fold

PAIRS = [
    ("bacteraemia", "bacteremia"), ("tumour", "tumor"), ("tumours", "tumors"), ("anaemia", "anemia"),
    ("haemorrhage", "hemorrhage"), ("randomised", "randomized"), ("hospitalisation", "hospitalization"),
    ("oedema", "edema"), ("oesophageal", "esophageal"), ("diarrhoea", "diarrhea"), ("paediatric", "pediatric"),
    ("leukaemia", "leukemia"), ("ischaemic", "ischemic"), ("sulphonylurea", "sulfonylurea"), ("centre", "center"),
    ("analysed", "analyzed"), ("behaviour", "behavior"), ("foetal", "fetal"), ("aetiology", "etiology"),
]
NOT_VARIANTS = ["hour", "four", "your", "tour", "flour", "exercise", "advise", "otherwise", "surprise", "premise",
                "aerobic", "anaerobic", "aeruginosa", "vertebrae", "algae", "does", "poem", "coefficient",
                "analysis", "diagnosis", "precise", "contour", "raise", "noise"]


@pytest.mark.parametrize("uk,us", PAIRS)
def test_variants_tokenize_alike(uk, us):
    a = Analyzer()
    assert a.tokenize(uk) == a.tokenize(us) == a.tokenize(us.upper())
    assert fold(uk) == us and fold(us) == us


@pytest.mark.parametrize("word", NOT_VARIANTS)
def test_words_that_are_not_variants_stay(word):
    assert fold(word) == word


@pytest.fixture(scope="module")
def docs():
    return list(iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")))


def _hits(index, q):
    return {p.chunk.doc_id for p in index.search(q, k=5)}


def test_us_question_finds_uk_spelled_evidence(docs, tmp_path):
    uk_docs = {d.id for d in docs if "haemorrhagic" in d.text.lower() and "hemorrhagic" not in d.text.lower()}
    assert uk_docs, "the excerpt file has abstracts spelling 'haemorrhagic'"
    index = Index.build(docs, IndexConfig(encoder=None))
    assert uk_docs <= _hits(index, "hemorrhagic") and uk_docs <= _hits(index, "haemorrhagic")
    off = Index.build(docs, IndexConfig(encoder=None, analyzer=Analyzer(spelling="none")))
    assert not uk_docs & _hits(off, "hemorrhagic")
    # the setting is saved with the index and rebuilt from it
    path = index.save(tmp_path / "idx")
    manifest = json.loads((path / "manifest.json").read_text()) if (path / "manifest.json").exists() else None
    again = Index.load(path)
    assert again.config.analyzer.spelling == "us"
    assert uk_docs <= _hits(again, "hemorrhagic")
    if manifest is not None:
        assert manifest["analyzer"]["spelling"] == "us"


def test_an_analyzer_from_0_1_keeps_its_behaviour():
    old = Analyzer().to_dict()
    del old["spelling"], old["spelling_rules"]  # what a 0.1 manifest holds
    a = Analyzer.from_dict(old)
    assert a.spelling == "none" and a.tokenize("haemorrhage") != a.tokenize("hemorrhage")
