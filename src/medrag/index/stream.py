"""Build a saved index from a stream of documents, in bounded memory (issue 16).

:meth:`Index.build` holds the corpus (documents, chunks, an in-memory BM25 index) until
it is saved. :func:`build_to` writes a new generation of an index directory as the
documents arrive instead: each batch of ``batch_docs`` documents is chunked and
analyzed, its lines appended to ``docs.jsonl`` / ``chunks.jsonl`` (hashed as written),
its tokens handed to a :class:`~medrag.store.StoreWriter` that writes a segment each
``segment_tokens`` tokens (the segments engine, ``lexical="segments"``), and nothing of
it is kept but per-row numbers: 12 bytes per chunk (its offset and its document), ~37
bytes per document (offsets, year, retraction flag, the id's 64-bit digest and its row in
the sorted runs that find a repeated id) and the grades of recommendation chunks. The files are those :meth:`Index.save` writes for the
same documents (``docs.jsonl``, ``chunks.jsonl`` and the id and offset arrays byte for
byte; the store segment by segment as the writer cuts them, so scores are identical),
committed the same way: staged beside the target under its lock, fsync'd, swapped in
atomically, the previous generation kept until then (a failure or Ctrl-C leaves it as
it was and removes the staging directory).

Lexical only: dense vectors for a corpus of this size are built apart (GPU or Ray
actors, :mod:`medrag.store.ray_embed`, and the disk-backed IVF-PQ of
:mod:`medrag.retrieve.ann`). Document ids must be unique in the stream (as in a PubMed
baseline): within a batch the last version wins, as in :meth:`Index.add`; an id seen in
an earlier batch raises :class:`ConfigError` with the batch that repeats it (found by
its 64-bit digest among sorted runs of the digests so far), and nothing is committed
(apply update files to the saved index with :meth:`Index.add` / :meth:`Index.delete`).
"""

from __future__ import annotations

import array
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .. import _indexdir
from .._docids import digest, fingerprint_line, sha_records
from .._hashing import HashingWriter, save_npy
from ..chunking import chunk_document
from ..errors import ConfigError
from ..progress import ProgressSpec, resolve_progress, track
from ..store import StoreWriter
from ..store.writer import DEFAULT_SEGMENT_TOKENS
from ..types import Document, SourceInfo
from .config import FORMAT, IndexConfig
from .grades import GradeTable
from .persist import finish_generation
from .storelex import DIRECTORY, store_hashes

__all__ = ["build_to"]

logger = logging.getLogger("medrag.index")


def _line(obj: dict) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def build_to(
    directory: str | os.PathLike[str],
    documents: Iterable[Document],
    config: IndexConfig | None = None,
    *,
    batch_docs: int = 20_000,
    segment_tokens: int = DEFAULT_SEGMENT_TOKENS,
    progress: ProgressSpec = None,
    lock_timeout: float | None = 60.0,
) -> Path:
    """Write ``documents`` as a new generation of the index at ``directory`` (module
    docstring) and return ``directory``; load it with :meth:`Index.load`.

    ``config.encoder`` must be None (lexical only). ``batch_docs``: documents chunked
    and analyzed at a time (memory: those documents, their chunks and tokens).
    ``segment_tokens``: tokens per store segment. ``progress``: as in
    :meth:`Index.build` (a stage per document read). The target follows
    :meth:`Index.save`'s rules: a new path, an empty directory or an index; anything
    else is refused before a document is read."""
    config = config or IndexConfig(encoder=None)
    if not isinstance(config, IndexConfig):
        raise ConfigError(f"config must be an IndexConfig, not {type(config).__name__}")
    if config.encoder is not None:
        raise ConfigError(
            "build_to() writes a lexical index: pass IndexConfig(encoder=None) and build the vectors "
            "apart (medrag.store.ray_embed, retrieve.ann), or use Index.build(...).save() for a corpus that fits memory"
        )
    if isinstance(batch_docs, bool) or not isinstance(batch_docs, int) or batch_docs < 1:
        raise ConfigError(f"batch_docs must be a positive integer, not {batch_docs!r}")
    if isinstance(documents, (str, bytes, Document)) or not hasattr(documents, "__iter__"):
        raise ConfigError(f"build_to() takes an iterable of Document objects, not {type(documents).__name__}")
    prog = resolve_progress(progress)
    given = Path(directory)
    target = _indexdir.save_target(given, FORMAT)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _indexdir.write_lock(target, lock_timeout):
        where = _indexdir.check_target(target, FORMAT)
        _indexdir.sweep(target)
        index_id = uuid.uuid4().hex[:16]
        staging = _indexdir.staging_name(target, index_id)
        committed = False
        old: Path | None = None
        try:
            _indexdir.make_staging(staging)
            _write(staging, index_id, track(documents, "read", progress=prog, unit="doc"), config, batch_docs, segment_tokens)
            _indexdir.fsync_tree(staging)
            old = _indexdir.commit(staging, where, index_id)
            committed = True
        finally:
            if not committed:
                _indexdir.remove_staging(staging)
        if old is not None:
            _indexdir.retire(old)
    logger.info("built index %s at %s", index_id, target)
    return given


