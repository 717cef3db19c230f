"""The pull parser over one file: records in file order, with memory that follows the
record being read, never the file.

The decompressed XML is fed to an :class:`lxml.etree.XMLPullParser` 64 KiB at a time;
each ``<PubmedArticle>``, ``<PubmedBookArticle>`` and ``<DeleteCitation>`` is cleared
(with its already-processed siblings) as soon as it closes, and after every read
whatever finished element is not a record (unknown elements between records, however
many) is deleted too (:mod:`.limits`). A record over
:class:`~medrag.ingest.RecordLimits` (bytes or elements) is an ``IngestError`` for that
record, and its content is discarded as it arrives. Only regular files are read (a FIFO
or ``/dev/zero`` is refused, not waited on)."""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from lxml import etree

from ...errors import IngestError
from ...types import Deletion, Document, SourceFile
from .._common import IngestReport, OnError, RecordLimits, handle, open_regular, sha256_handle
from .limits import _limit_breach, _prune
from .records import _deletions, _parse_article, _parse_book, _record_pmid
from .safety import _ENTITY_REFUSAL, _check_head, _decompressed

# the package's name, as before the split: warnings keep their logger
logger = logging.getLogger(__package__)

_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")
_ROOT_TAGS = ("PubmedArticleSet", "PubmedArticle", "PubmedBookArticle")
#: Decompressed bytes fed to the parser at a time.
_CHUNK = 64 * 1024
#: Elements that produce parser events: the records, and the root (to find the tree).
_EVENT_TAGS = _RECORD_TAGS + ("PubmedArticleSet",)
#: A PubMed file opens its root within a few KB; past this without one, it is not PubMed.
_NO_ROOT_BYTES = 1 << 20


def _iter_file(
    path: Path, on_error: OnError, report: IngestReport, limits: RecordLimits
) -> Iterator[Document | Deletion]:
    source = str(path)
    try:
        f = open_regular(path)
    except OSError as exc:
        handle(IngestError(f"cannot read file: {exc}", source=source), on_error, report)
        return
    with f:
        try:
            src = SourceFile(path=source, sha256=sha256_handle(f))
            _check_head(f, source)
        except OSError as exc:
            handle(IngestError(f"cannot read file: {exc}", source=source), on_error, report)
            return
        except IngestError as err:
            handle(err, on_error, report)
            return
        yield from _iter_records(_decompressed(f), source, src, on_error, report, limits)


def _iter_records(
    stream: IO[bytes],
    source: str,
    src: SourceFile,
    on_error: OnError,
    report: IngestReport,
    limits: RecordLimits,
) -> Iterator[Document | Deletion]:
    parser = etree.XMLPullParser(
        events=("start", "end"),
        tag=_EVENT_TAGS,
        load_dtd=False,
        no_network=True,
        resolve_entities=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    position = 0
    last_pmid: str | None = None
    root: etree._Element | None = None
    # The record being read: its element, the bytes and start tags fed since it
    # opened (counted per read, so to within one read), and whether it broke a limit.
    current: etree._Element | None = None
    rec_bytes = rec_elements = 0
    refused = False
    fed = 0
    done = False
    # read1 on a gzip stream decompresses what it has; a truncated file then loses
    # nothing before its last incomplete block (read() would drop the whole buffer).
    read = stream.read1 if isinstance(stream, gzip.GzipFile) else stream.read
    closed_root: etree._Element | None = None
    try:
        while not done:
            syntax_error: etree.XMLSyntaxError | None = None
            chunk = read(_CHUNK)
            n_elements = chunk.count(b"<") - chunk.count(b"</")
            fed += len(chunk)
            rec_bytes += len(chunk)
            rec_elements += n_elements
            try:
                if chunk:
                    parser.feed(chunk)
                else:
                    done = True
                    closed_root = parser.close()
            except etree.XMLSyntaxError as exc:
                # The events before the error are still delivered: read them first.
                syntax_error = exc
            for event, el in parser.read_events():
                if root is None:
                    root = el.getroottree().getroot()
                    # Second line of defence behind _check_head, which a DOCTYPE longer
                    # than its byte window (or a fake root tag in a comment) slips past:
                    # the parsed internal subset itself must declare no entity.
                    dtd = el.getroottree().docinfo.internalDTD
                    if dtd is not None and next(dtd.iterentities(), None) is not None:
                        handle(IngestError(_ENTITY_REFUSAL, source=source), on_error, report)
                        return
                tag = el.tag
                if tag not in _RECORD_TAGS:
                    continue
                if event == "start":
                    if current is None:
                        current, rec_bytes, rec_elements, refused = el, len(chunk), n_elements, False
                    continue
                skip = False
                if el is current:
                    why = None if refused else _limit_breach(limits, rec_bytes, rec_elements)
                    if why is not None:
                        handle(
                            IngestError(why, source=source, record_id=_record_pmid(el), position=position),
                            on_error,
                            report,
                        )
                    skip = refused or why is not None
                    current = None
                if skip:
                    pass
                elif tag == "DeleteCitation":
                    yield from _deletions(el, src, position, on_error, report)
                else:
                    notes: list[str] = []
                    try:
                        if tag == "PubmedArticle":
                            doc = _parse_article(el, src, notes)
                        else:
                            doc = _parse_book(el, src, notes)
                    except (ValueError, TypeError, AttributeError) as exc:
                        handle(
                            IngestError(
                                str(exc), source=source, record_id=_record_pmid(el), position=position
                            ),
                            on_error,
                            report,
                        )
                    else:
                        for note in notes:
                            logger.warning("%s, record %s: %s", source, doc.pmid, note)
                        last_pmid = doc.pmid
                        yield doc
                if tag != "DeleteCitation":
                    position += 1
                el.clear(keep_tail=False)
                parent = el.getparent()
                if parent is not None:
                    while el.getprevious() is not None:
                        del parent[0]
            if syntax_error is not None:
                raise syntax_error
            if current is not None and not refused:
                why = _limit_breach(limits, rec_bytes, rec_elements)
                if why is not None:
                    # Refused now, while it is still being read: its content is
                    # discarded as it arrives, and the rest of the file goes on.
                    refused = True
                    handle(
                        IngestError(why, source=source, record_id=_record_pmid(current), position=position),
                        on_error,
                        report,
                    )
            if root is not None:
                _prune(root, None if refused else current)
            elif fed > _NO_ROOT_BYTES:
                handle(
                    IngestError(
                        f"not PubMed XML: no <PubmedArticleSet> or record element in its first "
                        f"{_NO_ROOT_BYTES:,} bytes",
                        source=source,
                    ),
                    on_error,
                    report,
                )
                return
        top = root if root is not None else closed_root
        if top is None or top.tag not in _ROOT_TAGS:
            tag = "nothing" if top is None else f"<{top.tag}>"
            handle(
                IngestError(f"not PubMed XML: the root element is {tag}", source=source),
                on_error,
                report,
            )
    except etree.XMLSyntaxError as exc:
        after = f" after PMID {last_pmid}" if last_pmid else ""
        handle(
            IngestError(f"malformed XML{after}: {exc}", source=source, position=position),
            on_error,
            report,
        )
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        after = f" after PMID {last_pmid}" if last_pmid else ""
        handle(
            IngestError(
                f"truncated or corrupt compressed file{after}: {exc}",
                source=source,
                position=position,
            ),
            on_error,
            report,
        )
