"""BEIR-format folders: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``).

Corpus records become :class:`~medrag.types.Document` objects of kind ``"text"`` with id
``<id_prefix>:<_id>`` (strip the prefix with :func:`beir_id` to compare with qrels).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import IngestError
from ..types import Document, Section, SourceFile
from ._common import IngestReport, OnError, PathLike, check_on_error, handle, sha256_file

__all__ = ["iter_beir_corpus", "read_beir_queries", "read_beir_qrels", "beir_id"]


def beir_id(doc_id: str) -> str:
    """The BEIR ``_id`` of a document id made by :func:`iter_beir_corpus`."""
    return doc_id.split(":", 1)[1] if ":" in doc_id else doc_id


def iter_beir_corpus(
    path: PathLike,
    *,
    id_prefix: str = "doc",
    on_error: OnError = "raise",
    report: IngestReport | None = None,
) -> Iterator[Document]:
    """Stream documents from a BEIR ``corpus.jsonl`` (or a folder holding one)."""
    check_on_error(on_error)
    report = report if report is not None else IngestReport()
    p = Path(path)
    if p.is_dir():
        p = p / "corpus.jsonl"
    report.files += 1
    try:
        src = SourceFile(path=str(p), sha256=sha256_file(p))
        fh = open(p, encoding="utf-8")
    except OSError as exc:
        handle(IngestError(f"cannot read file: {exc}", source=str(p)), on_error, report)
        return
    with fh:
        for i, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                rid = str(rec["_id"])
                text = " ".join(str(rec.get("text") or "").split())
                title = " ".join(str(rec.get("title") or "").split())
            except (ValueError, KeyError, TypeError) as exc:
                handle(IngestError(f"not a BEIR corpus record: {exc}", source=str(p), position=i), on_error, report)
                continue
            sections = (Section(kind="body", label=None, start=0, end=len(text)),) if text else ()
            report.documents += 1
            yield Document(
                id=f"{id_prefix}:{rid}", kind="text", title=title, text=text, sections=sections, source=src
            )


def read_beir_queries(path: PathLike) -> dict[str, str]:
    """``{query_id: text}`` from a BEIR ``queries.jsonl``."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if line.strip():
                try:
                    rec = json.loads(line)
                    out[str(rec["_id"])] = str(rec["text"])
                except (ValueError, KeyError) as exc:
                    raise IngestError(f"not a BEIR query record: {exc}", source=str(path), position=i) from exc
    return out


def read_beir_qrels(path: PathLike) -> dict[str, dict[str, int]]:
    """``{query_id: {doc_id: relevance}}`` from a BEIR ``qrels/*.tsv`` (header row)."""
    out: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
            raise IngestError("expected a header 'query-id corpus-id score'", source=str(path))
        for i, row in enumerate(rows, start=1):
            if not row:
                continue
            try:
                out.setdefault(row[0], {})[row[1]] = int(row[2])
            except (IndexError, ValueError) as exc:
                raise IngestError(f"bad qrels row: {row!r}", source=str(path), position=i) from exc
    return out
