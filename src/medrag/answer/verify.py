"""Does a passage support a sentence? The protocol, the lexical checks, the offline default.

:func:`hard_constraints` are the checks a lexical test gets right, used by every
verifier policy as vetoes (:class:`~medrag.answer.judge.CombinedVerifier`):

1. every number in the sentence appears in the passage, with the same unit when the
   sentence gives one (``5 g`` is not ``5 mg``) and the same kind of bound (``less
   than 5 g`` is not ``more than 5 g``);
2. the direction of effect is not reversed: each clause's sign is the parity of its
   direction words (``low salt increases the risk`` is ``-`` · ``+`` = ``-``;
   ``reducing salt lowers the risk`` is ``-`` · ``-`` = ``+``) compared with the
   closest clause of the passage when both have as many direction words, and
   otherwise the claim may not add a direction the passage states the opposite of;
3. a real negation ("not", "no", "never", "failed to"...) is not added or dropped on
   the words it governs. "less than", "no more than", "at least" are bounds, not
   negations.

(2) and (3) apply only when the claim restates one passage sentence (that sentence
holds at least 60% of the claim's content words): against a loose paraphrase, word
polarity misfires.

:class:`LexicalVerifier` (the offline default) adds coverage: most content words, and
every drug-like or otherwise rare one, must be in the passage. It is conservative by
design: a paraphrase with new content words fails, which for a medical answer is the
right way to fail. Model-based verifiers with calibrated scores (an LLM judge, an NLI
cross-encoder) are in :mod:`medrag.answer.judge` and :mod:`medrag.answer.nli`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..errors import GenerationError, MedragError
from ..sentences import split_sentences
from .text import content_tokens, numbers, surface_words

__all__ = ["Verifier", "Verdict", "LexicalVerifier", "hard_constraints", "verify_pairs"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """``supported`` with a ``score`` in [0, 1] and, when unsupported, the ``reason``.

    For model-based verifiers ``score`` is a calibrated probability that the passage
    supports the sentence; for :class:`LexicalVerifier` it is the share of the
    sentence's content words found in the passage (a ranking score, not a probability).
    """

    supported: bool
    score: float
    reason: str | None = None


@runtime_checkable
class Verifier(Protocol):
    """``verify(sentence, passage) -> Verdict``; a verifier may also offer
    ``verify_batch(pairs) -> list[Verdict]`` (used when present: a model judges the
    claims of one answer together)."""

    def verify(self, sentence: str, passage: str) -> Verdict: ...

    @property
    def name(self) -> str: ...


def verify_pairs(verifier: Verifier, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
    """Verdicts for ``(sentence, passage)`` pairs, batched when the verifier can.
    A verifier backend's failure becomes a :class:`GenerationError`."""
    if not pairs:
        return []
    name = getattr(verifier, "name", type(verifier).__name__)
    try:
        batch = getattr(verifier, "verify_batch", None)
        out = list(batch(list(pairs))) if batch is not None else [verifier.verify(s, p) for s, p in pairs]
    except MedragError:
        raise
    except Exception as exc:
        raise GenerationError(f"verifier {name} failed: {type(exc).__name__}: {exc}") from exc
    if len(out) != len(pairs) or not all(isinstance(v, Verdict) for v in out):
        raise GenerationError(f"verifier {name} returned {len(out)} verdicts for {len(pairs)} pairs")
    return out


# ------------------------------------------------------------------ numbers and units

_UNIT = re.compile(
    r"\s?(mg/kg/d(?:ay)?|mg/kg|mg/dl|mg/l|mmol/l|µmol/l|umol/l|ng/ml|pg/ml|iu/l|g/dl|g/l|ml/min|"
    r"mmhg|mcg|µg|ug|mg|kg|g|ml|l|mmol|mol|iu|units?|%|percent|kcal|cal|"
    r"years?|yrs?|months?|weeks?|wks?|days?|d|hours?|hrs?|h|minutes?|mins?|min|seconds?|s|"
    r"times|fold|cm|mm|m|bpm)(?![a-zµ])",
    re.IGNORECASE,
)
_UNIT_ALIASES = {
    "percent": "%", "µg": "mcg", "ug": "mcg", "umol/l": "µmol/l", "unit": "units", "year": "years",
    "yr": "years", "yrs": "years", "month": "months", "week": "weeks", "wk": "weeks", "wks": "weeks",
    "day": "days", "d": "days", "hour": "hours", "hr": "hours", "hrs": "hours", "h": "hours",
    "minute": "minutes", "min": "minutes", "mins": "minutes", "second": "seconds", "s": "seconds",
    "mg/kg/d": "mg/kg/day",
}
#: bounds written before a number: upper (at most) and lower (at least)
_UPPER = ("less than", "fewer than", "lower than", "below", "under", "no more than", "not more than",
          "at most", "up to", "not exceeding", "smaller than", "<", "≤", "<=")
