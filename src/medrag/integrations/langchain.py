"""A LangChain retriever over a medrag index.

    from medrag.integrations.langchain import MedragRetriever
    retriever = MedragRetriever(index=index, k=5)
    docs = retriever.invoke("procalcitonin guided antibiotics")
    docs[0].page_content, docs[0].metadata["pmid"], docs[0].metadata["pages"]

Each LangChain ``Document`` is one medrag passage: ``page_content`` is the chunk's text
(exactly ``document.text[start:end]``), ``id`` the chunk id, ``metadata`` its citation
metadata (:func:`medrag.integrations.citation_metadata`). Needs ``langchain-core``
(``pip install 'medrag[integrations]'``).
"""

from __future__ import annotations

from typing import Any

from ..errors import MissingDependencyError
from ._common import citation_metadata, search

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document as LCDocument
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - exercised when the extra is absent
    raise MissingDependencyError("langchain-core", "integrations", "the LangChain retriever") from exc

__all__ = ["MedragRetriever"]


class MedragRetriever(BaseRetriever):
    """A LangChain ``BaseRetriever`` over a :class:`medrag.Index`.

    Attributes:
        index: the medrag index searched.
        k: passages returned per query.
        filters: a :class:`medrag.Filters`, or None.
        mode: ``"hybrid"`` (fused; BM25 only on a lexical index), ``"bm25"`` or ``"dense"``.
    """

    index: Any
    k: int = 10
    filters: Any = None
    mode: str = "hybrid"

    model_config = {"arbitrary_types_allowed": True}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        return [
            LCDocument(page_content=p.chunk.text, metadata=citation_metadata(p), id=p.chunk.id)
            for p in search(self.index, query, self.k, self.filters, self.mode)
        ]
