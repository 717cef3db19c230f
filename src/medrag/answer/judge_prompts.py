"""Versioned prompts of the LLM judge (:class:`~medrag.answer.judge.LLMJudgeVerifier`).

A :class:`JudgePrompt` is everything that decides a judgement besides the model: the
instructions, optional few-shot turns, whether the evidence or the claim comes first,
the answer words and how their first tokens are read, a second question (the
"two-question" form), and the **shipped calibration** (logistic weights over the
prompt's features, fitted on a development split, and the threshold chosen there), as
plain numbers. The version string is part of the verifier's name, so the audit record
says which prompt and which calibration judged a sentence.

Kinds:

* ``"yesno"``: one question, the support probability is ``P(yes) / (P(yes) + P(no))``
  over the first token's top alternatives; feature ``logit(p)``.
* ``"threeway"``: SUPPORTS / CONTRADICTS / NOT ENOUGH INFORMATION; the first-token
  probabilities of the three answers renormalised over the three; features
  ``logit(P(support))`` and ``logit(P(contradict))``.
* ``"twoq"``: two yes/no questions over the same prefix ("does the evidence state the
  claim?", "does it state the opposite?"); features ``logit(p_support)`` and
  ``logit(p_opposite)``: accept when support is high and the opposite low.

Few-shot examples are written for this module (medical, invented, none from SciFact,
so that no evaluation pair leaks into the prompt) and come right after the
instructions: together they are a fixed prefix that llama.cpp's prompt cache
evaluates once and reuses for every later pair (``cache_prompt``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CHECK_QUESTION", "JudgePrompt", "JUDGE_PROMPTS", "DEFAULT_JUDGE_PROMPT", "get_judge_prompt", "answer_class",
           "negated_claim"]

_YESNO_WORDS = {"yes": "support", "y": "support", "no": "other", "n": "other"}


def answer_class(token: str, kind: str) -> str | None:
    """The answer class a first token spells (``support``, ``contradict``, ``nei`` or,
    for yes/no questions, ``support`` / ``other``), or None. Case and leading spaces
    are ignored; a three-way answer is read from its first letters."""
    w = str(token).strip().lower().lstrip("*\"'(").strip()
    if not w:
        return None
    if kind in ("yesno", "twoq"):
        return _YESNO_WORDS.get(w)
    if kind == "threeway":
        # Qwen2.5 spells SUPPORTS as S+UPPORT+S: a lone first letter counts
        if w in ("s", "su") or w.startswith("sup"):
            return "support"
        if w in ("c", "co") or w.startswith("con"):
            return "contradict"
        if w == "n" or w.startswith(("not", "nei", "no", "ins", "neu", "ne")):
            return "nei"
        return None
    raise ValueError(f"unknown prompt kind {kind!r}")


@dataclass(frozen=True)
class JudgePrompt:
    """One judge prompt (see the module docstring).

    Attributes:
        version: the name stored in the audit record.
        kind: ``yesno``, ``threeway`` or ``twoq``.
        system: the instructions.
        question: the last line of the user turn (the second question of ``twoq`` is
            ``question2``).
        claim_first: the claim before the evidence (else evidence first).
        examples: few-shot ``(evidence, claim, answer)`` turns, or the answer pair
            ``"Yes|No"`` for ``twoq`` (answers to both questions).
        weights: calibration ``sigmoid(w0 + w1 * f1 + w2 * f2 ...)`` over the features
            of the kind (see the module docstring) for a model without an entry in
            ``calibrations``; ``(0.0, 1.0)`` is the model's own probability.
        threshold: the calibrated score a pair must reach to be accepted (same).
        calibrations: ``(model name, weights, threshold, fitted on)`` per model the
            prompt was calibrated for: a calibration holds for the model it was fitted
            on only.
    """

    version: str
    kind: str
    system: str
    question: str
    claim_first: bool = False
    question2: str = ""
    examples: tuple[tuple[str, str, str], ...] = ()
    weights: tuple[float, ...] = (0.0, 1.0)
    threshold: float = 0.5
    n_features: int = field(default=1)
    calibrations: tuple[tuple[str, tuple[float, ...], float, str], ...] = ()

    def calibration_for(self, model_name: str) -> tuple[tuple[float, ...], float, str]:
        """``(weights, threshold, fitted on)`` for ``model_name`` (the name, or the name
        followed by ``-`` and more, as a packaged model's file stem): its own entry,
        else the uncalibrated default (the model's own probability, threshold 0.5)."""
        for name, w, t, how in self.calibrations:
            # a packaged model's file (and so its server alias) is named <name>-<sha256[:12]>
            if model_name == name or model_name.startswith(name + "-"):
                return tuple(w), float(t), how
        return tuple(self.weights), float(self.threshold), "uncalibrated"

    def user_turn(self, claim: str, evidence: str, question: str | None = None) -> str:
        q = self.question if question is None else question
        if self.claim_first:
            return f"Claim: {claim}\n\nEvidence: {evidence}\n\n{q}"
        return f"Evidence: {evidence}\n\nClaim: {claim}\n\n{q}"

    def messages(self, claim: str, evidence: str, question: str | None = None) -> list[dict[str, str]]:
        """Chat messages: instructions, the few-shot turns (a fixed prefix), then the pair."""
        msgs = [{"role": "system", "content": self.system}]
        for ev, cl, ans in self.examples:
            if self.kind == "twoq":
                a1, a2 = ans.split("|")
                msgs.append({"role": "user", "content": self.user_turn(cl, ev, self.question)})
                msgs.append({"role": "assistant", "content": a1})
                msgs.append({"role": "user", "content": self.user_turn(cl, ev, self.question2)})
                msgs.append({"role": "assistant", "content": a2})
            else:
                msgs.append({"role": "user", "content": self.user_turn(cl, ev)})
                msgs.append({"role": "assistant", "content": ans})
        msgs.append({"role": "user", "content": self.user_turn(claim, evidence, question)})
        return msgs


# ------------------------------------------------------------------------ the prompts

_V1_SYSTEM = (
    "You check whether a scientific claim is supported by evidence from an abstract. "
    "Answer Yes if the evidence supports the claim. Answer No if the evidence contradicts "
    "the claim or does not address it. Answer with one word: Yes or No."
)

_STRICT_SYSTEM = (
    "You are a careful fact checker for medical research. You are given a claim and a piece of "
    "evidence from a paper. Decide whether the evidence itself states what the claim says: the "
    "same finding, about the same thing, in the same direction. If the evidence reports the "
    "opposite (for example an increase where the claim says a decrease, an effect where the claim "
    "says none, or no effect where the claim says an effect), the claim is contradicted. If the "
    "evidence is about a related topic but does not state the claim's finding, there is not "
    "enough information. Do not use outside knowledge."
)

_THREEWAY_SYSTEM = _STRICT_SYSTEM + (
    " Answer with exactly one of: SUPPORTS, CONTRADICTS, NOT ENOUGH INFORMATION."
)

# Invented medical examples (none from SciFact): evidence, claim, three-way answer.
_EXAMPLES3 = (
    ("In the randomised trial, patients given drug X had a 30% lower rate of stroke than those given placebo.",
     "Drug X reduces the risk of stroke.", "SUPPORTS"),
    ("Vitamin D supplementation did not reduce the incidence of fractures in older adults (hazard ratio 1.02).",
     "Vitamin D supplements prevent fractures in older adults.", "CONTRADICTS"),
    ("Obesity was associated with higher levels of inflammatory markers in adipose tissue.",
     "Weight loss lowers inflammatory markers in patients with diabetes.", "NOT ENOUGH INFORMATION"),
    ("Expression of protein Z was markedly elevated in biopsies from patients with Crohn's disease "
     "compared with healthy controls.",
     "Protein Z levels are higher in Crohn's disease.", "SUPPORTS"),
    ("Deletion of gene Y in mice increased tumour growth and shortened survival.",
     "Gene Y promotes tumour growth.", "CONTRADICTS"),
    ("Smoking rates among adolescents declined steadily between 2000 and 2015.",
     "School-based cessation programmes reduce smoking among adolescents.", "NOT ENOUGH INFORMATION"),
)
_TO_YESNO = {"SUPPORTS": "Yes", "CONTRADICTS": "No", "NOT ENOUGH INFORMATION": "No"}
_TO_TWOQ = {"SUPPORTS": "Yes|No", "CONTRADICTS": "No|Yes", "NOT ENOUGH INFORMATION": "No|No"}

_Q_SUPPORT = "Does the evidence state the claim? Answer Yes or No."
_Q_OPPOSITE = ("Does the evidence state the opposite of the claim, or a finding that shows the claim is false? "
               "Answer Yes or No.")
_Q_THREEWAY = "Answer: SUPPORTS, CONTRADICTS or NOT ENOUGH INFORMATION?"
_YESNO_SYSTEM = _STRICT_SYSTEM + " Answer Yes only if the evidence states the claim; otherwise answer No. One word."
_TWOQ_SYSTEM = _STRICT_SYSTEM + " Answer each question with one word: Yes or No."

#: The contradiction pass: asked in the same conversation after the three-way answer
#: "SUPPORTS" (the prompt and pair are a reused prefix), a yes/no question aimed at
#: what a small judge misses (benchmarks/bench_judge_combine.py).
CHECK_QUESTION = (
    "Check again, word by word. Does the evidence report the opposite direction, a different number, "
    "no effect or no difference, or a result about a different population, intervention or outcome than "
    "the claim states? Answer Yes or No."
)


def negated_claim(claim: str) -> str:
    """``claim`` as its negation, "It is not true that ...": the contrast pair of the
    negated-claim feature (benchmarks/bench_judge_combine.py). A leading acronym or
    name keeps its capital."""
    c = claim.strip().rstrip(".")
    if c and not (len(c) > 1 and (c[1].isupper() or c[1].isdigit())):
        c = c[0].lower() + c[1:]
    return f"It is not true that {c}."


_QWEN15 = "qwen2.5-coder-1.5b-instruct-q4_k_m"
_DEV_FIT = (
    "SciFact train sentence pairs, dev split 15 per label (seed 101, no claim shared with the test split): "
    "logistic fit of SUPPORT on the features; threshold: the most SUPPORT accepted with CONTRADICT <= 10% "
    "and NEI <= 5% on dev"
)

JUDGE_PROMPTS: dict[str, JudgePrompt] = {
    p.version: p
    for p in (
        JudgePrompt("medrag-judge-v1", "yesno", _V1_SYSTEM,
                    "Does the evidence support the claim? Answer Yes or No."),
        JudgePrompt("medrag-judge-3way-v1", "threeway", _THREEWAY_SYSTEM, _Q_THREEWAY, n_features=2),
        JudgePrompt("medrag-judge-3way-fs-v1", "threeway", _THREEWAY_SYSTEM, _Q_THREEWAY,
                    examples=_EXAMPLES3, n_features=2, calibrations=(
                        # benchmarks/bench_judge_prompts.py: fitted on the dev split
                        (_QWEN15, (2.633792, 1.859249, 1.831444), 0.749979, _DEV_FIT),
                    )),
        JudgePrompt("medrag-judge-3way-fs-cf-v1", "threeway", _THREEWAY_SYSTEM, _Q_THREEWAY, claim_first=True,
                    examples=_EXAMPLES3, n_features=2),
        JudgePrompt("medrag-judge-yesno-fs-v1", "yesno", _YESNO_SYSTEM, _Q_SUPPORT,
                    examples=tuple((e, c, _TO_YESNO[a]) for e, c, a in _EXAMPLES3)),
        JudgePrompt("medrag-judge-2q-v1", "twoq", _TWOQ_SYSTEM, _Q_SUPPORT, question2=_Q_OPPOSITE, n_features=2),
        JudgePrompt("medrag-judge-2q-fs-v1", "twoq", _TWOQ_SYSTEM, _Q_SUPPORT, question2=_Q_OPPOSITE,
                    examples=tuple((e, c, _TO_TWOQ[a]) for e, c, a in _EXAMPLES3), n_features=2, calibrations=(
                        # dev split only: not measured on the test split (README)
                        (_QWEN15, (-0.012298, 1.482152, 1.515359), 0.950105, _DEV_FIT),
                    )),
    )
}

#: Three-way with few-shot turns: with its shipped calibration it met the CONTRADICT and
#: NEI bounds on the held-out SciFact split (1.5B judge), at a low SUPPORT acceptance;
#: it ranks no better than medrag-judge-v1 (README, "Judge prompts, calibrated").
DEFAULT_JUDGE_PROMPT = "medrag-judge-3way-fs-v1"


def get_judge_prompt(version: str | JudgePrompt) -> JudgePrompt:
    """The prompt named ``version`` (or ``version`` itself when it is a prompt)."""
    if isinstance(version, JudgePrompt):
        return version
    try:
        return JUDGE_PROMPTS[version]
    except KeyError:
        from ..errors import ConfigError

        raise ConfigError(f"unknown judge prompt {version!r}; known: {', '.join(sorted(JUDGE_PROMPTS))}") from None
