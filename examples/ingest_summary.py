"""Stream a real PubMed update file into documents and print a summary (offline).

Run:  python examples/ingest_summary.py [FILE ...]
"""

from __future__ import annotations

import collections
import sys
import time

from medrag.ingest import IngestReport, iter_pubmed
from medrag.ingest.samples import UPDATE_SAMPLE, pubmed_sample_files


def main(argv: list[str]) -> int:
    paths = argv or [str(pubmed_sample_files()[UPDATE_SAMPLE])]
    report = IngestReport()
    t0 = time.perf_counter()
    structured = retracted = with_abstract = 0
    years: collections.Counter[int] = collections.Counter()
    pub_types: collections.Counter[str] = collections.Counter()
    example = None
    for doc in iter_pubmed(paths, on_error="skip", report=report):
        labelled = [s for s in doc.sections if s.kind == "abstract" and s.label]
        structured += len(labelled) > 1
        retracted += doc.retracted
        with_abstract += bool(doc.text)
        if doc.year:
            years[doc.year] += 1
        pub_types.update(p.name for p in doc.pubmed.publication_types)
        if example is None and len(labelled) >= 4:
            example = doc
    dt = time.perf_counter() - t0
    print(f"read {', '.join(paths)}")
    print(f"{report.summary()} in {dt:.1f} s ({report.documents / dt:,.0f} documents/s)")
    print(f"with abstract: {with_abstract:,}; structured abstracts: {structured:,}; retracted: {retracted}")
    print("top publication types:", ", ".join(f"{n} ({c:,})" for n, c in pub_types.most_common(5)))
    print("years:", ", ".join(f"{y}: {c:,}" for y, c in sorted(years.items())[-5:]))
    if report.deletions:
        print(f"PMIDs withdrawn by <DeleteCitation>: {', '.join(d.pmid for d in report.deletions[:5])}, ...")
    if example is not None:
        print(f"\nexample: {example.id} ({example.year}) {example.title}")
        for s in example.sections:
            print(f"  [{s.label}] {example.text[s.start:s.end][:100]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
