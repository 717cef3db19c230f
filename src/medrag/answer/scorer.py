"""A learned evidence-sentence scorer: P(a quotable unit is the evidence a reader
would point to for the question).

Word overlap alone quotes whatever shares words with the question (aims, methods,
pointers to other documents). This model (logistic or boosted trees) weighs, for each candidate unit
(:class:`~medrag.answer.select.Candidate`):

* how much of the question it covers (plain and idf-weighted, and whether it holds
  the question's rarest word), and how densely;
* its rhetorical role (:mod:`.roles`: the probabilities of BACKGROUND, OBJECTIVE,
  METHODS, RESULTS, CONCLUSIONS) and the role its section label names;
* its position in the passage, its kind (sentence or list) and length, whether it
  states a number (and whether the question asks for one);
* its passage's retrieval rank and score, and how it compares with the best
  candidate of its passage and of all passages.

Optionally (``AnswerConfig.dense_evidence`` and an index with an encoder) it also
reads the cosine similarity of the question and each unit under the index's encoder
(:data:`DENSE_FEATURES`, :mod:`.sentvec`: unit vectors cached per chunk) and the
unit's dense context within its passage (:data:`DENSE_CONTEXT_FEATURES`: the question's
similarity to the unit joined with its neighbours, how the unit stands among the
passage's units, how central it is to the passage).

The model is fit on the SciFact training claims' rationale sentences
(``python benchmarks/bench_evidence.py --write [--dense-feature]``, cross-validated by
claim) and shipped as JSON (``medrag/answer/data/evidence.json``, and
``evidence_dense.json`` for the dense variant): feature names, then logistic weights or
boosted trees as plain node arrays (:mod:`.trees`), and the cut that decides how many
units are quoted (:func:`pick_expected_f1` or a probability threshold).
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
from .sentvec import UnitVectors
from .text import content_tokens, numbers
from .trees import BoostedTrees
from .units import quote_units

__all__ = ["FEATURES", "DENSE_FEATURES", "DENSE_CONTEXT_FEATURES", "EvidenceScorer", "dense_features", "dense_context_features", "score_candidates", "pick_expected_f1", "evidence_scorer", "unit_features", "asks_for_number", "number_subject", "states_asked_number"]

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

#: Features of the question-sentence dense similarity (cosine of the index encoder's
#: vectors), appended to :data:`FEATURES` when the scorer is given similarities.
DENSE_FEATURES = (
    "dense_sim", "dense_minus_best", "dense_minus_best_in_passage", "inv_dense_rank", "inv_dense_rank_in_passage",
    "passage_dense_max", "passage_dense_minus_best", "inv_passage_dense_rank", "prev_dense_sim", "next_dense_sim",
)

#: Features of a unit's dense context, appended to :data:`DENSE_FEATURES` by the dense
#: scorer; computed from the unit vectors (:func:`dense_context_features`). "window3":
#: the normalised sum of the vectors of the unit and its previous and next units (same
#: chunk); "with_next" / "with_prev": of the unit and one neighbour; "doc": every unit
#: of the document's retrieved chunks; "centrality": the unit's cosine with their mean
#: vector.
DENSE_CONTEXT_FEATURES = (
    "doc_mean_sim", "centrality", "dense_z_in_doc", "sim_to_best_in_doc", "doc_dense_std",
    "window3_sim", "dense_minus_neighbours", "with_next_sim", "with_prev_sim",
    "prev2_dense_sim", "next2_dense_sim", "window3_minus_best_in_doc", "inv_window3_rank_in_doc",
    "doc_units", "window3_minus_best",
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


def dense_features(pool: Sequence[Candidate], unit_sims: Mapping[str, np.ndarray]) -> np.ndarray:
    """The :data:`DENSE_FEATURES` of ``pool`` (one row per candidate). ``unit_sims``
    maps a chunk id to the cosine similarity of the question with each of the chunk's
    quotable units (:func:`~medrag.answer.units.quote_units` order)."""
    if not pool:
        return np.zeros((0, len(DENSE_FEATURES)))
    sims = np.array([float(unit_sims[c.passage.chunk.id][c.position]) for c in pool])
    best = float(sims.max())
    order = np.argsort(-sims, kind="stable")
    rank = np.empty(len(pool), dtype=np.int64)
    rank[order] = np.arange(len(pool))
    chunk_ids = list(dict.fromkeys(c.passage.chunk.id for c in pool))
    pmax = {cid: float(np.max(unit_sims[cid])) if len(unit_sims[cid]) else 0.0 for cid in chunk_ids}
    best_p = max(pmax.values())
    prank = {cid: i for i, cid in enumerate(sorted(chunk_ids, key=lambda x: -pmax[x]))}
    rows = []
    for j, c in enumerate(pool):
        us = unit_sims[c.passage.chunk.id]
        in_rank = int(np.sum(us > sims[j]))
        rows.append([
            sims[j], sims[j] - best, sims[j] - pmax[c.passage.chunk.id], 1.0 / (1 + rank[j]), 1.0 / (1 + in_rank),
            pmax[c.passage.chunk.id], pmax[c.passage.chunk.id] - best_p, 1.0 / (1 + prank[c.passage.chunk.id]),
            float(us[c.position - 1]) if c.position > 0 else 0.0,
            float(us[c.position + 1]) if c.position + 1 < len(us) else 0.0,
        ])
    return np.asarray(rows, dtype=np.float64)


def _unit_norm(m: np.ndarray) -> np.ndarray:
    return m / (np.linalg.norm(m, axis=-1, keepdims=True) + 1e-9)


def dense_context_features(pool: Sequence[Candidate], vectors: UnitVectors) -> np.ndarray:
    """The :data:`DENSE_CONTEXT_FEATURES` of ``pool`` (one row per candidate), from the
    question vector and the unit vectors of the candidates' chunks. Neighbours are the
    previous and next units of the same chunk; the document-level features
    (``doc_*``, ``centrality``, ``*_in_doc``) pool every unit of the document's chunks
    among the passages (whether or not a unit is a candidate)."""
    n_cols = len(DENSE_CONTEXT_FEATURES)
    if not pool:
        return np.zeros((0, n_cols))
    qv = np.asarray(vectors.question, dtype=np.float64)
    per: dict[str, np.ndarray] = {}
    by_doc: dict[str, list[str]] = {}
    for c in pool:
        ids = by_doc.setdefault(c.passage.chunk.doc_id, [])
        if c.passage.chunk.id not in ids:
            ids.append(c.passage.chunk.id)
    for chunk_ids in by_doc.values():
        mats, offsets = [], []
        for cid in chunk_ids:
            U = np.asarray(vectors.units[cid], dtype=np.float64)
            n = len(U)
            f = np.zeros((n, n_cols))
            per[cid] = f
            offsets.append(sum(len(m) for m in mats))
            mats.append(U)
            if n == 0:
                continue
            s = U @ qv
            w3 = U.copy()
            w3[1:] += U[:-1]
            w3[:-1] += U[1:]
            wn, wp = s.copy(), s.copy()
            if n > 1:
                wn[:-1] = _unit_norm(U[:-1] + U[1:]) @ qv
                wp[1:] = _unit_norm(U[1:] + U[:-1]) @ qv
            prev = np.concatenate([[-1.0], s[:-1]])
            nxt = np.concatenate([s[1:], [-1.0]])
            f[:, 5] = _unit_norm(w3) @ qv
            f[:, 6] = s - np.maximum(prev, nxt)
            f[:, 7] = wn
            f[:, 8] = wp
            f[2:, 9] = s[:-2]
            f[:-2, 10] = s[2:]
        D = np.vstack(mats)
        if len(D) == 0:
            continue
        s = D @ qv
        mean = _unit_norm(D.mean(axis=0))
        best = int(np.argmax(s))
        w3s = np.concatenate([per[cid][:, 5] for cid in chunk_ids])
        g = np.zeros((len(D), n_cols))
        g[:, 0] = float(mean @ qv)
        g[:, 1] = D @ mean
        g[:, 2] = (s - s.mean()) / (s.std() + 1e-6)
        g[:, 3] = D @ D[best]
        g[:, 4] = s.std()
        g[:, 11] = w3s - w3s.max()
        g[:, 12] = 1.0 / (1.0 + np.sum(w3s[None, :] > w3s[:, None], axis=1))
        g[:, 13] = len(D)
        for cid, off in zip(chunk_ids, offsets):
            f = per[cid]
            for j in (0, 1, 2, 3, 4, 11, 12, 13):
                f[:, j] = g[off : off + len(f), j]
    rows = np.array([per[c.passage.chunk.id][c.position] for c in pool])
    rows[:, 14] = rows[:, 5] - rows[:, 5].max()
    return rows


class EvidenceScorer:
    """P(evidence) of each candidate from its features: a logistic model
    (sigmoid(standardised features . coef + intercept)) or boosted trees
    (:class:`~medrag.answer.trees.BoostedTrees`, ``trees``).

    ``dense``: the model also reads :data:`DENSE_FEATURES` (question-sentence
    similarity); ``dense_context``: and :data:`DENSE_CONTEXT_FEATURES`. ``cut``: ``"ef1"`` quotes as many units as maximise the expected F1
    (:func:`pick_expected_f1`); ``"thr"`` quotes a unit after the first only above
    ``threshold`` (:func:`pick_by_probability`)."""

    def __init__(
        self, coef: Sequence[float] | None = None, intercept: float = 0.0, threshold: float = 0.5, mean=None,
        scale=None, *, dense: bool = False, cut: str = "thr", trees: BoostedTrees | None = None,
        dense_context: bool = False,
    ) -> None:
        if dense_context and not dense:
            raise ValueError("dense context features need the dense features too")
        n = len(FEATURES) + (len(DENSE_FEATURES) if dense else 0) + (len(DENSE_CONTEXT_FEATURES) if dense_context else 0)
        if trees is None and coef is None:
            raise ValueError("an evidence scorer needs logistic weights or boosted trees")
        if trees is not None and trees.n_features != n:
            raise ValueError(f"evidence scorer trees read {trees.n_features} features, not {n}")
        if coef is not None and len(coef) != n:
            raise ValueError(f"evidence scorer has {len(coef)} weights for {n} features")
        if cut not in ("ef1", "thr"):
            raise ValueError(f"evidence scorer cut must be 'ef1' or 'thr', not {cut!r}")
        self.dense = bool(dense)
        self.dense_context = bool(dense_context)
        self.cut = cut
        self.trees = trees
        self.coef = None if coef is None else np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)
        self.threshold = float(threshold)
        self.mean = np.zeros(n) if mean is None else np.asarray(mean, dtype=np.float64)
        self.scale = np.ones(n) if scale is None else np.asarray(scale, dtype=np.float64)

    @classmethod
    def load(cls, path: Path = _DATA / "evidence.json") -> "EvidenceScorer":
        meta = json.loads(path.read_text(encoding="utf-8"))
        names = tuple(meta["features"])
        if names not in (FEATURES, FEATURES + DENSE_FEATURES, FEATURES + DENSE_FEATURES + DENSE_CONTEXT_FEATURES):
            raise ValueError(f"{path}: the features differ from this library's; refit the scorer")
        trees = BoostedTrees.from_json(meta["trees"]) if "trees" in meta else None
        return cls(meta.get("coef"), meta.get("intercept", 0.0), meta.get("threshold", 0.5), meta.get("mean"),
                   meta.get("scale"), dense=names != FEATURES, cut=meta.get("cut", "thr"), trees=trees,
                   dense_context=len(names) == len(FEATURES) + len(DENSE_FEATURES) + len(DENSE_CONTEXT_FEATURES))

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] == 0:
            return np.zeros(0)
        if self.trees is not None:
            return self.trees.probabilities(X)
        z = ((X - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def pick(self, pool: Sequence[Candidate], probs: np.ndarray, *, max_units: int) -> list[Candidate]:
        """The units to quote, by this scorer's cut."""
        if self.cut == "ef1":
            return pick_expected_f1(pool, probs, max_units=max_units)
        return pick_by_probability(pool, probs, threshold=self.threshold, max_units=max_units)


