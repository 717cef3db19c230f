"""Search across the segments of one generation with global BM25 statistics.

Two modes, the same top-k (ties broken by the lower global row) and bit-identical
scores:

``exact``
    Every posting of every query term is read, weighted and summed, segment by segment
    (``np.unique`` + ``np.bincount`` when the postings are few against the segment,
    a dense ``bincount`` otherwise), as ``BM25Index.search`` does.

``maxscore``
    MaxScore (H. Turtle and J. Flood, "Query evaluation: strategies and optimizations",
    IP&M 31(6), 1995): each query term gets an upper bound on what it can add to any
    document, and documents whose bounds cannot reach the k-th best score found so far
    are skipped. Safe (the exact top-k, scores bit-identical to ``exact``) by
    construction.

Engines: with numba installed (``medrag[fast]``) both modes run compiled kernels
(search_compiled.py, kernel.py: an exhaustive accumulator for ``exact``,
document-at-a-time block-max MaxScore for ``maxscore``) with one top-k heap across
segments; else, or with ``engine="numpy"``, the numpy paths (search_numpy.py:
``np.bincount`` sums and a vectorized term-at-a-time MaxScore). Both give the same
rows and scores.

Summation order: a document's score is summed over the query's distinct terms in
sorted order (``BM25Index`` sums in its term-id order), so scores equal ``BM25Index``'s
and rank-bm25's to float64 rounding (~1e-15 relative), not necessarily bit for bit.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np

from ..errors import ConfigError, IndexFormatError, MissingDependencyError
from ..retrieve.analyzer import Analyzer
from ..retrieve.bm25 import BM25Params
from . import kernel, search_compiled, search_numpy
from .format import Segment, verify_segment
from .manifest import Manifest, check_file, read_current
from .stats import idf_floor
from .views import _Seg, _Term

__all__ = ["Hit", "StoreSearcher"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: the global row, the document id given at build, the score."""

    row: int
    doc_id: str
    score: float



