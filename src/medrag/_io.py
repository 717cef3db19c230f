"""File helpers. Atomic writes: write a temporary sibling, fsync, then ``os.replace`` it
into place, so a reader (or a crash) sees either the old file or the new one, never
half. Also the sha256 of a file, the library version stamped into index files, and the
checked readers every on-disk format uses: :func:`load_npy` (one ``.npy`` array, never
pickled, dtype and shape checked) and :func:`load_format_json` / :func:`check_format`
(a JSON header naming its format and version). Their errors are
:class:`~medrag.errors.IndexFormatError` (or :class:`~medrag.errors.IndexVersionError`)
and name the file."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import IndexFormatError, IndexVersionError

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "sha256_file",
    "library_version",
    "load_npy",
    "read_json",
    "check_format",
    "load_format_json",
]


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on a clean exit it is flushed,
    fsync'd and moved onto ``path``; on an exception it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    done = False
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        done = True
    finally:
        if not done:  # an error (re-raised) or an abandoned generator: no temporary left
            Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def library_version() -> str:
    """medrag's version, as stamped into index files."""
    from . import __version__

    return __version__


def load_npy(
    path: str | os.PathLike[str],
    dtype: Any,
    shape: tuple[Any, ...] | None = None,
    mmap: bool = False,
    *,
    ndim: int | None = None,
) -> Any:
    """Read one ``.npy`` array with ``allow_pickle=False`` and check what it holds.

    ``dtype`` must match exactly; ``shape`` (a tuple of lengths) must match exactly when
    given, otherwise ``ndim`` (when given) must. ``mmap=True`` memory-maps the file
    read-only (an empty array is read instead: numpy cannot map zero bytes). Returns a
    plain ``ndarray`` (a view of the map: no memmap overhead per slice). Raises
    :class:`IndexFormatError` naming ``path`` when the file is missing, truncated, not a
    ``.npy`` array (a pickled object array included), or of another dtype or shape."""
    import numpy as np

    path = Path(path)
    want = np.dtype(dtype)
    empty = shape is not None and all(isinstance(n, int) for n in shape) and math.prod(shape) == 0
    try:
        arr = np.load(path, mmap_mode="r" if mmap and not empty else None, allow_pickle=False)
    except FileNotFoundError as e:
        raise IndexFormatError(f"{path}: missing") from e
    except (OSError, ValueError, EOFError) as e:
        raise IndexFormatError(f"{path}: truncated or not a .npy array ({e})") from e
    if not isinstance(arr, np.ndarray):  # an .npz archive
        raise IndexFormatError(f"{path}: not a .npy array ({type(arr).__name__})")
    if (
        arr.dtype != want
        or (shape is not None and arr.shape != tuple(shape))
        or (shape is None and ndim is not None and arr.ndim != ndim)
    ):
        expected = tuple(shape) if shape is not None else f"{ndim}-d" if ndim is not None else "any shape"
        raise IndexFormatError(f"{path}: expected {want} {expected}, found {arr.dtype} {arr.shape}")
    return np.asarray(arr)


def read_json(path: str | os.PathLike[str], *, missing: str = "missing") -> Any:
    """Parse a UTF-8 JSON file. Raises :class:`IndexFormatError` naming ``path`` when it is
    absent (``missing`` is the message), unreadable or not valid JSON (nesting deeper than
    the stack allows included)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except FileNotFoundError as e:
        raise IndexFormatError(f"{path}: {missing}") from e
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise IndexFormatError(f"{path}: not valid JSON ({e})") from e


def check_format(meta: Any, path: str | os.PathLike[str], fmt: str, version: int, *, what: str = "file") -> dict[str, Any]:
    """Check that a parsed JSON header is a dict whose ``format`` is ``fmt``
    (:class:`IndexFormatError` otherwise: "``path``: not a ``fmt`` ``what``") and whose
    ``format_version`` is ``version`` (:class:`IndexVersionError` otherwise). Returns it."""
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise IndexFormatError(f"{path}: not a {fmt} {what}")
    got = meta.get("format_version")
    if got != version:
        raise IndexVersionError(
            f"{path}: format_version {got!r} is not one this medrag ({library_version()}) reads "
            f"({version}); rebuild it or upgrade medrag"
        )
    return meta


def load_format_json(
    path: str | os.PathLike[str], fmt: str, version: int, *, what: str = "file", missing: str = "missing"
) -> dict[str, Any]:
    """:func:`read_json` then :func:`check_format`."""
    return check_format(read_json(path, missing=missing), path, fmt, version, what=what)
