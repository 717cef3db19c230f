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

:func:`window_segment`
    Block-max MaxScore (H. Turtle and J. Flood, "Query evaluation: strategies and
    optimizations", IP&M 31(6), 1995; with the block-max upper bounds of S. Ding and
    T. Suel, "Faster top-k document retrieval using block-max indexes", SIGIR 2011), in
    the windowed form of Lucene's ``MaxScoreBulkScorer``. Terms are ordered by their
    upper bound over the segment; the longest prefix of low-bound terms whose bounds
    sum below the heap's threshold ``theta`` is *non-essential*: a document that has
    only those terms cannot enter the top k. Rows are processed in windows of
    ``width`` (4,096) starting at the next row of an essential term; per window, the
    bounds are tightened to the largest block-max (format.py: 128 postings per block)
    of each term's blocks that overlap the window, which makes more terms
    non-essential. The essential terms' postings in the window are accumulated term at
    a time into a window-sized buffer (as the exhaustive kernel does); each hit row
    whose partial score plus the non-essential bounds can still reach ``theta`` looks
    the non-essential terms up (galloping search, forward only), dropping out as soon
    as the partial score plus the remaining bounds falls below ``theta``. A survivor
    is re-scored with every term, summed in canonical term order, so the heap holds
    the exhaustive kernel's scores and the top k (ties to the lower row) is identical:
    safe by construction, every pruning test comparing an upper bound (float32
    bounds rounded up, a relative slack of 1e-9 for summation order) with ``theta``.

Thread groups (search_compiled.py, ``threads > 1``: segments dealt round-robin to
groups, one heap per group, the heaps merged) share one threshold, ``shared[0]``, as
parallel Lucene searches share their minimum competitive score (``MaxScoreAccumulator``):
the k documents in any group's full heap score at least that heap's k-th best, so it
is a lower bound of the global k-th best, and every group may prune with the largest
of them; a document of the global top k is never pruned (its bound is at least its
score, at least the global k-th best) and stays in its own group's heap, so the union
of the heaps still holds the exact top k. A group raises ``shared[0]`` whenever its
heap's k-th best passes it and reads it at every window. Reads and writes are plain,
not atomic (aligned float64 accesses, which do not tear): two groups racing may lose
the larger value, which leaves a lower, still valid bound; the pruning then depends
on timing, the result does not.

The term-dictionary kernels (term lookup, the k-way df merge of a commit) are in
kernel_terms.py; this module's ``find_terms``, ``kway_df`` and ``lower_bound`` are
theirs. Without numba, :data:`HAVE_NUMBA` is False and ``StoreSearcher`` uses its
numpy paths, which return the same rows and scores (tests/test_store_kernel.py checks
both). Kernels are compiled on first use (_jit.py).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from . import kernel_terms
from ._jit import HAVE_NUMBA, ensure_compiled, jit, readonly

__all__ = [
    "HAVE_NUMBA", "count_common", "ensure_compiled", "exact_segment", "find_terms", "kway_df", "lower_bound", "readonly",
    "scratch", "window_segment",
]  # fmt: skip

_TERM_KERNELS = ("find_terms", "kway_df", "lower_bound")