_LOWER = ("more than", "greater than", "higher than", "above", "over", "at least", "no less than",
          "not less than", "exceeding", "larger than", ">", "≥", ">=")
_BOUND = re.compile(
    r"(" + "|".join(re.escape(b) for b in sorted(_UPPER + _LOWER, key=len, reverse=True)) + r")\s*$",
    re.IGNORECASE,
)
_NUM = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*")


def _quantities(text: str) -> list[tuple[str, str | None, str | None]]:
    """(number, unit or None, bound "upper"/"lower"/None) for each number in ``text``."""
    out = []
    for m in _NUM.finditer(text):
        n = m.group(0).lstrip("+")
        if re.fullmatch(r"-?\d{1,3}(,\d{3})+", n):
            n = n.replace(",", "")
        um = _UNIT.match(text, m.end())
        unit = None
        if um:
            u = um.group(1).lower()
            unit = _UNIT_ALIASES.get(u, u)
        bm = _BOUND.search(text[max(0, m.start() - 20): m.start()])
        bound = None
        if bm:
            bound = "upper" if bm.group(1).lower() in _UPPER else "lower"
        out.append((n, unit, bound))
    return out


_NAME_NUMBER = re.compile(r"(?<=[A-Za-z]-)\d+\b|\b\d+(?=-[A-Za-z])")


def _name_numbers(text: str) -> set[str]:
    """Numbers that are parts of names: "interleukin-2", "T-helper 17 (Th17)", "H3K4"."""
    out = {m.group(0) for m in _NAME_NUMBER.finditer(text)}
    for tok in re.findall(r"\b[A-Za-z]+\d+[A-Za-z\d]*\b|\b\d+[A-Za-z]+[A-Za-z\d]*\b", text):
        out.update(re.findall(r"\d+", tok))
    return out


def _number_conflict(sentence: str, passage: str) -> str | None:
    p_nums = set(numbers(passage)) | _name_numbers(passage)
    names = _name_numbers(sentence)
    missing = [n for n in numbers(sentence) if n not in p_nums and n not in names]
    if missing:
        return f"states {', '.join(missing[:3])}, which the passage does not"
    pq = _quantities(passage)
    for n, unit, bound in _quantities(sentence):
        same = [q for q in pq if q[0] == n]
        if not same:
            continue
        if unit is not None and not any(q[1] == unit for q in same):
            units = sorted({q[1] for q in same if q[1]})
            if units or unit not in ("%",):
                return f"states {n} {unit}, the passage {n} {units[0] if units else 'without that unit'}"
        if bound is not None and not any(q[2] in (bound, None) for q in same):
            other = "more than" if bound == "upper" else "less than"
            return f"states {'less' if bound == 'upper' else 'more'} than {n}, the passage {other} {n}"
    return None


# ------------------------------------------------------------------ direction and negation

#: exact words (and inflections) that state a level or a change, by direction
_UP_WORDS = frozenset("""increase increases increased increasing increment high higher highest elevate
    elevates elevated elevating elevation raise raises raised raising greater enhance enhances enhanced
    enhancing promote promotes promoted promoting excess excessive rise rises rising rose risen boost
    boosts boosted augment augments augmented stimulate stimulates stimulated larger
    longer prolong prolongs prolonged prolonging more""".split())
