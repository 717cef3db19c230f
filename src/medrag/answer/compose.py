"""Compose an :class:`~medrag.types.Answer` from retrieved passages.

Two composers share one contract (every sentence cites, or the answer abstains):

- :func:`compose_extractive` (the default; offline, no language model): split the
  passages into sentences with exact spans, score each against the question, pick a
  small non-redundant set by maximal marginal relevance (Carbonell and Goldstein,
  SIGIR 1998), order it by strength of evidence and recency, and emit each sentence as
  an exact quote with its citation.
- :func:`~medrag.answer.generated.compose_generated` (in its own module): ask a
  generator for an answer with a citation per sentence, then verify every sentence
  against the passages it cites; unsupported sentences are removed and reported.

Both abstain, with a reason, when support is too weak. Support is a calibrated
probability that the passages answer the question (:class:`SupportModel`), fit on
PubMedQA (``benchmarks/bench_answer.py`` reproduces the fit and the trade-off curve).
The composer sees only passages: it knows nothing of how they were retrieved beyond
the scores each passage carries.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..sentences import split_sentences
from ..types import Answer, AnswerSentence, Citation, Passage
from .text import content_tokens

__all__ = [
    "AnswerConfig",
    "SupportModel",
    "compose_extractive",
    "evidence_level",
    "passage_features",
]

#: Publication types from strongest to weakest evidence (lower is stronger).
_EVIDENCE_ORDER = [
    ("Practice Guideline", 0),
    ("Guideline", 0),
    ("Meta-Analysis", 1),
    ("Systematic Review", 1),
    ("Randomized Controlled Trial", 2),
    ("Controlled Clinical Trial", 3),
    ("Clinical Trial", 3),
    ("Multicenter Study", 4),
    ("Comparative Study", 4),
    ("Observational Study", 4),
    ("Review", 5),
    ("Case Reports", 6),
    ("Editorial", 7),
    ("Comment", 7),
    ("Letter", 7),
]
_DEFAULT_LEVEL = 5
_SECTION_BONUS = {"CONCLUSIONS": 0.15, "CONCLUSION": 0.15, "RESULTS": 0.08, "FINDINGS": 0.08, "INTERPRETATION": 0.1}


def evidence_level(passage: Passage) -> int:
    """0 (guideline) .. 7 (opinion): the strongest level among the document's types."""
    if passage.source.kind == "guideline":
        return 0
    levels = [lvl for name, lvl in _EVIDENCE_ORDER if name in passage.source.publication_types]
    return min(levels) if levels else _DEFAULT_LEVEL


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
    # lexical: fit on a lexical-only index of the 500 abstracts (--lexical --fit)
    w_dense: float = 11.241
    w_coverage: float = 2.946
    w_sentence: float = 2.503
    w_idf_coverage: float = 2.643
    bias: float = -11.629
    lex_w_coverage: float = 7.672
    lex_w_sentence: float = 3.948
    lex_w_idf_coverage: float = 2.392
    lex_bias: float = -7.280

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


@dataclass(frozen=True, slots=True)
class AnswerConfig:
    """How answers are composed.

    Attributes:
        k: passages retrieved (and given to a generator).
        threshold: abstain when the support probability is below it. The default is
            the operating point chosen on PubMedQA (see the README's "How good is it").
        max_sentences: sentences in an extractive answer.
        min_sentence_coverage: a picked sentence must contain at least this share of
            the question's content words.
        mmr_lambda: relevance vs. novelty in maximal marginal relevance.
        min_relative_relevance: a further sentence is added only while its relevance is
            at least this share of the first sentence's.
        partial_coverage: below this share of question words covered by the picked
            sentences, the answer is ``partial``.
        support: the calibrated support model.
    """

    k: int = 8
    threshold: float = 0.5
    max_sentences: int = 3
    min_sentence_coverage: float = 0.2
    mmr_lambda: float = 0.7
    min_relative_relevance: float = 0.7
    partial_coverage: float = 0.5
    support: SupportModel = field(default_factory=SupportModel)


@dataclass(frozen=True, slots=True)
class _Sent:
    passage: Passage
    start: int  # in the document's text
    end: int
    text: str
    tokens: frozenset[str]
    coverage: float
    score: float


def _coverage(q: Sequence[str], toks: frozenset[str] | set[str]) -> float:
    return sum(1 for t in q if t in toks) / len(q) if q else 0.0


@functools.lru_cache(maxsize=4096)
def _split(text: str) -> tuple[tuple[int, int, frozenset[str]], ...]:
    """Sentence spans of a chunk's text with their content tokens (cached: support,
    features and selection all look at the same passages)."""
    out = []
    for a, b in split_sentences(text):
        toks = frozenset(content_tokens(text[a:b]))
        if toks:
            out.append((a, b, toks))
    return tuple(out)


def _sentences(p: Passage, q_tokens: list[str]) -> list[_Sent]:
    c = p.chunk
    out = []
    for a, b, toks in _split(c.text):
        text = c.text[a:b]
        cov = _coverage(q_tokens, toks)
        bonus = _SECTION_BONUS.get((c.section or "").split(";")[0].strip().upper(), 0.0)
        out.append(_Sent(p, c.start + a, c.start + b, text, toks, cov, cov + bonus * cov))
    return out


