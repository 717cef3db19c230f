"""The :class:`Index` class: a hybrid BM25 + dense index over chunks, composed of the
filters (:mod:`.filters`), search (:mod:`.search`), updates (:mod:`.mutate`) and
persistence (:mod:`.persist`) of this package."""

from __future__ import annotations

import json
import logging
import os
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import _indexdir
from .._indexparts import ChunkStore, DocTable, RWLock, str_list
from ..errors import ConfigError
from ..progress import ProgressSpec
from ..retrieve.bm25 import BM25Index
from ..retrieve.dense import Encoder, VectorIndex
from ..types import Chunk, Document, Passage, SourceInfo
from . import mutate, persist
from .config import IndexConfig, Mode
from .filters import Filters, row_mask
from .grades import GradeTable, check_boost
from .lexical import check_engine
from .search import check_query_args, search_locked
from .verify import Verify

__all__ = ["Index"]

logger = logging.getLogger("medrag.index")


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
        grades: GradeTable | None = None,
        lexical: str = "bm25",
    ) -> None:
        self.config = config
        self._docs = docs
        self._doc_alive = np.ones(len(docs), dtype=bool)
        self._chunk_doc = chunk_doc
        self._store = store
        self._new_chunks = new_chunks  # rows len(store) .. n_rows - 1
        self._bm25 = bm25
        self._vectors = vectors
        self._encoder = encoder
        self._manifest = manifest or {}
        self._grades = grades  # None: not read yet (an index saved without the table)
        self._lexical = check_engine(lexical)  # what a save writes (medrag.index.lexical)
        self._version = 0  # bumped by every change of rows (filters.row_mask caches by it)
        self._mask_cache: tuple[Any, np.ndarray] | None = None
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
        lexical: str = "bm25",
    ) -> "Index":
        """Chunk, analyze and embed ``documents`` into a new in-memory index.

        ``lexical``: the lexical engine a save writes and a load searches with:
        ``"bm25"`` (the default) or, opt in, ``"segments"`` (a :mod:`medrag.store`
        segmented store; same scores; an index loaded from it is changed in place:
        added rows a new segment, deleted ones tombstones, merged by a tiered policy:
        see :mod:`medrag.index.storelex`).

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
            from ..retrieve.dense import SentenceTransformerEncoder

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
            grades=GradeTable.empty(),
            lexical=lexical,
        )
        index.add(documents, show_progress=show_progress, progress=progress)
        return index

    @staticmethod
    def build_to(
        directory: str | os.PathLike[str],
        documents: Iterable[Document],
        config: IndexConfig | None = None,
        **kw: Any,
    ) -> Path:
        """Write ``documents`` straight to a saved, lexical index at ``directory`` in
        bounded memory (the segments engine; nothing of the corpus is held but a few
        bytes per row): for corpora that do not fit :meth:`build`, such as all of PubMed.
        Returns ``directory``; :meth:`load` it. Keywords (``batch_docs``,
        ``segment_tokens``, ``progress``, ``lock_timeout``): :func:`medrag.index.stream.build_to`."""
        from .stream import build_to

        return build_to(directory, documents, config, **kw)

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
        from ..display import index_html

        return index_html(self)

    def _repr_markdown_(self) -> str:
        from ..display import index_markdown

        return index_markdown(self)

    def document_ids(self) -> list[str]:
        return [d for d, alive in zip(self._docs.ids, self._doc_alive) if alive]

    def source(self, doc_id: str) -> SourceInfo:
        i = self._docs.ids.row(doc_id) if isinstance(doc_id, str) else None
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

    def _grade_table(self) -> GradeTable:
        """The recommendation grades of the rows (:mod:`.grades`), read from the chunks
        the first time for an index saved without them."""
        table = self._grades
        if table is None:
            n_stored = len(self._store)
            logger.info("reading the recommendation grades of %d chunks (an index saved without them)", self._bm25.n_rows)
            table = GradeTable.scan(
                self._bm25.n_rows, lambda r: self._store.raw(r) if r < n_stored else None, self.chunk
            )
            self._grades = table
        return table

    # ------------------------------------------------------------------ updates

    def add(self, documents: Iterable[Document], *, show_progress: bool = False, progress: ProgressSpec = None) -> int:
        """Add documents (chunked, analyzed and embedded); a document whose id is
        already in the index replaces it. Only the new chunks are embedded. Returns
        the number of chunks added. ``progress``: as in :meth:`build`."""
        return mutate.add(self, documents, show_progress=show_progress, progress=progress)

    def delete(self, doc_ids: Iterable[str]) -> int:
        """Delete documents by id (e.g. PubMed ``<DeleteCitation>`` PMIDs as
        ``pmid:<PMID>``); unknown ids are ignored. Returns the number of documents
        deleted."""
        ids = str_list(doc_ids, "delete()'s document ids", "pmid:123")
        with self._rw.write():
            return self._delete_locked(list(dict.fromkeys(ids)))  # an id given twice is deleted once


    def _delete_locked(self, doc_ids: list[str]) -> int:
        return mutate.delete_locked(self, doc_ids)

    # ------------------------------------------------------------------ search

    def _row_mask(self, filters: Filters | None) -> np.ndarray:
        return row_mask(self, filters)

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        filters: Filters | None = None,
        mode: Mode = "hybrid",
        boost: Mapping[str, float] | None = None,
    ) -> list[Passage]:
        """The ``k`` best passages for ``query``.

        ``mode``: ``"hybrid"`` (fused, the default when the index has vectors),
        ``"bm25"`` or ``"dense"``. Retracted publications are excluded unless
        ``filters.include_retracted``. Each passage keeps its fused score, rank, and
        each retriever's score.

        ``boost`` raises guideline recommendation chunks by their grade: a mapping from
        a strength (``"strong"``, ``"conditional"``, ...), a certainty (``"high"``,
        ..., ``"very low"``), a grading system (``"GRADE"``, ...) or
        ``"recommendation"`` (any recommendation chunk) to a factor that multiplies the
        final score, e.g. ``{"strong": 1.2}``; factors that match one chunk multiply
        (:mod:`medrag.index.grades`). A boosted passage's ``scores["boost"]`` is its
        factor. The boost is an argument of each search, recorded nowhere in the index.
        """
        mode = self._check_query_args(k, mode)
        checked = check_boost(boost)
        qvec = self._encoder.encode_queries([query])[0] if mode != "bm25" and self._encoder else None
        with self._rw.read():
            found = self._search_locked(query, qvec, k, filters, mode, checked)
        from ..display import SearchResults  # a list that shows itself in notebooks

        return SearchResults(found, query=query, mode=mode)

    def search_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        filters: Filters | None = None,
        mode: Mode = "hybrid",
        boost: Mapping[str, float] | None = None,
    ) -> list[list[Passage]]:
        """:meth:`search` for many queries, encoding them in one batch."""
        mode = self._check_query_args(k, mode)
        checked = check_boost(boost)
        qvecs = self._encoder.encode_queries(list(queries)) if mode != "bm25" and self._encoder else None
        out = []
        with self._rw.read():
            for i, q in enumerate(queries):
                out.append(self._search_locked(q, None if qvecs is None else qvecs[i], k, filters, mode, checked))
        from ..display import SearchResults

        return [SearchResults(r, query=q, mode=mode) for r, q in zip(out, queries)]

    def _check_query_args(self, k: int, mode: str) -> Mode:
        return check_query_args(self, k, mode)

    _search_locked = search_locked  # (query, qvec, k, filters, mode, boost): under the read lock

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
        return persist.save(self, directory, lock_timeout=lock_timeout)

    def _compact_locked(self) -> None:
        mutate.compact_locked(self)

    def _write_locked(self, d: Path, index_id: str) -> None:
        persist.write_generation(self, d, index_id)

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        *,
        encoder: Encoder | None = None,
        verify: Verify = True,
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
        Sizes are always checked. ``verify=True`` (the default) checks every file's
        sha256 unless this generation's verification record says that these very
        files (size, modification and change times, inode) were verified against this
        manifest: a save writes it, and a load that had to hash everything (a copied
        index, one saved by an older medrag, a file touched since) writes it, so each
        generation is hashed once. ``verify="full"`` always hashes (and records);
        ``verify=False`` checks sizes only. See :mod:`medrag.index.verify`.
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
        return persist.load(
            cls, directory, encoder=encoder, verify=verify, mmap=mmap, load_encoder=load_encoder,
            trust_encoder=trust_encoder,
        )

    def verify(self) -> dict[str, Any]:
        """Check the sha256 of every file of the saved generation this index was loaded
        from (or last saved to), and record that it passed (:mod:`medrag.index.verify`).

        Returns ``{"files": n, "bytes": total, "seconds": wall time}``. Raises
        IndexFormatError for a file that fails, ConfigError for an index never saved,
        and IndexConflictError when the directory now holds another generation (saved
        since; load it again to verify that one).
        """
        if self._origin is None:
            raise ConfigError("this index has not been saved or loaded: there are no files to verify")
        return persist.verify_saved(self._origin[0], self._origin[1])
