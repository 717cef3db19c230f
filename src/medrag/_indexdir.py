"""The index directory on disk: how a save is committed, who may write, what a reader
pins, and which leftovers may be removed.

Layout. The index path is a real directory holding the current generation's files
(``manifest.json`` and every file it lists) and a marker file, ``.medrag-generation``.
It survives ``cp -r``, ``cp -a`` and ``tar`` like any directory. Beside it live a lock
file ``.<name>.lock`` and, only while a save runs (or after one was killed), a staging
directory ``.<name>.<id>``.

Commit. A save writes the new generation into the staging directory, fsyncs it, and
swaps it with the index path in one step: ``renameat2(RENAME_EXCHANGE)`` on Linux (the
same kind of atomic switch as Lucene's ``segments_N`` commit point). At every instant
the path is the old directory or the new one. Where the kernel or filesystem cannot
exchange, the old directory is first renamed to ``.<name>.old-<id>`` and the new one
renamed into place; :func:`pin` then reads the ``.old-`` directory if it finds the path
missing, so a crash between the two renames still loads.

Writers. One at a time, serialized across processes (and across ``Index`` objects in
one process) by an exclusive ``flock(2)`` on the lock file; a writer waits up to a
timeout and then raises :class:`~medrag.errors.IndexConflictError`.

Readers (:mod:`medrag._indexpin`). :func:`pin` opens the directory once and reads every file through that
descriptor (``/proc/self/fd/N/...`` on Linux), so a reader keeps reading the
generation it loaded even if a save swaps another in meanwhile. It also takes a shared
``flock`` on that generation's ``manifest.json`` for as long as the index is open. A
retired generation is deleted only if an exclusive, non-blocking ``flock`` on its
manifest succeeds, i.e. no reader on this machine holds it; otherwise it is left and
retried by the next save (:func:`sweep`).

Leftovers. :func:`sweep` runs under the write lock and removes only sibling
directories named ``.<name>.<16 hex>`` or ``.<name>.old-<16 hex>`` that are real
directories carrying the marker and are not held by a reader.
Nothing else is ever deleted. Locks are advisory and local: they do not protect
against processes on other machines sharing a network filesystem, nor against other
programs (or medrag 0.1) writing the path.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._indexpin import (  # readers (re-exported: the public names of this module)
    _O_CLOEXEC,
    _O_NOFOLLOW,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_RECORD_BYTES,
    RECORD,
    Pinned,
    fs_clock,
    pin,
)
from .errors import ConfigError, IndexConflictError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process locking
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "MANIFEST",
    "MARKER",
    "RECORD",
    "MAX_MANIFEST_BYTES",
    "MAX_RECORD_BYTES",
    "Pinned",
    "pin",
    "fs_clock",
    "write_lock",
    "save_target",
    "check_target",
    "make_staging",
    "commit",
    "retire",
    "remove_staging",
    "sweep",
    "fsync_tree",
]

logger = logging.getLogger(__name__)

MARKER = ".medrag-generation"
_RECORD_TMP = re.compile(r"\.medrag-verified\.json\.[0-9a-f]{16}\.tmp")
_MARKER_FORMAT = "medrag.index.generation"
_HEX16 = "[0-9a-f]{16}"
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


# --------------------------------------------------------------------------- names


def staging_name(target: Path, index_id: str) -> Path:
    return target.parent / f".{target.name}.{index_id}"


def _leftover_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(name)}\.(?:old-)?{_HEX16}")


def _legacy_re(name: str) -> re.Pattern[str]:
    """The hidden sibling a 0.1 index path linked to."""
    return re.compile(rf"\.{re.escape(name)}\.{_HEX16}")


# --------------------------------------------------------------------------- locks


@contextlib.contextmanager
def write_lock(target: Path, timeout: float | None) -> Iterator[None]:
    """Hold the exclusive write lock of the index at ``target`` (a real path).

    ``timeout``: seconds to wait for another writer (None: wait for ever, 0: do not
    wait). Raises IndexConflictError when it runs out.
    """
    if fcntl is None:  # pragma: no cover
        logger.warning("no fcntl on this platform: saves to %s are not serialized across processes", target)
        yield
        return
    lock_path = target.parent / f".{target.name}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC, 0o666)
    except OSError as exc:
        raise ConfigError(f"cannot open the lock file {lock_path}: {exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{lock_path} is not a regular file; refusing to use it as the index's lock")
        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:  # type: ignore[operator]
                    raise IndexConflictError(
                        f"another process is saving the index at {target} (it holds {lock_path.name}); "
                        f"gave up after {timeout} s"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock


def _try_exclusive(fd: int) -> bool:
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


# --------------------------------------------------------------------------- checking a target


def _read_manifest(d: Path) -> dict[str, Any] | None:
    """The parsed manifest of the directory ``d`` (not through a link), or None."""
    m = d / MANIFEST
    try:
        st = m.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MANIFEST_BYTES:
            return None
        data = json.loads(m.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class Target:
    """Where a save goes. ``kind``: ``"new"`` (nothing there), ``"index"`` (a real
    directory holding an index) or ``"legacy"`` (a 0.1 link to a hidden sibling,
    ``legacy_dir``). ``current_id`` is the index id now there."""

    path: Path
    kind: str
    current_id: str | None = None
    legacy_dir: Path | None = None


def save_target(directory: Path, fmt: str) -> Path:
    """The path a save to ``directory`` writes: the path itself, or, for a symbolic
    link that a user made to an index elsewhere, the index it points to. Raises
    ConfigError for a link to anything that is not an index."""
    if not directory.is_symlink():
        return directory
    real = directory.resolve()
    if not real.exists():
        raise ConfigError(f"{directory} is a symbolic link to nothing ({os.readlink(directory)}); refusing to replace it")
    if not real.is_dir() or (_read_manifest(real) or {}).get("format") != fmt:
        raise ConfigError(
            f"{directory} is a symbolic link to {real}, which is not a medrag index; refusing to replace it"
        )
    if real.parent == directory.parent.resolve() and _legacy_re(directory.name).fullmatch(real.name):
        return directory  # medrag 0.1's own layout: converted to a real directory on save
    return real


def check_target(target: Path, fmt: str) -> Target:
    """Classify ``target`` (from :func:`save_target`) for a save, refusing anything
    that is not an index this library would replace. Call it under the write lock."""
    if not os.path.lexists(target):
        return Target(target, "new")
    if target.is_symlink():
        real = target.resolve()
        m = _read_manifest(real) or {}
        if m.get("format") != fmt or not _legacy_re(target.name).fullmatch(real.name):
            raise ConfigError(f"{target} is a symbolic link to {real}, which is not a medrag index; refusing to replace it")
        _check_only_index_files(real, m)
        return Target(target, "legacy", str(m.get("index_id")), real)
    if not target.is_dir():
        raise ConfigError(f"{target} exists and is not a directory; refusing to replace it")
    m = _read_manifest(target)
    if m is None or m.get("format") != fmt:
        raise ConfigError(f"{target} exists and is not a medrag index; refusing to replace it")
    _check_only_index_files(target, m)
    return Target(target, "index", str(m.get("index_id")))


def _check_only_index_files(d: Path, manifest: dict[str, Any]) -> None:
    """A save retires (deletes) the old directory: refuse if it holds anything the
    index did not write, so that a user's own file is never deleted with it."""
    files = manifest.get("files")
    listed = set(files) if isinstance(files, dict) else set()
    allowed = {MANIFEST, MARKER} | {str(r) for r in listed}
    dirs = {Path(str(r)).parent.as_posix() for r in listed} - {"."}
    allowed_dirs = set()
    for dd in dirs:
        parts = Path(dd).parts
        allowed_dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    strangers = []
    for p in d.rglob("*"):
        rel = p.relative_to(d).as_posix()
        if (rel == RECORD or _RECORD_TMP.fullmatch(rel)) and not p.is_symlink():
            continue  # the generation's verification record (and one being written)
        if p.is_symlink() or (p.is_dir() and rel not in allowed_dirs) or (not p.is_dir() and rel not in allowed):
            strangers.append(rel)
    if strangers:
        raise ConfigError(
            f"{d} holds files that are not part of the index ({', '.join(sorted(strangers)[:5])}); "
            "a save replaces the whole directory, so it refuses to. Move them elsewhere first."
        )


