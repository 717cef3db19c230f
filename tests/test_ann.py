"""The disk-backed IVF-PQ index (medrag.retrieve.ann): recall against exact search,
re-ranked scores from the stored vectors, masks, deletes, compaction, save/load
generations, bad files, and the ``ivfpq-disk`` kind inside Index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import HashEncoder, need_data

from medrag.errors import ConfigError, IndexFormatError
from medrag.retrieve.ann import ANNConfig, DiskIVFPQ, int8_encode

faiss = pytest.importorskip("faiss")

DIM = 64


@pytest.fixture(scope="module")
def data():
    """6,000 clustered unit vectors (120 centres, anisotropic spread) and 40 held-out queries."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(120, DIM)).astype(np.float32)
    scale = np.linspace(1.0, 0.2, DIM).astype(np.float32)  # unequal variance, as real embeddings
    x = centres[rng.integers(0, 120, 6040)] + 0.8 * rng.normal(size=(6040, DIM)).astype(np.float32) * scale
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:6000], x[6000:]


def _cfg(**kw):
    base = dict(pq_m=8, nprobe=16, rerank=10)
    base.update(kw)
    return ANNConfig(**base)


def _truth(stored: np.ndarray, queries: np.ndarray, k: int = 10, mask=None):
    s = queries @ stored.T
    if mask is not None:
        s[:, ~mask] = -np.inf
    return [set(np.argsort(-row, kind="stable")[:k].tolist()) for row in s]


def _recall(index, queries, truth, **kw):
    return np.mean([len(set(index.search(q, 10, **kw)[0].tolist()) & t) / 10 for q, t in zip(queries, truth)])


@pytest.fixture(scope="module")
def built(data, tmp_path_factory):
    x, _ = data
    d = tmp_path_factory.mktemp("ann") / "f16"
    blocks = (x[s : s + 1500] for s in range(0, len(x), 1500))
    idx = DiskIVFPQ.build(d, blocks, dim=DIM, sample=x, expected_rows=len(x), config=_cfg(), segment_rows=2500)
    return d, idx


def test_recall_and_exact_scores_from_disk(data, built):
    x, queries = data
    d, idx = built
    stored = x.astype(np.float16).astype(np.float32)  # what the refine step reads
    truth = _truth(stored, queries)
    assert _recall(idx, queries, truth) >= 0.95
    pq_only = _recall(idx, queries, truth, rerank=1)  # k candidates: PQ order alone decides
    assert pq_only < _recall(idx, queries, truth)  # the re-rank is what buys the recall
    rows, scores = idx.search(queries[0], 10)
    assert np.allclose(scores, stored[rows] @ queries[0], atol=1e-5)
    assert (np.diff(scores) <= 0).all()
    # exact_search (the ground-truth path) equals brute force over the float16 rows
    ex, _ = idx.exact_search(queries[:5], 10)
    assert [set(r.tolist()) for r in ex] == truth[:5]
    # the rows live on disk (memory-mapped), several segments; codes are resident
    assert len(idx._segments) == 2 and all(isinstance(s.data, np.memmap) for s in idx._segments)
    assert idx.resident_bytes() < 20 * len(idx) + 200_000  # 8 B code + 8 B id per row, plus tables
    assert idx.disk_bytes() == len(idx) * DIM * 2


