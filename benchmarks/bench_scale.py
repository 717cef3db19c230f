"""The lexical store at 1M-10M synthetic documents (issue 16): build, load, query.

The corpus is made by perturbing the real PubMed abstracts (synth_corpus.py) straight
as term-id arrays (``synthesize_arrays``: the same documents as the token-list path,
no Python string per token) and written with ``StoreWriter.add_encoded``, one segment
per batch. Two child processes:

``build``  synthesize + write + commit. Reports wall and CPU seconds (producing the
           documents timed apart), peak RSS of the process, disk.
``query``  open (load time, RSS), then the 1,309 real query texts (809 SciFact claims,
           500 PubMed titles) once per mode after 50 warm-up queries: p50/p99 of wall
           and process CPU time per query, RSS after, and agreement of each mode's
           top-10 with the exhaustive exact reference (numpy ``exact``, or the compiled
           exhaustive kernel where ``--modes`` leaves numpy out).

Modes: ``numpy-exact`` (the numpy exhaustive path), ``exact`` (the compiled exhaustive
kernel), ``maxscore`` (the compiled block-max MaxScore kernel, kernel.py); ``<mode>@N``
on N threads over segment groups sharing one threshold, ``<mode>@Nu`` with one
threshold per group (as before the shared one; for paired runs). ``--interleave`` runs
every mode on each query in turn (rotating which goes first) instead of one mode after
the other, and reports per mode the median over queries of its CPU time divided by the
first mode's (paired under a changing load).

Run (niced, one core):
  OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_scale.py --n 10000000 --phase build
  OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_scale.py --n 10000000 --phase query
  (``--phase merge --store DIR``: a streaming merge of a store's segments, peak RSS;
  ``--group 8``: every run of 8 adjacent segments into one, as the 10M store's 32 into 4)
  (``--phase project --tags A,B,C``: fit the runs of ``--sizes`` saved with those tags)
  (``--phase marginal --store DIR --cuts 1,2,3,4``: the CPU time each further run of
  segments adds to a query, and the projection to ``--target`` documents it gives)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth_corpus as sc  # noqa: E402
from bench_engines import _du, _rss_gib  # noqa: E402

WORK = sc.REPO / ".cache" / "S"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def build(n: int, out: Path, batch: int) -> dict:
    from medrag.retrieve import Analyzer
    from medrag.store import StoreWriter

    t0, c0 = time.perf_counter(), _cpu()
    base, _ = sc.real_pubmed()
    gen = sc.synthesize_arrays(base, n, batch=batch)
    corpus_s = corpus_cpu = 0.0
    n_docs = n_tok = 0
    with StoreWriter(out, analyzer=Analyzer()) as w:
        while True:
            t, c = time.perf_counter(), _cpu()
            try:
                ids, lens, tids, terms = next(gen)
            except StopIteration:
                break
            finally:
                corpus_s += time.perf_counter() - t
                corpus_cpu += _cpu() - c
            w.add_encoded(ids, lens, tids, terms)
            n_docs += len(ids)
            n_tok += int(tids.size)
            del ids, lens, tids, terms
            print(f"{n_docs} docs {time.perf_counter() - t0:.0f}s rss {_rss_gib():.2f}", file=sys.stderr, flush=True)
        tc = time.perf_counter()
    commit_s = time.perf_counter() - tc
    from medrag.store import StoreSearcher

    st = StoreSearcher.open(out)
    return {
        "n_docs": n_docs,
        "tokens": n_tok,
        "segments": st.n_segments,
        "postings": sum(int(r["nnz"]) for r in st.manifest.segments),
        "terms_summed_over_segments": sum(int(r["n_terms"]) for r in st.manifest.segments),
        "build_wall_s": round(time.perf_counter() - t0 - corpus_s, 1),
        "build_cpu_s": round(_cpu() - c0 - corpus_cpu, 1),
        "corpus_wall_s": round(corpus_s, 1),
        "corpus_cpu_s": round(corpus_cpu, 1),
        "commit_wall_s": round(commit_s, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "disk_mib": round(_du(out) / 2**20, 1),
    }


def merge(out: Path, segments_per_tier: int, into: int = 0, group: int = 0) -> dict:
    """Merge the store's segments (all into one when ``segments_per_tier``, ``into`` and
    ``group`` are 0; into ``into`` runs of adjacent segments of near-equal count; every
    run of ``group`` adjacent segments from the first, the last run shorter; else what a
    TieredMergePolicy plans) and report time and peak RSS of the process."""
    from medrag.store import StoreSearcher, StoreWriter, TieredMergePolicy

    before = StoreSearcher.open(out).n_segments
    t0, c0 = time.perf_counter(), _cpu()
    with StoreWriter(out) as w:
        if into or group:
            if group:
                cuts = list(range(0, before, group)) + [before]
            else:
                cuts = np.linspace(0, before, into + 1).round().astype(int).tolist()
            for a, b in reversed(list(zip(cuts, cuts[1:]))):  # from the end: earlier indices stay valid
                w.merge(a, b)
                print(f"merged {a}..{b - 1} {time.perf_counter() - t0:.0f}s rss {_rss_gib():.2f}", file=sys.stderr, flush=True)
        elif segments_per_tier:
            w.maybe_merge(TieredMergePolicy(segments_per_tier=segments_per_tier))
        else:
            w.merge()
    res = {
        "segments_before": before,
        "merge_wall_s": round(time.perf_counter() - t0, 1),
        "merge_cpu_s": round(_cpu() - c0, 1),
        # includes the clean, file-backed pages of the inputs read through mmap
        "merge_peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
    }
    st = StoreSearcher.open(out, verify=True)  # full sha256 + structure (not in the figures above)
    res["segments_after"] = st.n_segments
    res["postings"] = sum(int(r["nnz"]) for r in st.manifest.segments)
    return res


def _mode(mode: str) -> tuple[str, str, int, bool]:
    """(search mode, engine, threads, share the threshold) of a ``--modes`` entry."""
    engine = "numpy" if mode.startswith("numpy-") else "auto"
    m, _, th = mode.removeprefix("numpy-").partition("@")  # "maxscore@2": 2 threads over segment groups
    share = not th.endswith("u")  # "maxscore@2u": one threshold per group
    return m, engine, int(th.removesuffix("u") or 1), share


def _run(st, q: list[str], mode: str) -> tuple[float, float, tuple]:  # type: ignore[no-untyped-def]
    """One query: (wall s, process CPU s, (rows, scores))."""
    from medrag.store import search_compiled

    m, engine, threads, share = _mode(mode)
    search_compiled.SHARE_THRESHOLD = share
    c = time.process_time()
    t = time.perf_counter()
    rows, scores = st.search_rows(q, 10, mode=m, engine=engine, threads=threads)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return wall, cpu, (rows.tolist(), scores.tolist())


def query(out: Path, modes: list[str], n_queries: int | None, interleave: bool = False, ref: str = "") -> dict:
    from medrag.retrieve import Analyzer
    from medrag.store import StoreSearcher, kernel

    an = Analyzer()
    queries = [q for q in (an.tokenize(t) for t in sc.real_queries()) if q][:n_queries]
    rss0 = _rss_gib()
    t0 = time.perf_counter()
    st = StoreSearcher.open(out)
    load_s = time.perf_counter() - t0
    res: dict = {
        "load_s": round(load_s, 3),
        "rss_before_load_gib": round(rss0, 3),
        "rss_after_load_gib": round(_rss_gib(), 3),
        "numba": kernel.HAVE_NUMBA,
        "queries": len(queries),
        "n_docs": st.n_docs,
        "segments": st.n_segments,
    }
    tops: dict[str, list] = {m: [] for m in modes}
    lats: dict[str, list] = {m: [] for m in modes}
    cpus: dict[str, list] = {m: [] for m in modes}
    if interleave:
        for mode in modes:
            for q in queries[:50]:
                _run(st, q, mode)
        for i, q in enumerate(queries):
            for mode in modes[i % len(modes) :] + modes[: i % len(modes)]:  # rotate who goes first
                wall, cpu, top = _run(st, q, mode)
                lats[mode].append(wall)
                cpus[mode].append(cpu)
                tops[mode].append(top)
    for mode in modes:
        if not interleave:
            for q in queries[:50]:
                _run(st, q, mode)
            for q in queries:
                wall, cpu, top = _run(st, q, mode)
                lats[mode].append(wall)
                cpus[mode].append(cpu)
                tops[mode].append(top)
        lat_ms, cpu_ms = np.asarray(lats[mode]) * 1000, np.asarray(cpus[mode]) * 1000
        res[mode] = {
            "p50_ms_cpu": round(float(np.percentile(cpu_ms, 50)), 2),
            "p99_ms_cpu": round(float(np.percentile(cpu_ms, 99)), 2),
            "p50_ms_wall": round(float(np.percentile(lat_ms, 50)), 2),
            "p99_ms_wall": round(float(np.percentile(lat_ms, 99)), 2),
            "mean_ms_cpu": round(float(cpu_ms.mean()), 2),
            "rss_after_gib": round(_rss_gib(), 3),
        }
        print(mode, res[mode], file=sys.stderr, flush=True)
    if ref:  # the reference top-10, untimed, after the timed modes
        tops[ref] = [_run(st, q, ref)[2] for q in queries]
    else:
        ref = modes[0]
    for mode in modes:
        if mode == ref:
            continue
        same_rows = sum(a[0] == b[0] for a, b in zip(tops[ref], tops[mode]))
        same_all = sum(a == b for a, b in zip(tops[ref], tops[mode]))
        res[mode]["top10_rows_identical_to_" + ref] = f"{same_rows}/{len(queries)}"
        res[mode]["top10_rows_and_scores_identical"] = f"{same_all}/{len(queries)}"
    if interleave:  # paired per query: median of the per-query CPU ratio, ratio of the sums
        res["paired_cpu"] = {}
        for i, a_m in enumerate(modes):
            for b_m in modes[i + 1 :]:
                a, b = np.asarray(cpus[a_m]), np.asarray(cpus[b_m])
                ok = (a > 0) & (b > 0)  # CPU clock resolution: a very short query may read 0
                res["paired_cpu"][f"{b_m}/{a_m}"] = {
                    "median_ratio": round(float(np.median(b[ok] / a[ok])), 3),
                    "sum_ratio": round(float(b.sum() / a.sum()), 3),
                }
    res["_per_query_cpu_ms"] = {m: (np.asarray(cpus[m]) * 1000).round(3).tolist() for m in modes}
    res["rss_after_queries_gib"] = round(_rss_gib(), 3)
    return res


def marginal(out: Path, cuts: list[int], n_queries: int | None, target: int) -> dict:
    """What each further run of segments adds to a query's CPU time, and the 36M
    projection it gives. Per real query, MaxScore (one thread, one heap, as
    ``search_rows``) over the segment prefixes ``[0, cuts[0])``, ``[0, cuts[1])``, ...;
    the last run's added CPU time per document, times the documents a ``target`` store
    would add in runs like it, is added to the full store's time. The threshold goes on
    rising with more documents, so later runs cost no more than the last one measured:
    an upper bound, per query, under that assumption (p50 over queries reported)."""
    from medrag.retrieve import Analyzer
    from medrag.store import StoreSearcher, kernel, search_compiled

    an = Analyzer()
    queries = [q for q in (an.tokenize(t) for t in sc.real_queries()) if q][:n_queries]
    st = StoreSearcher.open(out)
    if cuts[-1] != st.n_segments:
        raise SystemExit(f"--cuts must end at the store's {st.n_segments} segments")
    docs = [int(st._bases[c]) for c in cuts]  # documents (rows) in each prefix
    kernel.ensure_compiled()
    for q in queries[:50]:
        st.search_rows(q, 10, mode="maxscore")
    times = np.zeros((len(queries), len(cuts)))
    for qi, q in enumerate(queries):
        terms = st._terms(q)
        if not terms:
            continue
        prune = all(t.idf > 0 for t in terms)
        by_seg = search_compiled._by_segment(terms)
        for j, c in enumerate(cuts):
            sel = [i for i in sorted(by_seg) if i < c]
            t0 = time.process_time()
            search_compiled._group(st, sel, by_seg, 10, None, prune, np.full(1, -np.inf))
            times[qi, j] = time.process_time() - t0
    ms = times * 1000
    last = (ms[:, -1] - ms[:, -2]) / (docs[-1] - docs[-2])  # ms per document of the last run
    proj = ms[:, -1] + np.maximum(last, 0) * (target - docs[-1])
    return {
        "segments": st.n_segments,
        "cuts": cuts,
        "prefix_docs": docs,
        "queries": len(queries),
        "prefix_p50_ms_cpu": [round(float(v), 2) for v in np.percentile(ms, 50, axis=0)],
        "prefix_mean_ms_cpu": [round(float(v), 2) for v in ms.mean(axis=0)],
        "added_by_run_mean_ms_cpu": [round(float(v), 2) for v in np.diff(ms.mean(axis=0), prepend=0.0)],
        "target": target,
        "projected_p50_ms_cpu": round(float(np.percentile(proj, 50)), 1),
        "projected_p99_ms_cpu": round(float(np.percentile(proj, 99)), 1),
        "projected_mean_ms_cpu": round(float(proj.mean()), 1),
    }


def project(sizes: list[int], tags: list[str], target: int, modes: list[str]) -> dict:
    """Fit ``p50 = a * n ** e`` (least squares in log-log) to the saved query runs
    ``scale_<n>_query<tag>.json`` (``tags[i]`` for ``sizes[i]``) and extrapolate to
    ``target`` documents; resident memory after load and disk are extrapolated linearly
    from the two largest runs."""
    if len(tags) != len(sizes):
        raise SystemExit(f"--tags: {len(tags)} tags for {len(sizes)} sizes")
    runs = {n: json.loads((WORK / f"scale_{n}_query{tag}.json").read_text()) for n, tag in zip(sizes, tags)}
    out: dict = {"sizes": sizes, "tags": tags, "segments": [runs[n]["segments"] for n in sizes], "target": target}
    x = np.log(np.asarray(sizes, float))
    for mode in modes:
        for key in ("p50_ms_cpu", "p50_ms_wall", "p99_ms_cpu", "p99_ms_wall"):
            y = np.log([runs[n][mode][key] for n in sizes])
            e, a = np.polyfit(x, y, 1)
            out[f"{mode}.{key}"] = {
                "measured": [runs[n][mode][key] for n in sizes],
                "exponent": round(float(e), 3),
                "projected": round(float(np.exp(a) * target**e), 1),
            }
    n1, n2 = sizes[-2], sizes[-1]
    for key in ("rss_after_load_gib", "rss_after_queries_gib"):
        r1, r2 = runs[n1][key], runs[n2][key]
        out[key] = {"measured": [runs[n][key] for n in sizes],
                    "projected": round(r2 + (r2 - r1) * (target - n2) / (n2 - n1), 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, required=True, help="synthetic documents")
    ap.add_argument("--phase", choices=["build", "query", "merge", "project", "marginal"], required=True)
    ap.add_argument("--sizes", default="1000000,3000000,10000000", help="project: the runs to fit (their --tag)")
    ap.add_argument("--tier", type=int, default=0, help="merge: segments per tier (0: merge all into one)")
    ap.add_argument("--into", type=int, default=0, help="merge: into this many segments (adjacent runs)")
    ap.add_argument("--group", type=int, default=0, help="merge: every run of this many adjacent segments into one")
    ap.add_argument("--cuts", default=None, help="marginal: segment prefix ends, e.g. 1,2,3,4 or 8,16,24,32")
    ap.add_argument("--target", type=int, default=36_000_000, help="marginal: documents to project to")
    ap.add_argument("--tags", default=None, help="project: one tag per size (default: --tag for each)")
    ap.add_argument("--interleave", action="store_true", help="query: every mode on each query in turn (paired)")
    ap.add_argument("--ref", default="", help="query: compare every mode's top-10 with this mode's, run untimed after")
    ap.add_argument("--batch", type=int, default=320_000, help="documents per segment")
    ap.add_argument("--modes", default="numpy-exact,exact,maxscore",
                    help="comma-separated; numpy-<mode> for the numpy path, <mode>@N for N threads over segment groups "
                    "(CPU time then sums the threads: compare wall)")
    ap.add_argument("--queries", type=int, default=None, help="first N real queries only")
    ap.add_argument("--store", type=Path, default=None, help="query this store instead (e.g. bench_engines')")
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    args = ap.parse_args(argv)
    out = args.store or WORK / f"synth_{args.n}"
    if args.phase == "project":
        sizes = [int(v) for v in args.sizes.split(",")]
        tags = args.tags.split(",") if args.tags is not None else [args.tag] * len(sizes)
        res = project(sizes, tags, args.n, args.modes.split(","))
    elif args.phase == "build":
        if (out / "CURRENT").exists():
            raise SystemExit(f"{out} exists; remove it to rebuild")
        res = build(args.n, out, args.batch)
    elif args.phase == "marginal":
        res = marginal(out, [int(v) for v in args.cuts.split(",")], args.queries, args.target)
    elif args.phase == "merge":
        res = merge(out, args.tier, args.into, args.group)
    else:
        res = query(out, args.modes.split(","), args.queries, args.interleave, args.ref)
    res["cmd"] = " ".join(sys.argv)
    res["loadavg"] = os.getloadavg()
    per_query = res.pop("_per_query_cpu_ms", None)
    if per_query is not None:  # beside the summary: CPU ms per query and mode, in query order
        (WORK / f"scale_{args.n}_{args.phase}{args.tag}_cpu_ms.json").write_text(json.dumps(per_query))
    (WORK / f"scale_{args.n}_{args.phase}{args.tag}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
