"""Compose an extractive :class:`~medrag.types.Answer` from retrieved passages.

:func:`compose_extractive` (the default; offline, no language model) cuts the passages
into quotable units (:mod:`.units`: full sentences, lead-ins with their lists; never a
heading or a fragment), scores each against the question (:mod:`.select`), picks a
small non-redundant set by maximal marginal relevance, orders it by strength of
evidence (:mod:`.evidence`) and recency, and emits each as an exact quote citing its
own section and page (:mod:`.cite`). The generated composer is
:func:`medrag.answer.generated.compose_generated`.

Both abstain, with a reason, when support is too weak. Support is a calibrated
probability that the passages answer the question (:mod:`.support`), fit on PubMedQA
(``benchmarks/bench_answer.py`` reproduces the fit and the trade-off curve). The
composer sees only passages: it knows nothing of how they were retrieved beyond the
scores each passage carries.

This module also re-exports the names that lived here before the split
(``AnswerConfig``, ``SupportModel``, ``passage_features``, ``support_of``,
``evidence_level``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..types import Answer, AnswerSentence, Passage
from .cite import abstain as _abstain
from .cite import citation
from .config import AnswerConfig
from .evidence import evidence_level
from .select import candidates, pick, question_weights, relevance
from .support import SupportModel, coverage, passage_features, support_of
from .text import content_tokens

__all__ = [
    "AnswerConfig",
    "SupportModel",
    "compose_extractive",
    "evidence_level",
    "passage_features",
    "support_of",
]


def compose_extractive(
    question: str,
    passages: Sequence[Passage],
    *,
    index_id: str = "unsaved",
    config: AnswerConfig | None = None,
    retracted_only: bool = False,
    term_weights: Mapping[str, float] | None = None,
) -> Answer:
    """An extractive answer: exact quotes of the best units, each with its citation.

    ``term_weights`` (content word -> weight, e.g. the corpus idf from
    :meth:`medrag.Index.term_weights`) makes rare question words count for more when
    quotes are chosen; without it, words are weighted by their rarity among the
    retrieved units.

    ``retracted_only`` tells the composer that the only evidence the index had for the
    question came from retracted publications (which retrieval filtered out), so that
    the abstention says so.
    """
    config = config or AnswerConfig()
    q = sorted(set(content_tokens(question)))
    if not passages:
        reason = (
            "only retracted evidence was found for this question"
            if retracted_only
            else "no passage was retrieved for the question"
        )
        return _abstain(question, passages, index_id, reason)
    if not q:
        return _abstain(question, passages, index_id, "the question has no content words to match")
    support, _ = support_of(question, passages, config, term_weights)
    if support < config.threshold:
        reason = (
            f"no passage supports the question above the threshold "
            f"(support {support:.2f} < {config.threshold:.2f})"
        )
        if retracted_only:
            reason = "only retracted evidence supports this question; non-retracted " + reason[3:]
        return _abstain(question, passages, index_id, reason, support)

    pool = candidates(passages, q)
    cands = [s for s in pool if s.coverage >= config.min_sentence_coverage]
    if not cands:
        return _abstain(question, passages, index_id, "no sentence of the retrieved passages addresses the question", support)
    weight = question_weights(q, pool, term_weights)
    top_score = max(p.score for p in passages) or 1.0
    rel = {id(x): relevance(x, q, weight, top_score) for x in cands}
    key_term = max(q, key=lambda t: (weight[t], t))
    picked = pick(
        cands, rel, max_sentences=config.max_sentences, mmr_lambda=config.mmr_lambda,
        min_relative_relevance=config.min_relative_relevance, key_term=key_term,
    )
    # strongest evidence first, then newest, then the order of relevance
    order = {id(s): i for i, s in enumerate(picked)}
    picked.sort(key=lambda s: (evidence_level(s.passage), -(s.passage.source.year or 0), order[id(s)]))
    covered = frozenset().union(*(s.tokens for s in picked))
    status = "answered" if coverage(q, covered) >= config.partial_coverage else "partial"
    sentences = tuple(
        AnswerSentence(text=s.text, citations=(citation(s.passage, s.start, s.end, s.coverage),),
                       support=round(float(s.coverage), 4))
        for s in picked
    )
    return Answer(
        question=question,
        status=status,
        sentences=sentences,
        passages=tuple(passages),
        index_id=index_id,
        support=round(float(support), 4),
    )
