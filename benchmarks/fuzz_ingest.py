"""A longer fuzzing run of the ingestors than CI affords (tests/test_fuzz.py).

Mutates real files (PubMed XML excerpts and efetch files, MEDLINE text, guideline
PDFs, SciFact's BEIR corpus) and a generated PDF with the mutators of
tests/test_fuzz.py, plus two hostile ones of its own ("amplify": one element or an
unknown tag repeated up to 200,000 times; "nest": up to 100,000 levels of brackets or
tags), and checks each input with the same contract (only IngestError escapes with
on_error="raise", nothing with "skip", the two modes agree). Each input runs in a
worker process with a wall-clock limit (a hang kills and restarts the worker) and two
memory limits: the tracemalloc peak (Python objects) and the peak RSS over the RSS
before the input (libxml2's and pypdf's C allocations too; Linux, by resetting VmHWM).
Failing inputs are saved under --out for reproduction.

    python benchmarks/fuzz_ingest.py --seconds 300
    python benchmarks/fuzz_ingest.py --kinds pdf --seconds 120 --seed 7

Prints inputs tried and failures found, per ingestor and per failure signature.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import test_fuzz as tf  # noqa: E402  (the shared mutators and checker)

from medrag.ingest import iter_beir_corpus  # noqa: E402

# BEIR corpora: one more kind for the shared checker (same on_error/report contract).
tf.INGESTORS.setdefault("beir", iter_beir_corpus)
tf.SUFFIX.setdefault("beir", ".jsonl")
tf.TIME_LIMIT.setdefault("beir", 10.0)
tf.INTERESTING.setdefault("beir", [
    b"\n", b"{", b"}", b"[", b"]", b'"', b"\\", b'\\ud800', b'"\\udfff"', b"\xff\xfe", b"\xef\xbb\xbf",
    b"\xed\xa0\x80", b"\xc0\xaf", b"\x00", b'{"_id": {}}', b'{"_id": null}', b'"text": 1e999', b"NaN",
    b'{"_id": "1", "text": ["a"]}', b"\r\n", b"\xe2\x80\xa8",
])


def _amplify(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Repeat one element (XML) or line (text), or insert an unknown empty tag, many
    times: the shape of the memory attacks of issue 11 (millions of siblings)."""
    n = rng.choice([1_000, 10_000, 100_000, 200_000])
    if kind == "pubmed":
        ms = list(tf._ELEM_RE.finditer(data[:500_000]))
        if ms and rng.random() < 0.6:
            m = rng.choice(ms)
            close = data.find(b"</" + m.group(1) + b">", m.end())
            piece = data[m.start(): close + len(m.group(1)) + 3] if close > 0 else m.group(0)
        else:
            piece = rng.choice([b"<x/>", b"<b>x</b>", b"<PMID>1</PMID>", b"<i>", b"&amp;"])
    elif kind == "pdf":
        piece = rng.choice([b"0 0 m 1 1 l S\n", b"[(x)] TJ\n", b"q\n", b"<<>>"])
    else:
        lines = data.splitlines(keepends=True)
        piece = rng.choice(lines) if lines else b"x\n"
    piece = piece[:2_000]
    n = min(n, max(1, 8_000_000 // max(1, len(piece))))  # inputs stay under ~8 MB
    i = rng.randrange(len(data) + 1)
    return data[:i] + piece * n + data[i:]


def _nest(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Deep nesting: brackets (JSON), tags (XML), dictionaries (PDF)."""
    n = rng.choice([300, 1_000, 10_000, 100_000])
    opener, closer = {"pubmed": (b"<n>", b"</n>"), "pdf": (b"<<", b">>")}.get(kind, (b"[", b"]"))
    i = rng.randrange(len(data) + 1)
    return data[:i] + opener * n + closer * n + data[i:]


HOSTILE = {"amplify": _amplify, "nest": _nest}


def mutate(rng: random.Random, data: bytes, kind: str) -> tuple[bytes, list[str]]:
    """The shared mutations; one time in five, one hostile mutation on top."""
    data, names = tf.mutate(rng, data, kind)
    if rng.random() < 0.2:
        name = rng.choice(sorted(HOSTILE))
        data = HOSTILE[name](rng, data, kind)
        names.append(name)
    return data, names


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def data_root() -> Path:
    return Path(os.environ.get("MEDRAG_DATA", REPO.parent / "shared" / "data"))


def seeds(kinds: list[str], big_pdfs: bool) -> dict[str, list[tuple[str, bytes]]]:
    root = data_root()
    out: dict[str, list[tuple[str, bytes]]] = {k: [] for k in kinds}
    if "pubmed" in kinds:
        excerpt = root / "pubmed" / "excerpts" / "pubmed21n1298_feature_sample.xml"
        if excerpt.exists():
            for i, s in enumerate(tf.pubmed_seeds(excerpt, n_records=4, n_files=8)):
                out["pubmed"].append((f"excerpt-cut{i}", s))
            out["pubmed"].append(("excerpt-whole", excerpt.read_bytes()))
        for p in sorted((root / "pubmed" / "efetch").rglob("*.xml"))[:40]:
            out["pubmed"].append((p.name, p.read_bytes()))
    if "beir" in kinds:
        corpus = root / "scifact" / "corpus.jsonl"
        if corpus.exists():
            with open(corpus, "rb") as f:
                lines = [f.readline() for _ in range(60)]
            for i in range(0, 60, 6):
                out["beir"].append((f"scifact-lines{i}", b"".join(lines[i : i + 6])))
    if "medline" in kinds:
        for p in sorted((root / "pubmed" / "medline_text").rglob("*.txt")):
            out["medline"].append((p.name, p.read_bytes()))
    if "pdf" in kinds:
        out["pdf"].append(("generated", tf.sample_pdf()))
        out["pdf"].append(("generated-flate", tf.sample_pdf(compress=True)))
        guides = root / "guidelines"
        small = guides / "cdc_what_you_need_to_know_about_tb_2023.pdf"
        if small.exists():
            out["pdf"].append((small.name, small.read_bytes()))
        if big_pdfs:
            for p in sorted(guides.glob("*.pdf")):
                if p != small:
                    out["pdf"].append((p.name, p.read_bytes()))
    return {k: v for k, v in out.items() if v}


# --------------------------------------------------------------------------- worker


def _worker(conn, mem_limit: int) -> None:
    import logging
    import tracemalloc

    logging.disable(logging.CRITICAL)
    tracemalloc.start()
    while True:
        job = conn.recv()
        if job is None:
            return
        kind, path = job
        tracemalloc.reset_peak()
        rss_ok = _reset_peak_rss()
        rss0 = _status_kb("VmRSS") if rss_ok else None
        try:
            info = tf.check_input(kind, Path(path), time_limit_s=1e9)  # the parent times it
            peak = tracemalloc.get_traced_memory()[1]
            hwm = _status_kb("VmHWM") if rss_ok else None
            rss_peak = (hwm - rss0) * 1024 if hwm is not None and rss0 is not None else 0
            size = os.path.getsize(path)
            if peak > mem_limit + 20 * size:
                conn.send(("memory", f"tracemalloc peak {peak / 2**20:.0f} MiB for {size} bytes", info))
            elif rss_peak > mem_limit + 20 * size:
                conn.send(("memory", f"RSS peak +{rss_peak / 2**20:.0f} MiB for {size} bytes", info))
            else:
                info["rss_mb"] = rss_peak / 2**20
                conn.send(("ok", "", info))
        except tf.ContractViolation as exc:
            cause = exc.__cause__
            where = ""
            if cause is not None:
                tb = traceback.extract_tb(cause.__traceback__)
                where = f"{tb[-1].filename.split('site-packages/')[-1]}:{tb[-1].lineno}" if tb else ""
            conn.send(("contract", f"{exc} @ {where}", None))
        except BaseException as exc:  # noqa: BLE001
            conn.send(("crash", f"{type(exc).__name__}: {exc}"[:500], None))


class Runner:
    def __init__(self, mem_limit: int) -> None:
        self.mem_limit = mem_limit
        self.ctx = mp.get_context("fork")
        self._start()

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.mem_limit), daemon=True)
        self.proc.start()

    def run(self, kind: str, path: Path, timeout: float):
        self.conn.send((kind, str(path)))
        if self.conn.poll(timeout):
            try:
                return self.conn.recv()
            except EOFError:
                pass
        else:
            self.proc.kill()
            self.proc.join()
            self._start()
            return ("hang", f"no answer within {timeout:g}s", None)
        self.proc.join()
        code = self.proc.exitcode
        self._start()
        return ("died", f"worker died (exit code {code})", None)

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300, help="total time budget")
    ap.add_argument("--kinds", default="pubmed,medline,pdf,beir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="per-input wall-clock limit (s)")
    ap.add_argument("--mem-mb", type=float, default=256.0,
                    help="limit on the tracemalloc peak and on the RSS peak over the RSS before, plus 20x the input size")
    ap.add_argument("--big-pdfs", action="store_true", help="also mutate the large guideline PDFs (slow)")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "medrag-fuzz-failures",
                    help="where failing inputs are saved")
    args = ap.parse_args(argv)

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    corpus = seeds(kinds, args.big_pdfs)
    if not corpus:
        print("no seed data found (set MEDRAG_DATA)")
        return 2
    rng = random.Random(args.seed)
    runner = Runner(int(args.mem_mb * 2**20))
    tried: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    signatures: Counter[tuple[str, str, str]] = Counter()
    outcomes: Counter[tuple[str, str]] = Counter()
    slowest: dict[str, float] = {}
    rss_max: dict[str, float] = {}
    examples: dict[tuple[str, str, str], Path] = {}
    # time is shared evenly between the kinds asked for
    share = args.seconds / len(corpus)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medrag-fuzz-") as tmp:
        for kind, kind_seeds in corpus.items():
            deadline = time.perf_counter() + share
            while time.perf_counter() < deadline:
                name, data = rng.choice(kind_seeds)
                mutated, ops = mutate(rng, data, kind)
                path = Path(tmp) / f"input{tf.SUFFIX[kind]}"
                path.write_bytes(mutated)
                status, detail, info = runner.run(kind, path, args.timeout)
                tried[kind] += 1
                if info is not None:
                    slowest[kind] = max(slowest.get(kind, 0.0), info["seconds"])
                    rss_max[kind] = max(rss_max.get(kind, 0.0), info.get("rss_mb", 0.0))
                if status == "ok":
                    outcomes[(kind, "IngestError" if info["raised"] else "parsed")] += 1
                    continue
                failed[kind] += 1
                sig = (kind, status, detail.split(":")[0] if status != "contract" else detail[:160])
                signatures[sig] += 1
                if sig not in examples:
                    args.out.mkdir(parents=True, exist_ok=True)
                    keep = args.out / f"{kind}-{status}-{len(examples)}{tf.SUFFIX[kind]}"
                    keep.write_bytes(mutated)
                    (keep.with_suffix(keep.suffix + ".txt")).write_text(
                        f"seed: {name}\nmutations: {ops}\n{status}: {detail}\n"
                    )
                    examples[sig] = keep
    runner.close()
    elapsed = time.perf_counter() - t_start
    total, total_failed = sum(tried.values()), sum(failed.values())
    print(f"fuzz_ingest: {total} inputs tried in {elapsed:.0f}s, {total_failed} failures")
    for kind in corpus:
        ok_parsed = outcomes[(kind, "parsed")]
        ok_err = outcomes[(kind, "IngestError")]
        print(
            f"  {kind:8s} tried {tried[kind]:6d}  parsed {ok_parsed:6d}  IngestError {ok_err:6d}  "
            f"failures {failed[kind]:4d}  slowest {slowest.get(kind, 0.0):5.2f}s  "
            f"max RSS growth {rss_max.get(kind, 0.0):4.0f} MiB  (seeds: {len(corpus[kind])})"
        )
    for sig, n in signatures.most_common():
        print(f"  FAIL x{n}: {sig[0]} {sig[1]}: {sig[2]}  e.g. {examples[sig]}")
    return 1 if total_failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
