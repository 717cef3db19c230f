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

Without numba, :data:`HAVE_NUMBA` is False and ``StoreSearcher`` uses its numpy paths,
which return the same rows and scores (tests/test_store_kernel.py checks both).
Compiled with ``cache=True`` (the machine code is cached beside this file, or in
numba's user cache directory when this one is not writable); ``nogil=True``, so
queries in several threads run in parallel.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["HAVE_NUMBA", "ensure_compiled", "exact_segment", "find_terms", "kway_df", "scratch", "window_segment"]

try:  # the optional extra medrag[fast]
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None
    HAVE_NUMBA = False


_PLAIN: dict[str, object] = {}
_INLINE: set[str] = set()  # helpers inlined into their callers (numba inline="always")
_READY = False
_READY_LOCK = threading.Lock()


def _jit(f):  # type: ignore[no-untyped-def]
    """Register a kernel; :func:`ensure_compiled` wraps it with numba on first use.

    Not at import: numba's on-disk cache setup creates ``__pycache__`` and probes it with
    a temporary file when a function is decorated, and importing medrag writes nothing.
    """
    _PLAIN[f.__name__] = f
    return f


def _jit_inline(f):  # type: ignore[no-untyped-def]
    """:func:`_jit` for a small helper that numba inlines into its callers: a call to a
    separately compiled function passes every array argument with an atomic reference
    count increment and decrement (NRT), which cost more than the helper itself in the
    hot loops here."""
    _INLINE.add(f.__name__)
    return _jit(f)


def ensure_compiled() -> None:
    """Replace every registered kernel in this module by its numba dispatcher (once,
    thread-safe; compilation itself happens at each kernel's first call, which then
    resolves the other kernels it calls to their dispatchers). No-op without numba."""
    global _READY
    if _READY or not HAVE_NUMBA:
        return
    with _READY_LOCK:
        if not _READY:
            g = globals()
            for name, f in _PLAIN.items():
                if name in _INLINE:
                    g[name] = numba.njit(cache=True, nogil=True, inline="always")(f)
                else:
                    g[name] = numba.njit(cache=True, nogil=True)(f)
            _READY = True


_local = threading.local()


def readonly(a: np.ndarray) -> np.ndarray:
    """``a`` as a read-only, C-contiguous view (memory-mapped arrays are read-only, and
    a numba typed list needs one array type for every segment)."""
    a = np.ascontiguousarray(a)
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


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
def window_segment(  # type: ignore[no-untyped-def]
    docs, tf, starts, ends, idf, cnt, ub, bscale, bm, bm_base, block, canon,
    norm, k1p1, live, use_live, mask, use_mask, heap_s, heap_r, heap_n, k, base, slack, width,
):  # fmt: skip
    """Block-max MaxScore over windows of ``width`` rows (module docstring). Terms come
    sorted by ``ub`` (their bound over the segment) ascending; ``canon[j]`` is term j's
    position in canonical order; ``bscale[j]`` turns a stored bound into a score bound
    (idf, count, avgdl scaling, slack); term j's block b is ``bm[bm_base[j] + b]``,
    covering its postings ``starts[j] + b * block ...``. Returns the heap's new size.

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
    while True:
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
        if n == k:
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
            if n == k and (s + wpre[mw]) * (1.0 + slack) < theta:
                continue
            ok = True
            for j in range(mw - 1, -1, -1):  # non-essential: look up while they can matter
                if n == k and (s + wpre[j + 1]) * (1.0 + slack) < theta:
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
            if n == k and s * (1.0 + slack) < theta:
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
            if n == k:
                theta = heap_s[0]
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


# ---------------------------------------------------------------------- global df


@_jit
def _term_cmp(ba, a0, a1, bb, b0, b1):  # type: ignore[no-untyped-def]
    """-1, 0, 1 as bytes ``ba[a0:a1]`` sorts before, equal to, after ``bb[b0:b1]``."""
    la = a1 - a0
    lb = b1 - b0
    n = la if la < lb else lb
    for i in range(n):
        x = ba[a0 + i]
        y = bb[b0 + i]
        if x != y:
            return -1 if x < y else 1
    if la == lb:
        return 0
    return -1 if la < lb else 1


@_jit
def lower_bound(blob, off, key):  # type: ignore[no-untyped-def]
    """The first term index t of a sorted term list (``blob[off[t]:off[t + 1]]``) that
    is not before ``key`` (uint8 array) in bytes order."""
    lo = 0
    hi = off.shape[0] - 1
    n = key.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if _term_cmp(blob, off[mid], off[mid + 1], key, 0, n) < 0:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def _prefix(blob, a0, n, lo):  # type: ignore[no-untyped-def]
    """Bytes ``lo .. lo + 7`` of the term ``blob[a0:a0 + n]`` as a big-endian uint64,
    zero padded."""
    x = np.uint64(0)
    for q in range(lo, lo + 8):
        x = x << np.uint64(8)
        if q < n:
            x = x | np.uint64(blob[a0 + q])
    return x


@_jit
def _key_order(a1, b1, l1, a2, b2, l2):  # type: ignore[no-untyped-def]
    """Order of two terms from their 16-byte prefixes and lengths: -1, 0, 1, or 2 when
    only a full comparison can tell (both longer than 16 bytes, prefixes equal). Scalars
    only: numba passes arrays to a called function with atomic reference counting,
    which would dominate this loop."""
    if a1 != a2:
        return -1 if a1 < a2 else 1
    if b1 != b2:
        return -1 if b1 < b2 else 1
    if l1 <= 16 or l2 <= 16:  # the shorter term is whole in its prefix
        if l1 == l2:
            return 0
        return -1 if l1 < l2 else 1
    return 2


@_jit
def kway_df(blob, off, df, run_end, out):  # type: ignore[no-untyped-def]
    """k-way merge of sorted runs of terms: term t is ``blob[off[t]:off[t + 1]]`` with
    document frequency ``df[t]``; run r holds terms ``run_end[r - 1] .. run_end[r] - 1``
    (``run_end[-1]`` = 0), each run sorted and unique. Writes the summed df of every
    distinct term whose sum is > 0 into ``out`` (in term order); returns how many. A
    binary heap holds one cursor per run, keyed by 16-byte term prefixes; slot k holds
    the current group's term. No array is passed to a helper in the loop (see
    :func:`_key_order`)."""
    k = run_end.shape[0]
    cur = np.zeros(k + 1, np.int64)
    ka = np.zeros(k + 1, np.uint64)
    kb = np.zeros(k + 1, np.uint64)
    kl = np.zeros(k + 1, np.int64)
    heap = np.zeros(k + 1, np.int64)
    hn = 0
    m = 0
    have = False
    acc = 0
    # phase 0 pushes every run (sift up); then each step pops the root run's term
    r = 0
    while True:
        if r < k:  # heapify: load run r's first term and sift it up
            c = run_end[r - 1] if r > 0 else 0
            if c >= run_end[r]:
                r += 1
                continue
            cur[r] = c
            a0 = off[c]
            n = off[c + 1] - a0
            ka[r] = _prefix(blob, a0, n, 0)
            kb[r] = _prefix(blob, a0, n, 8)
            kl[r] = n
            heap[hn] = r
            i = hn
            hn += 1
            while i > 0:
                pa = (i - 1) // 2
                x = heap[i]
                y = heap[pa]
                o = _key_order(ka[x], kb[x], kl[x], ka[y], kb[y], kl[y])
                if o == 2:
                    o = _full_cmp(blob, off, cur[x], cur[y])
                if o < 0:
                    heap[i] = y
                    heap[pa] = x
                    i = pa
                else:
                    break
            r += 1
            continue
        if hn == 0:
            break
        x = heap[0]
        c = cur[x]
        same = False
        if have:
            o = _key_order(ka[x], kb[x], kl[x], ka[k], kb[k], kl[k])
            if o == 2:
                o = _full_cmp(blob, off, c, cur[k])
            same = o == 0
        if same:
            acc += df[c]
        else:
            if have and acc > 0:
                out[m] = acc
                m += 1
            have = True
            cur[k] = c
            ka[k] = ka[x]
            kb[k] = kb[x]
            kl[k] = kl[x]
            acc = df[c]
        c += 1
        cur[x] = c
        if c >= run_end[x]:  # run x is exhausted: the last cursor takes the root
            hn -= 1
            heap[0] = heap[hn]
        else:
            a0 = off[c]
            n = off[c + 1] - a0
            ka[x] = _prefix(blob, a0, n, 0)
            kb[x] = _prefix(blob, a0, n, 8)
            kl[x] = n
        i = 0  # sift the root down
        while True:
            a = 2 * i + 1
            if a >= hn:
                break
            ch = a
            if a + 1 < hn:
                u = heap[a + 1]
                v = heap[a]
                o = _key_order(ka[u], kb[u], kl[u], ka[v], kb[v], kl[v])
                if o == 2:
                    o = _full_cmp(blob, off, cur[u], cur[v])
                if o < 0:
                    ch = a + 1
            u = heap[ch]
            v = heap[i]
            o = _key_order(ka[u], kb[u], kl[u], ka[v], kb[v], kl[v])
            if o == 2:
                o = _full_cmp(blob, off, cur[u], cur[v])
            if o < 0:
                heap[ch] = v
                heap[i] = u
                i = ch
            else:
                break
    if have and acc > 0:
        out[m] = acc
        m += 1
    return m


@_jit
def _full_cmp(blob, off, t, u):  # type: ignore[no-untyped-def]
    """Order (-1, 0, 1) of terms t and u of one blob, byte by byte (the rare case)."""
    return _term_cmp(blob, off[t], off[t + 1], blob, off[u], off[u + 1])


@_jit
def find_terms(blobs, offs, ptrs, qblob, qoff, out):  # type: ignore[no-untyped-def]
    """Look the query terms (``qblob[qoff[q]:qoff[q + 1]]``, UTF-8) up in every segment
    (``blobs[i]``, ``offs[i]``: its sorted term blob and offsets; ``ptrs[i]``: its
    post_ptr) by binary search: ``out[i, q]`` = (term id, first posting, end), term id
    -1 where segment i lacks the term. One call per query instead of one Python lookup
    per segment and term."""
    nq = qoff.shape[0] - 1
    for i in range(len(blobs)):
        blob = blobs[i]
        off = offs[i]
        ptr = ptrs[i]
        nt = off.shape[0] - 1
        for q in range(nq):
            q0 = qoff[q]
            q1 = qoff[q + 1]
            lo = 0
            hi = nt
            while lo < hi:
                mid = (lo + hi) // 2
                if _term_cmp(blob, off[mid], off[mid + 1], qblob, q0, q1) < 0:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < nt and _term_cmp(blob, off[lo], off[lo + 1], qblob, q0, q1) == 0:
                out[i, q, 0] = lo
                out[i, q, 1] = ptr[lo]
                out[i, q, 2] = ptr[lo + 1]
            else:
                out[i, q, 0] = -1
