"""Generated answers: ask a :class:`~medrag.answer.generate.Generator` for an answer with
a citation per sentence, then verify every sentence against the passages it cites;
unsupported sentences are removed and reported (:attr:`~medrag.types.Answer.removed`).

The contract is the extractive composer's: every kept sentence cites a given passage,
or the answer abstains with a reason. Citations are read in the styles models write
them (:mod:`medrag.answer.citeparse`). A generator that fails, hangs past
``timeout`` seconds, or returns nothing, non-text or more than ``max_output_chars``
characters is a :class:`~medrag.errors.GenerationError`; with ``on_error="abstain"``
the answer abstains with that reason instead (never an unverified sentence).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence

from ..errors import ConfigError, GenerationError
from ..sentences import split_sentences
from ..types import Answer, AnswerSentence, Citation, Passage, RemovedSentence
from .citeparse import split_cited
from .compose import AnswerConfig, _abstain, support_of
from .generate import MAX_OUTPUT_CHARS, check_output
from .text import content_tokens
from .verify import LexicalVerifier, Verdict, Verifier, verify_pairs

__all__ = ["CITE_PROMPTS", "PROMPT_VERSION", "SYSTEM_PROMPT", "build_prompt", "compose_generated", "prompt_id"]

logger = logging.getLogger(__name__)

PROMPT_VERSION = "medrag-cite-v1"
SYSTEM_PROMPT = (
    "You answer clinical questions using only the numbered passages given. "
    "Write a short answer of one to four sentences. End every sentence with the number "
    "of the passage that supports it in square brackets, like [2] or [1, 3]. Use only "
    "facts, numbers, drugs and doses stated in the cited passage. If the passages do not "
    "answer the question, reply exactly: INSUFFICIENT EVIDENCE"
)

#: The answer prompts by version (the system prompt; the user turn is the same). v2
#: shows the citation format in an example sentence and asks for a finding per
#: sentence: the small models answered v1 with "Yes, [1]" (README, "End to end on
#: PubMedQA"). The version is the prefix of :func:`prompt_id`, stored in the answer.
CITE_PROMPTS: dict[str, str] = {
    PROMPT_VERSION: SYSTEM_PROMPT,
    "medrag-cite-v2": (
        "You answer clinical questions using only the numbered passages given. After the first "
        "word, write two or three sentences, each stating one finding of a passage, in the "
        "passage's own words where you can, and ending with that passage's number in square "
        "brackets before the period, for example: Mortality was lower with drug A than with "
        "placebo [2]. Every sentence must state a finding and carry its number. Use only facts, "
        "numbers, drugs and doses stated in the cited passage. If the passages do not answer the "
        "question, reply exactly: INSUFFICIENT EVIDENCE"
    ),
}


def build_prompt(
    question: str, passages: Sequence[Passage], instruction: str | None = None, prompt: str = PROMPT_VERSION,
) -> list[dict[str, str]]:
    """The chat messages sent to a generator: numbered passages, then the question.
    ``instruction`` (e.g. "Begin with Yes, No or Maybe.") is appended to the system
    prompt; it changes the :func:`prompt_id`. ``prompt``: a version in
    :data:`CITE_PROMPTS`."""
    if prompt not in CITE_PROMPTS:
        raise ConfigError(f"unknown answer prompt {prompt!r}; known: {', '.join(sorted(CITE_PROMPTS))}")
    blocks = []
    for i, p in enumerate(passages, start=1):
        src = p.source
        head = f"[{i}] {src.title}" + (f" ({src.year})" if src.year else "")
        blocks.append(f"{head}\n{p.chunk.text}")
    user = "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}\nAnswer:"
    system = CITE_PROMPTS[prompt] + (" " + instruction.strip() if instruction else "")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def prompt_id(messages: list[dict[str, str]]) -> str:
    """A stable identifier of the prompt template and the exact prompt sent: the
    version whose system prompt begins the messages, then a hash of the messages."""
    h = hashlib.sha256("\x00".join(m["role"] + ":" + m["content"] for m in messages).encode("utf-8")).hexdigest()
    system = messages[0]["content"] if messages else ""
    version = next((v for v, t in CITE_PROMPTS.items() if v != PROMPT_VERSION and system.startswith(t)), PROMPT_VERSION)
    return f"{version}:{h[:16]}"


def _best_span(claim: str, p: Passage) -> tuple[int, int, str]:
    """The passage sentence closest to the claim: what the citation quotes."""
    c = p.chunk
    claim_t = set(content_tokens(claim))
    best = (0, len(c.text), -1.0)
    for a, b in split_sentences(c.text):
        t = set(content_tokens(c.text[a:b]))
        score = len(claim_t & t) / (len(claim_t | t) or 1)
        if score > best[2]:
            best = (a, b, score)
    a, b, _ = best
    return c.start + a, c.start + b, c.text[a:b]


def _generate(generator, messages, gen_name: str, timeout: float | None, max_chars: int) -> str:
    """The generator's text, within ``timeout`` seconds, checked (see the module doc)."""

    def call():
        try:
            return generator.generate(messages)
        except GenerationError:
            raise
        except Exception as exc:  # any backend failure becomes one clear error
            raise GenerationError(f"generator {gen_name} failed: {type(exc).__name__}: {exc}") from exc

    if timeout is None:
        out = call()
    else:
        # a daemon thread: a generator that never returns cannot hold the caller (or
        # the interpreter's exit) past the deadline; the stuck call is abandoned
        box: dict = {}

        def run():
            try:
                box["out"] = call()
            except BaseException as exc:  # handed to the caller's thread below
                box["exc"] = exc

        worker = threading.Thread(target=run, name="medrag-generate", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise GenerationError(f"generator {gen_name} gave no answer within {timeout:g} s")
        if "exc" in box:
            raise box["exc"]
        out = box.get("out")
    return check_output(out, f"generator {gen_name}", max_chars)


def compose_generated(
    question: str,
    passages: Sequence[Passage],
    generator,
    *,
    index_id: str = "unsaved",
    config: AnswerConfig | None = None,
    verifier: Verifier | None = None,
    term_weights: Mapping[str, float] | None = None,
    instruction: str | None = None,
    timeout: float | None = 600.0,
    max_output_chars: int = MAX_OUTPUT_CHARS,
    on_error: str = "raise",
    prompt: str = PROMPT_VERSION,
) -> Answer:
    """Ask ``generator`` for a cited answer and keep only verified sentences.

    A sentence is removed (and reported in :attr:`Answer.removed`) when it cites
    nothing, cites a passage number that was not given, or is not supported by the
    passages it cites (``verifier``, default :class:`LexicalVerifier`: numbers, drugs,
    doses or direction of effect not in them). If no supported sentence remains, the
    answer abstains; if some were removed, it is ``partial``.

    Args:
        instruction: appended to the system prompt (see :func:`build_prompt`).
        timeout: seconds the generator may take (``None``: no limit).
        max_output_chars: longer generated text is refused.
        on_error: ``"raise"`` a :class:`GenerationError` when the generator fails, or
            ``"abstain"`` with the error as the reason.
        prompt: the answer prompt's version (:data:`CITE_PROMPTS`).
    """
    if on_error not in ("raise", "abstain"):
        raise ConfigError(f"on_error must be 'raise' or 'abstain', not {on_error!r}")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ConfigError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
    if not (isinstance(max_output_chars, int) and max_output_chars > 0):
        raise ConfigError(f"max_output_chars must be a positive integer, not {max_output_chars!r}")
    config = config or AnswerConfig()
    verifier = verifier or LexicalVerifier()
    if not passages:
        return _abstain(question, passages, index_id, "no passage was retrieved for the question")
    support, _ = support_of(question, passages, config, term_weights)
    messages = build_prompt(question, passages, instruction, prompt)
    pid = prompt_id(messages)
    gen_name = str(getattr(generator, "name", type(generator).__name__))
    meta = {"generator": gen_name, "prompt_id": pid}
    if support < config.threshold:
        return _abstain(
            question, passages, index_id,
            f"no passage supports the question above the threshold (support {support:.2f} < {config.threshold:.2f})",
            support, **meta,
        )
    try:
        output = _generate(generator, messages, gen_name, timeout, max_output_chars)
    except GenerationError as exc:
        if on_error == "raise":
            raise
        logger.warning("generation failed, abstaining: %s", exc)
        return _abstain(question, passages, index_id, f"generation failed: {exc}", support, **meta)
    if "INSUFFICIENT EVIDENCE" in output.upper():
        return _abstain(question, passages, index_id, "the generator found the passages insufficient", support, **meta)

    removed: list[RemovedSentence] = []
    todo: list[tuple[str, tuple[int, ...], list[Passage]]] = []
    for text, nums in split_cited(output):
        if not nums:
            removed.append(RemovedSentence(text, "cites no passage"))
            continue
        bad = [n for n in nums if not 1 <= n <= len(passages)]
        if bad:
            removed.append(RemovedSentence(text, f"cites passage {bad[0]}, which was not given", tuple(nums)))
            continue
        todo.append((text, tuple(nums), [passages[n - 1] for n in dict.fromkeys(nums)]))
    # one batch for the verifier: the joint check of each sentence against all it cites,
    # and, for sentences citing several passages, each passage alone (citation scores)
    pairs: list[tuple[str, str]] = []
    for text, _, cited in todo:
        pairs.append((text, "\n".join(p.chunk.text for p in cited)))
        if len(cited) > 1:
            pairs.extend((text, p.chunk.text) for p in cited)
    try:
        verdicts = verify_pairs(verifier, pairs)
    except GenerationError as exc:
        if on_error == "raise":
            raise
        return _abstain(question, passages, index_id, f"verification failed: {exc}", support, **meta)
    kept: list[AnswerSentence] = []
    i = 0
    for text, nums, cited in todo:
        joint: Verdict = verdicts[i]
        singles = verdicts[i + 1: i + 1 + len(cited)] if len(cited) > 1 else [joint]
        i += 1 + (len(cited) if len(cited) > 1 else 0)
        if not joint.supported:
            removed.append(RemovedSentence(text, f"not supported by the cited passage(s): {joint.reason}", nums))
            continue
        citations = []
        for p, v in zip(cited, singles):
            s, e, quote = _best_span(text, p)
            citations.append(Citation(
                chunk_id=p.chunk.id, doc_id=p.chunk.doc_id, start=s, end=e, quote=quote,
                support=round(float(v.score), 4), pmid=p.source.pmid, doi=p.source.doi,
                page=p.chunk.pages[0] if p.chunk.pages else None, section=p.chunk.section,
            ))
        kept.append(AnswerSentence(text=text, citations=tuple(citations), support=round(float(joint.score), 4)))
    if not kept:
        return _abstain(question, passages, index_id, "no generated sentence was supported by the passages it cites",
                        support, removed=tuple(removed), **meta)
    return Answer(
        question=question,
        status="partial" if removed else "answered",
        sentences=tuple(kept),
        passages=tuple(passages),
        index_id=index_id,
        support=round(float(support), 4),
        removed=tuple(removed),
        **meta,
    )
