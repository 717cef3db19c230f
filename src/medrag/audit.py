"""A tamper-evident audit trail of answers: JSON Lines, hash-chained, optionally
authenticated with a secret key, anchored by a head record.

Each line is a JSON object with ``seq`` (0-based), ``prev`` (the previous line's
``hash``; 64 zeros for the first) and ``hash`` = sha256 of the line's canonical JSON
without ``hash`` and ``mac``. With a key (bytes kept *outside* the log: a file or an
environment variable the caller names, see :func:`audit_key_from_file` and
:func:`audit_key_from_env`) each entry also carries ``key_id`` (a non-secret key
fingerprint) and ``mac`` = HMAC-SHA256 (RFC 2104) of the same canonical bytes.

Beside the log, ``LOG.head`` holds the head record: how many entries the log has and
the last entry's hash, HMAC-authenticated when a key is used. It is rewritten
atomically after every append, and :meth:`AuditLog.head` exports it so a copy can be
kept elsewhere (an external witness) and checked later with ``verify(witness=...)``.

What :func:`verify_audit_log` detects (stated as promises in the README):

* **with the key**: any edit, insertion, reordering or deletion of entries (including
  deleting the last entries, keeping only the first, emptying the file), forged
  entries appended with recomputed ``seq`` / ``prev`` / ``hash``, and a rewrite of the
  whole log with recomputed hashes; a deleted or forged head record. Not detected: a
  roll-back of log *and* head together to an earlier state of both (detected only
  against an external witness taken later), and anything done by someone who holds the
  key.
* **without a key**: accidental or naive changes (an edit that leaves the hash stale,
  a deleted or reordered line, a truncation that leaves the head record in place). Not
  detected: anyone who recomputes the hashes and the head can rewrite, truncate or
  extend the log undetectably, except that an external witness still reveals changes
  to the entries it covers.

Appends are serialized across threads and processes with an exclusive ``fcntl.flock``
on the log file; the tail is re-read under the lock. An append is all or nothing: a
failed write (a full disk) is truncated away before the error is raised, and a line
torn by a crash is reported by ``verify`` and moved to ``LOG.torn`` by the next append,
so the log keeps working. Logs written by medrag 0.1 (no key, no head) stay readable
and can be appended to.

Record kinds: ``answer`` (time, index id and fingerprint, question or its hash,
passages with ids and scores, each sentence's citations and support, abstention
reason, generator and prompt ids, verifier) and ``review`` (a clinician's accept /
reject / edit of an answer or one of its sentences, with a reason).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from glob import escape as glob_escape
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, MedragError
from .types import Answer

__all__ = [
    "AuditLog",
    "AuditError",
    "VerifyResult",
    "verify_audit_log",
    "audit_key_from_file",
    "audit_key_from_env",
    "GENESIS",
]

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
FORMAT_VERSION = 2  # 0.1 wrote entries without "v" (version 1)
_REVIEW_ACTIONS = ("accept", "reject", "edit")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MIN_KEY_BYTES = 16
_ENTRY_DOMAIN = b"medrag-audit-entry\x00"
_HEAD_DOMAIN = b"medrag-audit-head\x00"
_BLOCK = 1 << 16


class AuditError(MedragError):
    """The audit log is unreadable, inconsistent with its head, or refuses an append."""


# ------------------------------------------------------------------------ keys


def _check_key(key: bytes, where: str) -> bytes:
    if not isinstance(key, (bytes, bytearray)):
        raise ConfigError(f"an audit key must be bytes, not {type(key).__name__}")
    if len(key) < _MIN_KEY_BYTES:
        raise ConfigError(f"the audit key from {where} is {len(key)} byte(s); at least {_MIN_KEY_BYTES} are needed")
    return bytes(key)


def audit_key_from_file(path: str | os.PathLike[str]) -> bytes:
    """The key in a file (its bytes, one trailing newline removed; at least 16 bytes).

    Make one with ``python -c "import secrets; print(secrets.token_hex(32))" > audit.key``
    and keep it away from the log (another machine or account, a secrets manager).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the audit key file {p}: {exc.strerror or exc}") from exc
    if data.endswith(b"\n"):
        data = data[:-1]
        if data.endswith(b"\r"):
            data = data[:-1]
    try:
        if p.stat().st_mode & 0o077:
            logger.warning("the audit key file %s is readable by other users (chmod 600 it)", p)
    except OSError:
        pass
    return _check_key(data, str(p))


