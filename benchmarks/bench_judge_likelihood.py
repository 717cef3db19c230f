"""A different judging signal: how likely the model finds the claim's own words, given
the evidence, instead of what it answers when asked.

For a SciFact (claim, evidence) sentence pair the 1.5B model scores the claim's tokens
by **teacher forcing** under three prompts (no answer is sampled: a GBNF grammar of
token ids admits only the claim's own tokenization, and llama.cpp reports each forced
token's probability before sampling, i.e. from the raw logits, when
``post_sampling_probs`` is off, its default; checked on three forced sentences: the
first token's forced log-probability is within 0.3 nats of its entry among the
unconstrained top log-probabilities of the same prompt, -0.24 / -0.26, -2.42 / -2.30,
-4.43 / -4.13, the rest being rounding of a prefix evaluated in another batch):

* ``sup``: the evidence, then "write one sentence stating a finding this evidence
  supports";
* ``opp``: the same evidence, then "write one sentence stating the opposite of a
  finding of this evidence" (the evidence prefix is reused from the KV cache);
* ``none``: no evidence, "write one sentence stating a finding of a biomedical paper".

Features (log-probabilities in nats, summed over the claim's tokens, end-of-turn token
excluded; per word when the word's tokens are grouped):

* ``pmi`` = log P(claim | sup) - log P(claim | none), per word: how much the evidence
  raises the claim's likelihood (pointwise mutual information; a claim the evidence
  does not speak to gains little);
* ``dir`` = log P(claim | sup) - log P(claim | opp), per word: whether the claim reads
  as a restatement or as a reversal of the evidence;
* ``minpmi`` / ``mindir``: the smallest per-word value of each (the one word the
  evidence argues against, e.g. "increases" where it says "decreases").

The zero-shot "likelihood of the hypothesis given the premise" (contrast with the
prior: PMI, Holtzman et al., EMNLP 2021, "Surface form competition") is the idea;
``dir`` is its contrast against an opposite-instruction prompt.

    nice -n 10 .venv/bin/python benchmarks/bench_judge_likelihood.py score --split dev
    .venv/bin/python benchmarks/bench_judge_likelihood.py report [--test]

Calls are cached under .cache/J/likelihood/ (keyed by model, prompt version,
condition, claim, document and a hash of the claim and the evidence; ``none`` by the
claim only), so a stopped run resumes and ``report`` scores nothing. Splits, fits and
thresholds are those of ``bench_judge_prompts.py`` (dev 15 per label, seed 101; test 30
per label, seed 13; no claim shared).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_judge_prompts import (  # noqa: E402
    _auc_cis, accept_rates, aucs, calibrated, choose_threshold, fit_logistic, fmt_rates, load_cache, read_records,
    rows_for, splits, threshold_for_support,
)

from medrag.answer.judge import cap_passage  # noqa: E402

log = logging.getLogger("bench_judge_likelihood")
CACHE = REPO / ".cache" / "J" / "likelihood"
VERSION = "medrag-lik-v1"
SYSTEM = "You are a biomedical research assistant. You write short, precise sentences."
PROMPTS = {
    "sup": "Evidence from a paper: {ev}\n\nWrite one sentence stating a finding that this evidence supports.",
    "opp": "Evidence from a paper: {ev}\n\nWrite one sentence stating the opposite of a finding of this evidence.",
    "none": "Write one sentence stating a finding of a biomedical research paper.",
}
CONDITIONS = ("sup", "opp", "none")
MAX_EVIDENCE_CHARS = 1200


def tokenize(srv, text: str) -> list[int]:
    """The model's own tokenization of ``text`` (llama.cpp's ``/tokenize`` on the
    server's 127.0.0.1 port)."""
    import httpx

    r = httpx.post(f"http://127.0.0.1:{srv.port}/tokenize", json={"content": text}, timeout=60)
    r.raise_for_status()
    return [t["id"] if isinstance(t, dict) else int(t) for t in r.json()["tokens"]]


def token_grammar(ids: list[int]) -> str:
    """A GBNF grammar admitting exactly the token sequence ``ids`` (token-id literals
    ``<[id]>``): the claim is forced in its canonical tokenization. A grammar over
    the claim's characters lets greedy decoding reach the same text through rarer
    tokens (" anti" + "ca" + "nc" + "er": -19.7 nats where the canonical " antic" +
    "ancer" costs -4.5)."""
    return "root ::= " + " ".join(f"<[{int(t)}]>" for t in ids)


