"""The statistics of a segments-engine index with pending changes (rows added or
deleted since the load, not saved yet: index/storelex.py), as a fresh build of the
resulting corpus would have them.

BM25 (rank-bm25's ``BM25Okapi``, as ``BM25Index``) needs N (live rows), avgdl, each
query term's document frequency, and the idf floor (epsilon times the mean idf over the
whole live vocabulary) for terms whose idf is negative. Computed here:

* N, total length, and per segment the rows still live (the store's tombstones and the
  pending ones) and the pending-deleted local rows, once per change: O(deleted rows +
  segments) (:func:`pending_stats`), plus the in-memory delta's totals.
* A query term's df: the store's live df, minus the pending-deleted rows among its
  postings (the few deleted rows of a segment merged into its sorted postings list by
  galloping search, compiled: kernel.count_common; numpy's binary search without numba:
  O(deleted x log postings), no pass over the postings; kept per term until the next
  change), plus the delta's df (:func:`query_idf`).
* The idf floor only when a query term's idf is negative (rare: a term in more than
  half of the rows), from the store's df histogram adjusted for every term the deleted
  and added rows have (:func:`idf_floor_now`): finding the deleted rows' terms reads
  every posting of the segments that have deleted rows (O(store) once per change; the
  store keeps no forward index), the result cached until the next change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .storelex import StoreLexical

__all__: list[str] = []

_CHUNK = 1 << 24  # postings per pass when the deleted rows' terms are collected
_CACHE = 100_000  # query terms whose pending-deleted count is kept until the next change


@dataclass
class Stats:
    """The global statistics of the live rows while there are changes since the load
    (cached by StoreLexical until the next change)."""

    n: int  # live rows
    total: int  # their tokens
    avgdl: float
    ok: list[np.ndarray | None]  # per segment: rows still live (None: all)
    removed: list[np.ndarray]  # per segment: sorted local rows deleted since the load
    delta_df: dict[str, int]  # df of each term in the added rows (live ones)
    floor: float | None = None  # epsilon * mean idf over the live vocabulary (lazy)
    view: Any = None  # the StoreSearcher restated with these statistics (lazy)
    delta_norm: Any = None  # the added rows' length normalizations at this avgdl (lazy)
    # pending-deleted rows per query term seen so far (bounded: cleared past _CACHE terms)
    gone_df: dict[str, int] = field(default_factory=dict)


def pending_stats(lex: "StoreLexical") -> Stats:
    """N, total length, live rows per segment, deleted rows per segment, the delta's df."""
    ex = lex._drop
    if lex._dead is not None:
        ex = np.union1d(ex, lex._store_rows()[lex._dead])
    ok: list[np.ndarray | None] = []
    removed: list[np.ndarray] = []
    removed_len = 0
    for i, seg in enumerate(lex._segs):
        a = lex._seg_alive[i]
        lo, hi = np.searchsorted(ex, [lex._bases[i], lex._bases[i + 1]])
        local = (ex[lo:hi] - lex._bases[i]).astype(np.asarray(seg.docs[:0]).dtype)
        removed.append(local)
        if not local.size:
            ok.append(a)
            continue
        live = np.ones(seg.n_docs, bool) if a is None else a.copy()
        live[local] = False
        ok.append(live)
        removed_len += int(np.asarray(seg.doc_len)[local.astype(np.int64)].sum(dtype=np.int64))
    n = lex._s.n_docs - int(ex.size)
    total = lex._s.total_len - removed_len
    delta_df: dict[str, int] = {}
    d = lex._delta
    if d is not None:
        n += d.n_docs
        total += int(np.asarray(d._doc_len)[np.asarray(d.alive)].sum(dtype=np.int64))
        ddf = np.diff(np.asarray(d._indptr))
        for j in np.flatnonzero(ddf).tolist():  # a delete drops the postings: df of live rows
            delta_df[d._vocab[j]] = int(ddf[j])
    return Stats(n, total, total / n if n else 0.0, ok, removed, delta_df)


def _raw_idf(n: int, df: int) -> float:
    return float(np.log(np.float64(n - df + 0.5)) - np.log(np.float64(df + 0.5)))


def query_idf(lex: "StoreLexical", st: Stats, query_tokens: Sequence[str]) -> dict[str, float]:
    """The idf of each distinct query term that a live row has, with the statistics of
    now (module docstring); terms no live row has are left out. (``_terms`` with
    ``keep_zero_idf`` lists every distinct term, those only added rows have too.)"""
    from ..store import kernel

    out: dict[str, float] = {}
    if st.n == 0:
        return out
    compiled = kernel.HAVE_NUMBA
    if compiled:
        kernel.ensure_compiled()
    cache = st.gone_df
    for t in lex._s._terms(query_tokens, keep_zero_idf=True):
        gone = cache.get(t.term)
        if gone is None:
            gone = 0
            for i, g, a, e in t.where:
                rem = st.removed[i]
                if not rem.size:
                    continue
                # pending-deleted rows among this term's postings (both sorted)
                if compiled:
                    gone += int(kernel.count_common(lex._segs[i].docs, a, e, rem))
                else:
                    docs = lex._segs[i].docs[a:e]
                    pos = np.searchsorted(docs, rem)  # same dtype: no copy of the postings
                    inb = pos < docs.shape[0]
                    gone += int(np.count_nonzero(np.asarray(docs)[pos[inb]] == rem[inb]))
            if len(cache) >= _CACHE:
                cache.clear()
            cache[t.term] = gone  # racing threads store the same value
        df = t.local_df - gone + st.delta_df.get(t.term, 0)
        if df <= 0:
            continue
        idf = _raw_idf(st.n, df)
        out[t.term] = idf_floor_now(lex, st) if idf < 0 else idf
    return out


def idf_floor_now(lex: "StoreLexical", st: Stats) -> float:
    """``epsilon * mean idf`` over the live vocabulary now: the store's df histogram
    adjusted for every term whose df the deleted and added rows change (cached in ``st``)."""
    if st.floor is not None:
        return st.floor
    from ..store.stats import idf_floor

    changed: Counter[str] = Counter(st.delta_df)
    for i, seg in enumerate(lex._segs):
        rem = st.removed[i]
        if not rem.size:
            continue
        gone = np.zeros(seg.n_docs, bool)
        gone[rem.astype(np.int64)] = True
        docs = seg.docs
        hits = []
        for lo in range(0, seg.nnz, _CHUNK):  # the postings of the deleted rows, in bounded passes
            hits.append(np.flatnonzero(gone[np.asarray(docs[lo : lo + _CHUNK])]) + lo)
        pos = np.concatenate(hits) if hits else np.zeros(0, np.int64)
        terms = np.searchsorted(np.asarray(seg.post_ptr, np.int64), pos, side="right") - 1
        cnt = np.bincount(terms, minlength=seg.n_terms)
        for t in np.flatnonzero(cnt).tolist():
            changed[seg.term(t)] -= int(cnt[t])
    changed = Counter({t: c for t, c in changed.items() if c})
    hist: Counter[int] = Counter(dict(zip(lex._hist[0].tolist(), lex._hist[1].tolist())))
    if changed:
        before = lex._s.local_df(list(changed))
        for t, c in changed.items():
            old = int(before.get(t, 0))
            if old > 0:
                hist[old] -= 1
            if old + c > 0:
                hist[old + c] += 1
    keys = sorted(v for v, c in hist.items() if c > 0)
    h = np.array([keys, [hist[v] for v in keys]], np.int64).reshape(2, -1)
    st.floor = idf_floor(h, st.n, lex._s.params.epsilon)
    return st.floor
