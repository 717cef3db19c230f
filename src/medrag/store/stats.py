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
O(total terms), memory O(segments)), so no global term dictionary is kept.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

__all__ = ["idf_values", "idf_floor", "global_df_histogram"]


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