@pytest.mark.parametrize("kw", [{"coarse": "hnsw"}, {"coarse": "hnsw", "opq": True, "opq_iter": 3}])
def test_hnsw_coarse_quantizer_and_opq(data, built, tmp_path, kw):
    """An HNSW graph over the centroids (cheap cell assignment for 10M-row builds) and an
    OPQ rotation: the same recall as the flat-quantizer index, and a save/load that
    answers identically, with the graph counted as resident memory."""
    x, queries = data
    stored = x.astype(np.float16).astype(np.float32)
    truth = _truth(stored, queries)
    d = tmp_path / "alt"
    idx = DiskIVFPQ.build(d, [x], dim=DIM, sample=x, expected_rows=len(x), config=_cfg(**kw))
    factory = json.loads((d / "ann.json").read_text())["factory"]
    assert factory == idx.config.factory(idx._nlist)
    assert ("_HNSW32" in factory) == (kw.get("coarse") == "hnsw") and factory.startswith("OPQ8,") == bool(kw.get("opq"))
    assert _recall(idx, queries, truth) >= 0.95
    loaded = DiskIVFPQ.load(d)
    assert loaded.config == idx.config
    for q in queries[:10]:
        a, b = idx.search(q, 10), loaded.search(q, 10)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    _, flat = built
    extra = loaded.resident_bytes() - flat.resident_bytes()
    graph = (idx._nlist * 32 * 4 if kw.get("coarse") == "hnsw" else 0) + (DIM * DIM * 4 if kw.get("opq") else 0)
    assert extra >= graph  # level-0 links of every centroid (and the OPQ matrix) are counted


def test_coarse_must_be_known():
    with pytest.raises(ConfigError, match="coarse"):
        ANNConfig(coarse="imi")


def test_int8_refine(data, tmp_path):
    x, queries = data
    idx = DiskIVFPQ.build(tmp_path / "i8", [x], dim=DIM, sample=x, expected_rows=len(x), config=_cfg(refine="int8"))
    codes, scale = int8_encode(x)
    stored = codes.astype(np.float32) * scale[:, None]
    assert np.abs(stored - x).max() < 0.01
    assert _recall(idx, queries, _truth(stored, queries)) >= 0.95
    rows, scores = idx.search(queries[1], 5)
    assert np.allclose(scores, stored[rows] @ queries[1], atol=1e-5)
    loaded = DiskIVFPQ.load(tmp_path / "i8")
    assert loaded.disk_bytes() == len(x) * (DIM + 4)
    assert np.array_equal(loaded.search(queries[1], 5)[0], rows)


def test_round_trip_identical(data, built):
    _, queries = data
    d, idx = built
    loaded = DiskIVFPQ.load(d)
    assert len(loaded) == len(idx) and loaded.config == idx.config
    for q in queries[:10]:
        a, b = idx.search(q, 10), loaded.search(q, 10)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    manifest = json.loads((d / "ann.json").read_text())
    assert manifest["rows"] == len(idx) and manifest["files"]["segments"][0]["file"] == "vectors.npy"


def test_mask(data, built):
    x, queries = data
    _, idx = built
    stored = x.astype(np.float16).astype(np.float32)
    rng = np.random.default_rng(0)
    half = rng.random(len(x)) < 0.5
    rows, _ = idx.search(queries[0], 10, half)
    assert len(rows) == 10 and half[rows].all()
    assert _recall(idx, queries, _truth(stored, queries, mask=half), allowed=half) >= 0.9
    few = np.zeros(len(x), bool)
    few[rng.choice(len(x), 30, replace=False)] = True  # selective: exact scan of the 30 rows
    for q, t in zip(queries[:5], _truth(stored, queries[:5], mask=few)):
        assert set(idx.search(q, 10, few)[0].tolist()) == t
    assert len(idx.search(queries[0], 10, np.zeros(len(x), bool))[0]) == 0
    with pytest.raises(ConfigError, match="mask"):
        idx.search(queries[0], 10, np.ones(5, bool))


def test_delete_add_save_generations(data, tmp_path):
    x, queries = data
    d = tmp_path / "g"
    DiskIVFPQ.build(d, [x[:5000]], dim=DIM, sample=x[:5000], expected_rows=6000, config=_cfg())
    idx = DiskIVFPQ.load(d)
    top = idx.search(queries[0], 10)[0]
    assert idx.delete(top[:4]) == 4 and idx.delete(top[:2]) == 0
    assert not set(top[:4].tolist()) & set(idx.search(queries[0], 50)[0].tolist())
    new = idx.add(x[5000:])
    assert new[0] == 5000 and len(idx) == 6000
    assert idx.search(x[5500], 1)[0][0] == 5500  # a new row finds itself
    first = set((d / f) for f in ("vectors.npy",))
    idx.save()
    loaded = DiskIVFPQ.load(d)
    assert len(loaded) == 6000 and loaded.n_deleted == 4
    assert not set(top[:4].tolist()) & set(loaded.search(queries[0], 50)[0].tolist())
    assert loaded.search(x[5500], 1)[0][0] == 5500
    names = {p.name for p in d.iterdir()}
    assert all(p.name in names for p in first)
    assert sum(n.startswith("ivfpq-") for n in names) == 1  # the old generation's codes are gone
    # rows written but not committed (no save): the last committed generation loads
    loaded.add(x[:100])
    loaded.flush()
    assert len(DiskIVFPQ.load(d)) == 6000


