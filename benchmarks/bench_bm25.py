"""Benchmark the sparse BM25 index.

Sections (all by default; pick with --only):

  scifact   SciFact (5,183 abstracts, 809 training claims): analyzer and build time,
            query latency p50/p99, nDCG@10 and Recall@100 of BM25 alone (ir_measures),
            next to a plain bm25s (stemming + stopwords) baseline.
  vs-rank   A synthetic 100k-document Zipfian corpus: build time, save/load time, and
            the speedup over rank-bm25's BM25Okapi on the same documents and queries
            (rank-bm25 is timed on a few queries only; it is slow).
  large     A synthetic 1M-document Zipfian index built straight from a term-count
            matrix (no strings): build time, query latency p50/p99, peak memory, the
            cost of an add/delete (the weights are recomputed on the next query) and
            save/load time.

Run:  python benchmarks/bench_bm25.py [--only scifact,vs-rank,large] [--large-docs N]
Data: $MEDRAG_DATA or ../shared/data (scifact/corpus.jsonl, queries.jsonl, qrels/train.tsv).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from medrag.retrieve import Analyzer, BM25Index

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MEDRAG_DATA", REPO.parent / "shared" / "data"))


def _rss_gib() -> float:
    """Peak resident memory of this process so far, GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _pct(times_s: list[float]) -> str:
    ms = np.asarray(times_s) * 1e3
    return f"p50 {np.percentile(ms, 50):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms, mean {ms.mean():.3f} ms"


def _latencies(index: BM25Index, queries: list[list[str]], k: int = 10) -> list[float]:
    """Per-query search time, after one untimed warm-up pass over the queries."""
    for q in queries:
        index.search(q, k)
    out = []
    for q in queries:
        t = time.perf_counter()
        index.search(q, k)
        out.append(time.perf_counter() - t)
    return out


# ---------------------------------------------------------------------- SciFact


