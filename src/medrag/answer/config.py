"""How answers are composed: :class:`AnswerConfig`, checked when it is built."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError
from .support import SupportModel

__all__ = ["AnswerConfig"]


def _number(name: str, v: object, lo: float, hi: float) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"AnswerConfig.{name} must be a number, not {type(v).__name__} {v!r}")
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ConfigError(f"AnswerConfig.{name} must be between {lo:g} and {hi:g}, not {v!r}")


def _count(name: str, v: object, lo: int, hi: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"AnswerConfig.{name} must be an integer, not {type(v).__name__} {v!r}")
    if not lo <= v <= hi:
        raise ConfigError(f"AnswerConfig.{name} must be between {lo} and {hi}, not {v!r}")


@dataclass(frozen=True, slots=True)
class AnswerConfig:
    """How answers are composed. Every value is checked on construction
    (:class:`~medrag.errors.ConfigError`): a ``threshold`` of ``nan`` or ``-1`` would
    silently turn abstention off.

    Attributes:
        k: passages retrieved (and given to a generator), 1..1000.
        threshold: abstain when the support probability is below it, in [0, 1]. The
            default is the operating point chosen on PubMedQA (see the README's "How
            good is it").
        max_sentences: quotes in an extractive answer, 1..50.
        min_sentence_coverage: a picked quote must contain at least this share of the
            question's content words, in [0, 1].
        mmr_lambda: relevance vs. novelty in maximal marginal relevance, in [0, 1].
        min_relative_relevance: a further quote is added only while its relevance is at
            least this share of the first quote's, in [0, 1].
        partial_coverage: below this share of question words covered by the picked
            quotes, the answer is ``partial``, in [0, 1].
        selection: ``"learned"`` picks quotes by the evidence scorer fit on SciFact
            rationales (:mod:`medrag.answer.scorer`); ``"overlap"`` by the hand-set
            idf-weighted overlap of 0.1.
        dense_evidence: with ``selection="learned"`` and an index that has an encoder,
            the evidence scorer also reads the cosine similarity of the question and
            each candidate sentence under the index's encoder, and of the question and
            the sentence joined with its neighbours, and how the sentence stands among
            its document's (sentence vectors cached per chunk; see the README for its
            cost and gain; fit at ``min_sentence_coverage=0``). Off: lexical features only.
        support: the calibrated support model.
    """

    k: int = 8
    threshold: float = 0.5
    max_sentences: int = 3
    min_sentence_coverage: float = 0.2
    mmr_lambda: float = 0.7
    min_relative_relevance: float = 0.7
    partial_coverage: float = 0.5
    selection: str = "learned"
    dense_evidence: bool = False
    support: SupportModel = field(default_factory=SupportModel)

    def __post_init__(self) -> None:
        _count("k", self.k, 1, 1000)
        _count("max_sentences", self.max_sentences, 1, 50)
        for name in ("threshold", "min_sentence_coverage", "mmr_lambda", "min_relative_relevance", "partial_coverage"):
            _number(name, getattr(self, name), 0.0, 1.0)
        if self.selection not in ("learned", "overlap"):
            raise ConfigError(f"AnswerConfig.selection must be 'learned' or 'overlap', not {self.selection!r}")
        if not isinstance(self.dense_evidence, bool):
            raise ConfigError(f"AnswerConfig.dense_evidence must be True or False, not {self.dense_evidence!r}")
        if not isinstance(self.support, SupportModel):
            raise ConfigError(f"AnswerConfig.support must be a SupportModel, not {type(self.support).__name__}")
