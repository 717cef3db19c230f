"""Merging adjacent segments into one, dropping the postings of deleted documents.

The merged segment keeps every row of its inputs in order, so global row numbers do
not move (an id map kept beside the store stays valid); a deleted row stays a
tombstone with no postings and length 0. Terms are the sorted union of the inputs'
terms; each merged term's postings are its inputs' postings in segment order, rows
shifted by the segment's offset, which are already ascending, so one stable sort by
term id orders them.

Memory is O(merged segment): choose the runs to merge accordingly (a tiered policy,
as Lucene's, merges segments of similar size; that policy is not written yet).
"""

from __future__ import annotations

import heapq
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..retrieve.bm25 import BM25Params
from .format import Segment, write_segment
from .manifest import write_deletes

__all__ = ["merge_segments"]

logger = logging.getLogger(__name__)


def merge_segments(
    root: Path, records: list[dict[str, Any]], name: str, generation: int, params: BM25Params
) -> dict[str, Any]:
    """Write the merge of the segments ``records`` (manifest records, in row order) as
    segment ``name``; returns its manifest record (with tombstones for the rows that
    were deleted, now without postings)."""
    segs = [Segment.open(root / r["name"], expected=r) for r in records]
    dead_rows = []
    alive = []
    base = 0
    for r, s in zip(records, segs):
        a = np.ones(s.n_docs, bool)
        if r.get("deletes"):
            rows = np.load(root / r["deletes"]["rows"], allow_pickle=False).astype(np.int64)
            a[rows] = False
            dead_rows.append(rows + base)
        alive.append(a)
        base += s.n_docs
    n_docs = base
    lists = [s.terms_list() for s in segs]
    merged: list[bytes] = []
    for t in heapq.merge(*lists):
        if not merged or merged[-1] != t:
            merged.append(t)
    tid = {t: i for i, t in enumerate(merged)}
    term_parts, doc_parts, tf_parts, lens, ids = [], [], [], [], []
    base = 0
    for s, terms, a in zip(segs, lists, alive):
        remap = np.fromiter((tid[t] for t in terms), np.int64, len(terms))
        term_of = np.repeat(remap, s.df())
        keep = a[s.docs]
        term_parts.append(term_of[keep])
        doc_parts.append(s.docs[keep].astype(np.int64) + base)
        tf_parts.append(np.asarray(s.tf[keep], np.uint32))
        dl = np.asarray(s.doc_len, np.uint32).copy()
        dl[~a] = 0
        lens.append(dl)
        ids.extend(s.all_ids())
        base += s.n_docs
    del tid, lists
    term = np.concatenate(term_parts)
    docs = np.concatenate(doc_parts)
    tf = np.concatenate(tf_parts)
    order = np.argsort(term, kind="stable")
    term, docs, tf = term[order], docs[order], tf[order]
    df = np.bincount(term, minlength=len(merged))
    used = df > 0  # a term only deleted documents had disappears
    post_ptr = np.zeros(int(used.sum()) + 1, np.uint64)
    np.cumsum(df[used], out=post_ptr[1:])
    meta = write_segment(
        root,
        name,
        terms=[t for t, u in zip(merged, used.tolist()) if u],
        post_ptr=post_ptr,
        docs=docs.astype(np.uint32),
        tf=tf,
        doc_len=np.concatenate(lens),
        ids=ids,
        k1=params.k1,
        b=params.b,
    )
    rec: dict[str, Any] = {"name": name, **{k: meta[k] for k in ("n_docs", "n_terms", "nnz", "sum_len", "files")}}
    if dead_rows:
        rows = np.concatenate(dead_rows)
        dels = write_deletes(root, generation, name, rows, np.zeros((2, 0), np.int64))
        dels["del_len"] = 0  # their lengths are 0 in the merged segment
        rec["deletes"] = dels
    logger.info("merged %d segments into %s (%d rows, %d postings)", len(segs), name, n_docs, meta["nnz"])
    return rec
