"""Source files in, documents out: format detection, reading with a report, medrag's
own document JSON Lines (what ``ingest --out`` writes and ``build`` reads back), and
writing an output file without ever replacing a special file."""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from ..errors import ConfigError, IngestError
from ..ingest._common import glob_paths
from ._common import count, progress_spec, terminal_safe, write_text, year_range

#: the ``format`` field of the first line of a document file written by medrag
DOCS_FORMAT = "medrag-documents"


# --------------------------------------------------------------------------- detection


def _jsonl_kind(path: Path) -> str | None:
    """``"documents"`` for medrag's document JSON Lines, ``"beir"`` for a BEIR corpus."""
    try:
        with open(path, "rb") as f:
            head = f.readline(1 << 20)
    except OSError:
        return None
    try:
        first = json.loads(head)
    except (ValueError, RecursionError):
        return "beir"  # let the BEIR reader report the line
    if isinstance(first, dict):
        if first.get("format") == DOCS_FORMAT or ("id" in first and "kind" in first and "_id" not in first):
            return "documents"
    return "beir"


def sniff(path: Path) -> str | None:
    """The source format of a file, from its name and then its first bytes."""
    name = path.name.lower()
    if name.endswith(".pdf"):
        return "pdf"
    if name.endswith((".xml", ".xml.gz")):
        return "pubmed"
    if name.endswith((".nbib", ".medline")):
        return "medline"
    if name.endswith(".jsonl"):
        return _jsonl_kind(path)
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
        return _jsonl_kind(path)
    return None


def _in_folder_format(path: Path) -> str | None:
    """The format of a file met while walking a folder (stricter than a named file)."""
    name = path.name.lower()
    if name.endswith(".jsonl"):
        kind = _jsonl_kind(path)
        if kind == "documents" or name.startswith("corpus"):
            return kind
        return None
    if name.endswith((".xml", ".xml.gz", ".gz", ".pdf", ".nbib", ".medline", ".txt")):
        try:
            return sniff(path)
        except OSError:
            return None
    return None


