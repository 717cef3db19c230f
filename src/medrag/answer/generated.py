"""Generated answers: ask a :class:`~medrag.answer.generate.Generator` for an answer with
a citation per sentence, then verify every sentence against the passages it cites;
unsupported sentences are removed and reported (:attr:`~medrag.types.Answer.removed`).

The contract is the extractive composer's: every kept sentence cites a given passage,
or the answer abstains with a reason.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from ..sentences import split_sentences
from ..types import Answer, AnswerSentence, Citation, Passage, RemovedSentence
from .compose import AnswerConfig, _abstain, support_of
from .text import content_tokens
from .verify import LexicalVerifier, Verifier

__all__ = ["PROMPT_VERSION", "SYSTEM_PROMPT", "build_prompt", "compose_generated", "prompt_id"]


_CITE = re.compile(r"\[(\d+(?:\s*[,;–-]\s*\d+)*)\]")

PROMPT_VERSION = "medrag-cite-v1"
SYSTEM_PROMPT = (
    "You answer clinical questions using only the numbered passages given. "
    "Write a short answer of one to four sentences. End every sentence with the number "
    "of the passage that supports it in square brackets, like [2] or [1, 3]. Use only "
    "facts, numbers, drugs and doses stated in the cited passage. If the passages do not "
    "answer the question, reply exactly: INSUFFICIENT EVIDENCE"
)


def build_prompt(question: str, passages: Sequence[Passage]) -> list[dict[str, str]]:
    """The chat messages sent to a generator: numbered passages, then the question."""
    blocks = []
    for i, p in enumerate(passages, start=1):
        src = p.source
        head = f"[{i}] {src.title}" + (f" ({src.year})" if src.year else "")
        blocks.append(f"{head}\n{p.chunk.text}")
    user = "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}\nAnswer:"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def prompt_id(messages: list[dict[str, str]]) -> str:
    """A stable identifier of the prompt template and the exact prompt sent."""
    h = hashlib.sha256("\x00".join(m["role"] + ":" + m["content"] for m in messages).encode("utf-8")).hexdigest()
    return f"{PROMPT_VERSION}:{h[:16]}"


def _parse_citations(sentence: str) -> tuple[str, list[int]]:
    nums: list[int] = []
    for m in _CITE.finditer(sentence):
        for part in re.split(r"\s*[,;]\s*", m.group(1)):
            if re.fullmatch(r"\d+\s*[–-]\s*\d+", part):
                a, b = (int(x) for x in re.split(r"\s*[–-]\s*", part))
                nums.extend(range(a, b + 1) if 0 < b - a < 20 else [a, b])
            else:
                nums.append(int(part))
    clean = " ".join(_CITE.sub("", sentence).split())
    clean = re.sub(r"\s+([.,;:!?])", r"\1", clean)
    return clean, nums


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


def compose_generated(
    question: str,
    passages: Sequence[Passage],
    generator,
    *,
    index_id: str = "unsaved",
    config: AnswerConfig | None = None,
    verifier: Verifier | None = None,
    term_weights: Mapping[str, float] | None = None,
) -> Answer:
    """Ask ``generator`` for a cited answer and keep only verified sentences.

    A sentence is removed (and reported in :attr:`Answer.removed`) when it cites
    nothing, cites a passage number that was not given, or is not supported by the
    passages it cites (numbers, drugs, doses or direction of effect not in them). If no
    supported sentence remains, the answer abstains; if some were removed, it is
    ``partial``.
    """
    from ..errors import GenerationError

    config = config or AnswerConfig()
    verifier = verifier or LexicalVerifier()
    if not passages:
        return _abstain(question, passages, index_id, "no passage was retrieved for the question")
    support, _ = support_of(question, passages, config, term_weights)
    messages = build_prompt(question, passages)
    pid = prompt_id(messages)
    gen_name = getattr(generator, "name", type(generator).__name__)
    if support < config.threshold:
        return _abstain(
            question, passages, index_id,
            f"no passage supports the question above the threshold (support {support:.2f} < {config.threshold:.2f})",
            support, generator=gen_name, prompt_id=pid,
        )
    try:
        output = generator.generate(messages)
    except GenerationError:
        raise
    except (OSError, ValueError) as exc:
        raise GenerationError(f"generator {gen_name} failed: {exc}") from exc
    if "INSUFFICIENT EVIDENCE" in output.upper():
        return _abstain(question, passages, index_id, "the generator found the passages insufficient",
                        support, generator=gen_name, prompt_id=pid)
    kept: list[AnswerSentence] = []
    removed: list[RemovedSentence] = []
    for a, b in split_sentences(output):
        raw = output[a:b]
        text, nums = _parse_citations(raw)
        if not text:
            continue
        if not nums:
            removed.append(RemovedSentence(text, "cites no passage"))
            continue
        bad = [n for n in nums if not 1 <= n <= len(passages)]
        if bad:
            removed.append(RemovedSentence(text, f"cites passage {bad[0]}, which was not given", tuple(nums)))
            continue
        cited = [passages[n - 1] for n in dict.fromkeys(nums)]
        verdicts = [verifier.verify(text, p.chunk.text) for p in cited]
        joint = verifier.verify(text, "\n".join(p.chunk.text for p in cited))
        if not joint.supported:
            removed.append(RemovedSentence(text, f"not supported by the cited passage(s): {joint.reason}", tuple(nums)))
            continue
        citations = []
        for p, v in zip(cited, verdicts):
            s, e, quote = _best_span(text, p)
            citations.append(Citation(
                chunk_id=p.chunk.id, doc_id=p.chunk.doc_id, start=s, end=e, quote=quote,
                support=round(float(v.score), 4), pmid=p.source.pmid, doi=p.source.doi,
                page=p.chunk.pages[0] if p.chunk.pages else None, section=p.chunk.section,
            ))
        kept.append(AnswerSentence(text=text, citations=tuple(citations), support=round(float(joint.score), 4)))
    if not kept:
        return _abstain(question, passages, index_id, "no generated sentence was supported by the passages it cites",
                        support, removed=tuple(removed), generator=gen_name, prompt_id=pid)
    return Answer(
        question=question,
        status="partial" if removed else "answered",
        sentences=tuple(kept),
        passages=tuple(passages),
        index_id=index_id,
        support=round(float(support), 4),
        removed=tuple(removed),
        generator=gen_name,
        prompt_id=pid,
    )
