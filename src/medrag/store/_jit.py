"""The numba registry behind the store's compiled kernels (optional extra ``medrag[fast]``).

A kernel module decorates its functions with :func:`jit`; nothing is compiled at import. The first
:func:`ensure_compiled` call replaces every registered function, in the globals of the
module that defined it, by its numba dispatcher (``cache=True``: machine code cached
beside the module, or in numba's user cache directory when that is not writable;
``nogil=True``: queries on several threads run in parallel). Compilation itself
happens at each kernel's first call, which resolves the kernels it calls through its
module's globals, so they are dispatchers too. Without numba, :data:`HAVE_NUMBA` is
False and the callers use their numpy paths.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

__all__ = ["HAVE_NUMBA", "ensure_compiled", "jit", "readonly"]

try:  # the optional extra medrag[fast]
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None
    HAVE_NUMBA = False

# (the defining module's globals, name, plain function) of every kernel
_REGISTERED: list[tuple[dict[str, Any], str, Callable[..., Any]]] = []
_READY = False
_LOCK = threading.Lock()


def jit(f: Callable[..., Any]) -> Callable[..., Any]:
    """Register a kernel; :func:`ensure_compiled` wraps it with numba on first use (a
    kernel registered after that is wrapped at once).

    Not at import: numba's on-disk cache setup creates ``__pycache__`` and probes it with
    a temporary file when a function is decorated, and importing medrag writes nothing.
    """
    with _LOCK:
        _REGISTERED.append((f.__globals__, f.__name__, f))
        if _READY:
            f.__globals__[f.__name__] = numba.njit(cache=True, nogil=True)(f)
    return f


def ensure_compiled() -> None:
    """Replace every registered kernel by its numba dispatcher (once, thread-safe).
    No-op without numba."""
    global _READY
    if _READY or not HAVE_NUMBA:
        return
    with _LOCK:
        if not _READY:
            for g, name, f in _REGISTERED:
                g[name] = numba.njit(cache=True, nogil=True)(f)
            _READY = True


def readonly(a: np.ndarray) -> np.ndarray:
    """``a`` as a read-only, C-contiguous view (memory-mapped arrays are read-only, and
    a numba typed list needs one array type for every segment)."""
    a = np.ascontiguousarray(a)
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a
