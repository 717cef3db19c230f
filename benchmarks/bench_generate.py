"""Generated answers end to end on PubMedQA (PQA-L dev), with a real local model.

    nice -n 10 .venv/bin/python benchmarks/bench_generate.py --model qwen2.5-coder-0.5b-instruct-q4_k_m --n 16

The index holds the 500 dev abstracts (lexical, 128-token chunks so that three passages
make a short prompt); each question is answered by :func:`medrag.answer.answer` with a
:class:`~medrag.answer.local_llm.LocalLlamaGenerator` (llama.cpp on 127.0.0.1, 1
thread), k=3 passages, the instruction to begin with Yes, No or Maybe, and the default
lexical verifier. Reported, on a seeded random sample of ``--n`` questions (the same
questions, in the same order, for every model):

* cites own: the share of answers with a kept sentence citing the question's own abstract;
* removed: the share of generated sentences (the verdict word alone excluded) that
  verification removed, and the share a combined policy would remove on hard
  constraints alone (numbers, units, bounds, direction, negation; no coverage rule);
* accuracy: the first word of the raw output (yes / no / maybe) against
  ``final_decision`` (published anchors on the reasoning-required *test* set: majority
  55.2%, BioBERT 68.1%, single human 78.0%; this is the dev set, and a small sample);
* latency: seconds per answer (retrieval + generation + verification) on this shared
  machine.

Raw outputs are cached under .cache/bench_generate/ so a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_answer import pubmedqa_docs  # noqa: E402

from medrag.answer import AnswerConfig  # noqa: E402
from medrag.answer.generated import CITE_PROMPTS, PROMPT_VERSION  # noqa: E402
from medrag.answer.judge import JUDGE_PROMPT_VERSION  # noqa: E402
from medrag.answer.local_llm import LocalLlamaGenerator, packaged_model  # noqa: E402
from medrag.answer.verify import hard_constraints  # noqa: E402
from medrag.chunking import ChunkConfig  # noqa: E402
from medrag.eval import wilson_interval  # noqa: E402
from medrag.index import Index, IndexConfig  # noqa: E402

INSTRUCTION = "Begin your answer with one word, Yes, No or Maybe, then give the evidence."
VERDICT = re.compile(r"^\W*(yes|no|maybe)\b", re.IGNORECASE)
log = logging.getLogger("bench_generate")


class Recording:
    """Wraps a generator and keeps its raw outputs (the verdict is read from them)."""

    def __init__(self, gen) -> None:
        self.gen, self.outputs = gen, []

    @property
    def name(self) -> str:
        return self.gen.name

    def generate(self, messages):
        out = self.gen.generate(messages)
        self.outputs.append(out)
        return out


class Replay:
    """Replays a cached raw output (re-verification without regenerating)."""

    def __init__(self, name: str, output: str) -> None:
        self.name, self.output = name, output

    def generate(self, messages):
        return self.output


def reverify(args, index, rows, config):
    """The cached answers verified again with the combined policy (lexical hard
    constraints + the --judge-model LLM judge): which sentences a model verifier keeps."""
    from medrag.answer import generated
    from medrag.answer.judge import CombinedVerifier, LLMJudgeVerifier
    from medrag.answer.local_llm import LlamaServer

    gguf = packaged_model(args.judge_model, REPO / ".cache" / "models")
    out = []
    with LlamaServer(gguf, n_ctx=2048, n_threads=1) as srv:
        verifier = CombinedVerifier(LLMJudgeVerifier(srv, model_name=args.judge_model, prompt=args.judge_prompt))
        for i, r in enumerate(rows, 1):
            t0 = time.monotonic()
            a = generated.compose_generated(
                r["question"], index.search(r["question"], k=config.k), Replay(args.model, r["raw"]),
                index_id=index.id, config=config, instruction=INSTRUCTION, verifier=verifier, on_error="abstain",
                prompt=args.cite_prompt,
            )
            own = f"pmid:{r['pmid']}"
            out.append(dict(r, status=a.status, kept=[s.text for s in a.sentences],
                            removed=[[x.text, x.reason] for x in a.removed],
                            cites_own=any(c.doc_id == own for s in a.sentences for c in s.citations),
                            seconds=r["seconds"] + time.monotonic() - t0))
            log.info("reverified %d/%d: kept %d, removed %d", i, len(rows), len(a.sentences), len(a.removed))
    print(f"(verifier: {verifier.name}; latency includes re-verification)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    ap.add_argument("--n", type=int, default=16, help="questions (a seeded random sample of the 500)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--reverify", action="store_true",
                    help="verify the cached answers again with lexical hard constraints + an LLM judge")
    ap.add_argument("--judge-model", default="qwen2.5-coder-1.5b-instruct-q4_k_m")
    ap.add_argument("--judge-prompt", default=JUDGE_PROMPT_VERSION, help="judge prompt version (--reverify)")
    ap.add_argument("--cite-prompt", default=PROMPT_VERSION, choices=sorted(CITE_PROMPTS),
                    help="the answer prompt (medrag.answer.generated.CITE_PROMPTS); cached apart from v1's")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    data = REPO.parent / "shared" / "data" / "pubmedqa" / "pqal_dev.json"
    labels = {pmid: rec["final_decision"] for pmid, rec in json.loads(data.read_text()).items()}
    docs, questions = pubmedqa_docs(data)
    index = Index.build(docs, IndexConfig(encoder=None, chunking=ChunkConfig(max_tokens=128)))
    rng = random.Random(args.seed)
    rng.shuffle(questions)
    sample = questions[: args.n]
    suffix = "" if args.cite_prompt == PROMPT_VERSION else f"-{args.cite_prompt}"
    cache = REPO / ".cache" / "bench_generate" / f"{args.model}{suffix}.jsonl"
    cache.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            done[r["pmid"]] = r
    config = AnswerConfig(k=3, threshold=0.0)
    todo = [(p, q) for p, q in sample if p not in done]
    if todo:
        gguf = packaged_model(args.model, REPO / ".cache" / "models")
        with LocalLlamaGenerator(gguf, n_ctx=2048, n_threads=1, max_tokens=args.max_tokens, timeout=600) as llm, \
                open(cache, "a") as out:
            rec = Recording(llm)
            from medrag.answer import generated

            for i, (pmid, q) in enumerate(todo, 1):
                t0 = time.monotonic()
                # what answer() does, plus the verdict instruction (compose_generated takes it)
                a = generated.compose_generated(
                    q, index.search(q, k=config.k), rec, index_id=index.id, config=config, instruction=INSTRUCTION,
                    on_error="abstain", prompt=args.cite_prompt,
                )
                dt = time.monotonic() - t0
                raw = rec.outputs[-1] if rec.outputs else ""
                own = f"pmid:{pmid}"
                r = {
                    "pmid": pmid, "question": q, "label": labels[pmid], "raw": raw, "seconds": dt,
                    "status": a.status, "abstain_reason": a.abstain_reason,
                    "own_retrieved": any(p.chunk.doc_id == own for p in a.passages),
                    "cites_own": any(c.doc_id == own for s in a.sentences for c in s.citations),
                    "kept": [s.text for s in a.sentences],
                    "removed": [[x.text, x.reason] for x in a.removed],
                    "hard_removed": sum(
                        1 for x in a.removed
                        if x.cited and all(1 <= n <= len(a.passages) for n in x.cited)
                        and hard_constraints(x.text, "\n".join(a.passages[n - 1].chunk.text for n in dict.fromkeys(x.cited)))
                    ),
                }
                out.write(json.dumps(r) + "\n")
                out.flush()
                done[pmid] = r
                log.info("%d/%d %.0f s %s -> %s", i, len(todo), dt, labels[pmid], raw[:60].replace("\n", " "))
    rows = [done[p] for p, _ in sample if p in done]
    n = len(rows)
    if args.reverify:
        rows = reverify(args, index, rows, config)

    def verdict(raw: str) -> str | None:
        m = VERDICT.match(raw or "")
        return m.group(1).lower() if m else None

    correct = sum(1 for r in rows if verdict(r["raw"]) == r["label"])
    no_verdict = sum(1 for r in rows if verdict(r["raw"]) is None)
    cites_own = sum(1 for r in rows if r["cites_own"])
    own_retrieved = sum(1 for r in rows if r["own_retrieved"])

    def is_verdict_only(text: str) -> bool:
        return bool(re.fullmatch(r"\W*(yes|no|maybe)\W*", text, re.IGNORECASE))

    gen_sent = sum(len(r["kept"]) + sum(1 for t, _ in r["removed"] if not is_verdict_only(t)) for r in rows)
    removed = sum(sum(1 for t, _ in r["removed"] if not is_verdict_only(t)) for r in rows)
    reasons: dict[str, int] = {}
    for r in rows:
        for t, why in r["removed"]:
            if not is_verdict_only(t):
                key = why.split(":")[0] if why.startswith("not supported") else why.split(",")[0]
                key = "not supported: " + why.split(": ", 1)[1].split(" ")[0] if why.startswith("not supported") else key
                reasons[key] = reasons.get(key, 0) + 1
    hard = sum(r["hard_removed"] for r in rows)
    lat = sorted(r["seconds"] for r in rows)
    majority = max(("yes", "no", "maybe"), key=lambda lab: sum(1 for r in rows if r["label"] == lab))
    maj = sum(1 for r in rows if r["label"] == majority)

    def pct(k: int, m: int) -> str:
        ci = wilson_interval(k, m)
        return f"{k}/{m} = {k / m:.0%} [{ci[0]:.0%}, {ci[1]:.0%}]" if m else "-"

    vname = f"combined + {args.judge_model} judge" if args.reverify else "lexical verifier"
    print(f"\n## {args.model}: {n} PubMedQA dev questions (seed {args.seed}), k=3, {vname}, {args.cite_prompt}")
    print(f"- own abstract retrieved: {pct(own_retrieved, n)}; cited by a kept sentence: {pct(cites_own, n)}")
    print(f"- answers: " + ", ".join(f"{s} {sum(1 for r in rows if r['status'] == s)}" for s in ("answered", "partial", "abstained")))
    print(f"- generated sentences removed: {pct(removed, gen_sent)}"
          + ("" if args.reverify else f" (hard constraints alone would remove {hard})"))
    print(f"- removal reasons: {dict(sorted(reasons.items(), key=lambda kv: -kv[1]))}")
    uncited = sum(1 for r in rows for t, why in r["removed"] if not is_verdict_only(t) and why == "cites no passage")
    print(f"- generated sentences that cite a passage: {pct(gen_sent - uncited, gen_sent)}")
    print(f"- verdict accuracy: {pct(correct, n)} (no verdict word: {no_verdict}; majority label '{majority}' in this sample: {pct(maj, n)})")
    if lat:
        print(f"- latency per answer: median {lat[len(lat) // 2]:.0f} s, max {lat[-1]:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
