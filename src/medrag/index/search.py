"""Search over an index: BM25, dense or hybrid (fused) runs over the rows a filter
allows, turned into :class:`~medrag.types.Passage` objects."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..retrieve.fusion import convex, ranked, rrf
from ..types import Passage
from .config import Mode
from .filters import Filters, row_mask

if TYPE_CHECKING:
    from .core import Index

__all__ = ["check_query_args", "search_locked"]


def check_query_args(ix: "Index", k: int, mode: str) -> Mode:
    """``mode`` as searched (``"hybrid"`` on a lexical-only index is ``"bm25"``); a
    ConfigError for a bad ``k`` or ``mode``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer, not {k!r}")
    if mode not in ("hybrid", "bm25", "dense"):
        raise ConfigError(f"mode must be hybrid, bm25 or dense, not {mode!r}")
    if mode == "hybrid" and ix._encoder is None:
        return "bm25"
    if mode == "dense" and ix._encoder is None:
        raise ConfigError("this index has no dense vectors; search with mode='bm25'")
    return mode  # type: ignore[return-value]


def search_locked(
    ix: "Index",
    query: str,
    qvec: np.ndarray | None,
    k: int,
    filters: Filters | None,
    mode: Mode,
    boost: tuple[tuple[str, int, float], ...] = (),
) -> list[Passage]:
    """The ``k`` best passages (the caller holds the read lock). ``boost``: checked by
    :func:`medrag.index.grades.check_boost`; it multiplies the final score of graded
    rows among the candidates (with a boost, BM25-only and dense-only searches first
    take ``fusion.candidates`` rows, like hybrid search, so that a boosted row below
    rank ``k`` can rise)."""
    k = min(k, ix._bm25.n_rows)  # a huge k never reaches FAISS (HNSW allocates k-sized buffers)
    if k == 0:
        return []
    mask = row_mask(ix, filters)
    tokens = ix.config.analyzer.tokenize(query)
    runs: dict[str, dict[int, float]] = {}
    n = min(max(ix.config.fusion.candidates, k), ix._bm25.n_rows) if boost else k
    if mode == "bm25":
        rows, sc = ix._bm25.search(tokens, n, mask=mask) if tokens else ([], [])
        fused = {int(r): float(s) for r, s in zip(rows, sc)}
        runs["bm25"] = dict(fused)
    elif mode == "dense":
        assert ix._vectors is not None and qvec is not None
        rows, sc = ix._vectors.search(qvec, n, allowed=mask)
        fused = {int(r): float(s) for r, s in zip(rows, sc)}
        runs["dense"] = dict(fused)
    else:
        assert ix._vectors is not None and qvec is not None
        c = min(max(ix.config.fusion.candidates, k), ix._bm25.n_rows)
        b_rows, _ = ix._bm25.search(tokens, c, mask=mask) if tokens else (np.zeros(0, np.int64), None)
        d_rows, _ = ix._vectors.search(qvec, c, allowed=mask)
        union = np.union1d(np.asarray(b_rows, np.int64), np.asarray(d_rows, np.int64))
        if union.size == 0:
            return []
        b_sc = ix._bm25.scores_of(tokens, union) if tokens else np.zeros(union.size)
        runs["bm25"] = {int(r): float(s) for r, s in zip(union.tolist(), b_sc.tolist())}
        d_sc = ix._vectors.scores(qvec, union)
        runs["dense"] = {int(r): float(s) for r, s in zip(union, d_sc)}
        fc = ix.config.fusion
        if fc.method == "rrf":
            rank_runs = {
                "bm25": {int(r): runs["bm25"][int(r)] for r in b_rows},
                "dense": {int(r): runs["dense"][int(r)] for r in d_rows},
            }
            fused = rrf(rank_runs, k=fc.rrf_k, weights={"bm25": fc.bm25_weight, "dense": fc.dense_weight})
        else:
            fused = convex(runs, {"bm25": fc.bm25_weight, "dense": fc.dense_weight})
    factor: dict[int, float] = {}
    if boost and fused:
        cand = np.fromiter(fused, np.int64, len(fused))
        for r, f in zip(cand.tolist(), ix._grade_table().factors(cand, boost).tolist()):
            if f != 1.0:
                s = fused[r]
                fused[r] = s * f if s >= 0 else s / f
                factor[r] = f
    top = ranked(fused)[:k]
    out = []
    for rank, (row, score) in enumerate(top, start=1):
        chunk = ix.chunk(row)
        out.append(
            Passage(
                chunk=chunk,
                source=ix._docs[int(ix._chunk_doc[row])],
                score=float(score),
                rank=rank,
                scores={name: run[row] for name, run in runs.items() if row in run}
                | ({"boost": factor[row]} if row in factor else {}),
            )
        )
    return out
