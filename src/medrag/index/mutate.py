"""Changing an index in place: add documents (chunk, analyze, embed, append rows),
delete documents (tombstone their rows), and compact the deleted rows away before a save."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from ..chunking import chunk_document
from ..errors import ConfigError
from ..progress import ProgressSpec, embed_with_progress, resolve_progress, tokenize_with_progress, track
from ..types import Chunk, Document, SourceInfo
from .grades import GradeTable

if TYPE_CHECKING:
    from .core import Index

__all__ = ["add", "delete_locked", "compact_locked"]

logger = logging.getLogger("medrag.index")


def add(ix: "Index", documents: Iterable[Document], *, show_progress: bool = False, progress: ProgressSpec = None) -> int:
    """Add documents (chunked, analyzed and embedded); a document whose id is
    already in the index replaces it. Only the new chunks are embedded. Returns
    the number of chunks added. ``progress``: as in :meth:`build`."""
    if ix._vectors is not None and ix._encoder is None:
        raise ConfigError("this index was loaded without its encoder; load it with one to add documents")
    if isinstance(documents, (str, bytes, Document)):
        raise ConfigError(
            f"add() takes an iterable of Document objects, not a single {type(documents).__name__}"
            + (": pass [document]" if isinstance(documents, Document) else "")
        )
    if not hasattr(documents, "__iter__"):
        raise ConfigError(f"add() takes an iterable of Document objects, not {type(documents).__name__}")
    prog = resolve_progress(progress if progress is not None else (show_progress or None))
    # reading is a stage of its own only when the documents are not read yet
    docs = list(documents) if isinstance(documents, (list, tuple)) else list(
        track(documents, "read", progress=prog, unit="doc"))
    for i, d in enumerate(docs):
        if not isinstance(d, Document):
            raise ConfigError(
                f"add(): item {i} is a {type(d).__name__}, not a medrag Document "
                "(make documents with medrag.ingest or medrag.types.Document)"
            )
    latest: dict[str, Document] = {}
    for d in docs:
        latest[d.id] = d  # the last version wins
    docs = list(latest.values())
    chunks: list[Chunk] = []
    owners: list[int] = []
    for d in track(docs, "chunk", progress=prog, unit="doc"):
        cs = chunk_document(d, ix.config.chunking)
        chunks.extend(cs)
    if not chunks and not docs:
        return 0
    tokens = tokenize_with_progress(ix.config.analyzer, [c.index_text for c in chunks], prog)
    vecs = None
    if ix._encoder is not None and chunks:
        vecs = embed_with_progress(ix._encoder, [c.index_text for c in chunks], prog)
        if vecs.shape != (len(chunks), ix._encoder.dim):
            raise ConfigError(f"encoder returned {vecs.shape}, expected {(len(chunks), ix._encoder.dim)}")
    with ix._rw.write():
        ids = ix._docs.ids
        replaced = [d.id for d in docs if (r := ids.row(d.id)) is not None and ix._doc_alive[r]]
        if replaced:
            delete_locked(ix, replaced)
        ix._docs.extend([SourceInfo.from_document(d) for d in docs])
        ix._doc_alive = np.concatenate([ix._doc_alive, np.ones(len(docs), bool)])
        for c in chunks:
            owners.append(ids.row(c.doc_id))
        ix._bm25.add(tokens)
        if ix._vectors is not None and vecs is not None:
            ix._vectors.add(vecs)
        if ix._grades is not None:  # rows n_rows - len(chunks) .. n_rows - 1 are the new chunks
            ix._grades = ix._grades.extend(GradeTable.of_chunks(chunks, ix._bm25.n_rows - len(chunks)))
        ix._chunk_doc = np.concatenate([np.asarray(ix._chunk_doc), np.asarray(owners, dtype=np.int32)])
        ix._new_chunks.extend(chunks)
        ix._refresh_doc_arrays()
        ix._version += 1
    logger.info("added %d document(s), %d chunk(s)", len(docs), len(chunks))
    return len(chunks)


def delete_locked(ix: "Index", doc_ids: list[str]) -> int:
    rows_of = [r for i in doc_ids if (r := ix._docs.ids.row(i)) is not None and ix._doc_alive[r]]
    if not rows_of:
        return 0
    dead = np.zeros(len(ix._docs), bool)
    dead[rows_of] = True
    ix._bm25.delete(np.flatnonzero(dead[ix._chunk_doc]))
    ix._doc_alive = ix._doc_alive & ~dead
    ix._version += 1
    return len(rows_of)


def compact_locked(ix: "Index") -> None:
    alive = np.asarray(ix._bm25.alive)
    if alive.all() and ix._doc_alive.all():
        return
    grades = ix._grade_table()  # (read from the chunks once for an index saved without it)
    old_rows = ix._bm25.compact()
    if ix._vectors is not None:
        ix._vectors.keep(old_rows)
    keep_docs = np.flatnonzero(ix._doc_alive)
    new_doc_of_old = np.full(len(ix._docs), -1, np.int64)
    new_doc_of_old[keep_docs] = np.arange(len(keep_docs))
    ix._chunk_doc = new_doc_of_old[np.asarray(ix._chunk_doc)[old_rows]].astype(np.int32)
    ix._docs = ix._docs.take(keep_docs)
    ix._doc_alive = np.ones(len(ix._docs), bool)
    ix._grades = grades.take(old_rows)
    # the kept rows: loaded chunks stay lines of chunks.jsonl (a view; nothing is read or
    # parsed: a save copies their bytes), added ones stay in memory
    n_stored = len(ix._store)
    stored = old_rows[old_rows < n_stored]
    ix._new_chunks = [ix._new_chunks[int(r) - n_stored] for r in old_rows[stored.size :]]
    ix._store = ix._store.take(stored)
    ix._refresh_doc_arrays()
    ix._version += 1
