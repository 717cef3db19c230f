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

An index loaded from ``"segments"`` is changed in place (:mod:`.storelex`): added rows
become a new segment and deleted rows tombstones at the next save, the store's
generation is committed inside the index's own atomic save, and segments are merged by
the tiered policy. The chunk store and filters are still per corpus, not per segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from .storelex import DIRECTORY, StoreLexical, add_rows

if TYPE_CHECKING:
    from ..retrieve.bm25 import BM25Index

__all__ = ["ENGINES", "StoreLexical", "check_engine", "write_segments"]

ENGINES = ("bm25", "segments")


def check_engine(engine: Any) -> str:
    if engine not in ENGINES:
        raise ConfigError(f"lexical must be one of {list(ENGINES)}, not {engine!r}")
    return str(engine)


def write_segments(bm25: "BM25Index", d: Path, analyzer: Any, chunk_ids: Sequence[str]) -> dict[str, Any]:
    """Write the live rows of ``bm25`` (all rows: a save compacts first) as a new store
    under ``d / "lexical"``: row ``i`` of the store is row ``i`` of the index, its
    tokens each term repeated ``tf`` times (BM25 does not see token order), in segments
    of at most the writer's ``segment_tokens``. Returns the manifest entry."""
    from ..store import StoreWriter

    if not np.asarray(bm25.alive).all():
        raise ConfigError("write_segments needs a compacted index (every row live)")
    with StoreWriter(d / DIRECTORY, params=bm25.params, analyzer=analyzer) as w:
        add_rows(w, bm25, chunk_ids)
    return {"engine": "segments", "directory": DIRECTORY}
