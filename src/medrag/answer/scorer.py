"""A learned evidence-sentence scorer: P(a quotable unit is the evidence a reader
would point to for the question).

Word overlap alone quotes whatever shares words with the question (aims, methods,
pointers to other documents). This logistic model weighs, for each candidate unit
(:class:`~medrag.answer.select.Candidate`):

* how much of the question it covers (plain and idf-weighted, and whether it holds
  the question's rarest word), and how densely;
* its rhetorical role (:mod:`.roles`: the probabilities of BACKGROUND, OBJECTIVE,
  METHODS, RESULTS, CONCLUSIONS) and the role its section label names;
* its position in the passage, its kind (sentence or list) and length, whether it
  states a number (and whether the question asks for one);
* its passage's retrieval rank and score, and how it compares with the best
  candidate of its passage and of all passages.

Dense question-sentence similarity was left out: encoding every candidate sentence
with the index's MiniLM encoder costs about 1-2 s per question on this class of CPU,
against a 150 ms answer budget.

The weights are fit on the SciFact training claims' rationale sentences
(``python benchmarks/bench_evidence.py --write``, cross-validated by claim) and shipped
as JSON (``medrag/answer/data/evidence.json``): feature names, coefficients, intercept,
and the probability above which a further unit is quoted.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .roles import ROLES, role_model
from .select import Candidate, weighted_coverage
from .text import content_tokens, numbers
from .units import quote_units

__all__ = ["FEATURES", "EvidenceScorer", "evidence_scorer", "unit_features", "asks_for_number", "number_subject", "states_asked_number"]

_DATA = Path(__file__).resolve().parent / "data"

FEATURES = (
    "coverage", "idf_coverage", "has_key_term", "density", "rel_to_best_in_passage", "rel_to_best_overall",
    *(f"role_{r.lower()}" for r in ROLES),
    *(f"label_{r.lower()}" for r in ROLES),
    "position", "is_first", "is_last", "is_list", "log_length",
    "has_number", "asks_number_has_number",
    "inv_rank", "passage_score", "is_pointer",
    "prev_idf_coverage", "next_idf_coverage", "inv_rank_in_passage", "bigram_coverage", "same_doc_as_best",
)

_LABEL_ROLE = [
    (re.compile(r"conclu|interpret|implication|summary|recommend", re.I), "CONCLUSIONS"),
    (re.compile(r"result|finding|outcome", re.I), "RESULTS"),
    (re.compile(r"method|design|setting|participant|patient|material|intervention|measure", re.I), "METHODS"),
    (re.compile(r"objective|aim|purpose|goal", re.I), "OBJECTIVE"),
    (re.compile(r"background|introduction|context|rationale", re.I), "BACKGROUND"),
]
_ASKS_NUMBER = re.compile(
    r"\b(how (much|many|long|often|frequently|soon|large|high|low)|what (dose|dosage|amount|percentage|proportion|"
    r"number|duration|rate|concentration|target)|which dose|dose of|dosage of|target \w+)\b", re.I)
_POINTER = re.compile(
    r"\b(can be found|is available (at|from)|are available (at|from)|see (section|table|figure|appendix|box)|"
    r"refer to|described (in detail )?in|for more information|for further information|visit)\b", re.I)


_FILLER = frozenset("the a an recommended maximum minimum daily usual total typical optimal starting".split())
_PHRASE_END = frozenset(
    "for in on at should is are was were do does did to with when needed taken given be and or per "
    "can could would will must that which who after before during has have had show shows".split()
)


def number_subject(question: str) -> list[str]:
    """The content tokens of the thing a number is asked for: "dose of amoxicillin" ->
    amoxicillin, "how many portions of fruit" -> fruit, "how much salt" -> salt,
    "dose of inhaled budesonide" -> inhaled budesonide. Empty when the question asks for
    no number or names nothing right after the asking words."""
    m = _ASKS_NUMBER.search(question)
    if not m:
        return []
    phrase: list[str] = []
    for w in re.findall(r"[\w-]+", question[m.end():])[:8]:
        lw = w.lower()
        if lw == "of":
            phrase = []  # "portions of fruit": the thing is after "of"
            continue
        if lw in _PHRASE_END:
            if phrase:
                break
            continue
        if lw in _FILLER and not phrase:
            continue
        phrase.append(w)
        if len(phrase) == 3:
            break
    return content_tokens(" ".join(phrase))


_KIND_PATTERNS = [
    # what kind of number the question asks for, and what a quote must state
    ("dose", re.compile(r"\b(dose|doses|dosage|dosing)\b", re.I),
     re.compile(r"\d\s*(?:mg|g|µg|μg|mcg|ug|ng|iu|units?|ml|mmol|meq|tablets?|capsules?|puffs?|drops?)\b", re.I)),
    ("duration", re.compile(r"\bhow long\b|\bduration\b|\bhow many (?:days|weeks|months|years|hours)\b", re.I),
     re.compile(r"\d\s*(?:-|–|to)?\s*\d*\s*(?:seconds?|minutes?|min|hours?|h|days?|weeks?|wk|months?|years?|yr)\b", re.I)),
    ("target", re.compile(r"\btarget\b", re.I),
     re.compile(r"\d\s*(?:%|mmol|mg/dl|mmhg|mg)", re.I)),
]


def states_asked_number(question: str, text: str) -> bool:
    """True when ``text`` states a number of the kind ``question`` asks for: a dose in
    dose units, a duration in time units, a target in %, mmol, mg/dL or mmHg; any
    number for other number questions ("how many", "how much")."""
    if not numbers(text):
        return False
    for _, asks, states in _KIND_PATTERNS:
        if asks.search(question):
            return bool(states.search(text))
    return True


def asks_for_number(question: str) -> bool:
    """True when the question asks for a dose, a duration, an amount or a rate."""
    return bool(_ASKS_NUMBER.search(question))


def label_role(label: str | None) -> str | None:
    """The role a section label names ("FINDINGS" -> RESULTS), or None."""
    if not label:
        return None
    for pat, role in _LABEL_ROLE:
        if pat.search(label):
            return role
    return None


@functools.lru_cache(maxsize=16384)
def _ordered_tokens(text: str) -> tuple[str, ...]:
    return tuple(content_tokens(text))


@functools.lru_cache(maxsize=16384)
def _roles(text: str, position: int, n: int) -> tuple[float, ...]:
    m = role_model()
    if m is None:
        return (0.0,) * len(ROLES)
    p = m.probabilities(text, position, n)
    return tuple(p[r] for r in ROLES)


def unit_features(
    pool: Sequence[Candidate], q: Sequence[str], weight: Mapping[str, float], key_term: str | None, question: str
) -> np.ndarray:
    """The feature matrix (one row per candidate, columns :data:`FEATURES`)."""
    asks_number = asks_for_number(question)
    qseq = content_tokens(question)
    if not pool:
        return np.zeros((0, len(FEATURES)))
    top_score = max(c.passage.score for c in pool) or 1.0
    wc = [weighted_coverage(q, weight, c.tokens) for c in pool]
    best_in: dict[str, float] = {}
    for c, w in zip(pool, wc):
        best_in[c.passage.chunk.id] = max(best_in.get(c.passage.chunk.id, 0.0), w)
    best_all = max(wc) or 1.0
    best_doc = pool[int(np.argmax(wc))].passage.chunk.doc_id
    qbigrams = set(zip(qseq, qseq[1:]))
    ranks: dict[str, list[float]] = {}
    for c, w in zip(pool, wc):
        ranks.setdefault(c.passage.chunk.id, []).append(w)
    for v in ranks.values():
        v.sort(reverse=True)
    rows = []
    for c, w in zip(pool, wc):
        units = quote_units(c.passage.chunk.text)
        prev_w = weighted_coverage(q, weight, units[c.position - 1].tokens) if c.position > 0 else 0.0
        next_w = weighted_coverage(q, weight, units[c.position + 1].tokens) if c.position + 1 < len(units) else 0.0
        seq = _ordered_tokens(c.text)
        bigrams = set(zip(seq, seq[1:]))
        extra = [
            prev_w, next_w, 1.0 / (1 + ranks[c.passage.chunk.id].index(w)),
            len(qbigrams & bigrams) / len(qbigrams) if qbigrams else 0.0,
            1.0 if c.passage.chunk.doc_id == best_doc else 0.0,
        ]
        roles = _roles(c.text, c.position, c.n_units)
        lr = label_role(c.section)
        has_num = 1.0 if numbers(c.text) else 0.0
        rows.append([
            c.coverage, w, 1.0 if key_term and key_term in c.tokens else 0.0,
            w / math.sqrt(max(1, len(c.tokens))),
            w / best_in[c.passage.chunk.id] if best_in[c.passage.chunk.id] > 0 else 0.0,
            w / best_all,
            *roles,
            *(1.0 if lr == r else 0.0 for r in ROLES),
            c.position / max(1, c.n_units - 1), 1.0 if c.position == 0 else 0.0,
            1.0 if c.position == c.n_units - 1 else 0.0,
            1.0 if c.kind == "list" else 0.0, math.log(1 + len(c.text)),
            has_num, has_num if asks_number else 0.0,
            1.0 / c.passage.rank, c.passage.score / top_score if top_score > 0 else 0.0,
            1.0 if _POINTER.search(c.text) else 0.0,
            *extra,
        ])
    return np.asarray(rows, dtype=np.float64)


class EvidenceScorer:
    """P(evidence) = sigmoid(features . coef + intercept); ``threshold``: a unit after
    the first is quoted only above it."""

    def __init__(self, coef: Sequence[float], intercept: float, threshold: float, mean=None, scale=None) -> None:
        if len(coef) != len(FEATURES):
            raise ValueError(f"evidence scorer has {len(coef)} weights for {len(FEATURES)} features")
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)
        self.threshold = float(threshold)
        self.mean = np.zeros(len(FEATURES)) if mean is None else np.asarray(mean, dtype=np.float64)
        self.scale = np.ones(len(FEATURES)) if scale is None else np.asarray(scale, dtype=np.float64)

    @classmethod
    def load(cls, path: Path = _DATA / "evidence.json") -> "EvidenceScorer":
        meta = json.loads(path.read_text(encoding="utf-8"))
        if tuple(meta["features"]) != FEATURES:
            raise ValueError(f"{path}: the features differ from this library's; refit the scorer")
        return cls(meta["coef"], meta["intercept"], meta["threshold"], meta.get("mean"), meta.get("scale"))

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] == 0:
            return np.zeros(0)
        z = ((X - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


@functools.lru_cache(maxsize=1)
def evidence_scorer() -> EvidenceScorer | None:
    """The shipped scorer, or None when its weight file is absent."""
    p = _DATA / "evidence.json"
    return EvidenceScorer.load(p) if p.exists() else None


def pick_by_probability(
    pool: Sequence[Candidate], probs: np.ndarray, *, threshold: float, max_units: int, max_redundancy: float = 0.6
) -> list[Candidate]:
    """The most probable unit, then further units above ``threshold`` in order of
    probability, at most ``max_units``; a unit overlapping a picked one of the same
    document, or sharing more than ``max_redundancy`` of its tokens (Jaccard) with one,
    is skipped."""
    order = np.argsort(-probs, kind="stable")
    picked: list[Candidate] = []
    for i in order:
        c = pool[int(i)]
        if len(picked) >= max_units:
            break
        if picked and probs[int(i)] < threshold:
            break
        if any(t.passage.chunk.doc_id == c.passage.chunk.doc_id and t.start < c.end and c.start < t.end for t in picked):
            continue
        if any(len(c.tokens & t.tokens) / len(c.tokens | t.tokens) > max_redundancy for t in picked):
            continue
        picked.append(c)
    return picked


def score_candidates(
    pool: Sequence[Candidate],
    q: Sequence[str],
    weight: Mapping[str, float],
    key_term: str | None,
    question: str,
    scorer: EvidenceScorer,
) -> np.ndarray:
    """The scorer's probabilities for ``pool`` (the composer and the benchmark that
    fits the scorer both call this, so they see the same features)."""
    return scorer.probabilities(unit_features(pool, q, weight, key_term, question))
