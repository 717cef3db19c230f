"""Verifiers on SciFact claims: does the score separate SUPPORT from CONTRADICT and
from no evidence (NEI)? Lexical verifier vs an LLM yes/no judge (first-token logprobs)
vs the combined policy (lexical hard constraints veto, the judge decides the rest).

    nice -n 10 .venv/bin/python benchmarks/bench_verifier.py \
        --model qwen2.5-coder-1.5b-instruct-q4_k_m --judge-prompt medrag-judge-v1 \
        --per-label 30 --abstract-per-label 20

The LLM is slow on this shared 2-core machine, so the judge runs on a stratified sample
(one pair per claim, seeded) at each level; the lexical verifier also runs on every
pair. Judge outputs are cached under .cache/bench_verifier/ (keyed by model, the version
of the prompt that judged them (``--judge-prompt``), claim, document and passage), so a
rerun resumes and a call is never read back under another prompt's name. Accept rates are given
with Wilson 95% intervals, AUCs with bootstrap 95% intervals.

Operating points: ``@0.5`` is the judge's own probability at 0.5 (no fitting);
``@cv85`` picks the threshold that accepts 85% of SUPPORT on one half of the sample and
applies it to the other half (2-fold cross-fitting, so the reported rates are out of
sample).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from medrag.answer.judge import JUDGE_PROMPT_VERSION, LLMJudgeVerifier  # noqa: E402
from medrag.answer.judge_prompts import JUDGE_PROMPTS  # noqa: E402
from medrag.answer.local_llm import LlamaServer, packaged_model  # noqa: E402
from medrag.answer.verify import LexicalVerifier, Verdict, hard_constraints  # noqa: E402
from medrag.eval import evaluate_verifier, load_scifact_pairs, roc_auc, stratified_sample, wilson_interval  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "scifact"
LABELS = ("SUPPORT", "CONTRADICT", "NEI")
log = logging.getLogger("bench_verifier")


def _key(model: str, prompt: str, p) -> str:
    """The cache key of one judged pair: ``prompt`` is the version that judged it (not
    the library's current default, which may change under a cached file)."""
    h = hashlib.sha256(p.passage.encode()).hexdigest()[:12]
    return f"{model}|{prompt}|{p.claim_id}|{p.doc_id}|{h}"


def judge_scores(model: str, prompt: str, pairs, cache_path: Path, max_chars: int, cached_only: bool = False) -> dict:
    cache: dict[str, float | None] = {}
    if cache_path.exists():
        for line in cache_path.read_text().splitlines():
            rec = json.loads(line)
            cache[rec["key"]] = rec["p"]
    todo = [] if cached_only else [p for p in pairs if _key(model, prompt, p) not in cache]
    if todo:
        gguf = packaged_model(model, REPO / ".cache" / "models")
        with LlamaServer(gguf, n_ctx=2048, n_threads=1) as srv, open(cache_path, "a") as out:
            judge = LLMJudgeVerifier(srv, model_name=model, max_passage_chars=max_chars, prompt=prompt)
            t0 = time.monotonic()
            for i, p in enumerate(todo, 1):
                prob = judge.raw_probability(p.claim, p.passage)
                k = _key(model, judge.prompt_version, p)
                cache[k] = prob
                out.write(json.dumps({"key": k, "p": prob, "label": p.label, "prompt": judge.prompt_version}) + "\n")
                out.flush()
                if i % 5 == 0 or i == len(todo):
                    el = time.monotonic() - t0
                    log.info("%s: %d/%d pairs, %.1f s/pair", cache_path.name, i, len(todo), el / i)
    keys = {_key(model, prompt, p) for p in pairs}
    return {k: v for k, v in cache.items() if k in keys}


def rates(rows, accept) -> dict:
    out = {}
    for lab in LABELS:
        sel = [r for r in rows if r["label"] == lab]
        k = sum(1 for r in sel if accept(r))
        ci = wilson_interval(k, len(sel))
        out[lab] = {"n": len(sel), "accept": k / len(sel) if sel else None, "ci": ci}
    return out


def aucs(rows, score) -> dict:
    pos = [score(r) for r in rows if r["label"] == "SUPPORT"]
    return {
        "support_vs_rest": roc_auc(pos, [score(r) for r in rows if r["label"] != "SUPPORT"]),
        "support_vs_contradict": roc_auc(pos, [score(r) for r in rows if r["label"] == "CONTRADICT"]),
        "support_vs_nei": roc_auc(pos, [score(r) for r in rows if r["label"] == "NEI"]),
    }


def cv_threshold_accept(rows, score, target: float = 0.85, vetoed=lambda r: False) -> list[bool]:
    """2-fold: the threshold accepting ``target`` of SUPPORT on one fold (or all that are
    not vetoed, when vetoes leave fewer), applied to the other; vetoed pairs never pass."""
    folds = [rows[0::2], rows[1::2]]
    accepted: dict[int, bool] = {}
    for a, b in ((0, 1), (1, 0)):
        n_sup = sum(1 for r in folds[a] if r["label"] == "SUPPORT")
        sup = sorted((score(r) for r in folds[a] if r["label"] == "SUPPORT" and not vetoed(r)), reverse=True)
        if not sup:
            continue
        t = sup[min(len(sup) - 1, max(0, int(round(target * n_sup)) - 1))]
        for r in folds[b]:
            accepted[id(r)] = score(r) >= t and not vetoed(r)
    return [accepted.get(id(r), False) for r in rows]


def platt_fit(rows) -> tuple[float, float]:
    """Logistic regression of SUPPORT on logit(p) (Newton's method): the judge's
    ``platt_a``, ``platt_b``."""
    import math

    xs = [math.log(max(min(r["p"], 1 - 1e-6), 1e-6) / (1 - max(min(r["p"], 1 - 1e-6), 1e-6))) for r in rows]
    ys = [1.0 if r["label"] == "SUPPORT" else 0.0 for r in rows]
    a, b = 1.0, 0.0
    for _ in range(50):
        g0 = g1 = h00 = h01 = h11 = 0.0
        for x, y in zip(xs, ys):
            q = 1 / (1 + math.exp(-(a * x + b)))
            w = q * (1 - q) + 1e-9
            g0 += (q - y) * x
            g1 += q - y
            h00 += w * x * x
            h01 += w * x
            h11 += w
        det = h00 * h11 - h01 * h01
        if abs(det) < 1e-12:
            break
        a -= (h11 * g0 - h01 * g1) / det
        b -= (h00 * g1 - h01 * g0) / det
    return a, b


def fmt(res: dict) -> str:
    return " | ".join(
        f"{res[lab]['accept']:.0%} [{res[lab]['ci'][0]:.0%}, {res[lab]['ci'][1]:.0%}]" if res[lab]["n"] else "-"
        for lab in LABELS
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct-q4_k_m")
    ap.add_argument("--judge-prompt", default=JUDGE_PROMPT_VERSION, choices=tuple(JUDGE_PROMPTS),
                    help="the judge's prompt version (default: the library's; the README's first table is "
                         "medrag-judge-v1); the operating points read its raw P(support), not its calibration")
    ap.add_argument("--per-label", type=int, default=30, help="sentence-level pairs per label for the judge")
    ap.add_argument("--abstract-per-label", type=int, default=20, help="abstract-level pairs per label for the judge")
    ap.add_argument("--max-passage-chars", type=int, default=700)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--cached-only", action="store_true",
                    help="report on the sample pairs already judged (a run stopped early), judging none")
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "bench_verifier" / "results.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    claims, corpus = DATA / "original_claims_train.jsonl", DATA / "original_corpus.jsonl"
    cache_dir = REPO / ".cache" / "bench_verifier"
    cache_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {"model": args.model, "prompt": args.judge_prompt, "levels": {}}
    for level, per_label in (("sentence", args.per_label), ("abstract", args.abstract_per_label)):
        pairs = load_scifact_pairs(claims, corpus, level)
        lex_all = evaluate_verifier(LexicalVerifier(), pairs)
        sample = stratified_sample(pairs, per_label, seed=args.seed)
        t0 = time.monotonic()
        probs = judge_scores(args.model, args.judge_prompt, sample, cache_dir / f"{args.model}-{level}.jsonl",
                             args.max_passage_chars, args.cached_only)
        sample = [p for p in sample if _key(args.model, args.judge_prompt, p) in probs]
        judge_s = (time.monotonic() - t0) / max(1, len(sample))
        lex = LexicalVerifier()
        rows = []
        for p in sample:
            pr = probs[_key(args.model, args.judge_prompt, p)]
            lv: Verdict = lex.verify(p.claim, p.passage)
            rows.append({
                "label": p.label, "p": pr if pr is not None else 0.0, "answered": pr is not None,
                "veto": hard_constraints(p.claim, p.passage), "lex_score": lv.score, "lex_ok": lv.supported,
            })
        judge_p = lambda r: r["p"]  # noqa: E731
        combined = lambda r: 0.0 if r["veto"] else r["p"]  # noqa: E731
        cv_j = cv_threshold_accept(rows, judge_p)
        cv_c = cv_threshold_accept(rows, judge_p, vetoed=lambda r: bool(r["veto"]))
        res = {
            "pairs_total": {lab: lex_all["n"][lab] for lab in LABELS},
            "sample": {lab: sum(1 for r in rows if r["label"] == lab) for lab in LABELS},
            "judge_seconds_per_pair_this_run": judge_s,
            "lexical_all": {"accept": lex_all["accept"], "auc": lex_all["auc"]},
            "lexical_sample": {"rates": rates(rows, lambda r: r["lex_ok"]), "auc": aucs(rows, lambda r: r["lex_score"])},
            "judge@0.5": {"rates": rates(rows, lambda r: r["p"] >= 0.5), "auc": aucs(rows, judge_p)},
            "judge@cv85": {"rates": rates([dict(r, a=a) for r, a in zip(rows, cv_j)], lambda r: r["a"])},
            "combined@0.5": {"rates": rates(rows, lambda r: combined(r) >= 0.5), "auc": aucs(rows, combined)},
            "combined@cv85": {"rates": rates([dict(r, a=a) for r, a in zip(rows, cv_c)], lambda r: r["a"])},
            "vetoes": {lab: sum(1 for r in rows if r["label"] == lab and r["veto"]) for lab in LABELS},
            "unanswered": sum(1 for r in rows if not r["answered"]),
            "platt_a_b_fit_on_sample": platt_fit(rows) if rows else None,
        }
        report["levels"][level] = res
        print(f"\n## {level} level: sample {res['sample']} of {res['pairs_total']}")
        print("| verifier | accept SUPPORT | accept CONTRADICT | accept NEI | AUC S/rest | AUC S/C | AUC S/NEI |")
        print("|---|---|---|---|---|---|---|")
        for name in ("lexical_sample", "judge@0.5", "judge@cv85", "combined@0.5", "combined@cv85"):
            r = res[name]
            au = r.get("auc")
            a = " | ".join(f"{au[k]:.2f}" if au and au[k] is not None else "-" for k in ("support_vs_rest", "support_vs_contradict", "support_vs_nei"))
            print(f"| {name} | {fmt(r['rates'])} | {a} |")
        la = res["lexical_all"]
        print(f"| lexical, all {sum(res['pairs_total'].values())} pairs | "
              + " | ".join(f"{la['accept'][lab]:.0%}" for lab in LABELS) + " | "
              + " | ".join(f"{la['auc'][k]:.2f}" for k in ("support_vs_rest", "support_vs_contradict", "support_vs_nei")) + " |")
        print(f"judge: {judge_s:.1f} s/pair in this run (cached pairs count 0); vetoes by hard constraints: "
              f"{res['vetoes']}; Platt (a, b) fit on this sample: {res['platt_a_b_fit_on_sample']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
