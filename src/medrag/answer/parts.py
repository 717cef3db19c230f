"""The parts of a multi-part question, and whether quotes answer each.

"How much salt and how much sugar should adults eat per day?" asks two things. Each
part is named by the content words only it has (``salt`` / ``sugar``); the words the
parts share ("adults", "day") belong to both. An answer is ``partial`` when a part has
no quote holding its own words, and says which part that is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import content_tokens

__all__ = ["QuestionPart", "question_parts"]

_WH = r"(?:how|what|which|when|where|who|whom|whose|why|is|are|does|do|can|should|could)"
# "X and how much Y", "X, and what Y", "X; which Y": a second question word after "and"
_SPLIT = re.compile(rf"\s*(?:,\s*|\s)(?:and|or|;)\s+(?={_WH}\b)|\s*;\s*", re.I)


@dataclass(frozen=True, slots=True)
class QuestionPart:
    """A part of the question as written, and the content tokens only it has."""

    text: str
    own: frozenset[str]


def question_parts(question: str) -> list[QuestionPart]:
    """The parts of ``question`` (one part when it asks one thing)."""
    pieces = [p.strip(" ,;?") for p in _SPLIT.split(question) if p and p.strip(" ,;?")]
    if len(pieces) < 2:
        return [QuestionPart(question, frozenset(content_tokens(question)))]
    toks = [set(content_tokens(p)) for p in pieces]
    parts = []
    for i, (p, t) in enumerate(zip(pieces, toks)):
        others = set().union(*(x for j, x in enumerate(toks) if j != i))
        own = frozenset(t - others)
        if own:
            parts.append(QuestionPart(p, own))
    return parts if len(parts) >= 2 else [QuestionPart(question, frozenset(content_tokens(question)))]
