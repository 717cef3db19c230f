"""The on-disk format of a :class:`~medrag.retrieve.bm25.BM25Index`: ``bm25.json``
(format, version, params, analyzer, shapes and dtypes), ``vocab.json`` (the terms, in
term-id order) and one ``.npy`` per array, read back with ``allow_pickle=False`` and,
by default, memory-mapped; every load checks shapes, dtypes and the structure."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from ..._io import atomic_open, check_format, library_version, load_npy, read_json
from ...errors import ConfigError, IndexFormatError, IndexNotFoundError
from ..analyzer import Analyzer
from .params import BM25Params

if TYPE_CHECKING:
    from .core import BM25Index

__all__ = ["BM25_FORMAT", "BM25_FORMAT_VERSION", "save", "load"]

logger = logging.getLogger("medrag.retrieve.bm25")

BM25_FORMAT = "medrag.bm25"
BM25_FORMAT_VERSION = 1
_META = "bm25.json"
_VOCAB = "vocab.json"
# name -> dtype of every saved array
_ARRAYS: dict[str, np.dtype[Any]] = {
    "indptr": np.dtype(np.int64),  # (n_terms + 1,)
    "indices": np.dtype(np.int32),  # (nnz,) row of each posting
    "tf": np.dtype(np.int32),  # (nnz,)
    "weights": np.dtype(np.float64),  # (nnz,) precomputed per-(term, row) score
    "doc_len": np.dtype(np.int64),  # (n_rows,) tokens per row; 0 for deleted rows
    "alive": np.dtype(np.bool_),  # (n_rows,)
    "term_order": np.dtype(np.int32),  # (n_terms,) term ids in sorted-term order
}

PathLike = Union[str, "os.PathLike[str]"]


def save(ix: "BM25Index", directory: PathLike) -> Path:
    """Write the index into ``directory`` (created if needed) as ``.npy`` arrays,
    ``vocab.json`` and ``bm25.json`` (written last). Returns the directory."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    w = ix._ensure_weights()
    arrays = {
        "indptr": ix._indptr,
        "indices": ix._indices,
        "tf": ix._tf,
        "weights": w,
        "doc_len": ix._doc_len,
        "alive": ix._alive,
        "term_order": ix._term_order
        if ix._term_order is not None
        else np.asarray(sorted(range(ix.n_terms), key=ix._vocab.__getitem__), np.int32),
    }
    for name, arr in arrays.items():
        _atomic_write(d / f"{name}.npy", lambda f, a=arr, dt=_ARRAYS[name]: np.save(
            f, np.ascontiguousarray(a, dtype=dt), allow_pickle=False))  # fmt: skip
    _atomic_write(
        d / _VOCAB,
        lambda f: f.write(json.dumps(ix._vocab, ensure_ascii=False).encode("utf-8")),
    )
    meta = {
        "format": BM25_FORMAT,
        "format_version": BM25_FORMAT_VERSION,
        "library_version": library_version(),
        "params": ix.params.to_dict(),
        "analyzer": ix.analyzer.to_dict() if ix.analyzer is not None else None,
        "n_rows": ix.n_rows,
        "n_terms": ix.n_terms,
        "nnz": ix.nnz,
        "arrays": {name: str(dt) for name, dt in _ARRAYS.items()},
    }
    _atomic_write(d / _META, lambda f: f.write(json.dumps(meta, indent=2).encode()))
    logger.debug("saved BM25 index to %s", d)
    return d


def load(cls: "type[BM25Index]", directory: PathLike, mmap: bool = True) -> "BM25Index":
    """Open an index written by :meth:`save`.

    With ``mmap=True`` the arrays are memory-mapped read-only (``add``/``delete``
    then build new in-memory arrays). Raises :class:`IndexNotFoundError` when there
    is no index, :class:`IndexVersionError` for an unknown format version and
    :class:`IndexFormatError` for any missing, truncated or inconsistent file.
    """
    t0 = time.perf_counter()
    d = Path(directory)
    meta_path = d / _META
    if not meta_path.is_file():
        raise IndexNotFoundError(f"no BM25 index at {d} ({_META} not found)")
    meta = check_format(read_json(meta_path), meta_path, BM25_FORMAT, BM25_FORMAT_VERSION, what="index")
    try:
        params = BM25Params.from_dict(meta["params"])
        analyzer = (
            Analyzer.from_dict(meta["analyzer"]) if meta["analyzer"] is not None else None
        )
        n_rows, n_terms, nnz = (int(meta[k]) for k in ("n_rows", "n_terms", "nnz"))
    except (KeyError, TypeError, ValueError) as e:
        raise IndexFormatError(f"{meta_path}: invalid metadata ({e})") from e
    shapes = {
        "indptr": (n_terms + 1,),
        "indices": (nnz,),
        "tf": (nnz,),
        "weights": (nnz,),
        "doc_len": (n_rows,),
        "alive": (n_rows,),
        "term_order": (n_terms,),
    }
    arrs = {name: _read_array(d / f"{name}.npy", _ARRAYS[name], shapes[name], mmap)
            for name in _ARRAYS}  # fmt: skip
    vocab = read_json(d / _VOCAB)
    if not isinstance(vocab, list) or len(vocab) != n_terms or set(map(type, vocab)) - {str}:
        raise IndexFormatError(f"{d / _VOCAB}: expected a list of {n_terms} strings")
    _check_structure(d, arrs, n_rows, nnz)
    try:
        index = cls(
            vocab=vocab,
            indptr=arrs["indptr"],
            indices=arrs["indices"],
            tf=arrs["tf"],
            doc_len=arrs["doc_len"],
            alive=arrs["alive"],
            params=params,
            analyzer=analyzer,
            weights=arrs["weights"],
            term_order=arrs["term_order"],
        )
    except ConfigError as e:
        raise IndexFormatError(f"{d}: {e}") from e
    logger.debug("loaded BM25 index from %s in %.3fs", d, time.perf_counter() - t0)
    return index


def _atomic_write(path: Path, write: Any) -> None:
    with atomic_open(path, "wb") as f:
        write(f)


def _read_array(path: Path, dtype: np.dtype[Any], shape: tuple[int, ...], mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise IndexFormatError(f"{path}: missing")
    return load_npy(path, dtype, shape, mmap)


def _check_structure(d: Path, a: dict[str, np.ndarray], n_rows: int, nnz: int) -> None:
    """Cheap consistency checks, so a tampered index fails here and not deep in numpy."""
    indptr = a["indptr"]
    if indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0):
        raise IndexFormatError(f"{d / 'indptr.npy'}: not a valid CSC pointer array")
    if nnz:
        ind = a["indices"]
        if int(ind.min()) < 0 or int(ind.max()) >= n_rows:
            raise IndexFormatError(f"{d / 'indices.npy'}: row numbers out of range")
        if int(a["tf"].min()) < 1:
            raise IndexFormatError(f"{d / 'tf.npy'}: term frequencies must be >= 1")
    order = a["term_order"]
    if order.size and (int(order.min()) < 0 or int(order.max()) >= order.size):
        raise IndexFormatError(f"{d / 'term_order.npy'}: term ids out of range")
    if n_rows and int(a["doc_len"].min()) < 0:
        raise IndexFormatError(f"{d / 'doc_len.npy'}: negative document length")
