"""Generations: which segments (and which tombstones) make up the store, committed
atomically.

A store directory holds::

    CURRENT                  the name of the live manifest (replaced atomically)
    manifest-000007.json     generation 7: params, analyzer, the segments in row order
                             (with each segment's file sizes + sha256, copied from its
                             segment.json), tombstones, and the global BM25 statistics
    seg-000005-1a2b3c4d/     immutable segments (format.py)
    del-000007-<seg>.npy     a segment's tombstones as of generation 7: uint32 sorted
                             deleted local rows
    deldf-000007-<seg>.npy   int64 (2, m): (local term id, number of deleted docs
                             having the term), so df stays exact after deletes
    dfhist-000007.npy        int64 (2, h): (df value, number of terms with that global
                             live df): all the rank-bm25 idf floor needs (mean idf over
                             the vocabulary), without a global term dictionary
    LOCK                     held (flock) by the one writer

Commit protocol: every new file is written and fsync'd first, then the manifest (atomic
rename), and last ``CURRENT`` (atomic rename, directory fsync'd). A crash at any point
leaves ``CURRENT`` naming the previous manifest, whose files are all still there: old
files are removed only by :func:`collect_garbage`, explicitly, and only files this module
names (``seg-*``, ``del-*``, ``deldf-*``, ``dfhist-*``, ``manifest-*``, ``tmp-*``) that no
kept manifest references.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._hashing import save_npy
from .._io import atomic_write_text, library_version, load_format_json, sha256_file
from ..errors import IndexFormatError, IndexNotFoundError

__all__ = ["STORE_FORMAT", "STORE_VERSION", "Manifest", "read_current", "write_generation", "collect_garbage"]

logger = logging.getLogger(__name__)

STORE_FORMAT = "medrag.store"
STORE_VERSION = 1
CURRENT = "CURRENT"
_OURS = re.compile(r"^(seg-\d{6}-[0-9a-f]{8}|tmp-.*|del-\d{6}-.*\.npy|deldf-\d{6}-.*\.npy|dfhist-\d{6}\.npy|manifest-\d{6}\.json|\.manifest-.*\.tmp|\.CURRENT\..*\.tmp)$")


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest (one generation)."""

    path: Path
    generation: int
    data: dict[str, Any]

    @property
    def segments(self) -> list[dict[str, Any]]:
        return self.data["segments"]

    def referenced(self) -> set[str]:
        """Every file/directory name in the store this generation needs."""
        names = {self.path.name, self.data["stats"]["dfhist"]}
        for s in self.segments:
            names.add(s["name"])
            if s.get("deletes"):
                names.add(s["deletes"]["rows"])
                names.add(s["deletes"]["df"])
        return names


def read_current(root: Path) -> Manifest:
    """The live generation. Raises IndexNotFoundError when there is no store."""
    cur = root / CURRENT
    try:
        name = cur.read_text(encoding="utf-8").strip()
    except FileNotFoundError as e:
        raise IndexNotFoundError(f"no medrag store at {root} ({CURRENT} not found)") from e
    if not re.fullmatch(r"manifest-\d{6}\.json", name):
        raise IndexFormatError(f"{cur}: does not name a manifest ({name[:60]!r})")
    return read_manifest(root / name)


def read_manifest(path: Path) -> Manifest:
    data = load_format_json(path, STORE_FORMAT, STORE_VERSION, what="manifest")
    for k in ("generation", "params", "analyzer", "segments", "stats"):
        if k not in data:
            raise IndexFormatError(f"{path}: no {k!r}")
    return Manifest(path, int(data["generation"]), data)


def _save_npy(path: Path, arr: np.ndarray) -> dict[str, Any]:
    size, sha = save_npy(path, arr)  # fsync'd; sha256 computed while writing
    return {"size": size, "sha256": sha}


def write_deletes(root: Path, generation: int, seg_name: str, rows: np.ndarray, df: np.ndarray) -> dict[str, Any]:
    """Write a segment's tombstone files for ``generation``; returns the manifest record."""
    rname = f"del-{generation:06d}-{seg_name}.npy"
    dname = f"deldf-{generation:06d}-{seg_name}.npy"
    rrec = _save_npy(root / rname, np.asarray(rows, np.uint32))
    drec = _save_npy(root / dname, np.asarray(df, np.int64).reshape(2, -1))
    return {"rows": rname, "df": dname, "n": int(rows.size), "files": {rname: rrec, dname: drec}}


def write_generation(
    root: Path,
    generation: int,
    *,
    params: dict[str, Any],
    analyzer: dict[str, Any] | None,
    segments: list[dict[str, Any]],
    n_live: int,
    total_len: int,
    df_hist: np.ndarray,
) -> Manifest:
    """Write ``dfhist`` and the manifest of ``generation``, then point CURRENT at it."""
    hname = f"dfhist-{generation:06d}.npy"
    hrec = _save_npy(root / hname, np.asarray(df_hist, np.int64).reshape(2, -1))
    data = {
        "format": STORE_FORMAT,
        "format_version": STORE_VERSION,
        "library_version": library_version(),
        "generation": generation,
        "params": params,
        "analyzer": analyzer,
        "segments": segments,
        "stats": {"n_live": int(n_live), "total_len": int(total_len), "dfhist": hname, "dfhist_file": hrec},
    }
    mname = f"manifest-{generation:06d}.json"
    atomic_write_text(root / mname, json.dumps(data, indent=1))
    atomic_write_text(root / CURRENT, mname + "\n")
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    logger.debug("committed generation %d of %s (%d segments)", generation, root, len(segments))
    return Manifest(root / mname, generation, data)


def check_file(root: Path, name: str, rec: dict[str, Any], full: bool) -> None:
    p = root / name
    try:
        size = p.stat().st_size
    except FileNotFoundError as e:
        raise IndexFormatError(f"{p}: missing") from e
    if size != rec["size"]:
        raise IndexFormatError(f"{p}: {size} bytes, expected {rec['size']}")
    if full and sha256_file(p) != rec["sha256"]:
        raise IndexFormatError(f"{p}: sha256 differs from the manifest's")


def collect_garbage(root: Path, keep: int = 2) -> list[str]:
    """Remove store files that none of the last ``keep`` generations references.

    Only names this package creates are ever considered; anything else in ``root`` is
    left alone. Returns the names removed.
    """
    if keep < 1:
        raise ValueError("keep must be >= 1")
    live = read_current(root)
    gens = sorted(
        (int(m.group(1)) for p in root.iterdir() if (m := re.fullmatch(r"manifest-(\d{6})\.json", p.name))),
        reverse=True,
    )
    kept = [g for g in gens if g <= live.generation][:keep]
    needed: set[str] = {CURRENT}
    for g in kept:
        try:
            needed |= read_manifest(root / f"manifest-{g:06d}.json").referenced()
        except IndexFormatError:
            continue
    removed = []
    for p in root.iterdir():
        if p.name in needed or not _OURS.match(p.name):
            continue
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
        removed.append(p.name)
    logger.debug("garbage-collected %d files in %s", len(removed), root)
    return sorted(removed)