def messages(cond: str, claim: str, evidence: str) -> list[dict[str, str]]:
    ev = cap_passage(claim, evidence, MAX_EVIDENCE_CHARS)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPTS[cond].format(ev=ev)}]


def forced_logprobs(srv, msgs, claim: str, ids: list[int]) -> list[tuple[bytes, float]]:
    """``(token bytes, log P)`` of each token of ``claim`` (tokenized as ``ids``)
    forced after ``msgs``; the end-of-turn token after it is left out."""
    resp = srv.chat(msgs, max_tokens=len(ids) + 2, temperature=0.0, logprobs=True, top_logprobs=1,
                    grammar=token_grammar(ids), post_sampling_probs=False)
    content = resp["choices"][0]["logprobs"]["content"]
    toks = [(bytes(t.get("bytes") or t["token"].encode("utf-8")), float(t["logprob"])) for t in content]
    text = b"".join(b for b, _ in toks).decode("utf-8", "replace")
    if not text.startswith(claim):
        raise RuntimeError(f"forced output {text[:80]!r} is not the claim {claim[:80]!r}")
    keep, n = [], 0
    target = len(claim.encode("utf-8"))
    for b, lp in toks:
        if n >= target:
            break
        keep.append((b, lp))
        n += len(b)
    return keep


def word_logprobs(claim: str, toks: list[tuple[bytes, float]]) -> list[float]:
    """Log-probability per whitespace-separated word of ``claim``: a token counts for
    the word its first non-space byte falls in (byte offsets, so any tokenization of
    the same text gives the same words)."""
    raw = claim.encode("utf-8")
    spans = [(m.start(), m.end()) for m in re.finditer(rb"\S+", raw)]
    out = [0.0] * len(spans)
    pos, w = 0, 0
    for b, lp in toks:
        first = pos + (len(b) - len(b.lstrip()))
        while w + 1 < len(spans) and first >= spans[w + 1][0]:
            w += 1
        if spans:
            out[w] += lp
        pos += len(b)
    return out


def key(model: str, cond: str, p) -> str:
    h = hashlib.sha256((p.claim if cond == "none" else p.claim + "\x00" + p.passage).encode()).hexdigest()[:16]
    ident = f"c{p.claim_id}" if cond == "none" else f"{p.claim_id}|{p.doc_id}"
    return f"{model}|{VERSION}|{cond}|{ident}|{h}"


def load(model: str) -> dict:
    return read_records(CACHE / f"{model}.jsonl")


def score(model: str, pairs, conditions, max_pairs: int | None) -> None:
    from medrag.answer.local_llm import LlamaServer, packaged_model

    CACHE.mkdir(parents=True, exist_ok=True)
    cache = load(model)
    todo = [p for p in pairs if any(key(model, c, p) not in cache for c in conditions)]
    if max_pairs is not None:
        todo = todo[:max_pairs]
    if not todo:
        return
    gguf = packaged_model(model, REPO / ".cache" / "models")
    with LlamaServer(gguf, n_ctx=4096, n_threads=1) as srv, open(CACHE / f"{model}.jsonl", "a") as out:
        t0, c0 = time.monotonic(), time.process_time()
        for i, p in enumerate(todo, 1):
            ids = tokenize(srv, p.claim)
            for cond in conditions:
                k = key(model, cond, p)
                if k in cache:
                    continue
                w0, cp0 = time.monotonic(), time.process_time()
                toks = forced_logprobs(srv, messages(cond, p.claim, p.passage), p.claim, ids)
                rec = {"key": k, "label": p.label, "tokens": [[b.hex(), lp] for b, lp in toks],
                       "words": word_logprobs(p.claim, toks), "wall_s": time.monotonic() - w0,
                       "cpu_s": time.process_time() - cp0}
                cache[k] = rec
                out.write(json.dumps(rec) + "\n")
                out.flush()
            if i % 5 == 0 or i == len(todo):
                log.info("%d/%d pairs, %.1f s/pair wall, %.1f s/pair cpu", i, len(todo),
                         (time.monotonic() - t0) / i, (time.process_time() - c0) / i)


FEATURES = ("pmi", "dir", "minpmi", "mindir", "lp_sup")


