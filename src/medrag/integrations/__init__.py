"""medrag as the retriever inside frameworks users already have (optional extras).

- :mod:`medrag.integrations.langchain`: :class:`MedragRetriever`, a LangChain
  ``BaseRetriever`` (``pip install 'medrag[integrations]'`` or ``langchain-core``).
- :mod:`medrag.integrations.llamaindex`: :class:`MedragLlamaRetriever`, a LlamaIndex
  ``BaseRetriever`` (``llama-index-core``).

Both return medrag passages with their citation metadata (:func:`citation_metadata`):
chunk and document ids, PMID, DOI, title, journal, year, section, pages, the passage's
character span in its document, fused and per-retriever scores, rank, and a PubMed
link. Importing this package imports neither framework.
"""

from ._common import citation_metadata

__all__ = ["citation_metadata"]
