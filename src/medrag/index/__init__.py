"""The hybrid index: BM25 + dense vectors over chunks, fused; saved to and loaded from
a directory; updated in place.

Row ``i`` is the same chunk everywhere: line ``i`` of ``chunks.jsonl``, row ``i`` of the
BM25 matrix and of the vector array. A directory holds::

    manifest.json      format, format_version, library version, created time, index id,
                       corpus fingerprint, chunking, analyzer, BM25 params, encoder
                       (model, prefixes, dim), vector index (kind, FAISS factory),
                       fusion, counts, and the sha256 and size of every file
    docs.jsonl         one SourceInfo per document (what citations and filters need)
    doc_ids.bin        the document ids, with doc_id_offsets.npy, doc_id_hash.npy,
                       doc_id_order.npy (sorted 64-bit digests: id -> row) and
                       doc_sha256.npy (source files), memory-mapped (medrag._docids;
                       format 1 kept them in doc_ids.json, still read)
    chunks.jsonl       one Chunk per row; chunk_offsets.npy: byte offset of each line
    chunk_doc.npy      the document (line of docs.jsonl) of each row
    bm25/              sparse BM25 arrays (see medrag.retrieve.bm25), no pickle; or, for
    lexical/           an index built with lexical="segments", a medrag.store segmented
                       store (the manifest's "lexical" names the engine; medrag.index.lexical)
    dense/vectors.npy  float32 unit vectors; dense/index.faiss for HNSW / IVF-PQ
    grades_rows.npy    the rows that are guideline recommendations, and in
    grades_codes.npy   grades_codes.npy their strength / certainty / system codes
                       (see medrag.index.grades; the manifest's "grades" names them)
    .medrag-verified.json  the generation's verification record (medrag.index.verify;
                       not listed in the manifest)

The index path is a real directory (it survives ``cp -r``, ``cp -a`` and ``tar``).
Saving writes a new generation into a sibling staging directory and swaps it in with
one atomic rename, under a cross-process write lock; a loaded index keeps reading the
generation it loaded. See :mod:`medrag._indexdir` for the commit, locking and clean-up
rules. Indexes written by medrag 0.1 (the path a symbolic link to a hidden sibling)
still load, and the next save turns them into a real directory.

Loading checks the format version, refuses any file the manifest names outside the
directory (or reached through a symbolic link), verifies sizes always and sha256
checksums once per generation (:mod:`.verify`), and rebuilds the analyzer and the query encoder from the manifest, never from the
caller's defaults. It never loads an encoder from outside the index (the hub, another
folder) unless the caller passes one or opts in with ``trust_encoder=True``; the
default packaged model loads offline from its installed package.

Modules (each one job): :mod:`.config` (what decides an index's contents, format
version), :mod:`.filters` (metadata and grade filters, row masks), :mod:`.grades`
(the recommendation grade table, grade boosts), :mod:`.lexical` (the lexical engine a
save writes: BM25 arrays or a segmented store), :mod:`.storelex` (a loaded store
searched and changed in place), :mod:`.search` (BM25 / dense / hybrid search), :mod:`.mutate` (add, delete, compaction), :mod:`.persist` (save,
load, manifest), :mod:`.stream` (a saved lexical index written from a stream of
documents in bounded memory: :meth:`Index.build_to`), :mod:`.verify` (file checks and the verification record) and
:mod:`.core` (the :class:`Index` class composing them).
"""

from __future__ import annotations

from .config import FORMAT, FORMAT_VERSION, FusionConfig, IndexConfig
from .core import Index
from .filters import Filters

__all__ = ["Index", "IndexConfig", "FusionConfig", "Filters", "FORMAT", "FORMAT_VERSION"]
