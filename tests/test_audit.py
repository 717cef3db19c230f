"""The audit trail under attack and under crashes: keyed (HMAC) entries and head record,
truncation / rewriting / forged appends, cross-process appends, entries of any size,
all-or-nothing appends, torn lines, hostile JSON, review checks, 0.1 logs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import need_data

from medrag.audit import (
    AuditError,
    AuditLog,
    audit_key_from_env,
    audit_key_from_file,
    head_path,
    torn_path,
    verify_audit_log,
)
from medrag.errors import ConfigError
from medrag.types import Answer

KEY = b"0123456789abcdef-test-key-not-secret"
Q_DOPAMINE = "Does dopamine modulate responses to cocaine in Drosophila?"


def abstained(q: str = "What is the Hawking temperature of a black hole?") -> Answer:
    return Answer(question=q, status="abstained", sentences=(), passages=(), index_id="idx-test",
                  abstain_reason="no passage supports an answer")


@pytest.fixture(scope="module")
def real_answer():
    """A real answered Answer from a lexical index over 100 real PubMed records."""
    from medrag import Index, IndexConfig, answer
    from medrag.ingest import iter_pubmed

    docs = list(iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")))
    index = Index.build(docs, IndexConfig(encoder=None))
    result = answer(Q_DOPAMINE, index)
    assert result.status != "abstained" and len(result.sentences) >= 1
    return result, index


def lines_of(p: Path) -> list[bytes]:
    return p.read_bytes().splitlines(keepends=True)


def keyed_log(tmp_path: Path, n: int = 4) -> tuple[AuditLog, Path]:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY)
    for i in range(n):
        log.record(abstained(f"question {i}?"))
    return log, path


def rehash(entries: list[dict], key: bytes | None = None) -> bytes:
    """An attacker's rewrite: renumber, rechain and rehash (they do not hold the key)."""
    out, prev = [], "0" * 64
    for i, e in enumerate(entries):
        e = {k: v for k, v in e.items() if k not in ("hash",)}
        e["seq"], e["prev"] = i, prev
        body = json.dumps({k: v for k, v in e.items() if k != "mac"}, sort_keys=True, ensure_ascii=False,
                          separators=(",", ":")).encode()
        e["hash"] = prev = hashlib.sha256(body).hexdigest()
        out.append(json.dumps(e, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    return b"".join(out)


def forged_head(path: Path, data: bytes) -> None:
    """The attacker also rewrites the head record to match (no key: no valid MAC)."""
    entries = [json.loads(x) for x in data.splitlines()]
    head = json.loads(head_path(path).read_text())
    head.update(count=len(entries), last_hash=entries[-1]["hash"] if entries else "0" * 64)
    head_path(path).write_text(json.dumps(head))


# ------------------------------------------------------------------ what a key detects


def test_keyed_log_verifies_and_detects_truncation_and_emptying(tmp_path):
    _, path = keyed_log(tmp_path)
    res = verify_audit_log(path, key=KEY)
    assert res.ok and res.entries == 4 and res.authenticated, res
    original = path.read_bytes()
    for name, data in (("last two deleted", b"".join(lines_of(path)[:2])),
                       ("only the first line", lines_of(path)[0]),
                       ("emptied", b"")):
        path.write_bytes(data)
        res = verify_audit_log(path, key=KEY)
        assert not res.ok and any("truncated" in p for p in res.problems), (name, res)
        # appending onto a truncated log is refused: it would bless the truncation
        with pytest.raises(AuditError, match="removed"):
            AuditLog(path, key=KEY).record(abstained())
        path.write_bytes(original)
    assert verify_audit_log(path, key=KEY).ok


def test_forged_append_and_rehashed_rewrite_are_detected_with_a_key(tmp_path):
    log, path = keyed_log(tmp_path, 2)
    entries = [json.loads(x) for x in lines_of(path)]
    log.review(entries[0]["hash"], "reject", reviewer="dr-a", reason="wrong population")
    entries = [json.loads(x) for x in lines_of(path)]

    # a forged entry appended with recomputed seq / prev / hash (its old MAC copied)
    forged = dict(entries[-1], action="accept", reason="looks fine")
    data = rehash(entries + [forged])
    path.write_bytes(data)
    res = verify_audit_log(path, key=KEY)
    assert not res.ok and any("line 4" in p and "MAC" in p for p in res.problems), res
    forged_head(path, data)  # even with the head rewritten to match
    res = verify_audit_log(path, key=KEY)
    assert not res.ok and any("head record fails authentication" in p for p in res.problems), res

    # the review removed, the rest rehashed, head rewritten: detected by the head MAC
    data = rehash(entries[:2])
    path.write_bytes(data)
    forged_head(path, data)
    res = verify_audit_log(path, key=KEY)
    assert not res.ok and any("head record" in p for p in res.problems), res
    # and the MACs alone catch a rewrite that changes content
    data = rehash([dict(entries[0], status="answered")] + entries[1:])
    path.write_bytes(data)
    assert any("line 1" in p and "MAC" in p for p in verify_audit_log(path, key=KEY).problems)


def test_deleted_head_and_wrong_key_are_detected(tmp_path):
    _, path = keyed_log(tmp_path, 2)
    head = head_path(path).read_bytes()
    head_path(path).unlink()
    res = verify_audit_log(path, key=KEY)
    assert not res.ok and any("no head record" in p for p in res.problems)
    with pytest.raises(AuditError, match="head record .* missing"):
        AuditLog(path, key=KEY).record(abstained())
    head_path(path).write_bytes(head)
    other = b"another key of enough length!!"
    res = verify_audit_log(path, key=other)
    assert not res.ok and any("another key" in p for p in res.problems)
    with pytest.raises(AuditError, match="another key"):
        AuditLog(path, key=other).record(abstained())
    with pytest.raises(AuditError, match="pass its key"):
        AuditLog(path).record(abstained())  # no silent unauthenticated appends


def test_without_a_key_only_naive_changes_are_detected_and_a_witness_helps(tmp_path):
    path = tmp_path / "plain.jsonl"
    log = AuditLog(path)
    for i in range(5):
        log.record(abstained(f"q{i}?"))
    witness = log.head()
    assert witness["count"] == 5 and "mac" not in witness
    entries = [json.loads(x) for x in lines_of(path)]
    original, original_head = path.read_bytes(), head_path(path).read_bytes()
    # naive truncation: the head record (left in place) catches it
    path.write_bytes(b"".join(lines_of(path)[:3]))
    assert any("truncated" in p for p in verify_audit_log(path).problems)
    # an attacker who rehashes and rewrites the head passes verify without a key ...
    data = rehash(entries[:2] + entries[3:])
    path.write_bytes(data)
    forged_head(path, data)
    assert verify_audit_log(path).ok  # the documented limit without a key
    # ... but not an external witness taken before
    res = verify_audit_log(path, witness=witness)
    assert not res.ok and any("witness" in p for p in res.problems), res
    (tmp_path / "witness.json").write_text(json.dumps(witness))
    assert not verify_audit_log(path, witness=tmp_path / "witness.json").ok
    path.write_bytes(original)
    head_path(path).write_bytes(original_head)
    assert verify_audit_log(path, witness=tmp_path / "witness.json").ok


def test_keys_from_file_and_env(tmp_path, monkeypatch):
    (tmp_path / "k").write_bytes(KEY + b"\n")
    assert audit_key_from_file(tmp_path / "k") == KEY
    monkeypatch.setenv("MEDRAG_TEST_AUDIT_KEY", KEY.decode())
    assert audit_key_from_env("MEDRAG_TEST_AUDIT_KEY") == KEY
    monkeypatch.setenv("MEDRAG_TEST_AUDIT_KEY", "short")
    with pytest.raises(ConfigError, match="at least 16"):
        audit_key_from_env("MEDRAG_TEST_AUDIT_KEY")
    with pytest.raises(ConfigError, match="not set"):
        audit_key_from_env("MEDRAG_TEST_NO_SUCH_VARIABLE")
    with pytest.raises(ConfigError, match="cannot read"):
        audit_key_from_file(tmp_path / "missing")
    _, path = keyed_log(tmp_path, 1)
    assert KEY not in path.read_bytes() and KEY not in head_path(path).read_bytes()


# ------------------------------------------------------------------ 0.1 logs


def test_a_log_written_by_0_1_is_read_and_extended(tmp_path):
    """Entries as 0.1 wrote them (no "v", no key, no head), then keyed appends."""
    path = tmp_path / "old.jsonl"
    old = [{"kind": "answer", "question": "q?", "sentences": [], "status": "abstained", "time": "2025-01-01T00:00:00Z"}]
    path.write_bytes(rehash(old))
    res = verify_audit_log(path)
    assert res.ok and res.entries == 1 and any("0.1" in n for n in res.notes)
    assert not verify_audit_log(path, key=KEY).ok  # nothing authenticated yet
    AuditLog(path, key=KEY).record(abstained())
    res = verify_audit_log(path, key=KEY)
    assert res.ok and res.entries == 2 and any("carry no MAC" in n for n in res.notes), res
    # the legacy line is covered through the chain: editing it is still detected
    lines = lines_of(path)
    e = json.loads(lines[0])
    e["question"] = "edited?"
    path.write_bytes(rehash([e]) + lines[1])
    assert not verify_audit_log(path, key=KEY).ok


# ------------------------------------------------------------------ concurrency, size, crashes


_WORKER = """
import sys
from medrag.audit import AuditLog
from medrag.types import Answer
log = AuditLog(sys.argv[1], key=sys.argv[2].encode())
for i in range(int(sys.argv[3])):
    log.record(Answer(question=f"{sys.argv[4]} {i}?", status="abstained", sentences=(), passages=(),
                      index_id="x", abstain_reason="none"))
"""


def test_processes_and_objects_append_without_breaking_the_chain(tmp_path):
    path = tmp_path / "shared.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(path), KEY.decode(), "40", f"p{w}"])
             for w in range(2)]
    logs = [AuditLog(path, key=KEY), AuditLog(path, key=KEY)]  # two objects in this process

    def run(log: AuditLog, name: str) -> None:
        for i in range(40):
            log.record(abstained(f"{name} {i}?"))

    threads = [threading.Thread(target=run, args=(lg, f"t{i}")) for i, lg in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    res = verify_audit_log(path, key=KEY)
    assert res.ok and res.entries == 160 and res.notes == (), res
    questions = [json.loads(x)["question"] for x in lines_of(path)]
    assert len(set(questions)) == 160


def test_entries_of_any_size(tmp_path):
    path = tmp_path / "big.jsonl"
    log = AuditLog(path, key=KEY)
    log.record(abstained("x" * 71_000 + "?"))
    log.record(abstained("y" * 300_000 + "?"))
    log.record(abstained())
    res = verify_audit_log(path, key=KEY)
    assert res.ok and res.entries == 3


_FULL_DISK = """
import resource, signal, sys
from medrag.audit import AuditLog, AuditError
from medrag.types import Answer
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file size limit stands in for a full disk
import os
size = os.path.getsize(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 500, resource.RLIM_INFINITY))
try:
    AuditLog(sys.argv[1], key=sys.argv[2].encode()).record(Answer(question="q" * 5000 + "?", status="abstained",
        sentences=(), passages=(), index_id="x", abstain_reason="none"))
except AuditError as exc:
    print("refused:", exc)
"""


def test_a_failed_write_leaves_nothing_and_the_log_keeps_working(tmp_path):
    _, path = keyed_log(tmp_path, 2)
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, str(path), KEY.decode()], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "refused:" in proc.stdout and "not written" in proc.stdout, proc
    assert path.read_bytes() == before  # all or nothing
    AuditLog(path, key=KEY).record(abstained())
    assert verify_audit_log(path, key=KEY).ok


def test_a_torn_last_line_is_reported_then_set_aside(tmp_path):
    _, path = keyed_log(tmp_path, 2)
    with open(path, "ab") as f:  # what a SIGKILL in the middle of a write leaves
        f.write(b'{"seq":2,"prev":"ab')
    res = verify_audit_log(path, key=KEY)
    assert res.ok and res.entries == 2 and any("incomplete last line" in n for n in res.notes), res
    AuditLog(path, key=KEY).record(abstained())
    res = verify_audit_log(path, key=KEY)
    assert res.ok and res.entries == 3 and res.notes == (), res
    assert b'{"seq":2,"prev":"ab' in torn_path(path).read_bytes()


def test_a_head_left_behind_by_a_crash_is_a_note_and_catches_up(tmp_path):
    log, path = keyed_log(tmp_path, 2)
    old_head = head_path(path).read_bytes()
    log.record(abstained())
    head_path(path).write_bytes(old_head)  # killed after writing entry 3, before its head
    res = verify_audit_log(path, key=KEY)
    assert res.ok and any("lags by 1" in n for n in res.notes), res
    log.record(abstained())
    res = verify_audit_log(path, key=KEY)
    assert res.ok and res.entries == 4 and res.notes == ()
    # a lagging head whose last hash does not match is a rewrite, not a crash
    entries = [json.loads(x) for x in lines_of(path)]
    head_path(path).write_bytes(old_head)
    path.write_bytes(rehash([dict(entries[0], status="answered")] + entries[1:]))
    assert not verify_audit_log(path, key=KEY).ok


# ------------------------------------------------------------------ hostile content


@pytest.mark.parametrize(
    "line, fragment",
    [
        (b'{"seq":0,"prev":"' + b"0" * 64 + b'","hash":["a"],"kind":"answer"}\n', "'hash' is not"),
        (b"[" * 200_000 + b"]" * 200_000 + b"\n", "nested too deeply"),
        (b"null\n", "not an object"),
        (b'{"seq":true,"prev":"x","hash":"y"}\n', "'seq'"),
        (b"\xff\xfe garbage\n", "not JSON"),
    ],
)
def test_verify_never_crashes_on_hostile_lines(tmp_path, line, fragment):
    log, path = keyed_log(tmp_path, 1)
    with open(path, "ab") as f:
        f.write(line)
    res = verify_audit_log(path, key=KEY)
    assert not res.ok and any("line 2" in p and fragment in p for p in res.problems), res.problems
    with pytest.raises(AuditError):  # never a TypeError / RecursionError
        log.record(abstained())


def test_a_review_with_a_list_hash_target_is_a_problem_not_a_crash(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(rehash([{"kind": "review", "answer": ["x"], "sentence": -5}]))
    res = verify_audit_log(path)
    assert not res.ok and "not recorded before it" in res.problems[0]


# ------------------------------------------------------------------ reviews


def test_reviews_name_a_recorded_answer_and_a_real_sentence(tmp_path, real_answer):
    result, index = real_answer
    path = tmp_path / "rev.jsonl"
    log = AuditLog(path, key=KEY)
    h = log.record(result, index=index)["hash"]
    n = len(result.sentences)
    log.review(h, "edit", reviewer="dr-x", reason="tighter", sentence=n - 1, new_text="shorter")
    for bad in (-5, n, 10**6):
        with pytest.raises(AuditError, match=f"sentence {bad} does not exist"):
            log.review(h, "accept", reviewer="dr-x", reason="r", sentence=bad)
    with pytest.raises(AuditError, match="no answer with hash"):
        log.review("f" * 64, "accept", reviewer="dr-x", reason="r")
    review_hash = json.loads(lines_of(path)[-1])["hash"]
    with pytest.raises(AuditError, match="no answer with hash"):  # a review is not an answer
        log.review(review_hash, "accept", reviewer="dr-x", reason="r")
    with pytest.raises(AuditError, match="not an answer hash"):
        log.review("3f2a", "accept", reviewer="dr-x", reason="r")
    assert verify_audit_log(path, key=KEY).entries == 2
    missing = tmp_path / "sub" / "none.jsonl"
    with pytest.raises(AuditError, match="no audit log"):
        AuditLog(missing).review(h, "accept", reviewer="dr-x", reason="r")
    assert not missing.exists() and not missing.parent.exists()


def test_text_that_is_not_unicode_is_refused_cleanly(tmp_path):
    path = tmp_path / "u.jsonl"
    with pytest.raises(AuditError, match="not valid Unicode"):
        AuditLog(path).record(abstained("caf\udce9?"))  # a lone surrogate, from bad argv bytes
    assert not path.exists() or path.read_bytes() == b""
