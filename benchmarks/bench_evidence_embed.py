"""Precompute the MiniLM vectors of every quotable unit of the SciFact abstracts (and of
the training claims) for ``bench_evidence.py --dense-feature``.

The units are those the composer would quote (:func:`medrag.answer.units.quote_units`
over each chunk of a lexical-only index of the 5,183 abstracts). Vectors are cached by
:class:`medrag.retrieve.dense.CachedEncoder` (sha256 of encoder + text; shards of
``.npy`` with a ``.keys`` file), so an interrupted run resumes. Units of abstracts that
the training claims retrieve first are embedded first (rank by rank), so a partial cache is useful.

Run (single thread, the machine is shared):
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_evidence_embed.py [--cache .cache/E/units]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    import torch

    torch.set_num_threads(1)
    from medrag.answer.units import quote_units
    from medrag.index import Index, IndexConfig
    from medrag.ingest.beir import iter_beir_corpus
    from medrag.retrieve.dense import CachedEncoder, EncoderConfig, SentenceTransformerEncoder

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(REPO / ".cache" / "E" / "units"))
    ap.add_argument("--k", type=int, default=30, help="abstracts per claim embedded first")
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()
    folder = Path(args.data) / "scifact"
    index = Index.build(list(iter_beir_corpus(folder)), IndexConfig(encoder=None))
    enc = CachedEncoder(SentenceTransformerEncoder(EncoderConfig()), args.cache)
    # the claims the benchmark scores (those with evidence)
    claims = [rec["claim"] for rec in map(json.loads, open(folder / "original_claims_train.jsonl")) if rec["evidence"]]
    # claims first (they are queries, but a cached claim vector is what the benchmark reads)
    enc.encode_documents(claims)
    order: list[str] = []
    seen: set[str] = set()
    hits = [index.search(q, k=args.k) for q in claims]
    for rank in range(args.k):  # every claim's first abstract, then every claim's second, ...
        for ps in hits:
            if rank < len(ps) and ps[rank].chunk.id not in seen:
                seen.add(ps[rank].chunk.id)
                order.append(ps[rank].chunk.id)
    by_id = {}
    for row in range(len(index)):
        c = index.chunk(row)
        by_id[c.id] = c
    rest = [cid for cid in by_id if cid not in seen]
    texts: list[str] = []
    for cid in order + rest:
        c = by_id[cid]
        texts.extend(c.text[u.start : u.end] for u in quote_units(c.text))
    texts = list(dict.fromkeys(texts))
    for k in (3, 5, 8, 10, 20):
        rows = {p.chunk.id for ps in hits for p in ps[:k]}
        n = len({by_id[r].text[u.start : u.end] for r in rows for u in quote_units(by_id[r].text)})
        print(f"k={k}: {len(rows):,} chunks, {n:,} distinct units", flush=True)
    print(f"{len(texts):,} distinct unit texts from {len(by_id):,} chunks ({len(order):,} retrieved first)", flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(texts), args.batch):
        enc.encode_documents(texts[i : i + args.batch])
        done = min(i + args.batch, len(texts))
        dt = time.perf_counter() - t0
        print(f"{done:,}/{len(texts):,} {dt:.0f} s wall, {time.process_time() - c0:.0f} s CPU, "
              f"{done / max(dt, 1e-9):.0f}/s", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
