"""Citation-grounded answers: every sentence cites a retrieved passage, or the answer
abstains with a reason. The composers see only passages; :func:`answer` is the one
place that asks an index for them."""

from __future__ import annotations

from collections.abc import Sequence

from ..types import Answer, Passage
from .compose import AnswerConfig, SupportModel, compose_extractive
from .generated import PROMPT_VERSION as _DEFAULT_CITE_PROMPT
from .generated import compose_generated
from .generate import Generator, OpenAIChatGenerator
from .judge import CombinedVerifier, LLMJudgeVerifier
from .local_llm import LlamaServer, LocalLlamaGenerator
from .nli import NLIVerifier
from .verify import LexicalVerifier, Verdict, Verifier

__all__ = [
    "answer",
    "AnswerConfig",
    "SupportModel",
    "compose_extractive",
    "compose_generated",
    "Generator",
    "OpenAIChatGenerator",
    "LexicalVerifier",
    "Verdict",
    "Verifier",
    "LocalLlamaGenerator",
    "LlamaServer",
    "LLMJudgeVerifier",
    "NLIVerifier",
    "CombinedVerifier",
]


def answer(
    question: str,
    index,
    *,
    config: AnswerConfig | None = None,
    filters=None,
    generator: Generator | None = None,
    verifier: Verifier | None = None,
    audit=None,
    on_generation_error: str = "raise",
    prompt: str | None = None,
) -> Answer:
    """Retrieve passages for ``question`` from ``index`` and compose a cited answer.

    Without a ``generator`` the answer is extractive (exact quotes, offline). With one,
    its output is verified sentence by sentence (``verifier``, default
    :class:`LexicalVerifier`); a generator that fails, hangs or returns no usable text
    raises :class:`~medrag.errors.GenerationError`, or with
    ``on_generation_error="abstain"`` the answer abstains with that reason.
    ``filters`` are the index's metadata filters (retracted publications are excluded
    unless they say otherwise). ``audit`` (an
    :class:`~medrag.audit.AuditLog`) records the answer when given. ``prompt``: the
    generation prompt's version (:data:`~medrag.answer.generated.CITE_PROMPTS`; None:
    the default, ``medrag-cite-v1``); it needs a ``generator`` and is named in
    :attr:`Answer.prompt_id` and so in the audit record.
    """
    from ..index import Filters

    if prompt is not None:
        from ..errors import ConfigError
        from .generated import CITE_PROMPTS

        if generator is None:
            raise ConfigError(f"prompt={prompt!r} is a generation prompt: it needs a generator (extractive answers use none)")
        if prompt not in CITE_PROMPTS:
            raise ConfigError(f"unknown answer prompt {prompt!r}; known: {', '.join(sorted(CITE_PROMPTS))}")
    config = config or AnswerConfig()
    filters = filters or Filters()
    passages: Sequence[Passage] = index.search(question, k=config.k, filters=filters)
    weights = None
    if hasattr(index, "term_weights"):
        from .text import content_tokens

        weights = index.term_weights(sorted(set(content_tokens(question))))
    retracted_only = False
    if not filters.include_retracted:
        from dataclasses import replace

        from .compose import support_of

        s_clean, _ = support_of(question, passages, config, weights) if passages else (0.0, None)
        if s_clean < config.threshold:
            # about to abstain: say so when retracted papers were the only support
            with_retracted = index.search(question, k=config.k, filters=replace(filters, include_retracted=True))
            if with_retracted and with_retracted[0].source.retracted:
                s_all, _ = support_of(question, with_retracted[:1], config, weights)
                retracted_only = s_all >= config.threshold
    if generator is None:
        result = compose_extractive(
            question, passages, index_id=index.id, config=config, retracted_only=retracted_only, term_weights=weights,
            encoder=getattr(index, "encoder", None) if config.dense_evidence else None,
        )
    else:
        result = compose_generated(
            question, passages, generator, index_id=index.id, config=config, verifier=verifier, term_weights=weights,
            on_error=on_generation_error, prompt=prompt or _DEFAULT_CITE_PROMPT,
        )
    if audit is not None:
        audit.record(result, index=index, verifier=(verifier or LexicalVerifier()).name)
    return result