_DOWN_WORDS = frozenset("""decrease decreases decreased decreasing low lower lowers lowered lowering lowest
    reduce reduces reduced reducing reduction reductions less fewer diminish diminishes diminished
    diminishing attenuate attenuates attenuated attenuating inhibit inhibits inhibited inhibiting
    suppress suppresses suppressed suppressing decline declines declined declining lessen lessens
    lessened restrict restricts restricted restricting restriction limit limits limited limiting
    shorter shorten shortens shortened smaller drop drops dropped cut cuts minimize minimizes
    minimized blunt blunts blunted blunting abolish abolishes abolished abolishing prevent prevents
    prevented preventing""".split())
#: valence words: a claim may not add one the passage states the opposite of
_GOOD = frozenset("improve improves improved improving improvement better benefit benefits beneficial superior".split())
_BAD = frozenset("worsen worsens worsened worsening worse harm harms harmful inferior impair impairs impaired".split())
#: negations of a predicate ("did not reduce", "failed to", "no effect"); "absence of",
#: "lack of", "without" usually name a condition ("in the absence of ART"), not a denial
_NEG = frozenset("""not no never neither nor none cannot can't don't doesn't didn't isn't aren't
    wasn't weren't won't fail fails failed unchanged""".split())
_BOUND_PHRASE = re.compile(
    r"\b(?:no|not)\s+(?:more|less|fewer|greater|higher|lower)\s+than\b|\b(?:less|more|fewer|greater|higher|lower|"
    r"larger|smaller)\s+than\b|\bat\s+(?:least|most)\b|\bup\s+to\b|\bno\s+later\s+than\b",
    re.IGNORECASE,
)
_CLAUSE = re.compile(r"[;,:]|\b(?:and|but|whereas|while|although|though|however)\b", re.IGNORECASE)


def _words(text: str) -> list[str]:
    return surface_words(_BOUND_PHRASE.sub(" ", text))


def _clauses(text: str) -> list[list[str]]:
    """The words of each clause. A clause that starts with a direction word ("... raises
    blood pressure and increases the risk") gets the subject of the clause before it
    (its words before its last direction word), so that "High salt intake" still
    governs "increases the risk of stroke"."""
    out: list[list[str]] = []
    subject: list[str] = []
    for c in _CLAUSE.split(_BOUND_PHRASE.sub(" ", text)):
        w = _words(c)
        if not w:
            continue
        if subject and (w[0] in _UP_WORDS or w[0] in _DOWN_WORDS):
            w = subject + w
        pol = [i for i, x in enumerate(w) if x in _UP_WORDS or x in _DOWN_WORDS]
        subject = w[: pol[-1]] if pol else []
        out.append(w)
    return out


def _polarity(words: list[str]) -> list[int]:
    return [1 if w in _UP_WORDS else -1 for w in words if w in _UP_WORDS or w in _DOWN_WORDS]


def _content(words: list[str]) -> set[str]:
    return set(content_tokens(" ".join(words)))


def _negated(words: list[str], scope: int = 2) -> set[str]:
    """Content tokens governed by a negation: the first ``scope`` content words after
    it ("no significant difference" negates "significant difference", not the rest)."""
    out: set[str] = set()
    for i, w in enumerate(words):
        if w in _NEG:
            got: list[str] = []
            for x in words[i + 1:]:
                if x in _NEG:
                    break
                got.extend(_content([x]))
                if len(got) >= scope:
                    break
            out |= set(got[:scope])
    return out


