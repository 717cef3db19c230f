"""The numpy scoring paths of :class:`~medrag.store.search.StoreSearcher` (no numba).

``exact``
    Every posting of every query term is read, weighted and summed, segment by segment
    (``np.unique`` + ``np.bincount`` when the postings are few against the segment,
    a dense ``bincount`` otherwise), as ``BM25Index.search`` does.

``maxscore``
    MaxScore (H. Turtle and J. Flood, "Query evaluation: strategies and optimizations",
    IP&M 31(6), 1995) in term-at-a-time form with Moffat and Zobel's "continue"
    strategy (ACM TOIS 14(4), 1996), vectorized. Each query term gets an upper bound on
    what it can add to any document (from its largest tf and shortest document, per
    segment). Terms are taken by decreasing bound; their postings are merged in full
    into a candidate set until the k-th best partial score ``theta`` exceeds the sum of
    the remaining terms' bounds: no document outside the candidates can then reach the
    top k. The remaining terms (the common, low-idf ones with the long postings lists)
    are only looked up for the candidates, by binary search in their memory-mapped
    postings, and candidates whose partial score plus the remaining bound falls below
    ``theta`` are dropped term by term. The survivors' scores are recomputed in the
    canonical term order, so they are bit-identical to ``exact``. Safe (exact top-k)
    by construction. Measured on real query texts (SciFact claims, PubMed titles: ~9
    distinct terms each), it reads only 20-30% of the postings but is not faster than
    ``exact`` in this vectorized form: the sum of the remaining bounds stays above
    ``theta`` until most terms are read, and the per-term work costs more than one
    dense ``bincount`` (benchmarks/bench_engines.py; README "Scale").

The compiled kernels (search_compiled.py, kernel.py) return the same rows and scores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .views import SLACK, _Seg, _Term

if TYPE_CHECKING:
    from .search import StoreSearcher

__all__ = ["exact", "maxscore", "score_rows", "top_k"]

_SPARSE_FACTOR = 8  # sparse (unique) path when postings * 8 < segment rows


def _weights(st: "StoreSearcher", s: _Seg, term: _Term, docs: np.ndarray, tf: np.ndarray) -> np.ndarray:
    k1 = st.params.k1
    norm = st._norm(s)[docs]
    tff = tf.astype(np.float64)
    w = term.idf * (tff * (k1 + 1) / (tff + norm))
    return w * term.count if term.count > 1 else w


def _gather(st: "StoreSearcher", s: _Seg, t: _Term, a: int, e: int) -> tuple[np.ndarray, np.ndarray]:
    """Local rows and weights of the live postings ``a:e`` of term ``t`` in ``s``."""
    docs, tf = s.seg.docs[a:e], s.seg.tf[a:e]
    if s.alive is not None:
        keep = s.alive[docs]
        docs, tf = docs[keep], tf[keep]
    return docs, _weights(st, s, t, docs, tf)


def _sum_segment(
    st: "StoreSearcher", s: _Seg, pieces: list[tuple[np.ndarray, np.ndarray]], mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Global rows (ascending) and summed weights over ``pieces`` (local rows and
    weights of one segment, summed in the order given)."""
    r = np.concatenate([p[0] for p in pieces]) if len(pieces) > 1 else np.asarray(pieces[0][0])
    v = np.concatenate([p[1] for p in pieces]) if len(pieces) > 1 else pieces[0][1]
    if r.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    if r.size * _SPARSE_FACTOR < s.seg.n_docs:
        cand, inv = np.unique(r, return_inverse=True)
        sc = np.bincount(inv.ravel(), weights=v)
    else:
        dense = np.bincount(r, weights=v, minlength=s.seg.n_docs)
        hit = np.zeros(s.seg.n_docs, bool)
        hit[r] = True
        cand = np.flatnonzero(hit)
        sc = dense[cand]
    g = cand.astype(np.int64) + s.base
    if mask is not None:
        keep = mask[g]
        g, sc = g[keep], sc[keep]
    return g, sc


