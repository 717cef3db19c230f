"""The lexical engine of a saved index: ``"bm25"`` (:class:`~medrag.retrieve.bm25.BM25Index`
arrays under ``bm25/``, the default) or, opt in, ``"segments"`` (a
:mod:`medrag.store` segmented store under ``lexical/``, searched through its public
:class:`~medrag.store.StoreSearcher`; issue 16).

The manifest's ``"lexical"`` entry names the engine (absent: ``"bm25"``, as every index
saved before it existed). An index is built and changed in memory with ``BM25Index``
either way; the engine decides what a save writes and what a load searches with. Both
give the same scores (the store's are rank-bm25's ``BM25Okapi`` too, with global
statistics across segments), so the top-10 of the two engines agree (tested on real
PubMed files in tests/test_index.py).

Not done yet (the rest of the plan in :mod:`medrag.store`): an index loaded from
``"segments"`` searches, filters and boosts, but :meth:`Index.add` / :meth:`Index.delete`
on it raise ConfigError (rebuild, or build with ``lexical="bm25"``); the chunk store and
filters are still per corpus, not per segment.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, IndexFormatError

if TYPE_CHECKING:
    from ..retrieve.bm25 import BM25Index

__all__ = ["ENGINES", "StoreLexical", "check_engine", "write_segments"]

ENGINES = ("bm25", "segments")
DIRECTORY = "lexical"


def check_engine(engine: Any) -> str:
    if engine not in ENGINES:
        raise ConfigError(f"lexical must be one of {list(ENGINES)}, not {engine!r}")
    return str(engine)


def write_segments(bm25: "BM25Index", d: Path, analyzer: Any, chunk_ids: Sequence[str]) -> dict[str, Any]:
    """Write the live rows of ``bm25`` (all rows: a save compacts first) as a store
    under ``d / "lexical"``: row ``i`` of the store is row ``i`` of the index, its
    tokens each term repeated ``tf`` times (BM25 does not see token order). Returns
    the manifest entry."""
    from ..store import StoreWriter

    alive = np.asarray(bm25.alive)
    if not alive.all():
        raise ConfigError("write_segments needs a compacted index (every row live)")
    vocab = bm25._vocab
    indptr, indices, tf = np.asarray(bm25._indptr), np.asarray(bm25._indices), np.asarray(bm25._tf)
    term_of = np.repeat(np.arange(len(vocab), dtype=np.int64), np.diff(indptr))
    order = np.argsort(indices, kind="stable")  # postings grouped by row
    rows_sorted, terms_sorted, tf_sorted = indices[order], term_of[order], tf[order]
    bounds = np.searchsorted(rows_sorted, np.arange(bm25.n_rows + 1))
    with StoreWriter(d / DIRECTORY, params=bm25.params, analyzer=analyzer) as w:
        for row in range(bm25.n_rows):
            a, b = int(bounds[row]), int(bounds[row + 1])
            toks = [vocab[int(t)] for t, n in zip(terms_sorted[a:b], tf_sorted[a:b]) for _ in range(int(n))]
            w.add(chunk_ids[row], toks)
    return {"engine": "segments", "directory": DIRECTORY}



# segment groups searched in parallel (the compiled kernels release the GIL): the
# machine's cores, at most 4; same rows and scores as one thread (store/search.py)
_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))

class StoreLexical:
    """The part of the ``BM25Index`` interface :class:`~medrag.index.Index` searches
    with, over a read-only store (global row = index row)."""

    def __init__(self, root: Path, n_rows: int) -> None:
        from ..store import StoreSearcher

        try:
            self._s = StoreSearcher.open(root)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFormatError(f"{root}: the segmented lexical store cannot be opened: {exc}") from exc
        if self._s.n_rows != n_rows:
            raise IndexFormatError(f"{root}: the lexical store has {self._s.n_rows} rows, the index {n_rows}")
        self._alive = np.ones(n_rows, bool)
        self._alive.flags.writeable = False

    @property
    def n_rows(self) -> int:
        return self._s.n_rows

    @property
    def alive(self) -> np.ndarray:
        return self._alive

    def idf(self, term: str) -> float:
        return self._s.idf(term)

    def search(self, query_tokens: Sequence[str], k: int = 10, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        # block-max MaxScore: the same rows and scores as exhaustive scoring (tests/test_store_kernel.py), faster
        return self._s.search_rows(list(query_tokens), int(k), mode="maxscore", mask=mask, threads=_THREADS)

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """Every row's score (0.0 where no query term occurs)."""
        out = np.zeros(self.n_rows, np.float64)
        if self.n_rows:
            rows, sc = self._s.search_rows(list(query_tokens), self.n_rows, mode="exact")
            out[rows] = sc
        return out

    def _refuse(self, *_: Any) -> Any:
        raise ConfigError(
            "this index was loaded from a segmented lexical store (lexical='segments'), which cannot be "
            "changed in place yet; rebuild it, or build with lexical='bm25' to add and delete"
        )

    read_only = True  # Index.add / delete refuse before changing anything
    add = delete = compact = save = _refuse
