"""Choose the lexical engine by measurement (issue 16).

Engines, all fed the SAME analyzed tokens (medrag's default Analyzer) and the SAME real
query texts (SciFact training claims + PubMed titles, see synth_corpus.real_queries):

* ``rank``        rank-bm25 ``BM25Okapi``: the exact-BM25 oracle (small corpora only).
* ``bm25``        medrag 0.1's ``BM25Index`` (retrieve/bm25.py), exact, in memory,
                  saved as .npy and reloaded memory-mapped for the queries.
* ``tantivy``     tantivy (Rust, Lucene-like; PyPI ``tantivy``): tokens joined by spaces
                  under its ``whitespace`` tokenizer, term frequencies only (no
                  positions), one writer thread; its own BM25 (k1 1.2, b 0.75, idf
                  ln(1 + (N - df + .5)/(df + .5)), 1-byte length norms) and block-max
                  WAND top-k.
* ``store``       medrag.store, exact mode (every posting of every query term).
* ``store-ms``    medrag.store, MaxScore mode (Turtle & Flood 1995): exact top-k, only
                  the postings of "essential" terms are read in full.

Each (engine, corpus) runs as two child processes: ``build`` (build + save; wall time and
peak RSS of the child) and ``query`` (load, then every query once after 50 warm-up
queries; load time, RSS after load and after the queries, p50/p99 of wall time and of
the process's CPU time per query, top-10 per query). On a shared machine the CPU-time
figures are the comparable ones: wall time also counts time other processes held the
cores.
Agreement is top-10 overlap with the exact reference (``rank`` where it ran, else
``bm25``) and the share of queries whose top-10 list is identical.

Corpora: ``scifact`` (5,183), ``pubmed`` (the 50,788 real articles), ``synth:N``
(N documents made by perturbing real abstracts, synth_corpus.py), streamed in batches.

Run (niced; ~2 cores shared):
  nice -n 10 python benchmarks/bench_engines.py --corpus scifact,pubmed \
      --engines rank,bm25,tantivy,store,store-ms
  nice -n 10 python benchmarks/bench_engines.py --corpus synth:1000000 --engines bm25,tantivy,store-ms
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth_corpus as sc  # noqa: E402

WORK = sc.REPO / ".cache" / "h8" / "engines"


def _rss_gib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------------- corpora


def _batches(corpus: str, batch: int = 50_000):
    """(ids, token_lists) batches of a named corpus."""
    if corpus == "scifact":
        c, _, _ = sc.real_scifact()
    elif corpus == "pubmed":
        c, _ = sc.real_pubmed()
    elif corpus.startswith("synth:"):
        base, _ = sc.real_pubmed()
        yield from sc.synthesize_batches(base, int(corpus.split(":")[1]), batch=batch)
        return
    else:
        raise SystemExit(f"unknown corpus {corpus}")
    for s in range(0, c.n_docs, batch):
        e = min(s + batch, c.n_docs)
        yield c.ids[s:e], list(c.token_lists(s, e))


def _queries(corpus: str) -> list[list[str]]:
    from medrag.retrieve import Analyzer

    an = Analyzer()
    qs = [an.tokenize(q) for q in sc.real_queries()]
    return [q for q in qs if q]


# ---------------------------------------------------------------------- engines


class _Timed:
    """Iterates ``_batches`` and keeps the seconds spent producing them (reading or
    synthesizing the corpus), so a build's time counts the engine's work only."""

    def __init__(self, it):
        self.it, self.seconds = iter(it), 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t = time.perf_counter()
        try:
            return next(self.it)
        finally:
            self.seconds += time.perf_counter() - t


def build(engine: str, corpus: str, out: Path) -> dict:
    t_all = time.perf_counter()
    rss0 = _rss_gib()
    batches = _Timed(_batches(corpus))
    if engine == "rank":
        return {"skipped": "rank-bm25 has no saved form; built in the query phase"}
    if engine == "bm25":
        import scipy.sparse as sp

        from medrag.retrieve import BM25Index

        vocab: dict[str, int] = {}
        mats, ids_all = [], []
        for ids, lists in batches:
            # counts per batch as CSR (term ids from a growing vocabulary), so memory is
            # the count matrix, not a list of Python ints per token
            setdefault = vocab.setdefault
            lens = np.fromiter((len(t) for t in lists), np.int64, len(lists))
            tid = np.fromiter((setdefault(t, len(vocab)) for ts in lists for t in ts), np.int32, int(lens.sum()))
            rows = np.repeat(np.arange(len(lists), dtype=np.int32), lens)
            mats.append(sp.csr_matrix((np.ones(tid.size, np.int32), (rows, tid)), shape=(len(lists), len(vocab))))
            ids_all.extend(ids)
        n_terms = len(vocab)
        mats = [sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], n_terms)) for m in mats]
        tf = sp.vstack(mats, format="csr")
        del mats
        index = BM25Index.from_tf_matrix(tf, list(vocab))
        del tf
        index.save(out / "bm25")
        (out / "ids.json").write_text(json.dumps(ids_all))
    elif engine == "tantivy":
        import tantivy

        sb = tantivy.SchemaBuilder()
        sb.add_text_field("body", stored=False, tokenizer_name="whitespace", index_option="freq")
        sb.add_unsigned_field("row", stored=True)
        schema = sb.build()
        (out / "tantivy").mkdir(parents=True, exist_ok=True)
        index = tantivy.Index(schema, path=str(out / "tantivy"))
        writer = index.writer(heap_size=256 * 2**20, num_threads=1)
        row = 0
        ids_all = []
        for ids, lists in batches:
            for toks in lists:
                writer.add_document(tantivy.Document(body=" ".join(toks), row=row))
                row += 1
            ids_all.extend(ids)
        writer.commit()
        writer.wait_merging_threads()
        (out / "ids.json").write_text(json.dumps(ids_all))
    elif engine in ("store", "store-ms"):
        from medrag.store import StoreWriter

        with StoreWriter(out / "store") as w:
            for ids, lists in batches:
                w.add_many(ids, lists)
    else:
        raise SystemExit(f"unknown engine {engine}")
    return {
        "build_s": round(time.perf_counter() - t_all - batches.seconds, 2),
        "corpus_s": round(batches.seconds, 2),  # producing the documents, not counted above
        "build_peak_rss_gib": round(_peak_gib(), 3),
        "rss_before_build_gib": round(rss0, 3),
        "disk_mib": round(_du(out) / 2**20, 1),
    }


def query(engine: str, corpus: str, out: Path) -> dict:
    queries = _queries(corpus)
    rss0 = _rss_gib()
    t0 = time.perf_counter()
    if engine == "rank":
        from rank_bm25 import BM25Okapi

        ids_all, docs = [], []
        for ids, lists in _batches(corpus):
            ids_all.extend(ids)
            docs.extend(lists)
        bm = BM25Okapi(docs)
        del docs
        n_rows = len(ids_all)

        def search(q):
            s = bm.get_scores(q)
            top = np.lexsort((np.arange(n_rows), -s))[:10]
            return [ids_all[i] for i in top.tolist() if s[i] != 0 or True]
    elif engine == "bm25":
        from medrag.retrieve import BM25Index

        index = BM25Index.load(out / "bm25", mmap=True)
        ids_all = json.loads((out / "ids.json").read_text())

        def search(q):
            rows, _ = index.search(q, 10)
            return [ids_all[i] for i in rows.tolist()]
    elif engine == "tantivy":
        import tantivy

        index = tantivy.Index.open(str(out / "tantivy"))
        index.reload()
        searcher = index.searcher()
        schema = index.schema
        ids_all = json.loads((out / "ids.json").read_text())

        def search(q):
            tq = tantivy.Query.boolean_query(
                [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "body", t)) for t in q]
            )
            hits = searcher.search(tq, 10).hits
            return [ids_all[searcher.doc(a)["row"][0]] for _, a in hits]
    elif engine in ("store", "store-ms"):
        from medrag.store import StoreSearcher

        st = StoreSearcher.open(out / "store")
        mode = "exact" if engine == "store" else "maxscore"

        def search(q):
            return [h.doc_id for h in st.search(q, 10, mode=mode)]
    else:
        raise SystemExit(f"unknown engine {engine}")
    load_s = time.perf_counter() - t0
    rss_load = _rss_gib()
    n_q = len(queries) if engine != "rank" or corpus == "scifact" else 150
    for q in queries[:50]:
        search(q)
    lat, cpu, tops = [], [], []
    for q in queries[:n_q]:
        c = time.process_time()
        t = time.perf_counter()
        r = search(q)
        lat.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        tops.append(r)
    lat_ms = np.asarray(lat) * 1000
    cpu_ms = np.asarray(cpu) * 1000
    return {
        "load_s": round(load_s, 3),
        "rss_before_load_gib": round(rss0, 3),
        "rss_after_load_gib": round(rss_load, 3),
        "rss_after_queries_gib": round(_rss_gib(), 3),
        "queries": n_q,
        "p50_ms": round(float(np.percentile(lat_ms, 50)), 3),
        "p99_ms": round(float(np.percentile(lat_ms, 99)), 3),
        # CPU time of the process per query: on a shared machine, wall time also counts
        # the time other processes held the cores
        "cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 3),
        "cpu_p99_ms": round(float(np.percentile(cpu_ms, 99)), 3),
        "top10": tops,
    }


# ---------------------------------------------------------------------- driver


def _child(phase: str, engine: str, corpus: str, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", phase, "--engines", engine, "--corpus", corpus]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr[-2000:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _agreement(ref: list[list[str]], got: list[list[str]]) -> dict:
    n = min(len(ref), len(got))
    overlap = [len(set(a) & set(b)) / max(1, min(10, len(a))) for a, b in zip(ref[:n], got[:n])]
    same = [a == b for a, b in zip(ref[:n], got[:n])]
    return {"overlap@10": round(float(np.mean(overlap)), 4), "identical": round(float(np.mean(same)), 4), "n": n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="scifact,pubmed")
    ap.add_argument("--engines", default="rank,bm25,tantivy,store,store-ms")
    ap.add_argument("--child", choices=["build", "query"])
    ap.add_argument("--json", type=Path, help="append the result rows to this JSON file")
    ap.add_argument("--report", action="store_true", help="print the tables of earlier runs (no new run)")
    ap.add_argument("--skip-build", action="store_true", help="query the indexes an earlier run built")
    args = ap.parse_args(argv)
    if args.child:
        out = WORK / args.corpus.replace(":", "_") / args.engines
        if args.engines == "store-ms" and args.child == "query" and (out.parent / "store").is_dir():
            out = out.parent / "store"
        if args.child == "build":
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            res = build(args.engines, args.corpus, out)
        else:
            res = query(args.engines, args.corpus, out)
        # kept beside the index, so --report can print tables across separate runs
        (out / f"{args.child}-{args.engines}.json").write_text(json.dumps(res))
        print(json.dumps(res))
        return 0
    rows: list[dict] = []
    if args.report:
        for corpus in args.corpus.split(","):
            results = {}
            for engine in args.engines.split(","):
                d = WORK / corpus.replace(":", "_")
                b = d / engine / f"build-{engine}.json"
                if engine == "store-ms":
                    b = d / "store" / "build-store.json"
                q = d / (engine if engine != "store-ms" else "store") / f"query-{engine}.json"
                if b.is_file() or q.is_file():
                    results[engine] = {**(json.loads(b.read_text()) if b.is_file() else {}),
                                       **(json.loads(q.read_text()) if q.is_file() else {})}
            rows += _table(corpus, results)
        return 0
    for corpus in args.corpus.split(","):
        results: dict[str, dict] = {}
        for engine in args.engines.split(","):
            out = WORK / corpus.replace(":", "_") / engine
            if engine == "store-ms" and "store" in results:  # one store serves both modes
                b = {k: v for k, v in results["store"].items() if k.startswith(("build", "disk", "rss_before_build"))}
            elif args.skip_build:  # the index of an earlier run, and its build figures
                prev = out / f"build-{engine}.json"
                b = json.loads(prev.read_text()) if prev.is_file() else {}
            else:
                b = _child("build", engine, corpus, out)
            q = _child("query", engine, corpus, out) if "error" not in b else {}
            results[engine] = {**b, **q}
            print(f"{corpus} {engine}: " + json.dumps({k: v for k, v in results[engine].items() if k != "top10"}), file=sys.stderr)
        rows += _table(corpus, results)
        sys.stdout.flush()
    if args.json:
        prev = json.loads(args.json.read_text()) if args.json.is_file() else []
        args.json.write_text(json.dumps(prev + rows, indent=1))
    return 0


def _table(corpus: str, results: dict[str, dict]) -> list[dict]:
    """Print one corpus's Markdown table; returns its rows (without the top-10 lists)."""
    rows = []
    refs = {name: results[name]["top10"] for name in ("rank", "bm25") if "top10" in results.get(name, {})}
    print(f"\n== {corpus} ({len(results[next(iter(results))].get('top10', []))} real queries)")
    print("| engine | build s | build peak RSS GiB | disk MiB | load s | RSS after load / queries GiB | p50 / p99 ms wall | p50 / p99 ms CPU | "
          + " | ".join(f"overlap@10, identical top-10 vs {n}" for n in refs) + " |")
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(refs))
    for engine, r in results.items():
        if "error" in r:
            print(f"| {engine} | error: {r['error'][-200:]!r} |")
            continue
        ags = {n: _agreement(ref, r["top10"]) for n, ref in refs.items()} if "top10" in r else {}
        print(
            f"| {engine} | {r.get('build_s', '-')} | {r.get('build_peak_rss_gib', '-')} | {r.get('disk_mib', '-')} "
            f"| {r.get('load_s')} | {r.get('rss_after_load_gib')} / {r.get('rss_after_queries_gib')} "
            f"| {r.get('p50_ms')} / {r.get('p99_ms')} | {r.get('cpu_p50_ms')} / {r.get('cpu_p99_ms')} | "
            + " | ".join(f"{a['overlap@10']}, {a['identical']} (n={a['n']})" for a in ags.values()) + " |"
        )
        rows.append({"corpus": corpus, "engine": engine, **{k: v for k, v in r.items() if k != "top10"},
                     **{f"vs_{n}": a for n, a in ags.items()}})
    return rows


if __name__ == "__main__":
    sys.exit(main())
