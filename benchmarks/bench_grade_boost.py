"""Grade boost and grade filters on a real guideline (issue 14): where the graded
recommendation ranks for the question issue 14 quotes, in each search mode, with and
without ``boost``, and what ``Filters(strength=...)`` returns.

The WHO IPC core components guideline (2016, ../shared/data/guidelines) answers "a
dedicated IPC team in every acute health care facility?" with a strong recommendation
on p. 30; without a boost the conclusions paraphrase on p. 33 ranks first.

Run:  python benchmarks/bench_grade_boost.py [--boost 1.2] [--lexical-only]
(the hybrid index embeds ~290 chunks with the packaged MiniLM: 30-120 s on 2 cores)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from medrag.index import Filters, Index, IndexConfig
from medrag.ingest import iter_guideline_pdf

PDF = Path(__file__).resolve().parents[2] / "shared" / "data" / "guidelines" / "who_ipc_core_components_guidelines_2016.pdf"
QUESTION = "Should there be a dedicated IPC team in every acute health care facility?"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pdf", type=Path, default=PDF)
    ap.add_argument("--boost", type=float, default=1.2, help="factor for strong recommendations")
    ap.add_argument("--lexical-only", action="store_true")
    args = ap.parse_args()
    if not args.pdf.is_file():
        print(f"not found: {args.pdf}", file=sys.stderr)
        return 2
    doc = next(iter_guideline_pdf(args.pdf))
    t0 = time.perf_counter()
    ix = Index.build([doc], IndexConfig(encoder=None) if args.lexical_only else IndexConfig())
    n_rec = len(ix._grade_table())
    print(f"{len(ix)} chunks, {n_rec} recommendation chunks; build {time.perf_counter() - t0:.1f} s")
    modes = ["bm25"] if args.lexical_only else ["bm25", "dense", "hybrid"]
    for mode in modes:
        for boost in (None, {"strong": args.boost}):
            found = ix.search(QUESTION, k=10, mode=mode, boost=boost)
            rank = next((p.rank for p in found if p.chunk.recommendation is not None and 30 in p.chunk.pages), None)
            top = found[0]
            print(f"{mode:6} boost={boost}: p.30 recommendation at rank {rank}; rank 1 is p.{top.chunk.pages} "
                  f"({'recommendation ' + str(top.chunk.recommendation.strength) if top.chunk.recommendation else 'body'})")
    strong = ix.search(QUESTION, k=50, filters=Filters(strength=("strong",)), mode=modes[-1])
    print(f"Filters(strength=('strong',)): {len(strong)} passages, strengths "
          f"{sorted({p.chunk.recommendation.strength for p in strong})}, first on p.{strong[0].chunk.pages}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
