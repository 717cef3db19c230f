"""Model-based verification: an LLM judge with a calibrated support probability, and
the policy that combines a model's score with the lexical hard constraints.

:class:`LLMJudgeVerifier` asks a chat model, for each (claim, passage), whether the
passage supports the claim, and reads the answer's **first-token log-probabilities**:
the support probability is ``P(yes) / (P(yes) + P(no))`` over the top tokens that
spell yes or no (any case, any leading space), so one generated token per claim is
enough and the score is graded, not a coin of the sampled text. A Platt scaling
(Platt 1999: ``sigmoid(a * logit(p) + b)``) fitted on labelled pairs turns it into a
calibrated probability (``benchmarks/bench_verifier.py --fit``); the default ``a=1,
b=0`` leaves the model's own probability.

Speed: the instructions come first and the passage before the claim, and the claims
of one answer are judged passage by passage (:meth:`LLMJudgeVerifier.verify_batch`),
so that llama.cpp's prompt cache reuses the evaluated prefix; passages are cut to
``max_passage_chars``. The prompt is versioned (:data:`JUDGE_PROMPT_VERSION`) and the
version is part of the verifier's :attr:`~LLMJudgeVerifier.name`, which the audit
record stores.

:class:`CombinedVerifier` decides: a lexical hard constraint (a number, unit or bound
missing, a reversed direction, a negation added or dropped:
:func:`~medrag.answer.verify.hard_constraints`) vetoes; otherwise the model's
calibrated score must reach ``threshold``. Its reason says which rule decided.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .verify import Verdict, Verifier, hard_constraints, verify_pairs

__all__ = [
    "JUDGE_PROMPT_VERSION", "LLMJudgeVerifier", "CombinedVerifier", "cap_passage", "judge_messages", "yes_probability",
]

logger = logging.getLogger(__name__)

JUDGE_PROMPT_VERSION = "medrag-judge-v1"
JUDGE_SYSTEM = (
    "You check whether a scientific claim is supported by evidence from an abstract. "
    "Answer Yes if the evidence supports the claim. Answer No if the evidence contradicts "
    "the claim or does not address it. Answer with one word: Yes or No."
)


def cap_passage(claim: str, passage: str, max_chars: int) -> str:
    """``passage`` cut to about ``max_chars`` characters: when longer, its sentences
    that share the most content words with the claim, kept in their original order."""
    if len(passage) <= max_chars:
        return passage
    from ..sentences import split_sentences
    from .text import content_tokens

    spans = split_sentences(passage) or [(0, len(passage))]
    cw = set(content_tokens(claim))
    ranked = sorted(range(len(spans)), key=lambda i: (-len(cw & set(content_tokens(passage[slice(*spans[i])]))), i))
    keep, used = [], 0
    for i in ranked:
        n = spans[i][1] - spans[i][0]
        if keep and used + n > max_chars:
            continue
        keep.append(i)
        used += n + 1
    text = " ".join(passage[slice(*spans[i])] for i in sorted(keep))
    return text if len(text) <= max_chars else text[:max_chars].rsplit(" ", 1)[0] + " ..."


def judge_messages(claim: str, passage: str, max_passage_chars: int = 1200) -> list[dict[str, str]]:
    """The chat messages of one judgement: instructions, then the evidence (capped by
    :func:`cap_passage`), then the claim (so that claims about one passage share the
    longest prefix)."""
    ev = cap_passage(claim, passage, max_passage_chars)
    user = f"Evidence: {ev}\n\nClaim: {claim}\n\nDoes the evidence support the claim? Answer Yes or No."
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def yes_probability(response: dict) -> float | None:
    """``P(yes) / (P(yes) + P(no))`` from the first token's ``top_logprobs`` of a
    chat-completions response, or None when neither word is among them."""
    try:
        first = response["choices"][0]["logprobs"]["content"][0]
        tops = first.get("top_logprobs") or [first]
    except (KeyError, IndexError, TypeError):
        return None
    p_yes = p_no = 0.0
    for t in tops:
        try:
            word = str(t["token"]).strip().lower()
            p = math.exp(float(t["logprob"]))
        except (KeyError, TypeError, ValueError):
            continue
        if word in ("yes", "y"):
            p_yes += p
        elif word in ("no", "n"):
            p_no += p
    if p_yes + p_no <= 0.0:
        return None
    return p_yes / (p_yes + p_no)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


@dataclass
class LLMJudgeVerifier:
    """A chat model as a yes/no judge (see the module docstring).

    Args:
        client: anything with ``chat(messages, **params) -> dict`` returning a
            chat-completions response with logprobs: an
            :class:`~medrag.answer.generate.OpenAIChatGenerator`, a
            :class:`~medrag.answer.local_llm.LlamaServer` (in-process), or
            ``LocalLlamaGenerator.client``.
        model_name: named in :attr:`name` (and so in the audit record).
        threshold: ``supported`` when the calibrated score reaches it.
        platt_a, platt_b: the calibration ``sigmoid(a * logit(p) + b)``.
        max_passage_chars: passages are cut to this many characters.
        top_logprobs: how many first-token alternatives to read.
    """

    client: object
    model_name: str = "model"
    threshold: float = 0.5
    platt_a: float = 1.0
    platt_b: float = 0.0
    max_passage_chars: int = 1200
    top_logprobs: int = 10

    def __post_init__(self) -> None:
        if not callable(getattr(self.client, "chat", None)):
            raise ConfigError("LLMJudgeVerifier needs a client with chat(messages, **params) -> dict")
        if not (0.0 < float(self.threshold) < 1.0):
            raise ConfigError(f"threshold must be in (0, 1), not {self.threshold!r}")
        if not (isinstance(self.max_passage_chars, int) and self.max_passage_chars >= 100):
            raise ConfigError(f"max_passage_chars must be an integer >= 100, not {self.max_passage_chars!r}")

    @property
    def name(self) -> str:
        return f"llm-judge:{self.model_name}:{JUDGE_PROMPT_VERSION}"

    def raw_probability(self, sentence: str, passage: str) -> float | None:
        """The model's own P(yes) for one pair (None: it answered neither)."""
        resp = self.client.chat(
            judge_messages(sentence, passage, self.max_passage_chars),
            max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=self.top_logprobs,
        )
        return yes_probability(resp)

    def calibrate(self, p: float) -> float:
        z = self.platt_a * _logit(p) + self.platt_b
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def verify(self, sentence: str, passage: str) -> Verdict:
        p = self.raw_probability(sentence, passage)
        if p is None:
            return Verdict(False, 0.0, "the judge answered neither yes nor no")
        score = self.calibrate(p)
        if score >= self.threshold:
            return Verdict(True, score)
        return Verdict(False, score, f"the judge's support probability {score:.2f} is below {self.threshold:.2f}")

    def verify_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        """Pairs judged grouped by passage (prefix reuse), returned in input order."""
        order = sorted(range(len(pairs)), key=lambda i: (pairs[i][1], i))
        out: list[Verdict | None] = [None] * len(pairs)
        for i in order:
            out[i] = self.verify(*pairs[i])
        return [v for v in out if v is not None]


@dataclass(frozen=True)
class CombinedVerifier:
    """Lexical hard constraints veto; a model verifier's calibrated score decides the
    rest (see the module docstring). ``model`` is any :class:`Verifier` whose score is a
    probability (an :class:`LLMJudgeVerifier`, an NLI cross-encoder)."""

    model: Verifier
    threshold: float = 0.5

    @property
    def name(self) -> str:
        return f"combined(hard-constraints-v2+{self.model.name}@{self.threshold:g})"

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
            if v.score >= self.threshold:
                out.append(Verdict(True, v.score))
            else:
                out.append(Verdict(False, v.score, f"{self.model.name}: support {v.score:.2f} < {self.threshold:.2f}"
                                   + (f" ({v.reason})" if v.reason else "")))
        return out

