"""Checking the files of a saved index: sizes always, sha256 once per generation.

Every load checks that each file the manifest lists is a regular file inside the
directory with the recorded size. The full sha256 pass reads every byte (seconds per
GiB), so it is done once and recorded: a generation's **verification record**
(:data:`medrag._indexdir.RECORD`, ``.medrag-verified.json`` inside the generation)
holds the sha256 of the manifest it verified and, for each file, its size,
modification and status-change times (ns) and inode number as they were when the
sha256 values were checked, and the file system's clock read before they were (a file
whose time stamps are not older than that clock is hashed again: see :func:`trusted`). A save writes the record for the files it has just written
and hashed; a load that finds no matching record (an index copied with ``cp -r`` or
``tar``, one saved by an older medrag, any file touched since) does the full pass and
writes the record. A record matches only when the manifest and every file's
(size, mtime, ctime, inode) are exactly as recorded, so rewriting a file (even
with its old size and modification time restored) brings the full pass back: the
status-change time cannot be set back by a user. The record guards against
corruption and accidental change, like the checksums themselves; it is not a
signature (whoever can write the directory can write a record), and the structural
checks of a load (offsets, row ranges, postings) never depend on it.

``verify="full"`` (or :meth:`medrag.index.Index.verify`) always does the full pass
and rewrites the record; ``verify=False`` checks sizes only and writes nothing.
Writing the record is skipped where the directory cannot be written (a read-only copy).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Literal

from .. import _indexdir
from .._indexparts import safe_member
from .._io import library_version, sha256_file
from ..errors import ConfigError, IndexFormatError

__all__ = ["Verify", "check_verify", "check_files", "record_bytes", "restamp", "trusted", "stats_of", "clock_after"]

logger = logging.getLogger("medrag.index")

Verify = bool | Literal["full"]
_RECORD_FORMAT = "medrag.index.verified"


def check_verify(verify: Any) -> str:
    """``"sizes"`` (False), ``"auto"`` (True: sha256 unless recorded) or ``"full"``."""
    if verify is True:
        return "auto"
    if verify is False:
        return "sizes"
    if verify == "full":
        return "full"
    raise ConfigError(f"verify must be True, False or 'full', not {verify!r}")


def _stat_key(st: os.stat_result) -> list[int]:
    return [int(st.st_size), int(st.st_mtime_ns), int(st.st_ctime_ns), int(st.st_ino)]


def record_bytes(manifest_bytes: bytes, stats: dict[str, list[int]], clock_ns: int) -> bytes:
    """The record saying that the files with these stats matched this manifest;
    ``clock_ns``: the file system's clock (:func:`medrag._indexdir.fs_clock`) read
    before the files were hashed."""
    return (json.dumps({
        "format": _RECORD_FORMAT,
        "library_version": library_version(),
        "verified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "clock_ns": int(clock_ns),
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "files": stats,
    }, indent=1, sort_keys=True) + "\n").encode("utf-8")


def trusted(record: bytes | None, manifest_bytes: bytes, stats: dict[str, list[int]]) -> set[str]:
    """The files whose sha256 the record vouches for: the record is of this manifest,
    and the file's (size, mtime, ctime, inode) equal those recorded, with times older
    than the record's clock. A file changed in the same tick of the file system's clock
    as the record was begun would keep its time stamps, so such a file (the last ones a
    save writes) is hashed again by the next load, as git treats "racy" entries."""
    if record is None:
        return set()
    try:
        r = json.loads(record.decode("utf-8"))
        if not (isinstance(r, dict) and r.get("format") == _RECORD_FORMAT
                and r.get("manifest_sha256") == hashlib.sha256(manifest_bytes).hexdigest()):
            return set()
        clock, files = int(r["clock_ns"]), r["files"]
        if not isinstance(files, dict):
            return set()
    except (ValueError, UnicodeDecodeError, RecursionError, KeyError, TypeError):
        return set()
    return {rel for rel, st in stats.items() if files.get(rel) == st and st[1] < clock and st[2] < clock}


def clock_after(d: Path) -> int | None:
    """The file system's clock in directory ``d``, once it has moved past the time
    stamps of every file under ``d`` (waits at most ~0.2 s: one tick of a coarse
    clock), so that a record begun now vouches for all of them; None where ``d``
    cannot be written."""
    newest = max((max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in d.rglob("*") if p.is_file()), default=0)
    clock = _indexdir.fs_clock(d)
    for _ in range(100):
        if clock is None or clock > newest:
            break
        time.sleep(0.002)
        clock = _indexdir.fs_clock(d)
    return clock


def stats_of(root: Path, files: dict[str, Any]) -> dict[str, list[int]]:
    """(size, mtime_ns, ctime_ns, inode) of every listed file (a save's record)."""
    return {str(rel): _stat_key(os.stat(root / str(rel))) for rel in files}


def restamp(root: Path, before: dict[str, list[int]]) -> int:
    """Keep a just-saved generation's record vouching for its files after the previous
    generation was retired: removing that generation unlinks the files hard-linked into
    this one (an ``ivfpq-disk`` vector segment, a ``lexical="segments"`` store), which
    moves their status-change time, so the next load would hash them again (O(corpus)
    after every in-place save). ``before``: the stats (:func:`stats_of`) of the listed
    files taken after the commit and before the retirement, under the write lock. Files
    the record vouched for then and whose size, mtime and inode are unchanged now are
    recorded again with their new ctime and a new clock; any other file is left out (and
    hashed by the next load). Returns how many files the new record vouches for (0: the
    record was left as it was)."""
    try:
        mbytes = (root / _indexdir.MANIFEST).read_bytes()
        record = (root / _indexdir.RECORD).read_bytes()
        now = {rel: _stat_key(os.stat(root / rel)) for rel in before}
    except OSError:
        return 0
    vouched = trusted(record, mbytes, before)
    moved = {rel for rel in vouched if now[rel] != before[rel]}
    if not moved:
        return 0
    keep = {rel: now[rel] for rel in vouched if [now[rel][i] for i in (0, 1, 3)] == [before[rel][i] for i in (0, 1, 3)]}
    clock = clock_after(root)
    if clock is None:
        return 0
    data = record_bytes(mbytes, keep, clock)
    tmp = root / f"{_indexdir.RECORD}.{os.urandom(8).hex()}.tmp"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, root / _indexdir.RECORD)
    except OSError as exc:
        logger.debug("%s: cannot rewrite %s: %s", root, _indexdir.RECORD, exc)
        tmp.unlink(missing_ok=True)
        return 0
    return len(keep)


