"""The audit log's line format: canonical JSON, the entry hash and MAC, parsing and
checking one line, and the files kept beside a log (``LOG.head``, ``LOG.torn``).

Each line is a JSON object with ``seq`` (0-based), ``prev`` (the previous line's
``hash``; 64 zeros for the first) and ``hash`` = sha256 of the line's canonical JSON
without ``hash`` and ``mac``; with a key, ``key_id`` and ``mac`` = HMAC-SHA256
(RFC 2104) of the same canonical bytes, domain-separated from the head record's MAC."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import MedragError

GENESIS = "0" * 64
FORMAT_VERSION = 2  # 0.1 wrote entries without "v" (version 1)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ENTRY_DOMAIN = b"medrag-audit-entry\x00"
_HEAD_DOMAIN = b"medrag-audit-head\x00"
_BLOCK = 1 << 16


class AuditError(MedragError):
    """The audit log is unreadable, inconsistent with its head, or refuses an append."""


def _canonical(obj: dict[str, Any]) -> bytes:
    try:
        return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AuditError(f"an audit entry holds text that is not valid Unicode ({exc.reason})") from exc
    except RecursionError as exc:
        raise AuditError("an audit entry is nested too deeply") from exc


def _body(entry: dict[str, Any]) -> bytes:
    return _canonical({k: v for k, v in entry.items() if k not in ("hash", "mac")})


def _digest(entry: dict[str, Any]) -> str:
    return hashlib.sha256(_body(entry)).hexdigest()


def _entry_mac(key: bytes, entry: dict[str, Any]) -> str:
    return hmac.new(key, _ENTRY_DOMAIN + _body(entry), hashlib.sha256).hexdigest()


def _head_mac(key: bytes, head: dict[str, Any]) -> str:
    return hmac.new(key, _HEAD_DOMAIN + _canonical({k: v for k, v in head.items() if k != "mac"}), hashlib.sha256).hexdigest()


def _sha(text: str) -> str:
    try:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
    except UnicodeEncodeError as exc:
        raise AuditError(f"an audit entry holds text that is not valid Unicode ({exc.reason})") from exc


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _parse(line: bytes) -> Any:
    """JSON of one line, or raise ValueError (also for nesting too deep to parse)."""
    try:
        return json.loads(line)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 ({exc.reason})") from None


def _entry_fault(entry: Any) -> str | None:
    """Why a parsed line is not an audit entry, or None."""
    if not isinstance(entry, dict):
        return f"a JSON {type(entry).__name__}, not an object"
    seq = entry.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return "'seq' is not a non-negative integer"
    for name in ("prev", "hash"):
        v = entry.get(name)
        if not isinstance(v, str) or not _HEX64.fullmatch(v):
            return f"'{name}' is not a 64-digit hex string"
    if "mac" in entry and (not isinstance(entry["mac"], str) or not _HEX64.fullmatch(entry["mac"])):
        return "'mac' is not a 64-digit hex string"
    if "key_id" in entry and not isinstance(entry["key_id"], str):
        return "'key_id' is not a string"
    return None


def head_path(log: str | os.PathLike[str]) -> Path:
    """Where the head record of ``log`` is kept: ``LOG.head`` beside it."""
    p = Path(log)
    return p.with_name(p.name + ".head")


def torn_path(log: str | os.PathLike[str]) -> Path:
    """Where torn (incomplete) last lines are set aside: ``LOG.torn``."""
    p = Path(log)
    return p.with_name(p.name + ".torn")


def _lines_backwards(fd: int, end: int) -> Iterator[tuple[int, bytes]]:
    """Complete lines of the file ending at offset ``end`` (just after a newline), last
    first, as ``(start offset, line without its newline)``; lines of any length."""
    if end <= 0:
        return
    pos = end - 1  # ``tail`` holds bytes [pos, end of the current line)
    tail = b""
    while True:
        i = tail.rfind(b"\n")
        if i >= 0:
            yield pos + i + 1, tail[i + 1 :]
            tail = tail[:i]
            continue
        if pos == 0:
            yield 0, tail
            return
        lo = max(0, pos - _BLOCK)
        tail = os.pread(fd, pos - lo, lo) + tail
        pos = lo