def test_keep_renumbers(data, tmp_path):
    x, _ = data
    idx = DiskIVFPQ.build(tmp_path / "k", [x], dim=DIM, sample=x, expected_rows=len(x), config=_cfg())
    rows = np.arange(0, len(x), 3)
    idx.keep(rows)
    assert len(idx) == len(rows)
    for new in (0, 7, 1999):
        assert idx.search(x[rows[new]], 1)[0][0] == new
    idx.save()
    assert DiskIVFPQ.load(tmp_path / "k").search(x[rows[7]], 1)[0][0] == 7


def test_bad_files(data, tmp_path):
    x, _ = data
    d = tmp_path / "bad"
    DiskIVFPQ.build(d, [x[:3000]], dim=DIM, sample=x[:3000], expected_rows=3000, config=_cfg())
    with pytest.raises(ConfigError, match="already holds"):
        DiskIVFPQ.create(d, DIM)
    vec = d / "vectors.npy"
    raw = vec.read_bytes()
    vec.write_bytes(raw[:-100])
    with pytest.raises(IndexFormatError, match="vectors.npy.*truncated"):
        DiskIVFPQ.load(d)
    vec.write_bytes(raw)
    m = json.loads((d / "ann.json").read_text())
    m["files"]["segments"][0]["file"] = "../x.npy"
    (d / "ann.json").write_text(json.dumps(m))
    with pytest.raises(IndexFormatError, match="bad file name"):
        DiskIVFPQ.load(d)
    (d / "ann.json").write_text("{")
    with pytest.raises(IndexFormatError, match="ann.json"):
        DiskIVFPQ.load(d)
    with pytest.raises(ConfigError):
        ANNConfig(refine="float8")
    with pytest.raises(ConfigError, match="divide"):
        DiskIVFPQ(DIM, ANNConfig(pq_m=7))


