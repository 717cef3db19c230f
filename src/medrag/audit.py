"""A tamper-evident audit trail of answers (JSON Lines, hash-chained).

Each line is a JSON object with ``seq``, ``prev`` (the previous line's ``hash``) and
``hash`` = sha256 of the line's canonical JSON without ``hash``. Editing, deleting,
reordering or inserting a line breaks the chain, which :func:`verify_audit_log` reports
with the line number. Nothing is written unless the caller creates an
:class:`AuditLog`; with ``redact_question=True`` only the question's sha256 is kept.

Record kinds: ``answer`` (time, index id and fingerprint, question or its hash,
passages with ids and scores, each sentence's citations and support, abstention
reason, generator and prompt ids, verifier) and ``review`` (a clinician's accept /
reject / edit of an answer or one of its sentences, with a reason).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, MedragError
from .types import Answer

__all__ = ["AuditLog", "AuditError", "verify_audit_log", "GENESIS"]

GENESIS = "0" * 64
_REVIEW_ACTIONS = ("accept", "reject", "edit")


class AuditError(MedragError):
    """The audit log is unreadable or its hash chain is broken."""


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _digest(entry: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int
    problems: tuple[str, ...]


class AuditLog:
    """Append-only, hash-chained JSON Lines log. Safe to share between threads of one
    process (appends are serialized and fsync'd)."""

    def __init__(self, path: str | os.PathLike[str], *, redact_question: bool = False) -> None:
        self.path = Path(path)
        self.redact_question = redact_question
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _tail(self) -> tuple[int, str]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return 0, GENESIS
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            lines = f.read().splitlines()
        try:
            last = json.loads(lines[-1])
            return int(last["seq"]) + 1, str(last["hash"])
        except (ValueError, KeyError, IndexError) as exc:
            raise AuditError(f"{self.path}: the last line is not a valid audit entry: {exc}") from exc

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            seq, prev = self._tail()
            entry = {"seq": seq, "prev": prev, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **entry}
            entry["hash"] = _digest(entry)
            with open(self.path, "ab") as f:
                f.write(_canonical(entry) + b"\n")
                f.flush()
                os.fsync(f.fileno())
            return entry

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
        """Append a clinician's review of a recorded answer (by its entry hash)."""
        if action not in _REVIEW_ACTIONS:
            raise ConfigError(f"review action must be one of {_REVIEW_ACTIONS}, not {action!r}")
        if not reason:
            raise ConfigError("a review needs a reason")
        if action == "edit" and new_text is None:
            raise ConfigError("an edit needs new_text")
        return self._append(
            {"kind": "review", "answer": answer_hash, "action": action, "reviewer": reviewer, "reason": reason,
             "sentence": sentence, "new_text": new_text}
        )


def verify_audit_log(path: str | os.PathLike[str]) -> VerifyResult:
    """Check every line's hash and the chain; report each problem with its line number."""
    p = Path(path)
    if not p.exists():
        raise AuditError(f"no audit log at {p}")
    problems: list[str] = []
    prev = GENESIS
    n = 0
    answers: set[str] = set()
    with open(p, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            n += 1
            try:
                entry = json.loads(line)
            except ValueError:
                problems.append(f"line {lineno}: not JSON")
                prev = None  # type: ignore[assignment]
                continue
            if not isinstance(entry, dict) or "hash" not in entry:
                problems.append(f"line {lineno}: not an audit entry")
                continue
            if _digest(entry) != entry["hash"]:
                problems.append(f"line {lineno}: content does not match its hash (edited)")
            if prev is not None and entry.get("prev") != prev:
                problems.append(f"line {lineno}: does not follow the previous line (deleted, inserted or reordered)")
            if entry.get("seq") != lineno - 1:
                problems.append(f"line {lineno}: sequence number {entry.get('seq')} out of place")
            if entry.get("kind") == "review" and entry.get("answer") not in answers:
                problems.append(f"line {lineno}: reviews an answer not recorded before it")
            if entry.get("kind") == "answer":
                answers.add(entry["hash"])
            prev = entry["hash"]
    return VerifyResult(ok=not problems, entries=n, problems=tuple(problems))
