"""Search across the segments of one generation with global BM25 statistics.

Two modes, the same top-k (ties broken by the lower global row) and bit-identical
scores:

``exact``
    Every posting of every query term is read, weighted and summed, segment by segment
    (``np.unique`` + ``np.bincount`` when the postings are few against the segment,
    a dense ``bincount`` otherwise), as ``BM25Index.search`` does.

``maxscore``
    MaxScore (H. Turtle and J. Flood, "Query evaluation: strategies and optimizations",
    IP&M 31(6), 1995), vectorized. Each query term gets an upper bound on what it can add
    to any document (from its largest tf and shortest document, per segment). A
    threshold ``theta`` is taken from the exact scores of a few seed documents (postings
    of the rarest terms), so the final k-th score is at least ``theta``. Terms are sorted
    by bound; the longest tail whose bounds sum below ``theta`` is "non-essential": a
    document having only those terms cannot reach the top k. Only the essential terms'
    postings are read in full; candidates whose partial score plus the remaining bound
    falls below ``theta`` are dropped term by term, and the non-essential terms are
    looked up for the survivors by binary search in their (memory-mapped) postings.
    The survivors' scores are then recomputed in the canonical term order, so they are
    bit-identical to ``exact``. Safe (exact top-k) by construction; how much it saves
    depends on the query (benchmarks/bench_engines.py measures it on real queries).

Summation order: a document's score is summed over the query's distinct terms in
sorted order (``BM25Index`` sums in its term-id order), so scores equal ``BM25Index``'s
and rank-bm25's to float64 rounding (~1e-15 relative), not necessarily bit for bit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np

from ..errors import ConfigError, IndexFormatError
from ..retrieve.analyzer import Analyzer
from ..retrieve.bm25 import BM25Params
from .format import Segment, verify_segment
from .manifest import Manifest, check_file, read_current
from .stats import idf_floor

__all__ = ["Hit", "StoreSearcher"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
_SPARSE_FACTOR = 8  # sparse (unique) path when postings * 8 < segment rows
_SLACK = 1e-9  # relative slack on upper bounds against float rounding
_SEEDS_PER_TERM = 1000
_SEED_TERMS = 3


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
        for t in sorted(counts):  # canonical order: sorted terms
            where, df = [], 0
            for i, s in enumerate(self._segs):
                g = s.seg.find(t)
                if g < 0:
                    continue
                a, e = int(s.seg.post_ptr[g]), int(s.seg.post_ptr[g + 1])
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

    def idf(self, term: str) -> float:
        """The idf BM25 uses for ``term`` (0.0 for a term no live document has)."""
        ts = self._terms([term])
        return ts[0].idf if ts else 0.0

    def _weights(self, s: _Seg, term: _Term, docs: np.ndarray, tf: np.ndarray) -> np.ndarray:
        k1, b = self.params.k1, self.params.b
        dl = s.seg.doc_len[docs].astype(np.float64)
        norm = k1 * (1 - b + b * dl / self.avgdl)
        tff = tf.astype(np.float64)
        w = term.idf * (tff * (k1 + 1) / (tff + norm))
        return w * term.count if term.count > 1 else w

    # ------------------------------------------------------------------ search

    def search(
        self,
        query_tokens: Sequence[str],
        k: int = 10,
        *,
        mode: Literal["exact", "maxscore"] = "maxscore",
        mask: np.ndarray | None = None,
    ) -> list[Hit]:
        """The ``k`` best live documents sharing a term with the query, as :class:`Hit`."""
        rows, scores = self.search_rows(query_tokens, k, mode=mode, mask=mask)
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
        mode: Literal["exact", "maxscore"] = "maxscore",
        mask: np.ndarray | None = None,
        df: Mapping[str, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scores)``: int64 global rows and float64 scores, best first, ties to
        the lower row. ``mask`` (bool, length :attr:`n_rows`) keeps only rows where it
        is True. ``df``: global live document frequencies of the query terms, for a
        shard opened with ``segments=`` (the sum of every shard's :meth:`local_df`)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, not {k!r}")
        if mode not in ("exact", "maxscore"):
            raise ConfigError(f"mode must be 'exact' or 'maxscore', not {mode!r}")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != (self.n_rows,):
                raise ConfigError(f"mask must be a boolean array of shape ({self.n_rows},)")
        terms = self._terms(query_tokens, df)
        if not terms or self.n_docs == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        if mode == "maxscore" and all(t.idf > 0 for t in terms):
            return self._maxscore(terms, int(k), mask)
        return self._exact(terms, int(k), mask)

    def _accumulate(
        self, s: _Seg, lst: list[tuple[_Term, int, int]], mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Global rows and summed weights of every live posting of the given terms in
        one segment (terms summed in the order given)."""
        rows, vals = [], []
        for t, a, e in lst:
            docs, tf = s.seg.docs[a:e], s.seg.tf[a:e]
            if s.alive is not None:
                keep = s.alive[docs]
                docs, tf = docs[keep], tf[keep]
            rows.append(docs)
            vals.append(self._weights(s, t, docs, tf))
        r = np.concatenate(rows) if len(rows) > 1 else np.asarray(rows[0])
        v = np.concatenate(vals) if len(vals) > 1 else vals[0]
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
            g, sc = self._accumulate(self._segs[i], lst, mask)
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

    def _live(self, rows: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        if rows.size == 0:
            return rows
        seg_of = np.searchsorted(self._bases, rows, side="right") - 1
        keep = np.ones(rows.size, bool)
        for i in np.unique(seg_of).tolist():
            s = self._segs[i]
            if s.alive is not None:
                sel = seg_of == i
                keep[sel] = s.alive[rows[sel] - s.base]
        if mask is not None:
            keep &= mask[rows]
        return rows[keep]

    def _bound(self, t: _Term) -> float:
        k1, b = self.params.k1, self.params.b
        best = 0.0
        for i, g, _a, _e in t.where:
            s = self._segs[i].seg
            mt = float(s.max_tf[g])
            mdl = float(s.min_dl[g])
            best = max(best, mt * (k1 + 1) / (mt + k1 * (1 - b + b * mdl / self.avgdl)))
        return t.idf * best * t.count * (1 + _SLACK)

    def _maxscore(self, terms: list[_Term], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        for t in terms:
            t.ub = self._bound(t)
        by_ub = sorted(terms, key=lambda t: -t.ub)
        # seeds: the first postings of the highest-bound terms give a valid threshold
        seeds = []
        for t in by_ub[:_SEED_TERMS]:
            got = 0
            for i, _g, a, e in t.where:
                take = min(e - a, _SEEDS_PER_TERM - got)
                seeds.append(self._segs[i].seg.docs[a : a + take].astype(np.int64) + self._segs[i].base)
                got += take
                if got >= _SEEDS_PER_TERM:
                    break
        seed_rows = self._live(np.unique(np.concatenate(seeds)), mask) if seeds else np.empty(0, np.int64)
        if seed_rows.size < k:
            return self._exact(terms, k, mask)
        seed_sc = self._score_rows(terms, seed_rows)
        theta = float(np.partition(seed_sc, seed_sc.size - k)[seed_sc.size - k])
        ubs = np.asarray([t.ub for t in by_ub])
        rest = np.concatenate([np.cumsum(ubs[::-1])[::-1], [0.0]])  # rest[j] = sum ub[j:]
        n_ess = int(np.argmax(rest < theta))  # first j whose tail cannot reach theta
        # candidates: union of the essential terms' postings, with partial scores
        cand_rows, cand_sc = [], []
        by_seg: dict[int, list[tuple[_Term, int, int]]] = {}
        for t in by_ub[:n_ess]:
            for i, _g, a, e in t.where:
                by_seg.setdefault(i, []).append((t, a, e))
        for i, lst in sorted(by_seg.items()):
            g, sc = self._accumulate(self._segs[i], lst, mask)
            keep = sc + rest[n_ess] >= theta * (1 - _SLACK)
            cand_rows.append(g[keep])
            cand_sc.append(sc[keep])
        rows = np.concatenate(cand_rows) if cand_rows else np.empty(0, np.int64)
        part = np.concatenate(cand_sc) if cand_sc else np.empty(0)
        # non-essential terms, largest bound first: look up, then prune
        for j in range(n_ess, len(by_ub)):
            if rows.size == 0:
                break
            t = by_ub[j]
            cuts = np.searchsorted(rows, self._bases).tolist()
            add = np.zeros(rows.size)
            for i, _g, a, e in t.where:
                lo, hi = cuts[i], cuts[i + 1]
                if lo == hi:
                    continue
                s = self._segs[i]
                w, found = self._lookup(s, t, a, e, rows[lo:hi] - s.base)
                add[lo + found] = w
            part = part + add
            keep = part + rest[j + 1] >= theta * (1 - _SLACK)
            rows, part = rows[keep], part[keep]
        final = self._score_rows(terms, rows)
        return _top_k(rows, final, k)


def _top_k(cand: np.ndarray, sc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` by score, ties to the lower row (``cand`` need not be sorted)."""
    if cand.size > k:
        part = np.argpartition(-sc, k - 1)[:k]
        threshold = sc[part].min()
        sel = np.flatnonzero(sc >= threshold)
        cand, sc = cand[sel], sc[sel]
    order = np.lexsort((cand, -sc))[:k]
    return cand[order], sc[order]
