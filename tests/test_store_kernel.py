"""medrag.store's compiled kernels (kernel.py) return exactly what the numpy paths do,
on real PubMed text, across segments, tombstones, masks and k; the block-max bounds are
checked by verify; the array-fed writer equals the token-fed one."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from medrag.errors import IndexFormatError
from medrag.retrieve import BM25Index
from medrag.store import StoreSearcher, StoreWriter, kernel
from test_store import AN, _same_top, pubmed  # noqa: F401  (pubmed: the real-text fixture)

needs_numba = pytest.mark.skipif(not kernel.HAVE_NUMBA, reason="numba (medrag[fast]) is not installed")


def _store(root, ids, toks, segment_tokens=30_000, dead=None):
    with StoreWriter(root, analyzer=AN, segment_tokens=segment_tokens) as w:
        w.add_many(ids, toks)
    if dead is not None:
        with StoreWriter(root) as w:
            w.delete_rows(dead)
    return StoreSearcher.open(root)


@needs_numba
def test_kernels_equal_numpy_bit_for_bit_and_bm25index(pubmed, tmp_path):  # noqa: F811
    ids, toks, queries = pubmed
    dead = np.sort(np.random.default_rng(3).choice(len(ids), size=150, replace=False))
    st = _store(tmp_path / "st", ids, toks, dead=dead.tolist())
    assert st.n_segments >= 5
    live = np.setdiff1d(np.arange(len(ids)), dead)
    ref = BM25Index.from_token_lists([toks[i] for i in live])
    mask = np.random.default_rng(4).random(st.n_rows) < 0.6
    for j, q in enumerate(queries[::2]):  # 150 real queries (half titles, half claims)
        for k in (1, 10, 100) if j % 10 == 0 else (10,):
            r0, s0 = st.search_rows(q, k, mode="exact", engine="numpy")
            for mode in ("exact", "maxscore"):
                for threads in (1, 2, 3):  # segment groups on threads, heaps merged: the same
                    r1, s1 = st.search_rows(q, k, mode=mode, engine="numba", threads=threads)
                    assert np.array_equal(r0, r1) and np.array_equal(s0, s1), (mode, k, threads, q)
            rr, ss = ref.search(q, k)
            assert _same_top(live[rr], ss, r0, s0), q
        if j % 5 == 0:  # a filter mask: same as numpy, only rows the mask keeps
            r0, s0 = st.search_rows(q, 10, mask=mask, engine="numpy")
            r1, s1 = st.search_rows(q, 10, mode="maxscore", mask=mask, engine="numba")
            assert np.array_equal(r0, r1) and np.array_equal(s0, s1) and mask[r1].all()
            r2, s2 = st.search_rows(q, 10, mode="maxscore", mask=mask, engine="numba", threads=2)
            assert np.array_equal(r0, r2) and np.array_equal(s0, s2)


@needs_numba
def test_maxscore_without_block_max_falls_back_to_term_bounds(pubmed, tmp_path):  # noqa: F811
    """A segment written before block_max.npy existed (block_max None) prunes with the
    per-term bounds only, and still returns the exact top-k."""
    ids, toks, queries = pubmed
    st = _store(tmp_path / "st", ids, toks)
    want = [st.search_rows(q, 10, engine="numpy") for q in queries[:60]]
    for s in st._segs:
        s.seg.block_max = None
    for q, (r0, s0) in zip(queries[:60], want):
        r1, s1 = st.search_rows(q, 10, mode="maxscore", engine="numba")
        assert np.array_equal(r0, r1) and np.array_equal(s0, s1)


def test_block_max_bounds_are_verified(pubmed, tmp_path):  # noqa: F811
    ids, toks, _ = pubmed
    root = tmp_path / "st"
    _store(root, ids[:400], toks[:400], segment_tokens=10**9)
    seg = next(p for p in root.iterdir() if p.name.startswith("seg-"))
    bm = np.load(seg / "block_max.npy")
    df = np.diff(np.load(seg / "post_ptr.npy").astype(np.int64))
    assert bm.shape[0] == int(df.sum()) // 128 + df.shape[0] + 1 and (df > 128).any()
    StoreSearcher.open(root, verify=True)
    data = bytearray((seg / "block_max.npy").read_bytes())
    data[-8:-4] = np.float32(0.0).tobytes()  # a bound lowered (same size)
    (seg / "block_max.npy").write_bytes(bytes(data))
    meta = json.loads((seg / "segment.json").read_text())  # recorded checksum updated too:
    from medrag._io import sha256_file  # only the structural check can catch it

    meta["files"]["block_max.npy"]["sha256"] = sha256_file(seg / "block_max.npy")
    (seg / "segment.json").write_text(json.dumps(meta))
    from medrag.store import verify_segment

    with pytest.raises(IndexFormatError, match="block_max"):
        verify_segment(seg)


def test_encoded_writer_equals_token_writer(pubmed, tmp_path):  # noqa: F811
    ids, toks, queries = pubmed
    a = _store(tmp_path / "a", ids[:1000], toks[:1000], segment_tokens=10**9)
    vocab = sorted({t for ts in toks[:1000] for t in ts}, reverse=True)  # any order
    tid = {t: i for i, t in enumerate(vocab)}
    with StoreWriter(tmp_path / "b", analyzer=AN) as w:
        w.add_encoded(
            ids[:1000],
            np.asarray([len(t) for t in toks[:1000]]),
            np.asarray([tid[t] for ts in toks[:1000] for t in ts], np.int32),
            vocab + ["unused-term"],
        )
    b = StoreSearcher.open(tmp_path / "b", verify=True)
    assert b.n_docs == a.n_docs and b.total_len == a.total_len and b.n_terms_live == a.n_terms_live
    for q in queries[:80]:
        assert a.search(q, 10) == b.search(q, 10)


def test_without_numba_the_numpy_paths_answer(pubmed, tmp_path):  # noqa: F811
    """numba hidden from the interpreter: HAVE_NUMBA is False, both modes still work and
    return the numba run's rows and scores."""
    ids, toks, queries = pubmed
    root = tmp_path / "st"
    st = _store(root, ids[:800], toks[:800], segment_tokens=20_000)
    qs = queries[:30]
    want = [[st.search_rows(q, 10, mode=m) for q in qs] for m in ("exact", "maxscore")]
    code = (
        "import sys, json; sys.modules['numba'] = None\n"
        "from medrag.store import StoreSearcher, kernel\n"
        "assert not kernel.HAVE_NUMBA\n"
        "st = StoreSearcher.open(sys.argv[1]); qs = json.loads(sys.stdin.read())\n"
        "print(json.dumps([[[r.tolist(), s.tolist()] for r, s in (st.search_rows(q, 10, mode=m) for q in qs)]"
        " for m in ('exact', 'maxscore')]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(root)], input=json.dumps(qs), capture_output=True, text=True, check=True
    )
    got = json.loads(out.stdout)
    for m in range(2):
        for (r0, s0), (r1, s1) in zip(want[m], got[m]):
            assert r0.tolist() == r1 and s0.tolist() == s1


