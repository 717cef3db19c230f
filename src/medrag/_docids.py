"""The document ids of an index (row -> id, id -> row) and their source files' sha256,
held as flat arrays that a load memory-maps instead of parsing (index format 2).

On disk, per generation:

``doc_ids.bin``         the ids, UTF-8, concatenated;
``doc_id_offsets.npy``  int64 (n + 1): id ``i`` is ``doc_ids.bin[off[i]:off[i + 1]]``;
``doc_id_hash.npy``     uint64 (n): the 64-bit BLAKE2b digest of every id, ascending;
``doc_id_order.npy``    int64 (n): the row of each entry of ``doc_id_hash.npy``;
``doc_sha256.npy``      ``S64`` (n): each document's source-file sha256 (hex; empty: none).

An id is found by binary search of its digest, then compared byte for byte, so a load
reads nothing per document (about 100 bytes a document stay on disk; 0.1's
``doc_ids.json`` was parsed into Python lists and a dict: ~250 bytes a document in RAM
and about a second per million documents). Documents added since the load are kept in
memory beside them until the next save. The structure check at load (digests sorted,
no two rows with one id, offsets monotone) is vectorized: O(n) numpy, no Python per row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._hashing import save_npy, write_file
from ._io import load_npy
from .errors import ConfigError, IndexFormatError

__all__ = ["DocIds", "FILES", "digest", "fingerprint_line", "sha_records"]

FILES = ("doc_ids.bin", "doc_id_offsets.npy", "doc_id_hash.npy", "doc_id_order.npy", "doc_sha256.npy")


def digest(doc_id: str) -> int:
    """The 64-bit BLAKE2b digest of a document id (its UTF-8 bytes), as an int."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "little")


def fingerprint_line(row: int, doc_id: str, sha: str | None) -> bytes:
    """Row ``row``'s part of the corpus fingerprint: the lines ``"<id> <sha256 or None>"``
    joined by newlines (the formula of format 1), fed to sha256 one row at a time."""
    return f"{chr(10) if row else ''}{doc_id} {sha}".encode("utf-8")


def _digests(ids: Sequence[str]) -> np.ndarray:
    return np.fromiter((digest(i) for i in ids), np.uint64, len(ids))


