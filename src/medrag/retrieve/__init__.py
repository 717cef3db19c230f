"""Retrieval: the lexical (BM25) half of the hybrid index and its analyzer."""

from .analyzer import DEFAULT_TOKEN_PATTERN, LUCENE_ENGLISH_STOPWORDS, Analyzer
from .bm25 import BM25_FORMAT, BM25_FORMAT_VERSION, BM25Index, BM25Params

__all__ = [
    "Analyzer",
    "BM25Index",
    "BM25Params",
    "BM25_FORMAT",
    "BM25_FORMAT_VERSION",
    "DEFAULT_TOKEN_PATTERN",
    "LUCENE_ENGLISH_STOPWORDS",
]