def __getattr__(name: str) -> Any:
    """The term-dictionary kernels, looked up in kernel_terms.py at each access (the
    numba dispatcher once :func:`ensure_compiled` ran, the plain function before)."""
    if name in _TERM_KERNELS:
        return getattr(kernel_terms, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


@jit
def _better(s, r, hs, hr):  # type: ignore[no-untyped-def]
    # (s, r) ranks above (hs, hr): higher score, ties to the lower row
    return s > hs or (s == hs and r < hr)


@jit
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


@jit
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


@jit
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


@jit
def count_common(docs, a, e, keys):  # type: ignore[no-untyped-def]
    """How many of the sorted, distinct ``keys`` occur in the sorted postings
    ``docs[a:e]``: a forward galloping merge, O(len(keys) x log(gap)) reads (the
    pending-deleted rows among a term's postings: index/storepending.py)."""
    p = a
    n = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        if p >= e:
            break
        if docs[p] < k:  # gallop to the first row >= k
            lo = p
            step = 1
            while lo + step < e and docs[lo + step] < k:
                lo += step
                step *= 2
            hi = lo + step
            if hi > e:
                hi = e
            lo += 1
            while lo < hi:
                mid = (lo + hi) // 2
                if docs[mid] < k:
                    lo = mid + 1
                else:
                    hi = mid
            p = lo
        if p < e and docs[p] == k:
            n += 1
            p += 1
    return n


@jit
def window_segment(  # type: ignore[no-untyped-def]
    docs, tf, starts, ends, idf, cnt, ub, bscale, bm, bm_base, block, canon,
    norm, k1p1, live, use_live, mask, use_mask, heap_s, heap_r, heap_n, k, base, slack, width, shared,
):  # fmt: skip
    """Block-max MaxScore over windows of ``width`` rows (module docstring). Terms come
    sorted by ``ub`` (their bound over the segment) ascending; ``canon[j]`` is term j's
    position in canonical order; ``bscale[j]`` turns a stored bound into a score bound
    (idf, count, avgdl scaling, slack); term j's block b is ``bm[bm_base[j] + b]``,
    covering its postings ``starts[j] + b * block ...``. ``shared[0]`` is the threshold
    shared with the other thread groups of the query (module docstring; ``-inf`` when
    alone): read at every window, raised whenever this heap's k-th best passes it.
    Returns the heap's new size.

    The galloping searches and the window bounds are written out in the loops instead
    of calling :func:`_seek` (or a window-bound helper): numba passes an array to a called
    function with an atomic reference count increment and decrement, which cost more
    than the search itself (measured: 1.5-2x the whole kernel at 10M)."""
    nt = starts.shape[0]
    pos = starts.copy()  # cursors of the essential pass and the non-essential seeks
    pos2 = starts.copy()  # cursors of the canonical re-scoring
    bcur = np.zeros(nt, np.int64)
    pre = np.zeros(nt + 1)
    for j in range(nt):
        pre[j + 1] = pre[j] + ub[j]
    wpre = np.zeros(nt + 1)
    acc = np.zeros(width)
    hit = np.zeros(width, np.uint8)
    contrib = np.zeros(nt)
    n = heap_n
    theta = heap_s[0] if n == k else -np.inf
    if theta > shared[0]:
        shared[0] = theta
    while True:
        sh = shared[0]  # another group's k-th best: a lower bound of the global k-th best
        if sh > theta:
            theta = sh
        m = 0
        while m < nt and pre[m + 1] < theta:
            m += 1
        if m == nt:
            break
        ws = np.int64(-1)  # the window starts at the next row of an essential term
        for j in range(m, nt):
            if pos[j] < ends[j]:
                x = np.int64(docs[pos[j]])
                if ws < 0 or x < ws:
                    ws = x
        if ws < 0:
            break
        we = ws + width
        mw = 0  # non-essential in this window, by the window's block-max bounds
        if theta > -np.inf:
            for j in range(nt):
                # the largest stored bound of term j's blocks holding a row in [ws, we)
                s0 = starts[j]
                e0 = ends[j]
                b = bcur[j]
                while True:  # skip blocks that end before ws
                    lo = s0 + b * block
                    if lo >= e0:
                        break
                    hi = lo + block
                    if hi > e0:
                        hi = e0
                    if docs[hi - 1] >= ws:
                        break
                    b += 1
                bcur[j] = b
                best = 0.0
                while True:
                    lo = s0 + b * block
                    if lo >= e0 or docs[lo] >= we:
                        break
                    v = bm[bm_base[j] + b]
                    if v > best:
                        best = v
                    b += 1
                wpre[j + 1] = wpre[j] + best * bscale[j]
            while mw < nt and wpre[mw + 1] * (1.0 + slack) < theta:
                mw += 1
        else:
            for j in range(nt):
                wpre[j + 1] = pre[j + 1]
        any_hit = False
        for j in range(mw, nt):  # essential terms: every posting in the window
            p = pos[j]
            e = ends[j]
            if p < e and docs[p] < ws:  # gallop to the first row >= ws
                lo = p
                step = 1
                while lo + step < e and docs[lo + step] < ws:
                    lo += step
                    step *= 2
                hi = lo + step
                if hi > e:
                    hi = e
                lo += 1
                while lo < hi:
                    mid = (lo + hi) // 2
                    if docs[mid] < ws:
                        lo = mid + 1
                    else:
                        hi = mid
                p = lo
            w_idf = idf[j]
            c = cnt[j]
            while p < e:
                d = np.int64(docs[p])
                if d >= we:
                    break
                if not (use_live and not live[d]):
                    t = np.float64(tf[p])
                    w = w_idf * (t * k1p1 / (t + norm[d]))
                    if c > 1:
                        w = w * c
                    acc[d - ws] += w
                    hit[d - ws] = 1
                    any_hit = True
                p += 1
            pos[j] = p
        for x in range(width if any_hit else 0):
            if hit[x] == 0:
                continue
            s = acc[x]
            acc[x] = 0.0
            hit[x] = 0
            d = ws + x
            if use_mask and not mask[d]:
                continue
            if (s + wpre[mw]) * (1.0 + slack) < theta:
                continue
            ok = True
            for j in range(mw - 1, -1, -1):  # non-essential: look up while they can matter
                if (s + wpre[j + 1]) * (1.0 + slack) < theta:
                    ok = False
                    break
                p = pos[j]
                e = ends[j]
                if p < e and docs[p] < d:  # gallop to the first row >= d
                    lo = p
                    step = 1
                    while lo + step < e and docs[lo + step] < d:
                        lo += step
                        step *= 2
                    hi = lo + step
                    if hi > e:
                        hi = e
                    lo += 1
                    while lo < hi:
                        mid = (lo + hi) // 2
                        if docs[mid] < d:
                            lo = mid + 1
                        else:
                            hi = mid
                    p = lo
                pos[j] = p
                if p < e and docs[p] == d:
                    t = np.float64(tf[p])
                    w = idf[j] * (t * k1p1 / (t + norm[d]))
                    if cnt[j] > 1:
                        w = w * cnt[j]
                    s += w
            if not ok:
                continue
            if s * (1.0 + slack) < theta:
                continue
            # the exact score, summed in canonical term order (rare: a plain call is fine)
            for j in range(nt):
                contrib[canon[j]] = 0.0
                p = _seek(docs, pos2[j], ends[j], d)
                pos2[j] = p
                if p < ends[j] and docs[p] == d:
                    t = np.float64(tf[p])
                    w = idf[j] * (t * k1p1 / (t + norm[d]))
                    if cnt[j] > 1:
                        w = w * cnt[j]
                    contrib[canon[j]] = w
            exact = 0.0
            for cc in range(nt):
                exact += contrib[cc]
            if n == k and exact <= heap_s[0] and not (exact == heap_s[0] and d + base < heap_r[0]):
                continue
            n = _push(heap_s, heap_r, n, k, exact, d + base)
            if n == k and heap_s[0] > theta:
                theta = heap_s[0]
                if theta > shared[0]:
                    shared[0] = theta
        for j in range(mw):  # the window is done: every cursor moves past it
            p = pos[j]
            e = ends[j]
            if p < e and docs[p] < we:
                lo = p
                step = 1
                while lo + step < e and docs[lo + step] < we:
                    lo += step
                    step *= 2
                hi = lo + step
                if hi > e:
                    hi = e
                lo += 1
                while lo < hi:
                    mid = (lo + hi) // 2
                    if docs[mid] < we:
                        lo = mid + 1
                    else:
                        hi = mid
                p = lo
            pos[j] = p
    return n
