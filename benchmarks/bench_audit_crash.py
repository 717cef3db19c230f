"""Crash-and-concurrency benchmark of the audit trail.

Several worker processes append answers (and reviews of earlier answers) to ONE keyed
audit log while a killer sends SIGKILL to a random worker at random moments (and
restarts it); a verifier process runs ``verify_audit_log`` concurrently. Each worker
writes the hash of an entry to its own acknowledgement file only after ``record()`` /
``review()`` has returned.

Anomalies counted (target: 0 over at least 1,000 operations):

* a problem reported by ``verify_audit_log(key=...)`` at the end, or by a concurrent
  verification during the run;
* an acknowledged entry that is not in the final log (a lost append);
* an entry in the log twice, or a worker error other than being killed;
* the final log refusing a further append.

Usage::

    nice -n 10 python benchmarks/bench_audit_crash.py --workers 4 --ops 2000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEY = "bench-audit-crash-key-0123456789"

_WORKER = r"""
import json, os, random, sys
from medrag.audit import AuditLog, AuditError
from medrag.types import Answer
log_path, ack_path, name, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = random.Random(seed)
log = AuditLog(log_path, key=sys.argv[5].encode())
acks = open(ack_path, "a", encoding="utf-8")
open(ack_path + f".ready.{os.getpid()}", "w").close()  # imported: the killer may start its clock
answers = []
i = 0
parent = int(sys.argv[6])
while os.getppid() == parent:  # never outlive the benchmark
    i += 1
    if answers and rng.random() < 0.15:
        e = log.review(rng.choice(answers), "accept", reviewer=name, reason=f"review {i}")
    else:
        # sizes from a few hundred bytes to ~80 KB (more than the 64 KiB tail 0.1 read)
        q = f"{name} question {i}?" + " pad" * (rng.choice((0, 0, 0, 0, 10, 10, 1000, 1000, 20000)))
        e = log.record(Answer(question=q, status="abstained", sentences=(), passages=(), index_id="bench",
                              abstain_reason="none"))
        answers.append(e["hash"])
    acks.write(json.dumps({"hash": e["hash"], "seq": e["seq"]}) + "\n")
    acks.flush()
    os.fsync(acks.fileno())
"""

_VERIFIER = r"""
import os, sys, time
from medrag.audit import verify_audit_log
bad = 0
runs = 0
parent = int(sys.argv[4])
while not os.path.exists(sys.argv[3]) and os.getppid() == parent:
    try:
        res = verify_audit_log(sys.argv[1], key=sys.argv[2].encode())
    except Exception as exc:  # the log does not exist yet
        time.sleep(0.05)
        continue
    runs += 1
    if not res.ok:
        bad += 1
        print("PROBLEM", res.problems[:3], file=sys.stderr, flush=True)
    time.sleep(0.02)
print(runs, bad)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--ops", type=int, default=2000, help="stop after this many acknowledged operations")
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--kill-every", type=float, default=2.0, help="mean seconds a worker appends before its kill")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", help="work folder (default: a temporary one)")
    args = ap.parse_args()

    from medrag.audit import AuditLog, torn_path, verify_audit_log
    from medrag.types import Answer

    rng = random.Random(args.seed)
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-audit-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "audit.jsonl"
    env = dict(os.environ)
    procs: dict[int, subprocess.Popen] = {}
    errors: list[str] = []
    started = 0

    def start(w: int) -> None:
        nonlocal started
        started += 1
        procs[w] = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(log), str(work / f"ack{w}.jsonl"), f"w{w}", str(rng.randrange(1 << 30)), KEY,
             str(os.getpid())],
            stderr=subprocess.PIPE, env=env,
        )

    def acked() -> list[dict]:
        out = []
        for f in work.glob("ack*.jsonl"):
            for line in f.read_text(encoding="utf-8").splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a worker killed mid-write of its own ack line: not acknowledged
        return out

    verifier = subprocess.Popen([sys.executable, "-c", _VERIFIER, str(log), KEY, str(work / "stop"), str(os.getpid())],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    t0 = time.time()
    for w in range(args.workers):
        start(w)
    kills = 0
    n_acked = 0
    # each worker is killed at a random moment after it has started appending (its
    # imports done), so kills land mid-append, mid-fsync, mid-head-write
    deadline: dict[int, float | None] = {w: None for w in procs}
    while time.time() - t0 < args.max_seconds and n_acked < args.ops:
        time.sleep(0.005)
        for w, p in procs.items():
            alive = p.poll() is None
            if alive and deadline[w] is None:
                if (work / f"ack{w}.jsonl.ready.{p.pid}").exists():
                    deadline[w] = time.time() + rng.uniform(0, 2 * args.kill_every)
                continue
            if alive and time.time() < deadline[w]:
                continue
            if alive:
                p.send_signal(signal.SIGKILL)
                kills += 1
            p.wait()
            err = p.stderr.read().decode(errors="replace")
            if p.returncode != -signal.SIGKILL:
                errors.append(f"worker w{w} exited {p.returncode}: {err[-500:]}")
            (work / f"ack{w}.jsonl.ready.{p.pid}").unlink(missing_ok=True)
            start(w)
            deadline[w] = None
            n_acked = len(acked())
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait()
    (work / "stop").touch()
    v_out, v_err = verifier.communicate(timeout=120)
    elapsed = time.time() - t0

    acks = acked()
    res = verify_audit_log(log, key=KEY.encode())
    hashes = [json.loads(line)["hash"] for line in log.read_bytes().splitlines()]
    in_log = set(hashes)
    lost = [a for a in acks if a["hash"] not in in_log]
    duplicates = len(hashes) - len(in_log)
    try:
        AuditLog(log, key=KEY.encode()).record(Answer(question="after the run?", status="abstained", sentences=(),
                                                      passages=(), index_id="bench", abstain_reason="none"))
        final_append_ok = True
    except Exception as exc:  # noqa: BLE001 - reported as an anomaly
        final_append_ok = False
        errors.append(f"final append refused: {exc}")
    final = verify_audit_log(log, key=KEY.encode())
    torn = 0
    if torn_path(log).exists():
        torn = sum(1 for line in torn_path(log).read_bytes().splitlines() if line.startswith(b'{"bytes":'))
    concurrent_problems = len([x for x in v_err.splitlines() if x.startswith("PROBLEM")])
    anomalies = (len(res.problems) + len(final.problems) + len(lost) + duplicates + len(errors)
                 + concurrent_problems + (0 if final_append_ok else 1))
    report = {
        "workers": args.workers,
        "seconds": round(elapsed, 1),
        "operations_acknowledged": len(acks),
        "entries_in_log": res.entries,
        "kills": kills,
        "worker_starts": started,
        "torn_lines_set_aside": torn,
        "verify_notes": list(res.notes),
        "concurrent_verifications": v_out.strip(),
        "lost_acknowledged": len(lost),
        "duplicates": duplicates,
        "verify_problems": list(res.problems)[:10],
        "errors": errors[:10],
        "anomalies": anomalies,
        "log_bytes": log.stat().st_size,
    }
    print(json.dumps(report, indent=2))
    return 0 if anomalies == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
