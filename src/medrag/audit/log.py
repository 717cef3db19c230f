"""Appending to an audit log: :class:`AuditLog` serializes appends across threads
(a lock) and processes (an exclusive ``fcntl.flock`` on the log), re-reads the tail and
the head record under the lock, refuses a log that disagrees with them or with its
key, writes the whole line or nothing, fsyncs, and rewrites the head atomically. A
line torn by a crash is moved to ``LOG.torn`` by the next append."""

from __future__ import annotations

import hmac
import logging
import os
import stat
import threading
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..types import Answer
from .format import (
    _BLOCK,
    _HEX64,
    FORMAT_VERSION,
    GENESIS,
    AuditError,
    _canonical,
    _digest,
    _entry_fault,
    _entry_mac,
    _head_mac,
    _lines_backwards,
    _now,
    _parse,
    _sha,
    head_path,
    torn_path,
)
from .head import _read_head_file
from .keys import _check_key, _key_id

logger = logging.getLogger(__package__)

_REVIEW_ACTIONS = ("accept", "reject", "edit")


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
