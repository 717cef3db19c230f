"""Verifying an audit log: every line's hash, the chain, the MACs (with the key), the
head record beside the log and an external witness, each problem reported with its
line number (the promises are listed in :mod:`medrag.audit`)."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .format import GENESIS, AuditError, _digest, _entry_fault, _entry_mac, _head_mac, _parse, head_path, torn_path
from .head import _head_fault, _read_head_file
from .keys import _check_key, _key_id


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :func:`verify_audit_log`.

    ``ok`` is False when any problem was found; ``notes`` are facts that are not
    integrity failures (an interrupted append, entries from medrag 0.1, what could not
    be checked without a key). ``authenticated`` says whether a key was checked.
    """

    ok: bool
    entries: int
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()
    authenticated: bool = False
    head: dict[str, Any] | None = field(default=None)


def _check_anchor(name: str, anchor: dict[str, Any], hashes: list[str], macs_ok: list[bool] | None,
                  problems: list[str], notes: list[str]) -> None:
    n, count = len(hashes), anchor["count"]
    if count > n:
        problems.append(f"{name} counts {count} entries but the log has {n}: entries were deleted (truncated)")
        return
    if count and hashes[count - 1] != anchor["last_hash"]:
        problems.append(f"{name}: entry {count - 1} (line {count}) is not the one it recorded: the log was rewritten")
        return
    if count < n:
        if macs_ok is not None:
            if all(macs_ok[count:]):
                notes.append(f"{name} lags by {n - count} authenticated entr(y/ies) (an append interrupted after "
                             "writing; the next append updates it)")
        else:
            notes.append(f"{name} counts {count} of {n} entries; without a key the {n - count} later entr(y/ies) "
                         "cannot be told from forged ones")


def verify_audit_log(
    path: str | os.PathLike[str],
    *,
    key: bytes | None = None,
    witness: dict[str, Any] | str | os.PathLike[str] | None = None,
) -> VerifyResult:
    """Check every line's hash, the chain, the MACs (with ``key``), the head record
    beside the log, and an external ``witness`` (a head record, or a file holding one);
    report each problem with its line number. Never raises on hostile content: only
    :class:`AuditError` when the log cannot be read at all."""
    p = Path(path)
    if not p.exists():
        raise AuditError(f"no audit log at {p}")
    if not p.is_file():
        raise AuditError(f"{p}: the audit log is not a regular file")
    key = None if key is None else _check_key(key, "the caller")
    kid = None if key is None else _key_id(key)
    problems: list[str] = []
    notes: list[str] = []
    prev: str | None = GENESIS
    hashes: list[str] = []
    macs_ok: list[bool] = []
    answers: dict[str, int] = {}
    legacy = 0
    seen_mac = False
    n = 0
    try:
        f = open(p, "rb")
    except OSError as exc:
        raise AuditError(f"{p}: cannot read the audit log: {exc.strerror or exc}") from exc
    with f:
        try:  # a shared lock: the log and its head are read as one state, not mid-append
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
        except (ImportError, OSError):
            pass
        for lineno, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                notes.append(f"line {lineno}: an incomplete last line ({len(line)} bytes; an interrupted append, "
                             f"never acknowledged); the next append moves it to {torn_path(p).name}")
                break
            n += 1
            try:
                entry = _parse(line)
            except ValueError as exc:
                problems.append(f"line {lineno}: not JSON ({exc})")
                prev = None
                hashes.append("")
                macs_ok.append(False)
                continue
            fault = _entry_fault(entry)
            if fault:
                problems.append(f"line {lineno}: not an audit entry ({fault})")
                prev = None
                hashes.append("")
                macs_ok.append(False)
                continue
            try:
                digest = _digest(entry)
            except AuditError as exc:
                problems.append(f"line {lineno}: {exc}")
                digest = ""
            if digest != entry["hash"]:
                problems.append(f"line {lineno}: content does not match its hash (edited)")
            if prev is not None and entry["prev"] != prev:
                problems.append(f"line {lineno}: does not follow the previous line (deleted, inserted or reordered)")
            if entry["seq"] != lineno - 1:
                problems.append(f"line {lineno}: sequence number {entry['seq']} out of place")
            mac_ok = False
            if "mac" in entry:
                seen_mac = True
                if key is not None:
                    if entry.get("key_id") != kid:
                        problems.append(f"line {lineno}: authenticated with another key (key id {entry.get('key_id')})")
                    elif not digest or not hmac.compare_digest(_entry_mac(key, entry), entry["mac"]):
                        problems.append(f"line {lineno}: the MAC does not match (forged or edited)")
                    else:
                        mac_ok = True
            elif key is not None:
                if seen_mac:
                    problems.append(f"line {lineno}: not authenticated (appended without the key, or forged)")
                else:
                    legacy += 1
            kind = entry.get("kind")
            if kind == "review":
                target = entry.get("answer")
                if not isinstance(target, str) or target not in answers:
                    problems.append(f"line {lineno}: reviews an answer not recorded before it")
                else:
                    s = entry.get("sentence")
                    if s is not None and (not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < answers[target]):
                        problems.append(f"line {lineno}: reviews sentence {s!r}, which the answer does not have")
            elif kind == "answer":
                sents = entry.get("sentences")
                answers[entry["hash"]] = len(sents) if isinstance(sents, list) else 0
            hashes.append(entry["hash"])
            macs_ok.append(mac_ok)
            prev = entry["hash"]
        head: dict[str, Any] | None = None
        try:  # still under the shared lock
            head = _read_head_file(head_path(p))
        except AuditError as exc:
            problems.append(str(exc))

    if head is not None:
        if key is not None:
            if "mac" not in head:
                if seen_mac or n == 0:
                    problems.append("the head record is not authenticated (replaced without the key)")
                else:
                    notes.append("the head record is not authenticated (written without a key)")
            elif head.get("key_id") != kid or not hmac.compare_digest(_head_mac(key, head), head["mac"]):
                problems.append("the head record fails authentication (forged, or another key)")
        elif "mac" in head:
            notes.append("the head record carries a MAC; pass the key to check it")
        _check_anchor("the head record", head, hashes, macs_ok if key is not None else None, problems, notes)
    elif key is not None:
        problems.append(f"no head record ({head_path(p).name}): deletion of the last entries cannot be ruled out")
    elif n:
        notes.append("no head record (a log written by medrag 0.1, or the head was removed)")

    if witness is not None:
        if not isinstance(witness, dict):
            w = _read_head_file(Path(witness))
            if w is None:
                raise AuditError(f"no witness file at {witness}")
        else:
            fault = _head_fault(witness)
            if fault:
                raise AuditError(f"the witness is not a head record: {fault}")
            w = witness
        if key is not None and "mac" in w and (w.get("key_id") != kid or not hmac.compare_digest(_head_mac(key, w), w["mac"])):
            problems.append("the witness fails authentication (forged, or another key)")
        _check_anchor("the witness", w, hashes, macs_ok if key is not None else None, problems, notes)

    if key is not None:
        if legacy and (seen_mac or (head is not None and "mac" in head)):
            notes.append(f"the first {legacy} entr(y/ies) carry no MAC (medrag 0.1 or no key); the authenticated "
                         "entries and head that follow cover them through the hash chain")
        elif legacy or (n and not seen_mac):
            problems.append("nothing in this log is authenticated with this key")
    elif seen_mac:
        notes.append("entries carry MACs but no key was given: a rewrite with recomputed hashes would not be detected")
    return VerifyResult(ok=not problems, entries=n, problems=tuple(problems), notes=tuple(notes),
                        authenticated=key is not None, head=head)
