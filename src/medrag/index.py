"""The hybrid index: BM25 + dense vectors over chunks, fused; saved to and loaded from a
directory; updated in place.

Row ``i`` is the same chunk everywhere: line ``i`` of ``chunks.jsonl``, row ``i`` of the
BM25 matrix and of the vector array. A directory holds::

    manifest.json      format, format_version, library version, created time, index id,
                       corpus fingerprint, chunking, analyzer, BM25 params, encoder
                       (model, prefixes, dim), vector index (kind, FAISS factory),
                       fusion, counts, and the sha256 and size of every file
    docs.jsonl         one SourceInfo per document (what citations and filters need)
    chunks.jsonl       one Chunk per row; chunk_offsets.npy: byte offset of each line
    chunk_doc.npy      the document (line of docs.jsonl) of each row
    bm25/              sparse BM25 arrays (see medrag.retrieve.bm25), no pickle
    dense/vectors.npy  float32 unit vectors; dense/index.faiss for HNSW / IVF-PQ

The index path is a real directory (it survives ``cp -r``, ``cp -a`` and ``tar``).
Saving writes a new generation into a sibling staging directory and swaps it in with
one atomic rename, under a cross-process write lock; a loaded index keeps reading the
generation it loaded. See :mod:`medrag._indexdir` for the commit, locking and clean-up
rules. Indexes written by medrag 0.1 (the path a symbolic link to a hidden sibling)
still load, and the next save turns them into a real directory.

Loading checks the format version, refuses any file the manifest names outside the
directory (or reached through a symbolic link), verifies sizes and sha256 checksums,
and rebuilds the analyzer and the query encoder from the manifest, never from the
caller's defaults. It never loads an encoder from outside the index (the hub, another
folder) unless the caller passes one or opts in with ``trust_encoder=True``; the
default packaged model loads offline from its installed package.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from . import _indexdir
from ._indexparts import ChunkStore, DocTable, RWLock, check_offsets, load_array, safe_member, str_list
from ._io import library_version, sha256_file
from .chunking import ChunkConfig, chunk_document
from .errors import ConfigError, IndexConflictError, IndexFormatError, IndexNotFoundError, IndexVersionError
from .retrieve.analyzer import Analyzer
from .retrieve.bm25 import _ARRAYS as _BM25_ARRAYS
from .retrieve.bm25 import BM25Index, BM25Params
from .retrieve.dense import (
    _PACKAGE_MODELS,
    Encoder,
    EncoderConfig,
    VectorConfig,
    VectorIndex,
    encoder_from_description,
)
from .retrieve.fusion import convex, ranked, rrf
from .progress import ProgressSpec, embed_with_progress, resolve_progress, tokenize_with_progress, track
from .types import Chunk, Document, Passage, SourceInfo

__all__ = ["Index", "IndexConfig", "FusionConfig", "Filters", "FORMAT", "FORMAT_VERSION"]

logger = logging.getLogger(__name__)

FORMAT = "medrag.index"
FORMAT_VERSION = 1
_MANIFEST = _indexdir.MANIFEST
Mode = Literal["hybrid", "bm25", "dense"]


@dataclass(frozen=True, slots=True)
class FusionConfig:
    """How BM25 and dense runs are fused.

    ``method="convex"``: ``w_bm25 * minmax(bm25) + w_dense * minmax(dense)`` over the
    union of both retrievers' top ``candidates`` rows, each scored by both (Bruch et al.
    2023). ``method="rrf"``: reciprocal rank fusion with ``rrf_k`` (Cormack et al. 2009).
    The defaults were chosen on SciFact training claims (benchmarks/bench_index.py):
    convex 0.4/0.6 scored 0.733 nDCG@10 against 0.733 (0.5/0.5), 0.730 (0.3/0.7) and
    0.722 (RRF, k=10); z-score and theoretical-minimum normalizations gave 0.730-0.734.
    """

    method: str = "convex"
    bm25_weight: float = 0.4
    dense_weight: float = 0.6
    rrf_k: float = 60.0
    candidates: int = 100

    def __post_init__(self) -> None:
        if self.method not in ("convex", "rrf"):
            raise ConfigError(f"fusion method must be 'convex' or 'rrf', not {self.method!r}")
        if self.candidates < 1:
            raise ConfigError("fusion candidates must be >= 1")


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """Everything that decides what an index contains; all of it goes in the manifest.

    ``encoder=None`` builds a lexical-only index.
    """

    chunking: ChunkConfig = field(default_factory=ChunkConfig)
    analyzer: Analyzer = field(default_factory=Analyzer)
    bm25: BM25Params = field(default_factory=BM25Params)
    encoder: EncoderConfig | None = field(default_factory=EncoderConfig)
    vectors: VectorConfig = field(default_factory=VectorConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)


@dataclass(frozen=True, slots=True)
class Filters:
    """Metadata filters. Retracted publications are excluded unless ``include_retracted``.

    Attributes:
        year_min / year_max: inclusive bounds; a document with no year passes only when
            both are None.
        publication_types: keep documents with at least one of these (PubMed names,
            e.g. ``"Randomized Controlled Trial"``, ``"Meta-Analysis"``).
        kinds: keep these document kinds (``"pubmed"``, ``"pubmed_book"``, ``"guideline"``).
        mesh: keep documents indexed with at least one of these MeSH descriptors.
        doc_ids: keep only these documents.
        exclude_doc_ids: drop these documents.
    """

    year_min: int | None = None
    year_max: int | None = None
    publication_types: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    mesh: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    exclude_doc_ids: tuple[str, ...] = ()
    include_retracted: bool = False

    def __post_init__(self) -> None:
        for name in ("year_min", "year_max"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ConfigError(f"Filters.{name} must be an integer year or None, not {v!r}")
            object.__setattr__(self, name, int(v))
        for name in ("publication_types", "kinds", "mesh", "doc_ids", "exclude_doc_ids"):
            object.__setattr__(self, name, tuple(str_list(getattr(self, name), f"Filters.{name}", "pubmed")))
        if not isinstance(self.include_retracted, (bool, np.bool_)):
            raise ConfigError(f"Filters.include_retracted must be True or False, not {self.include_retracted!r}")


# --------------------------------------------------------------------------- index


class Index:
    """A hybrid BM25 + dense index over chunks of documents.

    Build with :meth:`build`, reopen with :meth:`load`; :meth:`search` returns
    :class:`~medrag.types.Passage` objects. :meth:`add` and :meth:`delete` change it in
    place; :meth:`save` writes it atomically.

    Thread safety: any number of threads may search at once; :meth:`add`,
    :meth:`delete` and :meth:`save` take an exclusive lock, and a search waits for them.

    Processes: a loaded index keeps reading the generation it loaded, whatever other
    processes save meanwhile; saves to one path are serialized by a file lock, and a
    save refuses (:class:`~medrag.errors.IndexConflictError`) to overwrite a generation
    saved by someone else after this index was loaded. :meth:`close` (or leaving a
    ``with`` block) releases the files and lets a later save remove the generation.
    """

    def __init__(
        self,
        *,
        config: IndexConfig,
        docs: DocTable,
        chunk_doc: np.ndarray,
        store: ChunkStore,
        new_chunks: list[Chunk],
        bm25: BM25Index,
        vectors: VectorIndex | None,
        encoder: Encoder | None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self._docs = docs
        self._doc_row = {d: i for i, d in enumerate(docs.ids)}
        self._doc_alive = np.ones(len(docs), dtype=bool)
        self._chunk_doc = chunk_doc
        self._store = store
        self._new_chunks = new_chunks  # rows len(store) .. n_rows - 1
        self._bm25 = bm25
        self._vectors = vectors
        self._encoder = encoder
        self._manifest = manifest or {}
        self._rw = RWLock()
        self._pin: _indexdir.Pinned | None = None
        self._origin: tuple[str, str] | None = None  # (real path loaded from, index id)
        self._finalizer: weakref.finalize | None = None
        self._refresh_doc_arrays()

    def _adopt_pin(self, pinned: _indexdir.Pinned | None, origin: tuple[str, str] | None) -> None:
        """Hold ``pinned`` (the reader lock on the generation now served) and release
        the previous one."""
        old = self._finalizer
        self._pin, self._origin = pinned, origin
        self._finalizer = weakref.finalize(self, pinned.release) if pinned is not None else None
        if old is not None:
            old()

    def close(self) -> None:
        """Release the index's files and its reader lock (a later save may then delete
        the generation). The index cannot be searched afterwards."""
        with self._rw.write():
            self._store.close()
            self._docs.close()
            self._adopt_pin(None, self._origin)

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        documents: Iterable[Document],
        config: IndexConfig | None = None,
        *,
        encoder: Encoder | None = None,
        show_progress: bool = False,
        progress: ProgressSpec = None,
    ) -> "Index":
        """Chunk, analyze and embed ``documents`` into a new in-memory index.

        The encoder is loaded before ``documents`` is read (a model that cannot load
        fails at once). ``progress`` shows read → chunk → BM25 → embed with counts,
        rate and ETA (``"auto"``, ``"tqdm"``, ``"log"`` or a
        :class:`medrag.progress.Progress`; ``show_progress=True`` is ``"auto"``).

        ``encoder`` overrides the one ``config.encoder`` describes (e.g. a custom
        :class:`~medrag.retrieve.dense.Encoder`); with ``config.encoder=None`` and no
        encoder the index is lexical only. A later document with an id already seen
        replaces the earlier one (a new version of a PMID).
        """
        config = config or IndexConfig()
        if encoder is None and config.encoder is not None:
            from .retrieve.dense import SentenceTransformerEncoder

            encoder = SentenceTransformerEncoder(config.encoder)
        empty_bm25 = BM25Index.from_token_lists([], config.bm25, analyzer=config.analyzer)
        vectors = VectorIndex(np.zeros((0, encoder.dim), np.float32), config.vectors) if encoder else None
        index = cls(
            config=config,
            docs=DocTable.from_sources([]),
            chunk_doc=np.zeros(0, np.int32),
            store=ChunkStore(None, None),
            new_chunks=[],
            bm25=empty_bm25,
            vectors=vectors,
            encoder=encoder,
        )
        index.add(documents, show_progress=show_progress, progress=progress)
        return index

    def _refresh_doc_arrays(self) -> None:
        self._doc_year = np.asarray(self._docs.years, dtype=np.int32)
        self._doc_retracted = np.asarray(self._docs.retracted, dtype=bool)

    # ------------------------------------------------------------------ basics

    def __len__(self) -> int:
        """Live chunks."""
        return int(self._bm25.alive.sum())

    @property
    def n_documents(self) -> int:
        return int(self._doc_alive.sum())

    @property
    def encoder(self) -> Encoder | None:
        return self._encoder

    @property
    def id(self) -> str:
        """The saved index's id (``manifest.json``), or ``"unsaved"``."""
        return str(self._manifest.get("index_id", "unsaved"))

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._manifest))

    def _repr_html_(self) -> str:  # notebooks (medrag.display)
        from .display import index_html

        return index_html(self)

    def _repr_markdown_(self) -> str:
        from .display import index_markdown

        return index_markdown(self)

    def document_ids(self) -> list[str]:
        return [d for d, alive in zip(self._docs.ids, self._doc_alive) if alive]

    def source(self, doc_id: str) -> SourceInfo:
        i = self._doc_row.get(doc_id)
        if i is None or not self._doc_alive[i]:
            raise KeyError(doc_id)
        return self._docs[i]

    def term_weights(self, words: Sequence[str]) -> dict[str, float]:
        """How informative each word is in this corpus: the largest BM25 idf among the
        analyzer tokens of the word (0.0 for a word no document has)."""
        out: dict[str, float] = {}
        with self._rw.read():
            for w in words:
                toks = self.config.analyzer.tokenize(w)
                out[w] = max((self._bm25.idf(t) for t in toks), default=0.0)
        return out

    def chunk(self, row: int) -> Chunk:
        if row < len(self._store):
            return self._store.get(row)
        return self._new_chunks[row - len(self._store)]

    # ------------------------------------------------------------------ updates

    def add(self, documents: Iterable[Document], *, show_progress: bool = False, progress: ProgressSpec = None) -> int:
        """Add documents (chunked, analyzed and embedded); a document whose id is
        already in the index replaces it. Only the new chunks are embedded. Returns
        the number of chunks added. ``progress``: as in :meth:`build`."""
        if self._vectors is not None and self._encoder is None:
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
            cs = chunk_document(d, self.config.chunking)
            chunks.extend(cs)
        if not chunks and not docs:
            return 0
        tokens = tokenize_with_progress(self.config.analyzer, [c.index_text for c in chunks], prog)
        vecs = None
        if self._encoder is not None and chunks:
            vecs = embed_with_progress(self._encoder, [c.index_text for c in chunks], prog)
            if vecs.shape != (len(chunks), self._encoder.dim):
                raise ConfigError(f"encoder returned {vecs.shape}, expected {(len(chunks), self._encoder.dim)}")
        with self._rw.write():
            replaced = [d.id for d in docs if d.id in self._doc_row and self._doc_alive[self._doc_row[d.id]]]
            if replaced:
                self._delete_locked(replaced)
            for k, d in enumerate(docs):
                self._doc_row[d.id] = len(self._docs) + k
            self._docs.extend([SourceInfo.from_document(d) for d in docs])
            self._doc_alive = np.concatenate([self._doc_alive, np.ones(len(docs), bool)])
            for c in chunks:
                owners.append(self._doc_row[c.doc_id])
            self._bm25.add(tokens)
            if self._vectors is not None and vecs is not None:
                self._vectors.add(vecs)
            self._chunk_doc = np.concatenate([np.asarray(self._chunk_doc), np.asarray(owners, dtype=np.int32)])
            self._new_chunks.extend(chunks)
            self._refresh_doc_arrays()
        logger.info("added %d document(s), %d chunk(s)", len(docs), len(chunks))
        return len(chunks)

    def delete(self, doc_ids: Iterable[str]) -> int:
        """Delete documents by id (e.g. PubMed ``<DeleteCitation>`` PMIDs as
        ``pmid:<PMID>``); unknown ids are ignored. Returns the number of documents
        deleted."""
        ids = str_list(doc_ids, "delete()'s document ids", "pmid:123")
        with self._rw.write():
            return self._delete_locked(list(dict.fromkeys(ids)))  # an id given twice is deleted once

    def _delete_locked(self, doc_ids: list[str]) -> int:
        rows_of = [self._doc_row[i] for i in doc_ids if i in self._doc_row and self._doc_alive[self._doc_row[i]]]
        if not rows_of:
            return 0
        dead = np.zeros(len(self._docs), bool)
        dead[rows_of] = True
        self._bm25.delete(np.flatnonzero(dead[self._chunk_doc]))
        self._doc_alive = self._doc_alive & ~dead
        return len(rows_of)

    # ------------------------------------------------------------------ search

    def _row_mask(self, filters: Filters | None) -> np.ndarray:
        f = filters or Filters()
        ok = self._doc_alive.copy()
        if not f.include_retracted:
            ok &= ~self._doc_retracted
        if f.year_min is not None:
            ok &= self._doc_year >= f.year_min
        if f.year_max is not None:
            ok &= (self._doc_year <= f.year_max) & (self._doc_year >= 0)
        if f.kinds or f.publication_types or f.mesh or f.doc_ids or f.exclude_doc_ids:
            kinds, pts, mesh = set(f.kinds), set(f.publication_types), set(f.mesh)
            only, exclude = set(f.doc_ids), set(f.exclude_doc_ids)
            for i in np.flatnonzero(ok):
                d = self._docs[i]
                if (
                    (kinds and d.kind not in kinds)
                    or (pts and not pts.intersection(d.publication_types))
                    or (mesh and not mesh.intersection(d.mesh))
                    or (only and d.doc_id not in only)
                    or d.doc_id in exclude
                ):
                    ok[i] = False
        return ok[self._chunk_doc] & np.asarray(self._bm25.alive)

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        filters: Filters | None = None,
        mode: Mode = "hybrid",
    ) -> list[Passage]:
        """The ``k`` best passages for ``query``.

        ``mode``: ``"hybrid"`` (fused, the default when the index has vectors),
        ``"bm25"`` or ``"dense"``. Retracted publications are excluded unless
        ``filters.include_retracted``. Each passage keeps its fused score, rank, and
        each retriever's score.
        """
        mode = self._check_query_args(k, mode)
        qvec = self._encoder.encode_queries([query])[0] if mode != "bm25" and self._encoder else None
        with self._rw.read():
            found = self._search_locked(query, qvec, k, filters, mode)
        from .display import SearchResults  # a list that shows itself in notebooks

        return SearchResults(found, query=query, mode=mode)

    def search_many(
        self, queries: Sequence[str], k: int = 10, *, filters: Filters | None = None, mode: Mode = "hybrid"
    ) -> list[list[Passage]]:
        """:meth:`search` for many queries, encoding them in one batch."""
        mode = self._check_query_args(k, mode)
        qvecs = self._encoder.encode_queries(list(queries)) if mode != "bm25" and self._encoder else None
        out = []
        with self._rw.read():
            for i, q in enumerate(queries):
                out.append(self._search_locked(q, None if qvecs is None else qvecs[i], k, filters, mode))
        from .display import SearchResults

        return [SearchResults(r, query=q, mode=mode) for r, q in zip(out, queries)]

    def _check_query_args(self, k: int, mode: str) -> Mode:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, not {k!r}")
        if mode not in ("hybrid", "bm25", "dense"):
            raise ConfigError(f"mode must be hybrid, bm25 or dense, not {mode!r}")
        if mode == "hybrid" and self._encoder is None:
            return "bm25"
        if mode == "dense" and self._encoder is None:
            raise ConfigError("this index has no dense vectors; search with mode='bm25'")
        return mode  # type: ignore[return-value]

    def _search_locked(
        self, query: str, qvec: np.ndarray | None, k: int, filters: Filters | None, mode: Mode
    ) -> list[Passage]:
        k = min(k, self._bm25.n_rows)  # a huge k never reaches FAISS (HNSW allocates k-sized buffers)
        if k == 0:
            return []
        mask = self._row_mask(filters)
        tokens = self.config.analyzer.tokenize(query)
        runs: dict[str, dict[int, float]] = {}
        if mode == "bm25":
            rows, sc = self._bm25.search(tokens, k, mask=mask) if tokens else ([], [])
            fused = {int(r): float(s) for r, s in zip(rows, sc)}
            runs["bm25"] = fused
        elif mode == "dense":
            assert self._vectors is not None and qvec is not None
            rows, sc = self._vectors.search(qvec, k, allowed=mask)
            fused = {int(r): float(s) for r, s in zip(rows, sc)}
            runs["dense"] = fused
        else:
            assert self._vectors is not None and qvec is not None
            c = min(max(self.config.fusion.candidates, k), self._bm25.n_rows)
            b_rows, _ = self._bm25.search(tokens, c, mask=mask) if tokens else (np.zeros(0, np.int64), None)
            d_rows, _ = self._vectors.search(qvec, c, allowed=mask)
            union = np.union1d(np.asarray(b_rows, np.int64), np.asarray(d_rows, np.int64))
            if union.size == 0:
                return []
            b_all = self._bm25.scores(tokens) if tokens else np.zeros(self._bm25.n_rows)
            runs["bm25"] = {int(r): float(b_all[r]) for r in union}
            d_sc = self._vectors.scores(qvec, union)
            runs["dense"] = {int(r): float(s) for r, s in zip(union, d_sc)}
            fc = self.config.fusion
            if fc.method == "rrf":
                rank_runs = {
                    "bm25": {int(r): runs["bm25"][int(r)] for r in b_rows},
                    "dense": {int(r): runs["dense"][int(r)] for r in d_rows},
                }
                fused = rrf(rank_runs, k=fc.rrf_k, weights={"bm25": fc.bm25_weight, "dense": fc.dense_weight})
            else:
                fused = convex(runs, {"bm25": fc.bm25_weight, "dense": fc.dense_weight})
        top = ranked(fused)[:k]
        out = []
        for rank, (row, score) in enumerate(top, start=1):
            chunk = self.chunk(row)
            out.append(
                Passage(
                    chunk=chunk,
                    source=self._docs[int(self._chunk_doc[row])],
                    score=float(score),
                    rank=rank,
                    scores={name: run[row] for name, run in runs.items() if row in run},
                )
            )
        return out

    # ------------------------------------------------------------------ persistence

    def save(self, directory: str | os.PathLike[str], *, lock_timeout: float | None = 60.0) -> Path:
        """Write the index to ``directory`` atomically and return its path.

        Deleted rows are dropped (compacted) on save. The new generation is written to
        a staging sibling (``.<name>.<id>``) and swapped in with one atomic rename; the
        previous one is deleted once no open index reads it. Staging directories of
        failed or interrupted saves are removed (at once, or by the next save).

        ``lock_timeout``: seconds to wait while another process saves the same index
        (None: wait for ever). Refused with ConfigError: a path that is not an index (a
        file, a directory of other things, a symbolic link to one) or an index
        directory holding files the index did not write. Refused with
        IndexConflictError: the lock is still held after ``lock_timeout``, or this
        index was loaded from ``directory`` and another writer has saved it since.
        """
        if self._vectors is not None and self._encoder is None:
            raise ConfigError("this index was loaded without its encoder; load it with one to save it")
        given = Path(directory)
        target = _indexdir.save_target(given, FORMAT)
        target.parent.mkdir(parents=True, exist_ok=True)
        with _indexdir.write_lock(target, lock_timeout):
            where = _indexdir.check_target(target, FORMAT)
            if (
                self._origin is not None
                and where.kind != "new"
                and Path(self._origin[0]) == target.resolve()
                and where.current_id != self._origin[1]
            ):
                raise IndexConflictError(
                    f"{given} was saved by another writer (index {where.current_id}) after this index "
                    f"loaded it (index {self._origin[1]}); saving would discard those changes. "
                    "Load it again and reapply yours."
                )
            _indexdir.sweep(target)
            index_id = uuid.uuid4().hex[:16]
            staging = _indexdir.staging_name(target, index_id)
            old: Path | None = None
            committed = False
            try:
                _indexdir.make_staging(staging)
                with self._rw.write():
                    self._compact_locked()
                    self._write_locked(staging, index_id)
                _indexdir.fsync_tree(staging)
                old = _indexdir.commit(staging, where, index_id)
                committed = True
            finally:
                if not committed:  # an error, a full disk, Ctrl-C: leave nothing behind
                    _indexdir.remove_staging(staging)
            # serve from the saved files from now on (memory released, nothing read from
            # the old generation), then retire the old generation
            loaded = Index.load(target, encoder=self._encoder, verify=False)
            with self._rw.write():
                self._store.close()
                self._docs.close()
                self._store = loaded._store
                self._docs = loaded._docs
                self._doc_row = loaded._doc_row
                self._doc_alive = loaded._doc_alive
                self._new_chunks = []
                self._bm25 = loaded._bm25
                self._vectors = loaded._vectors
                self._chunk_doc = loaded._chunk_doc
                self._manifest = loaded._manifest
                self._refresh_doc_arrays()
                pinned, origin = loaded._pin, loaded._origin
                if loaded._finalizer is not None:
                    loaded._finalizer.detach()
                self._adopt_pin(pinned, origin)
            if old is not None:
                _indexdir.retire(old)
        logger.info("saved index %s to %s", index_id, target)
        return given

    def _compact_locked(self) -> None:
        alive = np.asarray(self._bm25.alive)
        if alive.all() and self._doc_alive.all():
            return
        old_rows = self._bm25.compact()
        chunks = [self.chunk(int(r)) for r in old_rows]
        if self._vectors is not None:
            self._vectors.keep(old_rows)
        keep_docs = np.flatnonzero(self._doc_alive)
        new_doc_of_old = np.full(len(self._docs), -1, np.int64)
        new_doc_of_old[keep_docs] = np.arange(len(keep_docs))
        self._chunk_doc = new_doc_of_old[np.asarray(self._chunk_doc)[old_rows]].astype(np.int32)
        self._docs = self._docs.take(keep_docs)
        self._doc_row = {d: i for i, d in enumerate(self._docs.ids)}
        self._doc_alive = np.ones(len(self._docs), bool)
        self._store.close()
        self._store = ChunkStore(None, None)
        self._new_chunks = chunks
        self._refresh_doc_arrays()

    def _write_locked(self, d: Path, index_id: str) -> None:
        d.mkdir(parents=True, exist_ok=True)
        n = self._bm25.n_rows
        doc_offsets = np.zeros(len(self._docs) + 1, np.int64)
        with open(d / "docs.jsonl", "wb") as f:
            pos = 0
            for i in range(len(self._docs)):
                line = self._docs.raw(i)
                f.write(line)
                pos += len(line)
                doc_offsets[i + 1] = pos
        np.save(d / "doc_offsets.npy", doc_offsets, allow_pickle=False)
        np.save(d / "doc_year.npy", np.asarray(self._docs.years, np.int32), allow_pickle=False)
        np.save(d / "doc_retracted.npy", np.asarray(self._docs.retracted, bool), allow_pickle=False)
        with open(d / "doc_ids.json", "w", encoding="utf-8") as f:
            json.dump({"ids": self._docs.ids, "sha256": self._docs.shas}, f, ensure_ascii=False)
        offsets = np.zeros(n + 1, np.int64)
        with open(d / "chunks.jsonl", "wb") as f:
            pos = 0
            for row in range(n):
                if row < len(self._store):
                    line = self._store.raw(row)
                else:
                    c = self._new_chunks[row - len(self._store)]
                    line = (json.dumps(c.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
                f.write(line)
                pos += len(line)
                offsets[row + 1] = pos
        np.save(d / "chunk_offsets.npy", offsets, allow_pickle=False)
        np.save(d / "chunk_doc.npy", np.asarray(self._chunk_doc, dtype=np.int32), allow_pickle=False)
        self._bm25.save(d / "bm25")
        dense: dict[str, Any] | None = None
        if self._vectors is not None and self._encoder is not None:
            self._vectors.save(d / "dense")
            dense = {
                "encoder": self._encoder.describe(),
                "dim": self._encoder.dim,
                "metric": "inner_product (unit vectors: cosine)",
                "vectors": asdict(self.config.vectors),
                "faiss_factory": self.config.vectors.factory,
            }
        files = {}
        for p in sorted(d.rglob("*")):
            if p.is_file():
                rel = p.relative_to(d).as_posix()
                files[rel] = {"sha256": sha256_file(p), "size": p.stat().st_size}
        fingerprint = hashlib.sha256(
            "\n".join(f"{i} {h}" for i, h in zip(self._docs.ids, self._docs.shas)).encode("utf-8")
        ).hexdigest()
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "library_version": library_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "index_id": index_id,
            "corpus_fingerprint": fingerprint,
            "counts": {"documents": len(self._docs), "chunks": n},
            "chunking": asdict(self.config.chunking),
            "analyzer": self.config.analyzer.to_dict(),
            "bm25": self.config.bm25.to_dict(),
            "dense": dense,
            "fusion": asdict(self.config.fusion),
            "files": files,
        }
        tmp = d / (_MANIFEST + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, d / _MANIFEST)

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        *,
        encoder: Encoder | None = None,
        verify: bool = True,
        mmap: bool = True,
        load_encoder: bool = True,
        trust_encoder: bool = False,
    ) -> "Index":
        """Open a saved index.

        The analyzer, BM25 parameters, chunking and encoder are rebuilt from the
        manifest. ``encoder`` supplies the query encoder (required for a custom, non
        sentence-transformers encoder; it must match the recorded dimension).
        Without one, only a model packaged with medrag (``package:...``) is loaded
        from the manifest, offline; an index naming any other model (a hub name, a
        folder) is refused unless ``trust_encoder=True``, since loading it could
        download, or read code and weights from outside the index.
        ``verify=False`` skips the sha256 checks (sizes are always checked).
        ``load_encoder=False`` opens the index without its query encoder (for
        inspection, or BM25-only search).

        The loaded index reads only the generation that was current when it was
        opened (its files are opened now and kept open until :meth:`close`).

        Raises:
            IndexNotFoundError: no index at ``directory``.
            IndexVersionError: a format version this library does not know.
            IndexFormatError: anything missing, altered, malformed or unsafe.
            ConfigError: an encoder that needs ``encoder=`` or ``trust_encoder=True``.
        """
        root = Path(directory)
        if not os.path.lexists(root):
            # without an atomic exchange a save moves the old generation to
            # .NAME.old-<id> before the new one is in place: a crash between leaves it
            recovered = _indexdir.recover_path(root)
            if recovered is not None:
                logger.warning("%s is missing; loading %s left by an interrupted save", directory, recovered)
                root = recovered
        pinned = _indexdir.pin(root)
        index = None
        try:
            index = cls._load_pinned(
                pinned, encoder=encoder, verify=verify, mmap=mmap, load_encoder=load_encoder, trust_encoder=trust_encoder
            )
        except (IndexFormatError, IndexNotFoundError, ConfigError) as exc:
            msg = pinned.show(str(exc))
            if msg != str(exc) and type(exc) in (IndexFormatError, IndexVersionError, IndexNotFoundError, ConfigError):
                raise type(exc)(msg) from exc
            raise
        finally:
            if index is None:  # any failure, Ctrl-C included: the pin is let go
                pinned.release()
        pinned.close_dir()
        index._adopt_pin(pinned, (str(root.resolve()), index.id))
        return index

    @classmethod
    def _load_pinned(
        cls,
        pinned: _indexdir.Pinned,
        *,
        encoder: Encoder | None,
        verify: bool,
        mmap: bool,
        load_encoder: bool,
        trust_encoder: bool,
    ) -> "Index":
        root = pinned.base
        mpath = root / _MANIFEST
        try:
            manifest = json.loads(pinned.read_manifest().decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise IndexFormatError(f"{mpath} is not valid JSON: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise IndexFormatError(f"{mpath} is not a {FORMAT} manifest")
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexVersionError(
                f"{root} has index format version {version!r}; this medrag ({library_version()}) "
                f"reads version {FORMAT_VERSION} only. Rebuild the index or upgrade medrag."
            )
        files = manifest.get("files")
        if not isinstance(files, dict):
            raise IndexFormatError(f"{mpath} lists no files")
        required = {
            "docs.jsonl", "doc_offsets.npy", "doc_ids.json", "doc_year.npy", "doc_retracted.npy",
            "chunks.jsonl", "chunk_offsets.npy", "chunk_doc.npy",
        }
        required |= {"bm25/bm25.json", "bm25/vocab.json"} | {f"bm25/{a}.npy" for a in _BM25_ARRAYS}
        if manifest.get("dense"):
            required.add("dense/vectors.npy")
        missing = required - set(files)
        if missing:
            raise IndexFormatError(f"{mpath} does not list {sorted(missing)}")
        if os.path.lexists(root / "dense" / "index.faiss") and "dense/index.faiss" not in files:
            raise IndexFormatError(f"{mpath} does not list dense/index.faiss")
        for rel, meta in files.items():
            try:
                p = safe_member(root, str(rel))
                ok = p.is_file()
                size = p.stat().st_size if ok else None
            except (OSError, ValueError) as exc:
                raise IndexFormatError(f"{root}: unusable file name {rel!r}: {exc}") from exc
            if not ok:
                raise IndexFormatError(f"{root}: {rel} is missing")
            if not isinstance(meta, dict) or size != meta.get("size"):
                raise IndexFormatError(f"{root}: {rel} has the wrong size (truncated or altered)")
            if verify and sha256_file(p) != meta.get("sha256"):
                raise IndexFormatError(f"{root}: {rel} fails its sha256 check (altered or corrupt)")
        dense = manifest.get("dense")
        if dense is not None and not isinstance(dense, dict):
            raise IndexFormatError(f"{mpath}: 'dense' must be an object or null")
        try:
            config = IndexConfig(
                chunking=ChunkConfig(**manifest["chunking"]),
                analyzer=Analyzer.from_dict(manifest["analyzer"]),
                bm25=BM25Params.from_dict(manifest["bm25"]),
                encoder=None,
                vectors=VectorConfig(**(manifest["dense"] or {}).get("vectors", {})),
                fusion=FusionConfig(**manifest["fusion"]),
            )
            n_chunks = int(manifest["counts"]["chunks"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{mpath}: malformed configuration: {exc}") from exc
        try:
            id_table = json.loads((root / "doc_ids.json").read_text(encoding="utf-8"))
            ids, shas = list(id_table["ids"]), list(id_table["sha256"])
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise IndexFormatError(f"{root}/doc_ids.json is malformed: {exc}") from exc
        n_docs = len(ids)
        if len(shas) != n_docs or not all(isinstance(i, str) for i in ids) or len(set(ids)) != n_docs:
            raise IndexFormatError(f"{root}/doc_ids.json is malformed (ids not unique strings, or hashes missing)")
        doc_offsets = load_array(root / "doc_offsets.npy", np.int64, (n_docs + 1,), mmap)
        check_offsets(root / "doc_offsets.npy", doc_offsets, root / "docs.jsonl")
        docs = DocTable(
            ids, shas,
            load_array(root / "doc_year.npy", np.int32, (n_docs,), mmap),
            load_array(root / "doc_retracted.npy", np.bool_, (n_docs,), mmap),
            ChunkStore(root / "docs.jsonl", doc_offsets, pinned.display / "docs.jsonl"),
        )
        offsets = load_array(root / "chunk_offsets.npy", np.int64, (n_chunks + 1,), mmap)
        chunk_doc = load_array(root / "chunk_doc.npy", np.int32, (n_chunks,), mmap)
        if n_chunks and (int(chunk_doc.min()) < 0 or int(chunk_doc.max()) >= len(docs)):
            raise IndexFormatError(f"{root}/chunk_doc.npy points outside docs.jsonl")
        check_offsets(root / "chunk_offsets.npy", offsets, root / "chunks.jsonl")
        bm25 = BM25Index.load(root / "bm25", mmap=mmap)
        if bm25.n_rows != n_chunks:
            raise IndexFormatError(f"{root}: BM25 has {bm25.n_rows} rows, the manifest {n_chunks} chunks")
        vectors = None
        if dense:
            try:
                dim = int(dense["dim"])
                if not isinstance(dense.get("encoder"), dict):
                    raise TypeError("no encoder description")
            except (KeyError, TypeError, ValueError) as exc:
                raise IndexFormatError(f"{mpath}: malformed dense section: {exc}") from exc
            vectors = VectorIndex.load(root / "dense", config.vectors, dim, mmap=mmap)
            if len(vectors) != n_chunks:
                raise IndexFormatError(f"{root}: {len(vectors)} vectors for {n_chunks} chunks")
            if encoder is None and load_encoder:
                _check_encoder_is_trusted(dense["encoder"], trust_encoder, pinned.display)
                encoder = encoder_from_description(dense["encoder"])
            elif encoder is not None and encoder.dim != dim:
                raise ConfigError(f"the encoder gives dimension {encoder.dim}; the index has {dim}")
            try:
                config = replace(config, encoder=EncoderConfig(**{
                    k: dense["encoder"][k] for k in ("model", "query_prefix", "document_prefix", "max_seq_length", "batch_size")
                    if k in dense["encoder"]
                }))
            except TypeError as exc:
                raise IndexFormatError(f"{mpath}: malformed encoder description: {exc}") from exc
        else:
            encoder = None
        return cls(
            config=config,
            docs=docs,
            chunk_doc=chunk_doc,
            store=ChunkStore(root / "chunks.jsonl", offsets, pinned.display / "chunks.jsonl"),
            new_chunks=[],
            bm25=bm25,
            vectors=vectors,
            encoder=encoder,
            manifest=manifest,
        )


def _check_encoder_is_trusted(desc: dict[str, Any], trust: bool, where: Path) -> None:
    """Refuse to build an encoder an index names unless it is a model packaged with
    medrag (installed, offline) or the caller trusts the index."""
    model = desc.get("model")
    if trust or desc.get("type") != "sentence-transformers":
        return  # another type is refused by encoder_from_description: it needs encoder=
    if isinstance(model, str) and model.startswith("package:") and model.split(":", 1)[1] in _PACKAGE_MODELS:
        return
    raise ConfigError(
        f"{where}: the index names the encoder model {model!r}, which is not a model packaged with medrag; "
        "loading it could download code or weights, or read them from outside the index. Pass encoder= "
        "(e.g. SentenceTransformerEncoder(EncoderConfig(model=...))), trust_encoder=True if you trust this "
        "index, or load_encoder=False for BM25-only search"
    )
