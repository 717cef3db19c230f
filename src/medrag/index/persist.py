"""Saving and loading an index: the files of a generation and its manifest, the
atomic save (see :mod:`medrag._indexdir` for the commit, locking and clean-up rules),
and the checked load."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _indexdir
from .._docids import FILES as DOC_ID_FILES
from .._docids import DocIds
from .._indexparts import ChunkStore, DocTable, check_offsets
from .._hashing import save_npy, write_file
from .._io import check_format, library_version, load_npy, sha256_file
from ..chunking import ChunkConfig
from ..errors import ConfigError, IndexConflictError, IndexFormatError, IndexNotFoundError, IndexVersionError
from ..retrieve.analyzer import Analyzer
from ..retrieve.bm25 import _ARRAYS as _BM25_ARRAYS
from ..retrieve.bm25 import BM25Index, BM25Params
from ..retrieve.dense import (
    _PACKAGE_MODELS,
    Encoder,
    EncoderConfig,
    VectorConfig,
    VectorIndex,
    encoder_config_from_description,
    encoder_from_description,
)
from .grades import GradeTable
from .config import FORMAT, FORMAT_VERSION, READS, FusionConfig, IndexConfig
from .config import MANIFEST as _MANIFEST
from .lexical import StoreLexical, write_segments
from .storelex import store_hashes
from .mutate import compact_locked
from .verify import Verify, check_files, check_verify, clock_after, record_bytes, restamp, stats_of, trusted
from .verify import _stat_key as stat_key

if TYPE_CHECKING:
    from .core import Index

__all__ = ["save", "write_generation", "finish_generation", "prior_hashes", "load", "load_pinned"]

logger = logging.getLogger("medrag.index")


def save(ix: "Index", directory: str | os.PathLike[str], *, lock_timeout: float | None = 60.0) -> Path:
    """:meth:`Index.save` (documented there)."""
    if ix._vectors is not None and ix._encoder is None:
        raise ConfigError("this index was loaded without its encoder; load it with one to save it")
    given = Path(directory)
    target = _indexdir.save_target(given, FORMAT)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _indexdir.write_lock(target, lock_timeout):
        where = _indexdir.check_target(target, FORMAT)
        if (
            ix._origin is not None
            and where.kind != "new"
            and Path(ix._origin[0]) == target.resolve()
            and where.current_id != ix._origin[1]
        ):
            raise IndexConflictError(
                f"{given} was saved by another writer (index {where.current_id}) after this index "
                f"loaded it (index {ix._origin[1]}); saving would discard those changes. "
                "Load it again and reapply yours."
            )
        _indexdir.sweep(target)
        index_id = uuid.uuid4().hex[:16]
        staging = _indexdir.staging_name(target, index_id)
        old: Path | None = None
        committed = False
        try:
            _indexdir.make_staging(staging)
            with ix._rw.write():
                compact_locked(ix)
                # before anything is linked into the staging directory (a link changes
                # the status-change time the loaded generation's record vouches by)
                prior = prior_hashes(ix)
                write_generation(ix, staging, index_id, prior=prior)
            _indexdir.fsync_tree(staging)
            old = _indexdir.commit(staging, where, index_id)
            committed = True
        finally:
            if not committed:  # an error, a full disk, Ctrl-C: leave nothing behind
                _indexdir.remove_staging(staging)
        # serve from the saved files from now on (memory released, nothing read from
        # the old generation), then retire the old generation
        loaded = type(ix).load(target, encoder=ix._encoder, verify=False)
        with ix._rw.write():
            ix._store.close()
            ix._docs.close()
            ix._store = loaded._store
            ix._docs = loaded._docs
            ix._doc_alive = loaded._doc_alive
            ix._new_chunks = []
            ix._bm25 = loaded._bm25
            ix._vectors = loaded._vectors
            ix._grades = loaded._grades
            ix._version += 1
            ix._chunk_doc = loaded._chunk_doc
            ix._manifest = loaded._manifest
            ix._refresh_doc_arrays()
            pinned, origin = loaded._pin, loaded._origin
            if loaded._finalizer is not None:
                loaded._finalizer.detach()
            ix._adopt_pin(pinned, origin)
        if old is not None:
            try:  # the new generation's files, before the retirement
                before: dict[str, list[int]] | None = stats_of(target, ix._manifest["files"])
            except OSError:
                before = None
            if _indexdir.retire(old) and before is not None:
                restamp(target, before)  # linked files' ctime moved: the record still vouches (.verify.restamp)
    logger.info("saved index %s to %s", index_id, target)
    return given


def prior_hashes(ix: "Index") -> dict[tuple[int, int], tuple[str, str, list[int], bool]]:
    """The files of the generation ``ix`` was loaded from (or last saved to), by
    (device, inode): ``(name, recorded sha256, (size, mtime_ns, ctime_ns, inode),
    vouched)``, where ``vouched`` says that the generation's verification record
    vouches for the file as it is now (:func:`medrag.index.verify.trusted`). A save
    hard-links the immutable segments of an ``ivfpq-disk`` vector index from there
    instead of copying them; :func:`write_generation` reuses the sha256 of such a file
    when it is vouched for and unchanged, instead of reading it again. Empty for an
    index never saved, or when the directory holds another generation now."""
    if ix._origin is None:
        return {}
    root = Path(ix._origin[0])
    try:
        mbytes = (root / _MANIFEST).read_bytes()
        manifest = json.loads(mbytes.decode("utf-8"))
        files = manifest["files"]
        if manifest.get("index_id") != ix._origin[1] or not isinstance(files, dict):
            return {}
        try:
            record: bytes | None = (root / _indexdir.RECORD).read_bytes()
        except OSError:
            record = None
        out: dict[tuple[int, int], tuple[str, str, list[int], bool]] = {}
        stats: dict[str, list[int]] = {}
        devs: dict[str, int] = {}
        for rel, meta in files.items():
            if not (isinstance(meta, dict) and isinstance(meta.get("sha256"), str)):
                continue
            st = os.stat(root / str(rel), follow_symlinks=False)
            stats[str(rel)], devs[str(rel)] = stat_key(st), int(st.st_dev)
        vouched = trusted(record, mbytes, stats)
        for rel, st in stats.items():
            out[(devs[rel], st[3])] = (rel, str(files[rel]["sha256"]), st, rel in vouched)
        return out
    except (OSError, ValueError, UnicodeDecodeError, RecursionError, KeyError, TypeError, AttributeError):
        return {}  # no usable prior generation: every file is hashed


def _sha256_of(
    p: Path, rel: str, prior: dict[tuple[int, int], tuple[str, str, list[int], bool]],
    known: dict[str, tuple[int, str]] | None = None,
) -> str:
    """The sha256 of the new generation's file ``p``: the prior generation's recorded
    value for the same (hard-linked) file when its record vouched for it and its size
    and modification time are unchanged; for a file this save wrote (not a link into the
    prior generation), the digest ``known[rel]`` computed while writing it, when its size
    is still the size written; else read from the file. A linked file whose
    bytes no longer match its recorded sha256 was altered after it was saved, and the
    save stops rather than record the altered bytes as good."""
    st = os.stat(p)
    old = prior.get((int(st.st_dev), int(st.st_ino)))
    if old is not None and old[3] and stat_key(st)[:2] == old[2][:2]:
        return old[1]
    written = (known or {}).get(rel) if old is None else None
    if written is not None and written[0] == st.st_size:
        return written[1]
    sha = sha256_file(p)
    if old is not None and sha != old[1]:
        raise IndexFormatError(
            f"{rel}: the file {old[0]} of the loaded generation fails its sha256 check (altered or corrupt since "
            "it was saved); nothing was saved"
        )
    return sha


def write_generation(
    ix: "Index", d: Path, index_id: str, *, prior: dict[tuple[int, int], tuple[str, str, list[int], bool]] | None = None
) -> None:
    """Write every file of ``ix`` and its manifest into the (new, empty) directory ``d``.
    ``prior`` (:func:`prior_hashes`): files of the loaded generation that may be
    hard-linked into ``d``, whose recorded sha256 is reused when still valid."""
    d.mkdir(parents=True, exist_ok=True)
    n = ix._bm25.n_rows
    # (size, sha256) of the files written here, computed while writing them (medrag._hashing)
    known: dict[str, tuple[int, str]] = {}
    doc_offsets = np.zeros(len(ix._docs) + 1, np.int64)

    def doc_lines(f: Any) -> None:
        pos = 0
        for i in range(len(ix._docs)):
            line = ix._docs.raw(i)
            f.write(line)
            pos += len(line)
            doc_offsets[i + 1] = pos

    offsets = np.zeros(n + 1, np.int64)

    def chunk_lines(f: Any) -> None:
        pos = 0
        for row in range(n):
            if row < len(ix._store):
                line = ix._store.raw(row)
            else:
                c = ix._new_chunks[row - len(ix._store)]
                line = (json.dumps(c.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
            f.write(line)
            pos += len(line)
            offsets[row + 1] = pos

    # every file is fsync'd with the whole tree before the commit (_indexdir.fsync_tree)
    known["docs.jsonl"] = write_file(d / "docs.jsonl", doc_lines, fsync=False)
    known.update(ix._docs.ids.write(d))  # doc_ids.bin and its arrays (medrag._docids)
    known["chunks.jsonl"] = write_file(d / "chunks.jsonl", chunk_lines, fsync=False)
    for rel, arr in (
        ("doc_offsets.npy", doc_offsets),
        ("doc_year.npy", np.asarray(ix._docs.years, np.int32)),
        ("doc_retracted.npy", np.asarray(ix._docs.retracted, bool)),
        ("chunk_offsets.npy", offsets),
        ("chunk_doc.npy", np.asarray(ix._chunk_doc, dtype=np.int32)),
    ):
        known[rel] = save_npy(d / rel, arr, fsync=False)
    grades = ix._grade_table().save(d)
    lexical = None
    if isinstance(ix._bm25, StoreLexical):  # loaded from a store: changed in place (.storelex)
        if ix._lexical != "segments":
            raise ConfigError("an index loaded from a segmented lexical store saves as one (lexical='segments')")
        lexical = ix._bm25.write_store(d, lambda r: ix.chunk(r).id)
    elif ix._lexical == "segments":
        lexical = write_segments(ix._bm25, d, ix.config.analyzer, [ix.chunk(r).id for r in range(n)])
    else:
        ix._bm25.save(d / "bm25")
    if lexical is not None:  # the store records the sha256 of its files as its writers wrote them
        known.update(store_hashes(d / "lexical", "lexical/"))
    dense: dict[str, Any] | None = None
    if ix._vectors is not None and ix._encoder is not None:
        dense_known: dict[str, tuple[int, str]] = {}
        ix._vectors.save(d / "dense", hashes=dense_known)
        known.update({f"dense/{k}": v for k, v in dense_known.items()})
        dense = {
            "encoder": ix._encoder.describe(),
            "dim": ix._encoder.dim,
            "metric": "inner_product (unit vectors: cosine)",
            "vectors": asdict(ix.config.vectors),
            "faiss_factory": ix.config.vectors.factory,
        }
    finish_generation(
        d, index_id, config=ix.config, known=known, prior=prior, fingerprint=ix._docs.ids.fingerprint(),
        counts={"documents": len(ix._docs), "chunks": n}, grades=grades, lexical=lexical, dense=dense,
    )


def finish_generation(
    d: Path,
    index_id: str,
    *,
    config: IndexConfig,
    known: dict[str, tuple[int, str]],
    prior: dict[tuple[int, int], tuple[str, str, list[int], bool]] | None,
    fingerprint: str,
    counts: dict[str, int],
    grades: dict[str, Any] | None,
    lexical: dict[str, Any] | None,
    dense: dict[str, Any] | None,
) -> None:
    """List every file written under ``d`` (size and sha256: from ``known`` where the
    writer hashed it, a linked ``prior`` file's recorded hash, else read), write the
    manifest, and record the generation as verified (:mod:`.verify`)."""
    clock = clock_after(d)  # before hashing, after the last write (see .verify.trusted)
    files = {}
    for p in sorted(d.rglob("*")):
        if p.is_file():
            rel = p.relative_to(d).as_posix()
            files[rel] = {"sha256": _sha256_of(p, rel, prior or {}, known), "size": p.stat().st_size}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": library_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "index_id": index_id,
        "corpus_fingerprint": fingerprint,
        "counts": counts,
        "chunking": asdict(config.chunking),
        "analyzer": config.analyzer.to_dict(),
        "bm25": config.bm25.to_dict(),
        "dense": dense,
        "fusion": asdict(config.fusion),
        "grades": grades,
        **({"lexical": lexical} if lexical else {}),  # absent: the bm25/ arrays (every older index)
        "files": files,
    }
    data = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")
    tmp = d / (_MANIFEST + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, d / _MANIFEST)
    # the sha256 values were just computed from the files as written: the generation is
    # verified, and its record makes the first load skip the full pass (see .verify)
    if clock is not None:
        (d / _indexdir.RECORD).write_bytes(record_bytes(data, stats_of(d, files), clock))


def load(
    cls: "type[Index]",
    directory: str | os.PathLike[str],
    *,
    encoder: Encoder | None = None,
    verify: Verify = True,
    mmap: bool = True,
    load_encoder: bool = True,
    trust_encoder: bool = False,
) -> "Index":
    """:meth:`Index.load` (documented there): pin the current generation, then load it."""
    check_verify(verify)
    root = Path(directory)
    if not os.path.lexists(root):
        # without an atomic exchange a save moves the old generation to
        # .NAME.old-<id> before the new one is in place: a crash between leaves it
        recovered = _indexdir.recover_path(root)
        if recovered is not None:
            logger.warning("%s is missing; loading %s left by an interrupted save", directory, recovered)
            root = recovered
    pinned = _indexdir.pin(root)
    index = None
    try:
        index = load_pinned(
            cls, pinned, encoder=encoder, verify=verify, mmap=mmap, load_encoder=load_encoder, trust_encoder=trust_encoder
        )
    except (IndexFormatError, IndexNotFoundError, ConfigError) as exc:
        msg = pinned.show(str(exc))
        if msg != str(exc) and type(exc) in (IndexFormatError, IndexVersionError, IndexNotFoundError, ConfigError):
            raise type(exc)(msg) from exc
        raise
    finally:
        if index is None:  # any failure, Ctrl-C included: the pin is let go
            pinned.release()
    pinned.close_dir()
    if isinstance(index._bm25, StoreLexical):
        index._bm25.rebind(pinned.display / "lexical")  # as the ivfpq-disk segments below
    disk = getattr(index._vectors, "_disk", None)
    if disk is not None:
        # it was opened through the pinned directory's descriptor (/proc/self/fd/N),
        # closed now: a later save links its segment files by the directory's own path
        disk._directory = pinned.display / "dense"
    index._adopt_pin(pinned, (str(root.resolve()), index.id))
    return index


def verify_saved(path: str, index_id: str) -> dict[str, Any]:
    """:meth:`Index.verify`: the full sha256 pass over generation ``index_id`` at
    ``path`` (and its record)."""
    t0 = time.perf_counter()
    pinned = _indexdir.pin(Path(path))
    try:
        mpath = Path(path) / _MANIFEST
        try:
            manifest_bytes = pinned.read_manifest()
            manifest = json.loads(manifest_bytes.decode("utf-8"))
            files = manifest["files"]
            found = str(manifest.get("index_id"))
        except (ValueError, UnicodeDecodeError, RecursionError, KeyError, TypeError) as exc:
            raise IndexFormatError(f"{mpath} is not a valid manifest: {exc}") from exc
        if found != index_id:
            raise IndexConflictError(
                f"{path} now holds index {found}, saved after this index (index {index_id}) was loaded; "
                "load it again to verify it"
            )
        if not isinstance(files, dict):
            raise IndexFormatError(f"{mpath} lists no files")
        try:
            info = check_files(pinned, files, manifest_bytes, "full")
        except IndexFormatError as exc:
            raise IndexFormatError(pinned.show(str(exc))) from exc
    finally:
        pinned.release()
    return {"files": info["files"], "bytes": info["bytes"], "seconds": time.perf_counter() - t0}


def load_pinned(
    cls: "type[Index]",
    pinned: _indexdir.Pinned,
    *,
    encoder: Encoder | None,
    verify: Verify,
    mmap: bool,
    load_encoder: bool,
    trust_encoder: bool,
) -> "Index":
    """Check and open the generation ``pinned`` holds (manifest, sizes, checksums,
    structure) and build the index over its files."""
    root = pinned.base
    mpath = root / _MANIFEST
    try:
        manifest_bytes = pinned.read_manifest()
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise IndexFormatError(f"{mpath} is not valid JSON: {exc}") from exc
    got = manifest.get("format_version") if isinstance(manifest, dict) else None
    readable = type(got) is int and got in READS  # not True (== 1), not "1"
    check_format(manifest, mpath, FORMAT, got if readable else FORMAT_VERSION, what="manifest")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise IndexFormatError(f"{mpath} lists no files")
    required = {
        "docs.jsonl", "doc_offsets.npy", "doc_year.npy", "doc_retracted.npy",
        "chunks.jsonl", "chunk_offsets.npy", "chunk_doc.npy",
    } | ({"doc_ids.json"} if manifest["format_version"] == 1 else set(DOC_ID_FILES))
    lexical = manifest.get("lexical")
    engine = lexical.get("engine") if isinstance(lexical, dict) else None if lexical is None else "?"
    if engine not in (None, "segments"):
        raise IndexFormatError(f"{mpath}: unknown lexical engine {lexical!r}")
    if engine is None:
        required |= {"bm25/bm25.json", "bm25/vocab.json"} | {f"bm25/{a}.npy" for a in _BM25_ARRAYS}
    if manifest.get("dense"):
        required.add("dense/vectors.npy")
    missing = required - set(files)
    if missing:
        raise IndexFormatError(f"{mpath} does not list {sorted(missing)}")
    if os.path.lexists(root / "dense" / "index.faiss") and "dense/index.faiss" not in files:
        raise IndexFormatError(f"{mpath} does not list dense/index.faiss")
    checked = check_files(pinned, files, manifest_bytes, check_verify(verify))
    dense = manifest.get("dense")
    if dense is not None and not isinstance(dense, dict):
        raise IndexFormatError(f"{mpath}: 'dense' must be an object or null")
    try:
        config = IndexConfig(
            chunking=ChunkConfig(**manifest["chunking"]),
            analyzer=Analyzer.from_dict(manifest["analyzer"]),
            bm25=BM25Params.from_dict(manifest["bm25"]),
            encoder=None,
            vectors=VectorConfig(**(manifest["dense"] or {}).get("vectors", {})),
            fusion=FusionConfig(**manifest["fusion"]),
        )
        n_chunks = int(manifest["counts"]["chunks"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexFormatError(f"{mpath}: malformed configuration: {exc}") from exc
    if manifest["format_version"] == 1:  # 0.1 and early 0.2: the ids as one JSON document
        ids = _json_ids(root / "doc_ids.json")
    else:
        try:
            n_documents = int(manifest["counts"]["documents"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{mpath}: malformed counts: {exc}") from exc
        # the digests are recomputed when the files were just hashed (once per generation)
        ids = DocIds.load(root, n_documents, mmap, deep=bool(checked["sha256"]))
    n_docs = len(ids)
    doc_offsets = load_npy(root / "doc_offsets.npy", np.int64, (n_docs + 1,), mmap)
    check_offsets(root / "doc_offsets.npy", doc_offsets, root / "docs.jsonl")
    docs = DocTable(
        ids,
        load_npy(root / "doc_year.npy", np.int32, (n_docs,), mmap),
        load_npy(root / "doc_retracted.npy", np.bool_, (n_docs,), mmap),
        ChunkStore(root / "docs.jsonl", doc_offsets, pinned.display / "docs.jsonl"),
    )
    offsets = load_npy(root / "chunk_offsets.npy", np.int64, (n_chunks + 1,), mmap)
    chunk_doc = load_npy(root / "chunk_doc.npy", np.int32, (n_chunks,), mmap)
    if n_chunks and (int(chunk_doc.min()) < 0 or int(chunk_doc.max()) >= len(docs)):
        raise IndexFormatError(f"{root}/chunk_doc.npy points outside docs.jsonl")
    check_offsets(root / "chunk_offsets.npy", offsets, root / "chunks.jsonl")
    bm25: Any = StoreLexical(root / "lexical", n_chunks) if engine == "segments" else BM25Index.load(root / "bm25", mmap=mmap)
    # the grade table, when the index was saved with one (else read from the chunks when needed)
    grades = None
    if manifest.get("grades") is not None and {"grades_rows.npy", "grades_codes.npy"} <= set(files):
        grades = GradeTable.load(root, manifest["grades"], n_chunks, mmap)
    if bm25.n_rows != n_chunks:
        raise IndexFormatError(f"{root}: BM25 has {bm25.n_rows} rows, the manifest {n_chunks} chunks")
    vectors = None
    if dense:
        try:
            dim = int(dense["dim"])
            if not isinstance(dense.get("encoder"), dict):
                raise TypeError("no encoder description")
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{mpath}: malformed dense section: {exc}") from exc
        vectors = VectorIndex.load(root / "dense", config.vectors, dim, mmap=mmap)
        if len(vectors) != n_chunks:
            raise IndexFormatError(f"{root}: {len(vectors)} vectors for {n_chunks} chunks")
        if encoder is None and load_encoder:
            _check_encoder_is_trusted(dense["encoder"], trust_encoder, pinned.display)
            encoder = encoder_from_description(dense["encoder"])
        elif encoder is not None and encoder.dim != dim:
            raise ConfigError(f"the encoder gives dimension {encoder.dim}; the index has {dim}")
        try:
            if dense["encoder"].get("type", "sentence-transformers") == "sentence-transformers":
                # every recorded field (windows included); no windows when the manifest names none
                enc_config = encoder_config_from_description(dense["encoder"])
            else:
                enc_config = EncoderConfig(**{
                    k: dense["encoder"][k] for k in ("model", "query_prefix", "document_prefix", "max_seq_length", "batch_size")
                    if k in dense["encoder"]
                })
            config = replace(config, encoder=enc_config)
        except (TypeError, IndexFormatError) as exc:
            raise IndexFormatError(f"{mpath}: malformed encoder description: {exc}") from exc
    else:
        encoder = None
    return cls(
        config=config,
        docs=docs,
        chunk_doc=chunk_doc,
        store=ChunkStore(root / "chunks.jsonl", offsets, pinned.display / "chunks.jsonl"),
        new_chunks=[],
        bm25=bm25,
        vectors=vectors,
        encoder=encoder,
        manifest=manifest,
        grades=grades,
        lexical="segments" if engine == "segments" else "bm25",
    )


def _json_ids(path: Path) -> DocIds:
    """The ids of a format-1 index (``doc_ids.json``: ``{"ids": [...], "sha256": [...]}``)."""
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
        ids, shas = list(table["ids"]), list(table["sha256"])
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise IndexFormatError(f"{path} is malformed: {exc}") from exc
    if (
        len(shas) != len(ids)
        or not all(isinstance(i, str) and i for i in ids)
        or not all(h is None or isinstance(h, str) for h in shas)
        or len(set(ids)) != len(ids)
    ):
        raise IndexFormatError(f"{path} is malformed (ids not unique strings, or hashes missing)")
    try:
        return DocIds.from_lists(ids, shas)
    except ConfigError as exc:
        raise IndexFormatError(f"{path} is malformed: {exc}") from exc


def _check_encoder_is_trusted(desc: dict[str, Any], trust: bool, where: Path) -> None:
    """Refuse to build an encoder an index names unless it is a model packaged with
    medrag (installed, offline) or the caller trusts the index."""
    model = desc.get("model")
    if trust or desc.get("type") != "sentence-transformers":
        return  # another type is refused by encoder_from_description: it needs encoder=
    if isinstance(model, str) and model.startswith("package:") and model.split(":", 1)[1] in _PACKAGE_MODELS:
        return
    raise ConfigError(
        f"{where}: the index names the encoder model {model!r}, which is not a model packaged with medrag; "
        "loading it could download code or weights, or read them from outside the index. Pass encoder= "
        "(e.g. SentenceTransformerEncoder(EncoderConfig(model=...))), trust_encoder=True if you trust this "
        "index, or load_encoder=False for BM25-only search"
    )
