"""Search across the segments of one generation with global BM25 statistics.

Two modes, the same top-k (ties broken by the lower global row) and bit-identical
scores:

``exact``
    Every posting of every query term is read, weighted and summed, segment by segment
    (``np.unique`` + ``np.bincount`` when the postings are few against the segment,
    a dense ``bincount`` otherwise), as ``BM25Index.search`` does.

``maxscore``
    MaxScore (H. Turtle and J. Flood, "Query evaluation: strategies and optimizations",
    IP&M 31(6), 1995) in term-at-a-time form with Moffat and Zobel's "continue"
    strategy (ACM TOIS 14(4), 1996), vectorized. Each query term gets an upper bound on
    what it can add to any document (from its largest tf and shortest document, per
    segment). Terms are taken by decreasing bound; their postings are merged in full
    into a candidate set until the k-th best partial score ``theta`` exceeds the sum of
    the remaining terms' bounds: no document outside the candidates can then reach the
    top k. The remaining terms (the common, low-idf ones with the long postings lists)
    are only looked up for the candidates, by binary search in their memory-mapped
    postings, and candidates whose partial score plus the remaining bound falls below
    ``theta`` are dropped term by term. The survivors' scores are recomputed in the
    canonical term order, so they are bit-identical to ``exact``. Safe (exact top-k)
    by construction. Measured on real query texts (SciFact claims, PubMed titles: ~9
    distinct terms each), it reads only 20-30% of the postings but is not faster than
    ``exact`` in this vectorized form: the sum of the remaining bounds stays above
    ``theta`` until most terms are read, and the per-term work costs more than one
    dense ``bincount`` (benchmarks/bench_engines.py; README "Scale").

Engines: with numba installed (``medrag[fast]``) both modes run compiled kernels
(kernel.py: an exhaustive accumulator for ``exact``, document-at-a-time block-max
MaxScore for ``maxscore``) with one top-k heap across segments; the rows and scores
are those of the numpy paths above (``engine="numpy"`` forces them).

Summation order: a document's score is summed over the query's distinct terms in
sorted order (``BM25Index`` sums in its term-id order), so scores equal ``BM25Index``'s
and rank-bm25's to float64 rounding (~1e-15 relative), not necessarily bit for bit.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np

from ..errors import ConfigError, IndexFormatError, MissingDependencyError
from ..retrieve.analyzer import Analyzer
from ..retrieve.bm25 import BM25Params
from . import kernel
from .format import BLOCK, Segment, verify_segment
from .manifest import Manifest, check_file, read_current
from .stats import idf_floor

__all__ = ["Hit", "StoreSearcher"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
_SPARSE_FACTOR = 8  # sparse (unique) path when postings * 8 < segment rows
_SLACK = 1e-9  # relative slack on upper bounds against float rounding
_NO_BOOL = np.zeros(1, bool)  # stands for "no tombstones" / "no mask" in the kernels
_ONE_BLOCK = 1 << 62  # block size that puts every posting of a term in block 0
_WINDOW = 4096  # rows per window of the block-max MaxScore kernel


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: the global row, the document id given at build, the score."""

    row: int
    doc_id: str
    score: float


@dataclass
class _Seg:
    seg: Segment
    base: int  # global row of local row 0
    alive: np.ndarray | None  # bool (n_docs,) when the segment has tombstones
    del_terms: np.ndarray | None  # sorted local term ids with deleted docs
    del_counts: np.ndarray | None
    norm: np.ndarray | None = None  # length normalization per document (search._norm)


