"""The :class:`BM25Index`: a CSC matrix of term frequencies with precomputed weights;
build, score, search, add, delete and compact (see the package docstring for the
formula and how it works)."""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ...errors import ConfigError
from ..analyzer import Analyzer
from . import persist
from .kernel import _count, _top_k
from .params import BM25Params, _check_tokens
from .persist import PathLike

__all__ = ["BM25Index"]

logger = logging.getLogger("medrag.retrieve.bm25")

_CHUNK = 1 << 23  # postings per block when recomputing weights (bounds temporaries)
_SPARSE_FACTOR = 8  # use the sparse path when postings * 8 < rows


class BM25Index:
    """A sparse BM25 index over rows ``0 .. n_rows - 1``.

    Build it with :meth:`from_token_lists`, :meth:`from_texts` or :meth:`from_tf_matrix`;
    reopen a saved one with :meth:`load`. Search with :meth:`search` (top-k) or
    :meth:`scores` (dense, every row).
    """

    def __init__(
        self,
        *,
        vocab: Sequence[str],
        indptr: np.ndarray,
        indices: np.ndarray,
        tf: np.ndarray,
        doc_len: np.ndarray,
        alive: np.ndarray,
        params: BM25Params | None = None,
        analyzer: Analyzer | None = None,
        weights: np.ndarray | None = None,
        term_order: np.ndarray | None = None,
        term_ids: dict[str, int] | None = None,
    ) -> None:
        """Low-level constructor over already-consistent CSC arrays; prefer the
        ``from_*`` class methods and :meth:`load`.

        ``term_order`` (term ids sorted by term) lets queries look terms up by binary
        search, so a loaded index needs no term -> id dict until it is changed;
        building that dict for a 1M-term vocabulary takes longer than the rest of
        :meth:`load`. ``term_ids`` is that dict when the caller already has it.
        """
        self._params = params if params is not None else BM25Params()
        self._analyzer = analyzer
        self._vocab: list[str] = list(vocab)  # a copy: add() extends it
        n_terms, nnz, n_rows = len(self._vocab), indices.shape[0], alive.shape[0]
        if (
            indptr.shape != (n_terms + 1,)
            or tf.shape != (nnz,)
            or doc_len.shape != (n_rows,)
            or (weights is not None and weights.shape != (nnz,))
            or (term_order is not None and term_order.shape != (n_terms,))
        ):
            raise ConfigError("BM25Index arrays have inconsistent shapes")
        self._term_id: dict[str, int] | None = None
        self._term_order = term_order
        if term_ids is not None:
            if len(term_ids) != len(self._vocab):
                raise ConfigError("term_ids does not match vocab")
            self._term_id = term_ids
        elif term_order is None:
            self._ensure_term_dict()
        self._indptr = indptr
        self._indices = indices
        self._tf = tf
        self._doc_len = doc_len
        self._alive = alive
        self._weights = weights
        self._idf: np.ndarray | None = None
        self._avgdl = 0.0
        self._lock = threading.Lock()
        if weights is not None:
            self._idf, self._avgdl = self._corpus_stats()

    # ------------------------------------------------------------------ building

    @classmethod
    def from_token_lists(
        cls,
        token_lists: Iterable[Sequence[str]],
        params: BM25Params | None = None,
        *,
        analyzer: Analyzer | None = None,
    ) -> "BM25Index":
        """Index pre-tokenized documents; row ``i`` is the ``i``-th token list.

        ``analyzer`` (optional) is only recorded, so that it is saved with the index;
        pass the one that produced the tokens.
        """
        t0 = time.perf_counter()
        vocab: dict[str, int] = {}
        tf_csc, doc_len = _count(token_lists, vocab)
        index = cls(
            vocab=list(vocab),
            term_ids=vocab,
            indptr=tf_csc.indptr.astype(np.int64, copy=False),
            indices=tf_csc.indices.astype(np.int32, copy=False),
            tf=tf_csc.data.astype(np.int32, copy=False),
            doc_len=doc_len,
            alive=np.ones(len(doc_len), dtype=bool),
            params=params,
            analyzer=analyzer,
        )
        index._ensure_weights()
        logger.debug(
            "built BM25 over %d rows, %d terms, %d postings in %.2fs",
            index.n_rows, index.n_terms, index.nnz, time.perf_counter() - t0,
        )  # fmt: skip
        return index

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        analyzer: Analyzer,
        params: BM25Params | None = None,
    ) -> "BM25Index":
        """Tokenize ``texts`` with ``analyzer`` and index them; the analyzer is saved."""
        return cls.from_token_lists(
            (analyzer.tokenize(t) for t in texts), params, analyzer=analyzer
        )

    @classmethod
    def from_tf_matrix(
        cls,
        tf: Any,
        vocab: Sequence[str],
        params: BM25Params | None = None,
        *,
        analyzer: Analyzer | None = None,
    ) -> "BM25Index":
        """Index a (rows x terms) sparse matrix of term counts; column ``j`` is
        ``vocab[j]`` and a row's length is the sum of its counts."""
        if not sp.issparse(tf):
            raise ConfigError("tf must be a scipy.sparse matrix (rows x terms)")
        n_rows, n_terms = tf.shape
        if n_terms != len(vocab):
            raise ConfigError(f"tf has {n_terms} columns but vocab has {len(vocab)} terms")
        csc = sp.csc_matrix(tf)
        csc.sum_duplicates()
        csc.eliminate_zeros()
        data = csc.data
        if data.size and (data.min() < 0 or not np.all(np.equal(np.mod(data, 1), 0))):
            raise ConfigError("tf must hold non-negative integer counts")
        doc_len = np.asarray(csc.sum(axis=1)).ravel().astype(np.int64)
        index = cls(
            vocab=vocab,
            indptr=csc.indptr.astype(np.int64),
            indices=csc.indices.astype(np.int32),
            tf=data.astype(np.int32),
            doc_len=doc_len,
            alive=np.ones(n_rows, dtype=bool),
            params=params,
            analyzer=analyzer,
        )
        index._ensure_weights()
        return index

    # ------------------------------------------------------------------ properties

    @property
    def params(self) -> BM25Params:
        return self._params

    @property
    def analyzer(self) -> Analyzer | None:
        """The analyzer recorded at build time (and saved), or None."""
        return self._analyzer

    @property
    def n_rows(self) -> int:
        """Rows, deleted ones included (the length of :meth:`scores` and of a mask)."""
        return int(self._alive.shape[0])

    @property
    def n_docs(self) -> int:
        """Live (not deleted) rows: BM25's N."""
        return int(np.count_nonzero(self._alive))

    @property
    def n_terms(self) -> int:
        return len(self._vocab)

    @property
    def nnz(self) -> int:
        """Stored postings."""
        return int(self._indices.shape[0])

    @property
    def alive(self) -> np.ndarray:
        """Boolean array over rows: False for deleted rows (a read-only view)."""
        v = self._alive.view()
        v.flags.writeable = False
        return v

    @property
    def avgdl(self) -> float:
        self._ensure_weights()
        return self._avgdl

    def idf(self, term: str) -> float:
        """The idf BM25 uses for ``term`` now (0.0 for a term no live row has)."""
        self._ensure_weights()
        ids = self._lookup([term])
        return 0.0 if not ids or self._idf is None else float(self._idf[ids[0]])

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        return (
            f"BM25Index(rows={self.n_rows}, docs={self.n_docs}, terms={self.n_terms}, "
            f"nnz={self.nnz}, params={self._params})"
        )

    # ------------------------------------------------------------------ scoring

    def _ensure_term_dict(self) -> dict[str, int]:
        d = self._term_id
        if d is None:
            d = dict(zip(self._vocab, range(len(self._vocab))))
            if len(d) != len(self._vocab):
                raise ConfigError("vocab has duplicate terms")
            self._term_id = d
        return d

    def _lookup(self, tokens: Sequence[str]) -> list[int]:
        """Term ids of the tokens that are in the vocabulary, in order."""
        d = self._term_id
        if d is not None:
            return [i for i in map(d.get, tokens) if i is not None]
        order, vocab = self._term_order, self._vocab
        if order is None:
            return [i for i in map(self._ensure_term_dict().get, tokens) if i is not None]
        n = len(order)
        out = []
        for t in tokens:
            j = bisect.bisect_left(order, t, key=vocab.__getitem__)
            if j < n and vocab[order[j]] == t:
                out.append(int(order[j]))
        return out

    def _corpus_stats(self) -> tuple[np.ndarray, float]:
        """idf per term and avgdl over the live rows, exactly as BM25Okapi computes them."""
        n = int(np.count_nonzero(self._alive))
        df = np.diff(self._indptr)
        present = df > 0
        idf = np.zeros(len(self._vocab), dtype=np.float64)
        dfp = df[present].astype(np.float64)
        idf[present] = np.log(n - dfp + 0.5) - np.log(dfp + 0.5)
        if dfp.size:
            floor = self._params.epsilon * float(idf[present].mean())
            idf[present & (idf < 0)] = floor
        total = int(self._doc_len[self._alive].sum()) if n else 0
        avgdl = total / n if n else 0.0
        return idf, avgdl

    def _ensure_weights(self) -> np.ndarray:
        w = self._weights
        if w is not None:
            return w
        with self._lock:
            if self._weights is not None:
                return self._weights
            t0 = time.perf_counter()
            idf, avgdl = self._corpus_stats()
            k1, b = self._params.k1, self._params.b
            nnz = self.nnz
            w = np.empty(nnz, dtype=np.float64)
            # per-row length normalization, same expression (and rounding) as rank-bm25
            norm = k1 * (1 - b + b * np.asarray(self._doc_len, np.float64) / avgdl) if nnz else None
            if nnz:
                term_of = np.repeat(
                    np.arange(len(self._vocab), dtype=np.int32), np.diff(self._indptr)
                )
                for s in range(0, nnz, _CHUNK):
                    e = min(s + _CHUNK, nnz)
                    tf = self._tf[s:e].astype(np.float64)
                    # same operation order as rank-bm25, for bit-for-bit-close scores
                    w[s:e] = idf[term_of[s:e]] * (tf * (k1 + 1) / (tf + norm[self._indices[s:e]]))
            self._idf, self._avgdl = idf, avgdl
            self._weights = w
            logger.debug("BM25 weights for %d postings in %.3fs", nnz, time.perf_counter() - t0)
            return w

    def _postings(self, query_tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows and weights of every posting of the query's terms (repeats weighted)."""
        _check_tokens(query_tokens, "query_tokens")
        ids = self._lookup(query_tokens)
        if not ids:
            return np.empty(0, np.int32), np.empty(0, np.float64)
        w = self._ensure_weights()
        terms, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
        indptr, indices = self._indptr, self._indices
        rows, vals = [], []
        for t, c in zip(terms.tolist(), counts.tolist()):
            s, e = int(indptr[t]), int(indptr[t + 1])
            if s == e:
                continue
            rows.append(indices[s:e])
            vals.append(w[s:e] * c if c > 1 else w[s:e])
        if not rows:
            return np.empty(0, np.int32), np.empty(0, np.float64)
        if len(rows) == 1:
            return np.asarray(rows[0]), np.asarray(vals[0])
        return np.concatenate(rows), np.concatenate(vals)

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every row (float64, length :attr:`n_rows`; 0 for deleted rows)."""
        rows, vals = self._postings(query_tokens)
        if rows.size == 0:
            return np.zeros(self.n_rows, dtype=np.float64)
        return np.bincount(rows, weights=vals, minlength=self.n_rows)

    def scores_of(self, query_tokens: Sequence[str], rows: np.ndarray) -> np.ndarray:
        """BM25 scores of ``rows`` (int row numbers), in their order: :meth:`scores`
        at those rows. The in-memory engine sums every posting of the query's terms
        (O(postings + rows)); the segmented store looks the rows up instead
        (``StoreSearcher.score_rows``)."""
        return self.scores(query_tokens)[np.asarray(rows, np.int64)]

    def search(
        self, query_tokens: Sequence[str], k: int = 10, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best rows that share at least one term with the query.

        Args:
            query_tokens: the analyzed query (``analyzer.tokenize(text)``); repeated
                tokens count again, as in rank-bm25.
            k: how many rows at most.
            mask: optional boolean array of length :attr:`n_rows`; only rows where it is
                True are returned (metadata filters). Deleted rows never are.

        Returns:
            ``(rows, scores)``: int64 row numbers and float64 scores, best first, ties
            broken by the lower row. Fewer than ``k`` when fewer rows match; rows that
            match no query term are never returned, whatever their score would be.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, not {k!r}")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != (self.n_rows,):
                raise ConfigError(
                    f"mask must be a boolean array of shape ({self.n_rows},), "
                    f"not {mask.dtype} {mask.shape}"
                )
        rows, vals = self._postings(query_tokens)
        if rows.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        if rows.size * _SPARSE_FACTOR < self.n_rows:
            cand, inverse = np.unique(rows, return_inverse=True)
            sc = np.bincount(inverse.ravel(), weights=vals)
        else:
            dense = np.bincount(rows, weights=vals, minlength=self.n_rows)
            hit = np.zeros(self.n_rows, dtype=bool)
            hit[rows] = True
            if mask is not None:
                hit &= mask
                mask = None
            cand = np.flatnonzero(hit)
            sc = dense[cand]
        if mask is not None:
            keep = mask[cand]
            cand, sc = cand[keep], sc[keep]
        return _top_k(cand.astype(np.int64, copy=False), sc, int(k))

    # ------------------------------------------------------------------ changes

    def add(self, token_lists: Iterable[Sequence[str]]) -> np.ndarray:
        """Append documents as new rows; returns their row numbers (int64).

        New terms extend the vocabulary. Weights are recomputed lazily (O(nnz)) on the
        next query, so add in batches.
        """
        first = self.n_rows
        vocab = self._ensure_term_dict()
        self._term_order = None  # stale once terms are added
        n_old_terms = len(self._vocab)
        counted = False
        try:
            new_csc, new_len = _count(token_lists, vocab)
            counted = True
        finally:
            if not counted:  # an error (re-raised): undo the terms this call added
                for t in list(vocab)[n_old_terms:]:
                    del vocab[t]
        self._vocab.extend(list(vocab)[n_old_terms:])
        if new_len.size == 0:
            return np.empty(0, np.int64)
        n_terms = len(self._vocab)
        # old postings keep their order; each term's new postings (higher rows) go
        # after its old ones: one np.insert, temporaries the size of the new postings
        old_end = np.full(n_terms, self.nnz, np.int64)
        old_end[:n_old_terms] = self._indptr[1:]
        new_counts = np.diff(new_csc.indptr).astype(np.int64)
        at = np.repeat(old_end, new_counts)
        indices = np.insert(np.asarray(self._indices), at, new_csc.indices.astype(np.int32) + first)
        tf = np.insert(np.asarray(self._tf), at, new_csc.data.astype(np.int32))
        indptr = np.zeros(n_terms + 1, np.int64)
        indptr[1 : n_old_terms + 1] = self._indptr[1:]
        indptr[n_old_terms + 1 :] = self.nnz
        indptr[1:] += np.cumsum(new_counts)
        nnz_new = int(new_csc.nnz)
        self._indptr, self._indices, self._tf = indptr, indices, tf
        self._doc_len = np.concatenate([self._doc_len, new_len])
        self._alive = np.concatenate([self._alive, np.ones(new_len.size, bool)])
        self._weights = None
        logger.debug("added %d rows (%d postings) to BM25", new_len.size, nnz_new)
        return np.arange(first, self.n_rows, dtype=np.int64)

    def add_texts(self, texts: Iterable[str]) -> np.ndarray:
        """:meth:`add` after tokenizing with the recorded analyzer."""
        if self._analyzer is None:
            raise ConfigError("this index has no analyzer; tokenize and call add()")
        return self.add(self._analyzer.tokenize(t) for t in texts)

    def delete(self, rows: Iterable[int] | np.ndarray) -> int:
        """Delete rows (tombstones: row numbers do not shift). Deleting an already
        deleted row does nothing. Returns how many rows were newly deleted."""
        r = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows)
        if r.size == 0:
            return 0
        if r.dtype == np.bool_ or not np.issubdtype(r.dtype, np.integer):
            raise ConfigError("rows must be integer row numbers")
        r = r.ravel().astype(np.int64)
        if r.min() < 0 or r.max() >= self.n_rows:
            raise ConfigError(f"row out of range [0, {self.n_rows})")
        newly = np.unique(r[self._alive[r]])
        if newly.size == 0:
            return 0
        alive = np.array(self._alive, copy=True)
        alive[newly] = False
        keep = alive[self._indices]
        kept_before = np.zeros(keep.size + 1, np.int64)
        np.cumsum(keep, out=kept_before[1:])
        self._indptr = kept_before[self._indptr]  # postings kept before each term start
        self._indices = self._indices[keep]
        self._tf = self._tf[keep]
        doc_len = np.array(self._doc_len, copy=True)
        doc_len[newly] = 0
        self._doc_len = doc_len
        self._alive = alive
        self._weights = None
        logger.debug("deleted %d BM25 rows", newly.size)
        return int(newly.size)

    def compact(self) -> np.ndarray:
        """Drop deleted rows and renumber the rest, keeping their order.

        Returns the old row number of each new row (``old_rows[new] == old``), so an id
        map kept beside the index can be compacted the same way. Terms no live row uses
        are dropped. Scores do not change.
        """
        old_rows = np.flatnonzero(self._alive).astype(np.int64)
        new_of_old = np.full(self.n_rows, -1, np.int64)
        new_of_old[old_rows] = np.arange(old_rows.size)
        df = np.diff(self._indptr)
        used = np.flatnonzero(df > 0)
        self._vocab = [self._vocab[i] for i in used.tolist()]
        self._term_id = dict(zip(self._vocab, range(len(self._vocab))))
        self._term_order = None
        indptr = np.zeros(used.size + 1, np.int64)
        np.cumsum(df[used], out=indptr[1:])
        self._indptr = indptr
        self._indices = new_of_old[self._indices].astype(np.int32)
        self._tf = np.asarray(self._tf)
        self._doc_len = np.asarray(self._doc_len)[old_rows]
        self._alive = np.ones(old_rows.size, bool)
        self._weights = None
        return old_rows

    # ------------------------------------------------------------------ persistence
    def save(self, directory: PathLike) -> Path:
        """Write the index into ``directory`` (created if needed) as ``.npy`` arrays,
        ``vocab.json`` and ``bm25.json`` (written last). Returns the directory."""
        return persist.save(self, directory)

    @classmethod
    def load(cls, directory: PathLike, mmap: bool = True) -> "BM25Index":
        """Open an index written by :meth:`save`.

        With ``mmap=True`` the arrays are memory-mapped read-only (``add``/``delete``
        then build new in-memory arrays). Raises :class:`IndexNotFoundError` when there
        is no index, :class:`IndexVersionError` for an unknown format version and
        :class:`IndexFormatError` for any missing, truncated or inconsistent file.
        """
        return persist.load(cls, directory, mmap)
