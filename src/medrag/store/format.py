"""The on-disk segment: an immutable directory of ``.npy`` arrays plus ``segment.json``.

A segment holds ``n_docs`` documents (local rows ``0 .. n_docs - 1``) and their postings,
term-major, rows ascending within a term::

    terms.bin      the UTF-8 bytes of every term, sorted by bytes, concatenated
    term_off.npy   uint64 (n_terms + 1,)   term t is terms.bin[term_off[t]:term_off[t+1]]
    post_ptr.npy   uint64 (n_terms + 1,)   term t's postings are [post_ptr[t], post_ptr[t+1])
    docs.npy       uint32 (nnz,)           local row of each posting
    tf.npy         uint8|uint16|uint32     term frequency of each posting (narrowest fit)
    max_w.npy      float32 (n_terms,)      per term: the largest BM25 tf part
                                           tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))
                                           of its postings at this segment's avgdl, rounded
                                           up: MaxScore's upper bounds (search.py)
    block_max.npy  float32 (nnz // B + n_terms + 1,)  per block of B (128) postings of a
                                           term: the block's largest tf part (as max_w);
                                           term t's j-th block is at
                                           post_ptr[t] // B + t + j (block-max MaxScore,
                                           kernel.py); segments written before it existed
                                           lack it and fall back to max_w
    doc_len.npy    uint32 (n_docs,)        tokens per document
    ids.bin        the UTF-8 bytes of the documents' ids, concatenated
    ids_off.npy    uint64 (n_docs + 1,)
    segment.json   format, version, counts, the (k1, b, avgdl) max_w was computed with,
                   and size + sha256 of every file (written last)

A posting costs 5 bytes with small tfs (uint32 row + uint8 tf) against 16 in
``BM25Index`` (int32 row, int32 tf, float64 weight); no weight is stored because BM25's
weights depend on corpus-wide statistics that change when any segment is added.

The directory is written under a temporary name and renamed into place, so a segment
either exists whole or not at all; it is visible to searchers only once a manifest
(manifest.py) lists it. Arrays are read with ``allow_pickle=False`` and memory-mapped.
Opening checks every file's size against ``segment.json`` (O(files)); :func:`verify_segment`
recomputes the sha256 of every byte and the structural invariants (O(segment)).
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .._hashing import save_npy, write_file
from .._io import load_format_json, load_npy, sha256_file
from ..errors import IndexFormatError

__all__ = ["SEGMENT_FORMAT", "SEGMENT_VERSION", "Segment", "finish_segment", "write_segment", "verify_segment"]

logger = logging.getLogger(__name__)

SEGMENT_FORMAT = "medrag.store.segment"
SEGMENT_VERSION = 1
_META = "segment.json"
_ARRAYS = ("term_off", "post_ptr", "docs", "tf", "max_w", "doc_len", "ids_off")
_OPTIONAL = ("block_max",)  # absent from segments written before block-max existed
BLOCK = 128  # postings per block-max block
_BLOBS = ("terms.bin", "ids.bin")
_SAMPLE = 64  # every 64th term is kept in memory to find a term's block


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tf_dtype(max_tf: int) -> np.dtype[Any]:
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_tf <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise IndexFormatError(f"term frequency {max_tf} does not fit in uint32")


def _join(strings: list[bytes]) -> tuple[bytes, np.ndarray]:
    off = np.zeros(len(strings) + 1, np.uint64)
    if strings:
        np.cumsum(np.fromiter(map(len, strings), np.uint64, len(strings)), out=off[1:])
    return b"".join(strings), off


def write_segment(
    parent: Path,
    name: str,
    *,
    terms: list[bytes],
    post_ptr: np.ndarray,
    docs: np.ndarray,
    tf: np.ndarray,
    doc_len: np.ndarray,
    ids: list[str],
    k1: float,
    b: float,
) -> dict[str, Any]:
    """Write a segment directory ``parent/name`` atomically; returns its description
    (the content of ``segment.json``). ``terms`` must be sorted and unique (as bytes);
    ``docs`` ascending within each term; ``k1``, ``b``: the store's BM25 parameters
    (for the upper bounds ``max_w``)."""
    n_terms, nnz, n_docs = len(terms), int(docs.shape[0]), int(doc_len.shape[0])
    if post_ptr.shape != (n_terms + 1,) or tf.shape != (nnz,) or len(ids) != n_docs:
        raise IndexFormatError(f"segment {name}: inconsistent array shapes")
    tmp = parent / f"tmp-{name}-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    committed = False
    try:
        tdt = _tf_dtype(int(tf.max()) if nnz else 1)
        if n_terms and np.any(np.diff(post_ptr.astype(np.int64)) <= 0):
            raise IndexFormatError(f"segment {name}: a term without postings")
        dl = np.asarray(doc_len, np.uint32)
        avgdl = float(dl.sum(dtype=np.int64)) / n_docs if n_docs else 1.0
        max_w, block_max = _bounds(np.asarray(post_ptr, np.int64), docs, tf, dl, k1, b, avgdl)
        terms_blob, term_off = _join(terms)
        ids_blob, ids_off = _join([i.encode("utf-8") for i in ids])
        arrays = {
            "term_off": term_off,
            "post_ptr": np.asarray(post_ptr, np.uint64),
            "docs": np.asarray(docs, np.uint32),
            "tf": np.asarray(tf, tdt),
            "max_w": max_w,
            "block_max": block_max,
            "doc_len": dl,
            "ids_off": ids_off,
        }
        written: dict[str, tuple[int, str]] = {}  # sha256 computed while writing (medrag._hashing)
        for key, arr in arrays.items():
            written[f"{key}.npy"] = save_npy(tmp / f"{key}.npy", arr)  # fsync'd
        for fname, blob in (("terms.bin", terms_blob), ("ids.bin", ids_blob)):
            written[fname] = write_file(tmp / fname, lambda f, blob=blob: f.write(blob))
        meta = finish_segment(
            tmp, parent, name,
            n_docs=n_docs, n_terms=n_terms, nnz=nnz, sum_len=int(dl.sum(dtype=np.int64)),
            tf_dtype=tdt, k1=k1, b=b, avgdl=avgdl, written=written,
        )  # fmt: skip
        committed = True
    finally:
        if not committed:
            shutil.rmtree(tmp, ignore_errors=True)  # our own temporary directory only
    logger.debug("wrote segment %s: %d docs, %d terms, %d postings", name, n_docs, n_terms, nnz)
    return meta


def finish_segment(
    tmp: Path, parent: Path, name: str, *, n_docs: int, n_terms: int, nnz: int, sum_len: int,
    tf_dtype: Any, k1: float, b: float, avgdl: float, written: dict[str, tuple[int, str]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Checksum every (fsync'd) file of the temporary directory ``tmp``, write
    ``segment.json`` last and rename ``tmp`` to ``parent/name``; returns the metadata.
    For writers that stream the files themselves (merge.py). ``written``: ``(size,
    sha256)`` of files hashed as they were written, used when the size still matches
    (the rest are read back)."""
    files = {}
    for p in sorted(tmp.iterdir()):
        size, w = p.stat().st_size, (written or {}).get(p.name)
        files[p.name] = {"size": size, "sha256": w[1] if w is not None and w[0] == size else sha256_file(p)}
    meta = {
        "format": SEGMENT_FORMAT,
        "format_version": SEGMENT_VERSION,
        "n_docs": int(n_docs),
        "n_terms": int(n_terms),
        "nnz": int(nnz),
        "sum_len": int(sum_len),
        "tf_dtype": str(np.dtype(tf_dtype)),
        "bound": {"k1": float(k1), "b": float(b), "avgdl": float(avgdl)},
        "block": BLOCK,
        "files": files,
    }
    with open(tmp / _META, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    os.rename(tmp, parent / name)
    _fsync_dir(parent)
    return meta


_STEP = 1 << 22  # postings per chunk when computing bounds (bounds the temporaries)


def _tf_part(tf: np.ndarray, dl: np.ndarray, docs: np.ndarray, k1: float, b: float, avgdl: float) -> np.ndarray:
    """BM25's tf part ``tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))`` of each posting
    (float64)."""
    t = np.asarray(tf, np.float64)
    d = np.asarray(dl[docs], np.float64)
    return t * (k1 + 1) / (t + k1 * (1 - b + b * d / avgdl))


def _bounds(
    post_ptr: np.ndarray, docs: np.ndarray, tf: np.ndarray, dl: np.ndarray, k1: float, b: float, avgdl: float
) -> tuple[np.ndarray, np.ndarray]:
    """``max_w`` (per term) and ``block_max`` (per block of :data:`BLOCK` postings of a
    term): the largest tf part, float32 rounded up. Chunks of postings at a time."""
    n_terms, nnz = post_ptr.shape[0] - 1, int(docs.shape[0])
    max_w = np.zeros(n_terms, np.float32)
    block_max = np.zeros(nnz // BLOCK + n_terms + 1, np.float32)
    for lo in range(0, nnz, _STEP):
        hi = min(lo + _STEP, nnz)
        term = np.searchsorted(post_ptr, np.arange(lo, hi, dtype=np.int64), side="right") - 1
        update_bounds(post_ptr, term, lo, _tf_part(tf[lo:hi], dl, docs[lo:hi], k1, b, avgdl), max_w, block_max)
    return max_w, block_max


def update_bounds(
    post_ptr: np.ndarray, term: np.ndarray, lo: int, f: np.ndarray, max_w: np.ndarray, block_max: np.ndarray
) -> None:
    """Raise ``max_w`` and ``block_max`` (in place) to cover the postings ``lo, lo + 1,
    ...`` of terms ``term`` (non-decreasing) with tf parts ``f``."""
    for key, out in ((term, max_w), (_slots(post_ptr, term, lo), block_max)):
        first = np.r_[0, np.flatnonzero(np.diff(key)) + 1]
        k = key[first]
        out[k] = np.maximum(out[k], _round_up(np.maximum.reduceat(f, first)))


def _round_up(v: np.ndarray) -> np.ndarray:
    """float32 of ``v``, rounded up where rounding went down (a bound must not be below)."""
    r = v.astype(np.float32)
    low = r.astype(np.float64) < v
    r[low] = np.nextafter(r[low], np.float32(np.inf))
    return r


def _slots(post_ptr: np.ndarray, term: np.ndarray, lo: int) -> np.ndarray:
    """The block-max slot of postings ``lo, lo + 1, ...`` of terms ``term``:
    ``post_ptr[t] // B + t + (i - post_ptr[t]) // B`` for posting ``i`` of term ``t``
    (int64, non-decreasing; slots of different terms never collide because
    ``post_ptr[t + 1] // B + t + 1 >= post_ptr[t] // B + t + ceil(df / B)``)."""
    start = post_ptr[:-1][term]
    return start // BLOCK + term + (np.arange(lo, lo + term.shape[0], dtype=np.int64) - start) // BLOCK


@dataclass(frozen=True)
class _TermBlocks:
    """Term lookup with a sparse in-memory sample (every 64th term), as Lucene's
    term index does: bisect the sample, then bisect one block of the mmap'd terms."""

    sample: list[bytes]
    blob: np.ndarray  # uint8 memmap of terms.bin
    off: np.ndarray  # uint64 memmap

    def find(self, term: bytes) -> int:
        """The term id of ``term``, or -1."""
        j = bisect.bisect_right(self.sample, term) - 1
        if j < 0:
            return -1
        lo = j * _SAMPLE
        hi = min(lo + _SAMPLE, self.off.shape[0] - 1)
        offs = self.off[lo : hi + 1].tolist()
        base = offs[0]
        chunk = self.blob[base : offs[-1]].tobytes()
        offs = [o - base for o in offs]
        k = bisect.bisect_left(range(hi - lo), term, key=lambda i: chunk[offs[i] : offs[i + 1]])
        return lo + k if k < hi - lo and chunk[offs[k] : offs[k + 1]] == term else -1

    def term(self, t: int) -> bytes:
        return self.blob[int(self.off[t]) : int(self.off[t + 1])].tobytes()


class Segment:
    """A read-only, memory-mapped segment (see the module docstring)."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.name = path.name
        self.meta = meta
        self.n_docs = int(meta["n_docs"])
        self.n_terms = int(meta["n_terms"])
        self.nnz = int(meta["nnz"])
        self.sum_len = int(meta["sum_len"])
        tdt = np.dtype(meta["tf_dtype"])
        shapes = {
            "term_off": ((self.n_terms + 1,), np.uint64),
            "post_ptr": ((self.n_terms + 1,), np.uint64),
            "docs": ((self.nnz,), np.uint32),
            "tf": ((self.nnz,), tdt),
            "max_w": ((self.n_terms,), np.float32),
            "doc_len": ((self.n_docs,), np.uint32),
            "ids_off": ((self.n_docs + 1,), np.uint64),
        }
        a = {k: _load_array(path / f"{k}.npy", *shapes[k]) for k in _ARRAYS}
        #: per-block upper bounds (or None for a segment written before they existed)
        self.block_max: np.ndarray | None = None
        if "block_max.npy" in meta["files"]:
            self.block_max = _load_array(
                path / "block_max.npy", (self.nnz // BLOCK + self.n_terms + 1,), np.float32
            )
        self.term_off, self.post_ptr = a["term_off"], a["post_ptr"]
        self.docs, self.tf, self.max_w = a["docs"], a["tf"], a["max_w"]
        self.bound = meta["bound"]
        self.doc_len, self.ids_off = a["doc_len"], a["ids_off"]
        self._terms_blob = _load_blob(path / "terms.bin")
        self._ids_blob = _load_blob(path / "ids.bin")
        self._term_blocks: _TermBlocks | None = None  # built on the first find() (_terms)

    @property
    def _terms(self) -> _TermBlocks:
        """The term sample of :class:`_TermBlocks`, made on first use: opening a segment
        reads nothing per term (the compiled lookup, kernel_terms.find_terms, needs no
        sample; at 36M documents the samples of 15 segments took 0.8 s and paged in every
        term offset)."""
        tb = self._term_blocks
        if tb is None:
            so = self.term_off[: self.n_terms : _SAMPLE].tolist()
            eo = self.term_off[1 : self.n_terms + 1 : _SAMPLE].tolist()
            sample = [self._terms_blob[s:e].tobytes() for s, e in zip(so, eo)]
            if len(sample) != (self.n_terms + _SAMPLE - 1) // _SAMPLE:
                raise IndexFormatError(f"{self.path}: term sample does not match n_terms")
            tb = self._term_blocks = _TermBlocks(sample, self._terms_blob, self.term_off)  # idempotent
        return tb

    @classmethod
    def open(cls, path: Path, expected: dict[str, Any] | None = None) -> "Segment":
        """Open a segment, checking format, version and every file's size (never the
        contents: see :func:`verify_segment`). ``expected`` is the manifest's record of
        the segment; its file sizes and checksums must equal the segment's own."""
        meta = _read_meta(path)
        if expected is not None and expected.get("files") != meta["files"]:
            raise IndexFormatError(f"{path}: files differ from what the manifest recorded")
        for fname, rec in meta["files"].items():
            p = path / fname
            try:
                size = p.stat().st_size
            except FileNotFoundError as e:
                raise IndexFormatError(f"{p}: missing") from e
            if size != rec["size"]:
                raise IndexFormatError(f"{p}: {size} bytes, expected {rec['size']} (truncated?)")
        return cls(path, meta)

    def find(self, term: str) -> int:
        """The local term id of ``term``, or -1."""
        if self.n_terms == 0:
            return -1
        return self._terms.find(term.encode("utf-8"))

    def term(self, t: int) -> str:
        return self._terms.term(t).decode("utf-8")

    def iter_terms(self, block: int = 65536) -> Iterator[bytes]:
        """Every term, in order, as bytes; reads ``block`` terms at a time."""
        for lo in range(0, self.n_terms, block):
            hi = min(lo + block, self.n_terms)
            off = self.term_off[lo : hi + 1].tolist()
            chunk = self._terms_blob[off[0] : off[-1]].tobytes()
            base = off[0]
            for i in range(hi - lo):
                yield chunk[off[i] - base : off[i + 1] - base]

    def terms_list(self) -> list[bytes]:
        """Every term, in order (O(n_terms) memory: for merging)."""
        return list(self.iter_terms())

    def df(self) -> np.ndarray:
        return np.diff(self.post_ptr.astype(np.int64))

    def postings(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = int(self.post_ptr[t]), int(self.post_ptr[t + 1])
        return self.docs[s:e], self.tf[s:e]

    def doc_id(self, row: int) -> str:
        return self._ids_blob[int(self.ids_off[row]) : int(self.ids_off[row + 1])].tobytes().decode("utf-8")

    def all_ids(self) -> list[str]:
        blob = self._ids_blob.tobytes()
        off = self.ids_off.tolist()
        return [blob[off[i] : off[i + 1]].decode("utf-8") for i in range(self.n_docs)]


def _read_meta(path: Path) -> dict[str, Any]:
    p = path / _META
    meta = load_format_json(p, SEGMENT_FORMAT, SEGMENT_VERSION, what="segment", missing="missing (an incomplete segment?)")
    for k in ("n_docs", "n_terms", "nnz", "sum_len", "tf_dtype", "bound", "files"):
        if k not in meta:
            raise IndexFormatError(f"{p}: no {k!r}")
    if meta["tf_dtype"] not in ("uint8", "uint16", "uint32"):
        raise IndexFormatError(f"{p}: tf_dtype {meta['tf_dtype']!r}")
    expected = {f"{k}.npy" for k in _ARRAYS} | set(_BLOBS)
    if "block_max.npy" in meta["files"]:
        expected |= {f"{k}.npy" for k in _OPTIONAL}
        if meta.get("block") != BLOCK:
            raise IndexFormatError(f"{p}: block size {meta.get('block')!r}, this library reads {BLOCK}")
    if set(meta["files"]) != expected:
        raise IndexFormatError(f"{p}: file list {sorted(meta['files'])} is not {sorted(expected)}")
    return meta


def _load_array(path: Path, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return load_npy(path, dtype, shape, mmap=True)


def _load_blob(path: Path) -> np.ndarray:
    if path.stat().st_size == 0:
        return np.zeros(0, np.uint8)
    return np.asarray(np.memmap(path, dtype=np.uint8, mode="r"))


def verify_segment(path: Path) -> None:
    """Full check: sha256 of every file and the structural invariants. O(segment)."""
    meta = _read_meta(path)
    for fname, rec in meta["files"].items():
        got = sha256_file(path / fname)
        if got != rec["sha256"]:
            raise IndexFormatError(f"{path / fname}: sha256 {got[:12]}... != recorded {rec['sha256'][:12]}...")
    seg = Segment.open(path)
    ptr = seg.post_ptr.astype(np.int64)
    if seg.n_terms and (ptr[0] != 0 or ptr[-1] != seg.nnz or np.any(np.diff(ptr) <= 0)):
        raise IndexFormatError(f"{path}: post_ptr is not a valid pointer array")
    if seg.nnz:
        if int(seg.docs.max()) >= seg.n_docs:
            raise IndexFormatError(f"{path}: a posting's row is out of range")
        if int(seg.tf.min()) < 1:
            raise IndexFormatError(f"{path}: a term frequency < 1")
        d = seg.docs.astype(np.int64)
        inner = np.ones(seg.nnz, bool)
        inner[ptr[:-1]] = False
        if np.any(np.diff(d)[inner[1:]] <= 0):
            raise IndexFormatError(f"{path}: rows not ascending within a term")
    terms = seg.terms_list()
    if any(a >= b for a, b in zip(terms, terms[1:])):
        raise IndexFormatError(f"{path}: terms not sorted and unique")
    if seg.block_max is not None and seg.nnz:
        bp = seg.bound
        mw, bm = _bounds(ptr, seg.docs, seg.tf, seg.doc_len, bp["k1"], bp["b"], bp["avgdl"])
        if not (np.array_equal(mw, seg.max_w) and np.array_equal(bm, seg.block_max)):
            raise IndexFormatError(f"{path}: max_w or block_max differ from the postings'")
