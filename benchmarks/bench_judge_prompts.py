"""Which judge prompt tells SciFact SUPPORT sentences from CONTRADICT and NEI ones?

A development split (``--dev-per-label`` pairs per label) chooses the prompt, fits its
calibration (logistic regression of SUPPORT on the prompt's features: Platt scaling,
Platt 1999) and the threshold; a disjoint test split (``--test-per-label``, no claim
shared with dev) reports accept rates per label (Wilson 95% intervals) and AUC
(bootstrap 95%) for the chosen prompt, beside the lexical verifier on the same pairs.
The test split is stratified_sample(seed 13), the sample of the earlier
bench_verifier runs; dev is drawn with ``--dev-seed`` from the remaining claims.

    nice -n 10 .venv/bin/python benchmarks/bench_judge_prompts.py judge --split dev \\
        --prompts medrag-judge-v1,medrag-judge-3way-fs-v1
    .venv/bin/python benchmarks/bench_judge_prompts.py report --prompts ... [--test PROMPT]

Every model call is cached under .cache/J/judge/ (keyed by model, prompt version,
question, claim, document and passage hash, the raw first-token class probabilities
stored), so a stopped run resumes and ``report`` judges nothing. Seconds per pair are
wall and process CPU time of the judge calls in the run that made them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from medrag.answer.judge import first_token_probs, prompt_features, raw_support  # noqa: E402
from medrag.answer.judge_prompts import JUDGE_PROMPTS, get_judge_prompt  # noqa: E402
from medrag.answer.verify import LexicalVerifier  # noqa: E402
from medrag.eval import load_scifact_pairs, roc_auc, stratified_sample, wilson_interval  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "scifact"
CACHE = REPO / ".cache" / "J" / "judge"
LABELS = ("SUPPORT", "CONTRADICT", "NEI")
log = logging.getLogger("bench_judge_prompts")


def splits(dev_per_label: int, test_per_label: int, dev_seed: int):
    pairs = load_scifact_pairs(DATA / "original_claims_train.jsonl", DATA / "original_corpus.jsonl", "sentence")
    test = stratified_sample(pairs, test_per_label, seed=13)
    used = {p.claim_id for p in test}
    dev = stratified_sample([p for p in pairs if p.claim_id not in used], dev_per_label, seed=dev_seed)
    assert not used & {p.claim_id for p in dev}
    return dev, test


def key(model: str, version: str, q: int, p) -> str:
    h = hashlib.sha256((p.claim + "\x00" + p.passage).encode()).hexdigest()[:16]
    return f"{model}|{version}|q{q}|{p.claim_id}|{p.doc_id}|{h}"


def read_records(path: Path) -> dict:
    """The records of a JSON-lines cache by their ``key`` (the last one wins); empty
    when the file does not exist."""
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                out[rec["key"]] = rec
    return out


def load_cache(model: str, pairs=()) -> dict:
    """The judged calls; with ``pairs``, also the medrag-judge-v1 judgements of the
    earlier bench_verifier runs (same prompt, same sentence pairs, cached there as P(yes))."""
    out = read_records(CACHE / f"{model}.jsonl")
    old = REPO / ".cache" / "bench_verifier" / f"{model}-sentence.jsonl"
    if pairs and old.exists():
        olds = {}
        for line in old.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                olds[rec["key"]] = rec
        for p in pairs:
            h = hashlib.sha256(p.passage.encode()).hexdigest()[:12]
            rec = olds.get(f"{model}|medrag-judge-v1|{p.claim_id}|{p.doc_id}|{h}")
            k = key(model, "medrag-judge-v1", 0, p)
            if rec is not None and k not in out:
                d = None if rec["p"] is None else {"support": rec["p"], "other": 1.0 - rec["p"]}
                out[k] = {"key": k, "dist": d, "label": p.label, "wall_s": float("nan"), "cpu_s": float("nan")}
    return out


def judge(model: str, versions: list[str], pairs, max_pairs: int | None) -> None:
    from medrag.answer.local_llm import LlamaServer, packaged_model

    CACHE.mkdir(parents=True, exist_ok=True)
    cache = load_cache(model)
    gguf = packaged_model(model, REPO / ".cache" / "models")
    with LlamaServer(gguf, n_ctx=4096, n_threads=1) as srv, open(CACHE / f"{model}.jsonl", "a") as out:
        for version in versions:
            pr = get_judge_prompt(version)
            questions = [pr.question, pr.question2] if pr.kind == "twoq" else [pr.question]
            todo = [p for p in pairs if any(key(model, version, q, p) not in cache for q in range(len(questions)))]
            if max_pairs is not None:
                todo = todo[:max_pairs]
            t0, c0 = time.monotonic(), time.process_time()
            for i, p in enumerate(todo, 1):
                for qi, q in enumerate(questions):
                    k = key(model, version, qi, p)
                    if k in cache:
                        continue
                    w0, cp0 = time.monotonic(), time.process_time()
                    resp = srv.chat(pr.messages(p.claim, p.passage, q), max_tokens=1, temperature=0.0,
                                    logprobs=True, top_logprobs=20)
                    try:
                        tops = resp["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
                        tops = [[t["token"], t["logprob"]] for t in tops]
                    except (KeyError, IndexError, TypeError):
                        tops = None
                    rec = {"key": k, "dist": first_token_probs(resp, pr.kind), "tops": tops, "label": p.label,
                           "wall_s": time.monotonic() - w0, "cpu_s": time.process_time() - cp0,
                           "prompt_tokens": (resp.get("usage") or {}).get("prompt_tokens"),
                           "timings": resp.get("timings")}
                    cache[k] = rec
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
                if i % 5 == 0 or i == len(todo):
                    log.info("%s: %d/%d pairs, %.1f s/pair wall, %.1f s/pair cpu", version, i, len(todo),
                             (time.monotonic() - t0) / i, (time.process_time() - c0) / i)


def rows_for(model: str, version: str, pairs, cache: dict, partial: bool = False) -> list[dict] | None:
    """One row per pair judged with ``version``; None when a pair is missing (with
    ``partial``: the judged pairs only)."""
    pr = JUDGE_PROMPTS[version]
    nq = 2 if pr.kind == "twoq" else 1
    rows = []
    for p in pairs:
        recs = [cache.get(key(model, version, q, p)) for q in range(nq)]
        if any(r is None for r in recs):
            if partial:
                continue
            return None
        f = prompt_features(pr.kind, [r["dist"] for r in recs])
        rows.append({"label": p.label, "f": f, "wall_s": sum(r["wall_s"] for r in recs),
                     "cpu_s": sum(r["cpu_s"] for r in recs),
                     "prompt_tokens": [r.get("prompt_tokens") for r in recs],
                     "cached_tokens": [((r.get("timings") or {}).get("cache_n")) for r in recs]})
    return rows


def fit_logistic(xs: list[tuple[float, ...]], ys: list[float], l2: float = 0.01) -> tuple[float, ...]:
    """Weights ``(w0, w1, ...)`` of ``sigmoid(w0 + w . x)`` by Newton's method with a
    small L2 penalty on ``w1..`` (keeps the fit finite on separable dev data)."""
    d = len(xs[0]) + 1
    w = [0.0] * d
    for _ in range(100):
        g = [0.0] * d
        h = [[0.0] * d for _ in range(d)]
        for x, y in zip(xs, ys):
            z = [1.0, *x]
            q = 1 / (1 + math.exp(-max(-50, min(50, sum(a * b for a, b in zip(w, z))))))
            for i in range(d):
                g[i] += (q - y) * z[i]
                for j in range(d):
                    h[i][j] += q * (1 - q) * z[i] * z[j]
        for i in range(1, d):
            g[i] += l2 * w[i]
            h[i][i] += l2
        step = _solve(h, g)
        w = [a - b for a, b in zip(w, step)]
        if max(abs(s) for s in step) < 1e-8:
            break
    return tuple(w)


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        piv = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[piv] = m[piv], m[c]
        if abs(m[c][c]) < 1e-12:
            return [0.0] * n
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                m[r] = [x - f * y for x, y in zip(m[r], m[c])]
    return [m[i][n] / m[i][i] for i in range(n)]


def calibrated(w, f) -> float:
    if f is None:
        return 0.0
    z = w[0] + sum(a * b for a, b in zip(w[1:], f))
    return 1 / (1 + math.exp(-max(-50, min(50, z))))


def accept_rates(rows, scores, t) -> dict:
    out = {}
    for lab in LABELS:
        sel = [s for r, s in zip(rows, scores) if r["label"] == lab]
        k = sum(1 for s in sel if s >= t)
        out[lab] = (k, len(sel))
    return out


def choose_threshold(rows, scores, max_c=0.10, max_n=0.05) -> tuple[float, str]:
    """The threshold (a midpoint between dev scores) accepting the most SUPPORT with
    CONTRADICT <= max_c and NEI <= max_n on these rows; if that accepts no SUPPORT,
    the one maximising ``accept(S) - accept(C) - accept(N)``."""
    vals = sorted(set(scores))
    cands = [1.0] + [(a + b) / 2 for a, b in zip(vals, vals[1:])] + [0.0]
    best, best_youden = None, None
    for t in cands:
        r = accept_rates(rows, scores, t)
        s, c, n = (r[lab][0] / max(1, r[lab][1]) for lab in LABELS)
        if c <= max_c and n <= max_n and (best is None or s > best[1]):
            best = (t, s)
        y = s - c - n
        if best_youden is None or y > best_youden[1]:
            best_youden = (t, y)
    if best is not None and best[1] > 0:
        return best[0], "aim constraints on dev"
    return best_youden[0], "max S-C-N on dev (aim constraints accept no SUPPORT)"


def threshold_for_support(rows, scores, target=0.85) -> float:
    sup = sorted((s for r, s in zip(rows, scores) if r["label"] == "SUPPORT"), reverse=True)
    k = max(1, int(math.ceil(target * len(sup))))
    return sup[k - 1]


def cross_fitted(rows, scores) -> dict:
    """Accept counts per label when each half of ``rows`` (even / odd positions) is
    judged at the :func:`choose_threshold` of the other half: an operating point for
    a prompt without a dev run, out of sample."""
    idx = [list(range(0, len(rows), 2)), list(range(1, len(rows), 2))]
    acc = [False] * len(rows)
    for a, b in ((0, 1), (1, 0)):
        t, _ = choose_threshold([rows[i] for i in idx[a]], [scores[i] for i in idx[a]])
        for i in idx[b]:
            acc[i] = scores[i] >= t
    return {lab: (sum(1 for r, x in zip(rows, acc) if r["label"] == lab and x),
                  sum(1 for r in rows if r["label"] == lab)) for lab in LABELS}


def aucs(rows, scores) -> dict:
    pos = [s for r, s in zip(rows, scores) if r["label"] == "SUPPORT"]
    return {
        "S/rest": roc_auc(pos, [s for r, s in zip(rows, scores) if r["label"] != "SUPPORT"]),
        "S/C": roc_auc(pos, [s for r, s in zip(rows, scores) if r["label"] == "CONTRADICT"]),
        "S/NEI": roc_auc(pos, [s for r, s in zip(rows, scores) if r["label"] == "NEI"]),
    }


def fmt_rates(r) -> str:
    cells = []
    for lab in LABELS:
        k, n = r[lab]
        lo, hi = wilson_interval(k, n)
        cells.append(f"{k}/{n} = {k / n:.0%} [{lo:.0%}, {hi:.0%}]" if n else "-")
    return " | ".join(cells)


def report(model: str, versions: list[str], dev, test, test_version: str | None, out_path: Path,
           partial: bool = False) -> dict:
    cache = load_cache(model, list(dev) + list(test))
    result: dict = {"model": model, "dev": {}, "test": {}}
    print(f"## dev split: {len(dev)} pairs\n")
    print("| prompt | s/pair wall (cpu) | AUC S/rest (raw) | AUC S/C | AUC S/NEI | dev accept @chosen t: S | C | NEI | t |")
    print("|---|---|---|---|---|---|---|---|---|")
    fits = {}
    for v in versions:
        rows = rows_for(model, v, dev, cache, partial)
        if not rows or len({r["label"] for r in rows}) < 3:
            rows = None
        if rows is None:
            print(f"| {v} | not judged on all dev pairs |")
            continue
        pr = JUDGE_PROMPTS[v]
        raw = [raw_support(pr.kind, r["f"]) if r["f"] is not None else 0.0 for r in rows]
        xs = [r["f"] if r["f"] is not None else (-13.8,) * pr.n_features for r in rows]
        w = fit_logistic(xs, [1.0 if r["label"] == "SUPPORT" else 0.0 for r in rows])
        cal = [calibrated(w, r["f"]) for r in rows]
        t, how = choose_threshold(rows, cal)
        ra = accept_rates(rows, cal, t)
        au_raw, au_cal = aucs(rows, raw), aucs(rows, cal)
        wall = sum(r["wall_s"] for r in rows) / len(rows)
        cpu = sum(r["cpu_s"] for r in rows) / len(rows)
        fits[v] = {"weights": w, "threshold": t, "how": how}
        result["dev"][v] = {"auc_raw": au_raw, "auc_calibrated": au_cal, "weights": w, "threshold": t, "how": how,
                            "accept": ra, "wall_s_per_pair": wall, "cpu_s_per_pair": cpu,
                            "unanswered": sum(1 for r in rows if r["f"] is None)}
        print(f"| {v}{f' ({len(rows)} pairs)' if partial else ''} | {wall:.1f} ({cpu:.1f}) | {au_raw['S/rest']:.2f} ({au_cal['S/rest']:.2f} cal) | "
              f"{au_cal['S/C']:.2f} | {au_cal['S/NEI']:.2f} | {fmt_rates(ra)} | {t:.3f} |")
    lex = LexicalVerifier()
    lex_v = [lex.verify(p.claim, p.passage) for p in test]
    lex_rates = {lab: (sum(1 for x, p in zip(lex_v, test) if p.label == lab and x.supported),
                       sum(1 for p in test if p.label == lab)) for lab in LABELS}
    lex_auc = aucs([{"label": p.label} for p in test], [x.score for x in lex_v])
    result["test"]["lexical"] = {"accept": lex_rates, "auc": lex_auc}
    print(f"\n## test split: {len(test)} pairs (disjoint claims); calibration and thresholds from dev\n")
    print("| prompt | operating point | accept SUPPORT | accept CONTRADICT | accept NEI | AUC S/rest | AUC S/C | AUC S/NEI |")
    print("|---|---|---|---|---|---|---|---|")
    for v in [x for x in versions if x == test_version or test_version == "all"]:
        pr = JUDGE_PROMPTS[v]
        rows = rows_for(model, v, test, cache)
        if rows is None:
            print(f"| {v} | not judged on all test pairs | | | | | | |")
            continue
        raw = [raw_support(pr.kind, r["f"]) if r["f"] is not None else 0.0 for r in rows]
        res = {"raw@0.5": accept_rates(rows, raw, 0.5), "auc_raw": aucs(rows, raw), "auc_raw_ci": _auc_cis(rows, raw),
               "wall_s_per_pair": sum(r["wall_s"] for r in rows) / len(rows),
               "cpu_s_per_pair": sum(r["cpu_s"] for r in rows) / len(rows),
               "unanswered": sum(1 for r in rows if r["f"] is None)}
        a, ci = res["auc_raw"], res["auc_raw_ci"]
        au = " | ".join(f"{a[k]:.3f} [{ci[k][0]:.2f}, {ci[k][1]:.2f}]" for k in a)
        print(f"| {v} | raw P(support) >= 0.5 | {fmt_rates(res['raw@0.5'])} | {au} |")
        score = raw
        if v in fits:
            score = [calibrated(fits[v]["weights"], r["f"]) for r in rows]
        res["cv_aim"] = cross_fitted(rows, score)
        print(f"| {v} | aim-constrained threshold, 2-fold cross-fitted on test | {fmt_rates(res['cv_aim'])} | | | |")
        if v in fits:
            w, t = fits[v]["weights"], fits[v]["threshold"]
            cal = [calibrated(w, r["f"]) for r in rows]
            dev_rows = rows_for(model, v, dev, cache)
            t85 = threshold_for_support(dev_rows, [calibrated(w, r["f"]) for r in dev_rows])
            res.update({"chosen": accept_rates(rows, cal, t), "at_dev_85_support": accept_rates(rows, cal, t85),
                        "auc": aucs(rows, cal), "auc_ci": _auc_cis(rows, cal), "threshold": t,
                        "threshold_85": t85, "weights": w})
            a, ci = res["auc"], res["auc_ci"]
            au = " | ".join(f"{a[k]:.3f} [{ci[k][0]:.2f}, {ci[k][1]:.2f}]" for k in a)
            print(f"| {v} | calibrated >= {t:.3f} ({fits[v]['how']}) | {fmt_rates(res['chosen'])} | {au} |")
            print(f"| {v} | calibrated >= {t85:.3f} (85% of dev SUPPORT) | {fmt_rates(res['at_dev_85_support'])} | | | |")
        sw, st, how = pr.calibration_for(model)
        if how != "uncalibrated":  # the numbers shipped in medrag.answer.judge_prompts
            cal = [calibrated(sw, r["f"]) for r in rows]
            res["shipped"] = {"weights": sw, "threshold": st, "accept": accept_rates(rows, cal, st), "auc": aucs(rows, cal)}
            print(f"| {v} | shipped calibration, >= {st:g} | {fmt_rates(res['shipped']['accept'])} | "
                  + " | ".join(f"{x:.3f}" for x in res["shipped"]["auc"].values()) + " |")
        result["test"][v] = res
        print(f"<!-- {v}: {res['wall_s_per_pair']:.1f} s/pair wall, {res['cpu_s_per_pair']:.1f} s/pair cpu -->")
    print(f"| lexical-v2 | its own decision | {fmt_rates(lex_rates)} | "
          + " | ".join(f"{x:.3f}" for x in lex_auc.values()) + " |")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1))
    return result


def _auc_cis(rows, scores, rounds: int = 500, seed: int = 7) -> dict:
    import random

    rng = random.Random(seed)
    by = {lab: [s for r, s in zip(rows, scores) if r["label"] == lab] for lab in LABELS}
    out = {}
    for k, negs in (("S/rest", by["CONTRADICT"] + by["NEI"]), ("S/C", by["CONTRADICT"]), ("S/NEI", by["NEI"])):
        pos, vals = by["SUPPORT"], []
        for _ in range(rounds):
            vals.append(roc_auc([pos[rng.randrange(len(pos))] for _ in pos], [negs[rng.randrange(len(negs))] for _ in negs]))
        vals.sort()
        out[k] = (vals[int(0.025 * rounds)], vals[int(0.975 * rounds) - 1])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("judge", "report"))
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct-q4_k_m")
    ap.add_argument("--prompts", default=",".join(JUDGE_PROMPTS))
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--dev-per-label", type=int, default=15)
    ap.add_argument("--test-per-label", type=int, default=30)
    ap.add_argument("--dev-seed", type=int, default=101)
    ap.add_argument("--max-pairs", type=int, default=None, help="judge at most this many new pairs per prompt")
    ap.add_argument("--test", default=None, help="report: the prompt to evaluate on the test split (or 'all')")
    ap.add_argument("--partial", action="store_true", help="report: dev figures on the pairs judged so far")
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "J" / "judge_prompts.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    versions = [v for v in args.prompts.split(",") if v]
    for v in versions:
        get_judge_prompt(v)
    dev, test = splits(args.dev_per_label, args.test_per_label, args.dev_seed)
    if args.action == "judge":
        judge(args.model, versions, dev if args.split == "dev" else test, args.max_pairs)
    else:
        report(args.model, versions, dev, test, args.test, args.out, args.partial)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
