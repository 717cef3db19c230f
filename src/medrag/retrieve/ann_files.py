"""Saving and loading :class:`~medrag.retrieve.ann.DiskIVFPQ` directories: the
``ann.json`` manifest (written last, by an atomic rename), segment files, FAISS codes
(``faiss.write_index``), tombstones (``.npy``). No pickle anywhere; every listed file's
size is checked on load and file names may not leave the directory."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import load_format_json, load_npy
from ..errors import ConfigError, IndexFormatError
from .ann_config import FORMAT, FORMAT_VERSION, MANIFEST, MIN_TRAIN_ROWS, ANNConfig, _faiss, _fsync_write, _save_npy, _Segment, logger

if TYPE_CHECKING:
    from .ann import DiskIVFPQ


def save(index: "DiskIVFPQ", directory: str | Path | None) -> list[Path]:
    """See :meth:`DiskIVFPQ.save`."""
    faiss = _faiss()
    target = Path(directory) if directory is not None else index._directory
    if target is None:
        raise ConfigError("save() needs a directory for an index that has none")
    if index._index is None and len(index) - len(index._deleted) >= MIN_TRAIN_ROWS:
        index.train(index.sample(index.train_rows()))
    own = index._directory is not None and target.resolve() == index._directory.resolve()
    old: dict[str, Any] = {}
    if own:
        try:
            old = json.loads((target / MANIFEST).read_text())
        except (OSError, ValueError):
            old = {}
    else:
        if (target / MANIFEST).exists():
            raise ConfigError(f"{target} already holds an index ({MANIFEST})")
        target.mkdir(parents=True, exist_ok=True)
    index._generation += 1
    seg_meta = []
    for i, seg in enumerate(index._segments):
        if seg.file is None or not own:
            if seg.file is not None and index._directory is not None:
                src = index._directory / seg.file
                name = index._segment_name(target, i)
                for s, d in ((src, target / name),) + (
                    ((index._directory / seg.scales_file, target / (name[:-4] + ".scales.npy")),) if seg.scales_file else ()
                ):
                    try:
                        os.link(s, d)
                    except OSError:
                        shutil.copyfile(s, d)
                seg = _Segment(seg.data, seg.scales, name, name[:-4] + ".scales.npy" if seg.scales_file else None)
                index._segments[i] = seg
            else:
                index._write_segment(target, i, seg)
        seg_meta.append({
            "file": seg.file, "rows": len(seg), "dtype": str(seg.data.dtype),
            "size": (target / seg.file).stat().st_size,
            "scales": seg.scales_file,
        })
    files: dict[str, Any] = {"segments": seg_meta}
    if index._index is not None:
        name = f"ivfpq-{index._generation:06d}.faiss"
        tmp = target / (name + ".tmp")
        faiss.write_index(index._index, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target / name)
        files["codes"] = {"file": name, "size": (target / name).stat().st_size}
    if len(index._deleted):
        name = f"tombstones-{index._generation:06d}.npy"
        _save_npy(target / name, index._deleted)
        files["tombstones"] = {"file": name, "size": (target / name).stat().st_size}
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "dim": index.dim,
        "rows": len(index), "deleted": len(index._deleted), "nlist": index._nlist,
        "factory": index.config.factory(index._nlist) if index._index is not None else None,
        "config": asdict(index.config), "generation": index._generation, "files": files,
    }
    tmp = target / (MANIFEST + ".tmp")
    _fsync_write(tmp, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    os.replace(tmp, target / MANIFEST)  # the commit point
    try:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    if own and old:
        _remove_stale(target, old, manifest)
    index._directory = target
    return [target / MANIFEST] + [target / p for p in _listed(manifest)]


def _remove_stale(directory: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    keep = set(_listed(new))
    for name in _listed(old):
        if name not in keep:
            try:
                (directory / name).unlink()
            except OSError:
                logger.warning("could not remove %s", directory / name)


def load(cls: type, directory: str | Path, config: ANNConfig | None) -> "DiskIVFPQ":
    """See :meth:`DiskIVFPQ.load`."""
    faiss = _faiss()
    directory = Path(directory)
    mpath = directory / MANIFEST
    manifest = load_format_json(mpath, FORMAT, FORMAT_VERSION, what="manifest", missing="missing (not a disk vector index)")
    try:
        saved = ANNConfig(**manifest["config"])
        dim, rows, files = int(manifest["dim"]), int(manifest["rows"]), manifest["files"]
        segs = list(files["segments"])
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise IndexFormatError(f"{mpath}: malformed: {exc}") from exc
    if config is not None:
        saved = ANNConfig(**{**asdict(saved), "nprobe": config.nprobe, "rerank": config.rerank})
    index = cls(dim, saved)
    want = np.int8 if saved.refine == "int8" else np.float16
    for meta in segs:
        path = _member(directory, meta.get("file"), mpath)
        _check_size(path, meta.get("size"), mpath)
        data = load_npy(path, want, (meta.get("rows"), dim), mmap=True)
        scales = None
        if saved.refine == "int8":
            spath = _member(directory, meta.get("scales"), mpath)
            scales = load_npy(spath, np.float32, (data.shape[0],), mmap=True)
        index._segments.append(_Segment(data, scales, path.name, spath.name if scales is not None else None))
    index._starts = np.concatenate([[0], np.cumsum([len(s) for s in index._segments])]).astype(np.int64)
    if len(index) != rows:
        raise IndexFormatError(f"{mpath}: segments hold {len(index)} rows, the manifest says {rows}")
    if "tombstones" in files:
        tpath = _member(directory, files["tombstones"].get("file"), mpath)
        _check_size(tpath, files["tombstones"].get("size"), mpath)
        dele = load_npy(tpath, np.int64, ndim=1)
        if len(dele) and (dele.min() < 0 or dele.max() >= rows):
            raise IndexFormatError(f"{tpath}: expected int64 row numbers below {rows}")
        index._deleted = np.unique(dele)
    if "codes" in files:
        cpath = _member(directory, files["codes"].get("file"), mpath)
        _check_size(cpath, files["codes"].get("size"), mpath)
        try:
            index._index = faiss.read_index(str(cpath))
        except RuntimeError as exc:
            raise IndexFormatError(f"{cpath}: unreadable FAISS index: {exc}") from exc
        if index._index.d != dim or index._index.ntotal != rows - len(index._deleted):
            raise IndexFormatError(
                f"{cpath}: holds {index._index.ntotal} x {index._index.d}, expected {rows - len(index._deleted)} x {dim}"
            )
        index._nlist = int(faiss.downcast_index(faiss.extract_index_ivf(index._index)).nlist)
    index._directory = directory
    index._generation = int(manifest.get("generation", 0))
    return index


def _listed(manifest: dict[str, Any]) -> list[str]:
    files = manifest.get("files", {})
    out = []
    for seg in files.get("segments", []):
        out.append(seg["file"])
        if seg.get("scales"):
            out.append(seg["scales"])
    for key in ("codes", "tombstones"):
        if key in files:
            out.append(files[key]["file"])
    return out


def _member(directory: Path, name: Any, mpath: Path) -> Path:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise IndexFormatError(f"{mpath}: bad file name {name!r}")
    path = directory / name
    if not path.is_file():
        raise IndexFormatError(f"{path}: missing (listed in {mpath.name})")
    return path


def _check_size(path: Path, size: Any, mpath: Path) -> None:
    if path.stat().st_size != size:
        raise IndexFormatError(f"{path}: {path.stat().st_size} bytes, {mpath.name} says {size} (truncated or altered)")
