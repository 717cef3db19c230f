"""Sparse BM25: the lexical half of the hybrid index (a package: each module one job).

Scores are exactly rank-bm25's ``BM25Okapi`` (Trotman et al.'s ATIRE-style formula with
rank-bm25's idf floor), to float64 rounding::

    idf(t)      = ln(N - df + 0.5) - ln(df + 0.5)
                  (a negative idf is replaced by epsilon * mean idf over the vocabulary)
    score(q, d) = sum over query tokens t (repeats count) of
                  idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))

How it works. The term frequencies are kept as a CSC matrix (documents x terms): the
postings of term ``t`` are ``indices[indptr[t]:indptr[t+1]]`` (rows, ascending) with
``tf`` beside them. Beside that lies ``weights``, the precomputed per-(term, document)
score above. A query gathers the weight slices of its terms and sums them with
``np.bincount``; when the matched postings are few compared to the corpus, candidates
are collected with ``np.unique`` and nothing of corpus size is touched, so query time
grows with the number of matching postings. Top-k uses ``np.argpartition``; ties are
broken by the lower row, so results are deterministic.

Why not bm25s inside. bm25s has the same sparse-matrix idea, but (1) none of its
variants reproduces ``BM25Okapi``: its "robertson" idf floors at 0 instead of at
``epsilon * mean idf`` and its tf part lacks the ``(k1 + 1)`` factor, so scores differ;
(2) it keeps only the precomputed scores, not the term frequencies, so it cannot add or
delete documents without rebuilding from the text; (3) we want row masks, tombstones
and an on-disk format whose version we check. The idea is ~300 lines of numpy/scipy,
so it is written here directly.

Adding and deleting. idf and avgdl depend on the whole corpus, so after
:meth:`BM25Index.add` or :meth:`BM25Index.delete` every weight may change. The index
keeps ``tf`` and ``doc_len``, merges the postings in O(nnz) (no sort) and marks the
weights stale; the next query recomputes them, vectorized, in O(nnz) (about 1 s per
50M postings). Batch your changes: one ``add`` of 10k documents costs the same as one
of a single document. After any sequence of adds and deletes, the scores equal a fresh
build on the live documents. Deleted rows are tombstones: they keep their row number
(row ``i`` stays row ``i``, so an id map kept beside the index stays valid), lose their
postings, never match, and are not counted in N or avgdl. :meth:`BM25Index.compact`
renumbers the rows when you want the space back.

On disk (:meth:`BM25Index.save`): ``bm25.json`` (format, version, params, analyzer,
shapes and dtypes), ``vocab.json`` (the terms, in term-id order) and one ``.npy`` per
array, read back with ``allow_pickle=False`` and, by default, memory-mapped.

Thread safety: concurrent searches are safe; ``add``/``delete``/``compact`` must not run
while another thread searches.
Modules: :mod:`.params` (BM25 parameters), :mod:`.core` (:class:`BM25Index`: build,
score, add, delete, compact), :mod:`.kernel` (term counting and top-k selection) and
:mod:`.persist` (the on-disk format: save, checked load).
"""

from __future__ import annotations

from .core import BM25Index
from .params import BM25Params
from .persist import _ARRAYS, BM25_FORMAT, BM25_FORMAT_VERSION  # noqa: F401 - _ARRAYS: medrag.index lists the files

__all__ = ["BM25Params", "BM25Index", "BM25_FORMAT", "BM25_FORMAT_VERSION"]