def exact(st: "StoreSearcher", terms: list[_Term], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    all_rows, all_sc = [], []
    by_seg: dict[int, list[tuple[_Term, int, int]]] = {}
    for t in terms:
        for i, _g, a, e in t.where:
            by_seg.setdefault(i, []).append((t, a, e))
    for i, lst in by_seg.items():
        seg = st._segs[i]
        g, sc = _sum_segment(st, seg, [_gather(st, seg, t, a, e) for t, a, e in lst], mask)
        g, sc = top_k(g, sc, k)
        all_rows.append(g)
        all_sc.append(sc)
    if not all_rows:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    return top_k(np.concatenate(all_rows), np.concatenate(all_sc), k)


def score_rows(st: "StoreSearcher", terms: list[_Term], rows: np.ndarray) -> np.ndarray:
    """Exact scores of the given (sorted, unique) global rows, summed in canonical term
    order: bit-identical to :func:`exact`. Deleted rows are scored too (the callers pass
    live rows, or zero them: ``StoreSearcher.score_rows``)."""
    score = np.zeros(rows.size, np.float64)
    if rows.size == 0:
        return score
    cuts = np.searchsorted(rows, st._bases).tolist()  # rows of segment i: cuts[i]:cuts[i+1]
    for t in terms:
        for i, _g, a, e in t.where:
            lo, hi = cuts[i], cuts[i + 1]
            if lo == hi:
                continue
            s = st._segs[i]
            local = rows[lo:hi] - s.base
            w, found = _lookup(st, s, t, a, e, local)
            if found.size:
                score[lo + found] += w
    return score


def _lookup(st: "StoreSearcher", s: _Seg, t: _Term, a: int, e: int, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights of term ``t`` for the local rows that have it, and their positions."""
    docs = s.seg.docs[a:e]
    pos = np.searchsorted(docs, local)
    ok = pos < docs.shape[0]
    ok[ok] = docs[pos[ok]] == local[ok]
    found = np.flatnonzero(ok)
    if found.size == 0:
        return np.empty(0), found
    p = pos[found]
    return _weights(st, s, t, docs[p], s.seg.tf[a:e][p]), found


def _bound(st: "StoreSearcher", t: _Term) -> float:
    """An upper bound on what ``t`` adds to any document's score. Per segment, the
    stored ``max_w`` (the largest tf part at the segment's avgdl A_s) scales by at
    most max(1, avgdl / A_s): the tf part grows with avgdl, and by no more than
    that factor. A segment built with other (k1, b) gets the supremum k1 + 1."""
    k1, b = st.params.k1, st.params.b
    best = 0.0
    for i, g, _a, _e in t.where:
        s = st._segs[i].seg
        bp = s.bound
        if bp["k1"] == k1 and bp["b"] == b and bp["avgdl"] > 0:
            v = float(s.max_w[g]) * max(1.0, st.avgdl / bp["avgdl"])
        else:
            v = k1 + 1
        best = max(best, v)
    return t.idf * best * t.count * (1 + SLACK)


def maxscore(st: "StoreSearcher", terms: list[_Term], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """MaxScore in two phases (module docstring).

    OR phase: terms by decreasing upper bound are read in full. After each, the
    partial scores (over the terms read so far) of a few probe documents (the
    current best k and the term's 2k highest-weighted postings) give ``theta``, a
    lower bound of the final k-th score (partial scores only grow). Once the
    remaining terms' bounds sum below ``theta``, no document outside the postings
    read can reach the top k. AND phase: the remaining terms are looked up for those
    candidates only, dropping the ones whose partial score plus the remaining bound
    is below ``theta``.
    """
    for t in terms:
        t.ub = _bound(st, t)
    by_ub = sorted(terms, key=lambda t: -t.ub)
    ubs = np.asarray([t.ub for t in by_ub])
    rest = np.concatenate([np.cumsum(ubs[::-1])[::-1], [0.0]])  # rest[j] = sum ub[j:]
    or_rows: list[np.ndarray] = []  # per term read: global rows (ascending), weights
    or_vals: list[np.ndarray] = []
    pieces: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    top = np.empty(0, np.int64)
    theta = -np.inf
    j = 0
    while j < len(by_ub):
        t = by_ub[j]
        j += 1
        gr, gv = [], []
        for i, _g, a, e in t.where:
            s = st._segs[i]
            docs, w = _gather(st, s, t, a, e)
            pieces.setdefault(i, []).append((docs, w))
            gr.append(docs.astype(np.int64) + s.base)
            gv.append(w)
        r = np.concatenate(gr) if len(gr) > 1 else gr[0]
        v = np.concatenate(gv) if len(gv) > 1 else gv[0]
        if mask is not None:
            keep = mask[r]
            r, v = r[keep], v[keep]
        if r.size == 0:
            continue
        or_rows.append(r)
        or_vals.append(v)
        probe = r[np.argpartition(-v, 2 * k - 1)[: 2 * k]] if r.size > 2 * k else r
        probe = np.union1d(probe, top)
        ps = np.zeros(probe.size)
        for rr, vv in zip(or_rows, or_vals):
            pos = np.minimum(np.searchsorted(rr, probe), rr.size - 1)
            ps += np.where(rr[pos] == probe, vv[pos], 0.0)
        if probe.size >= k:
            best = np.argpartition(-ps, k - 1)[:k]
            top = probe[best]
            theta = max(theta, float(ps[best].min()))
            if rest[j] < theta * (1 - SLACK):
                break
    del or_rows, or_vals
    # the candidates: every document in the postings read, with its partial score
    parts = [_sum_segment(st, st._segs[i], pc, mask) for i, pc in sorted(pieces.items())]
    del pieces
    if not parts:
        return np.empty(0, np.int64), np.empty(0)
    cand = np.concatenate([p[0] for p in parts])
    part = np.concatenate([p[1] for p in parts])
    # AND phase: the remaining terms, for the surviving candidates only
    for jj in range(j, len(by_ub)):
        keep = part + rest[jj] >= theta * (1 - SLACK)
        cand, part = cand[keep], part[keep]
        if cand.size == 0:
            break
        t = by_ub[jj]
        cuts = np.searchsorted(cand, st._bases).tolist()
        add = np.zeros(cand.size)
        for i, _g, a, e in t.where:
            lo, hi = cuts[i], cuts[i + 1]
            if lo == hi:
                continue
            s = st._segs[i]
            w, found = _lookup(st, s, t, a, e, cand[lo:hi] - s.base)
            add[lo + found] = w
        part = part + add
    if cand.size > k:
        theta = max(theta, float(np.partition(part, cand.size - k)[cand.size - k]))
    cand = cand[part >= theta * (1 - SLACK)]
    # recompute in canonical term order: bit-identical to the exact mode
    return top_k(cand, score_rows(st, terms, cand), k)


def top_k(cand: np.ndarray, sc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` by score, ties to the lower row (``cand`` need not be sorted)."""
    if cand.size > k:
        part = np.argpartition(-sc, k - 1)[:k]
        threshold = sc[part].min()
        sel = np.flatnonzero(sc >= threshold)
        cand, sc = cand[sel], sc[sel]
    order = np.lexsort((cand, -sc))[:k]
    return cand[order], sc[order]

