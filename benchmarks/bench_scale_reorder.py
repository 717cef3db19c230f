"""Document reordering within a segment and block-max MaxScore (issue 16), paired.

Block-max bounds (the largest weight of every 128 postings of a term, format.py) are
tight when the documents that weigh a term heavily sit together; reordering documents
so that similar ones are adjacent ("document identifier reassignment": e.g. Dhulipala
et al., "Compressing graphs and indexes with recursive graph bisection", KDD 2016;
Ding and Suel 2011 measured block-max WAND on such orders) can make the kernel skip
more. This benchmark writes one corpus twice, in its own order and with every batch
(= segment) sorted by a cluster key, and times MaxScore on the real queries in both,
interleaved per query (CPU time per query, paired).

Key (``--key``): ``dominant`` sorts a segment's documents by their *dominant term*, the
term of highest idf among the document's terms with a document frequency of at least
``--min-df`` in the segment (so that the key is shared by a cluster, not unique to one
document), ties by document length; ``random`` is a shuffled control; ``source``
(``synth`` only) sorts the synthetic documents by the real abstract each one copies,
the ceiling of what clustering the copies can give (the caveat below).

Corpora: ``real`` (the 50,788 real PubMed articles, one segment) or ``synth:N`` (N
perturbed real abstracts, synth_corpus.py, segments of ``--batch`` documents). Caveat
for ``synth``: every synthetic document copies one of 50,788 real abstracts, so a
similarity order clusters the copies of one abstract, a redundancy real PubMed does not
have; only the ``real`` figure measures the effect on real text.

Results are exact in both orders: each query's top-10 scores are compared (the rows
differ, being renumbered; the (score, document id) pairs are compared where no tie
crosses the 10th place). Run: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_scale_reorder.py
--corpus real``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth_corpus as sc  # noqa: E402

WORK = sc.REPO / ".cache" / "S" / "reorder"


def _batches(corpus: str, batch: int):  # type: ignore[no-untyped-def]
    """``(ids, lens, term_ids, vocab)`` batches of the corpus (one per segment)."""
    base, _ = sc.real_pubmed()
    if corpus == "real":
        lens = np.diff(base.offsets)
        yield list(base.ids), lens, base.term_ids, base.vocab
        return
    n = int(corpus.removeprefix("synth:"))
    yield from sc.synthesize_arrays(base, n, batch=batch)


def _sources(n_docs: int, batch: int, seed: int = 1, p_swap: float = 0.10):  # type: ignore[no-untyped-def]
    """Per batch, the real document each synthetic one copies: synth_corpus._draw's
    random draws replayed in the same order (its defaults: seed 1, p_swap 0.10)."""
    base, _ = sc.real_pubmed()
    rng = np.random.default_rng(seed)
    lens = np.diff(base.offsets)
    for start in range(0, n_docs, batch):
        src = rng.integers(0, base.n_docs, size=min(batch, n_docs - start))
        swap = rng.random(int(lens[src].sum())) < p_swap
        rng.integers(0, base.term_ids.size, size=int(swap.sum()))
        yield src


def _order(lens: np.ndarray, tids: np.ndarray, key: str, min_df: int, seed: int, src=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The permutation of a batch's documents (new position -> old document)."""
    n = lens.shape[0]
    if key == "source":
        return np.argsort(src, kind="stable")
    if key == "random":
        return np.random.default_rng(seed).permutation(n)
    doc = np.repeat(np.arange(n), lens)
    pairs = np.unique(doc.astype(np.int64) * (int(tids.max()) + 1) + tids)  # distinct (doc, term)
    d, t = pairs // (int(tids.max()) + 1), pairs % (int(tids.max()) + 1)
    df = np.bincount(t)
    ok = df[t] >= min_df
    score = np.where(ok, -df[t], np.iinfo(np.int64).min)  # highest idf = lowest df among the eligible
    best = np.full(n, -1, np.int64)
    o = np.lexsort((-t, score, d))  # per doc ascending score: its last row is the best term
    last = np.r_[np.flatnonzero(np.diff(d[o])), o.size - 1]
    sel = o[last]
    best[d[sel]] = np.where(ok[sel], t[sel], -1)
    return np.lexsort((lens, best))


