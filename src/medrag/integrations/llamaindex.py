"""A LlamaIndex retriever over a medrag index.

    from medrag.integrations.llamaindex import MedragLlamaRetriever
    retriever = MedragLlamaRetriever(index, k=5)
    nodes = retriever.retrieve("procalcitonin guided antibiotics")
    nodes[0].score, nodes[0].node.text, nodes[0].node.metadata["pmid"]

Each ``NodeWithScore`` is one medrag passage: the node's text is the chunk's text,
``id_`` the chunk id, ``metadata`` its citation metadata
(:func:`medrag.integrations.citation_metadata`), ``score`` the fused score. Needs
``llama-index-core`` (``pip install 'medrag[integrations]'``).
"""

from __future__ import annotations

from typing import Any

from ..errors import MissingDependencyError
from ._common import citation_metadata, search

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # pragma: no cover - exercised when the extra is absent
    raise MissingDependencyError("llama-index-core", "integrations", "the LlamaIndex retriever") from exc

__all__ = ["MedragLlamaRetriever"]


class MedragLlamaRetriever(BaseRetriever):
    """A LlamaIndex ``BaseRetriever`` over a :class:`medrag.Index`; ``k``, ``filters``
    and ``mode`` as in :meth:`medrag.Index.search`."""

    def __init__(self, index: Any, *, k: int = 10, filters: Any = None, mode: str = "hybrid", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index, self.k, self.filters, self.mode = index, k, filters, mode

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        out = []
        for p in search(self.index, query_bundle.query_str, self.k, self.filters, self.mode):
            meta = citation_metadata(p)
            node = TextNode(
                text=p.chunk.text, id_=p.chunk.id, metadata=meta,
                # citation metadata is for the application, not for an LLM prompt or an embedding
                excluded_llm_metadata_keys=list(meta), excluded_embed_metadata_keys=list(meta),
            )
            out.append(NodeWithScore(node=node, score=p.score))
        return out