def features(model: str, p, cache: dict) -> dict | None:
    """The pair's features (module docstring), or None unless ``sup`` and ``opp`` were
    scored; ``pmi`` / ``minpmi`` only when ``none`` was scored too."""
    recs = {c: cache.get(key(model, c, p)) for c in CONDITIONS}
    if recs["sup"] is None or recs["opp"] is None:
        return None
    recs = {c: r for c, r in recs.items() if r is not None}
    ws = {c: r["words"] for c, r in recs.items()}
    n = max(1, len(ws["sup"]))
    d_dir = [a - b for a, b in zip(ws["sup"], ws["opp"])]
    out = {"dir": sum(d_dir) / n, "mindir": min(d_dir, default=0.0), "lp_sup": sum(ws["sup"]) / n,
           "cpu_s": sum(r["cpu_s"] for r in recs.values()), "wall_s": sum(r["wall_s"] for r in recs.values())}
    if "none" in ws:
        d_pmi = [a - b for a, b in zip(ws["sup"], ws["none"])]
        out.update({"pmi": sum(d_pmi) / n, "minpmi": min(d_pmi, default=0.0)})
    return out


def judge_feature(model: str, version: str, pairs, jcache: dict) -> list[tuple[float, ...] | None] | None:
    rows = rows_for(model, version, pairs, jcache)
    return None if rows is None else [r["f"] for r in rows]


def cv_auc(rows, fx, folds: int = 5, seeds: int = 20) -> dict:
    """Mean AUCs over ``seeds`` random ``folds``-fold splits of ``rows``: each row
    scored by a logistic fit on the other folds (out of sample within dev)."""
    import random

    sums = {"S/rest": 0.0, "S/C": 0.0, "S/NEI": 0.0}
    xs = [tuple(fx(r)) for r in rows]
    ys = [1.0 if r["label"] == "SUPPORT" else 0.0 for r in rows]
    for seed in range(seeds):
        idx = list(range(len(rows)))
        random.Random(seed).shuffle(idx)
        sc = [0.0] * len(rows)
        for k in range(folds):
            held = set(idx[k::folds])
            w = fit_logistic([xs[i] for i in idx if i not in held], [ys[i] for i in idx if i not in held])
            for i in held:
                sc[i] = calibrated(w, xs[i])
        for key_, v in aucs(rows, sc).items():
            sums[key_] += v / seeds
    return sums


def _fmt_auc(a, ci=None) -> str:
    if ci is None:
        return " | ".join(f"{a[k]:.2f}" for k in ("S/rest", "S/C", "S/NEI"))
    return " | ".join(f"{a[k]:.2f} [{ci[k][0]:.2f}, {ci[k][1]:.2f}]" for k in ("S/rest", "S/C", "S/NEI"))


