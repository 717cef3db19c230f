"""A segmented, disk-backed lexical store with global BM25 statistics (issue 16).

Documents stream into immutable segments of bounded size; a manifest per generation
lists the segments with their checksums; search runs across the segments with global
statistics (N, avgdl, df), so scores equal one index built over all live documents
(rank-bm25's ``BM25Okapi``, as ``BM25Index``). One module per job:

    format.py       the segment directory: compact memory-mapped arrays, segment.json
    manifest.py     generations, CURRENT, tombstone files, atomic commit, garbage collection
    stats.py        global statistics: idf, the idf floor from a df histogram
    writer.py       StoreWriter: streaming, bounded memory per segment, deletes, commit
    merge.py        streaming merge of adjacent segments (row numbers stay put), tiered policy
    search.py       StoreSearcher: exact and MaxScore top-k across segments
    views.py        the searcher's per-segment and per-query-term records
    search_numpy.py the numpy scoring paths (exact, term-at-a-time MaxScore)
    search_compiled.py  the compiled path: kernels per segment, thread groups, one threshold
    kernel.py       compiled (numba) exhaustive and block-max MaxScore kernels
    kernel_terms.py compiled term lookup and the k-way df merge of a commit
    _jit.py         the numba registry: kernels compiled on first use, not at import
    build.py        parallel build on one machine: a worker process per input file
    ray_embed.py    Ray: embedding on GPU or CPU actors, row-aligned parts, IVF-PQ from them
    distributed.py  Ray: parallel build over input files, search by actors holding
                    segments, global top-k merge (optional extra ``medrag[ray]``)

Example::

    from medrag.retrieve import Analyzer
    from medrag.store import StoreSearcher, StoreWriter

    an = Analyzer()
    with StoreWriter("indexes/pubmed-lex", analyzer=an) as w:
        for doc in docs:
            w.add(doc.id, an.tokenize(doc.title + "\\n" + doc.text))
    hits = StoreSearcher.open("indexes/pubmed-lex").search_text("statins and dementia")

Verification on open is O(files) (format, version and the size of every file against
the manifest); ``StoreSearcher.open(path, verify=True)`` or :meth:`StoreSearcher.verify`
recomputes every sha256 and the structural invariants.

How ``medrag.Index`` uses the store: since 0.2, ``Index.build(..., lexical="segments")``
(``medrag/index/lexical.py``) writes and searches a store under ``<index>/lexical/``
through :class:`StoreWriter` and :class:`StoreSearcher`, and an index loaded from it
is changed in place (``medrag/index/storelex.py``: a save appends a segment and
tombstones and merges by the tiered policy). The full plan, of which step 1's lexical
part, step 2's search and step 3 (merging at save, not by ``Index.optimize``) are done:

1. ``Index.build`` streams chunks: each chunk's analyzed tokens go to a
   :class:`StoreWriter` under ``<index>/lexical/`` with the chunk id as ``doc_id``; the
   chunk text and metadata go to a parallel row-aligned columnar store (same segment
   boundaries, text stored once per chunk, offsets into a per-segment text blob instead
   of JSON per row), so global row ``i`` is chunk ``i`` in the lexical store, the chunk
   store and the dense index.
2. ``Index.search`` calls ``StoreSearcher.search_rows(tokens, k, mode="maxscore",
   mask=...)``; metadata filters become per-segment boolean columns (year, retracted,
   kind) memory-mapped beside the segment, so a mask is built per segment, not per
   corpus, and ``_row_mask`` stops growing with the corpus.
3. ``Index.add`` appends segments; ``Index.delete`` writes tombstones
   (``StoreWriter.delete_rows``); a background or explicit ``Index.optimize`` merges
   adjacent segments. ``Index.load`` opens the generation named by ``CURRENT`` with
   size checks only; ``Index.verify`` does the full sha256 pass.
4. ``BM25Index`` stays as the in-memory engine for small corpora and the reference the
   store is tested against; the ``Index`` manifest records which engine built it.
"""

from __future__ import annotations

from .format import Segment, verify_segment
from .manifest import collect_garbage, read_current
from .merge import TieredMergePolicy
from . import kernel
from .search import Hit, StoreSearcher
from .writer import StoreWriter

__all__ = [
    "Hit", "Segment", "StoreSearcher", "StoreWriter", "TieredMergePolicy", "collect_garbage", "kernel",
    "read_current", "verify_segment",
]  # fmt: skip
