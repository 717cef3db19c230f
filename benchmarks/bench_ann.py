"""Approximate vector search: recall@10 against exact search, and latency.

Corpora: the SciFact MiniLM vectors cached by bench_dense_models.py / bench_index.py
(.cache/scifact, 5,183 x 384, with the 809 claim vectors as queries), and a synthetic
clustered set of N unit vectors (default 100,000 x 384) with held-out queries.
For each: exact ("flat"), HNSW and IVF-PQ at their default settings (VectorConfig).

Run:  python benchmarks/bench_ann.py [--n 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from medrag.retrieve.dense import VectorConfig, VectorIndex

REPO = Path(__file__).resolve().parents[1]


def clustered(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(50, n // 500), d)).astype(np.float32)
    x = centers[rng.integers(0, len(centers), n)] + 0.6 * rng.normal(size=(n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall_at(vectors: np.ndarray, queries: np.ndarray, kind: str, k: int = 10):
    exact = VectorIndex(vectors, VectorConfig(kind="flat"))
    index = VectorIndex(vectors, VectorConfig(kind=kind))
    t0 = time.perf_counter()
    index.search(queries[0], k)  # builds the ANN structure
    build = time.perf_counter() - t0
    hits, lat = 0, []
    for q in queries:
        truth = set(exact.search(q, k)[0].tolist())
        t0 = time.perf_counter()
        got = index.search(q, k)[0]
        lat.append(time.perf_counter() - t0)
        hits += len(truth & set(got.tolist()))
    lat_ms = np.array(lat) * 1000
    return hits / (k * len(queries)), build, np.percentile(lat_ms, 50), np.percentile(lat_ms, 99)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    sets = []
    cache = REPO / ".cache" / "scifact"
    if (cache / "all-MiniLM-L6-v2.corpus.npy").exists():
        sets.append(("SciFact MiniLM 5,183", np.load(cache / "all-MiniLM-L6-v2.corpus.npy"),
                     np.load(cache / "all-MiniLM-L6-v2.queries.npy")[: args.queries]))
    else:
        print("(no cached SciFact vectors: run benchmarks/bench_dense_models.py first)")
    x = clustered(args.n + args.queries, 384, 0)
    sets.append((f"synthetic clustered {args.n:,}", x[: args.n], x[args.n :]))
    print(f"{'corpus':28s} {'kind':6s} {'recall@10':>9s} {'build s':>8s} {'p50 ms':>7s} {'p99 ms':>7s}")
    for name, vecs, qs in sets:
        for kind in ("flat", "hnsw", "ivfpq"):
            r, b, p50, p99 = recall_at(np.ascontiguousarray(vecs, dtype=np.float32), qs.astype(np.float32), kind)
            print(f"{name:28s} {kind:6s} {r:9.4f} {b:8.1f} {p50:7.2f} {p99:7.2f}")
    print(f"defaults: {VectorConfig()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