class _Writer:
    """The files of one streamed generation, appended batch by batch."""

    def __init__(self, d: Path, config: IndexConfig, segment_tokens: int) -> None:
        self.config = config
        self._docs_f = open(d / "docs.jsonl", "wb")  # noqa: SIM115 - closed by close()
        self._chunks_f = open(d / "chunks.jsonl", "wb")  # noqa: SIM115
        self._ids_f = open(d / "doc_ids.bin", "w+b")  # noqa: SIM115 - read back by _check_new
        self._shas_f = open(d / ".doc_sha256.raw", "wb")  # noqa: SIM115 - S64 records, made .npy at the end
        self.docs, self.chunks, self.ids = HashingWriter(self._docs_f), HashingWriter(self._chunks_f), HashingWriter(self._ids_f)
        self.doc_off, self.chunk_off, self.id_off = array.array("q", [0]), array.array("q", [0]), array.array("q", [0])
        self.years, self.retracted = array.array("i"), array.array("b")
        self.chunk_doc = array.array("i")
        self.fingerprint = hashlib.sha256()
        self.grades = GradeTable.empty()
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted digests, rows): _check_new
        self.store = StoreWriter(d / DIRECTORY, params=config.bm25, analyzer=config.analyzer, segment_tokens=segment_tokens)

    def _check_new(self, ids: list[str]) -> None:
        """ConfigError if one of ``ids`` was written by an earlier batch. The digests of
        the rows so far are kept as sorted runs, merged when a run is no longer shorter
        than the one before it (O(log n) runs, O(n log n) in all); an equal digest is
        confirmed by reading the earlier id back."""
        h = np.fromiter((digest(i) for i in ids), np.uint64, len(ids))
        base = len(self.years)
        for run_h, run_rows in self._runs:
            pos = np.minimum(np.searchsorted(run_h, h), run_h.size - 1)
            for k in np.flatnonzero(run_h[pos] == h).tolist():
                j = int(pos[k])
                while j < run_h.size and run_h[j] == h[k]:
                    r = int(run_rows[j])
                    self._ids_f.flush()
                    a, b = int(self.id_off[r]), int(self.id_off[r + 1])
                    if os.pread(self._ids_f.fileno(), b - a, a) == ids[k].encode("utf-8"):
                        raise ConfigError(
                            f"document id {ids[k]!r} appears twice in the stream (documents {r} and {base + k} "
                            "of the index, in different batches): a streamed build needs unique ids; "
                            "apply later versions with Index.add after it"
                        )
                    j += 1
        order = np.argsort(h, kind="stable")
        self._runs.append((h[order], order.astype(np.int64) + base))
        while len(self._runs) > 1 and self._runs[-1][0].size >= self._runs[-2][0].size:
            (h2, r2), (h1, r1) = self._runs.pop(), self._runs.pop()
            hh, rr = np.concatenate([h1, h2]), np.concatenate([r1, r2])
            by = np.argsort(hh, kind="stable")
            self._runs.append((hh[by], rr[by]))

    def add(self, batch: list[Document]) -> None:
        latest: dict[str, Document] = {}
        for d in batch:
            latest[d.id] = d  # the last version wins within a batch (as Index.add)
        self._check_new(list(latest))
        cfg = self.config
        for doc in latest.values():
            row = len(self.years)
            src = SourceInfo.from_document(doc)
            self.docs.write(_line(src.to_dict()))
            self.doc_off.append(self.docs.size)
            b = doc.id.encode("utf-8")
            self.ids.write(b)
            self.id_off.append(self.ids.size)
            sha = src.source_sha256
            self._shas_f.write(sha_records([sha]).tobytes())
            self.fingerprint.update(fingerprint_line(row, doc.id, sha))
            self.years.append(src.year if src.year is not None else -1)
            self.retracted.append(bool(src.retracted))
            chunks = chunk_document(doc, cfg.chunking)
            first = len(self.chunk_doc)
            for c in chunks:
                self.chunks.write(_line(c.to_dict()))
                self.chunk_off.append(self.chunks.size)
                self.chunk_doc.append(row)
            self.store.add_many([c.id for c in chunks], [cfg.analyzer.tokenize(c.index_text) for c in chunks])
            g = GradeTable.of_chunks(chunks, first)
            if g.rows.size:
                self.grades = self.grades.extend(g)

    def sorted_digests(self) -> tuple[np.ndarray, np.ndarray]:
        """Every row's id digest, ascending, and the row of each (``doc_id_hash.npy``,
        ``doc_id_order.npy``): the runs merged. Equal digests keep the lower row first,
        as a stable sort of the rows' digests does (the runs are in row order)."""
        if not self._runs:
            return np.zeros(0, np.uint64), np.zeros(0, np.int64)
        h = np.concatenate([r[0] for r in self._runs])
        rows = np.concatenate([r[1] for r in self._runs])
        by = np.argsort(h, kind="stable")
        return h[by], rows[by]

    def close(self) -> None:
        for f in (self._docs_f, self._chunks_f, self._ids_f, self._shas_f):
            f.close()