# --------------------------------------------------------------------------- staging and commit


def make_staging(staging: Path) -> None:
    staging.mkdir(mode=0o777)
    _mark(staging)


def _is_ours(d: Path) -> bool:
    """A real directory carrying the marker, or holding nothing but (the beginning of)
    one: a save killed before it had written its marker leaves nothing of value."""
    try:
        if d.is_symlink() or not d.is_dir():
            return False
        names = os.listdir(d)
        if not names or (names == [MARKER] and (d / MARKER).lstat().st_size <= 64):
            return True
        m = json.loads((d / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(m, dict) and m.get("format") == _MARKER_FORMAT


def _rmtree(d: Path) -> None:
    """Remove ``d``, its marker last, so that a removal killed half-way leaves a
    directory that is still recognisably ours (and swept by the next save)."""
    for e in os.scandir(d):
        if e.name == MARKER:
            continue
        if e.is_dir(follow_symlinks=False):
            shutil.rmtree(e.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e.path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(d / MARKER)
    with contextlib.suppress(OSError):
        os.rmdir(d)


def remove_staging(staging: Path) -> None:
    """Remove the staging directory of a save that failed (or was interrupted)."""
    if _is_ours(staging):
        _rmtree(staging)


def fsync_tree(d: Path) -> None:
    """fsync every file and directory under ``d`` (durable before the commit)."""
    for p in sorted(d.rglob("*"), key=lambda q: -len(q.parts)):
        _fsync(p)
    _fsync(d)


def _fsync(p: Path) -> None:
    try:
        fd = os.open(p, os.O_RDONLY | _O_NOFOLLOW)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_libc: Any = None


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(2); False when this kernel, libc or filesystem cannot."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _libc = False
    fn = getattr(_libc, "renameat2", None) if _libc else None
    if fn is None:
        return False
    r = fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), ctypes.c_uint(flags))
    if r == 0:
        return True
    e = ctypes.get_errno()
    if e in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)):
        return False
    raise OSError(e, os.strerror(e), str(dst))


