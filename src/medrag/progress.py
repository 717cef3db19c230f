"""Progress and cost of long work: reading, chunking, BM25 and embedding.

One progress display of medrag's own for every stage of a build (read → chunk → BM25 →
embed), with counts, rate and ETA. The library is silent unless asked; a caller asks
with ``progress=`` (or ``show_progress=True``, the same as ``progress="auto"``)::

    Index.build(iter_pubmed(path), IndexConfig(), progress="auto")

``progress`` is one of:

- ``None`` / ``False`` / ``"off"``: nothing (the library default).
- ``"auto"`` / ``True``: a tqdm bar on a terminal (``tqdm.auto`` in a notebook), else
  periodic log lines (what the ``medrag`` command uses).
- ``"tqdm"``: always a tqdm bar (on ``sys.stderr``); ``"log"``: always log lines.
- a :class:`Progress` instance: :class:`TqdmProgress`, :class:`LogProgress`,
  :class:`CallbackProgress` (your function gets a :class:`ProgressEvent` per update:
  plug in any UI), or a subclass.

Reading: :func:`track` wraps any ingest iterator (count and rate);
:func:`read_files` reads a folder or a list of files file by file (total and ETA in
files, documents counted beside).

Log lines go to the ``medrag.progress`` logger at INFO, at most one per
``interval_s`` seconds per stage plus one when a stage ends, e.g.
``embed: 1,536/21,419 chunks (7.2%), 14.8 chunks/s, elapsed 1m44s, ETA 22m23s``.
Before embedding, the same logger says how many chunks will be embedded and, once the
first ``probe`` chunks are done, the expected time at the rate measured on them.

Rates are items per second of wall-clock time; ETA = remaining items / mean rate so
far (the estimate tqdm itself shows, with smoothing off).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, Union

import numpy as np

from .errors import ConfigError

__all__ = [
    "Progress",
    "ProgressEvent",
    "NullProgress",
    "TqdmProgress",
    "LogProgress",
    "CallbackProgress",
    "ProgressSpec",
    "resolve_progress",
    "track",
    "read_files",
    "embed_with_progress",
    "tokenize_with_progress",
    "format_duration",
    "in_notebook",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def format_duration(seconds: float | None) -> str:
    """``"12s"``, ``"3m05s"``, ``"1h02m"``; ``"?"`` for an unknown duration."""
    if seconds is None or not np.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython's ZMQ shell)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover - a broken IPython install
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One update of a stage.

    Attributes:
        stage: ``"read"``, ``"chunk"``, ``"bm25"``, ``"embed"`` (or a caller's name).
        done: items done so far; ``total``: items in all, or None when unknown.
        unit: what an item is (``"doc"``, ``"chunk"``).
        elapsed_s: seconds since the stage began; ``rate``: items per second so far
            (None before any time has passed); ``eta_s``: seconds left at that rate,
            or None when the total is unknown.
        finished: True for the stage's last event.
    """

    stage: str
    done: int
    total: int | None
    unit: str
    elapsed_s: float
    rate: float | None
    eta_s: float | None
    finished: bool = False

    def line(self) -> str:
        """The event as one log line."""
        units = self.unit if self.unit.endswith("s") else self.unit + "s"
        count = f"{self.done:,}/{self.total:,}" if self.total is not None else f"{self.done:,}"
        pct = f" ({100.0 * self.done / self.total:.1f}%)" if self.total else ""
        rate = f", {self.rate:,.1f} {units}/s" if self.rate else ""
        tail = f", elapsed {format_duration(self.elapsed_s)}"
        if self.finished:
            tail += ", done"
        elif self.eta_s is not None:
            tail += f", ETA {format_duration(self.eta_s)}"
        return f"{self.stage}: {count} {units}{pct}{rate}{tail}"