def _write(d: Path, index_id: str, documents: Iterable[Document], config: IndexConfig, batch_docs: int, segment_tokens: int) -> None:
    w = _Writer(d, config, segment_tokens)
    try:
        batch: list[Document] = []
        for i, doc in enumerate(documents):
            if not isinstance(doc, Document):
                raise ConfigError(f"build_to(): item {i} is a {type(doc).__name__}, not a medrag Document")
            batch.append(doc)
            if len(batch) >= batch_docs:
                w.add(batch)
                batch = []
        if batch:
            w.add(batch)
        n_docs, n_chunks = len(w.years), len(w.chunk_doc)
        w.store.commit()
    finally:
        w.close()
        w.store.close()
    known = {"docs.jsonl": (w.docs.size, w.docs.hexdigest()), "chunks.jsonl": (w.chunks.size, w.chunks.hexdigest()),
             "doc_ids.bin": (w.ids.size, w.ids.hexdigest())}
    h, order = w.sorted_digests()  # no id twice: each batch was checked (_Writer._check_new)
    raw = d / ".doc_sha256.raw"
    shas = np.fromfile(raw, "S64") if n_docs else np.zeros(0, "S64")
    raw.unlink()
    for rel, arr in (
        ("doc_id_offsets.npy", np.frombuffer(w.id_off, np.int64)),
        ("doc_id_hash.npy", h),
        ("doc_id_order.npy", order),
        ("doc_sha256.npy", shas),
        ("doc_offsets.npy", np.frombuffer(w.doc_off, np.int64)),
        ("doc_year.npy", np.frombuffer(w.years, np.int32) if n_docs else np.zeros(0, np.int32)),
        ("doc_retracted.npy", np.frombuffer(w.retracted, np.int8).astype(bool)),
        ("chunk_offsets.npy", np.frombuffer(w.chunk_off, np.int64)),
        ("chunk_doc.npy", np.frombuffer(w.chunk_doc, np.int32) if n_chunks else np.zeros(0, np.int32)),
    ):
        known[rel] = save_npy(d / rel, arr, fsync=False)
    grades = w.grades.save(d)
    known.update(store_hashes(d / DIRECTORY, f"{DIRECTORY}/"))
    finish_generation(
        d, index_id, config=config, known=known, prior=None, fingerprint=w.fingerprint.hexdigest(),
        counts={"documents": n_docs, "chunks": n_chunks}, grades=grades,
        lexical={"engine": "segments", "directory": DIRECTORY}, dense=None,
    )