@dataclass
class _Term:
    term: str
    count: int
    idf: float
    # per segment index: (local term id, start, end)
    where: list[tuple[int, int, int, int]]
    ub: float = 0.0
    local_df: int = 0


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

    def _terms(
        self, query_tokens: Sequence[str], df: Mapping[str, int] | None = None, keep_zero_idf: bool = False
    ) -> list[_Term]:
        if isinstance(query_tokens, (str, bytes)):
            raise ConfigError("query_tokens must be a list of tokens, not a string")
        counts: dict[str, int] = {}
        for t in query_tokens:
            if not isinstance(t, str):
                raise ConfigError(f"query tokens must be str, not {type(t).__name__}")
            counts[t] = counts.get(t, 0) + 1
        df_override = df
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

    def _weights(self, s: _Seg, term: _Term, docs: np.ndarray, tf: np.ndarray) -> np.ndarray:
        k1 = self.params.k1
        norm = self._norm(s)[docs]
        tff = tf.astype(np.float64)
        w = term.idf * (tff * (k1 + 1) / (tff + norm))
        return w * term.count if term.count > 1 else w

    # ------------------------------------------------------------------ search

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
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scores)``: int64 global rows and float64 scores, best first, ties to
        the lower row. ``mask`` (bool, length :attr:`n_rows`) keeps only rows where it
        is True. ``df``: global live document frequencies of the query terms, for a
        shard opened with ``segments=`` (the sum of every shard's :meth:`local_df`).
        ``engine``: ``"numba"`` (the compiled kernels, kernel.py), ``"numpy"``, or
        ``"auto"`` (numba when installed); both give the same rows and scores.
        ``threads``: with the compiled kernels (which release the GIL), score groups of
        segments on this many threads, each with its own top-k heap, and merge the heaps;
        the rows and scores are the same as with one thread (each group's top-k is exact,
        and the global top-k under (score desc, row asc) is within their union)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, not {k!r}")
        if mode not in ("exact", "maxscore"):
            raise ConfigError(f"mode must be 'exact' or 'maxscore', not {mode!r}")
        if engine not in ("auto", "numba", "numpy"):
            raise ConfigError(f"engine must be 'auto', 'numba' or 'numpy', not {engine!r}")
        if engine == "numba" and not kernel.HAVE_NUMBA:
            raise MissingDependencyError("engine='numba' needs numba: pip install 'medrag[fast]'")
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ConfigError(f"threads must be a positive integer, not {threads!r}")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != (self.n_rows,):
                raise ConfigError(f"mask must be a boolean array of shape ({self.n_rows},)")
        terms = self._terms(query_tokens, df)
        if not terms or self.n_docs == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        prune = mode == "maxscore" and all(t.idf > 0 for t in terms)
        if engine != "numpy" and kernel.HAVE_NUMBA:
            return self._compiled(terms, int(k), mask, prune, int(threads))
        if prune:
            return self._maxscore(terms, int(k), mask)
        return self._exact(terms, int(k), mask)

    def _compiled(
        self, terms: list[_Term], k: int, mask: np.ndarray | None, prune: bool, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both modes through the compiled kernels, segment by segment in row order with
        one heap (kernel.py); with ``threads > 1``, groups of segments (round-robin, so
        each group spans the corpus) on a thread pool, one heap per group, merged."""
        kernel.ensure_compiled()
        by_seg: dict[int, list[tuple[_Term, int, int, int]]] = {}
        for t in terms:  # canonical order
            for i, g, a, e in t.where:
                by_seg.setdefault(i, []).append((t, g, a, e))
        seg_ids = sorted(by_seg)
        groups = [seg_ids[j::threads] for j in range(min(threads, len(seg_ids)))]
        if len(groups) <= 1:
            rows, sc = self._compiled_group(seg_ids, by_seg, k, mask, prune)
        else:
            parts = list(_pool(len(groups)).map(lambda g: self._compiled_group(g, by_seg, k, mask, prune), groups))
            rows = np.concatenate([p[0] for p in parts])
            sc = np.concatenate([p[1] for p in parts])
        order = np.lexsort((rows, -sc))[:k]
        return rows[order].copy(), sc[order].copy()

    def _compiled_group(
        self,
        seg_ids: list[int],
        by_seg: dict[int, list[tuple[_Term, int, int, int]]],
        k: int,
        mask: np.ndarray | None,
        prune: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top-k (unsorted) of the segments ``seg_ids``, in row order, one heap."""
        heap_s = np.zeros(k, np.float64)
        heap_r = np.zeros(k, np.int64)
        n = 0
        k1, b = self.params.k1, self.params.b
        for i in seg_ids:
            lst = by_seg[i]
            s = self._segs[i]
            seg = s.seg
            norm = self._norm(s)
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
                scale = max(1.0, self.avgdl / bp["avgdl"])
                if seg.block_max is not None:
                    bm, bm_base, block = seg.block_max, seg.post_ptr[gs].astype(np.int64) // BLOCK + gs, BLOCK
                else:
                    bm, bm_base, block = seg.max_w, gs, _ONE_BLOCK
                tmax = seg.max_w[gs].astype(np.float64)
            else:  # bounds computed with other parameters: the supremum k1 + 1
                scale, block = 1.0, _ONE_BLOCK
                bm, bm_base = np.full(1, k1 + 1, np.float32), np.zeros(len(lst), np.int64)
                tmax = np.full(len(lst), k1 + 1)
            bscale = idf * cnt * scale * (1 + _SLACK)
            ub = bscale * tmax  # this segment's bound per term
            order = np.argsort(ub, kind="stable")  # order[j]: canonical position of the j-th
            n = kernel.window_segment(
                seg.docs, seg.tf, starts[order], ends[order], idf[order], cnt[order], ub[order],
                bscale[order], bm, bm_base[order], block, order, norm, k1 + 1,
                live, s.alive is not None, m, mask is not None, heap_s, heap_r, n, k, s.base, _SLACK, _WINDOW,
            )  # fmt: skip
        return heap_r[:n].copy(), heap_s[:n].copy()

    def _gather(self, s: _Seg, t: _Term, a: int, e: int) -> tuple[np.ndarray, np.ndarray]:
        """Local rows and weights of the live postings ``a:e`` of term ``t`` in ``s``."""
        docs, tf = s.seg.docs[a:e], s.seg.tf[a:e]
        if s.alive is not None:
            keep = s.alive[docs]
            docs, tf = docs[keep], tf[keep]
        return docs, self._weights(s, t, docs, tf)

    def _sum_segment(
        self, s: _Seg, pieces: list[tuple[np.ndarray, np.ndarray]], mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Global rows (ascending) and summed weights over ``pieces`` (local rows and
        weights of one segment, summed in the order given)."""
        r = np.concatenate([p[0] for p in pieces]) if len(pieces) > 1 else np.asarray(pieces[0][0])
        v = np.concatenate([p[1] for p in pieces]) if len(pieces) > 1 else pieces[0][1]
        if r.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        if r.size * _SPARSE_FACTOR < s.seg.n_docs:
            cand, inv = np.unique(r, return_inverse=True)
            sc = np.bincount(inv.ravel(), weights=v)
        else:
            dense = np.bincount(r, weights=v, minlength=s.seg.n_docs)
            hit = np.zeros(s.seg.n_docs, bool)
            hit[r] = True
            cand = np.flatnonzero(hit)
            sc = dense[cand]
        g = cand.astype(np.int64) + s.base
        if mask is not None:
            keep = mask[g]
            g, sc = g[keep], sc[keep]
        return g, sc

    def _exact(self, terms: list[_Term], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        all_rows, all_sc = [], []
        by_seg: dict[int, list[tuple[_Term, int, int]]] = {}
        for t in terms:
            for i, _g, a, e in t.where:
                by_seg.setdefault(i, []).append((t, a, e))
        for i, lst in by_seg.items():
            seg = self._segs[i]
            g, sc = self._sum_segment(seg, [self._gather(seg, t, a, e) for t, a, e in lst], mask)
            g, sc = _top_k(g, sc, k)
            all_rows.append(g)
            all_sc.append(sc)
        if not all_rows:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        return _top_k(np.concatenate(all_rows), np.concatenate(all_sc), k)

    def _score_rows(self, terms: list[_Term], rows: np.ndarray) -> np.ndarray:
        """Exact scores of the given (sorted, live) global rows, summed in canonical
        term order: bit-identical to :meth:`_exact`."""
        score = np.zeros(rows.size, np.float64)
        if rows.size == 0:
            return score
        cuts = np.searchsorted(rows, self._bases).tolist()  # rows of segment i: cuts[i]:cuts[i+1]
        for t in terms:
            for i, _g, a, e in t.where:
                lo, hi = cuts[i], cuts[i + 1]
                if lo == hi:
                    continue
                s = self._segs[i]
                local = rows[lo:hi] - s.base
                w, found = self._lookup(s, t, a, e, local)
                if found.size:
                    score[lo + found] += w
        return score

    def _lookup(self, s: _Seg, t: _Term, a: int, e: int, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weights of term ``t`` for the local rows that have it, and their positions."""
        docs = s.seg.docs[a:e]
        pos = np.searchsorted(docs, local)
        ok = pos < docs.shape[0]
        ok[ok] = docs[pos[ok]] == local[ok]
        found = np.flatnonzero(ok)
        if found.size == 0:
            return np.empty(0), found
        p = pos[found]
        return self._weights(s, t, docs[p], s.seg.tf[a:e][p]), found

    def _bound(self, t: _Term) -> float:
        """An upper bound on what ``t`` adds to any document's score. Per segment, the
        stored ``max_w`` (the largest tf part at the segment's avgdl A_s) scales by at
        most max(1, avgdl / A_s): the tf part grows with avgdl, and by no more than
        that factor. A segment built with other (k1, b) gets the supremum k1 + 1."""
        k1, b = self.params.k1, self.params.b
        best = 0.0
        for i, g, _a, _e in t.where:
            s = self._segs[i].seg
            bp = s.bound
            if bp["k1"] == k1 and bp["b"] == b and bp["avgdl"] > 0:
                v = float(s.max_w[g]) * max(1.0, self.avgdl / bp["avgdl"])
            else:
                v = k1 + 1
            best = max(best, v)
        return t.idf * best * t.count * (1 + _SLACK)

    def _maxscore(self, terms: list[_Term], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """MaxScore in two phases (module docstring).

        OR phase: terms by decreasing upper bound are read in full. After each, the
        partial scores (over the terms read so far) of a few probe documents (the
        current best k and the term's 2k highest-weighted postings) give ``theta``, a
        lower bound of the final k-th score (partial scores only grow). Once the
        remaining terms' bounds sum below ``theta``, no document outside the postings
        read can reach the top k. AND phase: the remaining terms are looked up for those
        candidates only, dropping the ones whose partial score plus the remaining bound
        is below ``theta``.
        """
        for t in terms:
            t.ub = self._bound(t)
        by_ub = sorted(terms, key=lambda t: -t.ub)
        ubs = np.asarray([t.ub for t in by_ub])
        rest = np.concatenate([np.cumsum(ubs[::-1])[::-1], [0.0]])  # rest[j] = sum ub[j:]
        or_rows: list[np.ndarray] = []  # per term read: global rows (ascending), weights
        or_vals: list[np.ndarray] = []
        pieces: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        top = np.empty(0, np.int64)
        theta = -np.inf
        j = 0
        while j < len(by_ub):
            t = by_ub[j]
            j += 1
            gr, gv = [], []
            for i, _g, a, e in t.where:
                s = self._segs[i]
                docs, w = self._gather(s, t, a, e)
                pieces.setdefault(i, []).append((docs, w))
                gr.append(docs.astype(np.int64) + s.base)
                gv.append(w)
            r = np.concatenate(gr) if len(gr) > 1 else gr[0]
            v = np.concatenate(gv) if len(gv) > 1 else gv[0]
            if mask is not None:
                keep = mask[r]
                r, v = r[keep], v[keep]
            if r.size == 0:
                continue
            or_rows.append(r)
            or_vals.append(v)
            probe = r[np.argpartition(-v, 2 * k - 1)[: 2 * k]] if r.size > 2 * k else r
            probe = np.union1d(probe, top)
            ps = np.zeros(probe.size)
            for rr, vv in zip(or_rows, or_vals):
                pos = np.minimum(np.searchsorted(rr, probe), rr.size - 1)
                ps += np.where(rr[pos] == probe, vv[pos], 0.0)
            if probe.size >= k:
                best = np.argpartition(-ps, k - 1)[:k]
                top = probe[best]
                theta = max(theta, float(ps[best].min()))
                if rest[j] < theta * (1 - _SLACK):
                    break
        del or_rows, or_vals
        # the candidates: every document in the postings read, with its partial score
        parts = [self._sum_segment(self._segs[i], pc, mask) for i, pc in sorted(pieces.items())]
        del pieces
        if not parts:
            return np.empty(0, np.int64), np.empty(0)
        cand = np.concatenate([p[0] for p in parts])
        part = np.concatenate([p[1] for p in parts])
        # AND phase: the remaining terms, for the surviving candidates only
        for jj in range(j, len(by_ub)):
            keep = part + rest[jj] >= theta * (1 - _SLACK)
            cand, part = cand[keep], part[keep]
            if cand.size == 0:
                break
            t = by_ub[jj]
            cuts = np.searchsorted(cand, self._bases).tolist()
            add = np.zeros(cand.size)
            for i, _g, a, e in t.where:
                lo, hi = cuts[i], cuts[i + 1]
                if lo == hi:
                    continue
                s = self._segs[i]
                w, found = self._lookup(s, t, a, e, cand[lo:hi] - s.base)
                add[lo + found] = w
            part = part + add
        if cand.size > k:
            theta = max(theta, float(np.partition(part, cand.size - k)[cand.size - k]))
        cand = cand[part >= theta * (1 - _SLACK)]
        # recompute in canonical term order: bit-identical to the exact mode
        return _top_k(cand, self._score_rows(terms, cand), k)


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``n`` threads for segment groups (created once per size)."""
    with _POOLS_LOCK:
        p = _POOLS.get(n)
        if p is None:
            p = _POOLS[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="medrag-store")
        return p


def _top_k(cand: np.ndarray, sc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` by score, ties to the lower row (``cand`` need not be sorted)."""
    if cand.size > k:
        part = np.argpartition(-sc, k - 1)[:k]
        threshold = sc[part].min()
        sel = np.flatnonzero(sc >= threshold)
        cand, sc = cand[sel], sc[sel]
    order = np.lexsort((cand, -sc))[:k]
    return cand[order], sc[order]