def resolve_inputs(patterns: Sequence[str]) -> tuple[list[tuple[Path, str]], list[str]]:
    """Files, folders or globs into ``(path, format)`` pairs, and the files passed over.

    A folder holding ``corpus.jsonl`` is a BEIR folder (only its corpus is read); any
    other folder contributes its files of a known format, recursively (links to
    folders are not followed, so a link loop cannot hang the walk). A file named
    explicitly must be of a known format. A path or glob that matches nothing is an
    error.
    """
    found: list[tuple[Path, str]] = []
    passed_over: list[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = glob_paths(pattern)  # ** never enters a linked folder: no link-loop hang
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
                for q in _walk(p):
                    fmt = _in_folder_format(q)
                    if fmt is None:
                        passed_over.append(str(q))
                    else:
                        found.append((q, fmt))
            elif p.is_file():
                fmt = sniff(p)
                if fmt is None:
                    raise IngestError(
                        "not a recognized format (PubMed XML, MEDLINE text, PDF, BEIR corpus.jsonl or "
                        "medrag documents .jsonl)",
                        source=str(p),
                    )
                found.append((p, fmt))
            else:
                raise IngestError("not a regular file or folder", source=str(p))
    if not found:
        raise IngestError("no readable source files found", source=", ".join(patterns))
    return found, passed_over


def _walk(top: Path) -> list[Path]:
    """Regular, non-hidden files under ``top``, sorted, without following folder links."""
    out: list[Path] = []
    for root, dirs, files in os.walk(top, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            q = Path(root) / name
            if q.is_file():
                out.append(q)
    return sorted(out)


# --------------------------------------------------------------------------- reading


def iter_document_jsonl(path: Path, *, on_error: str, report: Any) -> Iterator[Any]:
    """Documents from medrag's JSON Lines (``Document.to_dict`` per line, after an
    optional header line ``{"format": "medrag-documents", ...}``); a bad line is an
    :class:`IngestError` naming the file and line, raised or skipped."""
    from ..ingest._common import handle, open_regular
    from ..types import Document

    report.files += 1
    source = str(path)
    try:
        fh = open_regular(path)
    except OSError as exc:
        handle(IngestError(f"cannot read file: {exc}", source=source), on_error, report)
        return
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            where = f"line {lineno}"
            try:
                rec = json.loads(raw.decode("utf-8"))
                if lineno == 1 and isinstance(rec, dict) and rec.get("format") == DOCS_FORMAT:
                    continue
                if not isinstance(rec, dict):
                    raise ValueError(f"a JSON {type(rec).__name__}, not a document object")
                doc = Document.from_dict(rec)
            except RecursionError:
                handle(IngestError("nested too deeply", source=source, record_id=where), on_error, report)
                continue
            except UnicodeDecodeError as exc:
                handle(IngestError(f"not UTF-8 ({exc.reason})", source=source, record_id=where), on_error, report)
                continue
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                handle(IngestError(f"not a medrag document: {exc}", source=source, record_id=where), on_error, report)
                continue
            report.documents += 1
            yield doc


def _events(
    inputs: list[tuple[Path, str]], on_error: str, report: Any, per_file: list[dict[str, Any]], workers: int = 1
) -> Iterator[Any]:
    """Documents and deletions from every input, in order; fills ``per_file``. With
    ``workers > 1`` the files are read in a process pool (:mod:`medrag.ingest.parallel`),
    with the same events, report and order."""
    from ..ingest import iter_guideline_pdf, iter_medline, iter_pubmed_events
    from ..ingest.beir import iter_beir_corpus

    if workers > 1 and len(inputs) > 1:
        from ..ingest.parallel import iter_parallel

        def on_file(path: str, fmt: str, n_docs: int, n_skipped: int) -> None:
            per_file.append({"path": path, "format": fmt, "documents": n_docs, "skipped": n_skipped})

        yield from iter_parallel(
            [(str(p), f) for p, f in inputs], workers=workers, on_error=on_error, report=report,  # type: ignore[arg-type]
            readers={"documents": "medrag.cli.inputs:iter_document_jsonl"}, on_file=on_file,
        )
        return
    for path, fmt in inputs:
        before_docs, before_skipped = report.documents, len(report.skipped)
        if fmt == "pubmed":
            it = iter_pubmed_events(path, on_error=on_error, report=report)  # type: ignore[arg-type]
        elif fmt == "medline":
            it = iter_medline(path, on_error=on_error, report=report)  # type: ignore[arg-type]
        elif fmt == "pdf":
            it = iter_guideline_pdf(path, on_error=on_error, report=report)  # type: ignore[arg-type]
        elif fmt == "documents":
            it = iter_document_jsonl(path, on_error=on_error, report=report)
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


class _Seen(NamedTuple):
    """What the report needs of a document when the document itself is not kept."""

    kind: str
    year: int | None
    retracted: bool


def read_corpus(args: argparse.Namespace, *, keep: bool = True) -> tuple[list[Any], dict[str, Any]]:
    """Read every input; the documents left after deletions, and a JSON-ready report.

    A later version of a document replaces an earlier one and a ``<DeleteCitation>``
    removes it, in file order. With ``keep=False`` only what the report needs is kept
    (memory stays small on a large corpus) and the returned list holds no documents.
    """
    from ..ingest import IngestReport
    from ..types import Deletion

    inputs, passed_over = resolve_inputs(args.paths)
    report = IngestReport()
    per_file: list[dict[str, Any]] = []
    docs: dict[str, Any] = {}
    on_error = "raise" if args.strict else "skip"
    from ..progress import track

    workers = getattr(args, "workers", None) or 1
    for ev in track(_events(inputs, on_error, report, per_file, workers), "read", progress=progress_spec(args), unit="doc"):
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
        "by_kind": count(d.kind for d in kept),
        "retracted": sum(1 for d in kept if d.retracted),
        "years": year_range(kept),
        "skipped": [
            {"source": s.source, "record_id": s.record_id, "position": s.position, "reason": s.reason}
            for s in report.skipped
        ],
        "deletions": [d.pmid for d in report.deletions],
        "passed_over": passed_over,
    }
    return (kept if keep else []), summary


def print_ingest_summary(s: dict[str, Any], out: TextIO | None = None) -> None:
    lines = []
    lines.append(
        f"read {len(s['files'])} file(s): {s['documents']} document(s) kept"
        f" ({s['documents_read']} read, {len(s['deletions'])} deletion(s),"
        f" {len(s['skipped'])} record(s) skipped)"
    )
    for f in s["files"]:
        extra = f", {f['skipped']} skipped" if f["skipped"] else ""
        lines.append(f"  {f['format']:<9} {f['documents']:>7} document(s){extra}  {f['path']}")
    if s["by_kind"]:
        lines.append("kinds: " + ", ".join(f"{k} {n}" for k, n in s["by_kind"].items()))
    if s["years"]:
        lines.append(f"years: {s['years'][0]}-{s['years'][1]}")
    if s["retracted"]:
        lines.append(f"retracted: {s['retracted']} (excluded from search unless --include-retracted)")
    if s["deletions"]:
        shown = ", ".join(s["deletions"][:10]) + (" ..." if len(s["deletions"]) > 10 else "")
        lines.append(f"deleted PMIDs: {shown}")
    for sk in s["skipped"]:
        where = sk["source"]
        if sk["record_id"] is not None:
            where += f", record {sk['record_id']}"
        if sk["position"] is not None:
            where += f" (position {sk['position']})"
        lines.append(f"skipped: {where}: {sk['reason']}")
    if s["passed_over"]:
        lines.append(f"not a source format, passed over: {len(s['passed_over'])} file(s)")
        lines.extend(f"  {p}" for p in s["passed_over"][:10])
    write_text("".join(terminal_safe(x) + "\n" for x in lines), out)


# --------------------------------------------------------------------------- writing


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> str:
    """Write JSON lines to ``path``; returns how (``"replaced"`` / ``"through"``).

    A regular file (or a new one) is written to a temporary sibling and moved into
    place atomically, with the mode an ordinary ``open`` would give it (the user's
    umask; an existing file keeps its mode). A symbolic link is followed: its target
    is replaced, the link stays. A FIFO, a terminal or another character device
    (``/dev/stdout``) is written through, never replaced. A folder, a socket or a
    block device is refused.
    """
    from .._io import atomic_open

    try:
        st = os.stat(path)  # follows links: what a write would reach
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
            with open(path, "w", encoding="utf-8") as f:
                for rec in records:
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            return "through"
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise ConfigError(f"--out {path}: {kind}; name a file")
    real = Path(os.path.realpath(path))  # a link's target is replaced, the link kept
    mode = (st.st_mode & 0o7777) if st is not None else (0o666 & ~_umask())
    with atomic_open(real, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        os.chmod(f.fileno(), mode)
    return "replaced"