def report(model: str, dev, test, with_test: bool, out_path: Path) -> dict:
    cache = load(model)
    jcache = load_cache(model, list(dev) + list(test))
    result: dict = {"model": model, "version": VERSION, "dev": {}, "test": {}}

    def table(pairs):
        rows = []
        extra = {v: judge_feature(model, v, pairs, jcache) for v in ("medrag-judge-v1", "medrag-judge-3way-fs-v1")}
        for i, p in enumerate(pairs):
            f = features(model, p, cache)
            if f is None:
                continue
            r = {"label": p.label, **f}
            for v, fs in extra.items():
                if fs is not None and fs[i] is not None:
                    r[v] = fs[i]
            rows.append(r)
        return rows

    dev_rows = table(dev)
    print(f"## dev: {len(dev_rows)} of {len(dev)} pairs scored "
          f"(CPU {sum(r['cpu_s'] for r in dev_rows) / max(1, len(dev_rows)):.1f} s/pair, "
          f"wall {sum(r['wall_s'] for r in dev_rows) / max(1, len(dev_rows)):.1f} s/pair)\n")
    if len({r["label"] for r in dev_rows}) < 3:
        print("not enough dev pairs for a report")
        return result
    print("| feature (no fit) | AUC S/rest | AUC S/C | AUC S/NEI |")
    print("|---|---|---|---|")
    for f in FEATURES:
        sc = [r[f] for r in dev_rows]
        a, ci = aucs(dev_rows, sc), _auc_cis(dev_rows, sc)
        result["dev"][f] = {"auc": a, "auc_ci": ci}
        print(f"| {f} | {_fmt_auc(a, ci)} |")
    sets = {
        "pmi+dir": lambda r: (r["pmi"], r["dir"]),
        "pmi+mindir": lambda r: (r["pmi"], r["mindir"]),
        "pmi+dir+minpmi+mindir": lambda r: (r["pmi"], r["dir"], r["minpmi"], r["mindir"]),
        "v1": lambda r: r["medrag-judge-v1"],
        "v1+pmi+dir": lambda r: (*r["medrag-judge-v1"], r["pmi"], r["dir"]),
        "v1+dir": lambda r: (*r["medrag-judge-v1"], r["dir"]),
        "v1+mindir": lambda r: (*r["medrag-judge-v1"], r["mindir"]),
        "3way-fs": lambda r: r["medrag-judge-3way-fs-v1"],
        "3way-fs+pmi+dir": lambda r: (*r["medrag-judge-3way-fs-v1"], r["pmi"], r["dir"]),
        "3way-fs+dir": lambda r: (*r["medrag-judge-3way-fs-v1"], r["dir"]),
        "3way-fs+mindir": lambda r: (*r["medrag-judge-3way-fs-v1"], r["mindir"]),
        "v1+3way-fs+mindir": lambda r: (*r["medrag-judge-v1"], *r["medrag-judge-3way-fs-v1"], r["mindir"]),
    }
    print("\n| features | dev AUC S/rest (in-sample fit) | dev 5-fold cross-fit AUC S/rest | S/C | S/NEI "
          "| dev @aim t: S | C | NEI | t | test AUC S/rest | S/C | S/NEI "
          "| test @dev aim t: S | C | NEI | test @85% of dev S: S | C | NEI |")
    print("|---" * 20 + "|")
    test_rows = table(test) if with_test else []
    for name, fx in sets.items():
        try:
            xs = [tuple(fx(r)) for r in dev_rows]
        except KeyError:
            print(f"| {name} | (features missing on dev) |")
            continue
        ys = [1.0 if r["label"] == "SUPPORT" else 0.0 for r in dev_rows]
        w = fit_logistic(xs, ys)
        cal = [calibrated(w, x) for x in xs]
        t, how = choose_threshold(dev_rows, cal)
        t85 = threshold_for_support(dev_rows, cal)
        res = {"weights": w, "threshold": t, "how": how, "threshold_85": t85, "dev_auc": aucs(dev_rows, cal),
               "dev_cv_auc": cv_auc(dev_rows, fx), "dev_accept": accept_rates(dev_rows, cal, t)}
        cells = [" | ".join([""] * 3)] * 3
        if len({r["label"] for r in test_rows}) == 3:
            try:
                tx = [tuple(fx(r)) for r in test_rows]
                tcal = [calibrated(w, x) for x in tx]
                res.update({"test_auc": aucs(test_rows, tcal), "test_auc_ci": _auc_cis(test_rows, tcal),
                            "test_accept": accept_rates(test_rows, tcal, t),
                            "test_accept_85": accept_rates(test_rows, tcal, t85)})
                cells = [_fmt_auc(res["test_auc"], res["test_auc_ci"]), fmt_rates(res["test_accept"]),
                         fmt_rates(res["test_accept_85"])]
            except KeyError:
                cells = ["(features missing on test)", "", ""]
        result["dev"][name] = res
        print(f"| {name} | {res['dev_auc']['S/rest']:.2f} | {_fmt_auc(res['dev_cv_auc'])} | "
              f"{fmt_rates(res['dev_accept'])} | {t:.3f} | "
              + " | ".join(cells) + " |")
    if with_test:
        print(f"\ntest: {len(test_rows)} of {len(test)} pairs scored")
        if test_rows:
            for f in [f for f in FEATURES if all(f in r for r in test_rows)]:
                sc = [r[f] for r in test_rows]
                result["test"][f] = {"auc": aucs(test_rows, sc), "auc_ci": _auc_cis(test_rows, sc)}
                print(f"| {f} (test, no fit) | {_fmt_auc(result['test'][f]['auc'], result['test'][f]['auc_ci'])} |")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("score", "report"))
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct-q4_k_m")
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--max-pairs", type=int, default=None)
    ap.add_argument("--test", action="store_true", help="report: also the test split (fits and thresholds from dev)")
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "J" / "likelihood_report.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    dev, test = splits(15, 30, 101)
    if args.action == "score":
        conds = [c for c in args.conditions.split(",") if c]
        for c in conds:
            if c not in PROMPTS:
                ap.error(f"unknown condition {c!r}")
        score(args.model, dev if args.split == "dev" else test, conds, args.max_pairs)
    else:
        report(args.model, dev, test, args.test, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
