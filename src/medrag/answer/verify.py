"""Does a passage support a sentence? The offline default verifier, and the protocol.

:class:`LexicalVerifier` works without any model: a sentence is supported by a passage
when (1) every number in the sentence (doses, percentages, p-values, counts) appears
in the passage, (2) every drug-like or otherwise rare content word is in the passage,
(3) most of its content words are (``min_coverage``), and (4) it does not assert the
opposite direction of effect (increase vs decrease, more vs less, negation) of the
passage sentence it is closest to. It is conservative by design: a paraphrase with new
content words fails, which for a medical answer is the right way to fail.

A caller with an NLI model plugs it in through the :class:`Verifier` protocol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..sentences import split_sentences
from .text import content_tokens, numbers, surface_words

__all__ = ["Verifier", "Verdict", "LexicalVerifier"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """``supported`` with a ``score`` in [0, 1] and, when unsupported, the ``reason``."""

    supported: bool
    score: float
    reason: str | None = None


@runtime_checkable
class Verifier(Protocol):
    def verify(self, sentence: str, passage: str) -> Verdict: ...

    @property
    def name(self) -> str: ...


#: Word beginnings that state a direction of effect, by direction.
_UP = ("increas", "higher", "elevat", "rais", "greater", "enhanc", "promot", "improv", "better",
       "superior", "augment", "boost", "stimulat", "more", "gain", "rise", "rose", "benefi")
_DOWN = ("decreas", "lower", "reduc", "less", "fewer", "diminish", "blunt", "attenuat", "inhibit",
         "suppress", "impair", "declin", "wors", "inferior", "lessen", "abolish", "drop", "fell", "fall",
         "harm", "shorter", "loss")
_NEG = {"not", "no", "never", "neither", "nor", "without", "none", "cannot", "failed", "fail", "absence",
        "lack", "lacked", "unchanged", "insignificant", "nonsignificant"}


def _directions(words: set[str]) -> tuple[set[str], set[str]]:
    up = {p for w in words for p in _UP if w.startswith(p)}
    down = {p for w in words for p in _DOWN if w.startswith(p)}
    return up, down


def _direction_conflict(sentence: str, passage_sentence: str) -> str | None:
    """A direction the claim adds that the passage contradicts (it states the other
    direction, with words the claim dropped), or a negation only one of them has."""
    a, b = set(surface_words(sentence)), set(surface_words(passage_sentence))
    up_a, down_a = _directions(a)
    up_b, down_b = _directions(b)
    if ((up_a - up_b) and (down_b - down_a)) or ((down_a - down_b) and (up_b - up_a)):
        return "reverses the direction of effect stated in the passage"
    neg_a, neg_b = bool(a & _NEG), bool(b & _NEG)
    if neg_a != neg_b:
        return "negates what the passage states" if neg_a else "drops a negation the passage states"
    return None


@dataclass(frozen=True)
class LexicalVerifier:
    """The offline default verifier (see the module docstring)."""

    min_coverage: float = 0.6
    name: str = "lexical-v1"
    _extra_stop: frozenset[str] = field(default_factory=frozenset)

    def verify(self, sentence: str, passage: str) -> Verdict:
        s_nums = numbers(sentence)
        p_nums = set(numbers(passage))
        missing_nums = [n for n in s_nums if n not in p_nums]
        if missing_nums:
            return Verdict(False, 0.0, f"states {', '.join(missing_nums[:3])}, which the passage does not")
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
        # the passage sentence closest to this one decides the direction of effect
        best, best_overlap = passage, -1.0
        s_set = set(s_tok)
        for a, b in split_sentences(passage):
            ps = passage[a:b]
            ov = len(s_set & set(content_tokens(ps))) / max(len(s_set), 1)
            if ov > best_overlap:
                best, best_overlap = ps, ov
        conflict = _direction_conflict(sentence, best)
        if conflict:
            return Verdict(False, coverage * 0.5, conflict)
        return Verdict(True, coverage)