def check_files(
    pinned: _indexdir.Pinned, files: dict[str, Any], manifest_bytes: bytes, mode: str
) -> dict[str, Any]:
    """Check the files a manifest lists in the generation ``pinned`` holds.

    Sizes always; with ``mode="full"`` the sha256 of every file, with ``"auto"`` of
    every file the verification record does not vouch for (:func:`trusted`); after
    hashing, the record is (re)written. Returns ``{"files", "bytes", "sha256"}`` (how
    many files were hashed). Raises IndexFormatError naming the file.
    """
    root = pinned.base
    stats: dict[str, list[int]] = {}
    paths: dict[str, Path] = {}
    for rel, meta in files.items():
        try:
            p = safe_member(root, str(rel))
            st = os.stat(p) if p.is_file() else None
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"{root}: unusable file name {rel!r}: {exc}") from exc
        if st is None:
            raise IndexFormatError(f"{root}: {rel} is missing")
        if not isinstance(meta, dict) or st.st_size != meta.get("size"):
            raise IndexFormatError(f"{root}: {rel} has the wrong size (truncated or altered)")
        stats[str(rel)] = _stat_key(st)
        paths[str(rel)] = p
    total = sum(s[0] for s in stats.values())
    if mode == "sizes":
        return {"files": len(paths), "bytes": total, "sha256": 0}
    skip = trusted(pinned.read_record(), manifest_bytes, stats) if mode == "auto" else set()
    todo = [rel for rel in paths if rel not in skip]
    if todo:
        t0 = time.perf_counter()
        # before hashing: a change from now on moves a time stamp past it. A file stamped
        # in the clock's current tick (a copy made just now) would stay "racy" and be hashed
        # again by every load, so wait (at most ~0.2 s: one tick of a coarse clock) until
        # the clock has moved past every listed file's time stamps, as clock_after does.
        newest = max((max(s[1], s[2]) for s in stats.values()), default=0)
        clock = pinned.fs_clock()
        for _ in range(100):
            if clock is None or clock > newest:
                break
            time.sleep(0.002)
            clock = pinned.fs_clock()
        for rel in todo:
            if sha256_file(paths[rel]) != files[rel].get("sha256"):
                raise IndexFormatError(f"{root}: {rel} fails its sha256 check (altered or corrupt)")
        # what was hashed is what is recorded: a file changed meanwhile fails the next match
        after = {rel: _stat_key(os.stat(p)) for rel, p in paths.items()}
        if clock is not None and after == stats and pinned.write_record(record_bytes(manifest_bytes, stats, clock)):
            logger.info("verified %d of %d files (%.0f MiB) of %s in %.2f s; recorded", len(todo), len(paths),
                        sum(stats[r][0] for r in todo) / 2**20, pinned.display, time.perf_counter() - t0)
    return {"files": len(paths), "bytes": total, "sha256": len(todo)}
