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

from .format import FORMAT_VERSION, GENESIS, AuditError, head_path, torn_path  # noqa: F401  (importable as before)
from .keys import audit_key_from_env, audit_key_from_file
from .log import AuditLog
from .verify import VerifyResult, verify_audit_log

__all__ = [
    "AuditLog",
    "AuditError",
    "VerifyResult",
    "verify_audit_log",
    "audit_key_from_file",
    "audit_key_from_env",
    "GENESIS",
]