def passage_features(
    question: str, passage: Passage, term_weights: Mapping[str, float] | None = None
) -> tuple[float, float, float, float]:
    """(dense cosine, question-word coverage of the passage, best sentence's coverage,
    idf-weighted coverage of the passage). Without ``term_weights`` the last equals the
    second."""
    q = sorted(set(content_tokens(question)))
    dense = passage.scores.get("dense", 0.0)
    toks = set(content_tokens(passage.chunk.index_text))
    sents = _sentences(passage, q)
    cov = _coverage(q, toks)
    if term_weights:
        w = {t: max(0.0, float(term_weights.get(t, 0.0))) for t in q}
        total = sum(w.values())
        wcov = sum(w[t] for t in q if t in toks) / total if total > 0 else cov
    else:
        wcov = cov
    return (float(dense), cov, max((s.coverage for s in sents), default=0.0), wcov)


def support_of(
    question: str,
    passages: Sequence[Passage],
    config: AnswerConfig,
    term_weights: Mapping[str, float] | None = None,
) -> tuple[float, Passage | None]:
    """The best support probability over the passages, and the passage that gives it."""
    best, best_p = 0.0, None
    for p in passages:
        prob = config.support.probability(passage_features(question, p, term_weights), "dense" in p.scores)
        if prob > best:
            best, best_p = prob, p
    return best, best_p


def _citation(s: _Sent, support: float) -> Citation:
    c = s.passage.chunk
    page = None
    if c.pages:
        page = c.pages[0]
    return Citation(
        chunk_id=c.id,
        doc_id=c.doc_id,
        start=s.start,
        end=s.end,
        quote=s.text,
        support=round(float(support), 4),
        pmid=s.passage.source.pmid,
        doi=s.passage.source.doi,
        page=page,
        section=c.section,
    )


def _abstain(question: str, passages: Sequence[Passage], index_id: str, reason: str, support: float = 0.0, **kw) -> Answer:
    return Answer(
        question=question,
        status="abstained",
        sentences=(),
        passages=tuple(passages),
        index_id=index_id,
        abstain_reason=reason,
        support=round(float(support), 4),
        **kw,
    )


def compose_extractive(
    question: str,
    passages: Sequence[Passage],
    *,
    index_id: str = "unsaved",
    config: AnswerConfig | None = None,
    retracted_only: bool = False,
    term_weights: Mapping[str, float] | None = None,
) -> Answer:
    """An extractive answer: exact quotes of the best sentences, each with its citation.

    ``term_weights`` (content word -> weight, e.g. the corpus idf from
    :meth:`medrag.Index.term_weights`) makes rare question words count for more when
    sentences are chosen; without it, words are weighted by their rarity among the
    retrieved sentences.

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

    all_sents = [s for p in passages for s in _sentences(p, q)]
    cands = [s for s in all_sents if s.coverage >= config.min_sentence_coverage]
    if not cands:
        return _abstain(question, passages, index_id, "no sentence of the retrieved passages addresses the question", support)
    # Question words are weighted by how informative they are (the corpus idf when the
    # caller gives it, else rarity among the retrieved sentences): "tocilizumab" counts
    # for more than "COVID-19" in a COVID-19 corpus.
    n_sents = len(all_sents)
    if term_weights:
        weight = {t: max(0.1, float(term_weights.get(t, 1.0))) for t in q}
    else:
        weight = {t: math.log(1.0 + n_sents / (1.0 + sum(t in x.tokens for x in all_sents))) for t in q}
    total = sum(weight.values()) or 1.0

    def weighted(x: _Sent) -> float:
        return sum(weight[t] for t in q if t in x.tokens) / total

    # relevance: weighted coverage (with the section bonus), scaled by how strongly the
    # sentence's passage was retrieved
    top_score = max(p.score for p in passages) or 1.0
    rel = {
        id(x): weighted(x) * (x.score / x.coverage if x.coverage else 1.0)
        * (0.5 + 0.5 * (x.passage.score / top_score if top_score > 0 else 1.0))
        for x in cands
    }
    key_term = max(q, key=lambda t: (weight[t], t))
    picked: list[_Sent] = []
    pool = sorted(cands, key=lambda s: (-rel[id(s)], s.passage.rank, s.start))
    while pool and len(picked) < config.max_sentences:
        def mmr(s: _Sent) -> float:
            red = max((len(s.tokens & t.tokens) / len(s.tokens | t.tokens) for t in picked), default=0.0)
            return config.mmr_lambda * rel[id(s)] - (1 - config.mmr_lambda) * red
        best = max(pool, key=lambda s: (mmr(s), -s.passage.rank, -s.start))
        pool.remove(best)
        if picked and rel[id(best)] < config.min_relative_relevance * rel[id(picked[0])]:
            break
        if picked and key_term in picked[0].tokens and key_term not in best.tokens:
            continue  # stays on the question's most specific word once the answer has it
        picked.append(best)
    # strongest evidence first, then newest, then the order of relevance
    order = {id(s): i for i, s in enumerate(picked)}
    picked.sort(key=lambda s: (evidence_level(s.passage), -(s.passage.source.year or 0), order[id(s)]))
    covered = set().union(*(s.tokens for s in picked))
    status = "answered" if _coverage(q, covered) >= config.partial_coverage else "partial"
    sentences = tuple(
        AnswerSentence(text=s.text, citations=(_citation(s, s.coverage),), support=round(float(s.coverage), 4))
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
