"""BEIR-format folders: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``).

Corpus records become :class:`~medrag.types.Document` objects of kind ``"text"`` with id
``<id_prefix>:<_id>`` (strip the prefix with :func:`beir_id` to compare with qrels).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import IngestError
from ..types import Document, Section, SourceFile
from ._common import (
    IngestReport,
    OnError,
    PathLike,
    check_on_error,
    handle,
    open_regular,
    sha256_handle,
)

__all__ = ["iter_beir_corpus", "read_beir_queries", "read_beir_qrels", "beir_id"]

_UTF16_32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def beir_id(doc_id: str) -> str:
    """The BEIR ``_id`` of a document id made by :func:`iter_beir_corpus`."""
    return doc_id.split(":", 1)[1] if ":" in doc_id else doc_id


#: The longest line read, in bytes (a BEIR abstract is a few KB); longer is an error.
MAX_LINE_BYTES = 64 * 2**20


def _lines(f: Any) -> Iterator[bytes | None]:
    """The lines of a binary file, each at most MAX_LINE_BYTES (a longer one is read
    past in blocks and given as None), so that one line cannot take all memory."""
    while True:
        line = f.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (more := f.readline(1 << 20)) and not more.endswith(b"\n"):
                pass
            yield None
            continue
        yield line


def _line_error(reason: str, source: str, i: int) -> IngestError:
    return IngestError(reason, source=source, record_id=f"line {i + 1}", position=i)


def _json_lines(
    f: Any, source: str, what: str, on_error: OnError, report: IngestReport
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(0-based line, object)`` for each non-blank line of a UTF-8 JSON Lines file.

    Lines are decoded one by one, so invalid UTF-8 is an error for that line only; a
    file that opens with a UTF-16 or UTF-32 byte-order mark is refused as a whole.
    Nesting too deep for the JSON decoder, a line that is not a JSON object: an
    :class:`IngestError` naming the file and the line, raised or skipped per
    ``on_error``.
    """
    head = f.read(4)
    f.seek(0)
    if head.startswith(_UTF16_32_BOMS):
        handle(
            IngestError("the file is UTF-16 or UTF-32 text (byte-order mark); BEIR files are UTF-8", source=source),
            on_error,
            report,
        )
        return
    for i, raw in enumerate(_lines(f)):
        if raw is None:
            handle(_line_error(f"line longer than {MAX_LINE_BYTES:,} bytes", source, i), on_error, report)
            continue
        if i == 0 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            handle(_line_error(f"not UTF-8 text: {exc.reason} at byte {exc.start}", source, i), on_error, report)
            continue
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except RecursionError:
            handle(_line_error(f"not a {what}: JSON nested too deep", source, i), on_error, report)
            continue
        except ValueError as exc:
            handle(_line_error(f"not a {what}: {exc}", source, i), on_error, report)
            continue
        if not isinstance(rec, dict):
            handle(_line_error(f"not a {what}: a JSON {type(rec).__name__}, not an object", source, i), on_error, report)
            continue
        yield i, rec


def _field(rec: dict[str, Any], key: str, *, required: bool) -> str:
    """A string field (a number is written as text); anything else is a ValueError."""
    v = rec.get(key)
    if v is None:
        if required:
            raise ValueError(f"no {key!r}")
        return ""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ValueError(f"{key!r} is a JSON {type(v).__name__}, not a string")
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as exc:  # "\ud800": valid JSON, not writable text
            raise ValueError(f"{key!r} holds a lone surrogate ({v[exc.start]!a})") from None
    return str(v)