class _Stage:
    """A running stage: count items with :meth:`update`; close (or leave the ``with``)
    when done."""

    def __init__(self, owner: "Progress", name: str, total: int | None, unit: str) -> None:
        self._owner, self.name, self.total, self.unit = owner, name, total, unit
        self.done = 0
        self._t0 = time.monotonic()
        self._closed = False

    def event(self, finished: bool = False) -> ProgressEvent:
        elapsed = time.monotonic() - self._t0
        rate = self.done / elapsed if elapsed > 0 and self.done else None
        eta = (max(self.total - self.done, 0) / rate) if (rate and self.total is not None) else None
        return ProgressEvent(self.name, self.done, self.total, self.unit, elapsed, rate, eta, finished)

    def update(self, n: int = 1) -> None:
        self.done += n
        self._owner._on_update(self, n)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner._on_close(self)

    def __enter__(self) -> "_Stage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress:
    """Base class: turns stage updates into a display. Subclasses override
    ``_on_start`` / ``_on_update`` / ``_on_close``; the base shows nothing."""

    enabled = True

    def stage(self, name: str, total: int | None = None, unit: str = "item") -> _Stage:
        """Begin a stage of ``total`` items (None: unknown)."""
        st = _Stage(self, name, total, unit)
        self._on_start(st)
        return st

    def _on_start(self, stage: _Stage) -> None:
        pass

    def _on_update(self, stage: _Stage, n: int) -> None:
        pass

    def _on_close(self, stage: _Stage) -> None:
        pass


class NullProgress(Progress):
    """Shows nothing (the library's default)."""

    enabled = False


class CallbackProgress(Progress):
    """Calls ``fn(event)`` with a :class:`ProgressEvent` at the start, on every update
    and at the end of each stage."""

    def __init__(self, fn: Callable[[ProgressEvent], None]) -> None:
        self._fn = fn

    def _on_start(self, stage: _Stage) -> None:
        self._fn(stage.event())

    def _on_update(self, stage: _Stage, n: int) -> None:
        self._fn(stage.event())

    def _on_close(self, stage: _Stage) -> None:
        self._fn(stage.event(finished=True))


class LogProgress(Progress):
    """Periodic log lines: at most one per ``interval_s`` seconds per stage, plus one
    when the stage ends; to ``log`` (default the ``medrag.progress`` logger) at
    ``level`` (default INFO)."""

    def __init__(self, interval_s: float = 10.0, *, log: logging.Logger | None = None, level: int = logging.INFO) -> None:
        if not interval_s >= 0:
            raise ConfigError(f"interval_s must be >= 0 seconds, not {interval_s!r}")
        self.interval_s = float(interval_s)
        self._log = log or logger
        self._level = level
        self._last: dict[int, float] = {}

    def _on_start(self, stage: _Stage) -> None:
        self._last[id(stage)] = time.monotonic()

    def _on_update(self, stage: _Stage, n: int) -> None:
        now = time.monotonic()
        if now - self._last.get(id(stage), 0.0) >= self.interval_s:
            self._last[id(stage)] = now
            self._log.log(self._level, "%s", stage.event().line())

    def _on_close(self, stage: _Stage) -> None:
        self._last.pop(id(stage), None)
        self._log.log(self._level, "%s", stage.event(finished=True).line())


class TqdmProgress(Progress):
    """A tqdm bar per stage (``tqdm.auto`` in a notebook, plain tqdm on ``file``,
    default ``sys.stderr``, elsewhere)."""

    def __init__(self, *, file: Any = None, leave: bool = True, mininterval: float = 0.5) -> None:
        self._file, self._leave, self._mininterval = file, leave, mininterval
        self._bars: dict[int, Any] = {}

    def _cls(self) -> Any:
        if self._file is None and in_notebook():
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        return tqdm

    def _on_start(self, stage: _Stage) -> None:
        units = stage.unit if stage.unit.endswith("s") else stage.unit + "s"
        self._bars[id(stage)] = self._cls()(
            total=stage.total, desc=stage.name, unit=f" {units}", file=self._file or sys.stderr,
            leave=self._leave, mininterval=self._mininterval, smoothing=0, dynamic_ncols=True,
        )

    def _on_update(self, stage: _Stage, n: int) -> None:
        bar = self._bars.get(id(stage))
        if bar is not None:
            bar.update(n)

    def _on_close(self, stage: _Stage) -> None:
        bar = self._bars.pop(id(stage), None)
        if bar is not None:
            bar.close()


ProgressSpec = Union[None, bool, str, Progress]


def resolve_progress(progress: ProgressSpec = None, *, stream: Any = None) -> Progress:
    """The :class:`Progress` a ``progress=`` argument names (see the module docstring).
    ``"auto"`` picks a tqdm bar when ``stream`` (default ``sys.stderr``) is a terminal
    or in a notebook, else :class:`LogProgress`."""
    if isinstance(progress, Progress):
        return progress
    if progress is None or progress is False or progress == "off":
        return NullProgress()
    if progress is True or progress == "auto":
        s = stream if stream is not None else sys.stderr
        tty = bool(getattr(s, "isatty", lambda: False)())
        return TqdmProgress() if (tty or in_notebook()) else LogProgress()
    if progress == "tqdm":
        return TqdmProgress()
    if progress == "log":
        return LogProgress()
    raise ConfigError(
        f"progress must be None, True/False, 'auto', 'tqdm', 'log', 'off' or a medrag.progress.Progress, not {progress!r}"
    )


