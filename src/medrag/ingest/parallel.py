"""Read many input files in a pool of processes, one task per file, in input order.

:func:`iter_parallel` reads PubMed XML (``.xml`` / ``.xml.gz``), MEDLINE text, guideline
PDFs or BEIR corpora with the serial readers of :mod:`medrag.ingest`, each file in a
worker process, and yields the same :class:`~medrag.types.Document` and
:class:`~medrag.types.Deletion` events the serial reader would, in the same order:
files in input order, records in file order. The error policy is the serial one:
``on_error="skip"`` records every skipped record in ``report.skipped`` (same entries,
same order, same counts); ``on_error="raise"`` yields everything the serial reader
would have yielded before the bad record, then raises the same
:class:`~medrag.errors.IngestError` (same message, file, record and position).

How it works, and what it costs:

- One task per file (the PubMed baseline is about 1,300 files of 30,000 records): a
  worker reads its file and sends the events, 500 at a time as they are read, through
  a queue, as compact rows of plain values (:func:`medrag._record.to_row`: field
  values in order, no keys; no class instances cross the process boundary); the
  parent rebuilds them with :func:`~medrag._record.from_row` (the constructors run, so
  every record's checks hold) while the workers go on reading, instead of waiting
  for whole files. That rebuild is the parent's cost and caps the speed-up: with
  dicts (``to_dict`` / ``from_dict``, the earlier form) it was about 0.3 CPU ms per
  PubMed article, with rows about 0.12 (the serial read: 0.6-0.9); figures in the
  README (``benchmarks/bench_ingest.py --workers 1,2``).
- An iteration abandoned early (the consumer stops) tells the running tasks to stop
  at their next batch; the pool is shut down before the generator returns.
- At most ``2 * workers`` files are in flight or waiting to be yielded, so memory
  follows ``workers`` files, not the corpus. A file much larger than the others
  bounds the speed-up (the run takes at least as long as its largest file).
- Workers are started with the ``spawn`` method by default (no fork of a parent that
  may hold threads, e.g. torch's), which costs about a second per worker at start.
- ``workers <= 1`` reads in the calling process, with no pool: exactly the serial
  readers.

Progress (``progress=``, see :mod:`medrag.progress`): a ``read`` stage counted in
files with a total and an ETA, and a ``docs`` stage beside it, as
:func:`medrag.progress.read_files`.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import queue as queue_module
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict
from typing import Any, Union

from .._record import from_row, to_row
from ..errors import ConfigError, IngestError
from ..types import Deletion, Document
from ._common import IngestReport, OnError, PathLike, RecordLimits, Skipped, check_on_error, expand_paths, handle

logger = logging.getLogger(__name__)

__all__ = ["READERS", "SUFFIXES", "iter_parallel", "default_workers"]

#: Format name -> the serial reader, as ``"module:function"`` (importable in a worker).
#: A reader is called as ``reader(path, on_error=..., report=...)`` (plus ``limits=``
#: for ``"pubmed"``) and yields Documents (and, for PubMed, Deletions).
READERS: Mapping[str, str] = {
    "pubmed": "medrag.ingest.pubmed:iter_pubmed_events",
    "medline": "medrag.ingest.medline:iter_medline",
    "pdf": "medrag.ingest.pdf:iter_guideline_pdf",
    "beir": "medrag.ingest.beir:iter_beir_corpus",
}

#: The file names each serial reader takes from a folder (its ``expand_paths`` suffixes).
SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "pubmed": (".xml", ".xml.gz", ".gz"),
    "medline": (".nbib", ".txt", ".medline"),
    "pdf": (".pdf",),
}


def default_workers() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity`` where available)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _resolve(spec: str) -> Any:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ConfigError(f"a reader must be 'module:function', not {spec!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import the reader {spec!r}: {exc}") from exc


def _limits_dict(limits: RecordLimits | None) -> dict[str, int] | None:
    return None if limits is None else asdict(limits)


def _call_reader(
    spec: str, path: str, fmt: str, on_error: str, report: IngestReport, limits: dict[str, int] | None
) -> Iterator[Document | Deletion]:
    reader = _resolve(spec)
    kwargs: dict[str, Any] = {"on_error": on_error, "report": report}
    if fmt == "pubmed" and limits is not None:
        kwargs["limits"] = RecordLimits(**limits)
    return reader(path, **kwargs)


#: Events a worker sends per message: the parent rebuilds a file's first records while
#: the worker still reads the rest.
_BATCH = 500

#: In a worker process: the queue its tasks send their messages to, and the event that
#: tells them the iteration was abandoned (set by _init_worker).
_queue: Any = None
_stop: Any = None


def _init_worker(queue: Any, stop: Any) -> None:
    global _queue, _stop
    # A worker never waits at exit for unread messages to be flushed: after an abandoned
    # iteration nobody reads them, and the pool's shutdown must not hang on that.
    queue.cancel_join_thread()
    _queue, _stop = queue, stop


def _read_task(
    task: int, spec: str, path: str, fmt: str, on_error: str, limits: dict[str, int] | None
) -> None:
    """Worker: read one file with its serial reader and send ``(task, message)`` to the
    queue: lists of events as rows, as they are read; then the file's summary (its
    report, the IngestError that stopped it with ``on_error="raise"``, CPU seconds), or
    None before any other exception is raised (the parent then raises it from the
    task's future)."""
    c0 = time.process_time()
    report = IngestReport()
    batch: list[tuple[str, tuple[Any, ...]]] = []
    error = None
    finished = False  # False when any other exception propagates: the parent is told first
    try:
        for ev in _call_reader(spec, path, fmt, on_error, report, limits):
            batch.append(("d", to_row(ev)) if isinstance(ev, Document) else ("x", to_row(ev)))
            if len(batch) >= _BATCH:
                if _stop.is_set():  # the parent stopped iterating: nobody reads the rest
                    finished = True
                    return
                _queue.put((task, batch))
                batch = []
        finished = True
    except IngestError as err:
        error = {"reason": err.reason, "source": err.source, "record_id": err.record_id, "position": err.position}
        finished = True
    finally:
        if not finished:
            _queue.put((task, None))
    if batch:
        _queue.put((task, batch))
    _queue.put((task, {
        "path": path,
        "format": fmt,
        "files": report.files,
        "skipped": [asdict(s) for s in report.skipped],
        "error": error,
        "cpu_s": time.process_time() - c0,
    }))


#: One entry of the work list: a file to read, or a path refused while expanding the
#: inputs (a FIFO, a device), kept at its place so that skip and raise happen where a
#: serial read would have them.
_Entry = Union[tuple[str, str], IngestError]


def _tasks(
    inputs: Iterable[tuple[PathLike, str]] | PathLike | Iterable[PathLike],
    format: str | None,
) -> list[_Entry]:
    """``(path, format)`` per file, expanded as the serial reader of each format would,
    with the refusals of that expansion in their place."""
    if format is not None:
        if format not in SUFFIXES and format != "beir":
            raise ConfigError(f"format must be one of {sorted(READERS)}, not {format!r}")
        if format == "beir":
            paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)  # type: ignore[arg-type]
            return [(os.fspath(p), "beir") for p in paths]  # type: ignore[arg-type]
        scratch = IngestReport()  # expand_paths records a refusal before it yields the next path
        out: list[_Entry] = []
        taken = 0

        def refusals() -> None:
            nonlocal taken
            for sk in scratch.skipped[taken:]:
                out.append(IngestError(sk.reason, source=sk.source, record_id=sk.record_id, position=sk.position))
            taken = len(scratch.skipped)

        for p in expand_paths(inputs, SUFFIXES[format], on_error="skip", report=scratch):  # type: ignore[arg-type]
            refusals()
            out.append((os.fspath(p), format))
        refusals()
        return out
    pairs: list[_Entry] = []
    for item in inputs:  # type: ignore[union-attr]
        if not (isinstance(item, tuple) and len(item) == 2):
            raise ConfigError("without format=, inputs must be (path, format) pairs")
        path, fmt = item
        pairs.append((os.fspath(path), str(fmt)))
    return pairs


