"""Readers of an index directory: :func:`pin` opens one generation and holds it
(:class:`Pinned`), whatever saves swap in later; :func:`fs_clock` reads the file
system's clock. Part of :mod:`medrag._indexdir` (which re-exports these names and
documents the whole layout).

:func:`pin` opens the directory once and reads every file through that descriptor
(``/proc/self/fd/N/...`` on Linux), so a reader keeps reading the generation it
loaded even if a save swaps another in meanwhile. It also takes a shared ``flock`` on
that generation's ``manifest.json`` for as long as the index is open; a save deletes a
retired generation only if an exclusive, non-blocking ``flock`` on it succeeds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

from .errors import IndexConflictError, IndexFormatError, IndexNotFoundError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process locking
    fcntl = None  # type: ignore[assignment]

__all__ = ["MANIFEST", "RECORD", "MAX_MANIFEST_BYTES", "MAX_RECORD_BYTES", "Pinned", "fs_clock", "pin"]

logger = logging.getLogger("medrag._indexdir")

MANIFEST = "manifest.json"
#: the verification record of a generation (medrag.index.verify): written atomically
#: inside the generation, never listed in its manifest
RECORD = ".medrag-verified.json"
MAX_RECORD_BYTES = 16 << 20
MAX_MANIFEST_BYTES = 16 << 20
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def _proc_fd_dir(fd: int) -> Path | None:
    p = Path(f"/proc/self/fd/{fd}")
    try:
        return p if sys.platform.startswith("linux") and os.path.samestat(os.stat(p), os.fstat(fd)) else None
    except OSError:
        return None


class Pinned:
    """One generation of an index, opened once.

    ``base`` is where to read its files from: ``/proc/self/fd/N`` (the directory as it
    was opened, whatever is renamed later) on Linux, else the path itself. ``display``
    is the path to name in messages. The shared reader lock is held until
    :meth:`release`; :meth:`close_dir` drops the directory descriptor once every file
    has been opened.
    """

    def __init__(self, dir_fd: int, manifest_fd: int, display: Path) -> None:
        self._dir_fd: int | None = dir_fd
        self._manifest_fd: int | None = manifest_fd
        self.display = display
        self.base = _proc_fd_dir(dir_fd) or display
        st = os.fstat(dir_fd)
        self.identity = (st.st_dev, st.st_ino)

    def read_manifest(self) -> bytes:
        assert self._manifest_fd is not None
        size = os.fstat(self._manifest_fd).st_size
        if size > MAX_MANIFEST_BYTES:
            raise IndexFormatError(f"{self.display / MANIFEST} is implausibly large")
        return os.pread(self._manifest_fd, size + 1, 0)

    def read_record(self) -> bytes | None:
        """The generation's verification record (:data:`RECORD`), or None when there is
        none (or it is not a plain, reasonably sized file)."""
        if self._dir_fd is None:
            return None
        try:
            fd = os.open(RECORD, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=self._dir_fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_RECORD_BYTES:
                return None
            return os.pread(fd, st.st_size + 1, 0)
        finally:
            os.close(fd)

    def fs_clock(self) -> int | None:
        """The file system's clock now (ns), as it stamps files; None where the
        generation cannot be written (then no record can be written either)."""
        return None if self._dir_fd is None else fs_clock(self._dir_fd)

    def write_record(self, data: bytes) -> bool:
        """Replace the verification record atomically (a temporary file renamed over
        it, inside this generation). Returns False, and changes nothing, where the
        directory cannot be written (a read-only copy of an index)."""
        if self._dir_fd is None:
            return False
        tmp = f"{RECORD}.{os.urandom(8).hex()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o666, dir_fd=self._dir_fd)
        except OSError as exc:
            logger.debug("%s: cannot write %s: %s", self.display, RECORD, exc)
            return False
        done = False
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, RECORD, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            done = True
        except OSError as exc:
            logger.debug("%s: cannot write %s: %s", self.display, RECORD, exc)
        finally:
            if not done:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=self._dir_fd)
        return done

    def show(self, text: str) -> str:
        """``text`` with the descriptor path replaced by the user's path."""
        return text.replace(str(self.base), str(self.display)) if self.base != self.display else text

    def close_dir(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None
            self.base = self.display

    def release(self) -> None:
        self.close_dir()
        if self._manifest_fd is not None:
            os.close(self._manifest_fd)  # releases the shared lock
            self._manifest_fd = None


def fs_clock(d: Path | int) -> int | None:
    """The time stamp (ns) the file system gives a file created in directory ``d`` (a
    path or a directory descriptor) now: later than every change made before, at the
    file system's own granularity; None where ``d`` cannot be written. The scratch
    file is removed at once."""
    name = f"{RECORD}.{os.urandom(8).hex()}.tmp"
    kw: dict[str, Any] = {"dir_fd": d} if isinstance(d, int) else {}
    where = name if isinstance(d, int) else str(Path(d) / name)
    try:
        fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o666, **kw)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        return max(int(st.st_mtime_ns), int(st.st_ctime_ns))
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(where, **kw)


def pin(root: Path) -> Pinned:
    """Open the generation now at ``root`` and hold its reader lock.

    Retries when a save swaps or removes the directory while it is being opened.
    Raises IndexNotFoundError when ``root`` holds no index.
    """
    for _ in range(100):
        try:
            dfd = os.open(root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise IndexNotFoundError(f"no medrag index at {root}") from exc
        except OSError as exc:
            raise IndexNotFoundError(f"cannot open the index directory {root}: {exc}") from exc
        mfd = -1
        try:
            try:
                mfd = os.open(MANIFEST, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dfd)
            except FileNotFoundError:
                if _moved(root, dfd):
                    continue  # a save swapped generations meanwhile: open the new one
                raise IndexNotFoundError(f"no medrag index at {root} (no {MANIFEST})") from None
            except OSError as exc:
                raise IndexFormatError(f"{root / MANIFEST}: cannot be opened ({exc})") from exc
            if not stat.S_ISREG(os.fstat(mfd).st_mode):
                raise IndexFormatError(f"{root / MANIFEST} is not a regular file")
            if fcntl is not None:
                fcntl.flock(mfd, fcntl.LOCK_SH)
            if os.fstat(mfd).st_nlink == 0:
                continue  # removed while we waited for the lock: a newer generation is in place
            p = Pinned(dfd, mfd, root)
            dfd = mfd = -1
            return p
        finally:
            if mfd >= 0:
                os.close(mfd)
            if dfd >= 0:
                os.close(dfd)
    raise IndexConflictError(f"{root} kept changing while it was being opened")


def _moved(root: Path, dfd: int) -> bool:
    try:
        return not os.path.samestat(os.stat(root), os.fstat(dfd))
    except OSError:
        return True