def audit_key_from_env(name: str) -> bytes:
    """The key in the environment variable ``name`` (UTF-8, at least 16 bytes)."""
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(f"the environment variable {name} (the audit key) is not set")
    return _check_key(os.fsencode(value), f"${name}")


def _key_id(key: bytes) -> str:
    """A non-secret fingerprint that tells keys apart (it does not reveal the key)."""
    return hmac.new(key, b"medrag-audit-key-id", hashlib.sha256).hexdigest()[:16]


# ------------------------------------------------------------------------ encoding


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


def head_path(log: str | os.PathLike[str]) -> Path:
    """Where the head record of ``log`` is kept: ``LOG.head`` beside it."""
    p = Path(log)
    return p.with_name(p.name + ".head")


def torn_path(log: str | os.PathLike[str]) -> Path:
    """Where torn (incomplete) last lines are set aside: ``LOG.torn``."""
    p = Path(log)
    return p.with_name(p.name + ".torn")


# ------------------------------------------------------------------------ log


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


class AuditLog:
    """Append-only, hash-chained JSON Lines log, HMAC-authenticated when given a key.

    Safe to share between threads and processes: every append holds an exclusive
    ``flock`` on the log, re-reads its tail and head, checks them, writes the whole line
    or nothing, fsyncs, then rewrites the head record atomically. Nothing is created
    until the first append.

    Args:
        path: the log file (JSON Lines).
        redact_question: keep only sha256 hashes of the question and the sentences.
        key: the HMAC key (at least 16 bytes), kept outside the log; see
            :func:`audit_key_from_file` and :func:`audit_key_from_env`. A log written
            with a key refuses appends without it or with another key.
    """

    def __init__(self, path: str | os.PathLike[str], *, redact_question: bool = False, key: bytes | None = None) -> None:
        self.path = Path(path)
        self.redact_question = bool(redact_question)
        self._key = None if key is None else _check_key(key, "the caller")
        self._key_id = None if self._key is None else _key_id(self._key)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, authenticated={self._key is not None})"

    @property
    def head_path(self) -> Path:
        return head_path(self.path)

    # -- locked state ---------------------------------------------------------

    def _open_locked(self, *, create: bool) -> int:
        import fcntl

        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
        try:
            fd = os.open(self.path, flags, 0o666)
        except FileNotFoundError:
            raise AuditError(f"no audit log at {self.path}") from None
        except OSError as exc:
            raise AuditError(f"{self.path}: cannot open the audit log: {exc.strerror or exc}") from exc
        locked = False
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise AuditError(f"{self.path}: the audit log is not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
        finally:
            if not locked:
                os.close(fd)
        return fd

    def _set_aside_torn(self, fd: int, size: int) -> int:
        """Move an incomplete last line (a crash mid-append) to LOG.torn; the new size."""
        last_nl = -1
        pos = size
        while pos > 0 and last_nl < 0:
            lo = max(0, pos - _BLOCK)
            i = os.pread(fd, pos - lo, lo).rfind(b"\n")
            if i >= 0:
                last_nl = lo + i
            pos = lo
        keep = last_nl + 1
        torn = os.pread(fd, size - keep, keep)
        tp = torn_path(self.path)
        record = _canonical({"time": _now(), "log": self.path.name, "offset": keep, "bytes": len(torn)}) + b"\n"
        with open(tp, "ab") as f:
            f.write(record + torn + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.ftruncate(fd, keep)
        os.fsync(fd)
        logger.warning(
            "%s: an incomplete last line (%d bytes, an interrupted append) was moved to %s", self.path, len(torn), tp
        )
        return keep

    def _tail(self, fd: int, size: int) -> tuple[int, str, dict[str, Any] | None]:
        """(next seq, last hash, last entry) of a log whose size ends on a newline."""
        if size == 0:
            return 0, GENESIS, None
        for _, line in _lines_backwards(fd, size):
            try:
                last = _parse(line)
            except ValueError as exc:
                raise AuditError(f"{self.path}: the last line is not JSON ({exc}); run 'medrag audit verify'") from None
            fault = _entry_fault(last)
            if fault:
                raise AuditError(f"{self.path}: the last line is not an audit entry: {fault}")
            return last["seq"] + 1, last["hash"], last
        raise AuditError(f"{self.path}: cannot read the last line")  # pragma: no cover

    def _entry_with_seq(self, fd: int, size: int, seq: int) -> dict[str, Any] | None:
        for _, line in _lines_backwards(fd, size):
            try:
                e = _parse(line)
            except ValueError:
                return None
            if _entry_fault(e):
                return None
            if e["seq"] == seq:
                return e
            if e["seq"] < seq:
                return None
        return None

    def _check_state(self, fd: int, size: int, seq: int, last: dict[str, Any] | None) -> None:
        """Refuse to append onto a log that disagrees with its head or its key."""
        where = str(self.path)
        if last is not None:
            if "mac" in last or "key_id" in last:
                if self._key is None:
                    raise AuditError(f"{where}: this log is authenticated (key id {last.get('key_id')}); pass its key")
                if last.get("key_id") != self._key_id:
                    raise AuditError(
                        f"{where}: the log was written with another key (key id {last.get('key_id')}, "
                        f"this key {self._key_id})"
                    )
                if _digest(last) != last["hash"] or not hmac.compare_digest(_entry_mac(self._key, last), str(last.get("mac"))):
                    raise AuditError(f"{where}: the last entry fails authentication; run 'medrag audit verify'")
        head = _read_head_file(self.head_path)
        if head is None:
            if last is not None and "mac" in last:
                raise AuditError(
                    f"{where}: the head record {self.head_path.name} is missing, so truncation cannot be ruled out; "
                    "restore it (or a witness copy) before appending"
                )
            return  # a new log, or one written by medrag 0.1 / without a key
        if "mac" in head:
            if self._key is None:
                raise AuditError(f"{where}: the head record is authenticated; pass the log's key")
            if head.get("key_id") != self._key_id or not hmac.compare_digest(_head_mac(self._key, head), head["mac"]):
                raise AuditError(f"{where}: the head record fails authentication (forged, or another key)")
        elif last is not None and "mac" in last:
            raise AuditError(f"{where}: the head record is not authenticated but the log is (replaced?)")
        count = head["count"]
        if count > seq:
            raise AuditError(
                f"{where}: the head record counts {count} entries but the log has {seq}: entries were removed; "
                "run 'medrag audit verify'"
            )
        if count == 0:
            return
        at = last if count == seq else self._entry_with_seq(fd, size, count - 1)
        if at is None or at["hash"] != head["last_hash"]:
            raise AuditError(f"{where}: entry {count - 1} differs from the head record: the log was rewritten")

    def _write_head(self, count: int, last_hash: str, *, locked: bool = True) -> dict[str, Any]:
        head: dict[str, Any] = {"format": "medrag-audit-head", "v": 1, "count": count, "last_hash": last_hash,
                                "time": _now(), "key_id": self._key_id}
        if self._key is not None:
            head["mac"] = _head_mac(self._key, head)
        hp = self.head_path
        if locked:  # under the exclusive lock an earlier temporary is a killed writer's
            for stale in hp.parent.glob(f".{glob_escape(hp.name)}.*.tmp"):
                stale.unlink(missing_ok=True)
        tmp = hp.with_name(f".{hp.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                os.write(fd, _canonical(head) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, hp)
        finally:
            tmp.unlink(missing_ok=True)  # gone after the replace; a failed write's leftover otherwise
        try:
            dfd = os.open(hp.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        return head

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if not self.path.exists() and not self.head_path.exists():
                # a new log: its head (0 entries) is written before the log exists, so a
                # crash at any later point leaves a head that lags, never a missing one
                self.path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self._write_head(0, GENESIS, locked=False)
                except FileNotFoundError:
                    pass  # another process created the log's head at the same moment
            fd = self._open_locked(create=True)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    size = self._set_aside_torn(fd, size)
                seq, prev, last = self._tail(fd, size)
                self._check_state(fd, size, seq, last)
                if seq == 0 and not self.head_path.exists():
                    self._write_head(0, GENESIS)
                entry = {"seq": seq, "prev": prev, "time": _now(), "v": FORMAT_VERSION, **entry}
                if self._key is not None:
                    entry["key_id"] = self._key_id
                entry["hash"] = _digest(entry)
                if self._key is not None:
                    entry["mac"] = _entry_mac(self._key, entry)
                line = _canonical(entry) + b"\n"
                try:
                    view = memoryview(line)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                    os.fsync(fd)
                    self._write_head(seq + 1, entry["hash"])
                except BaseException as exc:
                    # all or nothing: take back whatever part of the line reached the file
                    try:
                        os.ftruncate(fd, size)
                        os.fsync(fd)
                    except OSError:
                        pass
                    if isinstance(exc, OSError):
                        raise AuditError(f"{self.path}: the entry was not written: {exc.strerror or exc}") from exc
                    raise
                return entry
            finally:
                os.close(fd)

    # -- public ---------------------------------------------------------------

    def record(self, answer: Answer, *, index: Any = None, verifier: str | None = None) -> dict[str, Any]:
        """Append an ``answer`` entry; returns it (its ``hash`` identifies the answer)."""
        manifest = getattr(index, "manifest", None) or {}
        entry: dict[str, Any] = {
            "kind": "answer",
            "index_id": answer.index_id,
            "index_fingerprint": manifest.get("corpus_fingerprint"),
            "question_sha256": _sha(answer.question),
            "question": None if self.redact_question else answer.question,
            "status": answer.status,
            "support": answer.support,
            "abstain_reason": answer.abstain_reason,
            "passages": [
                {"chunk_id": p.chunk.id, "rank": p.rank, "score": p.score, "scores": p.scores, "retracted": p.source.retracted}
                for p in answer.passages
            ],
            "sentences": [
                {
                    "text": None if self.redact_question else s.text,
                    "text_sha256": _sha(s.text),
                    "support": s.support,
                    "verdict": "supported",
                    "citations": [
                        {"chunk_id": c.chunk_id, "start": c.start, "end": c.end, "support": c.support,
                         "quote_sha256": _sha(c.quote)}
                        for c in s.citations
                    ],
                }
                for s in answer.sentences
            ],
            "removed": [{"text_sha256": _sha(r.text), "reason": r.reason} for r in answer.removed],
            "generator": answer.generator,
            "prompt_id": answer.prompt_id,
            "verifier": verifier,
        }
        return self._append(entry)

    def _find_answer(self, answer_hash: str) -> dict[str, Any] | None:
        needle = answer_hash.encode("ascii")
        with open(self.path, "rb") as f:
            for line in f:
                if needle not in line:
                    continue
                try:
                    e = _parse(line)
                except ValueError:
                    continue
                if not _entry_fault(e) and e.get("kind") == "answer" and e["hash"] == answer_hash:
                    return e
        return None

    def review(
        self,
        answer_hash: str,
        action: str,
        *,
        reviewer: str,
        reason: str,
        sentence: int | None = None,
        new_text: str | None = None,
    ) -> dict[str, Any]:
        """Append a clinician's review of a recorded answer (by its entry hash).

        The log must exist and hold that answer; ``sentence`` (0-based) must be one of
        its sentences. Raises :class:`AuditError` otherwise, :class:`ConfigError` for
        an unknown action, a missing reason, or an edit without ``new_text``.
        """
        if action not in _REVIEW_ACTIONS:
            raise ConfigError(f"review action must be one of {_REVIEW_ACTIONS}, not {action!r}")
        for name, value in (("reviewer", reviewer), ("reason", reason)):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"a review needs a {name}")
        if action == "edit" and (not isinstance(new_text, str) or not new_text.strip()):
            raise ConfigError("an edit needs new_text")
        if action != "edit" and new_text is not None:
            raise ConfigError("new_text goes with the edit action only")
        if not isinstance(answer_hash, str) or not _HEX64.fullmatch(answer_hash):
            raise AuditError(f"{answer_hash!r} is not an answer hash (64 lowercase hex digits)")
        if sentence is not None and (not isinstance(sentence, int) or isinstance(sentence, bool)):
            raise ConfigError(f"sentence must be an integer, not {sentence!r}")
        if not self.path.is_file():
            raise AuditError(f"no audit log at {self.path}")
        with self._lock:
            target = self._find_answer(answer_hash)
        if target is None:
            raise AuditError(f"{self.path}: no answer with hash {answer_hash[:16]}... is recorded in this log")
        if sentence is not None:
            n = len(target.get("sentences") or ())
            if not 0 <= sentence < n:
                raise AuditError(
                    f"{self.path}: the answer {answer_hash[:16]}... has {n} sentence(s); sentence {sentence} does not exist"
                    + (" (sentences are numbered from 0)" if n else "")
                )
        return self._append(
            {"kind": "review", "answer": answer_hash, "action": action, "reviewer": reviewer, "reason": reason,
             "sentence": sentence, "new_text": new_text}
        )

    def head(self) -> dict[str, Any]:
        """The current head record (count, last hash, key id, MAC), to keep as an
        external witness; read under the lock and checked against the log."""
        with self._lock:
            fd = self._open_locked(create=False)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    raise AuditError(f"{self.path}: the last line is incomplete; append or verify first")
                seq, _, last = self._tail(fd, size)
                self._check_state(fd, size, seq, last)
                head = _read_head_file(self.head_path)
                if head is None or head["count"] != seq:
                    head = self._write_head(seq, last["hash"] if last else GENESIS)
                return head
            finally:
                os.close(fd)


# ------------------------------------------------------------------------ verify


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