def _messages(task: int, future: Future, queue: Any, inbox: dict[int, deque]) -> Iterator[Any]:
    """The messages of ``task`` in the order its worker sent them, up to and including
    its summary; messages of other tasks read meanwhile wait in ``inbox``. A worker that
    died (or raised) surfaces as its future's exception."""
    while True:
        box = inbox.get(task)
        if box:
            msg = box.popleft()
        else:
            try:
                t, m = queue.get(timeout=0.2)
            except queue_module.Empty:
                if future.done() and future.exception() is not None:
                    future.result()  # raises the worker's exception (or BrokenProcessPool)
                continue
            inbox.setdefault(t, deque()).append(m)
            continue
        if msg is None:
            future.result()  # the worker raised: re-raise it here
            raise RuntimeError(f"a worker failed reading task {task}")  # pragma: no cover
        if isinstance(msg, dict):
            inbox.pop(task, None)
            yield msg
            return
        yield msg


def iter_parallel(
    inputs: Iterable[tuple[PathLike, str]] | PathLike | Iterable[PathLike],
    format: str | None = None,
    *,
    workers: int | None = None,
    on_error: OnError = "raise",
    report: IngestReport | None = None,
    limits: RecordLimits | None = None,
    progress: Any = None,
    readers: Mapping[str, str] | None = None,
    start_method: str = "spawn",
    on_file: Callable[[str, str, int, int], None] | None = None,
) -> Iterator[Document | Deletion]:
    """Documents (and PubMed Deletions) from many files, read in a process pool.

    Args:
        inputs: with ``format``: a file, folder or glob, or several, expanded exactly
            as that format's serial reader expands them; without: ``(path, format)``
            pairs, one file each (mixed formats), taken as given.
        format: ``"pubmed"``, ``"medline"``, ``"pdf"`` or ``"beir"``, or None (pairs).
        workers: processes (default: the CPUs this process may use). ``<= 1`` reads in
            this process with no pool.
        on_error / report / limits: as :func:`medrag.ingest.iter_pubmed_events`. The
            report gets the same files, documents, skipped records and deletions, in
            the same order, as a serial read.
        progress: ``None`` (silent), ``"auto"``, ``"log"``, ``"tqdm"`` or a
            :class:`medrag.progress.Progress`: files read (with a total) and documents.
        readers: ``{format: "module:function"}`` overriding or extending
            :data:`READERS` (the function must be importable in a worker and take
            ``(path, on_error=, report=)``).
        start_method: the :mod:`multiprocessing` start method of the workers.
        on_file: called as ``on_file(path, format, documents, skipped)`` once a file's
            events have all been yielded (its documents and skipped records counted).

    Yields:
        The serial readers' events, in input order.
    """
    from ..progress import resolve_progress

    check_on_error(on_error)
    report = report if report is not None else IngestReport()
    if limits is not None and not isinstance(limits, RecordLimits):
        raise ConfigError(f"limits must be a RecordLimits, not {type(limits).__name__}")
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise ConfigError(f"workers must be an int, not {workers!r}")
    table = dict(READERS)
    table.update(readers or {})
    tasks = _tasks(inputs, format)
    for entry in tasks:
        if isinstance(entry, tuple) and entry[1] not in table:
            raise ConfigError(f"no reader for format {entry[1]!r}; known: {sorted(table)}")
    n_files = sum(isinstance(e, tuple) for e in tasks)
    lim = _limits_dict(limits)
    prog = resolve_progress(progress)
    if not prog.enabled:
        yield from _run(tasks, table, workers, on_error, report, lim, start_method, None, None, on_file)
        return
    with prog.stage("read", n_files, "file") as files_st, prog.stage("docs", None, "doc") as docs_st:
        yield from _run(tasks, table, workers, on_error, report, lim, start_method, files_st, docs_st, on_file)


