"""The head record beside a log (``LOG.head``): how many entries the log has and the
last entry's hash, HMAC-authenticated when a key is used; read and checked here,
written by :class:`~medrag.audit.AuditLog` under its lock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .format import _HEX64, AuditError, _parse


def _head_fault(head: Any) -> str | None:
    if not isinstance(head, dict):
        return "not a JSON object"
    count = head.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return "'count' is not a non-negative integer"
    last = head.get("last_hash")
    if not isinstance(last, str) or not _HEX64.fullmatch(last):
        return "'last_hash' is not a 64-digit hex string"
    if "mac" in head and (not isinstance(head["mac"], str) or not _HEX64.fullmatch(head["mac"])):
        return "'mac' is not a 64-digit hex string"
    return None


def _read_head_file(path: Path) -> dict[str, Any] | None:
    """The head record beside a log, None when there is none; AuditError when unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditError(f"{path}: cannot read the head record: {exc.strerror or exc}") from exc
    try:
        head = _parse(data)
    except ValueError as exc:
        raise AuditError(f"{path}: the head record is not JSON ({exc})") from None
    fault = _head_fault(head)
    if fault:
        raise AuditError(f"{path}: not a head record: {fault}")
    return head
