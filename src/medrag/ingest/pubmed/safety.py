"""A file's bytes before parsing: decompression (detected from the first bytes, not the
name) and the refusal of entity declarations.

Security: the parser never loads a DTD, never touches the network and never resolves
entities other than XML's five predefined ones; a document type with an internal
subset that declares entities (an "entity-expansion bomb", an external entity pointing
at a local file) is refused here, before any record is read (and again by the parser,
see :mod:`.parser`)."""

from __future__ import annotations

import gzip
import re
import zlib
from typing import IO

from ...errors import IngestError

_ENTITY_DECL_RE = re.compile(rb"<!ENTITY", re.IGNORECASE)
_HEAD_BYTES = 64 * 1024
_ENTITY_REFUSAL = (
    "the document type declares entities (possible entity-expansion bomb or "
    "external entity); refused"
)


def _decompressed(f: IO[bytes]) -> IO[bytes]:
    """The file's XML bytes from its start: gunzipped when its first bytes say gzip."""
    f.seek(0)
    magic = f.read(2)
    f.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")
    return f


def _check_head(f: IO[bytes], source: str) -> None:
    """Refuse entity declarations (bombs, external entities) before parsing."""
    chunks: list[bytes] = []
    size = 0
    stream = _decompressed(f)
    try:
        while size < _HEAD_BYTES:
            block = stream.read(4096)
            if not block:
                break
            chunks.append(block)
            size += len(block)
    except (EOFError, OSError, zlib.error) as exc:
        # A truncated file: what was read so far is checked; the parser will
        # meet the same error later and report it with the record position.
        if not chunks:
            raise IngestError(f"unreadable or truncated file: {exc}", source=source) from exc
    head = b"".join(chunks)
    # An internal DTD subset sits inside the DOCTYPE, before the root element.
    doctype_end = head.find(b"<PubmedArticleSet")
    scope = head if doctype_end < 0 else head[:doctype_end]
    if _ENTITY_DECL_RE.search(scope):
        raise IngestError(_ENTITY_REFUSAL, source=source)
