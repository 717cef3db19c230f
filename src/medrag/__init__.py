"""medrag: medical evidence retrieval with citation-grounded answers.

The public API is what ``__all__`` lists; everything in a module whose name starts
with ``_`` is private. Importing medrag has no side effects: no environment variables,
no logging handlers (only a ``NullHandler``), no network.

    from medrag import Index, IndexConfig, answer
    from medrag.ingest import iter_pubmed

    index = Index.build(iter_pubmed("pubmed21n1298.xml.gz"), IndexConfig())
    result = answer("Does tocilizumab reduce mortality in severe COVID-19?", index)
    result.to_markdown()   # cited sentences and references, or the reason it abstained
"""

import logging as _logging

__version__ = "0.2.0"

from . import errors, ingest, types  # noqa: E402
from .answer import AnswerConfig, answer  # noqa: E402
from .audit import AuditLog, verify_audit_log  # noqa: E402
from .chunking import ChunkConfig  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    GenerationError,
    IndexFormatError,
    IndexNotFoundError,
    IndexVersionError,
    IngestError,
    MedragError,
    MissingDependencyError,
)
from .index import Filters, FusionConfig, Index, IndexConfig  # noqa: E402
from .types import (  # noqa: E402
    Answer,
    AnswerSentence,
    Chunk,
    Citation,
    Deletion,
    Document,
    Passage,
    Section,
    SourceInfo,
)

_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = [
    "__version__",
    "errors",
    "ingest",
    "types",
    # building and searching
    "Index",
    "IndexConfig",
    "ChunkConfig",
    "FusionConfig",
    "Filters",
    # answering
    "answer",
    "AnswerConfig",
    "AuditLog",
    "verify_audit_log",
    # data
    "Answer",
    "AnswerSentence",
    "Chunk",
    "Citation",
    "Deletion",
    "Document",
    "Passage",
    "Section",
    "SourceInfo",
    # errors
    "MedragError",
    "ConfigError",
    "MissingDependencyError",
    "IngestError",
    "IndexNotFoundError",
    "IndexFormatError",
    "IndexVersionError",
    "GenerationError",
]
