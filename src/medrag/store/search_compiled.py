"""The compiled scoring path of :class:`~medrag.store.search.StoreSearcher` (numba).

Both modes run the kernels of kernel.py segment by segment in row order with one
top-k heap (its threshold carries from one segment to the next). With ``threads > 1``
the segments are dealt round-robin to that many groups (so each group spans the
corpus), scored on a process-wide thread pool (the kernels release the GIL), one heap
per group, and the heaps merged; the groups of a MaxScore query share one threshold
(kernel.py), which is exact and lets a group skip what another group's k best already
rule out.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from . import kernel
from .format import BLOCK
from .views import SLACK, _Term

if TYPE_CHECKING:
    from .search import StoreSearcher

__all__ = ["compiled"]

_NO_BOOL = np.zeros(1, bool)  # stands for "no tombstones" / "no mask" in the kernels
_ONE_BLOCK = 1 << 62  # block size that puts every posting of a term in block 0
_WINDOW = 4096  # rows per window of the block-max MaxScore kernel
# thread groups share one MaxScore threshold (kernel.py); False (one per group) only
# for paired benchmarks (benchmarks/bench_scale.py's "@Nu" modes)
SHARE_THRESHOLD = True


def compiled(
    st: "StoreSearcher", terms: list[_Term], k: int, mask: np.ndarray | None, prune: bool, threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Both modes through the compiled kernels (module docstring): ``(rows, scores)``,
    best first, ties to the lower row."""
    kernel.ensure_compiled()
    by_seg = _by_segment(terms)
    seg_ids = sorted(by_seg)
    groups = [seg_ids[j::threads] for j in range(min(threads, len(seg_ids)))]
    if len(groups) <= 1:
        rows, sc = _group(st, seg_ids, by_seg, k, mask, prune, np.full(1, -np.inf))
    else:
        shared = np.full(1, -np.inf)  # the groups' common threshold (kernel.window_segment)
        args = [(g, shared if SHARE_THRESHOLD else np.full(1, -np.inf)) for g in groups]
        parts = list(_pool(len(groups)).map(lambda a: _group(st, a[0], by_seg, k, mask, prune, a[1]), args))
        rows = np.concatenate([p[0] for p in parts])
        sc = np.concatenate([p[1] for p in parts])
    order = np.lexsort((rows, -sc))[:k]
    return rows[order].copy(), sc[order].copy()


def _by_segment(terms: list[_Term]) -> dict[int, list[tuple[_Term, int, int, int]]]:
    """Per segment index: (term, local term id, first posting, end) of the query terms
    it has, in canonical term order."""
    by_seg: dict[int, list[tuple[_Term, int, int, int]]] = {}
    for t in terms:  # canonical order
        for i, g, a, e in t.where:
            by_seg.setdefault(i, []).append((t, g, a, e))
    return by_seg


def _group(
    st: "StoreSearcher",
    seg_ids: list[int],
    by_seg: dict[int, list[tuple[_Term, int, int, int]]],
    k: int,
    mask: np.ndarray | None,
    prune: bool,
    shared: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The top-k (unsorted) of the segments ``seg_ids``, in row order, one heap; with
    ``shared`` raised by other groups, a heap that may miss what the other groups'
    k best rule out (never a row of the global top k)."""
    heap_s = np.zeros(k, np.float64)
    heap_r = np.zeros(k, np.int64)
    n = 0
    k1, b = st.params.k1, st.params.b
    for i in seg_ids:
        lst = by_seg[i]
        s = st._segs[i]
        seg = s.seg
        norm = st._norm(s)
        live = s.alive if s.alive is not None else _NO_BOOL
        m = mask[s.base : s.base + seg.n_docs] if mask is not None else _NO_BOOL
        starts = np.fromiter((a for _t, _g, a, _e in lst), np.int64, len(lst))
        ends = np.fromiter((e for _t, _g, _a, e in lst), np.int64, len(lst))
        idf = np.fromiter((t.idf for t, _g, _a, _e in lst), np.float64, len(lst))
        cnt = np.fromiter((t.count for t, _g, _a, _e in lst), np.int64, len(lst))
        if not prune:
            acc, flag, touched = kernel.scratch(seg.n_docs)
            n = kernel.exact_segment(
                seg.docs, seg.tf, starts, ends, idf, cnt, norm, k1 + 1, live, s.alive is not None,
                m, mask is not None, acc, flag, touched, heap_s, heap_r, n, k, s.base,
            )  # fmt: skip
            continue
        bp = seg.bound
        gs = np.fromiter((g for _t, g, _a, _e in lst), np.int64, len(lst))
        if bp["k1"] == k1 and bp["b"] == b and bp["avgdl"] > 0:
            scale = max(1.0, st.avgdl / bp["avgdl"])
            if seg.block_max is not None:
                bm, bm_base, block = seg.block_max, seg.post_ptr[gs].astype(np.int64) // BLOCK + gs, BLOCK
            else:
                bm, bm_base, block = seg.max_w, gs, _ONE_BLOCK
            tmax = seg.max_w[gs].astype(np.float64)
        else:  # bounds computed with other parameters: the supremum k1 + 1
            scale, block = 1.0, _ONE_BLOCK
            bm, bm_base = np.full(1, k1 + 1, np.float32), np.zeros(len(lst), np.int64)
            tmax = np.full(len(lst), k1 + 1)
        bscale = idf * cnt * scale * (1 + SLACK)
        ub = bscale * tmax  # this segment's bound per term
        order = np.argsort(ub, kind="stable")  # order[j]: canonical position of the j-th
        n = kernel.window_segment(
            seg.docs, seg.tf, starts[order], ends[order], idf[order], cnt[order], ub[order],
            bscale[order], bm, bm_base[order], block, order, norm, k1 + 1,
            live, s.alive is not None, m, mask is not None, heap_s, heap_r, n, k, s.base, SLACK, _WINDOW,
            shared,
        )  # fmt: skip
    return heap_r[:n].copy(), heap_s[:n].copy()


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``n`` threads for segment groups (created once per size)."""
    with _POOLS_LOCK:
        p = _POOLS.get(n)
        if p is None:
            p = _POOLS[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="medrag-store")
        return p

