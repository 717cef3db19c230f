"""Rank fusion as pure functions over ``{doc_id: score}`` dicts.

- :func:`rrf`: reciprocal rank fusion (Cormack, Clarke and Buettcher, "Reciprocal Rank
  Fusion outperforms Condorcet and individual Rank Learning Methods", SIGIR 2009).
- :func:`convex`: a convex combination of normalized scores (Bruch, Gai and Ingber, "An
  Analysis of Fusion Functions for Hybrid Retrieval", ACM TOIS 2023), with min-max
  normalization by default.

Ties are broken by id so that results are deterministic whatever the input order.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

from ..errors import ConfigError

__all__ = ["rrf", "convex", "min_max", "ranked"]

K = TypeVar("K", bound=Hashable)


def ranked(scores: Mapping[K, float]) -> list[tuple[K, float]]:
    """Items sorted by score, highest first; ties by id (as a string), ascending."""
    return sorted(scores.items(), key=lambda kv: (-kv[1], str(kv[0])))


def min_max(scores: Mapping[K, float]) -> dict[K, float]:
    """Scale scores to [0, 1]. When all scores tie (or there is one), every item gets
    1.0: they are equally the best, and nothing is divided by zero."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:
        return {k: 1.0 for k in scores}
    span = hi - lo
    return {k: (v - lo) / span for k, v in scores.items()}


def rrf(runs: Mapping[str, Mapping[K, float]], k: float = 60.0, weights: Mapping[str, float] | None = None) -> dict[K, float]:
    """Reciprocal rank fusion: ``score(d) = sum_r w_r / (k + rank_r(d))``, ranks from 1.

    ``k`` (``rrf_k``, 60 in Cormack et al.) damps the weight of the very top ranks so
    that one retriever's first hit cannot outvote agreement lower down. A document
    absent from a run contributes nothing from it.
    """
    if k < 0:
        raise ConfigError(f"rrf k must be >= 0, not {k}")
    out: dict[K, float] = {}
    for name, run in runs.items():
        w = 1.0 if weights is None else weights.get(name, 0.0)
        for rank, (doc, _) in enumerate(ranked(run), start=1):
            out[doc] = out.get(doc, 0.0) + w / (k + rank)
    return out


def convex(
    runs: Mapping[str, Mapping[K, float]],
    weights: Mapping[str, float],
    normalize: bool = True,
) -> dict[K, float]:
    """``score(d) = sum_r w_r * norm_r(d)`` with min-max normalization per run.

    Every run should score the same candidate set (the union of all retrievers' top
    hits, each scored by every retriever); a document missing from a run counts as
    that run's minimum (0 after normalization).
    """
    if any(w < 0 for w in weights.values()):
        raise ConfigError("fusion weights must be >= 0")
    ids = set().union(*[set(r) for r in runs.values()]) if runs else set()
    out: dict[K, float] = {d: 0.0 for d in ids}
    for name, run in runs.items():
        w = weights.get(name, 0.0)
        if w == 0.0:
            continue
        norm = min_max(run) if normalize else dict(run)
        for d in ids:
            out[d] += w * norm.get(d, 0.0)
    return out
