"""What a :class:`~medrag.store.search.StoreSearcher` holds per segment and per query term.

Plain records shared by the searcher (search.py) and its two scoring paths
(search_numpy.py, search_compiled.py), which read them and never change them after a
query's terms are resolved (``_Seg.norm`` is filled once, idempotently).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .format import Segment

__all__: list[str] = []

SLACK = 1e-9  # relative slack on upper bounds against float rounding


@dataclass
class _Seg:
    seg: Segment
    base: int  # global row of local row 0
    alive: np.ndarray | None  # bool (n_docs,) when the segment has tombstones
    del_terms: np.ndarray | None  # sorted local term ids with deleted docs
    del_counts: np.ndarray | None
    norm: np.ndarray | None = None  # length normalization per document (StoreSearcher._norm)


@dataclass
class _Term:
    term: str
    count: int
    idf: float
    # per segment index: (local term id, start, end)
    where: list[tuple[int, int, int, int]]
    ub: float = 0.0
    local_df: int = 0

