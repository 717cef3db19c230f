"""Choosing the quotes of an extractive answer.

Candidates are the quotable units of the retrieved passages (:mod:`.units`: full
sentences, and lead-ins with their lists). Each gets a relevance (:func:`relevance`);
a small, non-redundant set is picked by maximal marginal relevance (Carbonell and
Goldstein, SIGIR 1998), never two overlapping spans.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..types import Passage
from .support import coverage
from .units import quote_units

__all__ = ["Candidate", "candidates", "question_weights", "pick"]

_SECTION_BONUS = {"CONCLUSIONS": 0.15, "CONCLUSION": 0.15, "RESULTS": 0.08, "FINDINGS": 0.08, "INTERPRETATION": 0.1}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A quotable unit of a passage: document offsets, text, content tokens, kind
    (``sentence`` / ``list`` / ``item``), its position among the passage's units
    (0-based) and their number, and the question-word coverage."""

    passage: Passage
    start: int
    end: int
    text: str
    tokens: frozenset[str]
    kind: str
    position: int
    n_units: int
    coverage: float

    @property
    def section(self) -> str | None:
        return self.passage.chunk.section_of(self.start)


def candidates(passages: Sequence[Passage], q: Sequence[str]) -> list[Candidate]:
    """Every quotable unit of every passage."""
    out = []
    for p in passages:
        c = p.chunk
        units = quote_units(c.text)
        for i, u in enumerate(units):
            out.append(Candidate(
                p, c.start + u.start, c.start + u.end, c.text[u.start : u.end], u.tokens, u.kind,
                i, len(units), coverage(q, u.tokens),
            ))
    return out


def question_weights(
    q: Sequence[str], pool: Sequence[Candidate], term_weights: Mapping[str, float] | None
) -> dict[str, float]:
    """How informative each question word is: the corpus idf when given, else its rarity
    among the candidate units ("tocilizumab" counts for more than "COVID-19" in a
    COVID-19 corpus)."""
    if term_weights:
        return {t: max(0.1, float(term_weights.get(t, 1.0))) for t in q}
    n = len(pool)
    return {t: math.log(1.0 + n / (1.0 + sum(t in x.tokens for x in pool))) for t in q}


def weighted_coverage(q: Sequence[str], weight: Mapping[str, float], toks: frozenset[str]) -> float:
    total = sum(weight[t] for t in q) or 1.0
    return sum(weight[t] for t in q if t in toks) / total


def relevance(c: Candidate, q: Sequence[str], weight: Mapping[str, float], top_score: float) -> float:
    """The hand-set relevance (weighted coverage, a section bonus, the passage's
    retrieval score): used when no learned scorer is given."""
    label = (c.section or "").split(";")[0].strip().upper()
    bonus = _SECTION_BONUS.get(label, 0.0)
    rel_pass = c.passage.score / top_score if top_score > 0 else 1.0
    return weighted_coverage(q, weight, c.tokens) * (1.0 + bonus) * (0.5 + 0.5 * rel_pass)


def pick(
    pool: Sequence[Candidate],
    rel: Mapping[int, float],
    *,
    max_sentences: int,
    mmr_lambda: float,
    min_relative_relevance: float,
    key_term: str | None,
) -> list[Candidate]:
    """Maximal marginal relevance over ``pool`` (``rel`` keyed by ``id(candidate)``):
    redundancy is the token Jaccard similarity to a picked quote; overlapping spans of
    one document are never both picked; a further quote must reach
    ``min_relative_relevance`` of the first one's relevance and, once the first quote
    holds the question's most specific word (``key_term``), hold it too."""
    picked: list[Candidate] = []
    rest = sorted(pool, key=lambda s: (-rel[id(s)], s.passage.rank, s.start))
    while rest and len(picked) < max_sentences:
        def mmr(s: Candidate) -> float:
            red = max((len(s.tokens & t.tokens) / len(s.tokens | t.tokens) for t in picked), default=0.0)
            return mmr_lambda * rel[id(s)] - (1 - mmr_lambda) * red
        best = max(rest, key=lambda s: (mmr(s), -s.passage.rank, -s.start))
        rest.remove(best)
        if picked and rel[id(best)] < min_relative_relevance * rel[id(picked[0])]:
            break
        if any(t.passage.chunk.doc_id == best.passage.chunk.doc_id and t.start < best.end and best.start < t.end
               for t in picked):
            continue  # the same words again (overlapping chunks or a list and its item)
        if picked and key_term and key_term in picked[0].tokens and key_term not in best.tokens:
            continue  # stays on the question's most specific word once the answer has it
        picked.append(best)
    return picked
