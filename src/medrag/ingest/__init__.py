"""Ingestion: PubMed XML, MEDLINE text, E-utilities fetch and guideline PDFs into
:class:`~medrag.types.Document` objects. Knows nothing of retrieval."""

from ._common import IngestReport, Skipped
from .pubmed import iter_pubmed, iter_pubmed_events

__all__ = ["IngestReport", "Skipped", "iter_pubmed", "iter_pubmed_events"]
