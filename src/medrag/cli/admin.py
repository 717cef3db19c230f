"""``inspect`` and ``evaluate``: describing an index and measuring retrieval."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import (
    add_index_option,
    count,
    dump_json,
    human_size,
    load_index,
    logger,
    positive_int,
    write_text,
    year_range,
)

# --------------------------------------------------------------------------- inspect


def cmd_inspect(args: argparse.Namespace) -> int:
    index = load_index(args, load_model=args.load_model)
    m = index.manifest
    files = m.get("files", {})
    total = sum(int(f.get("size", 0)) for f in files.values())
    sources = [index.source(i) for i in index.document_ids()]
    dense = m.get("dense") or None
    info = {
        "path": str(args.index),
        "resolved": str(Path(args.index).resolve()),
        "verified": not args.no_verify,
        "model_loaded": bool(dense) and args.load_model,
        "index_id": m.get("index_id"),
        "format": m.get("format"),
        "format_version": m.get("format_version"),
        "library_version": m.get("library_version"),
        "created": m.get("created"),
        "counts": {"documents": index.n_documents, "chunks": len(index),
                   **{f"manifest_{k}": v for k, v in m.get("counts", {}).items()}},
        "by_kind": count(s.kind for s in sources),
        "retracted": sum(1 for s in sources if s.retracted),
        "years": year_range(sources),
        "corpus_fingerprint": m.get("corpus_fingerprint"),
        "chunking": m.get("chunking"),
        "analyzer": m.get("analyzer"),
        "bm25": m.get("bm25"),
        "dense": None
        if dense is None
        else {
            "model": (dense.get("encoder") or {}).get("model"),
            "dim": dense.get("dim"),
            "metric": dense.get("metric"),
            "faiss_factory": dense.get("faiss_factory"),
            "encoder": dense.get("encoder"),
        },
        "fusion": m.get("fusion"),
        "total_bytes": total,
        "files": {k: {"size": v.get("size"), "sha256": v.get("sha256")} for k, v in files.items()},
    }
    if args.json:
        dump_json(info)
        return 0
    lines = [
        f"index {info['index_id']} at {info['path']} -> {info['resolved']}",
        f"format {info['format']} v{info['format_version']}, written by medrag {info['library_version']}"
        f" on {info['created']}",
    ]
    c = info["counts"]
    lines.append(f"documents: {c['documents']}, chunks: {c['chunks']}")
    if info["by_kind"]:
        lines.append("kinds: " + ", ".join(f"{k} {n}" for k, n in info["by_kind"].items()))
    if info["years"]:
        lines.append(f"years: {info['years'][0]}-{info['years'][1]}")
    lines.append(f"retracted: {info['retracted']}")
    ch = info["chunking"] or {}
    lines.append(f"chunking: {ch.get('max_tokens')} tokens ({ch.get('encoding')}), "
                 f"overlap {ch.get('overlap_sentences')} sentence(s)")
    an = info["analyzer"] or {}
    lines.append("analyzer: " + ", ".join(f"{k}={v}" for k, v in an.items() if not isinstance(v, (list, dict))))
    lines.append("bm25: " + ", ".join(f"{k}={v}" for k, v in (info["bm25"] or {}).items()))
    if info["dense"]:
        d = info["dense"]
        loaded = "loaded" if info["model_loaded"] else "not loaded; --load-model checks it loads"
        lines.append(f"dense: {d['model']} (dim {d['dim']}, {d['metric']}, {d['faiss_factory'] or 'flat'}; {loaded})")
    else:
        lines.append("dense: none (lexical only)")
    fu = info["fusion"] or {}
    lines.append("fusion: " + ", ".join(f"{k}={v}" for k, v in fu.items()))
    lines.append(f"files: {len(files)}, {human_size(total)}")
    for name, meta in sorted(files.items()):
        lines.append(f"  {human_size(int(meta.get('size', 0))):>10}  {name}")
    if args.no_verify:
        lines.append("checksums: not verified (--no-verify; sizes checked)")
    else:
        lines.append(f"checksums: all {len(files)} file(s) match their sha256")
    write_text("".join(x + "\n" for x in lines))
    return 0


def add_inspect(sub: Any, add: Any) -> None:
    p = add("inspect", "describe an index and verify its files", cmd_inspect)
    add_index_option(p)
    p.add_argument(
        "--load-model", action="store_true", help="also load the dense query encoder, to check it is available (slow)"
    )
    p.add_argument("--json", action="store_true", help="print the description as JSON")


# --------------------------------------------------------------------------- evaluate

_MEASURE_LABELS = {"RR@10": "MRR@10"}


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..eval import DEFAULT_MEASURES, evaluate_index_on_beir, markdown_table

    index = load_index(args)
    if args.mode:
        modes = list(dict.fromkeys(args.mode))
    else:
        modes = ["bm25", "dense", "hybrid"] if index.encoder is not None else ["bm25"]
        if index.encoder is None:
            logger.warning("the index is lexical only: evaluating bm25 alone")
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"{Path(args.index).name}-{args.split}"
    results = evaluate_index_on_beir(
        index, args.beir, split=args.split, modes=modes, k=args.k, measures=DEFAULT_MEASURES, run_dir=run_dir
    )
    runs = {mode: str(run_dir / f"{mode}.trec") for mode in modes}
    if args.json:
        dump_json({"index": str(args.index), "beir": str(args.beir), "split": args.split, "k": args.k,
                   "results": results, "runs": runs})
        return 0
    rows = [{"mode": mode, **{_MEASURE_LABELS.get(k, k): v for k, v in vals.items()}} for mode, vals in results.items()]
    write_text(markdown_table(rows))
    write_text(f"\nTREC runs written to {run_dir}/ ({', '.join(f'{m}.trec' for m in modes)})\n")
    return 0


def add_evaluate(sub: Any, add: Any) -> None:
    p = add("evaluate", "measure retrieval quality on a BEIR-format folder", cmd_evaluate)
    add_index_option(p)
    p.add_argument("--beir", required=True, metavar="FOLDER", help="BEIR folder (queries.jsonl, qrels/SPLIT.tsv)")
    p.add_argument("--split", default="train", help="qrels split (default: train)")
    p.add_argument(
        "--mode",
        action="append",
        choices=("bm25", "dense", "hybrid"),
        help="evaluate this mode (repeatable; default: every mode the index supports)",
    )
    p.add_argument("-k", type=positive_int, default=100, help="documents retrieved per query (default: 100)")
    p.add_argument("--run-dir", metavar="DIR", help="where to write <mode>.trec run files")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
