"""Writing a file and its sha256 in one pass: the digest is computed from the bytes as
they are written, so a save does not read its files back to checksum them (issue 16).

:class:`HashingWriter` wraps a binary file open for writing; :func:`write_file` and
:func:`save_npy` write a whole file through one and return ``(size, sha256 hex)``.
``np.save`` into a :class:`HashingWriter` writes the same bytes as into a path (the
header, then the array in C order, 16 MiB at a time).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["HashingWriter", "save_npy", "write_file"]


class HashingWriter:
    """A write-only binary stream over ``f`` that hashes (sha256) and counts every byte
    written. It has no ``fileno``, so writers that would bypass ``write`` (numpy's
    ``tofile``) write through it too."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._h = hashlib.sha256()
        self.size = 0  # bytes written

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        n = self._f.write(view)
        if n is not None and n != view.nbytes:  # a raw stream may write less: finish it
            while n < view.nbytes:
                n += self._f.write(view[n:]) or 0
        self._h.update(view)
        self.size += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        self._f.flush()

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def write_file(path: str | os.PathLike[str], write: Callable[[HashingWriter], Any], *, fsync: bool = True) -> tuple[int, str]:
    """Create ``path``, let ``write`` fill it through a :class:`HashingWriter`, flush
    (and fsync, unless ``fsync=False``: a caller that fsyncs the whole tree later).
    Returns ``(size in bytes, sha256 hex)`` of what was written."""
    with open(Path(path), "wb") as f:
        h = HashingWriter(f)
        write(h)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    return h.size, h.hexdigest()


def save_npy(path: str | os.PathLike[str], arr: np.ndarray, *, fsync: bool = True) -> tuple[int, str]:
    """``np.save(path, arr, allow_pickle=False)`` with the file's size and sha256."""
    a = np.ascontiguousarray(arr)
    return write_file(path, lambda f: np.save(f, a, allow_pickle=False), fsync=fsync)
