"""Merging adjacent segments into one, streaming, and the tiered policy that picks them.

The merged segment keeps every row of its inputs in order, so global row numbers do
not move (an id map kept beside the store stays valid); a deleted row stays a
tombstone with no postings and length 0. Terms are the sorted union of the inputs'
live terms (a term only deleted documents had disappears); each merged term's postings
are its inputs' postings in segment order, rows shifted by the segment's offset.

Memory is bounded, not O(merged segment): the term dictionaries are merged first
(k-way, streaming; a few int64 per term are kept, never the postings), then the
postings are copied in chunks of about ``chunk_postings`` (a chunk is a run of whole
merged terms, so one term longer than that is one chunk), each chunk sorted by merged
term and appended to the output ``.npy`` files with plain writes; ``max_w`` and
``block_max`` (format.py) are computed chunk by chunk. What stays in memory is
O(documents + terms + nnz / 128), not O(postings). The output is written in a
temporary directory and renamed into place like every segment (format.py), and only a
new generation (manifest.py) makes it visible: a crash during a merge leaves the
previous generation loadable and the partial output unreferenced.

Policy: :class:`TieredMergePolicy` (after Lucene's TieredMergePolicy; M. McCandless,
"Visualizing Lucene's segment merges", 2011): segments fall into tiers by postings
count, tier ``floor(log_f(nnz / floor_postings))`` with ``f = segments_per_tier``; when
``segments_per_tier`` adjacent segments share a tier they are merged into one of the
next tier, so a store of ``n`` postings keeps O(f log_f n) segments and each posting
is rewritten O(log_f n) times.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import secrets
import shutil
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._hashing import HashingWriter, save_npy
from ..errors import ConfigError
from ..retrieve.bm25 import BM25Params
from .format import BLOCK, Segment, _tf_part, finish_segment, update_bounds
from .manifest import write_deletes

__all__ = ["TieredMergePolicy", "merge_segments"]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_POSTINGS = 1 << 22


@dataclass(frozen=True)
class TieredMergePolicy:
    """Which adjacent segments to merge (module docstring).

    Args:
        segments_per_tier: how many adjacent segments of one tier trigger a merge (>= 2).
        floor_postings: segments smaller than this all count as tier 0.
        max_postings: a merge whose output would exceed this many postings is not
            planned (keeps segments a size searches and shards can use).
    """

    segments_per_tier: int = 10
    floor_postings: int = 1 << 20
    max_postings: int = 1 << 31

    def __post_init__(self) -> None:
        if self.segments_per_tier < 2 or self.floor_postings < 1 or self.max_postings < 1:
            raise ConfigError(f"invalid merge policy {self}")

    def tier(self, nnz: int) -> int:
        return int(math.floor(math.log(max(nnz, self.floor_postings) / self.floor_postings, self.segments_per_tier) + 1e-12))

    def plan(self, records: Sequence[dict[str, Any]]) -> tuple[int, int] | None:
        """The first run ``(start, stop)`` of ``segments_per_tier`` adjacent segments of
        one tier whose merge stays within ``max_postings``, or None."""
        n = self.segments_per_tier
        tiers = [self.tier(int(r["nnz"])) for r in records]
        i = 0
        while i + n <= len(records):
            run = tiers[i : i + n]
            if all(t == run[0] for t in run) and sum(int(r["nnz"]) for r in records[i : i + n]) <= self.max_postings:
                return i, i + n
            i += 1
        return None


class _NpyOut:
    """A 1-d ``.npy`` file of known length written in pieces with plain writes (the
    header is np.save's, so the file equals ``np.save`` of the whole array)."""

    def __init__(self, path: Path, dtype: Any, n: int) -> None:
        self.dtype, self.n, self.count = np.dtype(dtype), int(n), 0
        self.f = open(path, "wb")
        self.h = HashingWriter(self.f)  # the sha256 as written (finish_segment reads nothing back)
        np.lib.format.write_array_header_1_0(
            self.h, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (self.n,)}
        )

    def write(self, arr: np.ndarray) -> None:
        a = np.ascontiguousarray(arr, self.dtype)
        self.h.write(a.tobytes())
        self.count += a.shape[0]

    def close(self) -> tuple[int, str]:
        """Flush, fsync and close; returns the file's ``(size, sha256)``."""
        if self.count != self.n:
            raise RuntimeError(f"{self.f.name}: wrote {self.count} of {self.n} items")
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        return self.h.size, self.h.hexdigest()


