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
from typing import TYPE_CHECKING

from ..types import Answer, AnswerSentence, Passage
from .cite import abstain as _abstain
from .cite import citation, recommendation_of
from .config import AnswerConfig
from .evidence import evidence_level
from .select import candidates, pick, question_weights, relevance, weighted_coverage
from .parts import question_parts
from .scorer import asks_for_number, evidence_scorer, number_subject, score_candidates, states_asked_number
from .sentvec import unit_vectors
from .support import SupportModel, coverage, passage_features, support_of
from .text import content_tokens

if TYPE_CHECKING:
    from ..retrieve.dense import Encoder

#: a recommendation is brought into an answer when its relevance is at least this share
#: of the best quote's
_REC_RELATIVE = 0.6

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
    encoder: Encoder | None = None,
) -> Answer:
    """An extractive answer: exact quotes of the best units, each with its citation.

    ``encoder`` (the index's, :attr:`medrag.Index.encoder`) lets the evidence scorer
    read the question-sentence dense similarity when ``config.dense_evidence`` is set
    (unit vectors cached per chunk, :mod:`.sentvec`); without one, or for a
    lexical-only index, quotes are scored by the lexical features alone.

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
    support, best_p = support_of(question, passages, config, term_weights)
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
    key_term = max(q, key=lambda t: (weight[t], t))
    parts = question_parts(question)
    if len(parts) == 1 and asks_for_number(question):
        # a dose, a duration or an amount is answered only by a quote that states a
        # number and names the thing asked about
        subject = number_subject(question)
        cands = [s for s in cands if states_asked_number(question, s.text) and _about(s, q, weight, key_term, subject)]
        if not cands:
            named = _word_of(question, subject[0]) if subject else _word_of(question, key_term)
            return _abstain(
                question, passages, index_id,
                f"the question asks for a number and no retrieved sentence about {named!r} states one", support,
            )
    scorer, sims = None, None
    if config.selection == "learned":
        if config.dense_evidence and encoder is not None:
            scorer = evidence_scorer(dense=True)
            if scorer is not None:
                sims = unit_vectors(question, passages, encoder)
        if scorer is None:
            scorer = evidence_scorer()
    if scorer is not None:
        probs = score_candidates(cands, q, weight, key_term, question, scorer, sims)
        rel = {id(x): float(pr) for x, pr in zip(cands, probs)}
        picked = scorer.pick(cands, probs, max_units=config.max_sentences)
    else:
        top_score = max(p.score for p in passages) or 1.0
        rel = {id(x): relevance(x, q, weight, top_score) for x in cands}
        picked = pick(
            cands, rel, max_sentences=config.max_sentences, mmr_lambda=config.mmr_lambda,
            min_relative_relevance=config.min_relative_relevance, key_term=key_term,
        )
    # the answer quotes the passage whose support it reports (issue 12): its best unit
    # leads when no pick comes from that passage's document
    if best_p is not None and picked and not any(s.passage.chunk.doc_id == best_p.chunk.doc_id for s in picked):
        own = [s for s in cands if s.passage.chunk.id == best_p.chunk.id]
        if own:
            picked = [max(own, key=lambda s: rel[id(s)]), *picked][: config.max_sentences]
    # a multi-part question: each part needs a quote holding its most specific word
    missing = []
    if len(parts) > 1:
        for part in parts:
            word = max(part.own, key=lambda t: (weight.get(t, 0.0), t))
            numeric = asks_for_number(part.text)

            def answers(s, word=word, numeric=numeric) -> bool:
                return word in s.tokens and (not numeric or states_asked_number(part.text, s.text))  # noqa: B023

            if any(answers(s) for s in picked):
                continue
            if numeric:  # a quote with the word but no number does not answer this part
                picked = [s for s in picked if word not in s.tokens or len(picked) == 1]
            extra = [s for s in cands if answers(s) and s not in picked
                     and not any(t.passage.chunk.doc_id == s.passage.chunk.doc_id and t.start < s.end and s.start < t.end
                                 for t in picked)]
            if extra:
                picked.append(max(extra, key=lambda s: rel[id(s)]))
            else:
                missing.append(part.text)
    # a guideline recommendation that answers the question leads, graded ones first:
    # one among the candidates nearly as relevant as the best pick is brought in
    recs = [s for s in cands if recommendation_of(s.passage, s.start, s.end) is not None]
    if recs and picked and not any(recommendation_of(s.passage, s.start, s.end) is not None for s in picked):
        best_rec = max(recs, key=lambda s: (bool(recommendation_of(s.passage, s.start, s.end)), rel[id(s)]))
        if rel[id(best_rec)] >= _REC_RELATIVE * rel[id(picked[0])] and not any(
            t.passage.chunk.doc_id == best_rec.passage.chunk.doc_id and t.start < best_rec.end and best_rec.start < t.end
            for t in picked
        ):
            picked = [best_rec, *picked][: config.max_sentences]
    # then the strongest evidence, then the newest, then the order of relevance
    order = {id(s): i for i, s in enumerate(picked)}

    def rank(s) -> tuple:
        grade = recommendation_of(s.passage, s.start, s.end)
        return (0 if grade else 1 if grade is not None else 2, evidence_level(s.passage),
                -(s.passage.source.year or 0), order[id(s)])

    picked.sort(key=rank)
    covered = frozenset().union(*(s.tokens for s in picked))
    status = "answered" if coverage(q, covered) >= config.partial_coverage and not missing else "partial"
    note = None
    if missing:
        note = "no retrieved passage answers " + " nor ".join(f"“{m}”" for m in missing)
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
        abstain_reason=note,
    )


def _about(s, q, weight, key_term: str, subject: list[str]) -> bool:
    """A quote is about the thing a number is asked for when it names that thing ("dose
    of amoxicillin": amoxicillin) and the question's most specific word or two thirds
    of its (idf-weighted) words."""
    if subject and not all(t in s.tokens for t in subject):
        return False
    return key_term in s.tokens or weighted_coverage(q, weight, s.tokens) >= 2 / 3


def _word_of(question: str, token: str) -> str:
    """The question's word whose content token is ``token`` (for messages)."""
    for w in question.replace("?", " ").split():
        if content_tokens(w) == [token]:
            return w.strip(",.;:()")
    return token
