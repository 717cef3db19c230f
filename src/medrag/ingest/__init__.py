"""Ingestion: PubMed XML, MEDLINE text, E-utilities fetch and guideline PDFs into
:class:`~medrag.types.Document` objects. Knows nothing of retrieval."""

from ._common import IngestReport, Skipped
from .entrez import FetchResult, fetch_pubmed
from .medline import iter_medline
from .pdf import iter_guideline_pdf
from .pubmed import iter_pubmed, iter_pubmed_events

__all__ = [
    "IngestReport",
    "Skipped",
    "FetchResult",
    "fetch_pubmed",
    "iter_guideline_pdf",
    "iter_medline",
    "iter_pubmed",
    "iter_pubmed_events",
]
