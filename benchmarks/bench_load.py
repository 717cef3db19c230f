"""Index load time at scale: a synthetic lexical index of N one-chunk documents
(Zipf-distributed vocabulary, PubMed-like lengths), saved, then loaded with and without
sha256 verification (sizes only; the default, which skips the sha256 pass when the
generation's verification record vouches for its files; the full pass; and the first
load of a fresh copy, which hashes and records), plus BM25 query latency on the
loaded index. Run against an older medrag it prints the rows that version has.

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
        def best_of_3(where: Path, verify: object) -> tuple[float, float]:
            wall, cpu = [], []
            for _ in range(3):
                t0, c0 = time.perf_counter(), time.process_time()
                Index.load(where, verify=verify).close()
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            return min(wall) * 1000, min(cpu) * 1000

        modes: list[tuple[str, object]] = [("sizes only (verify=False)", False), ("default (verify=True)", True)]
        if hasattr(Index, "verify"):  # the verification record (medrag.index.verify)
            modes.append(("full sha256 (verify='full')", "full"))
        for label, verify in modes:
            wall, cpu = best_of_3(path, verify)
            print(f"load, {label}: best of 3 {wall:.0f} ms wall, {cpu:.0f} ms CPU")
        if hasattr(Index, "verify"):
            import shutil

            copy = Path(tmp) / "copy"
            shutil.copytree(path, copy)  # new inodes: the record no longer vouches for the files
            t0, c0 = time.perf_counter(), time.process_time()
            Index.load(copy).close()
            print(f"load of a fresh copy (hashes and records once): {(time.perf_counter() - t0) * 1000:.0f} ms wall, "
                  f"{(time.process_time() - c0) * 1000:.0f} ms CPU")
        loaded = Index.load(path)
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