def bench_scifact(variants: bool) -> None:
    root = DATA / "scifact"
    if not (root / "corpus.jsonl").exists():
        print(f"scifact: skipped, no data under {root}")
        return
    import ir_measures
    from ir_measures import R, nDCG

    with open(root / "corpus.jsonl", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    with open(root / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line) for line in f]
    qrels: dict[str, dict[str, int]] = {}
    with open(root / "qrels" / "train.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries = [q for q in queries if q["_id"] in qrels]
    texts = [f"{d['title']} {d['text']}" for d in docs]
    ids = [d["_id"] for d in docs]
    print(f"== SciFact: {len(docs)} docs, {len(queries)} training claims with qrels")

    def evaluate(analyzer: Analyzer, report: bool) -> dict:
        t0 = time.perf_counter()
        toks = analyzer.tokenize_many(texts)
        t1 = time.perf_counter()
        index = BM25Index.from_token_lists(toks, analyzer=analyzer)
        t2 = time.perf_counter()
        qtoks = [analyzer.tokenize(q["text"]) for q in queries]
        t3 = time.perf_counter()
        run = {}
        lat = []
        for q, qt in zip(queries, qtoks):
            t = time.perf_counter()
            rows, scores = index.search(qt, 100)
            lat.append(time.perf_counter() - t)
            run[q["_id"]] = {ids[r]: float(s) for r, s in zip(rows.tolist(), scores.tolist())}
        res = ir_measures.calc_aggregate([nDCG @ 10, R @ 100], qrels, run)
        if report:
            print(f"  analyze corpus {t1 - t0:.2f} s, build {t2 - t1:.3f} s ({index})")
            print(f"  analyze queries {(t3 - t2) / len(queries) * 1e3:.3f} ms/query")
            print(f"  search k=100: {_pct(lat)}")
            lat10 = _latencies(index, qtoks, 10)
            print(f"  search k=10:  {_pct(lat10)}")
        return {str(m): round(v, 4) for m, v in res.items()}

    print(f"  medrag default analyzer: {evaluate(Analyzer(), True)}")
    try:
        print(f"  bm25s baseline (stopwords='en', english stemmer): {_bm25s_baseline(texts, ids, queries, qrels)}")
    except ImportError as e:
        print(f"  bm25s baseline skipped: {e}")
    if variants:
        from medrag.retrieve.analyzer import LUCENE_ENGLISH_STOPWORDS

        for name, an in [
            ("compounds='always'", Analyzer(compounds="always")),
            ("compounds='never'", Analyzer(compounds="never")),
            ("greek='spell'", Analyzer(greek="spell")),
            ("min_token_len=2", Analyzer(min_token_len=2)),
            ("no stopwords", Analyzer(stopwords_name="none", stopwords=())),
            ("no stemmer", Analyzer(stemmer=None)),
            ("lucene stopwords, porter", Analyzer(stopwords=LUCENE_ENGLISH_STOPWORDS, stemmer="porter")),
        ]:
            print(f"  variant {name}: {evaluate(an, False)}")


def _bm25s_baseline(texts, ids, queries, qrels) -> dict:
    import bm25s
    import ir_measures
    import Stemmer
    from ir_measures import R, nDCG

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    stemmer = Stemmer.Stemmer("english")
    ctoks = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(ctoks, show_progress=False)
    qtoks = bm25s.tokenize([q["text"] for q in queries], stopwords="en", stemmer=stemmer, show_progress=False)
    res, scores = retriever.retrieve(qtoks, k=100, show_progress=False)
    run = {
        q["_id"]: {ids[i]: float(s) for i, s in zip(res[j], scores[j])} for j, q in enumerate(queries)
    }
    return {str(m): round(v, 4) for m, v in ir_measures.calc_aggregate([nDCG @ 10, R @ 100], qrels, run).items()}


# ---------------------------------------------------------------------- synthetic


def _zipf_cdf(vocab: int, s: float, start: int = 0) -> np.ndarray:
    p = 1.0 / np.arange(start + 1, vocab + 1, dtype=np.float64) ** s
    cdf = np.cumsum(p)
    return cdf / cdf[-1]


def _synthetic_counts(n_docs: int, vocab: int, rng: np.random.Generator, mean_len: int = 120,
                      chunk: int = 100_000) -> sp.csr_matrix:
    """Documents of Poisson length with Zipfian (s=1.07) term ids, as a CSR count matrix,
    generated in chunks so memory stays near the size of the result."""
    cdf = _zipf_cdf(vocab, 1.07)
    parts = []
    for start in range(0, n_docs, chunk):
        n = min(chunk, n_docs - start)
        lengths = rng.poisson(mean_len - 10, n) + 10
        terms = np.searchsorted(cdf, rng.random(int(lengths.sum()))).astype(np.int32)
        rows = np.repeat(np.arange(n, dtype=np.int32), lengths)
        m = sp.coo_matrix((np.ones(terms.size, np.int32), (rows, terms)), shape=(n, vocab)).tocsr()
        m.sum_duplicates()
        parts.append(m)
        del terms, rows
    return sp.vstack(parts, format="csr")


def _synthetic_queries(n: int, vocab: int, rng: np.random.Generator) -> list[list[int]]:
    """3-12 terms each, Zipfian over all but the 100 most frequent (stopword-like) terms."""
    cdf = _zipf_cdf(vocab, 1.07, start=100)
    return [
        (100 + np.searchsorted(cdf, rng.random(int(rng.integers(3, 13))))).tolist() for _ in range(n)
    ]


def bench_vs_rank(n_docs: int, n_rank_queries: int) -> None:
    import rank_bm25

    rng = np.random.default_rng(42)
    vocab_size = 200_000
    print(f"== synthetic {n_docs} docs (Zipf, vocab {vocab_size}): medrag vs rank-bm25")
    counts = _synthetic_counts(n_docs, vocab_size, rng)
    vocab = [f"t{i}" for i in range(vocab_size)]
    token_lists = []
    for r in range(n_docs):  # the same documents as token lists (strings), for both libraries
        s, e = counts.indptr[r], counts.indptr[r + 1]
        token_lists.append([vocab[t] for t, c in zip(counts.indices[s:e].tolist(), counts.data[s:e].tolist()) for _ in range(c)])
    del counts
    queries = [[vocab[t] for t in q] for q in _synthetic_queries(200, vocab_size, rng)]

    t = time.perf_counter()
    index = BM25Index.from_token_lists(token_lists)
    build = time.perf_counter() - t
    print(f"  medrag build from token lists: {build:.2f} s ({index})")
    lat = _latencies(index, queries)
    print(f"  medrag search k=10: {_pct(lat)}")
    dense = []
    for q in queries:
        t = time.perf_counter()
        index.scores(q)
        dense.append(time.perf_counter() - t)
    print(f"  medrag scores() (dense, all rows): {_pct(dense)}")

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        index.save(tmp)
        print(f"  save: {time.perf_counter() - t:.2f} s, {sum(f.stat().st_size for f in Path(tmp).iterdir()) / 2**20:.0f} MiB")
        loads = []
        for _ in range(3):
            t = time.perf_counter()
            loaded = BM25Index.load(tmp, mmap=True)
            loads.append(time.perf_counter() - t)
        t = time.perf_counter()
        loaded.search(queries[0], 10)
        first = time.perf_counter() - t
        print(f"  load (mmap): best {min(loads) * 1e3:.0f} ms, first query after load {first * 1e3:.1f} ms")
        t = time.perf_counter()
        BM25Index.load(tmp, mmap=False)
        print(f"  load (in memory): {(time.perf_counter() - t) * 1e3:.0f} ms")

    t = time.perf_counter()
    oracle = rank_bm25.BM25Okapi(token_lists)
    print(f"  rank-bm25 build: {time.perf_counter() - t:.2f} s (medrag {build:.2f} s)")
    some = queries[:n_rank_queries]
    rank_t, ours_t, ours_dense_t = [], [], []
    for q in some:
        t = time.perf_counter()
        expected = oracle.get_scores(q)
        rank_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        index.search(q, 10)
        ours_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = index.scores(q)
        ours_dense_t.append(time.perf_counter() - t)
        err = float(np.abs(got - expected).max())
        if err > 1e-6:
            print(f"  !! score mismatch {err:.3g} on {q}")
    r, o, od = np.median(rank_t), np.median(ours_t), np.median(ours_dense_t)
    print(f"  rank-bm25 get_scores on {len(some)} queries: median {r * 1e3:.1f} ms")
    print(f"  speedup (median): search top-10 {r / o:.0f}x, dense scores() {r / od:.0f}x; scores agree to 1e-6")
    print(f"  peak RSS so far {_rss_gib():.2f} GiB")


def bench_large(n_docs: int) -> None:
    rng = np.random.default_rng(7)
    vocab_size = 1_000_000
    print(f"== synthetic {n_docs} docs (Zipf, vocab {vocab_size}), built from a count matrix")
    t = time.perf_counter()
    counts = _synthetic_counts(n_docs, vocab_size, rng)
    print(f"  generate: {time.perf_counter() - t:.1f} s, {counts.nnz} postings")
    vocab = [f"t{i}" for i in range(vocab_size)]
    t = time.perf_counter()
    index = BM25Index.from_tf_matrix(counts, vocab)
    print(f"  build (from_tf_matrix, incl. weights): {time.perf_counter() - t:.1f} s ({index})")
    del counts
    queries = [[vocab[t] for t in q] for q in _synthetic_queries(500, vocab_size, rng)]
    index.search(queries[0], 10)
    lat = _latencies(index, queries)
    print(f"  search k=10: {_pct(lat)}")
    mask = rng.random(index.n_rows) < 0.5
    lat_m = []
    for q in queries:
        t = time.perf_counter()
        index.search(q, 10, mask=mask)
        lat_m.append(time.perf_counter() - t)
    print(f"  search k=10 with a 50% mask: {_pct(lat_m)}")
    t = time.perf_counter()
    new_rows = index.add([[vocab[i] for i in q] for q in _synthetic_queries(1000, vocab_size, rng)])
    index.delete(rng.choice(n_docs, 1000, replace=False))
    changed = time.perf_counter() - t
    t = time.perf_counter()
    index.search(queries[0], 10)
    print(f"  add 1000 + delete 1000 rows: {changed:.1f} s; next query (recomputes weights): {time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        index.save(tmp)
        print(f"  save: {time.perf_counter() - t:.1f} s, {sum(f.stat().st_size for f in Path(tmp).iterdir()) / 2**30:.2f} GiB")
        del index
        t = time.perf_counter()
        loaded = BM25Index.load(tmp, mmap=True)
        print(f"  load (mmap): {(time.perf_counter() - t) * 1e3:.0f} ms; rows {loaded.n_rows}, new rows end at {int(new_rows[-1])}")
        lat = _latencies(loaded, queries)
        print(f"  search k=10 on the mmap index: {_pct(lat)}")
    print(f"  peak RSS {_rss_gib():.2f} GiB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="scifact,vs-rank,large")
    ap.add_argument("--rank-docs", type=int, default=100_000)
    ap.add_argument("--rank-queries", type=int, default=5)
    ap.add_argument("--large-docs", type=int, default=1_000_000)
    ap.add_argument("--variants", action="store_true", help="also score analyzer variants on SciFact")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    if "scifact" in only:
        bench_scifact(args.variants)
    if "vs-rank" in only:
        bench_vs_rank(args.rank_docs, args.rank_queries)
    if "large" in only:
        bench_large(args.large_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
