"""Rendering answers: Markdown with numbered Vancouver-style references, and HTML.

Everything shown comes from documents, and documents are untrusted: a PDF title of
``[Official update](https://evil.example/)`` or a PMID of ``1)](https://evil.example/x)``
must be shown as text, never become a live link. So every piece of text is escaped for
the output format (Markdown backslash escapes, HTML entities), control and bidi
characters are removed, and links are made only from values that are what they claim
(a PMID of 1-9 digits, a DOI ``10.<registrant>/<suffix>``, an http(s) URL), with their
targets percent-encoded.

This module imports nothing from :mod:`medrag.types` at run time (the data types call
it lazily; it only reads their attributes), so there is no import circle.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..types import Answer, SourceInfo

__all__ = ["to_markdown", "to_html", "reference", "escape_markdown", "clean_text"]

# C0/C1 controls (newlines and tabs become spaces) and the bidi embedding/override/
# isolate characters that can reorder what a reader sees.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&$^=-])")
_PMID = re.compile(r"[1-9][0-9]{0,8}")
_DOI = re.compile(r"10\.[0-9]{4,9}/\S+")
_URL = re.compile(r"https?://[^\s]+", re.IGNORECASE)

# a piece of a reference: (text, link target or None)
Piece = tuple[str, "str | None"]


def clean_text(text: str | None) -> str:
    """``text`` with control and bidi characters removed and whitespace collapsed."""
    if not text:
        return ""
    return " ".join(_CONTROL.sub(" ", text).split())


def escape_markdown(text: str | None) -> str:
    """``text`` cleaned (:func:`clean_text`) and escaped so that Markdown shows it as
    written: no links, emphasis, HTML or headings can come out of it."""
    return _MD_SPECIAL.sub(r"\\\1", clean_text(text)) if text else ""


def _end(text: str) -> str:
    """``text`` ending in one full stop: "fit all?" stays, "trial" gets one."""
    text = text.rstrip()
    return text if not text or text[-1] in ".?!" else text + "."


def _pmid_link(pmid: str | None) -> list[Piece]:
    if not pmid:
        return []
    if _PMID.fullmatch(pmid):
        return [(" PMID: ", None), (pmid, f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"), (".", None)]
    return [(" PMID: " + _end(pmid), None)]


def _doi_link(doi: str | None) -> list[Piece]:
    if not doi:
        return []
    doi = clean_text(doi)
    if _DOI.fullmatch(doi):
        target = "https://doi.org/" + urllib.parse.quote(doi, safe="/.-_;:")
        return [(" doi: ", None), (doi, target), (".", None)]
    return [(" doi: " + _end(doi), None)]


def _url_link(url: str | None) -> list[Piece]:
    url = clean_text(url)
    if not url or not _URL.fullmatch(url):
        return []
    target = urllib.parse.quote(url, safe="/:.-_~?&=%#+@!$,;")
    return [(" Available from: ", None), (url, target), (".", None)]


def _pages(pages: list[int]) -> str:
    if not pages:
        return ""
    return (" p. " if len(pages) == 1 else " pp. ") + ", ".join(map(str, pages)) + "."


def reference_pieces(src: "SourceInfo", pages: list[int] | tuple[int, ...] = ()) -> list[Piece]:
    """A Vancouver-style reference as text pieces and link targets.

    PubMed: authors, title, journal year;vol(issue):pages, PMID, DOI. Guidelines:
    organization, title, year, the cited pages, the file and the URL when known."""
    pages = sorted(set(pages))
    if src.kind == "guideline":
        parts = [clean_text(src.organization), clean_text(src.title) or "(untitled guideline)",
                 str(src.year or "n.d.")]
        out: list[Piece] = [(" ".join(_end(p) for p in parts if p) + _pages(pages), None)]
        if src.file:
            out.append((f" File: {_end(clean_text(src.file))}", None))
        out += _url_link(src.url)
        return out
    authors = ", ".join(clean_text(a) for a in src.authors[:6])
    if src.n_authors > 6:
        authors += ", et al"
    text = _end(authors) + " " if authors else ""
    text += _end(clean_text(src.title) or "(untitled)")
    if src.journal:
        text += " " + _end(clean_text(src.journal))
    if src.year:
        text += f" {src.year}"
        if src.volume:
            text += f";{clean_text(src.volume)}"
            if src.issue:
                text += f"({clean_text(src.issue)})"
        if src.pages:
            text += f":{clean_text(src.pages)}"
        text += "."
    out = [(text, None), *_pmid_link(src.pmid), *_doi_link(src.doi)]
    if src.retracted:
        out.append((" RETRACTED.", "!strong"))
    return out


def _spaced(raw: str, shown: str) -> str:
    """``shown`` with the leading and trailing space ``raw`` had."""
    return (" " if raw[:1] == " " else "") + shown + (" " if raw[-1:] == " " and shown else "")


def _join(pieces: list[Piece], esc, link, strong) -> str:
    """Render pieces with an escaping function and link / strong formatters."""
    out = []
    for text, href in pieces:
        if href == "!strong":
            out.append(" " + strong(esc(text.strip())))
        elif href:
            out.append(link(esc(text), href))
        else:
            out.append(_spaced(text, esc(text)))
    return "".join(out).strip()


def _md(pieces: list[Piece]) -> str:
    return _join(pieces, escape_markdown, lambda t, h: f"[{t}](<{h}>)", lambda t: f"**{t}**")


def _html(pieces: list[Piece]) -> str:
    return _join(
        pieces, lambda t: html.escape(clean_text(t)),
        lambda t, h: f"<a href=\"{html.escape(h, quote=True)}\">{t}</a>", lambda t: f"<b>{t}</b>",
    )


def reference(src: "SourceInfo", page: int | None = None, pages: tuple[int, ...] = ()) -> str:
    """A Vancouver-style reference in Markdown (escaped; see the module docstring)."""
    return _md(reference_pieces(src, tuple(pages) or ((page,) if page is not None else ())))


def _numbering(answer: "Answer") -> dict[str, int]:
    nums: dict[str, int] = {}
    for s in answer.sentences:
        for c in s.citations:
            nums.setdefault(c.doc_id, len(nums) + 1)
    return nums


def _cited_pages(answer: "Answer", doc_id: str) -> list[int]:
    pages: set[int] = set()
    for s in answer.sentences:
        for c in s.citations:
            if c.doc_id == doc_id:
                pages.update(c.pages or ((c.page,) if c.page is not None else ()))
    return sorted(pages)


def _sentence_pages(s) -> list[int]:
    pages: set[int] = set()
    for c in s.citations:
        pages.update(c.pages or ((c.page,) if c.page is not None else ()))
    return sorted(pages)


def to_markdown(answer: "Answer") -> str:
    """The answer as Markdown: the quotes with reference numbers (and pages), then the
    numbered references. All document text is escaped."""
    if answer.status == "abstained":
        return f"**No answer.** {escape_markdown(_end(answer.abstain_reason or ''))}"
    nums = _numbering(answer)
    sources = {p.chunk.doc_id: p.source for p in answer.passages}
    lines = []
    if answer.status == "partial":
        why = f" {escape_markdown(_end(answer.abstain_reason))}" if answer.abstain_reason else ""
        lines.append(f"*Partial answer: the evidence found covers only part of the question.*{why}\n")
    body = []
    for s in answer.sentences:
        marks = sorted({nums[c.doc_id] for c in s.citations})
        pages = _sentence_pages(s)
        where = f" (p. {', '.join(map(str, pages))})" if pages else ""
        grades = sorted({c.grade for c in s.citations if c.grade})
        lead = f"**Recommendation ({escape_markdown('; '.join(grades))}):** " if grades else ""
        body.append(f"{lead}{escape_markdown(s.text)} [{', '.join(map(str, marks))}]{where}")
    lines.append(" ".join(body))
    lines.append("\n**References**\n")
    for doc_id, n in nums.items():
        lines.append(f"{n}. {_md(reference_pieces(sources[doc_id], _cited_pages(answer, doc_id)))}")
    if answer.removed:
        lines.append("\n*Removed by verification:* " + "; ".join(
            f"“{escape_markdown(r.text)}” ({escape_markdown(r.reason)})" for r in answer.removed))
    return "\n".join(lines)


def to_html(answer: "Answer") -> str:
    """The answer as an HTML fragment (for notebooks). All document text is escaped."""
    status = (
        f"<p class='medrag-status'>status: <b>{html.escape(answer.status)}</b>; "
        f"support {answer.support:.2f}</p>"
    )
    if answer.status == "abstained":
        reason = html.escape(_end(clean_text(answer.abstain_reason)))
        return f"<div class='medrag-answer'>{status}<b>No answer.</b> {reason}</div>"
    nums = _numbering(answer)
    sources = {p.chunk.doc_id: p.source for p in answer.passages}
    sents = []
    for s in answer.sentences:
        marks = ", ".join(
            f"<sup title=\"{html.escape(clean_text(c.quote), quote=True)}\">{nums[c.doc_id]}</sup>" for c in s.citations
        )
        grades = sorted({c.grade for c in s.citations if c.grade})
        lead = f"<b>Recommendation ({html.escape(clean_text('; '.join(grades)))}):</b> " if grades else ""
        sents.append(f"{lead}{html.escape(clean_text(s.text))} {marks}")
    refs = "".join(f"<li>{_html(reference_pieces(sources[d], _cited_pages(answer, d)))}</li>" for d in nums)
    partial = ""
    if answer.status == "partial":
        why = f" {html.escape(_end(clean_text(answer.abstain_reason)))}" if answer.abstain_reason else ""
        partial = f"<p><i>Partial answer: the evidence found covers only part of the question.{why}</i></p>"
    return f"<div class='medrag-answer'>{status}{partial}<p>{' '.join(sents)}</p><ol>{refs}</ol></div>"
