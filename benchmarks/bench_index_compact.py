"""A save after deletions on a large whole index (issue 16): load, delete documents,
save (compaction + a new generation), in a child process: wall and CPU seconds, peak
RSS. Runs on a copy of an index made by bench_index_stream.py (the copy is replaced).

  python benchmarks/bench_index_compact.py --index .cache/I/index_1000000 --delete 1000
  (``--src DIR``: run another medrag's source tree, e.g. a checkout of an older commit)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, random, resource, sys, time
from medrag.index import Index
path, n_delete = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
c0 = time.process_time()
ix = Index.load(path)
ids = ix.document_ids()
gone = random.Random(0).sample(ids, n_delete)
ix.delete(gone)
t1, c1 = time.perf_counter(), time.process_time()
ix.save(path)
t2, c2 = time.perf_counter(), time.process_time()
after = Index.load(path)
assert len(after.document_ids()) == len(ids) - n_delete
print(json.dumps({"documents": len(ids), "deleted": n_delete, "load_and_delete_s": round(t1 - t0, 2),
                  "save_wall_s": round(t2 - t1, 1), "save_cpu_s": round(c2 - c1, 1),
                  "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--delete", type=int, default=1000)
    ap.add_argument("--src", type=Path, default=None, help="PYTHONPATH of another medrag source tree")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.index.parent) as tmp:
        copy = Path(tmp) / "ix"
        shutil.copytree(args.index, copy)
        env = dict(os.environ, **({"PYTHONPATH": str(args.src)} if args.src else {}))
        out = subprocess.run([sys.executable, "-c", CHILD, str(copy), str(args.delete)], env=env,
                             capture_output=True, text=True, check=False)
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            return out.returncode
        res = json.loads(out.stdout.strip().splitlines()[-1])
    res["src"] = str(args.src or "this checkout")
    res["cmd"] = " ".join(sys.argv)
    res["loadavg"] = os.getloadavg()
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