@functools.lru_cache(maxsize=2)
def evidence_scorer(dense: bool = False) -> EvidenceScorer | None:
    """The shipped scorer (``dense``: the one that also reads question-sentence
    similarity), or None when its weight file is absent."""
    p = _DATA / ("evidence_dense.json" if dense else "evidence.json")
    return EvidenceScorer.load(p) if p.exists() else None


def _repeats(c: Candidate, picked: Sequence[Candidate], max_redundancy: float) -> bool:
    """``c`` overlaps a picked unit of the same document, or shares more than
    ``max_redundancy`` of its tokens (Jaccard) with one."""
    return any(
        (t.passage.chunk.doc_id == c.passage.chunk.doc_id and t.start < c.end and c.start < t.end)
        or len(c.tokens & t.tokens) / len(c.tokens | t.tokens) > max_redundancy
        for t in picked
    )


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
        if _repeats(c, picked, max_redundancy):
            continue
        picked.append(c)
    return picked


def pick_expected_f1(
    pool: Sequence[Candidate], probs: np.ndarray, *, max_units: int, max_redundancy: float = 0.6
) -> list[Candidate]:
    """The most probable units, as many as maximise the expected F1 of the quoted set
    against the (unknown) evidence units: with calibrated probabilities p, quoting the
    n best gives E[F1] ~ 2 * sum(p[:n]) / (n + sum(p)) (Jansche, ACL 2005, on maximising
    expected F-measure; Nan et al., ICML 2012, for the top-n plug-in rule). At least one
    unit, at most ``max_units``; overlapping and redundant units are skipped as in
    :func:`pick_by_probability`."""
    ranked = pick_by_probability(pool, probs, threshold=0.0, max_units=max_units, max_redundancy=max_redundancy)
    if not ranked:
        return []
    at = {id(c): i for i, c in enumerate(pool)}
    gains = np.cumsum([probs[at[id(c)]] for c in ranked])
    ef1 = 2 * gains / (np.arange(1, len(ranked) + 1) + float(np.sum(probs)))
    return ranked[: int(np.argmax(ef1)) + 1]


