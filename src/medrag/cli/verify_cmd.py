"""``evaluate-verifier``: how well a verifier separates SciFact's SUPPORT claims from
CONTRADICT and no-evidence ones (:mod:`medrag.verifier_eval`)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from ._common import dump_json, positive_int, write_text


def _verifier(args: argparse.Namespace) -> tuple[Any, Any]:
    """The verifier the options name, and what to close afterwards (or None)."""
    from ..answer.verify import LexicalVerifier

    if args.verifier == "lexical":
        if args.gguf or args.gguf_sha256:
            raise ConfigError("--gguf goes with --verifier judge or combined")
        return LexicalVerifier(), None
    if not args.gguf:
        raise ConfigError(f"--verifier {args.verifier} needs --gguf FILE (the judge model)")
    from ..answer.judge import CombinedVerifier, LLMJudgeVerifier
    from ..answer.local_llm import LlamaServer

    server = LlamaServer(args.gguf, sha256=args.gguf_sha256, n_ctx=2048, n_threads=1).start()
    judge = LLMJudgeVerifier(server, model_name=server.alias, **({"prompt": args.judge_prompt} if args.judge_prompt else {}))
    return (judge if args.verifier == "judge" else CombinedVerifier(judge)), server


def cmd_evaluate_verifier(args: argparse.Namespace) -> int:
    from ..verifier_eval import evaluate_verifier, format_verifier_report, load_scifact_pairs, stratified_sample

    verifier, server = _verifier(args)
    try:
        results = {}
        levels = ("sentence", "abstract") if args.level == "both" else (args.level,)
        for level in levels:
            pairs = load_scifact_pairs(args.claims, args.corpus, level)
            if args.per_label:
                pairs = stratified_sample(pairs, args.per_label, seed=args.seed)
            results[level] = evaluate_verifier(verifier, pairs)
    finally:
        if server is not None:
            server.stop()
    if args.json:
        dump_json({lvl: {k: v for k, v in r.items() if k != "scores"} for lvl, r in results.items()})
        return 0
    for level, r in results.items():
        write_text(format_verifier_report(r, f"{r['verifier']}, {level} level") + "\n\n")
    return 0


def add_evaluate_verifier(sub: Any, add: Any) -> None:
    p = add("evaluate-verifier", "measure how well a verifier tells supported claims from others", cmd_evaluate_verifier)
    p.add_argument("--claims", required=True, metavar="FILE", help="SciFact claims_*.jsonl (evidence, cited_doc_ids)")
    p.add_argument("--corpus", required=True, metavar="FILE", help="SciFact corpus.jsonl (doc_id, abstract sentences)")
    p.add_argument("--level", choices=("sentence", "abstract", "both"), default="both",
                   help="claim vs rationale sentences, vs whole abstracts, or both (default: both)")
    p.add_argument("--per-label", type=positive_int, metavar="N",
                   help="a stratified sample of N pairs per label, one per claim (default: every pair)")
    p.add_argument("--seed", type=int, default=13, help="sample seed (default: 13)")
    p.add_argument("--verifier", choices=("lexical", "judge", "combined"), default="lexical",
                   help="lexical (offline default), an LLM judge, or hard constraints + judge (default: lexical)")
    p.add_argument("--gguf", metavar="FILE", help="judge/combined: the GGUF model run by llama.cpp on 127.0.0.1")
    p.add_argument("--gguf-sha256", metavar="HEX", help="refuse the model file unless its sha256 is this")
    p.add_argument("--judge-prompt", metavar="VERSION",
                   help="judge/combined: a prompt version of medrag.answer.judge_prompts (default: the current one)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