def test_compiled_global_df_histogram_equals_the_python_merge(pubmed, tmp_path):  # noqa: F811
    """stats.segments_df_histogram (numba k-way merge over ranges, 16-byte prefix keys)
    = the heapq merge, on real text with dead terms, and on terms made to stress the
    key: long shared prefixes, one term a prefix of another, non-ASCII bytes."""
    from medrag.store.stats import global_df_histogram, segments_df_histogram

    ids, toks, _ = pubmed
    st = _store(tmp_path / "st", ids, toks)
    segs = [s.seg for s in st._segs]
    rng = np.random.default_rng(5)
    dfs = [np.where(rng.random(s.n_terms) < 0.1, 0, s.df()) for s in segs]  # some terms fully deleted
    want = global_df_histogram([(s.iter_terms(), d) for s, d in zip(segs, dfs)])
    for chunk in (1 << 20, 64, 7):  # one range, many ranges, tiny ranges
        assert np.array_equal(segments_df_histogram(segs, dfs, chunk_terms=chunk), want)
    words = ["a" * 17 + "x", "a" * 17, "a" * 17 + "y" * 5, "a" * 16, "a" * 15, "ab", "a", "\u00e9t\u00e9" * 6, "z" * 40]
    docs = [[w for w in words if r.random() < 0.5] or ["a"] for r in [np.random.default_rng(i) for i in range(300)]]
    st2 = _store(tmp_path / "st2", [f"d{i}" for i in range(len(docs))], docs, segment_tokens=120)
    segs2 = [s.seg for s in st2._segs]
    assert len(segs2) >= 5
    dfs2 = [s.df() for s in segs2]
    want2 = global_df_histogram([(s.iter_terms(), d) for s, d in zip(segs2, dfs2)])
    assert int(want2[1].sum()) == len(words)
    for chunk in (1 << 20, 3, 1):
        assert np.array_equal(segments_df_histogram(segs2, dfs2, chunk_terms=chunk), want2)


@needs_numba
def test_compiled_term_lookup_equals_segment_find(pubmed, tmp_path):  # noqa: F811
    """kernel.find_terms (one compiled call per query) finds what Segment.find does in
    every segment: present, absent, first/last terms, non-ASCII and prefix-of terms."""
    ids, toks, queries = pubmed
    st = _store(tmp_path / "st", ids, toks)
    terms = sorted({t for q in queries[:40] for t in q})
    for s in st._segs[:2]:
        terms += [s.seg.term(0), s.seg.term(s.seg.n_terms - 1), s.seg.term(0)[:-1] or "zz"]
    terms += ["", "\u00e9t\u00e9", "zzzzzzzzzzzzzzzzzzzzzz", "a"]
    got = st._find(terms)
    for t, row in zip(terms, got):
        want = []
        for i, s in enumerate(st._segs):
            g = s.seg.find(t)
            if g >= 0:
                want.append((i, g, int(s.seg.post_ptr[g]), int(s.seg.post_ptr[g + 1])))
        assert row == want, t


