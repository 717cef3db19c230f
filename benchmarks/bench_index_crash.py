"""Crash-and-concurrency benchmark for the index directory (issue 11).

N worker processes share one index path (a small lexical-only index, so each
operation is fast). Each loops over random operations: search, add, delete, save,
reload. A killer sends SIGKILL to a random worker at random moments (mid-save too) and
starts a new one. A checker loads the path over and over while this goes on. Reported:
operations done, kills, and anomalies, where an anomaly is any of

* the index path fails to load (``verify=True``: sizes, sha256, structure), or is not
  a directory;
* a loaded generation holds a set of documents that no worker ever tried to save (a
  mix of two saves, or a lost half), or its chunks name documents it does not hold;
* a search raises, or returns a passage of a document the loaded index does not hold;
* a loaded index, not changed by its own process, answers a probe query differently
  later (it must keep reading the generation it loaded, whatever others save);
* a save raises anything but IndexConflictError (the documented "someone else saved
  first" / "lock still held" answer);
* a worker dies of anything but the killer's SIGKILL;
* after the run, one more save leaves staging or retired directories beside the index.

Run:  nice -n 10 python benchmarks/bench_index_crash.py [--workers 4] [--seconds 240]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_DOCS = """
from medrag.types import Document, PubDate, PubmedMetadata, Section, SourceFile
import random

def docs(n=120, seed=7):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(400)] + ["dopamine", "cocaine", "trial", "aspirin", "cancer"]
    src = SourceFile("synthetic", "0" * 64)
    out = []
    for i in range(n):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(30, 90))) + "."
        out.append(Document(
            id=f"pmid:{i + 1}", kind="pubmed", title=f"title {i} " + rng.choice(words), text=text,
            sections=(Section(kind="abstract", label=None, start=0, end=len(text)),),
            source=src, year=1990 + i % 30, pubmed=PubmedMetadata(pmid=str(i + 1), pub_date=PubDate(year=1990 + i % 30)),
        ))
    return out
"""

_WORKER = _DOCS + """
import hashlib, inspect, os, sys, time
from medrag import errors
from medrag.index import Index, IndexConfig
IndexConflictError = getattr(errors, "IndexConflictError", ())  # () with --src of medrag 0.1
SAVE_KW = {"lock_timeout": 30} if "lock_timeout" in inspect.signature(Index.save).parameters else {}

