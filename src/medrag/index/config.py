"""What decides an index's contents (:class:`IndexConfig`, :class:`FusionConfig`) and
the on-disk format name and version recorded in its manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .. import _indexdir
from ..chunking import ChunkConfig
from ..errors import ConfigError
from ..retrieve.analyzer import Analyzer
from ..retrieve.bm25 import BM25Params
from ..retrieve.dense import EncoderConfig, VectorConfig

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "READS", "Mode", "FusionConfig", "IndexConfig"]

FORMAT = "medrag.index"
FORMAT_VERSION = 2  # 2: document ids as flat arrays (medrag._docids); 1: doc_ids.json
#: the manifest versions a load accepts (every save writes FORMAT_VERSION)
READS = (1, 2)
MANIFEST = _indexdir.MANIFEST
Mode = Literal["hybrid", "bm25", "dense"]


@dataclass(frozen=True, slots=True)
class FusionConfig:
    """How BM25 and dense runs are fused.

    ``method="convex"``: ``w_bm25 * minmax(bm25) + w_dense * minmax(dense)`` over the
    union of both retrievers' top ``candidates`` rows, each scored by both (Bruch et al.
    2023). ``method="rrf"``: reciprocal rank fusion with ``rrf_k`` (Cormack et al. 2009).
    The defaults were chosen on SciFact training claims (benchmarks/bench_index.py):
    convex 0.4/0.6 scored 0.733 nDCG@10 against 0.733 (0.5/0.5), 0.730 (0.3/0.7) and
    0.722 (RRF, k=10); z-score and theoretical-minimum normalizations gave 0.730-0.734.
    """

    method: str = "convex"
    bm25_weight: float = 0.4
    dense_weight: float = 0.6
    rrf_k: float = 60.0
    candidates: int = 100

    def __post_init__(self) -> None:
        if self.method not in ("convex", "rrf"):
            raise ConfigError(f"fusion method must be 'convex' or 'rrf', not {self.method!r}")
        if self.candidates < 1:
            raise ConfigError("fusion candidates must be >= 1")


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """Everything that decides what an index contains; all of it goes in the manifest.

    ``encoder=None`` builds a lexical-only index.
    """

    chunking: ChunkConfig = field(default_factory=ChunkConfig)
    analyzer: Analyzer = field(default_factory=Analyzer)
    bm25: BM25Params = field(default_factory=BM25Params)
    encoder: EncoderConfig | None = field(default_factory=EncoderConfig)
    vectors: VectorConfig = field(default_factory=VectorConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