def track(
    items: Iterable[T], name: str, *, progress: ProgressSpec, total: int | None = None, unit: str = "item"
) -> Iterator[T]:
    """Yield ``items`` unchanged, counting them in a stage called ``name``. ``total``
    defaults to ``len(items)`` when it has one. E.g. progress while reading a corpus:
    ``docs = list(track(iter_pubmed(path), "read", progress="auto", unit="doc"))``."""
    p = resolve_progress(progress)
    if not p.enabled:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with p.stage(name, total, unit) as st:
        for item in items:
            yield item
            st.update(1)


def read_files(
    paths: Any, reader: Callable[..., Iterable[T]], *, progress: ProgressSpec, suffixes: tuple[str, ...] = (),
    **reader_kwargs: Any,
) -> Iterator[T]:
    """Read many files with an ingestor, counted file by file (so a folder of PubMed
    baseline files or guideline PDFs gets a total and an ETA)::

        docs = list(read_files("corpora/baseline/", iter_pubmed, progress="auto",
                               suffixes=(".xml.gz",), on_error="skip", report=report))

    ``paths`` is expanded as the ingestors expand it (files, folders, globs; see
    :func:`medrag.ingest._common.expand_paths`); ``reader(path, **reader_kwargs)`` is
    called on each file in turn and what it yields is yielded unchanged. The stage is
    ``read`` in files; the documents are counted in a ``docs`` stage beside it."""
    from .ingest._common import expand_paths

    files = list(expand_paths(paths, suffixes))
    p = resolve_progress(progress)
    if not p.enabled:
        for f in files:
            yield from reader(f, **reader_kwargs)
        return
    with p.stage("read", len(files), "file") as st, p.stage("docs", None, "doc") as docs:
        for f in files:
            for item in reader(f, **reader_kwargs):
                yield item
                docs.update(1)
            st.update(1)


def tokenize_with_progress(analyzer: Any, texts: Sequence[str], progress: Progress, *, step: int = 2048) -> list:
    """``analyzer.tokenize_many(texts)`` in slices of ``step`` texts, counted as the
    ``bm25`` stage (the same token lists as one call)."""
    if not progress.enabled or len(texts) <= step:
        with progress.stage("bm25", len(texts), "chunk") as st:
            out = analyzer.tokenize_many(list(texts))
            st.update(len(texts))
        return out
    out: list = []
    with progress.stage("bm25", len(texts), "chunk") as st:
        for i in range(0, len(texts), step):
            part = analyzer.tokenize_many(list(texts[i : i + step]))
            out.extend(part)
            st.update(len(part))
    return out


def embed_with_progress(
    encoder: Any, texts: Sequence[str], progress: Progress, *, probe: int = 64, step: int = 512
) -> np.ndarray:
    """Embed ``texts`` with ``encoder.encode_documents``, counted as the ``embed``
    stage: the first ``probe`` texts alone (to measure the rate and log the expected
    time for all), then slices of ``step`` texts. With progress off, one call. The
    encoder's own progress bar stays off: this is the one display."""
    n = len(texts)
    logger.info("embedding %d chunk(s)", n)
    if not progress.enabled or n <= probe:
        with progress.stage("embed", n, "chunk") as st:
            vecs = encoder.encode_documents(list(texts), show_progress=False)
            st.update(n)
        return vecs
    parts = []
    with progress.stage("embed", n, "chunk") as st:
        t0 = time.monotonic()
        parts.append(encoder.encode_documents(list(texts[:probe]), show_progress=False))
        dt = time.monotonic() - t0
        st.update(probe)
        if dt > 0:
            rate = probe / dt
            logger.info(
                "embedding %d chunk(s): about %s at %.1f chunks/s (measured on the first %d)",
                n, format_duration((n - probe) / rate + dt), rate, probe,
            )
        for i in range(probe, n, step):
            part = encoder.encode_documents(list(texts[i : i + step]), show_progress=False)
            parts.append(part)
            st.update(len(part))
    return np.concatenate(parts, axis=0)
