"""Ray: embed many PubMed files on GPU or CPU actors, row-aligned with the lexical store.

:func:`embed_pubmed` hands the input files, in order, to a pool of Ray actors
(:class:`ray.util.ActorPool`); each actor loads the encoder once (on a GPU when the
actors are given ``num_gpus``), parses a file (:func:`medrag.ingest.iter_pubmed`, the
same text as the lexical build: :func:`~medrag.store.build.pubmed_text`), embeds its
articles and writes them as one *part*: ``part-<i>.npy`` (float16 or float32, unit
rows) and ``part-<i>.ids`` (one document id per line), each written to a temporary
name, fsynced and renamed. The driver receives only each part's small record and
writes ``embeddings.json`` last, atomically: the parts in input-file order with their
sizes and sha256, the encoder's description and the dtype. Rows of the parts, read in
that order, are the rows of the lexical store that :func:`medrag.store.build.build_pubmed`
or :func:`medrag.store.distributed.build_pubmed` builds from the same files with the same
``on_error`` (tests/test_ray_embed.py checks it), so one row number names the same
article in both.

:func:`build_ann` then builds a disk-backed IVF-PQ index
(:class:`medrag.retrieve.ann.DiskIVFPQ`: codes resident, vectors memory-mapped for the
exact re-rank) from the parts in one streaming pass: trained on a sample drawn from all
parts, then each part added in order; memory is one part plus the codes. At 57 bytes a
vector resident (README, dense at 10M), all of PubMed's abstracts need ~1.4 GiB of
codes, so the dense index is served by one machine while the embedding, the cost that
needs many (MiniLM: 10-15 passages/s on a CPU core), is spread over the cluster.

Ray moves arguments and results between its processes with its own serialization
(cloudpickle); only trusted processes of your cluster take part. Nothing on disk is a
pickle. A failure (a bad record with ``on_error="raise"``, an actor that dies) leaves no
``embeddings.json`` of the run: a previous one stays as it was, with its parts (part file
names carry the run's token, so a run never overwrites another's); a successful run
removes the previous manifest's parts once its own manifest is durable.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np

from .._hashing import HashingWriter
from .._io import atomic_open, read_json, sha256_file
from ..errors import ConfigError, IndexFormatError, IngestError
from .build import pubmed_text
from .format import _fsync_dir

__all__ = ["embed_pubmed", "iter_parts", "build_ann", "MANIFEST"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: the run's manifest, written last
MANIFEST = "embeddings.json"
FORMAT = "medrag-embeddings"
VERSION = 1


def _atomic_write(path: Path, write: Any) -> str:
    """Write through ``write(f)`` to a temporary sibling, fsync, rename; returns the
    sha256 of the bytes as they were written (no read-back)."""
    with atomic_open(path, "wb") as f:
        h = HashingWriter(f)
        write(h)
    return h.hexdigest()


class _EmbedActor:
    """Holds one encoder; embeds one file per call into a part of ``out``."""

    def __init__(self, encoder: dict[str, Any], device: str, threads: int) -> None:
        import torch

        from ..retrieve.dense import SentenceTransformerEncoder, encoder_config_from_description, encoder_from_description

        torch.set_num_threads(max(1, threads))
        if encoder.get("type") == "sentence-transformers":
            self.enc = SentenceTransformerEncoder(encoder_config_from_description(encoder), device=device)
        else:
            self.enc = encoder_from_description(encoder)

    def describe(self) -> dict[str, Any]:
        return self.enc.describe()

    def embed(self, i: int, path: str, out: str, token: str, on_error: str, dtype: str, batch: int) -> dict[str, Any]:
        from ..ingest import IngestReport, iter_pubmed

        report = IngestReport()
        ids: list[str] = []
        texts: list[str] = []
        try:
            for doc in iter_pubmed(path, on_error=on_error, report=report):  # type: ignore[arg-type]
                ids.append(doc.id)
                texts.append(pubmed_text(doc))
        except IngestError as err:
            return {"error": {"reason": err.reason, "source": err.source, "record_id": err.record_id, "position": err.position}}
        vecs = np.zeros((len(texts), self.enc.dim), dtype=dtype)
        for s in range(0, len(texts), batch):
            vecs[s : s + batch] = self.enc.encode_documents(texts[s : s + batch])
        base = Path(out) / f"part-{i:06d}-{token}"
        npy, idf = base.with_suffix(".npy"), base.with_suffix(".ids")
        sha_v = _atomic_write(npy, lambda f: np.save(f, vecs, allow_pickle=False))
        sha_i = _atomic_write(idf, lambda f: f.write("".join(x + "\n" for x in ids).encode("utf-8")))
        return {
            "source": path,
            "rows": len(ids),
            "vectors": npy.name,
            "vectors_sha256": sha_v,
            "ids": idf.name,
            "ids_sha256": sha_i,
            "skipped": [{"reason": s.reason, "record_id": s.record_id, "position": s.position} for s in report.skipped],
            "deletions": [d.pmid for d in report.deletions],
        }


def embed_pubmed(
    paths: Iterable[PathLike],
    out: PathLike,
    encoder: Any,
    *,
    n_actors: int | None = None,
    num_gpus: float = 0.0,
    num_cpus: float = 1.0,
    dtype: Literal["float16", "float32"] = "float16",
    batch: int = 1024,
    on_error: Literal["raise", "skip"] = "raise",
    address: str | None = None,
) -> dict[str, Any]:
    """Embed PubMed XML files on Ray actors into parts under ``out``; returns the
    manifest written to ``out/embeddings.json``.

    Args:
        paths: the input files, in the order their articles get rows.
        out: the output directory (created; only ``part-*`` files and the manifest are
            written there).
        encoder: an :class:`~medrag.retrieve.dense.Encoder` (its ``describe()`` is sent;
            the model must be loadable on every node: a ``package:`` model or a path all
            nodes see) or such a description.
        n_actors: encoder actors (default: one per input file, at most 4).
        num_gpus / num_cpus: resources per actor (``num_gpus > 0``: the model runs on
            CUDA in each actor; torch threads = ``num_cpus``).
        dtype: stored vectors (float16 halves the disk; the re-rank reads them).
        batch: articles per ``encode_documents`` call (bounds an actor's working memory).
        on_error: as :func:`medrag.ingest.iter_pubmed`; must match the lexical build's so
            that rows line up.
        address: the Ray cluster to join when no connection is open (None: a new local one).
    """
    from .distributed import _ray

    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    if dtype not in ("float16", "float32"):
        raise ConfigError(f"dtype must be 'float16' or 'float32', not {dtype!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a positive int, not {batch!r}")
    desc = encoder if isinstance(encoder, dict) else encoder.describe()
    files = [os.path.abspath(p) for p in paths]
    if not files:
        raise ConfigError("embed_pubmed needs at least one file")
    ray = _ray(address)
    from ray.util import ActorPool

    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    n = n_actors if n_actors is not None else min(len(files), 4)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n_actors must be a positive int, not {n_actors!r}")
    device = "cuda" if num_gpus > 0 else "cpu"
    cls = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(_EmbedActor)
    actors = [cls.remote(desc, device, int(max(1, num_cpus))) for _ in range(min(n, len(files)))]
    token = secrets.token_hex(4)
    done = False
    try:
        described = ray.get(actors[0].describe.remote())
        pool = ActorPool(actors)
        args = [(i, p) for i, p in enumerate(files)]
        parts = list(pool.map(lambda a, v: a.embed.remote(v[0], v[1], str(outp.resolve()), token, on_error, dtype, batch), args))
        for rec in parts:
            if "error" in rec:
                raise IngestError(**rec["error"])
        done = True
    finally:
        for a in actors:
            ray.kill(a)
        if not done:  # this run's parts only (its token): nothing another run wrote
            for f in outp.glob(f"part-*-{token}.*"):
                f.unlink(missing_ok=True)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "encoder": described,
        "dim": int(described.get("dim") or 0),
        "dtype": dtype,
        "rows": sum(r["rows"] for r in parts),
        "parts": parts,
    }
    try:
        old = read_json(outp / MANIFEST)
    except IndexFormatError:
        old = {}
    _atomic_write(outp / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1).encode("utf-8")))
    _fsync_dir(outp)
    keep = {r[k] for r in parts for k in ("vectors", "ids")}
    for r in old.get("parts", []) if isinstance(old, dict) else []:  # the previous run's parts, now unreferenced
        for k in ("vectors", "ids"):
            name = r.get(k) if isinstance(r, dict) else None
            if isinstance(name, str) and name.startswith("part-") and "/" not in name and name not in keep:
                (outp / name).unlink(missing_ok=True)
    logger.info("embedded %d file(s), %d rows, into %s on %d actor(s)", len(files), manifest["rows"], out, len(actors))
    return manifest


def iter_parts(out: PathLike, *, verify: bool = True) -> Iterator[tuple[list[str], np.ndarray]]:
    """``(ids, vectors)`` of each part of ``out/embeddings.json``, in row order; vectors
    memory-mapped. ``verify``: check each part's sha256 first (else only its shape)."""
    outp = Path(out)
    m = read_json(outp / MANIFEST)
    if m.get("format") != FORMAT or m.get("version") != VERSION:
        raise IndexFormatError(f"{outp / MANIFEST}: not a {FORMAT} v{VERSION} manifest")
    for rec in m["parts"]:
        npy, idf = outp / rec["vectors"], outp / rec["ids"]
        if verify and (sha256_file(npy) != rec["vectors_sha256"] or sha256_file(idf) != rec["ids_sha256"]):
            raise IndexFormatError(f"{npy}: sha256 differs from {MANIFEST} (a damaged or replaced part)")
        vecs = np.load(npy, mmap_mode="r", allow_pickle=False)
        ids = idf.read_text(encoding="utf-8").splitlines()
        if vecs.ndim != 2 or vecs.shape != (rec["rows"], m["dim"]) or len(ids) != rec["rows"]:
            raise IndexFormatError(f"{npy}: shape {vecs.shape}, ids {len(ids)}; {MANIFEST} says ({rec['rows']}, {m['dim']})")
        yield ids, vecs


def build_ann(out: PathLike, directory: PathLike, config: Any = None, *, sample: int | None = None, seed: int = 0) -> Any:
    """A :class:`~medrag.retrieve.ann.DiskIVFPQ` in ``directory`` from the parts of
    ``out``, rows in the parts' order: trained on ``sample`` rows (default: what the
    configuration asks for) drawn uniformly from all parts, then every part added and
    flushed to disk in turn; saved and returned."""
    from ..retrieve.ann import DiskIVFPQ

    m = read_json(Path(out) / MANIFEST)
    index = DiskIVFPQ.create(directory, int(m["dim"]), config)
    total = int(m["rows"])
    want = min(total, sample or index.train_rows())
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=want, replace=False)) if want < total else np.arange(total)
    rows, base = [], 0
    for _ids, vecs in iter_parts(out):
        sel = pick[(pick >= base) & (pick < base + len(vecs))] - base
        rows.append(np.asarray(vecs[sel], dtype=np.float32))
        base += len(vecs)
    x = np.concatenate(rows) if rows else np.zeros((0, int(m["dim"])), np.float32)
    if len(x) >= 256:
        index.train(x, expected_rows=total)
    del x, rows
    for _ids, vecs in iter_parts(out, verify=False):  # verified in the sampling pass
        index.add(np.asarray(vecs, dtype=np.float32))
        index.flush()
    index.save()
    return index
