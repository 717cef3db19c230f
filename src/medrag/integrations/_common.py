"""What both adapters attach to a passage: its citation metadata."""

from __future__ import annotations

from typing import Any

from ..display import passage_records
from ..types import Passage

__all__ = ["citation_metadata", "search"]


def citation_metadata(p: Passage) -> dict[str, Any]:
    """A passage's citation metadata as plain JSON values: the columns of
    :func:`medrag.display.passage_records` except the text, plus ``start`` / ``end``
    (the chunk's character span in its document, end exclusive) and ``scores``
    (each retriever's score)."""
    rec = passage_records([p])[0]
    rec.pop("text")
    rec.update(start=p.chunk.start, end=p.chunk.end, scores=dict(p.scores), source="medrag")
    return rec


def search(index: Any, query: str, k: int, filters: Any, mode: str) -> list[Passage]:
    """``index.search`` with the adapter's settings (one place for both adapters)."""
    return list(index.search(query, k=k, filters=filters, mode=mode))