def test_index_with_disk_kind(tmp_path):
    """Index over real PubMed records with ``VectorConfig(kind="ivfpq-disk")``: dense
    results equal the exact kind's up to float16 rounding; round trip; delete; add."""
    from medrag.index import Index, IndexConfig
    from medrag.ingest import iter_pubmed
    from medrag.retrieve.dense import VectorConfig

    docs = list({d.id: d for d in iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml"))}.values())
    enc = HashEncoder()
    disk = IndexConfig(encoder=None, vectors=VectorConfig(kind="ivfpq-disk", pq_m=8, nprobe=64, rerank=50))
    flat = IndexConfig(encoder=None)
    idx = Index.build(docs[:80], disk, encoder=enc)
    ref = Index.build(docs[:80], flat, encoder=enc)
    q = "microRNA lung cancer proliferation"
    same = lambda a, b: [p.chunk.id for p in a.search(q, k=5, mode="dense")] == [p.chunk.id for p in b.search(q, k=5, mode="dense")]
    assert same(idx, ref)  # unsaved: exact search over the stored rows
    loaded = Index.load(idx.save(tmp_path / "ix"), encoder=enc)
    names = {p.name for p in (tmp_path / "ix").rglob("*")}
    assert {"ann.json", "vectors.npy"} <= names
    assert not any(n.startswith("ivfpq-") for n in names)  # below MIN_TRAIN_ROWS: exact, no codes
    assert np.load(next((tmp_path / "ix").rglob("vectors.npy")), mmap_mode="r").dtype == np.float16
    assert same(loaded, ref)
    gone = [p.source.doc_id for p in loaded.search(q, k=3, mode="dense")]
    loaded.delete(gone)
    ref.delete(gone)
    loaded.add(docs[80:])
    ref.add(docs[80:])
    assert same(loaded, ref)
    again = Index.load(loaded.save(tmp_path / "ix2"), encoder=enc)
    assert same(again, ref)


def test_vector_index_disk_kind_trains_on_save(tmp_path):
    """VectorIndex(kind="ivfpq-disk") past MIN_TRAIN_ROWS: codes trained at save, float16
    vectors.npy on disk, recall against exact search after load, scores() from disk."""
    from medrag.retrieve.ann import MIN_TRAIN_ROWS
    from medrag.retrieve.dense import VectorConfig, VectorIndex

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(60, 32)).astype(np.float32)
    x = centres[rng.integers(0, 60, MIN_TRAIN_ROWS + 520)] + 0.7 * rng.normal(size=(MIN_TRAIN_ROWS + 520, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    base, queries = x[:MIN_TRAIN_ROWS + 500], x[MIN_TRAIN_ROWS + 500:]
    cfg = VectorConfig(kind="ivfpq-disk", nlist=32, pq_m=12, nprobe=16, rerank=10)  # pq_m lowered to 8
    vi = VectorIndex(base, cfg)
    files = vi.save(tmp_path / "dense")
    assert any(p.name.startswith("ivfpq-") for p in files)
    loaded = VectorIndex.load(tmp_path / "dense", cfg, 32)
    assert len(loaded) == len(base) and loaded.dim == 32 and loaded._disk.trained
    stored = base.astype(np.float16).astype(np.float32)
    truth = _truth(stored, queries)
    hits = sum(len(set(loaded.search(q, 10)[0].tolist()) & t) for q, t in zip(queries, truth))
    assert hits / (10 * len(queries)) >= 0.95
    rows = np.array([7, 3, 10_000])
    assert np.allclose(loaded.scores(queries[0], rows), stored[rows] @ queries[0], atol=1e-5)
    assert "ivfpq-disk" in cfg.kind and "float16" in cfg.factory


def test_vector_config_passes_coarse_and_opq_iter_to_the_disk_index(tmp_path):
    """VectorConfig(kind="ivfpq-disk", coarse="hnsw", opq=True, opq_iter=2): the ANNConfig
    gets them, the index trained at save has an HNSW coarse quantizer and an OPQ
    rotation (its FAISS factory says so), and both survive the Index manifest."""
    from medrag.index import Index, IndexConfig
    from medrag.retrieve.ann import MIN_TRAIN_ROWS
    from medrag.retrieve.dense import VectorConfig, VectorIndex

    cfg = VectorConfig(kind="ivfpq-disk", nlist=32, pq_m=8, nprobe=16, rerank=10, coarse="hnsw", opq=True, opq_iter=2)
    a = cfg.ann_config(32)
    assert (a.coarse, a.opq, a.opq_iter) == ("hnsw", True, 2)
    assert (VectorConfig().ann_config(32).coarse, VectorConfig().ann_config(32).opq_iter) == ("flat", ANNConfig().opq_iter)
    assert "_HNSW32" in cfg.factory and "_HNSW" not in VectorConfig(kind="ivfpq-disk").factory
    for bad in ({"coarse": "imi"}, {"opq_iter": 0}, {"opq_iter": True}):
        with pytest.raises(ConfigError):
            VectorConfig(kind="ivfpq-disk", **bad)
    rng = np.random.default_rng(9)
    x = rng.normal(size=(MIN_TRAIN_ROWS + 200, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    VectorIndex(x, cfg).save(tmp_path / "dense")
    factory = json.loads((tmp_path / "dense" / "ann.json").read_text())["factory"]
    assert factory.startswith("OPQ8,IVF32_HNSW32,PQ8"), factory
    loaded = VectorIndex.load(tmp_path / "dense", cfg, 32)
    assert (loaded._disk.config.coarse, loaded._disk.config.opq_iter) == ("hnsw", 2)
    docs = list({d.id: d for d in iter_pubmed_excerpt()}.values())[:5]
    saved = Index.build(docs, IndexConfig(encoder=None, vectors=cfg), encoder=HashEncoder()).save(tmp_path / "ix")
    got = Index.load(saved, encoder=HashEncoder()).config.vectors
    assert (got.coarse, got.opq, got.opq_iter) == ("hnsw", True, 2)
    # the CLI flag (medrag build --ann ivfpq-disk --coarse hnsw)
    from medrag.cli.app import build_parser
    from medrag.cli.corpus import index_config_from

    parse = lambda *a: index_config_from(build_parser().parse_args(["build", "x.xml", "--index", str(tmp_path / "i"), *a]))
    assert parse("--ann", "ivfpq-disk", "--coarse", "hnsw").vectors.ann_config(384).coarse == "hnsw"
    assert parse("--ann", "ivfpq-disk").vectors.coarse == "flat"
    with pytest.raises(ConfigError, match="apply to --ann ivfpq-disk only"):
        parse("--ann", "hnsw", "--coarse", "hnsw")


def iter_pubmed_excerpt():
    from medrag.ingest import iter_pubmed

    return iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml"))


def test_save_after_a_small_add_reuses_the_sha256_of_linked_vectors(tmp_path, monkeypatch):
    """Index.save after a small add to a loaded ``ivfpq-disk`` index hard-links the
    unchanged float16 vector segment and reuses its recorded sha256 (vouched for by the
    verification record) instead of reading it again; the manifest still lists the
    true sha256 of every file, and a segment altered afterwards (size and mtime kept)
    is caught by full verification, by a default load, and by the next save."""
    import hashlib
    import os

    from medrag.index import Index, IndexConfig, persist
    from medrag.ingest import iter_pubmed
    from medrag.retrieve.dense import VectorConfig

    docs = list({d.id: d for d in iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml"))}.values())
    enc = HashEncoder()
    cfg = IndexConfig(encoder=None, vectors=VectorConfig(kind="ivfpq-disk", pq_m=8))
    ix = tmp_path / "ix"
    Index.build(docs[:80], cfg, encoder=enc).save(ix)
    big = ix / "dense" / "vectors.npy"
    inode = big.stat().st_ino
    loaded = Index.load(ix, encoder=enc)
    hashed: list[str] = []
    real = persist.sha256_file
    monkeypatch.setattr(persist, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    loaded.add(docs[80:85])
    loaded.save(ix)
    assert big.stat().st_ino == inode  # the old segment is linked into the new generation, not rewritten
    assert "vectors.npy" not in hashed and any(n.startswith("vectors-") for n in hashed)  # only the new segment is read
    assert "chunks.jsonl" not in hashed  # what the save rewrote was hashed as it was written (the oracle below)
    files = json.loads((ix / "manifest.json").read_text())["files"]
    for rel, meta in files.items():  # oracle: every recorded sha256 is the file's
        assert meta["sha256"] == hashlib.sha256((ix / rel).read_bytes()).hexdigest(), rel
    assert loaded.verify()["files"] == len(files)
    assert len(Index.load(ix, encoder=enc)) == len(loaded)

    st = big.stat()
    with open(big, "r+b") as f:  # one byte of the linked segment altered in place
        f.seek(st.st_size - 3)
        b = f.read(1)
        f.seek(st.st_size - 3)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert big.stat().st_size == st.st_size and big.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(IndexFormatError, match="dense/vectors.npy fails its sha256"):
        Index.load(ix, encoder=enc, verify="full")
    with pytest.raises(IndexFormatError, match="dense/vectors.npy fails its sha256"):
        Index.load(ix, encoder=enc)  # the record no longer vouches for it (its ctime moved)
    n = len(loaded)
    loaded.add(docs[85:88])
    with pytest.raises(IndexFormatError, match="altered or corrupt since it was saved"):
        loaded.save(ix)  # the altered bytes are not recorded as good in a new generation
    assert {p.name for p in tmp_path.iterdir()} <= {"ix", ".ix.lock"}  # no staging directory left behind
    assert len(Index.load(ix, encoder=enc, verify=False)) == n  # the previous generation stays