class DocIds:
    """Row -> id, id -> row (the latest row of an id: a replaced document keeps its dead
    row until compaction) and row -> source sha256, for :class:`~medrag._indexparts.DocTable`."""

    def __init__(
        self,
        blob: np.ndarray,
        offsets: np.ndarray,
        hashes: np.ndarray,
        order: np.ndarray,
        shas: np.ndarray,
    ) -> None:
        self._blob, self._off, self._hash, self._order, self._shas = blob, offsets, hashes, order, shas
        self._n_base = int(offsets.shape[0]) - 1
        self._tail: list[str] = []  # ids added since the load (rows n_base ..)
        self._tail_shas: list[str | None] = []
        self._tail_row: dict[str, int] = {}

    # ------------------------------------------------------------------ making

    @classmethod
    def from_lists(cls, ids: Sequence[str], shas: Sequence[str | None]) -> "DocIds":
        """An in-memory table of ``ids`` (rows in order) and their sha256 (or None)."""
        if len(ids) != len(shas):
            raise ConfigError(f"{len(ids)} ids for {len(shas)} hashes")
        enc = [i.encode("utf-8") for i in ids]
        off = np.zeros(len(enc) + 1, np.int64)
        np.cumsum([len(b) for b in enc], out=off[1:])
        blob = np.frombuffer(b"".join(enc), np.uint8)
        h = _digests(ids)
        order = np.argsort(h, kind="stable").astype(np.int64)
        return cls(blob, off, h[order], order, sha_records(shas))

    @classmethod
    def load(cls, root: Path, n: int | None, mmap: bool, *, deep: bool = False) -> "DocIds":
        """The table saved under ``root`` (:data:`FILES`), checked: offsets monotone and
        within ``doc_ids.bin``, ``doc_id_order.npy`` a permutation, digests ascending and
        their rows' ids compared where two are equal (a collision) so that no id has two
        rows; with ``deep``, also every digest recomputed from its id (about a second per
        million documents: run with the sha256 pass, once per generation, since the
        files' checksums vouch for it afterwards). :class:`IndexFormatError` naming the
        file otherwise. ``n``: the expected number of documents, if known."""
        off = load_npy(root / "doc_id_offsets.npy", np.int64, None, mmap)
        if off.ndim != 1 or off.shape[0] < 1:
            raise IndexFormatError(f"{root / 'doc_id_offsets.npy'}: expected a 1-d array of n + 1 offsets")
        count = int(off.shape[0]) - 1
        if n is not None and count != n:
            raise IndexFormatError(f"{root / 'doc_id_offsets.npy'}: {count} ids, expected {n}")
        size = (root / "doc_ids.bin").stat().st_size
        if int(off[0]) != 0 or int(off[-1]) != size or (count and bool((np.diff(off) <= 0).any())):
            raise IndexFormatError(f"{root / 'doc_id_offsets.npy'}: offsets do not cut doc_ids.bin ({size} bytes) into non-empty ids")
        if size:
            blob = np.memmap(root / "doc_ids.bin", np.uint8, "r") if mmap else np.fromfile(root / "doc_ids.bin", np.uint8)
        else:
            blob = np.zeros(0, np.uint8)
        h = load_npy(root / "doc_id_hash.npy", np.uint64, (count,), mmap)
        order = load_npy(root / "doc_id_order.npy", np.int64, (count,), mmap)
        shas = load_npy(root / "doc_sha256.npy", "S64", (count,), mmap)
        if count:
            if bool((h[1:] < h[:-1]).any()):  # (np.diff of uint64 wraps around)
                raise IndexFormatError(f"{root / 'doc_id_hash.npy'}: digests not ascending")
            seen = np.zeros(count, bool)
            if int(order.min()) < 0 or int(order.max()) >= count:
                raise IndexFormatError(f"{root / 'doc_id_order.npy'}: rows out of range")
            seen[order] = True
            if not seen.all():
                raise IndexFormatError(f"{root / 'doc_id_order.npy'}: not a permutation of the rows")
        t = cls(blob, off, h, order, shas)
        if deep and count:
            try:
                ok = np.array_equal(_digests(list(t))[order], h)
            except UnicodeDecodeError as exc:
                raise IndexFormatError(f"{root / 'doc_ids.bin'}: an id is not UTF-8: {exc}") from exc
            if not ok:
                raise IndexFormatError(f"{root / 'doc_id_hash.npy'}: digests do not match the ids of doc_ids.bin")
        dup = t._first_duplicate()
        if dup is not None:
            raise IndexFormatError(f"{root / 'doc_ids.bin'}: the id {t[dup[0]]!r} has two rows")
        return t

    def _first_duplicate(self) -> tuple[int, int] | None:
        """Two loaded rows with one id, if any: equal digests (a collision, rare, or the
        same id twice) compared byte for byte."""
        h = self._hash
        for j in (np.flatnonzero(h[1:] == h[:-1]).tolist() if self._n_base else []):
            a, b = int(self._order[j]), int(self._order[j + 1])
            if self[a] == self[b]:
                return a, b
        return None

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return self._n_base + len(self._tail)

    def __getitem__(self, i: int) -> str:
        i = int(i)
        if i < 0:
            i += len(self)
        if 0 <= i < self._n_base:
            return bytes(self._blob[int(self._off[i]) : int(self._off[i + 1])]).decode("utf-8")
        if self._n_base <= i < len(self):
            return self._tail[i - self._n_base]
        raise IndexError(i)

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self)):
            yield self[i]

    def sha(self, i: int) -> str | None:
        """The source sha256 of row ``i`` (None: not recorded)."""
        i = int(i)
        if i >= self._n_base:
            return self._tail_shas[i - self._n_base]
        v = bytes(self._shas[i]).decode("ascii")
        return v or None

    def row(self, doc_id: str) -> int | None:
        """The latest row of ``doc_id``, or None."""
        r = self._tail_row.get(doc_id)
        if r is not None:
            return r
        if not self._n_base:
            return None
        h = np.uint64(digest(doc_id))
        j = int(np.searchsorted(self._hash, h, side="left"))
        while j < self._n_base and self._hash[j] == h:
            cand = int(self._order[j])
            if self[cand] == doc_id:
                return cand
            j += 1
        return None

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.row(doc_id) is not None

    # ------------------------------------------------------------------ changing

    def extend(self, ids: Sequence[str], shas: Sequence[str | None]) -> None:
        base = len(self)
        for k, (i, s) in enumerate(zip(ids, shas)):
            self._tail.append(i)
            self._tail_shas.append(s)
            self._tail_row[i] = base + k

    def take(self, rows: np.ndarray) -> "DocIds":
        """A new table of ``rows`` (ascending): the loaded ones gathered as arrays, a
        million rows at a time (no Python string per row), the added ones as they are."""
        rows = np.asarray(rows, np.int64)
        base = rows[rows < self._n_base]
        off = np.asarray(self._off, np.int64)
        lens = off[base + 1] - off[base]
        new_off = np.zeros(base.size + 1, np.int64)
        np.cumsum(lens, out=new_off[1:])
        blob = np.empty(int(new_off[-1]), np.uint8)
        src = np.asarray(self._blob)
        step = 1 << 20
        for a in range(0, base.size, step):
            b = min(a + step, base.size)
            n = int(new_off[b] - new_off[a])
            idx = np.repeat(off[base[a:b]] - (new_off[a:b] - new_off[a]), lens[a:b]) + np.arange(n, dtype=np.int64)
            blob[int(new_off[a]) : int(new_off[b])] = src[idx]
        by_row = np.empty(self._n_base, np.uint64)
        by_row[np.asarray(self._order)] = np.asarray(self._hash)
        h = by_row[base]
        order = np.argsort(h, kind="stable").astype(np.int64)
        t = DocIds(blob, new_off, h[order], order, np.asarray(self._shas)[base])
        tail = [int(r) - self._n_base for r in rows[base.size :]]
        t.extend([self._tail[r] for r in tail], [self._tail_shas[r] for r in tail])
        return t

    # ------------------------------------------------------------------ saving

    def fingerprint(self) -> str:
        """sha256 of the lines ``"<id> <sha256 or None>"`` joined by newlines, streamed."""
        h = hashlib.sha256()
        for i in range(len(self)):
            h.update(fingerprint_line(i, self[i], self.sha(i)))
        return h.hexdigest()

    def _merged(self) -> "DocIds":
        """The loaded rows and the added ones as one table, without a Python string per
        loaded row (their bytes, digests and hashes are concatenated as arrays)."""
        tail = DocIds.from_lists(self._tail, self._tail_shas)
        base_end = int(self._off[-1])
        blob = np.concatenate([np.asarray(self._blob[:base_end]), tail._blob])
        off = np.concatenate([np.asarray(self._off, np.int64), tail._off[1:] + base_end])
        h = np.concatenate([np.asarray(self._hash), tail._hash])
        order = np.concatenate([np.asarray(self._order), tail._order + self._n_base])
        by = np.argsort(h, kind="stable")  # the loaded rows' digests are sorted already
        shas = np.concatenate([np.asarray(self._shas), tail._shas])
        return DocIds(blob, off, h[by], order[by], shas)

    def write(self, d: Path) -> dict[str, tuple[int, str]]:
        """Write :data:`FILES` under ``d``; returns each file's (size, sha256), hashed as
        written. Fails (:class:`IndexFormatError`) if an id has two rows."""
        full = self._merged() if self._tail else self
        dup = full._first_duplicate()
        if dup is not None:
            raise ConfigError(f"the document id {full[dup[0]]!r} has two rows ({dup[0]} and {dup[1]}): compact first")
        known: dict[str, tuple[int, str]] = {}
        blob = full._blob

        def write_blob(f: Any) -> None:
            step = 1 << 24
            for s in range(0, int(blob.shape[0]), step):
                f.write(bytes(blob[s : s + step]))

        known["doc_ids.bin"] = write_file(d / "doc_ids.bin", write_blob, fsync=False)
        known["doc_id_offsets.npy"] = save_npy(d / "doc_id_offsets.npy", np.asarray(full._off, np.int64), fsync=False)
        known["doc_id_hash.npy"] = save_npy(d / "doc_id_hash.npy", np.asarray(full._hash, np.uint64), fsync=False)
        known["doc_id_order.npy"] = save_npy(d / "doc_id_order.npy", np.asarray(full._order, np.int64), fsync=False)
        known["doc_sha256.npy"] = save_npy(d / "doc_sha256.npy", np.asarray(full._shas), fsync=False)
        return known


def sha_records(shas: Sequence[str | None]) -> np.ndarray:
    """``shas`` as an ``S64`` array (None: empty); ConfigError for a value that is not 1-64
    ASCII characters."""
    out = np.zeros(len(shas), np.dtype("S64"))
    for k, s in enumerate(shas):
        if s is None:
            continue
        b = s.encode("ascii", "strict") if isinstance(s, str) and s.isascii() else None
        if b is None or not 0 < len(b) <= 64 or b.endswith(b"\0"):
            raise ConfigError(f"a source sha256 must be up to 64 ASCII characters, not {s!r}")
        out[k] = b
    return out