path, logdir, wid, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
pool = docs()
log = os.open(os.path.join(logdir, f"w{wid}.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
intents = os.open(os.path.join(logdir, "intents.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
PROBE = "dopamine cocaine trial"

def note(op, status, detail=""):
    os.write(log, f"{op}\\t{status}\\t{detail}\\n".encode())

def key(ps):
    return tuple((p.chunk.id, round(p.score, 5)) for p in ps)

def docset_hash(ids):
    return hashlib.sha256("\\n".join(sorted(ids)).encode()).hexdigest()

def load():
    idx = Index.load(path, verify=False)
    return idx, key(idx.search(PROBE, k=5)), set(idx.document_ids())

idx, probe, held = load()
changed = False
while True:
    op = rng.choices(["search", "add", "delete", "save", "reload"], [5, 2, 1, 2, 1])[0]
    try:
        if op == "search":
            ps = idx.search(rng.choice([PROBE, "aspirin", "cancer w3 w17", "w100 w200"]), k=5)
            bad = [p.chunk.doc_id for p in ps if p.chunk.doc_id not in held]
            if bad:
                note(op, "ANOMALY", f"passage of a document the index does not hold: {bad[:3]}")
                continue
            if not changed and key(idx.search(PROBE, k=5)) != probe:
                note(op, "ANOMALY", "a loaded, unchanged index answered the probe differently")
                continue
            note(op, "ok")
        elif op == "add":
            new = rng.sample(pool, rng.randint(1, 4))
            idx.add(new)
            held |= {d.id for d in new}
            changed = True
            note(op, "ok")
        elif op == "delete":
            victims = rng.sample(sorted(held), min(len(held) - 1, rng.randint(1, 3))) if len(held) > 5 else []
            n = idx.delete(victims)
            if n != len(victims):
                note(op, "ANOMALY", f"deleted {n} of {len(victims)} held documents")
                continue
            held -= set(victims)
            changed = True
            note(op, "ok")
        elif op == "save":
            os.write(intents, (docset_hash(idx.document_ids()) + "\\n").encode())
            note(op, "begin")
            try:
                idx.save(path, **SAVE_KW)
            except IndexConflictError:
                note(op, "conflict")
                idx, probe, held = load()
                changed = False
                continue
            note(op, "ok")
            probe, changed = key(idx.search(PROBE, k=5)), False
        else:
            idx, probe, held = load()
            changed = False
            note(op, "ok")
    except Exception as exc:  # noqa: BLE001 - an anomaly, recorded
        note(op, "ANOMALY", f"{type(exc).__name__}: {str(exc)[:300]}")
        try:
            idx, probe, held = load()
            changed = False
        except Exception as exc2:  # noqa: BLE001
            note("reload", "ANOMALY", f"{type(exc2).__name__}: {str(exc2)[:300]}")
            time.sleep(0.1)
"""

SRC = REPO / "src"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return env


def _docset_hash(ids) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=240.0)
    ap.add_argument("--kill-every", type=float, default=3.0, help="mean seconds between kills")
    ap.add_argument("--check-every", type=float, default=0.5, help="seconds between the checker's loads")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--json", type=Path, help="also write the summary here")
    ap.add_argument("--src", type=Path, default=SRC, help="the medrag sources to test (a control run: "
                    "those of 0.1, from `git archive 404872a src | tar -x -C /tmp/v01`)")
    args = ap.parse_args()
    globals()["SRC"] = args.src.resolve()
    sys.path.insert(0, str(SRC))
    ns: dict = {}
    exec(textwrap.dedent(_DOCS), ns)  # noqa: S102 - our own source, shared with the workers
    from medrag.index import Index, IndexConfig

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench_index_crash_"))
    path, logs = work / "ix", work / "logs"
    logs.mkdir()
    first = ns["docs"]()[:40]
    Index.build(first, IndexConfig(encoder=None)).save(path)
    intents = {_docset_hash(d.id for d in first)}

    def log_size(wid: int) -> int:
        f = logs / f"w{wid}.log"
        return f.stat().st_size if f.exists() else 0

    spawned_at: dict[int, int] = {}

    def start(wid: int) -> subprocess.Popen:
        spawned_at[wid] = log_size(wid)
        err = open(logs / f"w{wid}.{time.monotonic_ns()}.err", "w")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_WORKER), str(path), str(logs), str(wid), str(rng.randrange(1 << 30))],
            stdout=subprocess.DEVNULL, stderr=err, env=_env(),
        )

    workers = {w: start(w) for w in range(args.workers)}
    anomalies: list[str] = []
    kills = checks = max_leftovers = 0
    t_end = time.monotonic() + args.seconds
    next_kill = time.monotonic() + rng.expovariate(1 / args.kill_every)
    while time.monotonic() < t_end:
        for w, p in list(workers.items()):
            if p.poll() is not None:  # died on its own: not our SIGKILL
                anomalies.append(f"worker {w} exited by itself with {p.returncode}")
                workers[w] = start(w)
        # kill a worker that is past its start-up (it has logged an operation since)
        busy = [w for w in workers if log_size(w) > spawned_at[w]]
        if time.monotonic() >= next_kill and busy:
            w = rng.choice(busy)
            workers[w].send_signal(signal.SIGKILL)
            workers[w].wait()
            kills += 1
            workers[w] = start(w)
            next_kill = time.monotonic() + rng.expovariate(1 / args.kill_every)
        # the checker: load and verify whatever is there now, read every row, search
        idx = None
        try:
            idx = Index.load(path, verify=True)
            intents |= set((logs / "intents.log").read_text().split()) if (logs / "intents.log").exists() else set()
            ids = set(idx.document_ids())
            if _docset_hash(ids) not in intents:
                anomalies.append(f"check: a generation of {len(ids)} documents that no worker saved")
            bad_rows = sum(1 for r in range(len(idx)) if idx.chunk(r).doc_id not in ids)
            if bad_rows:
                anomalies.append(f"check: {bad_rows} chunk rows of documents the index does not hold")
            if any(p.chunk.doc_id not in ids for p in idx.search("dopamine cocaine trial", k=5)):
                anomalies.append("check: a passage of a document the index does not hold")
        except Exception as exc:  # noqa: BLE001 - an anomaly, recorded
            anomalies.append(f"check: the index path did not load: {type(exc).__name__}: {exc}")
        finally:
            if idx is not None and hasattr(idx, "close"):
                idx.close()
            idx = None
        checks += 1
        if not path.is_dir() or path.is_symlink():
            anomalies.append("check: the index path is not a directory")
        time.sleep(args.check_every)
        leftovers = [p.name for p in work.iterdir() if p.name.startswith(".ix.") and p.name != ".ix.lock"]
        max_leftovers = max(max_leftovers, len(leftovers))
    for p in workers.values():
        p.send_signal(signal.SIGKILL)
        p.wait()
    kills += len(workers)
    # after everything stopped: one more save sweeps what the killed saves left
    before_sweep = sorted(p.name for p in work.iterdir() if p.name.startswith(".ix.") and p.name != ".ix.lock")
    final = Index.load(path, verify=True)
    intents |= set((logs / "intents.log").read_text().split()) if (logs / "intents.log").exists() else set()
    if _docset_hash(final.document_ids()) not in intents:
        anomalies.append("final: a generation that no worker saved")
    final.save(path)
    if hasattr(final, "close"):
        final.close()
    after_sweep = sorted(p.name for p in work.iterdir() if p.name.startswith(".ix.") and p.name != ".ix.lock")
    if after_sweep:
        anomalies.append(f"final: {len(after_sweep)} leftover directories after the sweep: {after_sweep[:3]}")

    ops: collections.Counter = collections.Counter()
    statuses: collections.Counter = collections.Counter()
    killed_mid_save = 0
    for f in logs.glob("w*.log"):
        lines = f.read_text().splitlines()
        for i, line in enumerate(lines):
            parts = line.split("\t")
            if len(parts) < 2:
                continue  # a line cut by SIGKILL
            if parts[1] == "begin":  # a save started: did it end?
                nxt = lines[i + 1].split("\t") if i + 1 < len(lines) else []
                killed_mid_save += not (len(nxt) >= 2 and nxt[0] == "save")
                continue
            ops[parts[0]] += 1
            statuses[parts[1]] += 1
            if parts[1] == "ANOMALY":
                anomalies.append(f"{parts[0]}: {parts[2] if len(parts) > 2 else ''}")
    summary = {
        "medrag": str(SRC),
        "workers": args.workers,
        "seconds": args.seconds,
        "operations": sum(ops.values()),
        "by_operation": dict(ops),
        "saves_committed": sum(1 for f in logs.glob("w*.log") for ln in f.read_text().splitlines() if ln.startswith("save\tok")),
        "save_conflicts": statuses["conflict"],
        "kills": kills,
        "kills_during_a_save": killed_mid_save,
        "checker_loads": checks,
        "max_leftover_dirs_during_run": max_leftovers,
        "leftover_dirs_before_final_save": len(before_sweep),
        "leftover_dirs_after_final_save": len(after_sweep),
        "anomalies": len(anomalies),
        "anomaly_kinds": dict(collections.Counter(re.sub(r"\d+", "N", a)[:90] for a in anomalies).most_common(12)),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if not anomalies else 1


if __name__ == "__main__":
    sys.exit(main())
