"""Helpers shared by the ingestors: paths, hashing, error policy, the ingest report."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union

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


def expand_paths(
    paths: PathLike | Iterable[PathLike], suffixes: tuple[str, ...] = ()
) -> list[Path]:
    """One path, or many: each a file or a directory.

    A directory contributes its files (recursively, sorted) whose names end with one
    of ``suffixes`` (case-insensitive; all files when ``suffixes`` is empty). A file
    named explicitly is always taken, whatever its name.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    low = tuple(s.lower() for s in suffixes)
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(
                sorted(
                    q
                    for q in path.rglob("*")
                    if q.is_file() and not q.name.startswith(".") and (not low or q.name.lower().endswith(low))
                )
            )
        else:
            out.append(path)
    return out


def handle(err: IngestError, on_error: OnError, report: IngestReport) -> None:
    """Raise ``err`` or record it as skipped, as the caller chose."""
    if on_error == "raise":
        raise err
    logger.warning("skipped: %s", err)
    report.skipped.append(Skipped.from_error(err))

