"""Global BM25 statistics across segments, so a segmented store scores exactly like one
index built over all its live documents.

rank-bm25's ``BM25Okapi`` (and medrag's ``BM25Index``) score with::

    idf(t) = ln(N - df + 0.5) - ln(df + 0.5), a negative idf replaced by epsilon * mean idf
    score(q, d) = sum over query tokens of idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))

N (live documents) and avgdl are sums over segments. df(t) is the sum of the segments'
df minus the documents deleted from each (tombstones record, per segment, how many
deleted documents had each term). The idf floor needs the mean idf over the whole live
vocabulary, which is a function of the histogram of global df values alone:
``mean = sum_v count(v) * idf(v) / sum_v count(v)``. The writer computes that histogram
at commit by merging the segments' sorted term lists (:func:`global_df_histogram`,
O(total terms), memory O(segments)), so no global term dictionary is kept. With numba
(``medrag[fast]``) the k-way merge runs compiled over the segments' memory-mapped term
blobs (:func:`segments_df_histogram`: a binary heap of one cursor per segment, terms
compared byte by byte; the same histogram as the Python ``heapq`` merge, tested).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["idf_values", "idf_floor", "global_df_histogram", "segments_df_histogram"]


def idf_values(df: np.ndarray, n: int) -> np.ndarray:
    """Raw rank-bm25 idf for document frequencies ``df`` in a corpus of ``n`` (float64)."""
    d = np.asarray(df, np.float64)
    return np.log(n - d + 0.5) - np.log(d + 0.5)


def idf_floor(df_hist: np.ndarray, n: int, epsilon: float) -> float:
    """``epsilon * mean idf`` over the live vocabulary, from its (df value, count) histogram.

    Summed in the same way as ``BM25Index`` does (``np.mean`` over per-term idfs) up to
    float rounding of the grouped sum.
    """
    vals, counts = df_hist[0], df_hist[1]
    if counts.sum() == 0:
        return 0.0
    idf = idf_values(vals, n)
    if counts.sum() < 5_000_000:  # per-term mean, as BM25Index takes it
        return epsilon * float(np.repeat(idf, counts).mean())
    return epsilon * float(np.dot(idf, counts.astype(np.float64)) / counts.sum())


def _live_terms(terms: Iterable[bytes], df: np.ndarray) -> Iterator[tuple[bytes, int]]:
    it = iter(terms)
    for lo in range(0, df.shape[0], 65536):  # df in blocks: memory O(block) per segment
        for d in df[lo : lo + 65536].tolist():
            t = next(it)
            if d > 0:
                yield t, d


def global_df_histogram(per_segment: Sequence[tuple[Iterable[bytes], np.ndarray]]) -> np.ndarray:
    """(2, h) int64: each global live df value and how many terms have it.

    ``per_segment`` is, for each segment, its sorted terms and their live df (df minus
    deleted documents). Terms are merged by a k-way merge of the sorted lists.
    """
    counts: dict[int, int] = {}
    cur: bytes | None = None
    acc = 0
    for t, d in heapq.merge(*(_live_terms(ts, df) for ts, df in per_segment)):
        if t != cur:
            if cur is not None:
                counts[acc] = counts.get(acc, 0) + 1
            cur, acc = t, 0
        acc += d
    if cur is not None:
        counts[acc] = counts.get(acc, 0) + 1
    keys = sorted(counts)
    return np.array([keys, [counts[k] for k in keys]], np.int64).reshape(2, -1)


def _hist_from_values(vals: np.ndarray) -> np.ndarray:
    keys, counts = np.unique(vals, return_counts=True)
    return np.stack([keys.astype(np.int64), counts.astype(np.int64)]).reshape(2, -1)


def segments_df_histogram(segments: Sequence[Any], dfs: Sequence[np.ndarray], chunk_terms: int = 1 << 20) -> np.ndarray:
    """:func:`global_df_histogram` of segments (format.Segment: sorted term blobs and
    offsets) with live df ``dfs[i]`` (int64, one per term of segment ``i``; 0 = every
    document with the term deleted).

    With numba, a compiled k-way merge (kernel_terms.kway_df) over ranges of the term space:
    split points are taken from the largest segment's terms about every
    ``chunk_terms / len(segments)`` terms, each segment's slice of a range is found by
    binary search and copied into one flat buffer, and the runs are merged there (no
    per-segment array lookups in the hot loop). Memory: the global df values of one
    range plus its copied terms (about ``chunk_terms`` terms), besides the memory-mapped
    inputs. Without numba, the Python ``heapq`` merge."""
    from . import _jit, kernel_terms

    if len(segments) != len(dfs):
        raise ValueError("one df array per segment")
    dfs = [np.asarray(d, np.int64) for d in dfs]
    for s, d in zip(segments, dfs):
        if d.shape != (s.n_terms,):
            raise ValueError(f"{s.path}: {d.shape[0]} df values for {s.n_terms} terms")
    if not _jit.HAVE_NUMBA:
        return global_df_histogram([(s.iter_terms(), d) for s, d in zip(segments, dfs)])
    _jit.ensure_compiled()
    segs = [(s, d) for s, d in zip(segments, dfs) if s.n_terms]
    if not segs:
        return np.zeros((2, 0), np.int64)
    blobs = [np.asarray(s._terms_blob, np.uint8) for s, _ in segs]
    offs = [np.asarray(s.term_off, np.int64) if s.n_terms < (1 << 16) else s.term_off for s, _ in segs]
    big = max(range(len(segs)), key=lambda i: segs[i][0].n_terms)
    step = max(1, chunk_terms // len(segs))
    splits = [blobs[big][int(offs[big][t]) : int(offs[big][t + 1])].copy() for t in range(step, segs[big][0].n_terms, step)]
    lo = [0] * len(segs)
    values = []
    for j in range(len(splits) + 1):
        hi = [
            int(kernel_terms.lower_bound(blobs[i], offs[i], splits[j])) if j < len(splits) else segs[i][0].n_terms
            for i in range(len(segs))
        ]
        parts_b, parts_o, parts_d, ends = [], [], [], []
        pos = n = 0
        for i in range(len(segs)):
            a, e = lo[i], hi[i]
            if e <= a:
                ends.append(n)
                continue
            o = np.asarray(offs[i][a : e + 1], np.int64)
            parts_b.append(blobs[i][int(o[0]) : int(o[-1])])
            parts_o.append(o[:-1] - o[0] + pos)
            parts_d.append(segs[i][1][a:e])
            pos += int(o[-1] - o[0])
            n += e - a
            ends.append(n)
        lo = hi
        if n == 0:
            continue
        blob = np.concatenate(parts_b) if parts_b else np.zeros(0, np.uint8)
        off = np.concatenate(parts_o + [np.asarray([pos], np.int64)])
        out = np.empty(n, np.int64)
        m = kernel_terms.kway_df(blob, off, np.concatenate(parts_d), np.asarray(ends, np.int64), out)
        values.append(out[:m])
    if not values:
        return np.zeros((2, 0), np.int64)
    return _hist_from_values(np.concatenate(values))
