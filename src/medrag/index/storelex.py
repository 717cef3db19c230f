"""The lexical engine of an index saved with ``lexical="segments"``: a
:mod:`medrag.store` segmented store searched through :class:`~medrag.store.StoreSearcher`,
changed in place (issue 16).

Rows. Index row ``i`` of the stored part is the ``i``-th *live* row of the store (the
store keeps a deleted row as a tombstone, so its rows never move; the index drops
deleted rows from its own files at every save). Rows added since the load are kept in
an in-memory :class:`~medrag.retrieve.bm25.BM25Index` (the *delta*) and follow the
stored ones; deletions since the load are pending tombstones.

Search. With no change since the load, the store answers (block-max MaxScore, global
statistics). With changes, a query is scored with the statistics of the live rows as
they are now: N, average length, each term's document frequency, and the rank-bm25 idf
floor (epsilon times the mean idf over the live vocabulary), whose histogram of
document frequencies is the store's adjusted for every term the deleted and added rows
have (storepending.py). The store still answers by block-max MaxScore, restated with
those statistics and the pending tombstones (``StoreSearcher.restated``: the kernels
scale the stored block bounds by the query-time idf and avgdl, so they stay upper
bounds); the added rows are scored exhaustively in memory; the two top-k lists are
merged. So scores equal a fresh build of the resulting corpus (rank-bm25's
``BM25Okapi``, as ``BM25Index``) to float rounding, before the save as after it, and
equal the exhaustive pass over every posting (:meth:`StoreLexical._search_exhaustive`,
the oracle the tests compare with; ``scores`` still takes that pass).

Save (:meth:`StoreLexical.write_store`). The files of the loaded store are hard-linked
into the new generation's staging directory (copied where a link cannot be made), its
``StoreWriter`` appends the added rows as a new segment and the deleted rows as
tombstones, commits a store generation, merges by the
:class:`~medrag.store.TieredMergePolicy`, and removes (inside the staging directory
only) the links no kept store generation needs. The previous index generation is not
touched: the index's own commit (:mod:`medrag._indexdir`) makes the new one current, so
a crash at any point leaves the previous generation loadable.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, IndexConflictError, IndexFormatError
from ..retrieve.bm25 import BM25Index
from ..retrieve.bm25.kernel import _top_k
from .storepending import Stats, pending_stats, query_idf

__all__ = ["DIRECTORY", "MERGE_POLICY", "StoreLexical", "add_rows", "encoded_rows", "store_hashes"]

logger = logging.getLogger("medrag.index")

DIRECTORY = "lexical"
_LOCK = "LOCK"  # the store writer's lock file: never linked from another generation
_NO_BOOL = np.zeros(1, bool)  # "no tombstones" / "no mask" for the compiled kernels


#: the merge policy a save applies to the store: None for the default
#: :class:`~medrag.store.TieredMergePolicy` (after Lucene's; store/merge.py)
MERGE_POLICY: Any = None

# segment groups searched in parallel (the compiled kernels release the GIL): the
# machine's cores, at most 4; same rows and scores as one thread (store/search.py)
_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))


def encoded_rows(bm25: BM25Index) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The rows of a compacted ``bm25`` as token streams for
    :meth:`~medrag.store.StoreWriter.add_encoded`: ``(lens, term_ids, terms)``, row
    ``r``'s tokens being its terms (ascending term id) each repeated ``tf`` times (BM25
    does not see token order)."""
    if not np.asarray(bm25.alive).all():
        raise ConfigError("encoded_rows needs a compacted index (every row live)")
    indptr, indices, tf = np.asarray(bm25._indptr), np.asarray(bm25._indices), np.asarray(bm25._tf)
    term_of = np.repeat(np.arange(len(bm25._vocab), dtype=np.int64), np.diff(indptr))
    order = np.argsort(indices, kind="stable")  # postings grouped by row, terms ascending within
    tf_sorted = tf[order].astype(np.int64)
    term_ids = np.repeat(term_of[order], tf_sorted).astype(np.uint32)
    lens = np.bincount(indices, weights=tf, minlength=bm25.n_rows).astype(np.int64)
    return lens, term_ids, list(bm25._vocab)


