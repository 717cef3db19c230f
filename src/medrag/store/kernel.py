"""Compiled per-segment query kernels (numba; optional extra ``medrag[fast]``).

Two kernels, each run once per segment with one top-k heap shared across the
segments of a query (segments are visited in row order, so the heap's threshold
``theta`` carries from one segment to the next):

:func:`exact_segment`
    Exhaustive term-at-a-time accumulation: every live posting of every query term is
    weighted and added into a dense accumulator, term by term in the canonical (sorted)
    order, exactly as the numpy path's ``bincount`` sums, so scores are bit-identical to
    ``StoreSearcher``'s numpy ``exact`` mode (and to ``BM25Index`` / rank-bm25's
    ``BM25Okapi`` to float64 rounding).

:func:`maxscore_segment`
    Document-at-a-time MaxScore (H. Turtle and J. Flood, "Query evaluation: strategies
    and optimizations", IP&M 31(6), 1995) with block-max upper bounds (S. Ding and T.
    Suel, "Faster top-k document retrieval using block-max indexes", SIGIR 2011; the
    MaxScore form of it is Lucene's "block-max MaxScore"). Terms are ordered by their
    upper bound; the longest prefix of low-bound terms whose bounds sum below the
    threshold are *non-essential*: a document that has only those cannot enter the
    top k, so candidates come from the *essential* terms' postings only. For each
    candidate, the block-max bounds of the essential terms' current blocks (128
    postings, format.py) plus the non-essential bounds are checked against ``theta``
    before any weight is computed; then the essential weights are added and the
    non-essential terms are looked up (galloping search forward in their postings)
    while the partial score plus the remaining bounds can still reach ``theta``. A
    candidate that survives is scored in full and its score summed in canonical term
    order, so the heap holds the same scores as the exhaustive kernel and the top k
    (ties to the lower row) is identical: safe by construction, since every pruning
    test compares an upper bound (rounded up, with a relative slack) with ``theta``.

Without numba, :data:`HAVE_NUMBA` is False and ``StoreSearcher`` uses its numpy paths,
which return the same rows and scores (tests/test_store_kernel.py checks both).
Compiled with ``cache=True`` (the machine code is cached beside this file, or in
numba's user cache directory when this one is not writable); ``nogil=True``, so
queries in several threads run in parallel.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["HAVE_NUMBA", "exact_segment", "maxscore_segment", "scratch"]

try:  # the optional extra medrag[fast]
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None
    HAVE_NUMBA = False


def _jit(f):  # type: ignore[no-untyped-def]
    return numba.njit(cache=True, nogil=True)(f) if HAVE_NUMBA else f


_local = threading.local()


def scratch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-thread work arrays for :func:`exact_segment` with room for ``n`` documents:
    accumulator (float64, kept zeroed), touched flags (uint8, kept zeroed), touched list."""
    acc = getattr(_local, "acc", None)
    if acc is None or acc.shape[0] < n:
        _local.acc = np.zeros(n, np.float64)
        _local.flag = np.zeros(n, np.uint8)
        _local.touched = np.zeros(n, np.int32)
    return _local.acc, _local.flag, _local.touched


@_jit
def _better(s, r, hs, hr):  # type: ignore[no-untyped-def]
    # (s, r) ranks above (hs, hr): higher score, ties to the lower row
    return s > hs or (s == hs and r < hr)


@_jit
def _push(heap_s, heap_r, n, k, s, r):  # type: ignore[no-untyped-def]
    """Offer (score s, row r) to a min-heap of the k best (root: the worst kept).
    Returns the new size."""
    if n < k:
        i = n
        heap_s[i] = s
        heap_r[i] = r
        while i > 0:
            p = (i - 1) // 2
            if _better(heap_s[p], heap_r[p], heap_s[i], heap_r[i]):
                ts, tr = heap_s[p], heap_r[p]
                heap_s[p], heap_r[p] = heap_s[i], heap_r[i]
                heap_s[i], heap_r[i] = ts, tr
                i = p
            else:
                break
        return n + 1
    if not _better(s, r, heap_s[0], heap_r[0]):
        return n
    heap_s[0] = s
    heap_r[0] = r
    i = 0
    while True:
        a = 2 * i + 1
        if a >= n:
            break
        c = a
        b = a + 1
        if b < n and _better(heap_s[a], heap_r[a], heap_s[b], heap_r[b]):
            c = b  # the worse child
        if _better(heap_s[i], heap_r[i], heap_s[c], heap_r[c]):
            ts, tr = heap_s[c], heap_r[c]
            heap_s[c], heap_r[c] = heap_s[i], heap_r[i]
            heap_s[i], heap_r[i] = ts, tr
            i = c
        else:
            break
    return n