class StoreSearcher:
    """A read-only view of one generation of a store (see the package docstring).

    Concurrent searches from several threads are safe; it never changes after opening
    (:meth:`open` again to see a newer generation).
    """

    def __init__(self, root: Path, manifest: Manifest, segs: list[_Seg]) -> None:
        self.root = root
        self.manifest = manifest
        self._segs = segs
        d = manifest.data
        self.params = BM25Params.from_dict(d["params"])
        self.analyzer = Analyzer.from_dict(d["analyzer"]) if d["analyzer"] is not None else None
        st = d["stats"]
        self.n_docs = int(st["n_live"])
        self.total_len = int(st["total_len"])
        self.avgdl = self.total_len / self.n_docs if self.n_docs else 0.0
        hist = np.load(root / st["dfhist"], allow_pickle=False)
        if hist.ndim != 2 or hist.shape[0] != 2:
            raise IndexFormatError(f"{root / st['dfhist']}: expected a (2, h) array")
        self._floor = idf_floor(hist, self.n_docs, self.params.epsilon)
        self.n_terms_live = int(hist[1].sum())
        end = (segs[-1].base + segs[-1].seg.n_docs) if segs else 0
        self._bases = np.asarray([s.base for s in segs] + [end], np.int64)
        self._n_rows = sum(int(r["n_docs"]) for r in manifest.segments)
        self._term_lists: Any = None  # numba typed lists of the segments' term arrays (_find)
        self._restated = False  # a view from restated(): idf= required

    @classmethod
    def open(
        cls, root: PathLike, *, verify: bool = False, segments: Sequence[int] | None = None
    ) -> "StoreSearcher":
        """Open the live generation. Checks every file's size (O(files)); with
        ``verify=True`` also every byte's sha256 and the structure (O(store)).

        ``segments`` (indices into the manifest's list) opens only those: a shard that
        keeps the global statistics and global row numbers (distributed.py); pass the
        global document frequencies to :meth:`search_rows` (``df=``) when searching one.
        """
        root = Path(root)
        man = read_current(root)
        segs: list[_Seg] = []
        base = 0
        wanted = None if segments is None else set(int(i) for i in segments)
        if wanted is not None and not wanted <= set(range(len(man.segments))):
            raise ConfigError(f"segments {sorted(wanted)} not all in 0..{len(man.segments) - 1}")
        for idx, rec in enumerate(man.segments):
            if wanted is not None and idx not in wanted:
                base += int(rec["n_docs"])
                continue
            path = root / rec["name"]
            if verify:
                verify_segment(path)
            seg = Segment.open(path, expected=rec)
            alive = del_terms = del_counts = None
            dels = rec.get("deletes")
            if dels:
                for fname, frec in dels["files"].items():
                    check_file(root, fname, frec, verify)
                rows = np.load(root / dels["rows"], allow_pickle=False)
                df = np.load(root / dels["df"], allow_pickle=False)
                if rows.ndim != 1 or (rows.size and int(rows.max()) >= seg.n_docs):
                    raise IndexFormatError(f"{root / dels['rows']}: rows out of range")
                if df.ndim != 2 or df.shape[0] != 2:
                    raise IndexFormatError(f"{root / dels['df']}: expected a (2, m) array")
                alive = np.ones(seg.n_docs, bool)
                alive[rows.astype(np.int64)] = False
                del_terms, del_counts = df[0], df[1]
            segs.append(_Seg(seg, base, alive, del_terms, del_counts))
            base += seg.n_docs
        if verify:
            check_file(root, man.data["stats"]["dfhist"], man.data["stats"]["dfhist_file"], True)
        return cls(root, man, segs)

    # ------------------------------------------------------------------ properties

    @property
    def generation(self) -> int:
        return self.manifest.generation

    @property
    def n_rows(self) -> int:
        """Rows, deleted ones included (global row numbers are ``0 .. n_rows - 1``),
        of the whole store, also for a shard."""
        return self._n_rows

    @property
    def n_segments(self) -> int:
        return len(self._segs)

    def _seg_of(self, row: int) -> _Seg:
        i = int(np.searchsorted(self._bases, row, side="right")) - 1
        if row < 0 or i < 0 or i >= len(self._segs) or row - self._segs[i].base >= self._segs[i].seg.n_docs:
            raise ConfigError(f"row {row} is not in this store's (or shard's) segments")
        return self._segs[i]

    def doc_id(self, row: int) -> str:
        s = self._seg_of(row)
        return s.seg.doc_id(row - s.base)

    def is_alive(self, row: int) -> bool:
        s = self._seg_of(row)
        return True if s.alive is None else bool(s.alive[row - s.base])

    def verify(self) -> None:
        """Full verification of this generation (sha256 of every file, structure)."""
        for s in self._segs:
            verify_segment(s.seg.path)
        for rec in self.manifest.segments:
            if rec.get("deletes"):
                for fname, frec in rec["deletes"]["files"].items():
                    check_file(self.root, fname, frec, True)

    # ------------------------------------------------------------------ statistics

    def local_df(self, query_tokens: Sequence[str]) -> dict[str, int]:
        """Live document frequency of each distinct query term in the opened segments."""
        return {t.term: t.local_df for t in self._terms(query_tokens, keep_zero_idf=True)}

    def restated(self, n_docs: int, total_len: int, alive: Sequence[np.ndarray | None]) -> "StoreSearcher":
        """A view of the same segments with other live rows and global statistics: the
        store with pending tombstones applied, scored as part of a larger corpus
        (index/storelex.py: rows added and deleted since the load, not saved yet).

        ``alive[i]``: segment ``i``'s rows still live (bool, one per row; None: all),
        ``n_docs`` / ``total_len``: live documents and tokens of the whole corpus (avgdl
        is their ratio). The view holds no term statistics of its own: search it with
        :meth:`search_rows` ``idf=`` (each query term's idf in the whole corpus). Block-max
        bounds stay upper bounds: the kernels scale them by the query-time idf and by
        ``max(1, avgdl / segment avgdl)`` as for any store (search_compiled.py). Length
        normalizations are computed for the view's avgdl on first use (8 bytes per row)."""
        if len(alive) != len(self._segs):
            raise ConfigError(f"{len(alive)} alive arrays for {len(self._segs)} segments")
        segs = []
        for s, a in zip(self._segs, alive):
            if a is not None and (a.dtype != np.bool_ or a.shape != (s.seg.n_docs,)):
                raise ConfigError(f"alive of {s.seg.path} must be bool ({s.seg.n_docs},)")
            segs.append(_Seg(s.seg, s.base, a, s.del_terms, s.del_counts))
        v = copy.copy(self)
        v._segs = segs
        v.n_docs = int(n_docs)
        v.total_len = int(total_len)
        v.avgdl = v.total_len / v.n_docs if v.n_docs else 0.0
        v._floor = float("nan")
        v._restated = True
        return v

    def _terms(
        self,
        query_tokens: Sequence[str],
        df: Mapping[str, int] | None = None,
        keep_zero_idf: bool = False,
        idf: Mapping[str, float] | None = None,
    ) -> list[_Term]:
        if isinstance(query_tokens, (str, bytes)):
            raise ConfigError("query_tokens must be a list of tokens, not a string")
        counts: dict[str, int] = {}
        for t in query_tokens:
            if not isinstance(t, str):
                raise ConfigError(f"query tokens must be str, not {type(t).__name__}")
            counts[t] = counts.get(t, 0) + 1
        df_override, idf_override = df, idf
        out = []
        n = self.n_docs
        found = self._find(sorted(counts))
        for qi, t in enumerate(sorted(counts)):  # canonical order: sorted terms
            where, df = [], 0
            for i, g, a, e in found[qi]:
                s = self._segs[i]
                d = e - a
                if s.del_terms is not None and s.del_terms.size:
                    j = int(np.searchsorted(s.del_terms, g))
                    if j < s.del_terms.size and int(s.del_terms[j]) == g:
                        d -= int(s.del_counts[j])
                if d > 0:
                    where.append((i, g, a, e))
                    df += d
            local = df
            if idf_override is not None:  # the caller's statistics (a restated view)
                if t in idf_override or keep_zero_idf:
                    out.append(_Term(t, counts[t], float(idf_override.get(t, 0.0)), where, local_df=local))
                continue
            if df_override is not None:
                df = int(df_override.get(t, 0))
                if df < local:
                    raise ConfigError(f"global df of {t!r} ({df}) is below this shard's ({local})")
            if df == 0 or n == 0:
                if keep_zero_idf:
                    out.append(_Term(t, counts[t], 0.0, where, local_df=local))
                continue
            idf = float(np.log(np.float64(n - df + 0.5)) - np.log(np.float64(df + 0.5)))
            if idf < 0:
                idf = self._floor
            out.append(_Term(t, counts[t], idf, where, local_df=local))
        return out

    def _query_terms(
        self, query_tokens: Sequence[str], df: Mapping[str, int] | None, idf: Mapping[str, float] | None
    ) -> list[_Term]:
        """:meth:`_terms` after checking the statistics a search was given."""
        if self._restated and idf is None:
            raise ConfigError("a restated view has no statistics of its own: pass idf=")
        if idf is not None and df is not None:
            raise ConfigError("pass df= or idf=, not both")
        return self._terms(query_tokens, df, idf=idf)

    def _find(self, terms: list[str]) -> list[list[tuple[int, int, int, int]]]:
        """Per term: (segment index, local term id, first posting, end) of every opened
        segment that has it. Compiled (kernel.find_terms, one call) with numba; else
        ``Segment.find`` per segment."""
        if not kernel.HAVE_NUMBA or not self._segs:
            res: list[list[tuple[int, int, int, int]]] = []
            for t in terms:
                row = []
                for i, s in enumerate(self._segs):
                    g = s.seg.find(t)
                    if g >= 0:
                        row.append((i, g, int(s.seg.post_ptr[g]), int(s.seg.post_ptr[g + 1])))
                res.append(row)
            return res
        lists = self._term_lists
        if lists is None:
            kernel.ensure_compiled()
            from numba.typed import List

            lists = (List(), List(), List())
            for s in self._segs:
                lists[0].append(kernel.readonly(np.asarray(s.seg._terms_blob, np.uint8)))
                lists[1].append(kernel.readonly(np.asarray(s.seg.term_off, np.uint64)))
                lists[2].append(kernel.readonly(np.asarray(s.seg.post_ptr, np.uint64)))
            self._term_lists = lists  # idempotent: a racing thread builds the same
        enc = [t.encode("utf-8") for t in terms]
        qoff = np.zeros(len(enc) + 1, np.int64)
        np.cumsum([len(b) for b in enc], out=qoff[1:])
        qblob = np.frombuffer(b"".join(enc) or b"\0", np.uint8)
        out = np.zeros((len(self._segs), len(enc), 3), np.int64)
        kernel.find_terms(lists[0], lists[1], lists[2], qblob, qoff, out)
        hit = out[:, :, 0] >= 0
        res: list[list[tuple[int, int, int, int]]] = [[] for _ in enc]
        for q in range(len(enc)):
            idx = np.flatnonzero(hit[:, q])
            if idx.size:
                o = out[idx, q].tolist()
                res[q] = [(int(i), g, a, e) for i, (g, a, e) in zip(idx.tolist(), o)]
        return res

    def idf(self, term: str) -> float:
        """The idf BM25 uses for ``term`` (0.0 for a term no live document has)."""
        ts = self._terms([term])
        return ts[0].idf if ts else 0.0

    def _norm(self, s: _Seg) -> np.ndarray:
        """Per-document length normalization ``k1 * (1 - b + b * |d| / avgdl)`` of a
        segment (float64, 8 bytes per document, computed on first use: it depends on
        the global avgdl, so it is not stored)."""
        norm = s.norm
        if norm is None:
            k1, b = self.params.k1, self.params.b
            norm = k1 * (1 - b + b * np.asarray(s.seg.doc_len, np.float64) / self.avgdl)
            s.norm = norm  # idempotent: a racing thread computes the same array
        return norm


    def score_rows(
        self,
        query_tokens: Sequence[str],
        rows: Sequence[int] | np.ndarray,
        *,
        df: Mapping[str, int] | None = None,
        idf: Mapping[str, float] | None = None,
    ) -> np.ndarray:
        """Exact BM25 scores (float64) of the given global ``rows``, in their order:
        the scores :meth:`search_rows` gives those rows (bit for bit: summed in the same
        canonical term order), 0.0 for a row that shares no term with the query and for
        a deleted row. Each query term's postings are searched for the rows (binary
        search in the memory-mapped postings), so the cost is O(len(rows) x terms x
        log postings) rather than the corpus's: hybrid fusion scores the union of its
        two candidate lists this way (index/search.py). ``df`` / ``idf`` as for
        :meth:`search_rows`; rows must lie in the opened segments."""
        r = np.asarray(rows)
        if r.ndim != 1 or (r.size and (r.dtype == np.bool_ or not np.issubdtype(r.dtype, np.integer))):
            raise ConfigError("rows must be a 1-d array of integer row numbers")
        r = r.astype(np.int64, copy=False)
        out = np.zeros(r.size, np.float64)
        if r.size == 0:
            return out
        seg_i = np.searchsorted(self._bases, r, side="right") - 1
        inside = (seg_i >= 0) & (seg_i < len(self._segs))
        if inside.all():
            inside = r - self._bases[seg_i] < np.asarray([s.seg.n_docs for s in self._segs], np.int64)[seg_i]
        if not inside.all():
            bad = int(r[np.flatnonzero(~inside)[0]])
            raise ConfigError(f"row {bad} is not in this store's (or shard's) segments")
        terms = self._query_terms(query_tokens, df, idf)
        if not terms or self.n_docs == 0:
            return out
        uniq, inverse = np.unique(r, return_inverse=True)
        sc = search_numpy.score_rows(self, terms, uniq)
        useg = np.searchsorted(self._bases, uniq, side="right") - 1
        for i, s in enumerate(self._segs):
            if s.alive is not None:
                at = np.flatnonzero(useg == i)
                if at.size:
                    sc[at[~s.alive[uniq[at] - s.base]]] = 0.0
        return sc[inverse.ravel()]

    def search(
        self,
        query_tokens: Sequence[str],
        k: int = 10,
        *,
        mode: Literal["exact", "maxscore"] = "exact",
        mask: np.ndarray | None = None,
        engine: Literal["auto", "numba", "numpy"] = "auto",
        threads: int = 1,
    ) -> list[Hit]:
        """The ``k`` best live documents sharing a term with the query, as :class:`Hit`."""
        rows, scores = self.search_rows(query_tokens, k, mode=mode, mask=mask, engine=engine, threads=threads)
        return [Hit(int(r), self.doc_id(int(r)), float(s)) for r, s in zip(rows.tolist(), scores.tolist())]

    def search_text(self, text: str, k: int = 10, **kw: Any) -> list[Hit]:
        """:meth:`search` after tokenizing with the analyzer recorded in the manifest."""
        if self.analyzer is None:
            raise ConfigError("this store records no analyzer; tokenize and call search()")
        return self.search(self.analyzer.tokenize(text), k, **kw)

    def search_rows(
        self,
        query_tokens: Sequence[str],
        k: int = 10,
        *,
        mode: Literal["exact", "maxscore"] = "exact",
        mask: np.ndarray | None = None,
        df: Mapping[str, int] | None = None,
        engine: Literal["auto", "numba", "numpy"] = "auto",
        threads: int = 1,
        idf: Mapping[str, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scores)``: int64 global rows and float64 scores, best first, ties to
        the lower row. ``mask`` (bool, length :attr:`n_rows`) keeps only rows where it
        is True. ``df``: global live document frequencies of the query terms, for a
        shard opened with ``segments=`` (the sum of every shard's :meth:`local_df`).
        ``engine``: ``"numba"`` (the compiled kernels, kernel.py), ``"numpy"``, or
        ``"auto"`` (numba when installed); both give the same rows and scores.
        ``threads``: with the compiled kernels (which release the GIL), score groups of
        segments on this many threads, each with its own top-k heap, and merge the heaps;
        MaxScore groups prune with one shared threshold (search_compiled.py, kernel.py).
        The rows and scores are the same as with one thread (the global top-k under
        (score desc, row asc) is within the union of the heaps). ``idf``: each query
        term's idf, instead of the store's (required for a :meth:`restated` view; a term
        missing from it is left out, as a term no live document has)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, not {k!r}")
        if mode not in ("exact", "maxscore"):
            raise ConfigError(f"mode must be 'exact' or 'maxscore', not {mode!r}")
        if engine not in ("auto", "numba", "numpy"):
            raise ConfigError(f"engine must be 'auto', 'numba' or 'numpy', not {engine!r}")
        if engine == "numba" and not kernel.HAVE_NUMBA:
            raise MissingDependencyError("numba", "fast", "engine='numba'")
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ConfigError(f"threads must be a positive integer, not {threads!r}")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != (self.n_rows,):
                raise ConfigError(f"mask must be a boolean array of shape ({self.n_rows},)")
        terms = self._query_terms(query_tokens, df, idf)
        if not terms or self.n_docs == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        prune = mode == "maxscore" and all(t.idf > 0 for t in terms)
        if engine != "numpy" and kernel.HAVE_NUMBA:
            return search_compiled.compiled(self, terms, int(k), mask, prune, int(threads))
        if prune:
            return search_numpy.maxscore(self, terms, int(k), mask)
        return search_numpy.exact(self, terms, int(k), mask)
