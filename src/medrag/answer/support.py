"""Support: a calibrated probability that retrieved passages answer a question.

:class:`SupportModel` is a logistic model over a few features of each passage
(:func:`support_features`): how well it matches the question (dense cosine, shares of
the question's words) and how far it stands out from the passages of the *other*
retrieved documents (a passage that answers a question is usually far ahead of the
rest; a topical neighbour is one of several near-equals), and how far its dense cosine
is ahead of the best other document's (:func:`dense_margin`). :func:`support_of` takes
the best passage. The weights were fit on PubMedQA (``python benchmarks/bench_answer.py
--fit``), separately for hybrid indexes (passages carry a dense score) and
lexical-only ones.
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

__all__ = ["SupportModel", "dense_margin", "passage_features", "support_features", "support_of", "coverage"]

#: names of the :func:`support_features` vector, in order
FEATURES = ("dense", "coverage", "sentence", "idf_coverage", "fused_gap", "bm25_ratio_top", "bm25_ratio_mean",
            "dense_margin")


def coverage(q: Sequence[str], toks: frozenset[str] | set[str]) -> float:
    """The share of the question's content words ``q`` found in ``toks`` (0..1)."""
    return sum(1 for t in q if t in toks) / len(q) if q else 0.0


@dataclass(frozen=True, slots=True)
class SupportModel:
    """P(the passages answer the question) = sigmoid(w . features + bias).

    Features of a passage (see :func:`support_features`): its dense cosine with the
    question; the share of the question's content words it contains; that share
    within its best sentence; the share weighted by each word's corpus idf (rare
    words such as a drug's name count for more than "patients"); and how far it stands
    out from the other documents' passages (:func:`standout`: the fused-score gap for
    hybrid indexes, the BM25 ratios for lexical-only ones), and for hybrid indexes its
    dense cosine's margin over the best other document's (:func:`dense_margin`). Passages without a dense
    score (a lexical-only index) use the ``lex_*`` weights. Weights were fit by
    logistic regression on PubMedQA PQA-L dev questions asked with and without their
    own abstract in the index (``python benchmarks/bench_answer.py --fit``).
    """

    # dense: fit with 18,444 distractor abstracts in the index (--distractors --fit);
    # lexical: fit the same way on a lexical-only index (--lexical --distractors --fit);
    # both by logistic regression on standardised features, folded back into plain
    # weights. The 0.1 lexical weights, fit on the 500 abstracts alone, were
    # over-confident on large indexes (56.8% abstained on unanswerable questions at 0.50
    # with distractors).
    w_dense: float = 6.670
    w_coverage: float = 3.524
    w_sentence: float = 1.992
    w_idf_coverage: float = 0.540
    w_fused_gap: float = 7.002
    w_dense_margin: float = 4.797
    bias: float = -9.674
    lex_w_coverage: float = 5.236
    lex_w_sentence: float = 2.847
    lex_w_idf_coverage: float = 0.495
    lex_w_bm25_ratio_top: float = -0.101
    lex_w_bm25_ratio_mean: float = -6.398
    lex_bias: float = -0.474

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"SupportModel.{f.name} must be a finite number, not {v!r}")

    def logit(self, features: Sequence[float], has_dense: bool = True) -> float:
        """The log-odds for a :func:`support_features` vector. A shorter vector (the
        four :func:`passage_features`) leaves out the features it lacks, which is only
        right for a model whose weights on them are 0."""
        dense, cov, sent = features[:3]
        wcov = features[3] if len(features) > 3 else cov
        gap, r_top, r_mean, margin = (tuple(features[4:8]) + (0.0, 0.0, 0.0, 0.0))[:4]
        if has_dense:
            return (self.w_dense * dense + self.w_coverage * cov + self.w_sentence * sent
                    + self.w_idf_coverage * wcov + self.w_fused_gap * gap + self.w_dense_margin * margin + self.bias)
        return (self.lex_w_coverage * cov + self.lex_w_sentence * sent + self.lex_w_idf_coverage * wcov
                + self.lex_w_bm25_ratio_top * r_top + self.lex_w_bm25_ratio_mean * r_mean + self.lex_bias)

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


def standout(passage: Passage, passages: Sequence[Passage]) -> tuple[float, float, float]:
    """How far ``passage`` stands out from the passages of the other documents among
    ``passages`` (chunks of its own document are not its competitors):

    * fused gap: its final (fused) score minus the mean final score of the others (a
      hybrid index fuses min-max normalised runs, so this is scale-free);
    * BM25 ratio (top): the best other BM25 score over its own, and (mean) the mean
      other BM25 score over its own (0.0 when it has no positive BM25 score).

    Without other documents the others count as 0. The features depend on how many
    passages were retrieved (the weights were fit at ``AnswerConfig.k`` = 8).
    """
    others = [o for o in passages if o.chunk.doc_id != passage.chunk.doc_id]
    gap = passage.score - (sum(o.score for o in others) / len(others) if others else 0.0)
    own = passage.scores.get("bm25", 0.0)
    if others and own > 0:
        ob = [o.scores.get("bm25", 0.0) for o in others]
        r_top, r_mean = max(ob) / own, sum(ob) / len(ob) / own
    else:
        r_top = r_mean = 0.0
    return float(gap), float(r_top), float(r_mean)


def dense_margin(passage: Passage, passages: Sequence[Passage]) -> float:
    """The passage's dense cosine minus the best dense cosine among the passages of the
    other documents in ``passages`` (0 for those without one; without other documents,
    its own cosine). A passage that answers the question is usually clearly nearer to it
    than any other document; the best of several topical neighbours is not. 0.0 for a
    passage without a dense score (a lexical-only index)."""
    if "dense" not in passage.scores:
        return 0.0
    others = [o.scores.get("dense", 0.0) for o in passages if o.chunk.doc_id != passage.chunk.doc_id]
    return float(passage.scores["dense"] - (max(others) if others else 0.0))


def support_features(
    question: str,
    passage: Passage,
    passages: Sequence[Passage],
    term_weights: Mapping[str, float] | None = None,
) -> tuple[float, ...]:
    """The support model's features of ``passage`` among the retrieved ``passages``
    (:data:`FEATURES` order): :func:`passage_features`, :func:`standout`, then
    :func:`dense_margin`."""
    return passage_features(question, passage, term_weights) + standout(passage, passages) + (
        dense_margin(passage, passages),)


def support_of(
    question: str,
    passages: Sequence[Passage],
    config: "AnswerConfig",
    term_weights: Mapping[str, float] | None = None,
) -> tuple[float, Passage | None]:
    """The best support probability over the passages, and the passage that gives it."""
    best, best_p = 0.0, None
    for p in passages:
        prob = config.support.probability(support_features(question, p, passages, term_weights), "dense" in p.scores)
        if prob > best:
            best, best_p = prob, p
    return best, best_p