def _run(
    tasks: Sequence[_Entry],
    table: Mapping[str, str],
    workers: int,
    on_error: OnError,
    report: IngestReport,
    limits: dict[str, int] | None,
    start_method: str,
    files_st: Any,
    docs_st: Any,
    on_file: Callable[[str, str, int, int], None] | None,
) -> Iterator[Document | Deletion]:
    n_files = sum(isinstance(e, tuple) for e in tasks)
    if workers <= 1 or n_files <= 1:
        for entry in tasks:
            if isinstance(entry, IngestError):
                handle(entry, on_error, report)
                continue
            path, fmt = entry
            n_docs, n_skipped = report.documents, len(report.skipped)
            for ev in _call_reader(table[fmt], path, fmt, on_error, report, limits):
                if isinstance(ev, Document) and docs_st is not None:
                    docs_st.update(1)
                yield ev
            if files_st is not None:
                files_st.update(1)
            if on_file is not None:
                on_file(path, fmt, report.documents - n_docs, len(report.skipped) - n_skipped)
        return
    try:
        ctx = multiprocessing.get_context(start_method)
    except ValueError as exc:
        raise ConfigError(f"unknown start method {start_method!r}: {exc}") from exc
    n = min(workers, n_files)
    logger.info("reading %d file(s) with %d worker process(es)", n_files, n)
    queue, stop = ctx.Queue(), ctx.Event()
    pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker, initargs=(queue, stop))
    pending: deque[tuple[int, Future] | IngestError] = deque()
    inbox: dict[int, deque] = {}
    todo = iter(enumerate(tasks))
    try:
        def submit() -> bool:
            nxt = next(todo, None)
            if nxt is None:
                return False
            i, entry = nxt
            if isinstance(entry, IngestError):
                pending.append(entry)
            else:
                path, fmt = entry
                pending.append((i, pool.submit(_read_task, i, table[fmt], path, fmt, on_error, limits)))
            return True

        for _ in range(2 * n):
            if not submit():
                break
        while pending:
            head = pending.popleft()
            submit()
            if isinstance(head, IngestError):
                handle(head, on_error, report)  # a refused path, where the serial read has it
                continue
            n_docs, n_skipped = report.documents, len(report.skipped)
            for msg in _messages(*head, queue, inbox):
                if isinstance(msg, dict):
                    result = msg
                    break
                for kind, data in msg:
                    if kind == "d":
                        ev: Document | Deletion = from_row(Document, data)
                        report.documents += 1
                        if docs_st is not None:
                            docs_st.update(1)
                    else:
                        ev = from_row(Deletion, data)
                        report.deletions.append(ev)
                    yield ev
            report.files += result["files"]
            report.skipped.extend(Skipped(**s) for s in result["skipped"])
            if files_st is not None:
                files_st.update(1)
            if result["error"] is not None:
                raise IngestError(**result["error"])
            if on_file is not None:
                on_file(result["path"], result["format"], report.documents - n_docs, len(report.skipped) - n_skipped)
    finally:
        stop.set()  # running tasks stop at their next batch
        for f in pending:
            if isinstance(f, tuple):
                f[1].cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        queue.close()

