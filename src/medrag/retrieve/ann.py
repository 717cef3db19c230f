"""A disk-backed approximate vector index for corpora too large to keep as float32.

IVF-PQ codes (Jegou, Douze & Schmid, "Product quantization for nearest neighbor search",
IEEE TPAMI 2011), optionally after an OPQ rotation (Ge, He, Ke & Sun, "Optimized product
quantization", IEEE TPAMI 2014), stay resident in RAM: ``pq_m`` bytes of code plus an
8-byte row id per vector. The vectors themselves live on disk, memory-mapped, as float16
or as int8 with one float32 scale per row; a query fetches ``rerank * k`` candidates by
their PQ scores and re-ranks them by the inner product with the stored vectors, reading
only those candidate rows. The coarse quantizer and the product quantizer are trained on a
sample (``train_size`` rows), so building never needs the corpus in memory.

Rows are numbered 0..n-1 in insertion order. ``delete`` marks tombstones (the rows leave
the PQ lists at once and never come back in results); ``keep`` compacts. A search may pass
a boolean row mask (filters): FAISS scans only the allowed ids (``IDSelectorBitmap``), and a
mask too selective for the probed cells falls back to an exact scan of the allowed rows.

The configuration, the format's constants and the stored-vector segments are in
:mod:`.ann_config` (re-exported here).

On disk (a directory; nothing is pickled; written and read by :mod:`.ann_files`):

    ann.json                  the manifest: configuration, row count, the files below
                              with their sizes (written last, by an atomic rename: the
                              commit point of a save)
    vectors.npy, vectors-<g>.npy   the stored vectors, one immutable segment per save
                              that added rows (float16, or int8 + <segment>.scales.npy)
    ivfpq-<g>.faiss           the trained IVF-PQ index with its codes (faiss.write_index)
    tombstones-<g>.npy        deleted row numbers (int64), if any

Scores are inner products of float32 queries with the stored (rounded) vectors; for unit
vectors the float16 rounding changes a score by about 1e-3 at most.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .ann_config import (  # noqa: F401 - FORMAT, FORMAT_VERSION, HNSW_M: re-exported, as before the split
    EXACT_MASK_ROWS,
    FORMAT,
    FORMAT_VERSION,
    HNSW_M,
    MANIFEST,
    MIN_TRAIN_ROWS,
    SCAN_BLOCK,
    ANNConfig,
    _faiss,
    _save_npy,
    _Segment,
    int8_encode,
)

__all__ = ["ANNConfig", "DiskIVFPQ", "int8_encode"]

logger = logging.getLogger(__name__)


class DiskIVFPQ:
    """IVF-PQ codes in RAM, vectors on disk, exact re-rank of the candidates.

    Build: ``idx = DiskIVFPQ(dim, config)``; ``idx.train(sample, expected_rows=n)``; then
    ``idx.add(block)`` for each block (vectors are kept in memory until ``save``), or
    :meth:`build` to stream blocks into a directory with bounded memory. Load with
    :meth:`load`; a loaded index accepts ``add``/``delete`` and ``save`` to its own
    directory (a new generation; the previous one stays loadable until the manifest is
    replaced) or to a new one.
    """

    def __init__(self, dim: int, config: ANNConfig | None = None) -> None:
        if dim < 1:
            raise ConfigError(f"vector dimension must be positive, not {dim}")
        self.dim = int(dim)
        self.config = config or ANNConfig()
        if self.dim % self.config.pq_m:
            raise ConfigError(f"pq_m={self.config.pq_m} does not divide the dimension {self.dim}")
        self._segments: list[_Segment] = []
        self._starts = np.zeros(1, np.int64)  # row offset of each segment, then the total
        self._index: Any = None  # the FAISS index (IVF-PQ, maybe behind an OPQ transform)
        self._deleted = np.zeros(0, np.int64)  # sorted deleted rows
        self._directory: Path | None = None
        self._generation = 0
        self._nlist = 0

    # -- sizes ---------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def trained(self) -> bool:
        return self._index is not None

    @property
    def n_deleted(self) -> int:
        return int(len(self._deleted))

    def resident_bytes(self) -> int:
        """Bytes of PQ codes and ids held in RAM (plus centroids, the OPQ matrix, tombstones)."""
        if self._index is None:
            return 0
        faiss = _faiss()
        ivf = faiss.downcast_index(faiss.extract_index_ivf(self._index))
        codes = int(ivf.ntotal) * (int(ivf.code_size) + 8)
        extra = self._nlist * self.dim * 4 + ivf.pq.M * ivf.pq.ksub * ivf.pq.dsub * 4
        quantizer = faiss.downcast_index(ivf.quantizer)
        if hasattr(quantizer, "hnsw"):  # the graph: neighbour ids, levels, offsets
            g = quantizer.hnsw
            extra += g.neighbors.size() * 4 + g.levels.size() * 4 + g.offsets.size() * 8
        if self.config.opq:
            extra += self.dim * self.dim * 4
        return codes + extra + self._deleted.nbytes

    def disk_bytes(self) -> int:
        """Bytes of the stored vectors (and int8 scales) written so far."""
        total = 0
        for seg in self._segments:
            total += seg.data.nbytes + (seg.scales.nbytes if seg.scales is not None else 0)
        return total

    # -- building --------------------------------------------------------------------

    def train(self, sample: np.ndarray, expected_rows: int | None = None) -> None:
        """Train the coarse quantizer (k-means), OPQ and PQ on ``sample`` (float32 rows);
        ``expected_rows`` sizes the automatic ``nlist`` (default: the rows held now, or the
        sample). Rows added before training are encoded now."""
        faiss = _faiss()
        x = np.ascontiguousarray(sample, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ConfigError(f"training sample must be (rows, {self.dim}), not {x.shape}")
        if len(x) < 256:
            raise ConfigError(f"training needs at least 256 rows (8-bit PQ), not {len(x)}")
        n = int(expected_rows or max(len(self), len(x)))
        nlist = min(self.config.cells_for(n), max(1, len(x) // 39))
        index = faiss.index_factory(self.dim, self.config.factory(nlist), faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivf.cp.niter = self.config.kmeans_iter
        ivf.cp.seed = self.config.seed
        ivf.cp.max_points_per_centroid = max(39, len(x) // nlist + 1)
        ivf.pq.cp.seed = self.config.seed
        if self.config.opq:
            opq = faiss.downcast_VectorTransform(index.chain.at(0))
            opq.niter = self.config.opq_iter
        flat = None
        if self.config.coarse == "hnsw":  # k-means with exact assignment; the graph is built on the centroids
            flat = faiss.IndexFlatIP(self.dim)
            ivf.clustering_index = flat  # a raw pointer in FAISS: ``flat`` keeps it alive
        ivf.do_polysemous_training = False  # slow, and only for Hamming filtering we never use
        logger.info("training %s on %d rows", self.config.factory(nlist), len(x))
        index.train(x)
        if flat is not None:
            ivf.clustering_index = None
        self._index, self._nlist = index, nlist
        if len(self):
            for start, block in self._blocks():
                ids = np.arange(start, start + len(block), dtype=np.int64)
                keep = ~np.isin(ids, self._deleted)
                self._index.add_with_ids(np.ascontiguousarray(block[keep]), ids[keep])

    def sample(self, size: int) -> np.ndarray:
        """``size`` stored rows drawn at random without replacement (float32)."""
        rng = np.random.default_rng(self.config.seed)
        size = min(size, len(self))
        rows = np.sort(rng.choice(len(self), size=size, replace=False))
        return self._gather(rows)

    def train_rows(self) -> int:
        """The training-sample size this configuration asks for (before capping by n)."""
        return self.config.train_size or max(20_000, 50 * self.config.cells_for(max(len(self), 1)))

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append rows (float32, unit length for cosine); returns their row numbers. Kept
        in memory until :meth:`save`; encoded into the PQ lists now if trained."""
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ConfigError(f"vectors must be (rows, {self.dim}), not {x.shape}")
        start = len(self)
        if not len(x):
            return np.zeros(0, np.int64)
        ids = np.arange(start, start + len(x), dtype=np.int64)
        if self._index is not None:
            self._index.add_with_ids(x, ids)
        self._append(self._encode(x))
        return ids

    def _encode(self, x: np.ndarray) -> _Segment:
        if self.config.refine == "int8":
            codes, scales = int8_encode(x)
            return _Segment(codes, scales)
        return _Segment(x.astype(np.float16), None)

    def _append(self, seg: _Segment) -> None:
        if self._segments and self._segments[-1].file is None:
            last = self._segments[-1]  # merge consecutive in-memory blocks
            last.data = np.concatenate([last.data, seg.data])
            if last.scales is not None:
                last.scales = np.concatenate([last.scales, seg.scales])
        else:
            self._segments.append(seg)
        self._starts = np.concatenate([[0], np.cumsum([len(s) for s in self._segments])]).astype(np.int64)

    def delete(self, rows: Iterable[int]) -> int:
        """Tombstone ``rows``; returns how many were newly deleted."""
        r = np.unique(np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64))
        if len(r) and (r[0] < 0 or r[-1] >= len(self)):
            raise ConfigError(f"row {int(r[0] if r[0] < 0 else r[-1])} is outside 0..{len(self) - 1}")
        new = np.setdiff1d(r, self._deleted, assume_unique=True)
        if len(new) and self._index is not None:
            faiss = _faiss()
            self._index.remove_ids(faiss.IDSelectorBatch(new))
        self._deleted = np.union1d(self._deleted, new).astype(np.int64)
        return int(len(new))

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (increasing), renumbered 0..len(rows)-1: compaction. The
        trained quantizers are kept; codes are renumbered, not re-encoded."""
        faiss = _faiss()
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) > 1 and not (np.diff(rows) > 0).all():
            raise ConfigError("keep() takes increasing row numbers")
        n = len(self)
        new_of_old = np.full(n, -1, np.int64)
        new_of_old[rows] = np.arange(len(rows))
        seg = self._encode_stored(rows)
        if self._index is not None:
            gone = np.flatnonzero(new_of_old < 0)
            if len(gone):
                self._index.remove_ids(faiss.IDSelectorBatch(gone))
            inv = faiss.downcast_index(faiss.extract_index_ivf(self._index)).invlists
            for lst in range(inv.nlist):
                size = inv.list_size(lst)
                if not size:
                    continue
                ids = faiss.rev_swig_ptr(inv.get_ids(lst), size).copy()
                codes = faiss.rev_swig_ptr(inv.get_codes(lst), size * inv.code_size).copy()
                new = np.ascontiguousarray(new_of_old[ids])
                inv.update_entries(lst, 0, size, faiss.swig_ptr(new), faiss.swig_ptr(codes))
        self._segments = []
        self._starts = np.zeros(1, np.int64)
        self._deleted = np.zeros(0, np.int64)
        self._append(seg)

    def _encode_stored(self, rows: np.ndarray) -> _Segment:
        parts, scales = [], []
        for si, local in self._split(rows):
            seg = self._segments[si]
            parts.append(np.asarray(seg.data[local]))
            if seg.scales is not None:
                scales.append(np.asarray(seg.scales[local]))
        data = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.int8 if self.config.refine == "int8" else np.float16)
        sc = (np.concatenate(scales) if scales else np.zeros(0, np.float32)) if self.config.refine == "int8" else None
        return _Segment(data, sc)

    @classmethod
    def build(
        cls,
        directory: str | Path,
        blocks: Iterable[np.ndarray],
        *,
        dim: int,
        sample: np.ndarray,
        expected_rows: int,
        config: ANNConfig | None = None,
        segment_rows: int = 1_000_000,
    ) -> "DiskIVFPQ":
        """Stream ``blocks`` (float32 arrays) into a new index at ``directory``: trains on
        ``sample`` first, then writes a segment file every ``segment_rows`` rows, so memory
        holds one segment, not the corpus."""
        index = cls.create(directory, dim, config)
        index.train(sample, expected_rows=expected_rows)
        pending = 0
        for block in blocks:
            index.add(block)
            pending += len(block)
            if pending >= segment_rows:
                index.flush()
                pending = 0
        index.save()
        return index

    # -- search ----------------------------------------------------------------------

    def _split(self, rows: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Sorted rows -> [(segment, local rows)]."""
        seg_of = np.searchsorted(self._starts, rows, side="right") - 1
        out = []
        for si in np.unique(seg_of):
            sel = rows[seg_of == si]
            out.append((int(si), sel - self._starts[si]))
        return out

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        """Stored rows (sorted) as float32."""
        out = np.empty((len(rows), self.dim), np.float32)
        pos = 0
        for si, local in self._split(rows):
            seg = self._segments[si]
            block = seg.data[local].astype(np.float32)
            if seg.scales is not None:
                block *= seg.scales[local][:, None]
            out[pos : pos + len(local)] = block
            pos += len(local)
        return out

    def scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Inner products of ``query`` with the stored ``rows`` (any order), reading only those rows."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.zeros(0, np.float32)
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        if srt[0] < 0 or srt[-1] >= len(self):
            raise ConfigError(f"row outside 0..{len(self) - 1}")
        out = np.empty(len(rows), np.float32)
        pos = 0
        for si, local in self._split(srt):
            out[pos : pos + len(local)] = self._segments[si].dot(local, q)
            pos += len(local)
        res = np.empty_like(out)
        res[order] = out
        return res

    def _blocks(self, block: int = SCAN_BLOCK):
        for si, seg in enumerate(self._segments):
            for s in range(0, len(seg), block):
                yield int(self._starts[si]) + s, seg.block(s, min(s + block, len(seg)))

    def _alive(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """The searchable-row mask (``allowed`` minus tombstones), or None for all rows."""
        if allowed is None and not len(self._deleted):
            return None
        mask = np.ones(len(self), bool) if allowed is None else np.array(allowed, dtype=bool, copy=True)
        if mask.shape != (len(self),):
            raise ConfigError(f"row mask has shape {mask.shape}, the index has {len(self)} rows")
        mask[self._deleted] = False
        return mask

    def exact_search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` by inner product with the stored vectors for each query row,
        scanned block by block (memory: one block). Returns (rows, scores), each
        (queries, k), padded with -1 / -inf."""
        Q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        nq = len(Q)
        best_s = np.full((nq, k), -np.inf, np.float32)
        best_i = np.full((nq, k), -1, np.int64)
        mask = self._alive(allowed)
        for start, block in self._blocks():
            s = Q @ block.T
            if mask is not None:
                s[:, ~mask[start : start + len(block)]] = -np.inf
            ids = np.broadcast_to(np.arange(start, start + len(block), dtype=np.int64), s.shape)
            cat_s = np.concatenate([best_s, s], axis=1)
            cat_i = np.concatenate([best_i, ids], axis=1)
            kk = min(k, cat_s.shape[1])
            part = np.argpartition(-cat_s, kk - 1, axis=1)[:, :kk]
            best_s = np.take_along_axis(cat_s, part, 1)
            best_i = np.take_along_axis(cat_i, part, 1)
        for r in range(nq):
            o = np.lexsort((best_i[r], -best_s[r]))
            best_s[r], best_i[r] = best_s[r][o], best_i[r][o]
        best_i[~np.isfinite(best_s)] = -1
        return best_i, best_s

    def _exact_rows(self, q: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self.scores(q, rows)
        k = min(k, len(rows))
        if not k:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.lexsort((rows[top], -s[top]))]
        return rows[top], s[top]

    def search(
        self,
        query: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        *,
        nprobe: int | None = None,
        rerank: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows (row numbers, exact scores from the stored vectors), best first;
        ``allowed`` is a boolean mask over all rows. Deleted rows never come back."""
        n = len(self)
        if n == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = np.asarray(query, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != self.dim:
            raise ConfigError(f"query of dimension {q.shape[1]} for an index of dimension {self.dim}")
        mask = self._alive(allowed)
        n_alive = n if mask is None else int(mask.sum())
        if n_alive == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        k = min(int(k), n_alive)
        if self._index is None or (allowed is not None and n_alive <= EXACT_MASK_ROWS):
            rows = np.arange(n, dtype=np.int64) if mask is None else np.flatnonzero(mask)
            if len(rows) > EXACT_MASK_ROWS:
                i, s = self.exact_search(q, k, mask)
                keep = i[0] >= 0
                return i[0][keep], s[0][keep]
            return self._exact_rows(q[0], k, rows)
        faiss = _faiss()
        fetch = k * (rerank or self.config.rerank)
        kwargs: dict[str, Any] = {"nprobe": int(nprobe or self.config.nprobe)}
        bits = None
        if allowed is not None:
            bits = np.packbits(mask, bitorder="little")
            kwargs["sel"] = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
        params = faiss.SearchParametersIVF(**kwargs)
        _, idx = self._index.search(q, fetch, params=params)
        del bits  # the selector read it during the search
        cand = idx[0][idx[0] >= 0]
        if len(cand) < k:
            logger.debug("ANN gave %d of %d candidates; exact scan of the allowed rows", len(cand), k)
            i, s = self.exact_search(q, k, mask)
            keep = i[0] >= 0
            return i[0][keep], s[0][keep]
        exact = self.scores(q[0], cand)
        order = np.lexsort((cand, -exact))[:k]
        return cand[order].astype(np.int64), exact[order]

    # -- persistence -----------------------------------------------------------------

    @classmethod
    def create(cls, directory: str | Path, dim: int, config: ANNConfig | None = None) -> "DiskIVFPQ":
        """A new, empty index that writes its segments to ``directory`` (which must not
        hold an index); nothing is committed until :meth:`save`."""
        directory = Path(directory)
        if (directory / MANIFEST).exists():
            raise ConfigError(f"{directory} already holds an index ({MANIFEST}); load it to add to it")
        directory.mkdir(parents=True, exist_ok=True)
        index = cls(dim, config)
        index._directory = directory
        return index

    def _segment_name(self, directory: Path, i: int) -> str:
        """A free file name for segment ``i``: ``vectors.npy`` for the first (the name
        :class:`~medrag.index.Index` looks for), then generation-numbered names, so that
        no file an older generation lists is ever overwritten."""
        if i == 0 and not (directory / "vectors.npy").exists():
            return "vectors.npy"
        while True:
            name = f"vectors-{self._generation:06d}-{i:06d}.npy"
            if not (directory / name).exists() and not (directory / (name[:-4] + ".scales.npy")).exists():
                return name
            self._generation += 1

    def _write_segment(self, directory: Path, i: int, seg: _Segment) -> None:
        name = self._segment_name(directory, i)
        _save_npy(directory / name, seg.data)
        seg.file = name
        if seg.scales is not None:
            seg.scales_file = name[:-4] + ".scales.npy"
            _save_npy(directory / seg.scales_file, seg.scales)
        # serve from the file from now on: the rows leave memory
        seg.data = np.load(directory / name, mmap_mode="r", allow_pickle=False)
        if seg.scales is not None:
            seg.scales = np.load(directory / seg.scales_file, mmap_mode="r", allow_pickle=False)

    def flush(self) -> None:
        """Write the rows held in memory to a new segment file of the index's directory
        (not yet committed: :meth:`save` lists it in the manifest), freeing their memory."""
        if self._directory is None:
            raise ConfigError("flush() needs an index made by create() or load()")
        last = len(self._segments) - 1
        if last >= 0 and self._segments[last].file is None:
            self._write_segment(self._directory, last, self._segments[last])

    def save(self, directory: str | Path | None = None) -> list[Path]:
        """Write the index; returns the files of this generation. To its own directory
        (the default for a loaded or built index): new rows become a new segment, codes and
        tombstones a new generation, and the manifest is replaced last, atomically; files
        of the previous generation are removed afterwards. To another directory (which must
        not hold an index): segments already on disk are hard-linked (copied across file
        systems). An untrained index of at least ``MIN_TRAIN_ROWS`` rows is trained first
        on a sample; a smaller one stays exact."""
        from . import ann_files

        return ann_files.save(self, directory)

    @classmethod
    def load(cls, directory: str | Path, config: ANNConfig | None = None) -> "DiskIVFPQ":
        """Open a saved index: codes read into RAM, vectors memory-mapped. ``config``
        overrides the search settings (nprobe, rerank); the build settings are the saved ones."""
        from . import ann_files

        return ann_files.load(cls, directory, config)
