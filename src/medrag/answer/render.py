"""Rendering answers: Markdown with numbered Vancouver-style references, and HTML."""

from __future__ import annotations

import html

from ..types import Answer, SourceInfo

__all__ = ["to_markdown", "to_html", "reference"]


def reference(src: SourceInfo, page: int | None = None) -> str:
    """A Vancouver-style reference: authors, title, journal year;vol(issue):pages, PMID, DOI.
    Guidelines: organization, title, year, page."""
    if src.kind == "guideline":
        parts = [src.organization or "", src.title or "(untitled guideline)", str(src.year or "n.d.")]
        ref = ". ".join(p for p in parts if p) + "."
        if page is not None:
            ref += f" p. {page}."
        return ref
    authors = ", ".join(src.authors[:6])
    if src.n_authors > 6:
        authors += ", et al"
    ref = f"{authors}. " if authors else ""
    ref += (src.title or "").rstrip(".") + ". "
    if src.journal:
        ref += f"{src.journal}. "
    if src.year:
        ref += str(src.year)
        if src.volume:
            ref += f";{src.volume}"
            if src.issue:
                ref += f"({src.issue})"
        if src.pages:
            ref += f":{src.pages}"
        ref += "."
    if src.pmid:
        ref += f" PMID: [{src.pmid}](https://pubmed.ncbi.nlm.nih.gov/{src.pmid}/)."
    if src.doi:
        ref += f" doi:{src.doi}."
    if src.retracted:
        ref += " **RETRACTED.**"
    return ref.strip()


def _numbering(answer: Answer) -> dict[str, int]:
    nums: dict[str, int] = {}
    for s in answer.sentences:
        for c in s.citations:
            nums.setdefault(c.doc_id, len(nums) + 1)
    return nums


def to_markdown(answer: Answer) -> str:
    if answer.status == "abstained":
        return f"**No answer.** {answer.abstain_reason}."
    nums = _numbering(answer)
    sources = {p.chunk.doc_id: p.source for p in answer.passages}
    lines = []
    if answer.status == "partial":
        lines.append("*Partial answer: the evidence found covers only part of the question.*\n")
    body = []
    for s in answer.sentences:
        marks = sorted({nums[c.doc_id] for c in s.citations})
        pages = {c.page for c in s.citations if c.page is not None}
        where = f" (p. {', '.join(map(str, sorted(pages)))})" if pages else ""
        body.append(f"{s.text} [{', '.join(map(str, marks))}]{where}")
    lines.append(" ".join(body))
    lines.append("\n**References**\n")
    for doc_id, n in nums.items():
        pages = sorted({c.page for s in answer.sentences for c in s.citations if c.doc_id == doc_id and c.page})
        lines.append(f"{n}. {reference(sources[doc_id], pages[0] if pages else None)}")
    if answer.removed:
        lines.append("\n*Removed by verification:* " + "; ".join(f"“{r.text}” ({r.reason})" for r in answer.removed))
    return "\n".join(lines)


def to_html(answer: Answer) -> str:
    if answer.status == "abstained":
        return f"<div class='medrag-answer'><b>No answer.</b> {html.escape(answer.abstain_reason or '')}.</div>"
    nums = _numbering(answer)
    sources = {p.chunk.doc_id: p.source for p in answer.passages}
    sents = []
    for s in answer.sentences:
        marks = ", ".join(
            f"<sup title='{html.escape(c.quote)}'>{nums[c.doc_id]}</sup>" for c in s.citations
        )
        sents.append(f"{html.escape(s.text)} {marks}")
    refs = "".join(f"<li>{html.escape(reference(sources[d]))}</li>" for d in nums)
    return f"<div class='medrag-answer'><p>{' '.join(sents)}</p><ol>{refs}</ol></div>"