def iter_beir_corpus(
    path: PathLike,
    *,
    id_prefix: str = "doc",
    on_error: OnError = "raise",
    report: IngestReport | None = None,
) -> Iterator[Document]:
    """Stream documents from a BEIR ``corpus.jsonl`` (or a folder holding one).

    A line that is not UTF-8, not JSON (or nested too deep), not an object, or whose
    ``_id`` / ``title`` / ``text`` is not a string is an
    :class:`~medrag.errors.IngestError` naming the file and the line (``record_id``
    ``"line N"``, 1-based), raised or skipped per ``on_error``. Only regular files are
    read (a FIFO or a device is refused).
    """
    check_on_error(on_error)
    report = report if report is not None else IngestReport()
    p = Path(path)
    if p.is_dir():
        p = p / "corpus.jsonl"
    report.files += 1
    source = str(p)
    try:
        fh = open_regular(p)
    except OSError as exc:
        handle(IngestError(f"cannot read file: {exc}", source=source), on_error, report)
        return
    with fh:
        try:
            src = SourceFile(path=source, sha256=sha256_handle(fh))
        except OSError as exc:
            handle(IngestError(f"cannot read file: {exc}", source=source), on_error, report)
            return
        for i, rec in _json_lines(fh, source, "BEIR corpus record", on_error, report):
            try:
                rid = _field(rec, "_id", required=True)
                text = " ".join(_field(rec, "text", required=False).split())
                title = " ".join(_field(rec, "title", required=False).split())
            except ValueError as exc:
                handle(_line_error(f"not a BEIR corpus record: {exc}", source, i), on_error, report)
                continue
            sections = (Section(kind="body", label=None, start=0, end=len(text)),) if text else ()
            report.documents += 1
            yield Document(
                id=f"{id_prefix}:{rid}", kind="text", title=title, text=text, sections=sections, source=src
            )


def read_beir_queries(
    path: PathLike, *, on_error: OnError = "raise", report: IngestReport | None = None
) -> dict[str, str]:
    """``{query_id: text}`` from a BEIR ``queries.jsonl``.

    Bad lines (as in :func:`iter_beir_corpus`, or without ``_id`` / ``text``) raise
    :class:`~medrag.errors.IngestError` naming the file and line, or with
    ``on_error="skip"`` are left out and recorded in ``report``.
    """
    check_on_error(on_error)
    report = report if report is not None else IngestReport()
    source = str(path)
    out: dict[str, str] = {}
    try:
        fh = open_regular(path)
    except OSError as exc:
        handle(IngestError(f"cannot read file: {exc}", source=source), on_error, report)
        return out
    with fh:
        for i, rec in _json_lines(fh, source, "BEIR query record", on_error, report):
            try:
                out[_field(rec, "_id", required=True)] = _field(rec, "text", required=True)
            except ValueError as exc:
                handle(_line_error(f"not a BEIR query record: {exc}", source, i), on_error, report)
    return out


def read_beir_qrels(path: PathLike) -> dict[str, dict[str, int]]:
    """``{query_id: {doc_id: relevance}}`` from a BEIR ``qrels/*.tsv`` (header row).

    Only a regular UTF-8 file is read; anything else, or a bad row, raises
    :class:`~medrag.errors.IngestError` naming the file and row.
    """
    out: dict[str, dict[str, int]] = {}
    source = str(path)
    try:
        fh = open_regular(path)
    except OSError as exc:
        raise IngestError(f"cannot read file: {exc}", source=source) from exc
    with io.TextIOWrapper(fh, encoding="utf-8", newline="") as f:
        try:
            rows = csv.reader(f, delimiter="\t")
            header = next(rows, None)
            if header is None or [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
                raise IngestError("expected a header 'query-id corpus-id score'", source=source)
            for i, row in enumerate(rows, start=1):
                if not row:
                    continue
                try:
                    out.setdefault(row[0], {})[row[1]] = int(row[2])
                except (IndexError, ValueError) as exc:
                    raise IngestError(f"bad qrels row: {row[:3]!r}", source=source, position=i) from exc
        except UnicodeDecodeError as exc:
            raise IngestError(f"not UTF-8 text: {exc.reason}", source=source) from exc
        except csv.Error as exc:
            raise IngestError(f"not a qrels file: {exc}", source=source) from exc
    return out