def commit(staging: Path, target: Target, index_id: str) -> Path | None:
    """Put the complete, fsync'd ``staging`` directory at ``target.path``. Returns where
    the previous generation now is (to :func:`retire`), or None."""
    path = target.path
    parent = path.parent
    if target.kind == "new":
        if not _renameat2(staging, path, _RENAME_NOREPLACE):
            if os.path.lexists(path):
                raise IndexConflictError(f"{path} appeared while the index was being saved")
            os.rename(staging, path)
        _fsync(parent)
        return None
    # mark the generation being replaced first (one written by 0.1, or copied in, has no
    # marker): if we die before retiring it, the next save recognises and sweeps it
    _mark(target.legacy_dir if target.kind == "legacy" else path)  # type: ignore[arg-type]
    if _renameat2(staging, path, _RENAME_EXCHANGE):
        _fsync(parent)
        if target.kind == "legacy":
            os.unlink(staging)  # now the 0.1 link; what it pointed to is the old generation
            return target.legacy_dir
        return staging
    # no atomic exchange: move the old one aside (pin() reads it if we die now), then
    # move the new one in
    aside = parent / f".{path.name}.old-{index_id}"
    old = target.legacy_dir if target.kind == "legacy" else aside
    os.rename(path, aside)
    os.rename(staging, path)
    _fsync(parent)
    if target.kind == "legacy":
        os.unlink(aside)
    return old


def recover_path(root: Path) -> Path | None:
    """When a save without atomic exchange died between its two renames, the path is
    missing and the previous generation is at ``.<name>.old-<id>``: return it."""
    olds = [p for p in root.parent.glob(f".{root.name}.old-*") if (p / MANIFEST).is_file() and not p.is_symlink()]
    return max(olds, key=lambda p: p.stat().st_mtime) if olds else None


def _mark(d: Path) -> None:
    """Write the marker that says a directory is a generation medrag wrote (it names no
    index, so that a copied index still recognises its own leftovers)."""
    if not (d / MARKER).exists():
        (d / MARKER).write_text(json.dumps({"format": _MARKER_FORMAT}) + "\n", encoding="utf-8")


def retire(old: Path) -> bool:
    """Delete a previous generation unless a reader holds it (then a later
    :func:`sweep` retries). Returns whether it was removed."""
    if old.is_symlink() or not old.is_dir():
        return False
    _mark(old)  # a 0.1 generation had no marker: it is ours, we just retired it
    return _remove_if_unread(old)


def _remove_if_unread(d: Path) -> bool:
    if not _is_ours(d):
        return False
    try:
        mfd = os.open(d / MANIFEST, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    except FileNotFoundError:
        _rmtree(d)  # a staging directory that never got its manifest
        return True
    except OSError:
        return False
    try:
        if not _try_exclusive(mfd):
            logger.info("keeping %s: an open index is still reading it", d)
            return False
        _rmtree(d)  # while holding the lock: no reader can pin it now
        return True
    finally:
        os.close(mfd)


def sweep(target: Path) -> int:
    """Remove stale staging and retired directories of the index at ``target`` that no
    reader holds (call under the write lock). Returns how many were removed."""
    pat = _leftover_re(target.name)
    removed = 0
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return 0
    links = re.compile(rf"\.{re.escape(target.name)}\.(?:link-)?{_HEX16}")
    for e in entries:
        if pat.fullmatch(e.name) and e.is_dir(follow_symlinks=False):
            removed += _remove_if_unread(Path(e.path))
        elif links.fullmatch(e.name) and e.is_symlink():
            # a link that medrag 0.1 (or a conversion from its layout) left: it points at a
            # sibling generation by a relative name; removing a link deletes no data
            with contextlib.suppress(OSError):
                if _legacy_re(target.name).fullmatch(os.readlink(e.path)) or not os.path.exists(e.path):
                    os.unlink(e.path)
                    removed += 1
    if removed:
        logger.info("removed %d stale staging or retired director%s beside %s", removed, "y" if removed == 1 else "ies", target)
    return removed
