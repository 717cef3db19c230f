"""A whole index (documents, chunks, the segmented lexical store) at 1M+ documents,
written by ``Index.build_to`` from a stream (issue 16): build time and peak RSS, disk,
load time, resident memory after load, and BM25 search latency through ``Index.search``
(chunks read back from ``chunks.jsonl``) for the 1,309 real queries.

Documents: the synthetic corpus of bench_scale.py (perturbed real PubMed abstracts,
synth_corpus.py), as text: the first 12 tokens the title, the rest the abstract (rare
terms renamed per copy as ``termqN``, so they stay one token), with PubMed metadata
(PMID, year) like a real record. Each phase runs in a child process (its own peak RSS):

  python benchmarks/bench_index_stream.py --n 1000000 --phase build
  python benchmarks/bench_index_stream.py --n 1000000 --phase query
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth_corpus as sc  # noqa: E402
from bench_scale import _cpu  # noqa: E402
from bench_engines import _du, _rss_gib  # noqa: E402

WORK = sc.REPO / ".cache" / "I"


def _anon_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def documents(n: int, batch: int = 50_000):
    from medrag.types import Document, PubDate, PubmedMetadata, Section, SourceFile

    base, _ = sc.real_pubmed()
    src = SourceFile("synthetic-pubmed", "0" * 64)
    k = 0
    for ids, lists in sc.synthesize_batches(base, n, batch=batch):
        for toks in lists:
            toks = [t.replace("~", "q") for t in toks]
            title, text = " ".join(toks[:12]), " ".join(toks[12:]) or "empty"
            year = 1975 + k % 50
            k += 1
            yield Document(
                id=f"pmid:{k}", kind="pubmed", title=title, text=text,
                sections=(Section(kind="abstract", label=None, start=0, end=len(text)),), source=src, year=year,
                pubmed=PubmedMetadata(pmid=str(k), pub_date=PubDate(year=year)),
            )  # fmt: skip


def build(n: int, out: Path, batch_docs: int) -> dict:
    from medrag.index import Index, IndexConfig

    t0, c0 = time.perf_counter(), _cpu()
    Index.build_to(out, documents(n), IndexConfig(encoder=None), batch_docs=batch_docs, progress="log")
    m = json.loads((out / "manifest.json").read_text())
    return {
        "n_docs": m["counts"]["documents"], "n_chunks": m["counts"]["chunks"],
        "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(_cpu() - c0, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "disk_mib": round(_du(out) / 2**20, 1),
        "files_mib": {k: round(v["size"] / 2**20, 1) for k, v in m["files"].items() if v["size"] > 2**24},
    }


def query(out: Path, n_queries: int | None) -> dict:
    from medrag.index import Filters, Index

    rss0, anon0 = _rss_gib(), _anon_gib()
    t = time.perf_counter()
    Index.load(out).close()  # the first load also imports the store's modules and kernels
    first_s = time.perf_counter() - t
    t, c = time.perf_counter(), _cpu()
    ix = Index.load(out)
    load_s, load_cpu = time.perf_counter() - t, _cpu() - c
    after_load = {"rss_gib": round(_rss_gib(), 3), "anon_gib": round(_anon_gib(), 3),
                  "interpreter_rss_gib": round(rss0, 3), "interpreter_anon_gib": round(anon0, 3)}
    qs = sc.real_queries()[:n_queries]
    for q in qs[:50]:
        ix.search(q, 10, mode="bm25")
    wall, cpu = [], []
    for q in qs:
        t, c = time.perf_counter(), _cpu()
        ix.search(q, 10, mode="bm25")
        wall.append(time.perf_counter() - t)
        cpu.append(_cpu() - c)
    t = time.perf_counter()
    n_docs = int(ix.manifest["counts"]["documents"])
    probe = [f"pmid:{i}" for i in range(1, n_docs + 1, max(1, n_docs // 200))]
    for i in probe:
        ix.source(i)
    src_ms = (time.perf_counter() - t) / len(probe) * 1e3
    f = Filters(exclude_doc_ids=tuple(probe[:50]))
    t = time.perf_counter()
    ix.search(qs[0], 10, mode="bm25", filters=f)
    filt_ms = (time.perf_counter() - t) * 1e3
    pct = lambda xs, p: round(float(np.percentile(xs, p)) * 1e3, 2)  # noqa: E731
    return {
        "first_load_s": round(first_s, 3), "load_s": round(load_s, 3), "load_cpu_s": round(load_cpu, 3), "after_load": after_load,
        "queries": len(qs), "search_p50_ms": pct(wall, 50), "search_p99_ms": pct(wall, 99),
        "search_cpu_p50_ms": pct(cpu, 50), "search_cpu_p99_ms": pct(cpu, 99),
        "rss_after_queries_gib": round(_rss_gib(), 3), "anon_after_queries_gib": round(_anon_gib(), 3),
        "source_lookup_ms": round(src_ms, 4), "first_exclude_filter_search_ms": round(filt_ms, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--phase", choices=["build", "query"], required=True)
    ap.add_argument("--batch-docs", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args(argv)
    out = args.dir or WORK / f"index_{args.n}"
    if args.phase == "build":
        res = build(args.n, out, args.batch_docs)
    else:
        res = query(out, args.queries)
    res["cmd"] = " ".join(sys.argv)
    res["loadavg"] = os.getloadavg()
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"stream_{args.n}_{args.phase}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
