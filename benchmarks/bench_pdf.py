"""Pages per second of :func:`medrag.ingest.pdf.iter_guideline_pdf` over the guideline PDFs.

Run: ``python benchmarks/bench_pdf.py [DIR_OR_PDF ...] [--repeat N]``. Without paths it reads
``$MEDRAG_DATA/guidelines`` (default ``../shared/data/guidelines`` next to the repo).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from medrag.ingest import IngestReport
from medrag.ingest.pdf import iter_guideline_pdf

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    default = Path(os.environ.get("MEDRAG_DATA", REPO.parent / "shared" / "data")) / "guidelines"
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("paths", nargs="*", type=Path, default=[default])
    ap.add_argument("--repeat", type=int, default=1, help="runs per file; the best is reported")
    args = ap.parse_args()
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # font warnings are not the point here

    files = []
    for p in args.paths:
        files.extend(sorted(p.glob("*.pdf")) if p.is_dir() else [p])
    if not files:
        raise SystemExit(f"no PDFs found in {[str(p) for p in args.paths]}")

    total_pages = 0
    total_s = 0.0
    print(f"{'file':52s} {'pages':>5s} {'chars':>8s} {'recs':>4s} {'secs':>6s} {'pages/s':>8s}")
    for f in files:
        best = float("inf")
        doc = None
        for _ in range(max(1, args.repeat)):
            report = IngestReport()
            t0 = time.perf_counter()
            docs = list(iter_guideline_pdf(f, on_error="skip", report=report))
            best = min(best, time.perf_counter() - t0)
            doc = docs[0] if docs else None
        if doc is None:
            print(f"{f.name:52s} skipped: {report.skipped}")
            continue
        pages = doc.guideline.page_count
        total_pages += pages
        total_s += best
        print(
            f"{f.name:52s} {pages:5d} {len(doc.text):8d} {len(doc.guideline.recommendations):4d} "
            f"{best:6.2f} {pages / best:8.1f}"
        )
    print(f"{'total':52s} {total_pages:5d} {'':8s} {'':4s} {total_s:6.2f} {total_pages / total_s:8.1f}")


if __name__ == "__main__":
    main()