def _tagged(seg: Segment, i: int) -> Iterator[tuple[bytes, int, int]]:
    """(term, segment index, local term id) for every term of ``seg``, in term order."""
    for j, t in enumerate(seg.iter_terms()):
        yield t, i, j


def _save(path: Path, arr: np.ndarray) -> tuple[int, str]:
    return save_npy(path, arr)  # fsync'd; (size, sha256) computed while writing


def merge_segments(
    root: Path,
    records: list[dict[str, Any]],
    name: str,
    generation: int,
    params: BM25Params,
    *,
    chunk_postings: int = DEFAULT_CHUNK_POSTINGS,
) -> dict[str, Any]:
    """Write the merge of the segments ``records`` (manifest records, in row order) as
    segment ``name``, streaming (module docstring); returns its manifest record (with
    tombstones for the rows that were deleted, now without postings)."""
    segs = [Segment.open(root / r["name"], expected=r) for r in records]
    alive, live_df, dead_rows, bases = [], [], [], []
    base = 0
    for r, s in zip(records, segs):
        a = np.ones(s.n_docs, bool)
        ldf = s.df()
        if r.get("deletes"):
            rows = np.load(root / r["deletes"]["rows"], allow_pickle=False).astype(np.int64)
            a[rows] = False
            dead_rows.append(rows + base)
            dd = np.load(root / r["deletes"]["df"], allow_pickle=False)
            ldf = ldf.copy()
            ldf[dd[0]] -= dd[1]
        alive.append(a)
        live_df.append(ldf)
        bases.append(base)
        base += s.n_docs
    n_docs = base
    tmp = root / f"tmp-{name}-{secrets.token_hex(4)}"
    tmp.mkdir()
    done = False
    try:
        # 1. the term dictionaries, k-way merged: each input term's merged id (-1: gone)
        remap = [np.full(s.n_terms, -1, np.int64) for s in segs]
        ldf_lists = [d.tolist() for d in live_df]
        term_off = array("Q", [0])
        mdf = array("q")
        hashed: dict[str, tuple[int, str]] = {}  # (size, sha256) as written, for finish_segment
        with open(tmp / "terms.bin", "wb") as terms_file:
            tf_out = HashingWriter(terms_file)
            streams = [_tagged(s, i) for i, s in enumerate(segs)]
            cur: bytes | None = None
            srcs: list[tuple[int, int]] = []
            acc = 0

            def emit() -> None:
                if cur is not None and acc > 0:
                    tid = len(mdf)
                    for i, j in srcs:
                        remap[i][j] = tid
                    tf_out.write(cur)
                    term_off.append(term_off[-1] + len(cur))
                    mdf.append(acc)

            for t, i, j in heapq.merge(*streams):
                if t != cur:
                    emit()
                    cur, srcs, acc = t, [], 0
                srcs.append((i, j))
                acc += ldf_lists[i][j]
            emit()
            tf_out.flush()
            os.fsync(terms_file.fileno())
        hashed["terms.bin"] = (tf_out.size, tf_out.hexdigest())
        del ldf_lists
        n_terms = len(mdf)
        df = np.frombuffer(mdf, np.int64) if n_terms else np.zeros(0, np.int64)
        post_ptr = np.zeros(n_terms + 1, np.int64)
        np.cumsum(df, out=post_ptr[1:])
        nnz = int(post_ptr[-1])
        # 2. document lengths (deleted rows: 0) and ids
        dl = np.concatenate([np.where(a, s.doc_len, 0).astype(np.uint32) for s, a in zip(segs, alive)])
        sum_len = int(dl.sum(dtype=np.int64))
        avgdl = sum_len / n_docs if n_docs else 1.0
        ids_off = np.zeros(n_docs + 1, np.uint64)
        with open(tmp / "ids.bin", "wb") as ids_file:
            f = HashingWriter(ids_file)
            pos = 0
            for s, b0 in zip(segs, bases):
                blob = s._ids_blob[int(s.ids_off[0]) : int(s.ids_off[-1])]
                f.write(blob.tobytes())
                ids_off[b0 + 1 : b0 + s.n_docs + 1] = s.ids_off[1:].astype(np.uint64) - s.ids_off[0] + np.uint64(pos)
                pos += blob.shape[0]
            f.flush()
            os.fsync(ids_file.fileno())
        hashed["ids.bin"] = (f.size, f.hexdigest())
        # 3. postings, chunk by chunk of whole merged terms
        tdt = max((np.dtype(s.tf.dtype) for s in segs), key=lambda d: d.itemsize)
        docs_out = _NpyOut(tmp / "docs.npy", np.uint32, nnz)
        tf_out2 = _NpyOut(tmp / "tf.npy", tdt, nnz)
        max_w = np.zeros(n_terms, np.float32)
        block_max = np.zeros(nnz // BLOCK + n_terms + 1, np.float32)
        # merged-term boundaries of the chunks (by input postings, deleted ones included)
        raw = np.zeros(n_terms + 1, np.int64)
        for s, rm in zip(segs, remap):
            keep = rm >= 0
            np.add.at(raw, rm[keep] + 1, s.df()[keep])
        raw = np.cumsum(raw)
        cuts = [0]
        while cuts[-1] < n_terms:
            nxt = int(np.searchsorted(raw, raw[cuts[-1]] + chunk_postings, side="right")) - 1
            cuts.append(min(max(nxt, cuts[-1] + 1), n_terms))
        written = 0
        kept_of = [np.flatnonzero(rm >= 0) for rm in remap]  # input terms that survive
        kept_ids = [rm[k] for rm, k in zip(remap, kept_of)]  # their merged ids (increasing)
        for t0, t1 in zip(cuts, cuts[1:]):
            terms_p, rows_p, tf_p = [], [], []
            for s, rm, a, b0, kept, kid in zip(segs, remap, alive, bases, kept_of, kept_ids):
                # this segment's terms in [t0, t1)
                lo = int(np.searchsorted(kid, t0))
                hi = int(np.searchsorted(kid, t1))
                if lo == hi:
                    continue
                l0, l1 = int(kept[lo]), int(kept[hi - 1]) + 1
                p0, p1 = int(s.post_ptr[l0]), int(s.post_ptr[l1])
                d = np.asarray(s.docs[p0:p1])
                term = np.repeat(rm[l0:l1], np.diff(s.post_ptr[l0 : l1 + 1].astype(np.int64)))
                k = a[d]
                terms_p.append(term[k])
                rows_p.append(d[k].astype(np.int64) + b0)
                tf_p.append(np.asarray(s.tf[p0:p1])[k])
            term = np.concatenate(terms_p)
            order = np.argsort(term, kind="stable")  # segments in order: rows stay ascending
            term = term[order]
            rows = np.concatenate(rows_p)[order]
            tfc = np.concatenate(tf_p)[order]
            del terms_p, rows_p, tf_p, order
            docs_out.write(rows)
            tf_out2.write(tfc)
            if rows.size:
                update_bounds(post_ptr, term, written, _tf_part(tfc, dl, rows, params.k1, params.b, avgdl), max_w, block_max)
            written += rows.size
        hashed["docs.npy"] = docs_out.close()
        hashed["tf.npy"] = tf_out2.close()
        if written != nnz:
            raise RuntimeError(f"merge {name}: {written} postings written, {nnz} expected")
        for fname, arr in (
            ("term_off.npy", np.frombuffer(term_off, np.uint64)), ("post_ptr.npy", post_ptr.astype(np.uint64)),
            ("max_w.npy", max_w), ("block_max.npy", block_max), ("doc_len.npy", dl), ("ids_off.npy", ids_off),
        ):  # fmt: skip
            hashed[fname] = _save(tmp / fname, arr)
        meta = finish_segment(
            tmp, root, name, n_docs=n_docs, n_terms=n_terms, nnz=nnz, sum_len=sum_len, tf_dtype=tdt,
            k1=params.k1, b=params.b, avgdl=avgdl, written=hashed,
        )  # fmt: skip
        done = True
    finally:
        if not done:
            shutil.rmtree(tmp, ignore_errors=True)  # our own temporary directory only
    rec: dict[str, Any] = {"name": name, **{k: meta[k] for k in ("n_docs", "n_terms", "nnz", "sum_len", "files")}}
    if dead_rows:
        rows = np.concatenate(dead_rows)
        dels = write_deletes(root, generation, name, rows, np.zeros((2, 0), np.int64))
        dels["del_len"] = 0  # their lengths are 0 in the merged segment
        rec["deletes"] = dels
    logger.info("merged %d segments into %s (%d rows, %d postings)", len(segs), name, n_docs, nnz)
    return rec