@needs_numba
def test_thread_groups_share_one_exact_threshold(pubmed, tmp_path):  # noqa: F811
    """Threaded MaxScore: the groups prune with one shared threshold (kernel.py). A
    group started at the global k-th best score keeps every row of the global top k in
    its segments, with its score, and never lowers the shared value; one started above
    every score keeps nothing. With 2 and 4 threads, shared threshold or one per group,
    the rows and scores equal one thread's."""
    from medrag.store import search_compiled

    ids, toks, queries = pubmed
    st = _store(tmp_path / "st", ids, toks, segment_tokens=15_000)
    assert st.n_segments >= 8
    kernel.ensure_compiled()
    checked = 0
    for q in queries[1::2]:  # 150 real queries (half titles, half claims)
        r0, s0 = st.search_rows(q, 10, mode="maxscore", threads=1)
        for threads in (2, 4):
            for share in (True, False):
                search_compiled.SHARE_THRESHOLD = share
                try:
                    r1, s1 = st.search_rows(q, 10, mode="maxscore", threads=threads)
                finally:
                    search_compiled.SHARE_THRESHOLD = True
                assert np.array_equal(r0, r1) and np.array_equal(s0, s1), (threads, share, q)
        terms = st._terms(q)
        if len(r0) < 10 or not all(t.idf > 0 for t in terms):
            continue
        by_seg = search_compiled._by_segment(terms)
        part = sorted(by_seg)[1::2]
        seg_of = np.searchsorted(st._bases, r0, side="right") - 1
        want = {int(r): float(s) for r, s, i in zip(r0, s0, seg_of) if int(i) in part}
        shared = np.full(1, float(s0[-1]))
        rows, sc = search_compiled._group(st, part, by_seg, 10, None, True, shared)
        got = dict(zip(rows.tolist(), sc.tolist()))
        assert all(r in got and got[r] == s for r, s in want.items()), q
        assert shared[0] >= s0[-1]
        high = np.full(1, float(s0[0]) * 2 + 1)
        rows, _ = search_compiled._group(st, part, by_seg, 10, None, True, high)
        assert rows.size == 0 and high[0] == float(s0[0]) * 2 + 1
        checked += bool(want)
    assert checked >= 50


@pytest.mark.parametrize("avgdl_factor", [0.6, 1.7])
def test_a_restated_view_prunes_safely_under_other_statistics(pubmed, tmp_path, avgdl_factor):  # noqa: F811
    """StoreSearcher.restated (the store with pending tombstones, scored inside a larger
    corpus: index/storelex.py): block-max MaxScore with another N, avgdl (below and above
    the segments' own) and per-term idf (scaled up and down from the store's) returns the
    exhaustive pass's rows and scores, compiled and numpy, masked or not."""
    ids, toks, queries = pubmed
    st = _store(tmp_path / "st", ids, toks, dead=list(range(0, len(ids), 11)))
    rng = np.random.default_rng(7)
    alive = []
    for s in st._segs:
        a = (np.ones(s.seg.n_docs, bool) if s.alive is None else s.alive.copy()) & (rng.random(s.seg.n_docs) > 0.3)
        alive.append(a)
    n = int(sum(a.sum() for a in alive)) + 500  # 500 rows held elsewhere (added rows)
    view = st.restated(n, int(round(st.avgdl * avgdl_factor * n)), alive)
    assert view.avgdl == pytest.approx(st.avgdl * avgdl_factor, rel=1e-3)
    with pytest.raises(Exception, match="idf="):
        view.search_rows(queries[0], 10)
    mask = rng.random(st.n_rows) < 0.5
    engines = ("numba", "numpy") if kernel.HAVE_NUMBA else ("numpy",)
    for j, q in enumerate(queries[::5]):
        idf = {t: st.idf(t) * float(rng.uniform(0.4, 3.0)) for t in set(q) if st.idf(t) > 0}
        for m in (None, mask) if j % 4 == 0 else (None,):
            r0, s0 = view.search_rows(q, 10, mode="exact", engine="numpy", idf=idf, mask=m)
            assert all(view.is_alive(r) for r in r0.tolist())
            for eng in engines:
                r1, s1 = view.search_rows(q, 10, mode="maxscore", engine=eng, idf=idf, mask=m, threads=2)
                assert np.array_equal(r0, r1) and np.allclose(s0, s1, rtol=1e-12, atol=0), (eng, q)


