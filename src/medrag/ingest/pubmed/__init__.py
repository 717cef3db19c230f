"""Stream PubMed XML (baseline, update and E-utilities ``efetch`` files) into Documents.

Memory follows the record being read, never the file (:mod:`.parser`, :mod:`.limits`);
entity declarations are refused before parsing and the parser resolves no entity, DTD
or network resource (:mod:`.safety`); each record becomes a Document
(:mod:`.records`, its fields in :mod:`.fields`, its text in :mod:`.text` and
:mod:`.sections`). PMIDs are positive integers of at most 9 digits; a record with
anything else is an ``IngestError`` for that record. A date field out of range is
dropped from the record (``None``) with a logged warning naming the file, the PMID and
the value: the record is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from ...errors import ConfigError
from ...types import Deletion, Document
from .._common import IngestReport, OnError, PathLike, RecordLimits, check_on_error, expand_paths
from .fields import checked_date  # noqa: F401  (medline.py reads dates with it)
from .parser import _iter_file
from .sections import SECTION_SEPARATOR, _TextBuilder  # noqa: F401  (_TextBuilder: medline.py)

__all__ = ["iter_pubmed", "iter_pubmed_events", "SECTION_SEPARATOR"]

logger = logging.getLogger(__name__)


def iter_pubmed_events(
    paths: PathLike | Iterable[PathLike],
    *,
    on_error: OnError = "raise",
    report: IngestReport | None = None,
    limits: RecordLimits | None = None,
) -> Iterator[Document | Deletion]:
    """Stream :class:`Document` and :class:`Deletion` events, in file order.

    Args:
        paths: a ``.xml`` / ``.xml.gz`` file, a directory of them, or several.
            Compression is detected from the file's first bytes, not its name.
        on_error: ``"raise"`` raises :class:`~medrag.errors.IngestError` naming the file
            and the record (PMID or 0-based position); ``"skip"`` skips the record (or
            the unreadable rest of a file), counts it in ``report.skipped`` and goes on.
        report: an :class:`IngestReport` to fill (files, documents, skipped, deletions).
        limits: bounds on one record (:class:`~medrag.ingest.RecordLimits`; the
            defaults are far above any real record). A record over them is an
            ``IngestError`` for that record, raised or skipped per ``on_error``.

    Paths are expanded by the rules of :func:`medrag.ingest._common.expand_paths`
    (directories walked without entering symlinked ones, glob patterns, FIFOs and
    devices refused).

    A ``<DeleteCitation>`` yields one :class:`Deletion` per withdrawn PMID, so that an
    index built from update files can apply them in order.
    """
    check_on_error(on_error)
    report = report if report is not None else IngestReport()
    limits = limits if limits is not None else RecordLimits()
    if not isinstance(limits, RecordLimits):
        raise ConfigError(f"limits must be a RecordLimits, not {type(limits).__name__}")
    for path in expand_paths(paths, suffixes=(".xml", ".xml.gz", ".gz"), on_error=on_error, report=report):
        report.files += 1
        for item in _iter_file(path, on_error, report, limits):
            if isinstance(item, Document):
                report.documents += 1
            else:
                report.deletions.append(item)
            yield item


def iter_pubmed(
    paths: PathLike | Iterable[PathLike],
    *,
    on_error: OnError = "raise",
    report: IngestReport | None = None,
    limits: RecordLimits | None = None,
) -> Iterator[Document]:
    """Stream :class:`Document` objects from PubMed XML files (see :func:`iter_pubmed_events`).

    Deletions (``<DeleteCitation>``) are not yielded: they are collected in
    ``report.deletions``; pass a ``report`` to act on them, or use
    :func:`iter_pubmed_events`. Without a report they are logged as a warning, never
    dropped silently.
    """
    own = report is None
    report = report if report is not None else IngestReport()
    n_del = 0
    for item in iter_pubmed_events(paths, on_error=on_error, report=report, limits=limits):
        if isinstance(item, Document):
            yield item
        else:
            n_del += 1
    if own and n_del:
        logger.warning(
            "%d PMID(s) were withdrawn by <DeleteCitation>; pass report= to iter_pubmed "
            "or use iter_pubmed_events to apply them",
            n_del,
        )
