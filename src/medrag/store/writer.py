"""The streaming segment writer: documents in, immutable segments out, bounded memory.

Documents are buffered as term ids (4 bytes per token plus the segment's term
dictionary); when ``segment_tokens`` tokens are buffered the buffer becomes one segment
on disk (format.py) and is dropped. Peak memory is therefore a function of
``segment_tokens`` (about 40-60 bytes per buffered token while a segment is sorted and
written), not of the corpus. Nothing written is visible to searchers until
:meth:`StoreWriter.commit` writes a new generation (manifest.py); a crash before that
leaves the previous generation as it was.

Deletes are tombstones applied at commit: the segment keeps its postings, the deleted
rows are listed beside it, and the number of deleted documents per term is counted once
(one pass over that segment's postings) so document frequencies stay exact.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import ConfigError, IndexNotFoundError
from ..retrieve.analyzer import Analyzer
from ..retrieve.bm25 import BM25Params
from .format import Segment, write_segment
from .manifest import Manifest, read_current, write_deletes, write_generation
from .stats import segments_df_histogram

__all__ = ["SegmentBuffer", "StoreWriter", "write_encoded_segment"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_SEGMENT_TOKENS = 8_000_000


class SegmentBuffer:
    """Analyzed documents buffered as term ids, written out as one segment.

    Memory: 4 bytes per token plus the buffer's term dictionary; :meth:`write` needs
    about 40 bytes per buffered token more while it sorts the postings.
    """

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._vocab: dict[str, int] = {}
        self._tids = array("I")
        self._lens: list[int] = []
        self._ids: list[str] = []

    @property
    def n_docs(self) -> int:
        return len(self._lens)

    @property
    def n_tokens(self) -> int:
        return len(self._tids)

    def add(self, doc_id: str, tokens: Sequence[str]) -> None:
        if not isinstance(doc_id, str):
            raise ConfigError(f"doc_id must be a str, not {type(doc_id).__name__}")
        if isinstance(tokens, (str, bytes)):
            raise ConfigError("tokens must be a list of tokens, not a string; tokenize it first")
        if not all(type(t) is str for t in tokens):
            raise ConfigError(f"document {doc_id!r}: every token must be a str")
        vocab = self._vocab
        setdefault = vocab.setdefault
        self._tids.extend([setdefault(t, len(vocab)) for t in tokens])
        self._lens.append(len(tokens))
        self._ids.append(doc_id)

    def write(self, root: Path, name: str, params: BM25Params) -> dict[str, Any]:
        """Write the buffer as segment ``root/name``, empty the buffer, and return the
        segment's manifest record (``params``: the store's, for the upper bounds)."""
        rec = write_encoded_segment(
            root,
            name,
            params,
            ids=self._ids,
            lens=np.asarray(self._lens, np.int64),
            term_ids=np.frombuffer(self._tids, dtype=np.uint32),
            terms=[t.encode("utf-8") for t in self._vocab],
        )
        self._clear()
        return rec


def write_encoded_segment(
    root: Path,
    name: str,
    params: BM25Params,
    *,
    ids: Sequence[str],
    lens: np.ndarray,
    term_ids: np.ndarray,
    terms: Sequence[bytes],
) -> dict[str, Any]:
    """Write documents given as term ids as segment ``root/name``; returns its manifest
    record. Document ``j`` has ``lens[j]`` tokens, the next ``lens[j]`` of ``term_ids``,
    each an index into ``terms`` (distinct UTF-8 strings in any order; terms no token
    uses are left out). Memory: about 40 bytes per token while sorting."""
    n = len(ids)
    lens = np.asarray(lens, np.int64)
    tids = np.asarray(term_ids)
    if lens.shape != (n,) or int(lens.sum()) != tids.shape[0]:
        raise ConfigError(f"segment {name}: {n} ids, {lens.shape[0]} lengths summing to {int(lens.sum())}, {tids.shape[0]} term ids")
    if tids.size and (int(tids.min()) < 0 or int(tids.max()) >= len(terms)):
        raise ConfigError(f"segment {name}: a term id is outside 0..{len(terms) - 1}")
    used = np.zeros(len(terms), bool)
    used[tids] = True
    uidx = np.flatnonzero(used)
    vocab_list = [terms[i] for i in uidx.tolist()]
    n_terms = len(vocab_list)
    order = sorted(range(n_terms), key=vocab_list.__getitem__)
    rank = np.zeros(len(terms), np.int64)
    rank[uidx[np.asarray(order, np.int64)]] = np.arange(n_terms)
    rows = np.repeat(np.arange(n, dtype=np.int64), lens)
    key = rank[tids] * max(n, 1) + rows  # (sorted term, row): unique keys are the postings
    del rows, rank
    key, tf = np.unique(key, return_counts=True)
    term = key // max(n, 1)
    docs = (key - term * max(n, 1)).astype(np.uint32)
    del key
    post_ptr = np.zeros(n_terms + 1, np.uint64)
    np.cumsum(np.bincount(term, minlength=n_terms), out=post_ptr[1:])
    del term
    sorted_terms = [vocab_list[i] for i in order]
    if any(a == b for a, b in zip(sorted_terms, sorted_terms[1:])):
        raise ConfigError(f"segment {name}: terms are not distinct")
    meta = write_segment(
        root,
        name,
        terms=sorted_terms,
        post_ptr=post_ptr,
        docs=docs,
        tf=tf,
        doc_len=lens.astype(np.uint32),
        ids=list(ids),
        k1=params.k1,
        b=params.b,
    )
    logger.info("segment %s: %d documents, %d postings", name, n, meta["nnz"])
    return {"name": name, **{k: meta[k] for k in ("n_docs", "n_terms", "nnz", "sum_len", "files")}}


class StoreWriter:
    """Append documents to a store (created when ``root`` has none); one writer at a
    time (an exclusive ``flock`` on ``root/LOCK``).

    Use as a context manager: a clean exit commits, an exception abandons what was not
    committed (its segment directories stay on disk, unreferenced, until
    :func:`~medrag.store.manifest.collect_garbage`).

    Args:
        root: the store directory.
        params: BM25 parameters (recorded at creation; must match when reopening).
        analyzer: the analyzer that produced the tokens (recorded; optional).
        segment_tokens: buffered tokens that trigger writing a segment.
    """

    def __init__(
        self,
        root: PathLike,
        *,
        params: BM25Params | None = None,
        analyzer: Analyzer | None = None,
        segment_tokens: int = DEFAULT_SEGMENT_TOKENS,
    ) -> None:
        if isinstance(segment_tokens, bool) or not isinstance(segment_tokens, int) or segment_tokens < 1:
            raise ConfigError(f"segment_tokens must be a positive integer, not {segment_tokens!r}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.root / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(self._lock_fd)
            raise ConfigError(f"{self.root}: another StoreWriter holds the lock") from e
        opened = False
        try:
            try:
                self._base: Manifest | None = read_current(self.root)
            except IndexNotFoundError:
                self._base = None
            opened = True
        finally:
            if not opened:  # a damaged store: let go of the lock before the error leaves
                self._release()
        if self._base is not None:
            d = self._base.data
            stored = BM25Params.from_dict(d["params"])
            if params is not None and params != stored:
                self._release()
                raise ConfigError(f"{self.root}: store was built with {stored}, not {params}")
            if analyzer is not None and d["analyzer"] is not None and analyzer.to_dict() != d["analyzer"]:
                self._release()
                raise ConfigError(f"{self.root}: store was built with a different analyzer")
            self.params = stored
            self._analyzer_dict = d["analyzer"]
            self._segments: list[dict[str, Any]] = [dict(s) for s in self._base.segments]
            self._generation = self._base.generation
        else:
            self.params = params if params is not None else BM25Params()
            self._analyzer_dict = analyzer.to_dict() if analyzer is not None else None
            self._segments = []
            self._generation = 0
        self.segment_tokens = segment_tokens
        self._pending_deletes: dict[str, set[int]] = {}
        self._dirty = False
        self._buf = SegmentBuffer()

    # ------------------------------------------------------------------ lifecycle

    def _release(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def close(self) -> None:
        """Release the lock without committing (what is uncommitted is abandoned)."""
        self._release()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self._release()


    # ------------------------------------------------------------------ adding

    @property
    def generation(self) -> int:
        """The last committed generation (0 for a new store)."""
        return self._generation

    @property
    def n_rows(self) -> int:
        """Rows so far: committed, written and buffered (the next document's row)."""
        return sum(int(s["n_docs"]) for s in self._segments) + self._buf.n_docs

    def add(self, doc_id: str, tokens: Sequence[str]) -> int:
        """Buffer one analyzed document; returns its global row."""
        row = self.n_rows
        self._buf.add(doc_id, tokens)
        self._dirty = True
        if self._buf.n_tokens >= self.segment_tokens:
            self.flush()
        return row

    def add_many(self, ids: Iterable[str], token_lists: Iterable[Sequence[str]]) -> None:
        """:meth:`add` for each (id, tokens) pair; the two must have equal lengths."""
        ids = list(ids)
        n = 0
        for doc_id, toks in zip(ids, token_lists):
            self.add(doc_id, toks)
            n += 1
        if n != len(ids):
            raise ConfigError(f"add_many: {len(ids)} ids but {n} token lists")

    def flush(self) -> str | None:
        """Write the buffered documents as one segment (not yet committed); returns its
        name, or None when nothing is buffered."""
        if not self._buf.n_docs:
            return None
        rec = self._buf.write(self.root, f"seg-{self._generation + 1:06d}-{secrets.token_hex(4)}", self.params)
        self._segments.append(rec)
        return rec["name"]

    def add_encoded(
        self, ids: Sequence[str], lens: np.ndarray, term_ids: np.ndarray, terms: Sequence[bytes | str]
    ) -> str | None:
        """Append documents given as term ids as one segment of their own (after
        flushing what is buffered): the fast path for corpora already analyzed and
        encoded (see :func:`write_encoded_segment` for the arguments; ``terms`` may be
        str or UTF-8 bytes). Committed with the next :meth:`commit`; returns the segment's
        name (None for no documents)."""
        if not len(ids):
            return None
        if self._buf.n_docs:
            self.flush()
        tb = [t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in terms]
        rec = write_encoded_segment(
            self.root,
            f"seg-{self._generation + 1:06d}-{secrets.token_hex(4)}",
            self.params,
            ids=ids,
            lens=lens,
            term_ids=term_ids,
            terms=tb,
        )
        self._segments.append(rec)
        self._dirty = True
        return rec["name"]

    def add_segments(self, records: Sequence[dict[str, Any]]) -> None:
        """Append segments written elsewhere (by :class:`SegmentBuffer`, e.g. in Ray
        tasks) into this store's directory, in the order given; committed with the next
        :meth:`commit`. Each must open and match its record."""
        if self._buf.n_docs:
            self.flush()
        for rec in records:
            Segment.open(self.root / rec["name"], expected=rec)
            self._segments.append(dict(rec))
        self._dirty = self._dirty or bool(records)

    # ------------------------------------------------------------------ deleting

    def delete_rows(self, rows: Iterable[int]) -> int:
        """Tombstone global rows (applied at the next :meth:`commit`); returns how many
        were given. Rows still in the buffer are flushed first."""
        if self._buf.n_docs:
            self.flush()
        bases = np.cumsum([0] + [int(s["n_docs"]) for s in self._segments])
        r = np.unique(np.asarray(list(rows), np.int64))
        if r.size == 0:
            return 0
        if r[0] < 0 or r[-1] >= bases[-1]:
            raise ConfigError(f"row out of range [0, {int(bases[-1])})")
        seg_of = np.searchsorted(bases, r, side="right") - 1
        for i, row in zip(seg_of.tolist(), r.tolist()):
            self._pending_deletes.setdefault(self._segments[i]["name"], set()).add(row - int(bases[i]))
        self._dirty = True
        return int(r.size)

    # ------------------------------------------------------------------ committing

    def commit(self) -> int:
        """Flush, apply deletes and write a new generation; returns its number (the
        current one when nothing changed; a new store gets an empty generation 1, so
        that a store of no documents opens)."""
        self.flush()
        if not self._dirty and self._generation > 0:
            return self._generation
        gen = self._generation + 1
        segs = [self.root / s["name"] for s in self._segments]
        opened = [Segment.open(p) for p in segs]
        dfs = []
        n_live = total_len = 0
        for rec, seg in zip(self._segments, opened):
            pending = self._pending_deletes.get(rec["name"])
            old = rec.get("deletes")
            if pending:
                prev = np.load(self.root / old["rows"], allow_pickle=False) if old else np.empty(0, np.uint32)
                rows = np.union1d(prev.astype(np.int64), np.fromiter(pending, np.int64)).astype(np.int64)
                dead = np.zeros(seg.n_docs, bool)
                dead[rows] = True
                # deleted documents per term: one pass over this segment's postings
                term_of = np.repeat(np.arange(seg.n_terms, dtype=np.int64), seg.df())
                cnt = np.bincount(term_of[dead[seg.docs]], minlength=seg.n_terms)
                nz = np.flatnonzero(cnt)
                dels = write_deletes(self.root, gen, rec["name"], rows, np.stack([nz, cnt[nz]]))
                dels["del_len"] = int(seg.doc_len[rows].sum(dtype=np.int64))
                rec["deletes"] = dels
            d = rec.get("deletes")
            df = seg.df()
            if d:
                dd = np.load(self.root / d["df"], allow_pickle=False)
                df = df.copy()
                df[dd[0]] -= dd[1]
                n_live += seg.n_docs - int(d["n"])
                total_len += seg.sum_len - int(d["del_len"])
            else:
                n_live += seg.n_docs
                total_len += seg.sum_len
            dfs.append(df)
        hist = segments_df_histogram(opened, dfs)  # compiled k-way merge (numba) or heapq
        self._write(gen, n_live, total_len, hist)
        return gen

    def _write(self, gen: int, n_live: int, total_len: int, hist: np.ndarray) -> None:
        write_generation(
            self.root,
            gen,
            params=self.params.to_dict(),
            analyzer=self._analyzer_dict,
            segments=self._segments,
            n_live=n_live,
            total_len=total_len,
            df_hist=hist,
        )
        self._generation = gen
        self._pending_deletes = {}
        self._dirty = False

    # ------------------------------------------------------------------ merging

    def merge(self, start: int = 0, stop: int | None = None, *, chunk_postings: int | None = None) -> str | None:
        """Merge segments ``start .. stop - 1`` (adjacent, so global rows do not move)
        into one and commit; see :func:`medrag.store.merge.merge_segments` (streaming:
        memory about ``chunk_postings`` postings plus O(documents + terms)). Returns the
        new segment's name (None when fewer than two segments were selected)."""
        from .merge import merge_segments

        if self._buf.n_docs or self._pending_deletes:
            self.commit()
        stop = len(self._segments) if stop is None else stop
        if not 0 <= start < stop <= len(self._segments) or stop - start < 2:
            return None
        name = f"seg-{self._generation + 1:06d}-{secrets.token_hex(4)}"
        kw = {} if chunk_postings is None else {"chunk_postings": int(chunk_postings)}
        rec = merge_segments(self.root, self._segments[start:stop], name, self._generation + 1, self.params, **kw)
        self._segments[start:stop] = [rec]
        self._dirty = True
        self.commit()
        return name

    def maybe_merge(self, policy: Any = None) -> list[str]:
        """Merge what a :class:`~medrag.store.merge.TieredMergePolicy` (the default one
        when ``policy`` is None) plans, one run at a time, each committed; returns the
        new segments' names."""
        from .merge import TieredMergePolicy

        policy = TieredMergePolicy() if policy is None else policy
        if self._buf.n_docs or self._pending_deletes:
            self.commit()
        done = []
        while (run := policy.plan(self._segments)) is not None:
            name = self.merge(*run)
            if name is None:
                break
            done.append(name)
        return done