def build(root: Path, corpus: str, batch: int, key: str, min_df: int) -> dict:
    from medrag.retrieve import Analyzer
    from medrag.store import StoreWriter

    if root.exists():
        shutil.rmtree(root)  # our own scratch directory under .cache/S/reorder
    c0 = time.process_time()
    reorder_s = 0.0
    srcs = _sources(int(corpus.removeprefix("synth:")), batch) if key == "source" else None
    with StoreWriter(root, analyzer=Analyzer()) as w:
        for i, (ids, lens, tids, vocab) in enumerate(_batches(corpus, batch)):
            if key != "none":
                t0 = time.process_time()
                src = next(srcs) if srcs is not None else None
                if src is not None and not np.array_equal(np.diff(sc.real_pubmed()[0].offsets)[src], lens):
                    raise SystemExit("replayed sources do not match the batch (lengths differ)")
                perm = _order(lens, tids, key, min_df, seed=i, src=src)
                offs = np.r_[0, np.cumsum(lens)]
                tids = np.concatenate([tids[offs[p] : offs[p + 1]] for p in perm.tolist()])
                ids, lens = [ids[p] for p in perm.tolist()], lens[perm]
                reorder_s += time.process_time() - t0
            w.add_encoded(ids, lens, tids, vocab)
    return {"build_cpu_s": round(time.process_time() - c0, 1), "reorder_cpu_s": round(reorder_s, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="real", help="real | synth:N")
    ap.add_argument("--batch", type=int, default=320_000, help="synth: documents per segment")
    ap.add_argument("--key", default="dominant", choices=["dominant", "random", "source"])
    ap.add_argument("--min-df", type=int, default=20)
    ap.add_argument("--queries", type=int, default=None)
    args = ap.parse_args(argv)
    from medrag.retrieve import Analyzer
    from medrag.store import StoreSearcher

    tag = f"{args.corpus.replace(':', '')}_{args.key}"
    res: dict = {"corpus": args.corpus, "key": args.key, "min_df": args.min_df}
    res["as_is"] = build(WORK / f"{tag}_as_is", args.corpus, args.batch, "none", args.min_df)
    res["reordered"] = build(WORK / f"{tag}_reordered", args.corpus, args.batch, args.key, args.min_df)
    a = StoreSearcher.open(WORK / f"{tag}_as_is")
    b = StoreSearcher.open(WORK / f"{tag}_reordered")
    an = Analyzer()
    queries = [q for q in (an.tokenize(t) for t in sc.real_queries()) if q][: args.queries]
    for q in queries[:50]:
        a.search_rows(q, 10, mode="maxscore")
        b.search_rows(q, 10, mode="maxscore")
    cpu = {"as_is": [], "reordered": []}
    same_scores = same_ids = comparable = 0
    for i, q in enumerate(queries):
        out = {}
        for name, st in ((("as_is", a), ("reordered", b)) if i % 2 == 0 else (("reordered", b), ("as_is", a))):
            c = time.process_time()
            rows, sc_ = st.search_rows(q, 10, mode="maxscore")
            cpu[name].append(time.process_time() - c)
            out[name] = (rows, sc_, st)
        (ra, sa, sta), (rb, sb, stb) = out["as_is"], out["reordered"]
        same_scores += int(np.array_equal(sa, sb))
        s11 = sta.search_rows(q, 11, mode="maxscore")[1]
        if s11.size <= 10 or s11[9] > s11[10]:  # no tie across the 10th place: the same documents
            comparable += 1
            pa = sorted(zip(sa.tolist(), (sta.doc_id(int(r)) for r in ra)))
            pb = sorted(zip(sb.tolist(), (stb.doc_id(int(r)) for r in rb)))
            same_ids += int(pa == pb)
    x, y = np.asarray(cpu["as_is"]) * 1000, np.asarray(cpu["reordered"]) * 1000
    ok = (x > 0) & (y > 0)
    res.update(
        {
            "queries": len(queries),
            "segments": a.n_segments,
            "n_docs": a.n_docs,
            "as_is_p50_ms_cpu": round(float(np.percentile(x, 50)), 3),
            "reordered_p50_ms_cpu": round(float(np.percentile(y, 50)), 3),
            "as_is_mean_ms_cpu": round(float(x.mean()), 3),
            "reordered_mean_ms_cpu": round(float(y.mean()), 3),
            "paired_median_ratio_reordered_to_as_is": round(float(np.median(y[ok] / x[ok])), 3),
            "sum_ratio_reordered_to_as_is": round(float(y.sum() / x.sum()), 3),
            "top10_scores_identical": f"{same_scores}/{len(queries)}",
            "top10_doc_ids_identical_where_no_tie_at_10": f"{same_ids}/{comparable}",
            "cmd": " ".join(sys.argv),
            "loadavg": os.getloadavg(),
        }
    )
    (WORK / f"reorder_{tag}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
