"""Can several judge prompts, a contradiction pass and the lexical checks together meet
issue 13's aim (SciFact sentence pairs, 1.5B judge: accept >= 85% of SUPPORT with
<= 10% of CONTRADICT and <= 5% of NEI)?

Features of one (claim, evidence) pair, all from cached first-token probabilities
(.cache/J/judge/, the cache of ``bench_judge_prompts.py``, same keys):

* ``v1``: logit P(yes), ``medrag-judge-v1``;
* ``s3``, ``c3``: logit P(support), logit P(contradict), ``medrag-judge-3way-fs-v1``;
* ``chk``: the **contradiction pass**: logit P(yes) of the follow-up question
  :data:`~medrag.answer.judge_prompts.CHECK_QUESTION` asked in the same conversation
  after the three-way prompt's answer "SUPPORTS" (the prefix is reused, so it costs
  the follow-up's tokens only);
* ``neg``: logit P(yes) of ``medrag-judge-v1`` for the **negated claim** ("It is not
  true that ..."); ``v1 - neg`` is a contrast that cancels the model's "the evidence
  is on topic" bias (in the spirit of contextual calibration, Zhao et al., ICML 2021);
* ``veto``, ``cov``: the lexical hard constraints (1 when they veto) and the lexical
  verifier's coverage score.

Combinations are logistic fits (Platt-style, small L2) over a feature set, or isotonic
(pool adjacent violators) over a fitted score; thresholds are chosen for the aim
(most SUPPORT with CONTRADICT <= 10% and NEI <= 5%) or for 85% of SUPPORT. Two
protocols, both out of sample: **dev-fit / test-report** (the splits of
``bench_judge_prompts.py``: dev 15 per label seed 101, test 30 per label seed 13, no
claim shared) and **5-fold cross-fitting over dev + test pooled** (every pair scored
and thresholded by a model fitted on the other folds only).

    nice -n 10 .venv/bin/python benchmarks/bench_judge_combine.py judge   # the extra calls (cached)
    .venv/bin/python benchmarks/bench_judge_combine.py report
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_judge_prompts import (  # noqa: E402
    CACHE, LABELS, accept_rates, aucs, choose_threshold, fit_logistic, fmt_rates, key, load_cache, splits,
    threshold_for_support,
)

from medrag.answer.judge import first_token_probs, prompt_features  # noqa: E402
from medrag.answer.judge_prompts import CHECK_QUESTION, JUDGE_PROMPTS, negated_claim  # noqa: E402
from medrag.answer.verify import LexicalVerifier, hard_constraints  # noqa: E402
from medrag.eval import roc_auc  # noqa: E402

log = logging.getLogger("bench_judge_combine")
V1, V3 = "medrag-judge-v1", "medrag-judge-3way-fs-v1"
CHECK_V, NEG_V = V3 + "+check", V1 + "+neg"


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _yes(dist) -> float | None:
    f = prompt_features("yesno", [dist])
    return None if f is None else f[0]


def judge(model: str, pairs, cache: dict, which: tuple[str, ...]) -> None:
    """The contradiction-pass and negated-claim calls for ``pairs`` (in order), on two
    llama.cpp slots (slot 0 keeps the three-way few-shot prefix, slot 1 v1's)."""
    from medrag.answer.local_llm import LlamaServer, packaged_model

    gguf = packaged_model(model, REPO / ".cache" / "models")
    p3, p1 = JUDGE_PROMPTS[V3], JUDGE_PROMPTS[V1]
    with LlamaServer(gguf, n_ctx=8192, n_threads=1, n_parallel=2) as srv, open(CACHE / f"{model}.jsonl", "a") as out:
        t0, c0, n = time.monotonic(), time.process_time(), 0
        for i, p in enumerate(pairs, 1):
            calls = []
            if "check" in which:
                calls.append((CHECK_V, 0, p3.messages(p.claim, p.passage) + [
                    {"role": "assistant", "content": "SUPPORTS"}, {"role": "user", "content": CHECK_QUESTION}]))
            if "neg" in which:
                calls.append((NEG_V, 1, p1.messages(negated_claim(p.claim), p.passage)))
            for version, slot, msgs in calls:
                k = key(model, version, 0, p)
                if k in cache:
                    continue
                w0, cp0 = time.monotonic(), time.process_time()
                resp = srv.chat(msgs, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=20, id_slot=slot)
                rec = {"key": k, "dist": first_token_probs(resp, "yesno"), "label": p.label,
                       "wall_s": time.monotonic() - w0, "cpu_s": time.process_time() - cp0,
                       "prompt_tokens": (resp.get("usage") or {}).get("prompt_tokens"), "timings": resp.get("timings")}
                cache[k] = rec
                out.write(json.dumps(rec) + "\n")
                out.flush()
                n += 1
            if i % 5 == 0 or i == len(pairs):
                log.info("%d/%d pairs, %d calls, %.1f s/call wall, %.1f s/call cpu", i, len(pairs), n,
                         (time.monotonic() - t0) / max(1, n), (time.process_time() - c0) / max(1, n))


def window_pairs(per_label: int = 15, take: int = 30):
    """The abstract-level pairs of bench_verifier.py's judged sample (seed 13; its
    cache holds medrag-judge-v1 on the first ``take``, the abstract capped to 1,200
    characters of its sentences closest to the claim)."""
    from medrag.eval import load_scifact_pairs, stratified_sample

    from bench_judge_prompts import DATA

    pairs = load_scifact_pairs(DATA / "original_claims_train.jsonl", DATA / "original_corpus.jsonl", "abstract")
    return stratified_sample(pairs, per_label, seed=13)[:take]


def window_cached_full(model: str, pairs) -> dict:
    import hashlib

    path = REPO / ".cache" / "bench_verifier" / f"{model}-abstract.jsonl"
    recs = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        recs[rec["key"]] = rec["p"]
    out = {}
    for p in pairs:
        h = hashlib.sha256(p.passage.encode()).hexdigest()[:12]
        out[(p.claim_id, p.doc_id)] = recs.get(f"{model}|{V1}|{p.claim_id}|{p.doc_id}|{h}")
    return out


def judge_window(model: str, pairs, cache: dict, window: int) -> None:
    """medrag-judge-v1 over the claim's best sentence and ``window`` neighbours each
    side (``cap_passage(window=...)``) instead of the capped abstract."""
    from medrag.answer.judge import LLMJudgeVerifier
    from medrag.answer.local_llm import LlamaServer, packaged_model

    gguf = packaged_model(model, REPO / ".cache" / "models")
    version = f"{V1}+w{window}"
    with LlamaServer(gguf, n_ctx=4096, n_threads=1) as srv, open(CACHE / f"{model}.jsonl", "a") as out:
        j = LLMJudgeVerifier(srv, model_name=model, prompt=V1, window=window)
        t0, n = time.monotonic(), 0
        for i, p in enumerate(pairs, 1):
            k = key(model, version, 0, p)
            if k in cache:
                continue
            w0, c0 = time.monotonic(), time.process_time()
            d = j.class_probabilities(p.claim, p.passage)[0]
            rec = {"key": k, "dist": d, "label": p.label, "wall_s": time.monotonic() - w0,
                   "cpu_s": time.process_time() - c0}
            cache[k] = rec
            out.write(json.dumps(rec) + "\n")
            out.flush()
            n += 1
            if i % 5 == 0:
                log.info("window %d: %d/%d pairs, %.1f s/pair wall", window, i, len(pairs), (time.monotonic() - t0) / n)


def report_window(model: str, window: int) -> None:
    pairs = window_pairs()
    cache = load_cache(model)
    full = window_cached_full(model, pairs)
    rows = []
    for p in pairs:
        rec = cache.get(key(model, f"{V1}+w{window}", 0, p))
        f = None if rec is None else _yes(rec["dist"])
        if f is None or full[(p.claim_id, p.doc_id)] is None:
            continue
        rows.append({"label": p.label, "win": 1 / (1 + math.exp(-f)), "full": full[(p.claim_id, p.doc_id)],
                     "wall_s": rec["wall_s"], "cpu_s": rec["cpu_s"]})
    if not rows:
        print("window: nothing judged yet")
        return
    print(f"\n## evidence window (abstract level, {len(rows)} pairs of bench_verifier's sample, medrag-judge-v1)\n")
    print("| evidence | accept @0.5: S | C | NEI | AUC S/rest | S/C | S/NEI |")
    print("|---|---|---|---|---|---|---|")
    for name, col in (("abstract capped to 1,200 chars", "full"), (f"best sentence +- {window}", "win")):
        sc = [r[col] for r in rows]
        a = aucs(rows, sc)
        print(f"| {name} | {fmt_rates(accept_rates(rows, sc, 0.5))} | {a['S/rest']:.3f} | {a['S/C']:.3f} | {a['S/NEI']:.3f} |")
    print(f"(window: {sum(r['wall_s'] for r in rows) / len(rows):.1f} s/pair wall, "
          f"{sum(r['cpu_s'] for r in rows) / len(rows):.1f} s/pair cpu)")


def features(model: str, pairs, cache: dict) -> list[dict]:
    """One row per pair: label and every feature that is cached (None when not)."""
    lex = LexicalVerifier()
    rows = []
    for p in pairs:
        r = {"label": p.label, "claim_id": p.claim_id}
        rec = cache.get(key(model, V1, 0, p))
        r["v1"] = None if rec is None else _yes(rec["dist"])
        rec = cache.get(key(model, V3, 0, p))
        f3 = None if rec is None else prompt_features("threeway", [rec["dist"]])
        r["s3"], r["c3"] = (None, None) if f3 is None else f3
        for name, v in (("chk", CHECK_V), ("neg", NEG_V)):
            rec = cache.get(key(model, v, 0, p))
            r[name] = None if rec is None else _yes(rec["dist"])
        r["contrast"] = None if r["v1"] is None or r["neg"] is None else r["v1"] - r["neg"]
        r["veto"] = 1.0 if hard_constraints(p.claim, p.passage) else 0.0
        r["cov"] = lex.verify(p.claim, p.passage).score
        rows.append(r)
    return rows


def candidates(rows, pairs, n_dev: int) -> list:
    """The order of the extra calls: first the pairs a first pass accepts (v1 P(yes)
    >= 0.5; three-way P(support) >= 0.5 where v1 is not cached), since a second pass
    matters only for them, taken label by label in turn (seeded shuffle within a
    label, test and dev alternating) so that a stopped run still has CONTRADICT and
    NEI pairs to measure a veto on; then the rest."""
    def accepted(r):
        f = r["v1"] if r["v1"] is not None else r["s3"]
        return f is not None and f >= 0.0
    rng = random.Random(11)
    queues = []
    for lab in LABELS:
        for split in (range(n_dev, len(pairs)), range(n_dev)):
            q = [i for i in split if rows[i]["label"] == lab and accepted(rows[i])]
            rng.shuffle(q)
            queues.append(q)
    first = []
    while any(queues):
        for q in queues:
            if q:
                first.append(q.pop(0))
    rest = [i for i in range(len(pairs)) if i not in set(first)]
    return [pairs[i] for i in first + rest]


def pav(xs: list[float], ys: list[float]):
    """Isotonic regression (pool adjacent violators): a step function of x."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    blocks = []  # [sum y, count, max x]
    for i in order:
        blocks.append([ys[i], 1, xs[i]])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, c, x = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
            blocks[-1][2] = x
    steps = [(b[2], b[0] / b[1]) for b in blocks]

    def f(x: float) -> float:
        for xm, v in steps:
            if x <= xm:
                return v
        return steps[-1][1]
    return f


def vec(r, fs) -> tuple[float, ...] | None:
    v = tuple(r[f] for f in fs)
    return None if any(x is None for x in v) else v


def fit_score(train, fs, iso: bool):
    xs = [vec(r, fs) for r in train]
    ys = [1.0 if r["label"] == "SUPPORT" else 0.0 for r in train]
    w = fit_logistic(xs, ys)

    def lin(r):
        x = vec(r, fs)
        return w[0] + sum(a * b for a, b in zip(w[1:], x))
    if not iso:
        return (lambda r: 1 / (1 + math.exp(-max(-50, min(50, lin(r)))))), w
    g = pav([lin(r) for r in train], ys)
    # ties broken by the linear score (a step function alone cannot rank within a step)
    return (lambda r: g(lin(r)) + 1e-6 * (1 / (1 + math.exp(-max(-50, min(50, lin(r))))))), w


def veto_applied(rows, scores, use_veto: bool):
    return [-1.0 if (use_veto and r["veto"]) else s for r, s in zip(rows, scores)]


def evaluate(fs, dev, test, iso=False, use_veto=False) -> dict:
    out = {}
    d = [r for r in dev if vec(r, fs) is not None]
    t = [r for r in test if vec(r, fs) is not None]
    if len(d) == len(dev) and len(t) == len(test):
        score, w = fit_score(d, fs, iso)
        ds, ts = veto_applied(d, [score(r) for r in d], use_veto), veto_applied(t, [score(r) for r in t], use_veto)
        thr, how = choose_threshold(d, ds)
        t85 = max(0.0, threshold_for_support(d, ds))  # a vetoed pair (-1) is never accepted
        # the selection figure: dev in-sample (the fit and threshold of the dev rows themselves)
        dev_auc = aucs(d, ds)
        out["dev"] = {"auc": dev_auc, "aim": accept_rates(d, ds, thr), "at85": accept_rates(d, ds, t85)}
        out["devtest"] = {"weights": w, "threshold": thr, "how": how, "auc": aucs(t, ts),
                          "aim": accept_rates(t, ts, thr), "at85": accept_rates(t, ts, t85), "t85": t85}
    pool = [r for r in dev + test if vec(r, fs) is not None]
    if len({r["label"] for r in pool}) == 3 and min(sum(r["label"] == lab for r in pool) for lab in LABELS) >= 10:
        rng = random.Random(3)
        idx = list(range(len(pool)))
        rng.shuffle(idx)
        folds = [idx[i::5] for i in range(5)]
        oof, acc_aim, acc85 = [0.0] * len(pool), [False] * len(pool), [False] * len(pool)
        for fold in folds:
            held = set(fold)
            train = [pool[i] for i in idx if i not in held]
            score, _ = fit_score(train, fs, iso)
            trs = veto_applied(train, [score(r) for r in train], use_veto)
            thr, _ = choose_threshold(train, trs)
            t85 = max(0.0, threshold_for_support(train, trs))
            for i in fold:
                s = veto_applied([pool[i]], [score(pool[i])], use_veto)[0]
                oof[i], acc_aim[i], acc85[i] = s, s >= thr, s >= t85
        cnt = lambda acc: {lab: (sum(1 for r, a in zip(pool, acc) if a and r["label"] == lab),  # noqa: E731
                                 sum(1 for r in pool if r["label"] == lab)) for lab in LABELS}
        out["crossfit"] = {"auc": aucs(pool, oof), "aim": cnt(acc_aim), "at85": cnt(acc85), "n": len(pool)}
    return out


def second_pass(drows, trows) -> dict:
    """The second pass on the pairs v1 accepts (P(yes) >= 0.5, its own threshold):
    how well each second-pass score tells the accepted SUPPORT pairs from the accepted
    CONTRADICT / NEI ones (AUC), and what a veto does at the threshold that keeps 90%
    of the accepted SUPPORT (chosen by 5-fold cross-fitting, each fold's threshold from
    the other folds), projected onto all pairs: first-pass rate x share not vetoed."""
    allrows = drows + trows
    acc = [r for r in allrows if r["v1"] is not None and r["v1"] >= 0.0]
    first = {lab: (sum(1 for r in acc if r["label"] == lab),
                   sum(1 for r in allrows if r["v1"] is not None and r["label"] == lab)) for lab in LABELS}
    out = {"first_pass": first}
    print(f"\n## second pass on the pairs medrag-judge-v1 accepts (P(yes) >= 0.5): {fmt_rates(first)}\n")
    print("| second-pass score (high = keep) | measured accepted pairs S / C / NEI | AUC S/C | AUC S/NEI "
          "| vetoed at 90%-of-S (cross-fit): S | C | NEI | projected overall accept S | C | NEI |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, fn in (("contradiction pass: -logit P(yes, 'opposite/different?')", lambda r: None if r["chk"] is None else -r["chk"]),
                     ("negated claim: -logit P(yes; not-claim)", lambda r: None if r["neg"] is None else -r["neg"]),
                     ("contrast: logit P(yes; claim) - logit P(yes; not-claim)", lambda r: r["contrast"])):
        rows = [r for r in acc if fn(r) is not None]
        by = {lab: [fn(r) for r in rows if r["label"] == lab] for lab in LABELS}
        if min(len(v) for v in by.values()) < 3:
            print(f"| {name} | {' / '.join(str(len(by[lab])) for lab in LABELS)} (too few) | | | | | | | | |")
            continue
        auc_c, auc_n = roc_auc(by["SUPPORT"], by["CONTRADICT"]), roc_auc(by["SUPPORT"], by["NEI"])
        rng = random.Random(5)
        idx = list(range(len(rows)))
        rng.shuffle(idx)
        vetoed = [False] * len(rows)
        for k in range(5):
            held = set(idx[k::5])
            sup = sorted(fn(rows[i]) for i in idx if i not in held and rows[i]["label"] == "SUPPORT")
            t = sup[int(math.floor(0.10 * len(sup)))] if sup else -1e9
            for i in held:
                vetoed[i] = fn(rows[i]) < t
        vet = {lab: (sum(1 for r, v in zip(rows, vetoed) if v and r["label"] == lab), len(by[lab])) for lab in LABELS}
        proj = {lab: first[lab][0] / first[lab][1] * (1 - vet[lab][0] / vet[lab][1]) for lab in LABELS}
        out[name] = {"auc_c": auc_c, "auc_n": auc_n, "vetoed": vet, "projected": proj}
        print(f"| {name} | {' / '.join(str(len(by[lab])) for lab in LABELS)} | {auc_c:.2f} | {auc_n:.2f} | "
              + " | ".join(f"{vet[lab][0]}/{vet[lab][1]}" for lab in LABELS) + " | "
              + " | ".join(f"{proj[lab]:.0%}" for lab in LABELS) + " |")
    return out


def report(model: str, out_path: Path) -> dict:
    dev, test = splits(15, 30, 101)
    cache = load_cache(model, list(dev) + list(test))
    drows, trows = features(model, dev, cache), features(model, test, cache)
    have = {f: (sum(r[f] is not None for r in drows), sum(r[f] is not None for r in trows))
            for f in ("v1", "s3", "chk", "neg")}
    print(f"features cached (dev/{len(dev)}, test/{len(test)}): {have}\n")
    sets = [("v1",), ("s3", "c3"), ("v1", "s3", "c3"), ("v1", "cov"), ("v1", "s3", "c3", "cov", "veto"),
            ("s3", "c3", "chk"), ("v1", "s3", "c3", "chk"), ("v1", "neg"), ("contrast",), ("v1", "s3", "c3", "neg"),
            ("v1", "s3", "c3", "chk", "neg"), ("v1", "s3", "c3", "chk", "neg", "cov", "veto")]
    result = {}
    print("| features | calibration | protocol | AUC S/rest | S/C | S/NEI | aim threshold: accept S | C | NEI "
          "| 85%-of-S threshold: accept S | C | NEI |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for fs in sets:
        for iso, veto in ((False, False), (True, False), (False, True)):
            res = evaluate(fs, drows, trows, iso=iso, use_veto=veto)
            name = "+".join(fs)
            cal = ("isotonic" if iso else "logistic") + (" + lexical veto" if veto else "")
            for proto in ("dev", "devtest", "crossfit"):
                if proto not in res:
                    continue
                x = res[proto]
                a = x["auc"]
                proto_name = {"dev": "dev, in-sample (selection)", "devtest": "dev-fit, test"}.get(
                    proto, f"5-fold cross-fit, {x.get('n')} pairs")
                print(f"| {name} | {cal} | {proto_name} | "
                      f"{a['S/rest']:.3f} | {a['S/C']:.3f} | {a['S/NEI']:.3f} | {fmt_rates(x['aim'])} | {fmt_rates(x['at85'])} |")
            result[f"{name}|{cal}"] = res
    result["second_pass"] = second_pass(drows, trows)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1, default=str))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("judge", "report", "window"))
    ap.add_argument("--window", type=int, default=1, help="window: neighbours each side of the best sentence")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct-q4_k_m")
    ap.add_argument("--which", default="check,neg", help="judge: extra calls, 'check' and/or 'neg'")
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "J" / "judge_combine.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.action == "judge":
        dev, test = splits(15, 30, 101)
        cache = load_cache(args.model, list(dev) + list(test))
        pairs = list(dev) + list(test)
        ordered = candidates(features(args.model, pairs, cache), pairs, len(dev))
        judge(args.model, ordered, cache, tuple(w for w in args.which.split(",") if w))
    elif args.action == "window":
        pairs = window_pairs()
        judge_window(args.model, pairs, load_cache(args.model), args.window)
        report_window(args.model, args.window)
    else:
        report(args.model, args.out)
        report_window(args.model, args.window)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
