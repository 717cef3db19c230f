"""The parts an :class:`~medrag.index.Index` is made of in memory and on disk: the
row stores over its JSON-lines files, the document table, checked array loading, the
manifest member check, argument checks, and the readers-writer lock."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ._docids import DocIds
from ._io import load_npy
from .errors import ConfigError, IndexFormatError
from .types import Chunk, SourceInfo

__all__ = ["ChunkStore", "DocTable", "RWLock", "safe_member", "check_offsets", "load_array", "str_list"]


def str_list(value: Any, what: str, example: str) -> list[str]:
    """``value`` as a list of strings, or a ConfigError naming ``what``: a single
    string (a common slip for a one-element list) is refused, not iterated."""
    if isinstance(value, (str, bytes)):
        raise ConfigError(f"{what} must be a sequence of strings, e.g. [{value!r}], not a single string")
    try:
        out = list(value)
    except TypeError:
        raise ConfigError(f"{what} must be a sequence of strings, not {type(value).__name__}") from None
    bad = next((x for x in out if not isinstance(x, str)), None)
    if bad is not None:
        raise ConfigError(f"{what} must hold strings like {example!r}, not {type(bad).__name__} ({bad!r})")
    return out


def safe_member(root: Path, rel: str) -> Path:
    """``root / rel``, refusing anything that would leave ``root``: absolute or ``..``
    names, and any component that is a symbolic link (wherever it points)."""
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or not rel or rel.startswith("~") or p.parts in ((), (".",)):
        raise IndexFormatError(f"manifest names a file outside the index directory: {rel!r}")
    cur = root
    for part in p.parts:
        cur = cur / part
        try:
            mode = os.lstat(cur).st_mode
        except FileNotFoundError:
            break  # reported as missing by the caller
        if stat.S_ISLNK(mode):
            raise IndexFormatError(
                f"manifest names a file outside the index directory: {rel!r} goes through a symbolic link"
            )
    return root / p


class ChunkStore:
    """Rows of a JSON-lines file read on demand through a byte-offset array. The file is
    opened once, when the index is loaded, so the index keeps reading the generation it
    loaded even after another process saves a new one."""

    def __init__(self, path: Path | None, offsets: np.ndarray | None, display: Path | None = None) -> None:
        self._path = display or path
        self._offsets = offsets
        self._rows: np.ndarray | None = None  # a view's rows of the file (take())
        self._lock = threading.Lock()
        self._fh = open(path, "rb") if path is not None else None  # noqa: SIM115 - kept open

    def __len__(self) -> int:
        if self._rows is not None:
            return int(self._rows.shape[0])
        return 0 if self._offsets is None else len(self._offsets) - 1

    def take(self, rows: np.ndarray) -> "ChunkStore":
        """The rows ``rows`` (ascending rows of this store) as a new store over the same
        open file, which it takes over (this one must not be used afterwards): what a
        compaction keeps, without reading a line."""
        view = ChunkStore(None, self._offsets)
        view._path, view._fh, view._lock = self._path, self._fh, self._lock
        base = np.arange(len(self), dtype=np.int64) if self._rows is None else self._rows
        view._rows = base[np.asarray(rows, np.int64)]
        self._fh = None
        return view

    def raw(self, row: int) -> bytes:
        assert self._offsets is not None and self._path is not None
        if self._rows is not None:
            row = int(self._rows[row])
        start, end = int(self._offsets[row]), int(self._offsets[row + 1])
        with self._lock:
            if self._fh is None:
                raise IndexFormatError(f"{self._path}: the index was closed")
            self._fh.seek(start)
            return self._fh.read(end - start)

    def get(self, row: int) -> Chunk:
        try:
            return Chunk.from_dict(json.loads(self.raw(row)))
        except (ValueError, TypeError, KeyError) as exc:
            raise IndexFormatError(f"{self._path}: row {row} is not a valid chunk: {exc}") from exc

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class DocTable:
    """Each document's :class:`SourceInfo`, parsed from ``docs.jsonl`` only when asked
    for; ids and source hashes (:class:`~medrag._docids.DocIds`, memory-mapped), years and
    retraction flags are kept as flat arrays so that loading and filtering never parse
    every line."""

    def __init__(
        self,
        ids: DocIds,
        years: np.ndarray,
        retracted: np.ndarray,
        store: ChunkStore | None = None,
    ) -> None:
        self.ids = ids
        self.years = years
        self.retracted = retracted
        self._store = store
        self._parsed: dict[int, SourceInfo] = {}

    @classmethod
    def from_sources(cls, sources: list[SourceInfo]) -> "DocTable":
        t = cls(DocIds.from_lists([], []), np.zeros(0, np.int32), np.zeros(0, bool))
        t.extend(sources)
        return t

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> SourceInfo:
        i = int(i)
        s = self._parsed.get(i)
        if s is None:
            if self._store is None or i >= len(self._store):
                raise IndexError(i)
            try:
                s = SourceInfo.from_dict(json.loads(self._store.raw(i)))
            except (ValueError, TypeError) as exc:
                raise IndexFormatError(f"docs.jsonl line {i + 1} is not a valid source: {exc}") from exc
            if s.doc_id != self.ids[i]:
                raise IndexFormatError(f"docs.jsonl line {i + 1} is {s.doc_id}, expected {self.ids[i]}")
            self._parsed[i] = s
        return s

    def extend(self, sources: list[SourceInfo]) -> None:
        base = len(self.ids)
        for k, src in enumerate(sources):
            self._parsed[base + k] = src
        self.ids.extend([src.doc_id for src in sources], [src.source_sha256 for src in sources])
        self.years = np.concatenate(
            [np.asarray(self.years), np.array([s.year if s.year is not None else -1 for s in sources], np.int32)]
        )
        self.retracted = np.concatenate([np.asarray(self.retracted), np.array([s.retracted for s in sources], bool)])

    def take(self, rows: np.ndarray) -> "DocTable":
        """The documents ``rows`` (ascending) as a new table, without parsing a line:
        the loaded ones stay lines of ``docs.jsonl`` (a view of it), the added ones stay
        parsed. This table must not be used afterwards (its file moves to the new one)."""
        rows = np.asarray(rows, np.int64)
        n_stored = len(self._store) if self._store is not None else 0
        stored = rows[rows < n_stored]
        t = DocTable(
            self.ids.take(rows), np.asarray(self.years)[rows], np.asarray(self.retracted)[rows],
            self._store.take(stored) if self._store is not None else None,
        )
        for k, r in enumerate(rows[stored.size :].tolist()):
            t._parsed[stored.size + k] = self._parsed[r] if r in self._parsed else self[r]
        return t

    def raw(self, i: int) -> bytes:
        if i in self._parsed or self._store is None:
            return (json.dumps(self[i].to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        return self._store.raw(i)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def check_offsets(path: Path, offsets: np.ndarray, data: Path) -> None:
    if int(offsets[0]) != 0 or int(offsets[-1]) != data.stat().st_size or np.any(np.diff(offsets) <= 0):
        raise IndexFormatError(f"{path} does not match {data.name}")


def load_array(path: Path, dtype: Any, shape: tuple[int, ...], mmap: bool) -> np.ndarray:
    """See :func:`medrag._io.load_npy`."""
    return load_npy(path, dtype, shape, mmap)


class RWLock:
    """Many readers or one writer."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0  # readers wait while a writer waits: no writer starvation

    class _Ctx:
        def __init__(self, enter, leave) -> None:
            self._enter, self._leave = enter, leave

        def __enter__(self) -> None:
            self._enter()

        def __exit__(self, *exc: object) -> None:
            self._leave()

    def _acquire_read(self) -> None:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def _release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def _acquire_write(self) -> None:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True

    def _release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()

    def read(self) -> "RWLock._Ctx":
        return self._Ctx(self._acquire_read, self._release_read)

    def write(self) -> "RWLock._Ctx":
        return self._Ctx(self._acquire_write, self._release_write)
