"""Index load time at scale: a synthetic lexical index of N one-chunk documents
(Zipf-distributed vocabulary, PubMed-like lengths), saved, then loaded with and without
sha256 verification, plus BM25 query latency on the loaded index.

Run:  python benchmarks/bench_load.py [--docs 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from medrag.index import Index, IndexConfig
from medrag.types import Document, PubDate, PubmedMetadata, Section, SourceFile


def synthetic_docs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(50_000)])
    ranks = np.arange(1, len(vocab) + 1)
    p = 1.0 / ranks**1.07
    p /= p.sum()
    src = SourceFile("synthetic", "0" * 64)
    for i in range(n):
        words = vocab[rng.choice(len(vocab), size=int(rng.integers(60, 180)), p=p)]
        text = " ".join(words) + "."
        yield Document(
            id=f"pmid:{i + 1}", kind="pubmed", title=f"title {i}", text=text,
            sections=(Section(kind="abstract", label=None, start=0, end=len(text)),),
            source=src, year=1990 + i % 35, pubmed=PubmedMetadata(pmid=str(i + 1), pub_date=PubDate(year=1990 + i % 35)),
        )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        index = Index.build(synthetic_docs(args.docs), IndexConfig(encoder=None))
        t_build = time.perf_counter() - t0
        path = Path(tmp) / "ix"
        t0 = time.perf_counter()
        index.save(path)
        t_save = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in path.resolve().rglob("*") if p.is_file())
        print(f"{len(index):,} chunks: build {t_build:.1f} s, save {t_save:.1f} s, {size / 2**20:.0f} MiB on disk")
        for verify in (False, True):
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                loaded = Index.load(path, verify=verify)
                times.append(time.perf_counter() - t0)
            print(f"load (verify={verify}): best of 3 {min(times) * 1000:.0f} ms")
        rng = np.random.default_rng(1)
        queries = [" ".join(f"w{int(x)}" for x in rng.zipf(1.3, size=6) if x < 50_000) or "w1" for _ in range(200)]
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            loaded.search(q, k=10, mode="bm25")
            lat.append(time.perf_counter() - t0)
        lat_ms = np.array(lat) * 1000
        print(f"BM25 search k=10 on the loaded index: p50 {np.percentile(lat_ms, 50):.2f} ms, "
              f"p99 {np.percentile(lat_ms, 99):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
