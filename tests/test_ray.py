"""medrag.store.distributed on a real local Ray cluster (2 CPUs): the Ray build over real
PubMed files equals the single-process build, and actor-held shards with a global top-k
merge return the single-process searcher's results row for row."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import need_data, real_pubmed_parts

ray = pytest.importorskip("ray", reason="Ray is the optional extra medrag[ray]")

from medrag.ingest import IngestReport, iter_pubmed  # noqa: E402
from medrag.retrieve import Analyzer  # noqa: E402
from medrag.store import StoreSearcher, StoreWriter  # noqa: E402
from medrag.store.distributed import RayStore, build_pubmed, pubmed_text  # noqa: E402

AN = Analyzer()


def _real_files(tmp: Path) -> list[Path]:
    return real_pubmed_parts(tmp)


def test_ray_build_and_sharded_search_equal_single_process(ray_cluster, tmp_path):
    files = _real_files(tmp_path)
    ray_report = IngestReport()
    gen = build_pubmed(files, tmp_path / "ray", analyzer=AN, segment_tokens=25_000, report=ray_report)
    assert gen == 1
    # the single-process build over the same files, in the same order
    report = IngestReport()
    docs = list(iter_pubmed(files, report=report))
    assert (ray_report.documents, ray_report.deletions) == (report.documents, report.deletions)
    assert ray_report.deletions  # the excerpt carries its file's <DeleteCitation>
    assert len(docs) > 900
    with StoreWriter(tmp_path / "one", analyzer=AN) as w:
        for d in docs:
            w.add(d.id, AN.tokenize(pubmed_text(d)))
    one = StoreSearcher.open(tmp_path / "one")
    par = StoreSearcher.open(tmp_path / "ray", verify=True)
    assert par.n_segments >= len(files) and one.n_segments == 1
    assert (par.n_docs, par.total_len, par.n_terms_live) == (one.n_docs, one.total_len, one.n_terms_live)
    assert [par.doc_id(r) for r in range(par.n_rows)] == [d.id for d in docs]
    titles = [d.title for d in docs[::9]][:30]
    with open(need_data("scifact", "queries.jsonl"), encoding="utf-8") as f:
        claims = [json.loads(line)["text"] for line in itertools.islice(f, 30)]
    queries = [q for q in (AN.tokenize(t) for t in titles + claims) if q]
    shards = RayStore(tmp_path / "ray", n_shards=2)
    try:
        for q in queries:
            r1, s1 = one.search_rows(q, 10, mode="exact")
            r2, s2 = par.search_rows(q, 10, mode="maxscore")
            r3, s3, ids3 = shards.search_rows(q, 10)
            assert np.array_equal(r1, r2) and np.array_equal(s1, s2), q
            assert np.array_equal(r1, r3) and np.array_equal(s1, s3), q
            assert ids3 == [docs[r].id for r in r1.tolist()]
        assert shards.search_text(titles[0], 1)[0].doc_id == one.search(AN.tokenize(titles[0]), 1)[0].doc_id
    finally:
        shards.close()
