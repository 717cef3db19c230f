"""Build a store from many PubMed files on one machine: one worker process per file.

Each worker parses its file (:func:`medrag.ingest.iter_pubmed`), analyzes every
article's title and text and writes the file's documents as one or more segments
straight into the store directory (a :class:`~medrag.store.writer.SegmentBuffer`, so a
worker's memory is bounded by ``segment_tokens``, not by its file). The parent only
receives each file's small segment records and report, and commits them as one
generation in input-file order: global rows are the articles in file order and every
score equals the single-process build's (BM25 statistics are global, whatever the
segment cuts). The Ray build (:mod:`medrag.store.distributed`) runs the same task body
on a cluster.

Unlike :func:`medrag.ingest.iter_parallel`, which sends every document back to the
parent, nothing per article crosses a process boundary here, so the parent's work does
not grow with the corpus and the build scales with the cores (PubMed's baseline is
~1,300 files; a file is the unit of work, so the speed-up is bounded by the largest
file's share).

A failure (a bad record with ``on_error="raise"``, a worker that dies) cancels the
files not yet started and abandons the generation: the store stays at its previous
generation, and the segments written meanwhile stay unreferenced until
:func:`~medrag.store.manifest.collect_garbage`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal, Union

from .._record import from_row, to_row
from ..errors import ConfigError, IngestError
from ..retrieve.analyzer import Analyzer
from ..retrieve.bm25 import BM25Params
from .writer import DEFAULT_SEGMENT_TOKENS, SegmentBuffer, StoreWriter

__all__ = ["build_pubmed", "index_file", "pubmed_text"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


def pubmed_text(doc: Any) -> str:
    """The text indexed for a PubMed document: its title, a newline, its text."""
    return doc.title + "\n" + doc.text


def index_file(
    path: str,
    root: str,
    generation: int,
    analyzer: dict[str, Any],
    params: dict[str, Any],
    segment_tokens: int,
    on_error: str,
) -> tuple[list[dict[str, Any]], Any]:
    """One PubMed file -> segments in ``root`` (uncommitted), and the file's
    :class:`~medrag.ingest.IngestReport` (skipped records, ``<DeleteCitation>`` PMIDs).
    The task body of both the process-pool and the Ray build."""
    from ..ingest import IngestReport, iter_pubmed

    an = Analyzer.from_dict(analyzer)
    bp = BM25Params.from_dict(params)
    buf = SegmentBuffer()
    out = []
    report = IngestReport()
    for doc in iter_pubmed(path, on_error=on_error, report=report):  # type: ignore[arg-type]
        buf.add(doc.id, an.tokenize(pubmed_text(doc)))
        if buf.n_tokens >= segment_tokens:
            out.append(buf.write(Path(root), f"seg-{generation:06d}-{secrets.token_hex(4)}", bp))
    if buf.n_docs:
        out.append(buf.write(Path(root), f"seg-{generation:06d}-{secrets.token_hex(4)}", bp))
    return out, report


def _pool_task(*args: Any) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any] | None, float]:
    """:func:`index_file` in a worker process: the report and an IngestError travel back
    as plain dicts; the worker's CPU seconds ride along (for benchmarks)."""
    c0 = time.process_time()
    try:
        recs, report = index_file(*args)
    except IngestError as err:
        error = {"reason": err.reason, "source": err.source, "record_id": err.record_id, "position": err.position}
        return [], {}, error, time.process_time() - c0
    rep = {
        "files": report.files,
        "documents": report.documents,
        "skipped": [asdict(s) for s in report.skipped],
        "deletions": [to_row(d) for d in report.deletions],
    }
    return recs, rep, None, time.process_time() - c0


def build_pubmed(
    paths: Iterable[PathLike],
    root: PathLike,
    *,
    workers: int | None = None,
    analyzer: Analyzer | None = None,
    params: BM25Params | None = None,
    segment_tokens: int = DEFAULT_SEGMENT_TOKENS,
    on_error: Literal["raise", "skip"] = "raise",
    report: Any = None,
    start_method: str = "spawn",
) -> int:
    """Index PubMed XML files into the store at ``root`` with a process per file
    (appending to an existing store); returns the committed generation.

    Args:
        paths: the PubMed XML files (``.xml`` or ``.xml.gz``), in the order their
            articles get rows.
        root: the store directory (created when absent).
        workers: processes (default: the CPUs this process may use, at most one per
            file); ``<= 1`` builds in this process.
        analyzer / params / segment_tokens: as :class:`~medrag.store.StoreWriter`.
        on_error: ``"raise"`` (the first bad record aborts the build, nothing is
            committed) or ``"skip"`` (counted in ``report``).
        report: an :class:`~medrag.ingest.IngestReport` that receives every file's
            counts, skipped records and ``<DeleteCitation>`` PMIDs, in input order
            (applying deletions is the caller's: ``StoreWriter.delete_rows``); without
            one they are logged as a warning.
        start_method: the :mod:`multiprocessing` start method of the workers.
    """
    from ..ingest import IngestReport, Skipped
    from ..types import Deletion

    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ConfigError("build_pubmed needs at least one file")
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise ConfigError(f"workers must be an int, not {workers!r}")
    an = analyzer if analyzer is not None else Analyzer()
    total = IngestReport()
    with StoreWriter(root, params=params, analyzer=an, segment_tokens=segment_tokens) as w:
        gen = w.generation + 1
        args = [(p, str(w.root.resolve()), gen, an.to_dict(), w.params.to_dict(), segment_tokens, on_error) for p in paths]
        n = min(workers, len(paths))
        if n <= 1:
            per_file = [_pool_task(*a) for a in args]
        else:
            try:
                ctx = multiprocessing.get_context(start_method)
            except ValueError as exc:
                raise ConfigError(f"unknown start method {start_method!r}: {exc}") from exc
            logger.info("building %d file(s) with %d worker process(es)", len(paths), n)
            with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
                futures = [pool.submit(_pool_task, *a) for a in args]
                per_file = []
                try:
                    for f in futures:  # in input order, whatever order they finished in
                        per_file.append(f.result())
                        if per_file[-1][2] is not None:
                            break
                finally:
                    for f in futures:
                        f.cancel()
        for recs, rep, error, _cpu in per_file:
            if error is not None:
                raise IngestError(**error)  # the writer abandons the generation
            total.files += rep["files"]
            total.documents += rep["documents"]
            total.skipped.extend(Skipped(**s) for s in rep["skipped"])
            total.deletions.extend(from_row(Deletion, d) for d in rep["deletions"])
            w.add_segments(recs)
    if report is not None:
        report.files += total.files
        report.documents += total.documents
        report.skipped.extend(total.skipped)
        report.deletions.extend(total.deletions)
    elif total.skipped or total.deletions:
        logger.warning(
            "%d record(s) skipped and %d PMID(s) withdrawn by <DeleteCitation> in the "
            "input; pass report= to build_pubmed to act on them", len(total.skipped), len(total.deletions),
        )  # fmt: skip
    logger.info("built %d file(s) into %s with %d process(es)", len(paths), root, max(1, min(workers, len(paths))))
    return gen