def add_rows(writer: Any, bm25: BM25Index, ids: Sequence[str]) -> int:
    """Append every row of the compacted ``bm25`` to a store ``writer`` (row ``r`` as
    document ``ids[r]``), as segments of at most ``writer.segment_tokens`` tokens (a
    longer row is a segment of its own). Returns the number of segments written."""
    lens, term_ids, terms = encoded_rows(bm25)
    if len(ids) != lens.shape[0]:
        raise ConfigError(f"{len(ids)} ids for {lens.shape[0]} rows")
    ends = np.zeros(lens.shape[0] + 1, np.int64)
    np.cumsum(lens, out=ends[1:])
    tb = [t.encode("utf-8") for t in terms]
    n_seg, r0 = 0, 0
    while r0 < lens.shape[0]:
        r1 = int(np.searchsorted(ends, ends[r0] + int(writer.segment_tokens), side="right")) - 1
        r1 = min(max(r1, r0 + 1), lens.shape[0])
        writer.add_encoded(list(ids[r0:r1]), lens[r0:r1], term_ids[ends[r0] : ends[r1]], tb)
        n_seg += 1
        r0 = r1
    return n_seg


class StoreLexical:
    """The part of the ``BM25Index`` interface :class:`~medrag.index.Index` uses (search,
    scores, idf, add, delete, compact, alive), over a store plus the changes since the
    load (module docstring)."""

    def __init__(self, root: Path, n_rows: int) -> None:
        from ..store import Segment, StoreSearcher

        try:
            self._s = StoreSearcher.open(root)
            man = self._s.manifest
            self._segs: list[Any] = []
            self._seg_alive: list[np.ndarray | None] = []
            for rec in man.segments:
                seg = Segment.open(root / rec["name"], expected=rec)
                a = None
                if rec.get("deletes"):
                    a = np.ones(seg.n_docs, bool)
                    a[np.load(root / rec["deletes"]["rows"], allow_pickle=False).astype(np.int64)] = False
                self._segs.append(seg)
                self._seg_alive.append(a)
            self._hist = np.load(root / man.data["stats"]["dfhist"], allow_pickle=False)
            self._files = _file_ids(root)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise IndexFormatError(f"{root}: the segmented lexical store cannot be opened: {exc}") from exc
        self._bases = np.zeros(len(self._segs) + 1, np.int64)
        np.cumsum([s.n_docs for s in self._segs], out=self._bases[1:])
        if int(self._bases[-1]) != self._s.n_rows:
            raise IndexFormatError(f"{root}: the store's segments hold {int(self._bases[-1])} rows, its manifest {self._s.n_rows}")
        # the store row of each stored index row (None: the same number, no tombstones)
        self._live: np.ndarray | None = None
        if any(a is not None for a in self._seg_alive):
            alive = np.concatenate([np.ones(s.n_docs, bool) if a is None else a for s, a in zip(self._segs, self._seg_alive)])
            self._live = np.flatnonzero(alive).astype(np.int64)
        n_live = self._s.n_rows if self._live is None else int(self._live.size)
        if n_live != n_rows or self._s.n_docs != n_rows:
            raise IndexFormatError(f"{root}: the lexical store has {n_live} live rows, the index {n_rows}")
        self._root = root
        self._n_base = n_rows
        self._dead: np.ndarray | None = None  # stored rows deleted since the load (not compacted yet)
        self._drop = np.zeros(0, np.int64)  # store rows compacted away, tombstoned by the next save
        self._delta: BM25Index | None = None  # rows added since the load
        self._stats: Stats | None = None
        self._changed()

    # ------------------------------------------------------------------ state

    def rebind(self, root: Path) -> None:
        """Where the loaded store's files are read from at the next save (the index
        path, once the descriptor a load reads through is closed)."""
        self._root = Path(root)

    @property
    def params(self) -> Any:
        return self._s.params

    @property
    def n_rows(self) -> int:
        return self._n_base + (self._delta.n_rows if self._delta is not None else 0)

    @property
    def alive(self) -> np.ndarray:
        return self._alive

    @property
    def dirty(self) -> bool:
        """Whether rows were added or deleted since the load."""
        return self._delta is not None or self._dead is not None or bool(self._drop.size)

    def _changed(self) -> None:
        parts = [np.ones(self._n_base, bool) if self._dead is None else ~self._dead]
        if self._delta is not None:
            parts.append(np.asarray(self._delta.alive))
        alive = np.concatenate(parts)
        alive.flags.writeable = False
        self._alive = alive
        self._stats = None
        self._mask_cache: tuple[np.ndarray, np.ndarray] | None = None  # (index mask, store mask)

    def _index_rows(self, store_rows: np.ndarray) -> np.ndarray:
        r = np.asarray(store_rows, np.int64)
        return r if self._live is None else np.searchsorted(self._live, r).astype(np.int64)

    def _store_rows(self) -> np.ndarray:
        return np.arange(self._s.n_rows, dtype=np.int64) if self._live is None else self._live

    # ------------------------------------------------------------------ changes

    def add(self, token_lists: Iterable[Sequence[str]]) -> np.ndarray:
        """Append rows (after every stored and earlier added row); returns their rows."""
        if self._delta is None:
            self._delta = BM25Index.from_token_lists([], self._s.params)
        rows = self._delta.add(token_lists) + self._n_base
        self._changed()
        return rows

    def delete(self, rows: Iterable[int] | np.ndarray) -> int:
        """Tombstone rows; returns how many were newly deleted."""
        r = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows)
        if r.size == 0:
            return 0
        if r.dtype == np.bool_ or not np.issubdtype(r.dtype, np.integer):
            raise ConfigError("rows must be integer row numbers")
        r = np.unique(r.ravel().astype(np.int64))
        if r[0] < 0 or r[-1] >= self.n_rows:
            raise ConfigError(f"row out of range [0, {self.n_rows})")
        base = r[r < self._n_base]
        n = 0
        if base.size:
            dead = np.zeros(self._n_base, bool) if self._dead is None else self._dead
            newly = base[~dead[base]]
            if newly.size:
                dead = dead.copy()
                dead[newly] = True
                self._dead = dead
                n += int(newly.size)
        if self._delta is not None and r[-1] >= self._n_base:
            n += self._delta.delete(r[r >= self._n_base] - self._n_base)
        if n:
            self._changed()
        return n

    def compact(self) -> np.ndarray:
        """Drop deleted rows and renumber the rest in order; returns the old row of each
        new row. The store rows dropped are tombstoned by the next save."""
        old_rows = np.flatnonzero(self._alive).astype(np.int64)
        if self._dead is not None:
            live = self._store_rows()
            self._drop = np.union1d(self._drop, live[self._dead])
            self._live = live[~self._dead]
            self._n_base = int(self._live.size)
            self._dead = None
        if self._delta is not None:
            self._delta.compact()
            if self._delta.n_rows == 0:
                self._delta = None
        self._changed()
        return old_rows

    # ------------------------------------------------------------------ statistics

    def _global(self) -> Stats:
        """The statistics of the live rows now (cached until the next change; storepending.py)."""
        st = self._stats
        if st is None:
            st = self._stats = pending_stats(self)
        return st

    def idf(self, term: str) -> float:
        """The idf BM25 uses for ``term`` now (0.0 for a term no live row has)."""
        if not self.dirty:
            return self._s.idf(term)
        return query_idf(self, self._global(), [term]).get(term, 0.0)

    def _view(self, st: Stats) -> Any:
        """The store restated with the statistics of now and the pending tombstones
        (StoreSearcher.restated; cached with ``st``)."""
        v = st.view
        if v is None:
            v = st.view = self._s.restated(st.n, st.total, st.ok)
        return v

    # ------------------------------------------------------------------ search

    def _postings(self, query_tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Index rows and weights of every live posting of the query's terms (repeats
        weighted), with the statistics of now: the exact path while there are changes."""
        st = self._global()
        counts = Counter(query_tokens)
        terms = sorted(counts)
        idfs = query_idf(self, st, terms)
        if not idfs:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        k1, b = self._s.params.k1, self._s.params.b
        d = self._delta
        dterm = d._ensure_term_dict() if d is not None else {}
        rows: list[np.ndarray] = []
        vals: list[np.ndarray] = []

        def weigh(tf: np.ndarray, dl: np.ndarray, idf: float, c: int) -> np.ndarray:
            tff = tf.astype(np.float64)
            norm = k1 * (1 - b + b * dl.astype(np.float64) / st.avgdl)
            w = idf * (tff * (k1 + 1) / (tff + norm))
            return w * c if c > 1 else w

        for t in terms:  # canonical order: sorted terms (as StoreSearcher)
            if t not in idfs:
                continue
            idf = idfs[t]
            for i, seg in enumerate(self._segs):
                g = seg.find(t)
                if g < 0:
                    continue
                docs, tf = seg.postings(g)
                docs = np.asarray(docs, np.int64)
                tf = np.asarray(tf)
                if st.ok[i] is not None:
                    keep = st.ok[i][docs]
                    docs, tf = docs[keep], tf[keep]
                if docs.size:
                    rows.append(self._index_rows(docs + self._bases[i]))
                    vals.append(weigh(tf, np.asarray(seg.doc_len)[docs], idf, counts[t]))
            j = dterm.get(t)
            if d is not None and j is not None:
                s, e = int(d._indptr[j]), int(d._indptr[j + 1])
                if e > s:
                    r = np.asarray(d._indices[s:e], np.int64)
                    rows.append(r + self._n_base)
                    vals.append(weigh(np.asarray(d._tf[s:e]), np.asarray(d._doc_len)[r], idf, counts[t]))
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        return np.concatenate(rows), np.concatenate(vals)

    def _check_mask(self, mask: np.ndarray | None) -> np.ndarray | None:
        if mask is None:
            return None
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != (self.n_rows,):
            raise ConfigError(f"mask must be a boolean array of shape ({self.n_rows},), not {mask.dtype} {mask.shape}")
        return mask

    def search(self, query_tokens: Sequence[str], k: int = 10, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best live rows sharing a term with the query: ``(rows, scores)``,
        best first, ties to the lower row."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, not {k!r}")
        mask = self._check_mask(mask)
        if not self.dirty:
            # block-max MaxScore: the same rows and scores as exhaustive scoring (tests/test_store_kernel.py), faster
            rows, sc = self._s.search_rows(
                list(query_tokens), int(k), mode="maxscore", mask=self._store_mask(mask), threads=_THREADS
            )
            return self._index_rows(rows), sc
        return self._search_pending(query_tokens, int(k), mask)

    def _store_mask(self, mask: np.ndarray | None) -> np.ndarray | None:
        """``mask`` (index rows) over the stored rows as a store-row mask (cached for a
        read-only mask: Index.search passes the same cached mask again)."""
        if mask is None:
            return None
        if self._live is None:  # store rows are index rows
            return mask[: self._n_base]
        cached = self._mask_cache
        if cached is not None and cached[0] is mask:
            return cached[1]
        smask = np.zeros(self._s.n_rows, bool)
        smask[self._store_rows()] = mask[: self._n_base]
        if not mask.flags.writeable:
            self._mask_cache = (mask, smask)
        return smask

    def _search_pending(self, query_tokens: Sequence[str], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The top ``k`` with changes since the load: block-max MaxScore over the store
        restated with the statistics of now (N, avgdl, each query term's idf with the
        idf floor of the live vocabulary; the pending tombstones masked: storepending.py,
        StoreSearcher.restated), the added rows scored exhaustively (in memory, few), and
        the two top-k lists merged. Exact: the union's top k under (score desc, row asc)
        is within the two parts' top k, and each part's scores are summed in the same
        canonical term order as :meth:`_search_exhaustive`'s."""
        st = self._global()
        terms = sorted(set(query_tokens))
        idfs = query_idf(self, st, terms)
        if not idfs:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        rows, sc = self._view(st).search_rows(
            list(query_tokens), k, mode="maxscore", mask=self._store_mask(mask), threads=_THREADS, idf=idfs
        )
        rows = self._index_rows(rows)
        d = self._delta
        if d is not None and d.n_docs:
            drows, dsc = self._delta_top(d, Counter(query_tokens), idfs, st.avgdl, k, None if mask is None else mask[self._n_base :])
            if drows.size:
                rows, sc = _top_k(np.concatenate([rows, drows + self._n_base]), np.concatenate([sc, dsc]), k)
        return rows, sc

    def _delta_top(
        self, d: BM25Index, counts: Counter[str], idfs: dict[str, float], avgdl: float, k: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top ``k`` of the added rows (delta rows), scored exhaustively with the
        global statistics, summed in canonical (sorted) term order (compiled: the store's
        exhaustive kernel, kernel.exact_segment, over the delta's postings; else numpy)."""
        from ..store import kernel

        k1, b = self._s.params.k1, self._s.params.b
        dterm = d._ensure_term_dict()
        if kernel.HAVE_NUMBA:  # the store's compiled exhaustive kernel over the delta's postings
            sel = [(dterm[t], t) for t in sorted(counts) if t in idfs and t in dterm]
            if not sel:
                return np.zeros(0, np.int64), np.zeros(0, np.float64)
            kernel.ensure_compiled()
            st = self._global()
            norm = st.delta_norm
            if norm is None:  # the same expression as the exhaustive pass's, per row
                norm = st.delta_norm = k1 * (1 - b + b * np.asarray(d._doc_len).astype(np.float64) / avgdl)
            ptr = np.asarray(d._indptr, np.int64)
            js = np.fromiter((j for j, _ in sel), np.int64, len(sel))
            acc, flag, touched = kernel.scratch(d.n_rows)
            heap_s, heap_r = np.zeros(k, np.float64), np.zeros(k, np.int64)
            n = kernel.exact_segment(
                np.asarray(d._indices), np.asarray(d._tf), ptr[js], ptr[js + 1],
                np.fromiter((idfs[t] for _, t in sel), np.float64, len(sel)),
                np.fromiter((counts[t] for _, t in sel), np.int64, len(sel)), norm, k1 + 1,
                _NO_BOOL, False, _NO_BOOL if mask is None else mask, mask is not None,
                acc, flag, touched, heap_s, heap_r, 0, k, 0,
            )  # fmt: skip
            order = np.lexsort((heap_r[:n], -heap_s[:n]))
            return heap_r[:n][order], heap_s[:n][order]
        rows: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        for t in sorted(counts):
            j = dterm.get(t)
            if j is None or t not in idfs:
                continue
            s, e = int(d._indptr[j]), int(d._indptr[j + 1])
            if e <= s:
                continue
            r = np.asarray(d._indices[s:e], np.int64)
            tff = np.asarray(d._tf[s:e]).astype(np.float64)
            norm = k1 * (1 - b + b * np.asarray(d._doc_len)[r].astype(np.float64) / avgdl)
            w = idfs[t] * (tff * (k1 + 1) / (tff + norm))
            rows.append(r)
            vals.append(w * counts[t] if counts[t] > 1 else w)
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        r, v = np.concatenate(rows), np.concatenate(vals)
        if r.size * 8 < d.n_rows:  # few postings: sort them
            cand, inverse = np.unique(r, return_inverse=True)
            sc = np.bincount(inverse.ravel(), weights=v)
        else:  # dense sums over the delta's rows (same order of summation)
            dense = np.bincount(r, weights=v, minlength=d.n_rows)
            cand = np.flatnonzero(np.bincount(r, minlength=d.n_rows))
            sc = dense[cand]
        if mask is not None:
            keep = mask[cand]
            cand, sc = cand[keep], sc[keep]
        return _top_k(cand, sc, k)

    def _search_exhaustive(
        self, query_tokens: Sequence[str], k: int = 10, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top ``k`` from every live posting of the query's terms (:meth:`_postings`):
        what :meth:`search` did with changes since the load before issue 16's fast path;
        kept as its oracle (tests/test_index_segments.py, benchmarks/bench_pending.py)."""
        mask = self._check_mask(mask)
        rows, vals = self._postings(query_tokens)
        if rows.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        cand, inverse = np.unique(rows, return_inverse=True)
        sc = np.bincount(inverse.ravel(), weights=vals)
        if mask is not None:
            keep = mask[cand]
            cand, sc = cand[keep], sc[keep]
        return _top_k(cand, sc, int(k))

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """Every row's score (0.0 where no query term occurs, and for deleted rows): an
        exhaustive pass over the corpus, kept for ``BM25Index``'s interface and as the
        oracle of :meth:`scores_of`, which is what search uses."""
        out = np.zeros(self.n_rows, np.float64)
        if not self.n_rows:
            return out
        if not self.dirty:
            rows, sc = self._s.search_rows(list(query_tokens), self._s.n_rows, mode="exact")
            out[self._index_rows(rows)] = sc
            return out
        rows, vals = self._postings(query_tokens)
        return np.bincount(rows, weights=vals, minlength=self.n_rows) if rows.size else out

    def scores_of(self, query_tokens: Sequence[str], rows: np.ndarray) -> np.ndarray:
        """The scores of index ``rows`` (int), in their order, as :meth:`scores` gives
        them (bit for bit), without scoring the corpus: the stored rows are looked up in
        the postings of the query's terms (``StoreSearcher.score_rows``: O(rows x terms x
        log postings), what hybrid search needs at PubMed scale); with changes pending,
        through the store restated with the statistics of now (its pending tombstones
        score 0), and the added rows, few and in memory, scored exhaustively."""
        r = np.asarray(rows, np.int64)
        if r.size and (int(r.min()) < 0 or int(r.max()) >= self.n_rows):
            raise ConfigError(f"row out of range [0, {self.n_rows})")
        tokens = list(query_tokens)
        if not self.dirty:
            return self._s.score_rows(tokens, self._store_rows()[r] if self._live is not None else r)
        out = np.zeros(r.size, np.float64)
        st = self._global()
        idfs = query_idf(self, st, sorted(set(tokens)))
        if not idfs or r.size == 0:
            return out
        stored = np.flatnonzero(r < self._n_base)
        if stored.size:
            out[stored] = self._view(st).score_rows(tokens, self._store_rows()[r[stored]], idf=idfs)
        added = np.flatnonzero(r >= self._n_base)
        d = self._delta
        if added.size and d is not None and d.n_docs:
            drows, dsc = self._delta_top(d, Counter(tokens), idfs, st.avgdl, d.n_rows, None)
            full = np.zeros(d.n_rows, np.float64)
            full[drows] = dsc
            out[added] = full[r[added] - self._n_base]
        return out

    # ------------------------------------------------------------------ saving

    def write_store(self, d: Path, chunk_id: Callable[[int], str]) -> dict[str, Any]:
        """Write the store of a new index generation under ``d / "lexical"`` (module
        docstring): the loaded store's files linked, the added rows a new segment
        (``chunk_id(row)``: the id of an index row), the deleted rows tombstones, merged
        by :data:`MERGE_POLICY`. Needs a compacted index. Returns the manifest entry."""
        from ..store import StoreWriter, collect_garbage

        if self._dead is not None or (self._delta is not None and not np.asarray(self._delta.alive).all()):
            raise ConfigError("write_store needs a compacted index (every row live)")
        dst = d / DIRECTORY
        self._link_into(dst)
        if self.dirty:
            with StoreWriter(dst, params=self._s.params) as w:
                if self._drop.size:
                    w.delete_rows(self._drop)
                if self._delta is not None:
                    add_rows(w, self._delta, [chunk_id(r) for r in range(self._n_base, self.n_rows)])
                w.commit()
                merged = w.maybe_merge(MERGE_POLICY)  # None: the default tiered policy
            removed = collect_garbage(dst, keep=1)  # links in the staging directory only
            logger.info(
                "lexical store: %d rows added, %d tombstoned, %d merge(s), %d unreferenced link(s) dropped",
                0 if self._delta is None else self._delta.n_rows, self._drop.size, len(merged), len(removed),
            )
        return {"engine": "segments", "directory": DIRECTORY}

    def _link_into(self, dst: Path) -> None:
        """Hard-link (or copy, across file systems) every file of the loaded store into
        ``dst``, checking that each is the very file loaded (another writer may have
        replaced the generation at the index path since)."""
        for rel, ident in self._files.items():
            src, out = self._root / rel, dst / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, out, follow_symlinks=False)
                st = os.stat(out, follow_symlinks=False)
            except FileNotFoundError as exc:
                raise IndexConflictError(
                    f"{src} is gone: the generation this index was loaded from was replaced; load it again"
                ) from exc
            except OSError:  # a link cannot be made (another file system): copy
                st = os.stat(src, follow_symlinks=False)
                if (st.st_dev, st.st_ino) == ident:
                    shutil.copyfile(src, out, follow_symlinks=False)
            if (st.st_dev, st.st_ino) != ident:
                raise IndexConflictError(
                    f"{src} is not the file this index loaded: the generation was replaced since; load it again"
                )


def store_hashes(root: Path, prefix: str = "") -> dict[str, tuple[int, str]]:
    """``(size, sha256)`` of the store files that the live generation's manifest records
    (every segment's files, tombstones, the df histogram), keyed ``prefix + relative
    path``: what the store's writers computed as they wrote them."""
    from ..store import read_current

    man = read_current(root)
    out: dict[str, tuple[int, str]] = {}
    for rec in man.segments:
        for fname, frec in rec["files"].items():
            out[f"{prefix}{rec['name']}/{fname}"] = (int(frec["size"]), str(frec["sha256"]))
        for fname, frec in (rec.get("deletes") or {}).get("files", {}).items():
            out[prefix + fname] = (int(frec["size"]), str(frec["sha256"]))
    st = man.data["stats"]
    if isinstance(st.get("dfhist_file"), dict):
        out[prefix + st["dfhist"]] = (int(st["dfhist_file"]["size"]), str(st["dfhist_file"]["sha256"]))
    return out


def _file_ids(root: Path) -> dict[str, tuple[int, int]]:
    """(device, inode) of every regular file of the store at ``root`` but its lock."""
    out: dict[str, tuple[int, int]] = {}
    for p in sorted(root.rglob("*")):
        st = os.stat(p, follow_symlinks=False)
        rel = p.relative_to(root).as_posix()
        if rel == _LOCK or not stat.S_ISREG(st.st_mode):
            continue
        out[rel] = (int(st.st_dev), int(st.st_ino))
    return out
