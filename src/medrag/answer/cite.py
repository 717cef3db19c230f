"""Citations that point exactly: a quote's own section and page(s)."""

from __future__ import annotations

from collections.abc import Sequence

from ..types import Answer, Citation, Passage

__all__ = ["citation", "abstain", "recommendation_of"]


def recommendation_of(passage: Passage, start: int, end: int) -> str | None:
    """The grade of the guideline recommendation that span ``[start, end)`` lies in
    (``""`` for an ungraded recommendation), or None when it is not in one."""
    for a, b, grade in passage.source.recommendations:
        if a < end and start < b:
            return grade
    return None


def citation(passage: Passage, start: int, end: int, support: float) -> Citation:
    """The citation of document span ``[start, end)`` inside ``passage``'s chunk.

    ``section`` is the label of the section the quote starts in (not the chunk's joined
    labels) and ``page`` the page it starts on; ``pages`` lists every page it lies on
    (a sentence across a page break cites both). Chunks from indexes written before
    chunks recorded their page and section offsets fall back to the chunk's first page
    and its label.
    """
    c = passage.chunk
    pages = c.pages_of(start, end)
    return Citation(
        chunk_id=c.id,
        doc_id=c.doc_id,
        start=start,
        end=end,
        quote=c.text[start - c.start : end - c.start],
        support=round(float(support), 4),
        pmid=passage.source.pmid,
        doi=passage.source.doi,
        page=pages[0] if pages else None,
        pages=pages,
        section=c.section_of(start),
        grade=recommendation_of(passage, start, end) or None,
    )


def abstain(
    question: str, passages: Sequence[Passage], index_id: str, reason: str, support: float = 0.0, **kw
) -> Answer:
    """An abstention with its reason."""
    return Answer(
        question=question,
        status="abstained",
        sentences=(),
        passages=tuple(passages),
        index_id=index_id,
        abstain_reason=reason,
        support=round(float(support), 4),
        **kw,
    )
