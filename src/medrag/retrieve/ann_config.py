"""The parts of the disk-backed IVF-PQ index (:mod:`medrag.retrieve.ann`) that are not
the index itself: its configuration (:class:`ANNConfig`), the constants of its on-disk
format, the stored-vector segments (float16, or int8 with a scale per row:
:func:`int8_encode`) and the fsync'd file writers. :mod:`.ann` re-exports every name."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, MissingDependencyError

__all__ = [
    "ANNConfig", "EXACT_MASK_ROWS", "FORMAT", "FORMAT_VERSION", "HNSW_M", "MANIFEST", "MIN_TRAIN_ROWS", "SCAN_BLOCK",
    "int8_encode",
]  # fmt: skip

logger = logging.getLogger("medrag.retrieve.ann")

FORMAT = "medrag-ann"
FORMAT_VERSION = 1
MANIFEST = "ann.json"
_REFINE = ("float16", "int8")
_COARSE = ("flat", "hnsw")
#: neighbours per node of the HNSW coarse quantizer (``coarse="hnsw"``)
HNSW_M = 32
#: allowed rows at or below which a masked search scans them exactly instead of probing cells
EXACT_MASK_ROWS = 4096
#: fewest rows :meth:`DiskIVFPQ.save` trains codes for; below it search scans the stored
#: rows exactly (PQ's 256-centroid sub-quantizers want about 10,000 training points)
MIN_TRAIN_ROWS = 10_000
#: rows per block of an exact scan (bounds its memory: block x dim x 4 bytes)
SCAN_BLOCK = 131_072


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise MissingDependencyError("faiss-cpu", "dense", "the disk-backed vector index") from exc
    return faiss


@dataclass(frozen=True, slots=True)
class ANNConfig:
    """How a :class:`DiskIVFPQ` is built and searched.

    Attributes:
        nlist: IVF cells; 0 chooses ``2 * sqrt(n)`` rounded to a power of two at training
            time (n: the expected row count passed to :meth:`DiskIVFPQ.train`), at most
            ``n // 39`` (FAISS wants 39 training points per cell).
        pq_m: PQ sub-quantizers of 8 bits: bytes of code per vector (must divide the dimension).
        opq: rotate vectors by a learned OPQ matrix before IVF-PQ.
        opq_iter: OPQ training iterations (each trains a PQ and solves a Procrustes
            problem; FAISS's default is 50, which takes minutes at 384 dimensions).
        coarse: the coarse quantizer that assigns a vector to its IVF cells: ``"flat"``
            (exact, every centroid scored: ``nlist * dim`` multiply-adds per vector added
            or searched) or ``"hnsw"`` (an HNSW graph over the centroids, Malkov &
            Yashunin, "Efficient and robust approximate nearest neighbor search using
            Hierarchical Navigable Small World graphs", IEEE TPAMI 2020: far fewer
            distance computations, so adding 10M rows to 8,192+ cells stays affordable;
            the k-means itself is still trained with exact assignment).
        nprobe: cells scanned per query.
        rerank: ``rerank * k`` PQ candidates are re-scored from the stored vectors.
        refine: how vectors are stored on disk: ``"float16"`` (2 bytes a dimension) or
            ``"int8"`` (1 byte a dimension plus a 4-byte scale per row).
        train_size: rows sampled to train on; 0: ``50 * nlist`` (at least 20,000).
        kmeans_iter: k-means iterations for the coarse quantizer.
        seed: the sampling and k-means seed.
    """

    nlist: int = 0
    pq_m: int = 48
    opq: bool = False
    opq_iter: int = 20
    coarse: str = "flat"
    nprobe: int = 32
    rerank: int = 20
    refine: str = "float16"
    train_size: int = 0
    kmeans_iter: int = 10
    seed: int = 1234

    def __post_init__(self) -> None:
        if self.refine not in _REFINE:
            raise ConfigError(f"refine must be one of {_REFINE}, not {self.refine!r}")
        if self.coarse not in _COARSE:
            raise ConfigError(f"coarse must be one of {_COARSE}, not {self.coarse!r}")
        for name in ("pq_m", "nprobe", "rerank", "kmeans_iter", "opq_iter"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"ANNConfig.{name} must be at least 1, not {getattr(self, name)!r}")
        if self.nlist < 0 or self.train_size < 0:
            raise ConfigError("ANNConfig.nlist and train_size must be 0 (automatic) or positive")

    def cells_for(self, n: int) -> int:
        """IVF cells for an expected ``n`` rows."""
        cap = max(1, n // 39)
        if self.nlist:
            return max(1, min(self.nlist, cap))
        auto = 2 ** max(0, round(math.log2(max(1.0, 2 * math.sqrt(max(n, 1))))))
        return max(1, min(auto, cap, 65536))

    def factory(self, nlist: int) -> str:
        body = f"IVF{nlist}{'_HNSW%d' % HNSW_M if self.coarse == 'hnsw' else ''},PQ{self.pq_m}"
        return f"OPQ{self.pq_m},{body}" if self.opq else body


def int8_encode(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8 quantization: ``x ~= codes * scale[:, None]``."""
    x = np.asarray(x, dtype=np.float32)
    scale = np.abs(x).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    codes = np.clip(np.rint(x / scale[:, None]), -127, 127).astype(np.int8)
    return codes, scale.astype(np.float32)


class _Segment:
    """One block of stored rows: an array (memory-mapped when on disk) and, for int8, scales."""

    __slots__ = ("data", "scales", "file", "scales_file")

    def __init__(self, data: np.ndarray, scales: np.ndarray | None, file: str | None = None, scales_file: str | None = None):
        self.data = data
        self.scales = scales
        self.file = file
        self.scales_file = scales_file

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def dot(self, local: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Inner products of ``q`` (d,) with rows ``local`` (sorted, for sequential reads)."""
        rows = self.data[local].astype(np.float32)
        s = rows @ q
        if self.scales is not None:
            s *= self.scales[local]
        return s

    def block(self, start: int, stop: int) -> np.ndarray:
        rows = np.asarray(self.data[start:stop], dtype=np.float32)
        if self.scales is not None:
            rows *= self.scales[start:stop, None]
        return rows


def _fsync_write(path: Path, write) -> None:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _save_npy(path: Path, arr: np.ndarray) -> None:
    _fsync_write(path, lambda f: np.save(f, np.ascontiguousarray(arr), allow_pickle=False))
