"""medrag: medical evidence retrieval with citation-grounded answers.

The public API is what ``__all__`` lists; everything in a module whose name starts
with ``_`` is private. Importing medrag has no side effects: no environment variables,
no logging handlers (only a ``NullHandler``), no network.
"""

from __future__ import annotations

import logging

from . import errors, ingest, types
from .errors import (
    ConfigError,
    GenerationError,
    IndexFormatError,
    IndexNotFoundError,
    IndexVersionError,
    IngestError,
    MedragError,
    MissingDependencyError,
)
from .types import Chunk, Deletion, Document, Section

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "errors",
    "ingest",
    "types",
    "Chunk",
    "Deletion",
    "Document",
    "Section",
    "MedragError",
    "ConfigError",
    "MissingDependencyError",
    "IngestError",
    "IndexNotFoundError",
    "IndexFormatError",
    "IndexVersionError",
    "GenerationError",
]