@_jit
def exact_segment(  # type: ignore[no-untyped-def]
    docs, tf, starts, ends, idf, cnt, norm, k1p1, live, use_live, mask, use_mask,
    acc, flag, touched, heap_s, heap_r, heap_n, k, base,
):  # fmt: skip
    """Score every live posting of the terms (canonical order) and offer every touched
    document to the heap. ``acc``/``flag`` come in zeroed and leave zeroed. Returns
    the heap's new size."""
    nt = 0
    for i in range(starts.shape[0]):
        w_idf = idf[i]
        c = cnt[i]
        for p in range(starts[i], ends[i]):
            d = docs[p]
            if use_live and not live[d]:
                continue
            t = np.float64(tf[p])
            w = w_idf * (t * k1p1 / (t + norm[d]))
            if c > 1:
                w = w * c
            if flag[d] == 0:
                flag[d] = 1
                touched[nt] = d
                nt += 1
            acc[d] += w
    n = heap_n
    for j in range(nt):
        d = touched[j]
        s = acc[d]
        acc[d] = 0.0
        flag[d] = 0
        if use_mask and not mask[d]:
            continue
        if n == k and s <= heap_s[0] and not (s == heap_s[0] and d + base < heap_r[0]):
            continue  # not better than the worst kept (the common case): no call
        n = _push(heap_s, heap_r, n, k, s, np.int64(d) + base)
    return n


@_jit
def _seek(docs, p, e, d):  # type: ignore[no-untyped-def]
    """First position in [p, e) whose row is >= d (galloping, then binary search)."""
    if p >= e or docs[p] >= d:
        return p
    lo = p
    step = 1
    while lo + step < e and docs[lo + step] < d:
        lo += step
        step *= 2
    hi = min(lo + step, e)
    lo += 1
    while lo < hi:
        mid = (lo + hi) // 2
        if docs[mid] < d:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def maxscore_segment(  # type: ignore[no-untyped-def]
    docs, tf, starts, ends, idf, cnt, ub, bscale, bm, bm_base, block, canon,
    norm, k1p1, live, use_live, mask, use_mask, heap_s, heap_r, heap_n, k, base, slack,
):  # fmt: skip
    """Block-max MaxScore over one segment (module docstring). Terms come sorted by
    ``ub`` ascending; ``canon[j]`` is term j's position in canonical order; ``bscale[j]``
    turns a stored block bound into a score bound (idf, count, avgdl scaling, slack);
    term j's block b is ``bm[bm_base[j] + b]``, ``b = (pos - starts[j]) // block``."""
    m_terms = starts.shape[0]
    pos = starts.copy()
    pre = np.zeros(m_terms + 1)  # pre[j] = sum of ub[0:j]
    for j in range(m_terms):
        pre[j + 1] = pre[j] + ub[j]
    contrib = np.zeros(m_terms)
    n = heap_n
    theta = heap_s[0] if n == k else -np.inf
    m = 0  # terms 0..m-1 are non-essential
    while m < m_terms and pre[m + 1] < theta:
        m += 1
    while m < m_terms:
        d = np.int64(-1)
        for j in range(m, m_terms):
            if pos[j] < ends[j]:
                x = np.int64(docs[pos[j]])
                if d < 0 or x < d:
                    d = x
        if d < 0:
            break
        dead = (use_live and not live[d]) or (use_mask and not mask[d])
        if not dead and n == k:
            bound = pre[m]
            for j in range(m, m_terms):
                if pos[j] < ends[j] and docs[pos[j]] == d:
                    bound += bm[bm_base[j] + (pos[j] - starts[j]) // block] * bscale[j]
            dead = bound < theta
        if dead:
            for j in range(m, m_terms):
                if pos[j] < ends[j] and docs[pos[j]] == d:
                    pos[j] += 1
            continue
        for j in range(m_terms):
            contrib[j] = 0.0
        s = 0.0
        nd = norm[d]
        for j in range(m, m_terms):
            p = pos[j]
            if p < ends[j] and docs[p] == d:
                t = np.float64(tf[p])
                w = idf[j] * (t * k1p1 / (t + nd))
                if cnt[j] > 1:
                    w = w * cnt[j]
                contrib[canon[j]] = w
                s += w
                pos[j] = p + 1
        ok = True
        for j in range(m - 1, -1, -1):
            if (s + pre[j + 1]) * (1.0 + slack) < theta:
                ok = False
                break
            p = _seek(docs, pos[j], ends[j], d)
            pos[j] = p
            if p < ends[j] and docs[p] == d:
                t = np.float64(tf[p])
                w = idf[j] * (t * k1p1 / (t + nd))
                if cnt[j] > 1:
                    w = w * cnt[j]
                contrib[canon[j]] = w
                s += w
        if not ok:
            continue
        exact = 0.0
        for c in range(m_terms):
            exact += contrib[c]
        if n == k and exact <= heap_s[0] and not (exact == heap_s[0] and d + base < heap_r[0]):
            continue
        n = _push(heap_s, heap_r, n, k, exact, d + base)
        if n == k:
            theta = heap_s[0]
            while m < m_terms and pre[m + 1] < theta:
                m += 1
    return n
