"""Answer latency on a ~20k-document HYBRID index (BM25 + MiniLM), query encoding included.

The index: the 500 PubMedQA PQA-L dev abstracts plus the 18,445 abstracts of the real 2021
update file (pubmed21n1298), exactly the corpus of ``bench_answer.py --distractors``, with
the packaged all-MiniLM-L6-v2. Chunk embeddings come from the cache that
``bench_answer.py --distractors --cache .cache/A`` fills (sha256-keyed, resumable), so
building costs chunking + BM25, not hours of embedding; a cold cache embeds first.

Queries: the 500 PubMedQA questions (real question texts). Each answer is timed end to
end: ``medrag.answer.answer(question, index)`` = the query's MiniLM forward pass (not
cached), BM25 + dense search and fusion, support, sentence selection and citations.
Reported: p50 / p95 / p99 of wall-clock time and of this process's CPU time per answer
(``time.process_time``: on shared, busy cores the wall clock measures the neighbours
too), and the same for the query encoding and the search alone. With
``--dense-evidence`` also with ``AnswerConfig(dense_evidence=True)`` (every candidate
sentence encoded with MiniLM, cached per chunk).

Single-threaded (torch and faiss 1 thread) unless ``--threads``.

Run:  python benchmarks/bench_latency_hybrid.py [--limit 200] [--dense-evidence] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_answer import cached_only, make_encoder, pubmedqa_docs  # noqa: E402

from medrag.answer import AnswerConfig, answer  # noqa: E402
from medrag.index import Index, IndexConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1000.0, q))


def timed(fn, queries):
    """Wall and CPU seconds of ``fn(q)`` for each query."""
    wall, cpu = [], []
    for q in queries:
        t0, c0 = time.perf_counter(), time.process_time()
        fn(q)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def row(name, wall, cpu):
    return {
        "what": name, "n": len(wall),
        "wall_ms": {"p50": pct(wall, 50), "p95": pct(wall, 95), "p99": pct(wall, 99), "mean": float(np.mean(wall) * 1000)},
        "cpu_ms": {"p50": pct(cpu, 50), "p95": pct(cpu, 95), "p99": pct(cpu, 99), "mean": float(np.mean(cpu) * 1000)},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(REPO / ".cache" / "A"), help="the chunk-embedding cache (CachedEncoder)")
    ap.add_argument("--limit", type=int, default=None, help="questions timed (default: all 500)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--distractors", type=int, default=None,
                    help="only the first N distractor abstracts (a smoke test; default: all 18,445)")
    ap.add_argument("--cached-only", action="store_true",
                    help="only the distractors whose chunk vectors are cached (a cold cache: report the size)")
    ap.add_argument("--dense-evidence", action="store_true", help="also time AnswerConfig(dense_evidence=True)")
    ap.add_argument("--dense-limit", type=int, default=50,
                    help="questions timed with --dense-evidence (it encodes every candidate sentence; default 50)")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()

    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)

    from medrag.ingest import iter_pubmed
    from medrag.ingest.samples import UPDATE_SAMPLE, pubmed_sample_files

    data = Path(args.data)
    docs, questions = pubmedqa_docs(data / "pubmedqa" / "pqal_dev.json")
    own = {d.id for d in docs}
    extra = [d for d in iter_pubmed(pubmed_sample_files()[UPDATE_SAMPLE]) if d.text and d.id not in own]
    extra = extra[: args.distractors]
    enc_cfg, encoder = make_encoder(Path(args.cache))
    if args.cached_only:
        extra = cached_only(extra, encoder, IndexConfig(encoder=enc_cfg))
    corpus = list(docs) + extra
    t0, c0 = time.perf_counter(), time.process_time()
    index = Index.build(corpus, IndexConfig(encoder=enc_cfg), encoder=encoder)
    print(f"hybrid index: {index.n_documents:,} documents, {len(index):,} chunks; built from cached embeddings in "
          f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU")
    all_qs = [q for _, q in questions]
    warm = all_qs[len(all_qs) - args.warmup:]  # warm-up questions are never timed
    qs = all_qs[: min(args.limit or len(all_qs), len(all_qs) - args.warmup)]
    for q in warm:
        answer(q, index)

    inner = encoder  # the query side is never cached: each question runs the model
    results = []
    w, c = timed(lambda q: inner.encode_queries([q]), qs)
    results.append(row("query encoding (MiniLM, 1 question)", w, c))
    w, c = timed(lambda q: index.search(q, k=8), qs)
    results.append(row("search (encode + BM25 + dense + fusion), k=8", w, c))
    statuses = []

    def ans(cfg):
        def f(q):
            statuses.append(answer(q, index, config=cfg).status)
        return f

    cfg = AnswerConfig()
    w, c = timed(ans(cfg), qs)
    results.append(row("answer (default AnswerConfig)", w, c))
    if args.dense_evidence:
        cfg_d = dataclasses.replace(cfg, dense_evidence=True)
        for q in warm:
            answer(q, index, config=cfg_d)
        w, c = timed(ans(cfg_d), qs[: args.dense_limit])
        results.append(row("answer (dense_evidence=True)", w, c))
    print(f"{len(qs)} questions; answer statuses (default config): "
          + ", ".join(f"{s} {statuses[: len(qs)].count(s)}" for s in sorted(set(statuses[: len(qs)]))))
    print("| what | p50 wall ms | p95 wall ms | p99 wall ms | p50 CPU ms | p95 CPU ms | mean CPU ms |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['what']} | {r['wall_ms']['p50']:.0f} | {r['wall_ms']['p95']:.0f} | {r['wall_ms']['p99']:.0f} | "
              f"{r['cpu_ms']['p50']:.0f} | {r['cpu_ms']['p95']:.0f} | {r['cpu_ms']['mean']:.0f} |")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (2 cores)")
    if args.json:
        Path(args.json).write_text(json.dumps({"documents": index.n_documents, "chunks": len(index), "rows": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
