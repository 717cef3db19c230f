"""Ingestion: PubMed XML, MEDLINE text, E-utilities fetch and guideline PDFs into
:class:`~medrag.types.Document` objects. Knows nothing of retrieval."""

from ._common import IngestReport, RecordLimits, Skipped
from .beir import beir_id, iter_beir_corpus, read_beir_qrels, read_beir_queries
from .entrez import FetchResult, fetch_pubmed
from .medline import iter_medline
from .parallel import iter_parallel
from .pdf import iter_guideline_pdf
from .pubmed import iter_pubmed, iter_pubmed_events

__all__ = [
    "IngestReport",
    "RecordLimits",
    "Skipped",
    "FetchResult",
    "fetch_pubmed",
    "beir_id",
    "iter_beir_corpus",
    "read_beir_qrels",
    "read_beir_queries",
    "iter_guideline_pdf",
    "iter_medline",
    "iter_parallel",
    "iter_pubmed",
    "iter_pubmed_events",
]
