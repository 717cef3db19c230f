"""The exceptions medrag raises.

Every exception the library raises on purpose derives from :class:`MedragError`::

    MedragError
    ├── ConfigError (also ValueError)
    ├── MissingDependencyError (also ImportError; says which extra to install)
    ├── IngestError (.source, .record_id, .position: the file and the PMID or page)
    ├── IndexNotFoundError (also FileNotFoundError)
    ├── IndexFormatError ── IndexVersionError
    ├── IndexConflictError (another process is saving, or has saved, the same index)
    └── GenerationError (wraps a generator backend's error with ``raise ... from``)

Abstaining is not an error: an :class:`~medrag.types.Answer` with status
``"abstained"`` is a normal return value.
"""

from __future__ import annotations

__all__ = [
    "MedragError",
    "ConfigError",
    "MissingDependencyError",
    "IngestError",
    "IndexNotFoundError",
    "IndexFormatError",
    "IndexVersionError",
    "IndexConflictError",
    "GenerationError",
]


class MedragError(Exception):
    """Root of every exception medrag raises on purpose."""


class ConfigError(MedragError, ValueError):
    """A parameter or configuration value is invalid."""


class MissingDependencyError(MedragError, ImportError):
    """An optional dependency is not installed.

    The message names the pip extra that provides it, e.g. ``pip install 'medrag[dense]'``.
    """

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        self.package = package
        self.extra = extra
        why = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{package} is required{why}; install it with: pip install 'medrag[{extra}]'"
        )


class IngestError(MedragError):
    """A source file or one record in it could not be read.

    Attributes:
        source: the path (or URL) of the file.
        record_id: the record's identifier when known (a PMID, ``"page 12"``), else None.
        position: the 0-based position of the record in its file when known, else None.
        reason: the short human-readable cause, without the location.
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str,
        record_id: str | None = None,
        position: int | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.record_id = record_id
        self.position = position
        where = source
        if record_id is not None:
            where += f", record {record_id}"
        if position is not None:
            where += f" (position {position})"
        super().__init__(f"{where}: {reason}")


class IndexNotFoundError(MedragError, FileNotFoundError):
    """No index exists at the given directory."""


class IndexFormatError(MedragError):
    """An index directory is malformed, incomplete, tampered with or unsafe to load."""


class IndexVersionError(IndexFormatError):
    """An index directory was written in a format version this library does not know."""


class IndexConflictError(MedragError):
    """Another writer holds the index's write lock past the caller's timeout, or saved
    the index after this :class:`~medrag.Index` loaded it (saving would discard its
    changes: load the index again and reapply yours)."""


class GenerationError(MedragError):
    """A language-model generator backend failed."""