def _direction_conflict(sentence: str, passage_sentence: str) -> str | None:
    """The reason the sentence reverses or negates the passage sentence, or None."""
    p_clauses = _clauses(passage_sentence)
    compared = False
    for cw in _clauses(sentence):
        c_tok = _content(cw)
        if len(c_tok) < 2:
            continue
        best = max(p_clauses, key=lambda pw: len(c_tok & _content(pw)), default=None)
        if best is None or len(c_tok & _content(best)) < 2:
            continue
        pc, pp = _polarity(cw), _polarity(best)
        if pc and pp and len(pc) == len(pp):
            compared = True
            sign_c = 1 if pc.count(-1) % 2 == 0 else -1
            sign_p = 1 if pp.count(-1) % 2 == 0 else -1
            if sign_c != sign_p:
                return "reverses the direction of effect stated in the passage"
    a, b = set(_words(sentence)), set(_words(passage_sentence))
    up_a, down_a = a & _UP_WORDS, a & _DOWN_WORDS
    up_b, down_b = b & _UP_WORDS, b & _DOWN_WORDS
    # without comparable clauses: the claim may not add a direction the passage opposes
    if not compared and (
        (up_a and not up_b and down_b and not down_a) or (down_a and not down_b and up_b and not up_a)
    ):
        return "reverses the direction of effect stated in the passage"
    if (a & _GOOD and not b & _GOOD and b & _BAD) or (a & _BAD and not b & _BAD and b & _GOOD):
        return "reverses the direction of effect stated in the passage"
    wa, wb = _words(sentence), _words(passage_sentence)
    neg_a, neg_b = _negated(wa), _negated(wb)
    ta, tb = _content(wa), _content(wb)
    if neg_a - neg_b and (neg_a - neg_b) & (tb - neg_b):
        return "negates what the passage states"
    if neg_b - neg_a and (neg_b - neg_a) & (ta - neg_a):
        return "drops a negation the passage states"
    return None


def _closest_sentence(sentence: str, passage: str) -> str:
    s_set = set(content_tokens(sentence))
    best, best_overlap = passage, -1.0
    for a, b in split_sentences(passage):
        ps = passage[a:b]
        ov = len(s_set & set(content_tokens(ps))) / max(len(s_set), 1)
        if ov > best_overlap:
            best, best_overlap = ps, ov
    return best


#: words that make no claim on their own: a verdict, a pointer to the passages
_NO_CLAIM = frozenset(content_tokens("yes no maybe see passage passages evidence answer source sources reference"))


def hard_constraints(sentence: str, passage: str) -> str | None:
    """Why the passage cannot support the sentence on lexical grounds (a number, unit
    or bound it lacks; a reversed direction; a negation added or dropped), or None."""
    if not [t for t in content_tokens(sentence) if t not in _NO_CLAIM]:
        return "has no content to check"  # "Yes." or "See [2]." is no claim a model may vouch for
    conflict = _number_conflict(sentence, passage)
    if conflict:
        return conflict
    digit_words = [t for t in content_tokens(sentence) if re.search(r"\d", t)]
    p_tok = set(content_tokens(passage))
    missing = [t for t in digit_words if t not in p_tok]
    if missing:
        return f"mentions {', '.join(missing[:3])}, which the passage does not"
    closest = _closest_sentence(sentence, passage)
    s_tok = set(content_tokens(sentence))
    if not s_tok or len(s_tok & set(content_tokens(closest))) / len(s_tok) < _PARAPHRASE_COVERAGE:
        return None  # not a restatement of one passage sentence: direction words are not comparable
    return _direction_conflict(sentence, closest)


#: direction and negation are compared only when the passage sentence closest to the
#: claim holds at least this share of the claim's content words: between a claim and a
#: loose paraphrase (SciFact's rationales) the word-level check misfires too often
_PARAPHRASE_COVERAGE = 0.6


@dataclass(frozen=True)
class LexicalVerifier:
    """The offline default verifier (see the module docstring)."""

    min_coverage: float = 0.6
    name: str = "lexical-v2"
    _extra_stop: frozenset[str] = field(default_factory=frozenset)

    def verify(self, sentence: str, passage: str) -> Verdict:
        conflict = _number_conflict(sentence, passage)
        if conflict:
            return Verdict(False, 0.0, conflict)
        s_tok = content_tokens(sentence)
        if not s_tok:
            return Verdict(False, 0.0, "has no content to check")
        p_tok = set(content_tokens(passage))
        present = [t for t in s_tok if t in p_tok]
        coverage = len(present) / len(s_tok)
        rare_missing = [t for t in s_tok if t not in p_tok and (len(t) >= 9 or re.search(r"\d", t))]
        if rare_missing:
            return Verdict(False, coverage * 0.5, f"mentions {', '.join(rare_missing[:3])}, which the passage does not")
        if coverage < self.min_coverage:
            return Verdict(False, coverage, f"only {coverage:.0%} of its content words are in the passage")
        conflict = _direction_conflict(sentence, _closest_sentence(sentence, passage))
        if conflict:
            return Verdict(False, coverage * 0.5, conflict)
        return Verdict(True, coverage)
