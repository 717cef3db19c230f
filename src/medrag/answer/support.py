"""Support: a calibrated probability that retrieved passages answer a question.

:class:`SupportModel` is a logistic model over a few features of each passage
(:func:`passage_features`); :func:`support_of` takes the best passage. The weights were
fit on PubMedQA (``python benchmarks/bench_answer.py --fit``), separately for hybrid
indexes (passages carry a dense score) and lexical-only ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..types import Passage
from .text import content_token_set, content_tokens
from .units import sentence_tokens

if TYPE_CHECKING:  # pragma: no cover
    from .config import AnswerConfig

__all__ = ["SupportModel", "passage_features", "support_of", "coverage"]


def coverage(q: Sequence[str], toks: frozenset[str] | set[str]) -> float:
    """The share of the question's content words ``q`` found in ``toks`` (0..1)."""
    return sum(1 for t in q if t in toks) / len(q) if q else 0.0


@dataclass(frozen=True, slots=True)
class SupportModel:
    """P(the passages answer the question) = sigmoid(w . features + bias).

    Features of a passage (see :func:`passage_features`): its dense cosine with the
    question; the share of the question's content words it contains; that share
    within its best sentence; and the share weighted by each word's corpus idf (rare
    words such as a drug's name count for more than "patients"). Passages without a
    dense score (a lexical-only index) use the ``lex_*`` weights. Weights were fit by
    logistic regression on PubMedQA PQA-L dev questions asked with and without their
    own abstract in the index (``python benchmarks/bench_answer.py --fit``).
    """

    # dense: fit with 18,445 distractor abstracts in the index (--distractors --fit);
    # lexical: fit the same way on a lexical-only index (--lexical --distractors --fit);
    # the 0.1 lexical weights, fit on the 500 abstracts alone, were over-confident on
    # large indexes (56.8% abstained on unanswerable questions at 0.50 with distractors)
    w_dense: float = 11.241
    w_coverage: float = 2.946
    w_sentence: float = 2.503
    w_idf_coverage: float = 2.643
    bias: float = -11.629
    lex_w_coverage: float = 4.711
    lex_w_sentence: float = 3.531
    lex_w_idf_coverage: float = 3.030
    lex_bias: float = -6.544

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"SupportModel.{f.name} must be a finite number, not {v!r}")

    def logit(self, features: Sequence[float], has_dense: bool = True) -> float:
        dense, cov, sent = features[:3]
        wcov = features[3] if len(features) > 3 else cov
        if has_dense:
            return (self.w_dense * dense + self.w_coverage * cov + self.w_sentence * sent
                    + self.w_idf_coverage * wcov + self.bias)
        return self.lex_w_coverage * cov + self.lex_w_sentence * sent + self.lex_w_idf_coverage * wcov + self.lex_bias

    def probability(self, features: Sequence[float], has_dense: bool = True) -> float:
        z = self.logit(features, has_dense)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def passage_features(
    question: str, passage: Passage, term_weights: Mapping[str, float] | None = None
) -> tuple[float, float, float, float]:
    """(dense cosine, question-word coverage of the passage, best sentence's coverage,
    idf-weighted coverage of the passage). Without ``term_weights`` the last equals the
    second."""
    q = sorted(set(content_tokens(question)))
    dense = passage.scores.get("dense", 0.0)
    toks = content_token_set(passage.chunk.index_text)
    cov = coverage(q, toks)
    best_sent = max((coverage(q, t) for _, _, t in sentence_tokens(passage.chunk.text)), default=0.0)
    if term_weights:
        w = {t: max(0.0, float(term_weights.get(t, 0.0))) for t in q}
        total = sum(w.values())
        wcov = sum(w[t] for t in q if t in toks) / total if total > 0 else cov
    else:
        wcov = cov
    return (float(dense), cov, best_sent, wcov)


def support_of(
    question: str,
    passages: Sequence[Passage],
    config: "AnswerConfig",
    term_weights: Mapping[str, float] | None = None,
) -> tuple[float, Passage | None]:
    """The best support probability over the passages, and the passage that gives it."""
    best, best_p = 0.0, None
    for p in passages:
        prob = config.support.probability(passage_features(question, p, term_weights), "dense" in p.scores)
        if prob > best:
            best, best_p = prob, p
    return best, best_p
