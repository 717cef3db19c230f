"""Audit keys: read from a file or an environment variable the caller names (never
stored in the log), checked for length, and fingerprinted by a non-secret key id."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

from ..errors import ConfigError

logger = logging.getLogger(__package__)

_MIN_KEY_BYTES = 16


def _check_key(key: bytes, where: str) -> bytes:
    if not isinstance(key, (bytes, bytearray)):
        raise ConfigError(f"an audit key must be bytes, not {type(key).__name__}")
    if len(key) < _MIN_KEY_BYTES:
        raise ConfigError(f"the audit key from {where} is {len(key)} byte(s); at least {_MIN_KEY_BYTES} are needed")
    return bytes(key)


def audit_key_from_file(path: str | os.PathLike[str]) -> bytes:
    """The key in a file (its bytes, one trailing newline removed; at least 16 bytes).

    Make one with ``python -c "import secrets; print(secrets.token_hex(32))" > audit.key``
    and keep it away from the log (another machine or account, a secrets manager).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the audit key file {p}: {exc.strerror or exc}") from exc
    if data.endswith(b"\n"):
        data = data[:-1]
        if data.endswith(b"\r"):
            data = data[:-1]
    try:
        if p.stat().st_mode & 0o077:
            logger.warning("the audit key file %s is readable by other users (chmod 600 it)", p)
    except OSError:
        pass
    return _check_key(data, str(p))


def audit_key_from_env(name: str) -> bytes:
    """The key in the environment variable ``name`` (UTF-8, at least 16 bytes)."""
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(f"the environment variable {name} (the audit key) is not set")
    return _check_key(os.fsencode(value), f"${name}")


def _key_id(key: bytes) -> str:
    """A non-secret fingerprint that tells keys apart (it does not reveal the key)."""
    return hmac.new(key, b"medrag-audit-key-id", hashlib.sha256).hexdigest()[:16]