def score_candidates(
    pool: Sequence[Candidate],
    q: Sequence[str],
    weight: Mapping[str, float],
    key_term: str | None,
    question: str,
    scorer: EvidenceScorer,
    unit_sims: Mapping[str, np.ndarray] | UnitVectors | None = None,
) -> np.ndarray:
    """The scorer's probabilities for ``pool`` (the composer and the benchmark that
    fits the scorer both call this, so they see the same features). A dense scorer
    needs ``unit_sims``: the question and unit vectors
    (:func:`medrag.answer.sentvec.unit_vectors`), or for a scorer without dense
    context features the similarities alone (:func:`~medrag.answer.sentvec.unit_similarities`)."""
    X = unit_features(pool, q, weight, key_term, question)
    if scorer.dense:
        if unit_sims is None:
            raise ValueError("a dense evidence scorer needs the question-unit similarities")
        vectors = unit_sims if isinstance(unit_sims, UnitVectors) else None
        sims = vectors.similarities() if vectors is not None else unit_sims
        X = np.hstack([X, dense_features(pool, sims)])
        if scorer.dense_context:
            if vectors is None:
                raise ValueError("this dense evidence scorer needs the unit vectors (medrag.answer.sentvec.unit_vectors)")
            X = np.hstack([X, dense_context_features(pool, vectors)])
    return scorer.probabilities(X)
