"""The BM25 half of hybrid fusion on a large segmented store (issue 16): scoring the
union of the two candidate lists.

Hybrid search (``medrag.index.search``) takes the top ``candidates`` rows of BM25 and
of dense retrieval and scores their union with both. On the segments engine the BM25
scores of that union used to come from ``scores()``: an exhaustive pass over every
posting of the query's terms into an array of the corpus's length (8 bytes a row);
``StoreSearcher.score_rows`` looks only the union's rows up in the terms' postings.

Per real query (the 1,309 of bench_scale.py: SciFact claims, PubMed titles): the union
is the BM25 top ``--candidates`` (block-max MaxScore, as hybrid search takes it) plus
``--candidates`` random live rows standing in for the dense list. Timed, CPU and wall:

``before``  ``search_rows(q, n_rows, mode="exact")`` scattered into a corpus-length
            array, then read at the union (what ``StoreLexical.scores`` did);
``after``   ``score_rows(q, union)``.

Both must give the same scores bit for bit (checked on every timed query). ``before``
is run on every ``--every``-th query only (it is slow at 10M+).

  OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_fusion_bm25.py --store .cache/S/synth_36000000 --every 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth_corpus as sc  # noqa: E402
from bench_scale import _cpu  # noqa: E402


def _pct(xs: list[float]) -> dict:
    a = np.asarray(xs)
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)) * 1e3, 2),
            "p99_ms": round(float(np.percentile(a, 99)) * 1e3, 2), "mean_ms": round(float(a.mean()) * 1e3, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--candidates", type=int, default=100, help="per list (FusionConfig.candidates)")
    ap.add_argument("--every", type=int, default=10, help="time the exhaustive pass on every N-th query")
    ap.add_argument("--queries", type=int, default=None, help="first N real queries only")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from medrag.retrieve import Analyzer
    from medrag.store import StoreSearcher

    st = StoreSearcher.open(args.store)
    an = st.analyzer or Analyzer()
    queries = [q for q in (an.tokenize(t) for t in sc.real_queries()) if q][: args.queries]
    rng = np.random.default_rng(0)
    for q in queries[:20]:  # warm-up: compile, length norms, term lists
        st.score_rows(q, st.search_rows(q, args.candidates, mode="maxscore")[0])
    res: dict[str, list[float]] = {"after_cpu": [], "after_wall": [], "before_cpu": [], "before_wall": []}
    for i, q in enumerate(queries):
        top = st.search_rows(q, args.candidates, mode="maxscore")[0]
        union = np.union1d(top, rng.integers(0, st.n_rows, args.candidates))
        union = union[[st.is_alive(int(r)) for r in union.tolist()]]
        t, c = time.perf_counter(), _cpu()
        got = st.score_rows(q, union)
        res["after_wall"].append(time.perf_counter() - t)
        res["after_cpu"].append(_cpu() - c)
        if i % args.every == 0:
            t, c = time.perf_counter(), _cpu()
            rows, scores = st.search_rows(q, st.n_rows, mode="exact")
            full = np.zeros(st.n_rows, np.float64)
            full[rows] = scores
            ref = full[union]
            res["before_wall"].append(time.perf_counter() - t)
            res["before_cpu"].append(_cpu() - c)
            if not np.array_equal(got, ref):
                raise SystemExit(f"query {i}: score_rows differs from the exhaustive pass")
            del full
    out = {
        "store": str(args.store), "n_rows": st.n_rows, "segments": st.n_segments, "queries": len(queries),
        "candidates_per_list": args.candidates,
        **{k: _pct(v) for k, v in res.items()},
        "identical_scores": f"{len(res['before_cpu'])} / {len(res['before_cpu'])}",
        "loadavg": os.getloadavg(), "cmd": " ".join(sys.argv),
    }
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
