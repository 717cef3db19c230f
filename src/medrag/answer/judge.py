"""Model-based verification: an LLM judge with a calibrated support probability, and
the policy that combines a model's score with the lexical hard constraints.

:class:`LLMJudgeVerifier` asks a chat model, for each (claim, passage), what the
passage says about the claim, with a **versioned prompt**
(:mod:`~medrag.answer.judge_prompts`: a yes/no question, a three-way SUPPORTS /
CONTRADICTS / NOT ENOUGH INFORMATION question, or two questions, with or without
few-shot turns), and reads the answer's **first-token log-probabilities**: the class
probabilities are summed over the top tokens that spell each answer and renormalised
over the answers (:func:`first_token_probs`, :func:`prompt_features`), so one
generated token per question is enough and the score is graded, not a coin of the
sampled text. A logistic calibration over the prompt's features (Platt 1999: for one
feature ``sigmoid(a * logit(p) + b)``), fitted on a development split of labelled
pairs for one model and shipped with the prompt as plain numbers
(``benchmarks/bench_judge_prompts.py``), turns it into a calibrated probability, and
the prompt's threshold (chosen on the same split) decides; a model without a
calibration gets its own probability and 0.5.

Speed: the instructions and few-shot turns come first (a fixed prefix), then the pair,
and the claims of one answer are judged passage by passage
(:meth:`LLMJudgeVerifier.verify_batch`), so that llama.cpp's prompt cache reuses the
evaluated prefix; passages are cut to ``max_passage_chars`` (or to the claim's best
sentence and its neighbours, ``window``). The prompt version (and a calibration
other than the shipped one) is part of the verifier's :attr:`~LLMJudgeVerifier.name`,
which the audit record stores.

:class:`CombinedVerifier` decides: a lexical hard constraint (a number, unit or bound
missing, a reversed direction, a negation added or dropped:
:func:`~medrag.answer.verify.hard_constraints`) vetoes; otherwise the model verifier's
own decision stands (or its score must reach an explicit ``threshold``). Its reason
says which rule decided.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .judge_prompts import DEFAULT_JUDGE_PROMPT, JUDGE_PROMPTS, JudgePrompt, answer_class, get_judge_prompt
from .verify import Verdict, Verifier, hard_constraints, verify_pairs

__all__ = [
    "JUDGE_PROMPT_VERSION", "LLMJudgeVerifier", "CombinedVerifier", "cap_passage", "first_token_probs",
    "judge_messages", "prompt_features", "raw_support", "yes_probability",
]

logger = logging.getLogger(__name__)

#: The default prompt's version (see :mod:`~medrag.answer.judge_prompts`; every earlier
#: version stays selectable by name through ``LLMJudgeVerifier(prompt=...)``).
JUDGE_PROMPT_VERSION = DEFAULT_JUDGE_PROMPT
JUDGE_SYSTEM = JUDGE_PROMPTS["medrag-judge-v1"].system


def cap_passage(claim: str, passage: str, max_chars: int, window: int | None = None) -> str:
    """``passage`` cut to about ``max_chars`` characters when longer.

    ``window=None``: its sentences that share the most content words with the claim,
    kept in their original order. ``window=k``: the sentence that shares the most
    content words with the claim and its ``k`` neighbours on each side (the cited
    sentence in its context), then cut to ``max_chars``."""
    if len(passage) <= max_chars and window is None:
        return passage
    from ..sentences import split_sentences
    from .text import content_tokens

    spans = split_sentences(passage) or [(0, len(passage))]
    cw = set(content_tokens(claim))
    overlap = [len(cw & set(content_tokens(passage[slice(*sp)]))) for sp in spans]
    if window is not None:
        best = max(range(len(spans)), key=lambda i: (overlap[i], -i))
        lo, hi = max(0, best - window), min(len(spans), best + window + 1)
        text = " ".join(passage[slice(*spans[i])] for i in range(lo, hi))
        return text if len(text) <= max_chars else text[:max_chars].rsplit(" ", 1)[0] + " ..."
    ranked = sorted(range(len(spans)), key=lambda i: (-overlap[i], i))
    keep, used = [], 0
    for i in ranked:
        n = spans[i][1] - spans[i][0]
        if keep and used + n > max_chars:
            continue
        keep.append(i)
        used += n + 1
    text = " ".join(passage[slice(*spans[i])] for i in sorted(keep))
    return text if len(text) <= max_chars else text[:max_chars].rsplit(" ", 1)[0] + " ..."


def judge_messages(
    claim: str, passage: str, max_passage_chars: int = 1200, prompt: str | JudgePrompt = "medrag-judge-v1",
    question: str | None = None, window: int | None = None,
) -> list[dict[str, str]]:
    """The chat messages of one judgement with ``prompt`` (default: the first version,
    evidence before claim): instructions, few-shot turns, then the pair, the evidence
    capped by :func:`cap_passage`."""
    pr = get_judge_prompt(prompt)
    return pr.messages(claim, cap_passage(claim, passage, max_passage_chars, window), question)


def first_token_probs(response: dict, kind: str = "yesno") -> dict[str, float] | None:
    """Summed probabilities of the answer classes (:func:`~medrag.answer.judge_prompts.answer_class`)
    among the first token's ``top_logprobs`` of a chat-completions response, or None
    when the response has no logprobs. Classes no alternative spells are absent."""
    try:
        first = response["choices"][0]["logprobs"]["content"][0]
        tops = first.get("top_logprobs") or [first]
    except (KeyError, IndexError, TypeError):
        return None
    out: dict[str, float] = {}
    for t in tops:
        try:
            cls = answer_class(t["token"], kind)
            p = math.exp(float(t["logprob"]))
        except (KeyError, TypeError, ValueError):
            continue
        if cls is not None:
            out[cls] = out.get(cls, 0.0) + p
    return out


def yes_probability(response: dict) -> float | None:
    """``P(yes) / (P(yes) + P(no))`` from the first token's ``top_logprobs`` of a
    chat-completions response, or None when neither word is among them."""
    d = first_token_probs(response, "yesno") or {}
    p_yes, p_no = d.get("support", 0.0), d.get("other", 0.0)
    if p_yes + p_no <= 0.0:
        return None
    return p_yes / (p_yes + p_no)


def prompt_features(kind: str, dists: Sequence[dict[str, float] | None]) -> tuple[float, ...] | None:
    """The calibration features of one judgement (see :mod:`~medrag.answer.judge_prompts`)
    from the first-token class probabilities of its call(s), or None when the model
    answered none of the classes."""
    if not dists or any(d is None for d in dists):
        return None
    if kind == "yesno":
        d = dists[0]
        tot = d.get("support", 0.0) + d.get("other", 0.0)
        return None if tot <= 0 else (_logit(d.get("support", 0.0) / tot),)
    if kind == "threeway":
        d = dists[0]
        tot = d.get("support", 0.0) + d.get("contradict", 0.0) + d.get("nei", 0.0)
        return None if tot <= 0 else (_logit(d.get("support", 0.0) / tot), _logit(d.get("contradict", 0.0) / tot))
    if kind == "twoq":
        feats = []
        for d in dists[:2]:
            tot = d.get("support", 0.0) + d.get("other", 0.0)
            if tot <= 0:
                return None
            feats.append(_logit(d.get("support", 0.0) / tot))
        return tuple(feats)
    raise ConfigError(f"unknown judge prompt kind {kind!r}")


def raw_support(kind: str, features: Sequence[float]) -> float:
    """The uncalibrated support score of one judgement's features: the model's
    P(support) (yes/no, three-way) or ``P(yes to support) * P(no to opposite)`` (two
    questions)."""
    if kind == "twoq":
        return _sigmoid(features[0]) * (1.0 - _sigmoid(features[1]))
    return _sigmoid(features[0])


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


@dataclass
class LLMJudgeVerifier:
    """A chat model as a judge (see the module docstring).

    Args:
        client: anything with ``chat(messages, **params) -> dict`` returning a
            chat-completions response with logprobs: an
            :class:`~medrag.answer.generate.OpenAIChatGenerator`, a
            :class:`~medrag.answer.local_llm.LlamaServer` (in-process), or
            ``LocalLlamaGenerator.client``.
        model_name: named in :attr:`name` (and so in the audit record).
        prompt: a version in :data:`~medrag.answer.judge_prompts.JUDGE_PROMPTS` (or a
            :class:`~medrag.answer.judge_prompts.JudgePrompt`); it brings its shipped
            calibration and threshold.
        threshold: ``supported`` when the calibrated score reaches it (None: the
            prompt's).
        platt_a, platt_b: override the calibration with ``sigmoid(a * f1 + b)`` (f1
            the prompt's first feature, ``logit(P(support))``); None: the prompt's.
        max_passage_chars: passages are cut to this many characters.
        window: None, or cut a passage to the claim's best sentence and this many
            neighbours each side (:func:`cap_passage`).
        top_logprobs: how many first-token alternatives to read.
    """

    client: object
    model_name: str = "model"
    threshold: float | None = None
    platt_a: float | None = None
    platt_b: float | None = None
    max_passage_chars: int = 1200
    top_logprobs: int = 20
    prompt: str | JudgePrompt = DEFAULT_JUDGE_PROMPT
    window: int | None = None

    def __post_init__(self) -> None:
        if not callable(getattr(self.client, "chat", None)):
            raise ConfigError("LLMJudgeVerifier needs a client with chat(messages, **params) -> dict")
        self._prompt = get_judge_prompt(self.prompt)
        base_w, base_t, self._fitted_on = self._prompt.calibration_for(self.model_name)
        if self.threshold is None:
            self.threshold = base_t
        if not (0.0 < float(self.threshold) < 1.0):
            raise ConfigError(f"threshold must be in (0, 1), not {self.threshold!r}")
        if not (isinstance(self.max_passage_chars, int) and self.max_passage_chars >= 100):
            raise ConfigError(f"max_passage_chars must be an integer >= 100, not {self.max_passage_chars!r}")
        if self.window is not None and not (isinstance(self.window, int) and self.window >= 0):
            raise ConfigError(f"window must be None or an integer >= 0, not {self.window!r}")
        self._base_weights = tuple(float(x) for x in list(base_w) + [0.0] * (self._prompt.n_features + 1 - len(base_w)))
        w = list(self._base_weights)
        if self.platt_a is not None or self.platt_b is not None:
            w = [self.platt_b if self.platt_b is not None else 0.0, self.platt_a if self.platt_a is not None else 1.0]
            w += [0.0] * (self._prompt.n_features - 1)
        self._weights = tuple(float(x) for x in w)

    @property
    def prompt_version(self) -> str:
        return self._prompt.version

    @property
    def name(self) -> str:
        if self._weights != self._base_weights:
            cal = f":cal{self._weights[0]:g},{','.join(f'{x:g}' for x in self._weights[1:])}"
        else:
            cal = "" if self._fitted_on != "uncalibrated" else ":uncalibrated"
        return f"llm-judge:{self.model_name}:{self._prompt.version}{cal}@{self.threshold:g}"

    def _questions(self) -> list[str]:
        pr = self._prompt
        return [pr.question, pr.question2] if pr.kind == "twoq" else [pr.question]

    def class_probabilities(self, sentence: str, passage: str) -> list[dict[str, float] | None]:
        """The first-token class probabilities of each call (one; two for ``twoq``)."""
        out = []
        for q in self._questions():
            resp = self.client.chat(
                judge_messages(sentence, passage, self.max_passage_chars, self._prompt, q, self.window),
                max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=self.top_logprobs,
            )
            out.append(first_token_probs(resp, self._prompt.kind))
        return out

    def features(self, sentence: str, passage: str) -> tuple[float, ...] | None:
        return prompt_features(self._prompt.kind, self.class_probabilities(sentence, passage))

    def raw_probability(self, sentence: str, passage: str) -> float | None:
        """The model's own support probability for one pair (:func:`raw_support`;
        None: it answered none of the prompt's words)."""
        f = self.features(sentence, passage)
        return None if f is None else raw_support(self._prompt.kind, f)

    def calibrate_features(self, f: Sequence[float]) -> float:
        w = self._weights
        return _sigmoid(w[0] + sum(a * x for a, x in zip(w[1:], f)))

    def calibrate(self, p: float) -> float:
        """The calibrated score of a raw P(support) (first feature only)."""
        return self.calibrate_features((_logit(p),) + (0.0,) * (self._prompt.n_features - 1))

    def verify(self, sentence: str, passage: str) -> Verdict:
        f = self.features(sentence, passage)
        if f is None:
            return Verdict(False, 0.0, f"the judge answered none of the words of {self._prompt.version}")
        score = self.calibrate_features(f)
        if score >= self.threshold:
            return Verdict(True, score)
        why = ""
        if self._prompt.kind in ("threeway", "twoq") and len(f) > 1 and _sigmoid(f[1]) > 0.5:
            why = f"; it reads the passage as contradicting the claim (P {_sigmoid(f[1]):.2f})"
        return Verdict(False, score, f"the judge's support probability {score:.2f} is below {self.threshold:.2f}{why}")

    def verify_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        """Pairs judged grouped by passage (prefix reuse), returned in input order."""
        order = sorted(range(len(pairs)), key=lambda i: (pairs[i][1], i))
        out: list[Verdict | None] = [None] * len(pairs)
        for i in order:
            out[i] = self.verify(*pairs[i])
        return [v for v in out if v is not None]


@dataclass(frozen=True)
class CombinedVerifier:
    """Lexical hard constraints veto; a model verifier decides the rest (see the module
    docstring). ``model`` is any :class:`Verifier` whose score is a probability (an
    :class:`LLMJudgeVerifier`, an NLI cross-encoder). ``threshold=None`` (the default)
    takes the model's own decision (an :class:`LLMJudgeVerifier` applies the threshold
    its prompt ships, chosen on a development split); a number applies that threshold
    to the model's score instead."""

    model: Verifier
    threshold: float | None = None

    @property
    def name(self) -> str:
        t = "" if self.threshold is None else f"@{self.threshold:g}"
        return f"combined(hard-constraints-v2+{self.model.name}{t})"

    def verify(self, sentence: str, passage: str) -> Verdict:
        return self.verify_batch([(sentence, passage)])[0]

    def verify_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        vetoes = [hard_constraints(s, p) for s, p in pairs]
        todo = [i for i, v in enumerate(vetoes) if v is None]
        model_verdicts = verify_pairs(self.model, [pairs[i] for i in todo]) if todo else []
        by_index = dict(zip(todo, model_verdicts))
        out = []
        for i, veto in enumerate(vetoes):
            if veto is not None:
                out.append(Verdict(False, 0.0, f"hard constraint: {veto}"))
                continue
            v = by_index[i]
            ok = v.supported if self.threshold is None else v.score >= self.threshold
            if ok:
                out.append(Verdict(True, v.score))
            elif self.threshold is None:
                out.append(Verdict(False, v.score, f"{self.model.name}: " + (v.reason or f"support {v.score:.2f}")))
            else:
                out.append(Verdict(False, v.score, f"{self.model.name}: support {v.score:.2f} < {self.threshold:.2f}"
                                   + (f" ({v.reason})" if v.reason else "")))
        return out
