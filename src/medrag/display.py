"""Notebook views and table exports of medrag objects.

Rich displays (``_repr_html_`` / ``_repr_markdown_``, which Jupyter calls) for search
results, a :class:`~medrag.types.Passage`, a :class:`~medrag.types.Document`, an
:class:`~medrag.ingest.IngestReport` and an :class:`~medrag.Index`: a summary first,
details folded (``<details>``), working PubMed and DOI links, pages. Answers render in
:mod:`medrag.answer.render`; their evidence table is :func:`answer_records`.

Everything shown comes from documents, which are untrusted: all text is escaped for
the output format (HTML entities; Markdown backslash escapes) and links are made only
from values that are what they claim (a PMID of 1-9 digits, a ``10.x/...`` DOI), with
the same rules and helpers as :mod:`medrag.answer.render`.

Tables: :func:`passage_records` / :func:`answer_records` give plain dicts (one per
passage; one per cited quote); ``to_pandas`` turns them into a DataFrame when pandas is
installed (``pip install 'medrag[notebook]'``); pandas is never imported otherwise.

This module imports nothing from :mod:`medrag.types` or :mod:`medrag.index` at run time
(they call it lazily), so there is no import circle.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

# one set of escaping and link rules for everything medrag shows (answer.render's)
from .answer.render import _PMID, _doi_link, clean_text, escape_markdown
from .errors import MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from .index import Index
    from .ingest import IngestReport
    from .types import Answer, Document, Passage

__all__ = [
    "SearchResults",
    "passage_records",
    "answer_records",
    "records_to_pandas",
    "passages_html",
    "passages_markdown",
    "passage_html",
    "passage_markdown",
    "document_html",
    "document_markdown",
    "report_html",
    "report_markdown",
    "index_html",
    "index_markdown",
    "pubmed_url",
]

#: Characters of passage text shown before the fold.
PREVIEW_CHARS = 160
#: Sections of a document listed before "... n more".
MAX_SECTIONS = 40

PASSAGE_COLUMNS = (
    "rank", "score", "bm25", "dense", "chunk_id", "doc_id", "kind", "pmid", "doi", "title",
    "journal", "year", "section", "pages", "retracted", "url", "text",
)
ANSWER_COLUMNS = (
    "sentence", "text", "sentence_support", "ref", "doc_id", "chunk_id", "pmid", "doi", "section",
    "page", "pages", "start", "end", "quote", "support", "status", "url",
)


def _e(text: Any) -> str:
    """HTML-escaped, control and bidi characters removed."""
    return html.escape(clean_text(str(text)) if text is not None else "", quote=True)


def pubmed_url(pmid: str | None) -> str | None:
    """``https://pubmed.ncbi.nlm.nih.gov/<pmid>/`` for a valid PMID, else None."""
    return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" if pmid and _PMID.fullmatch(pmid) else None


def _pages_text(pages: Sequence[int]) -> str:
    if not pages:
        return ""
    pages = sorted(set(pages))
    if len(pages) == 1:
        return f"p. {pages[0]}"
    if pages == list(range(pages[0], pages[-1] + 1)):
        return f"pp. {pages[0]}-{pages[-1]}"
    return "pp. " + ", ".join(map(str, pages))


def _score(v: float | None) -> str:
    return "" if v is None else f"{v:.4g}"


def _preview(text: str) -> str:
    t = clean_text(text)
    return t if len(t) <= PREVIEW_CHARS else t[: PREVIEW_CHARS - 1].rstrip() + "…"


def _md_cell(text: str) -> str:
    """Escaped Markdown safe inside a table cell (no newline; pipes escaped)."""
    return escape_markdown(text)


# ------------------------------------------------------------------------ records


def passage_records(passages: Iterable["Passage"]) -> list[dict[str, Any]]:
    """One dict per passage, columns :data:`PASSAGE_COLUMNS` (scores of a retriever
    that did not score it are None; ``pages`` a list)."""
    out = []
    for p in passages:
        src, ch = p.source, p.chunk
        out.append({
            "rank": p.rank, "score": p.score, "bm25": p.scores.get("bm25"), "dense": p.scores.get("dense"),
            "chunk_id": ch.id, "doc_id": ch.doc_id, "kind": src.kind, "pmid": src.pmid, "doi": src.doi,
            "title": src.title, "journal": src.journal, "year": src.year, "section": ch.section,
            "pages": list(ch.pages), "retracted": src.retracted, "url": pubmed_url(src.pmid) or src.url,
            "text": ch.text,
        })
    return out


def answer_records(answer: "Answer") -> list[dict[str, Any]]:
    """The evidence table of an answer: one dict per (sentence, citation), columns
    :data:`ANSWER_COLUMNS`. ``ref`` is the reference number the rendered answer shows;
    ``start``/``end`` the quote's character span in its document. An abstention has no
    rows."""
    refs: dict[str, int] = {}
    rows = []
    for i, s in enumerate(answer.sentences, start=1):
        for c in s.citations:
            n = refs.setdefault(c.doc_id, len(refs) + 1)
            rows.append({
                "sentence": i, "text": s.text, "sentence_support": s.support, "ref": n,
                "doc_id": c.doc_id, "chunk_id": c.chunk_id, "pmid": c.pmid, "doi": c.doi,
                "section": c.section, "page": c.page, "pages": list(c.pages or ((c.page,) if c.page else ())),
                "start": c.start, "end": c.end, "quote": c.quote, "support": c.support,
                "status": answer.status, "url": pubmed_url(c.pmid),
            })
    return rows


def records_to_pandas(records: list[dict[str, Any]], columns: Sequence[str]) -> Any:
    """A pandas DataFrame of ``records`` with ``columns`` in that order."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise MissingDependencyError("pandas", "notebook", "to_pandas()") from exc
    return pd.DataFrame.from_records(records, columns=list(columns))


class SearchResults(list):
    """The passages a search returned, best first: a plain ``list`` of
    :class:`~medrag.types.Passage` that also knows its query and mode, shows itself as
    a table in a notebook, and exports with :meth:`to_records` / :meth:`to_pandas`."""

    def __init__(self, passages: Iterable["Passage"] = (), *, query: str = "", mode: str = "") -> None:
        super().__init__(passages)
        self.query = query
        self.mode = mode

    def to_records(self) -> list[dict[str, Any]]:
        return passage_records(self)

    def to_pandas(self) -> Any:
        return records_to_pandas(passage_records(self), PASSAGE_COLUMNS)

    def _repr_html_(self) -> str:
        return passages_html(self, query=self.query, mode=self.mode)

    def _repr_markdown_(self) -> str:
        return passages_markdown(self, query=self.query, mode=self.mode)


# ------------------------------------------------------------------------ passages


def _links(pmid: str | None, doi: str | None) -> list[tuple[str, str, str | None]]:
    """(label, text, link) for a PMID and a DOI; a link only when the value is valid."""
    out: list[tuple[str, str, str | None]] = []
    if pmid:
        out.append(("PMID", pmid, pubmed_url(pmid)))
    if doi:
        linked = [(t, h) for t, h in _doi_link(doi) if h]
        out.append(("doi", *(linked[0] if linked else (clean_text(doi), None))))
    return out


def _link_html(text: str, href: str | None) -> str:
    return f'<a href="{html.escape(href, quote=True)}">{_e(text)}</a>' if href else _e(text)


def _link_md(text: str, href: str | None) -> str:
    return f"[{escape_markdown(text)}](<{href}>)" if href else escape_markdown(text)


def _source_html(p: "Passage") -> str:
    src = p.source
    head = _link_html(src.title or "(untitled)", pubmed_url(src.pmid))
    meta = [_e(x) for x in (src.journal or src.organization, src.year) if x]
    meta += [f"{label} {_link_html(t, h)}" for label, t, h in _links(src.pmid, src.doi)]
    if src.kind == "guideline" and src.file:
        meta.append(_e(src.file))
    flag = " <b>RETRACTED</b>" if src.retracted else ""
    return f"{head}<br><small>{' · '.join(meta)}</small>{flag}"


def _source_md(p: "Passage") -> str:
    src = p.source
    parts = [_link_md(src.title or "(untitled)", pubmed_url(src.pmid))]
    parts += [escape_markdown(str(x)) for x in (src.journal or src.organization, src.year) if x]
    parts += [f"{label} {_link_md(t, h)}" for label, t, h in _links(src.pmid, src.doi)]
    if src.kind == "guideline" and src.file:
        parts.append(escape_markdown(src.file))
    return " · ".join(parts) + (" **RETRACTED**" if src.retracted else "")


def passage_html(p: "Passage") -> str:
    """One passage: rank, scores, source with links, section and pages; text folded."""
    scores = ", ".join(f"{_e(k)} {_score(v)}" for k, v in sorted(p.scores.items()))
    where = " · ".join(_e(x) for x in (p.chunk.section, _pages_text(p.chunk.pages)) if x)
    return (
        f"<div class='medrag-passage'><b>#{p.rank}</b> score {_score(p.score)}"
        f"{' (' + scores + ')' if scores else ''} · {_source_html(p)}"
        f"{'<br>' + where if where else ''}"
        f"<details><summary>{_e(_preview(p.chunk.text))}</summary><p>{_e(p.chunk.text)}</p>"
        f"<small>{_e(p.chunk.id)}</small></details></div>"
    )


def passage_markdown(p: "Passage") -> str:
    scores = ", ".join(f"{escape_markdown(k)} {_score(v)}" for k, v in sorted(p.scores.items()))
    where = " · ".join(escape_markdown(x) for x in (p.chunk.section, _pages_text(p.chunk.pages)) if x)
    return (
        f"**#{p.rank}** score {_score(p.score)}{' (' + scores + ')' if scores else ''} · {_source_md(p)}"
        f"{' · ' + where if where else ''}\n\n> {escape_markdown(p.chunk.text)}"
    )


def _results_head(passages: Sequence["Passage"], query: str, mode: str, esc: Any, quote: str, bold: str) -> str:
    """"5 passage(s) from 3 document(s) for <query> (mode)", escaped with ``esc``."""
    q = f" for {quote[0]}{esc(query)}{quote[1]}" if query else ""
    m = f" ({esc(mode)})" if mode else ""
    n_docs = len({p.chunk.doc_id for p in passages})
    return f"{bold[0]}{len(passages)} passage(s){bold[1]} from {n_docs} document(s){q}{m}"


def passages_html(passages: Sequence["Passage"], *, query: str = "", mode: str = "") -> str:
    """A table of passages: one summary row each, the text folded below it."""
    head = f"<p>{_results_head(passages, query, mode, _e, ('<q>', '</q>'), ('<b>', '</b>'))}</p>"
    if not passages:
        return f"<div class='medrag-results'>{head}</div>"
    rows = []
    for p in passages:
        rows.append(
            "<tr>"
            f"<td>{p.rank}</td><td>{_score(p.score)}</td><td>{_score(p.scores.get('bm25'))}</td>"
            f"<td>{_score(p.scores.get('dense'))}</td><td style='text-align:left'>{_source_html(p)}</td>"
            f"<td>{_e(p.chunk.section or '')}</td><td>{_e(_pages_text(p.chunk.pages))}</td>"
            "</tr>"
            f"<tr><td></td><td colspan='6' style='text-align:left'><details><summary>{_e(_preview(p.chunk.text))}</summary>"
            f"<p>{_e(p.chunk.text)}</p><small>{_e(p.chunk.id)}</small></details></td></tr>"
        )
    return (
        f"<div class='medrag-results'>{head}<table><thead><tr><th>#</th><th>score</th><th>bm25</th>"
        f"<th>dense</th><th>source</th><th>section</th><th>page</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def passages_markdown(passages: Sequence["Passage"], *, query: str = "", mode: str = "") -> str:
    lines = [_results_head(passages, query, mode, escape_markdown, ("“", "”"), ("**", "**")), ""]
    if passages:
        lines += ["| # | score | bm25 | dense | source | section | page |", "|---|---|---|---|---|---|---|"]
        for p in passages:
            lines.append(
                f"| {p.rank} | {_score(p.score)} | {_score(p.scores.get('bm25'))} | {_score(p.scores.get('dense'))} "
                f"| {_source_md(p)} | {_md_cell(p.chunk.section or '')} | {_md_cell(_pages_text(p.chunk.pages))} |"
            )
    return "\n".join(lines)


# ------------------------------------------------------------------------ documents


def _doc_summary(doc: "Document") -> list[tuple[str, str, str | None]]:
    """(label, value, link) rows of a document's summary."""
    rows: list[tuple[str, str, str | None]] = [("id", doc.id, None), ("kind", doc.kind, None)]
    if doc.year is not None:
        rows.append(("year", str(doc.year), None))
    p, g = doc.pubmed, doc.guideline
    if p:
        rows += _links(p.pmid, p.doi)
        journal = p.journal.iso_abbreviation or p.journal.title
        if journal:
            rows.append(("journal", journal, None))
        if p.authors:
            names = ", ".join(a.display_name for a in p.authors[:6]) + (", et al." if len(p.authors) > 6 else "")
            rows.append(("authors", names, None))
        if p.publication_types:
            rows.append(("publication types", "; ".join(t.name for t in p.publication_types), None))
    if g:
        if g.organization:
            rows.append(("organization", g.organization, None))
        rows.append(("pages", str(g.page_count), None))
        if g.recommendations:
            rows.append(("recommendations", str(len(g.recommendations)), None))
    rows.append(("sections", str(len(doc.sections)), None))
    rows.append(("characters", f"{len(doc.text):,}", None))
    rows.append(("file", doc.source.path, None))
    if doc.retracted:
        rows.append(("RETRACTED", "yes", None))
    return rows


def _doc_pages(doc: "Document", start: int) -> str:
    page = doc.page_at(start)
    return f"p. {page}" if page else ""


def document_html(doc: "Document") -> str:
    """A document: title and summary table first; sections, recommendations and the
    text folded."""
    rows = "".join(
        f"<tr><th style='text-align:left'>{_e(k)}</th><td style='text-align:left'>"
        + _link_html(v, h) + "</td></tr>"
        for k, v, h in _doc_summary(doc)
    )
    secs = []
    for s in doc.sections[:MAX_SECTIONS]:
        label = " › ".join(s.path) if s.path else (s.label or s.kind)
        where = _doc_pages(doc, s.start)
        secs.append(f"<li><b>{_e(label)}</b> <small>{_e(s.kind)}{' · ' + where if where else ''}</small>: "
                    f"{_e(_preview(doc.text[s.start:s.end]))}</li>")
    more = f"<li>… {len(doc.sections) - MAX_SECTIONS} more</li>" if len(doc.sections) > MAX_SECTIONS else ""
    recs = ""
    if doc.guideline and doc.guideline.recommendations:
        items = "".join(
            f"<li>{_e(r.text)} <small>{_e(r.grade or r.strength or 'ungraded')} · p. {r.page}</small></li>"
            for r in doc.guideline.recommendations
        )
        recs = f"<details><summary>{len(doc.guideline.recommendations)} recommendation(s)</summary><ol>{items}</ol></details>"
    return (
        f"<div class='medrag-document'><p><b>{_e(doc.title or '(untitled)')}</b></p><table>{rows}</table>"
        f"<details><summary>{len(doc.sections)} section(s)</summary><ul>{''.join(secs)}{more}</ul></details>"
        f"{recs}<details><summary>text</summary><p>{_e(doc.text)}</p></details></div>"
    )


def document_markdown(doc: "Document") -> str:
    lines = [f"**{escape_markdown(doc.title or '(untitled)')}**", ""]
    for k, v, h in _doc_summary(doc):
        lines.append(f"- {escape_markdown(k)}: {_link_md(v, h)}")
    lines.append("")
    for s in doc.sections[:MAX_SECTIONS]:
        label = " › ".join(s.path) if s.path else (s.label or s.kind)
        where = _doc_pages(doc, s.start)
        lines.append(f"- **{escape_markdown(label)}**{' (' + where + ')' if where else ''}: "
                     f"{escape_markdown(_preview(doc.text[s.start:s.end]))}")
    if len(doc.sections) > MAX_SECTIONS:
        lines.append(f"- … {len(doc.sections) - MAX_SECTIONS} more")
    return "\n".join(lines)


# ------------------------------------------------------------------------ ingest report


def report_html(report: "IngestReport") -> str:
    """What an ingestion run read: counts first; skipped records and deletions folded."""
    head = (f"<p><b>{report.files} file(s), {report.documents} document(s)</b>, "
            f"{len(report.skipped)} skipped, {len(report.deletions)} deletion(s)</p>")
    parts = [head]
    if report.skipped:
        rows = "".join(
            f"<tr><td>{_e(s.source)}</td><td>{_e(s.record_id or '')}</td>"
            f"<td>{'' if s.position is None else s.position}</td><td style='text-align:left'>{_e(s.reason)}</td></tr>"
            for s in report.skipped
        )
        parts.append(f"<details><summary>{len(report.skipped)} skipped</summary><table><thead><tr><th>file</th>"
                     f"<th>record</th><th>position</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table></details>")
    if report.deletions:
        items = ", ".join(_link_html(d.pmid, pubmed_url(d.pmid)) for d in report.deletions)
        parts.append(f"<details><summary>{len(report.deletions)} deletion(s) (&lt;DeleteCitation&gt;)</summary>"
                     f"<p>{items}</p></details>")
    return f"<div class='medrag-report'>{''.join(parts)}</div>"


def report_markdown(report: "IngestReport") -> str:
    lines = [f"**{report.files} file(s), {report.documents} document(s)**, {len(report.skipped)} skipped, "
             f"{len(report.deletions)} deletion(s)"]
    for s in report.skipped:
        rec = f", record {escape_markdown(s.record_id)}" if s.record_id else ""
        lines.append(f"- skipped: {escape_markdown(s.source)}{rec}: {escape_markdown(s.reason)}")
    if report.deletions:
        lines.append("- deleted PMIDs: " + ", ".join(escape_markdown(d.pmid) for d in report.deletions))
    return "\n".join(lines)


# ------------------------------------------------------------------------ index


def _index_summary(index: "Index") -> list[tuple[str, str]]:
    m = index.manifest
    dense = m.get("dense") or {}
    enc = dense.get("encoder") or {}
    cfg = index.config
    rows = [
        ("id", index.id),
        ("documents", f"{index.n_documents:,}"),
        ("chunks", f"{len(index):,}"),
        ("retrieval", "hybrid (BM25 + dense)" if index.encoder is not None or dense else "lexical (BM25)"),
    ]
    model = enc.get("model") or (index.encoder.describe().get("model") if index.encoder is not None else None)
    if model:
        rows.append(("dense model", str(model)))
    if index.encoder is not None or dense:
        f = cfg.fusion
        rows.append(("fusion", f"{f.method} (bm25 {f.bm25_weight}, dense {f.dense_weight})"))
    rows.append(("chunking", f"{cfg.chunking.max_tokens} tokens"))
    if m.get("library_version"):
        rows.append(("built by medrag", str(m["library_version"])))
    if m.get("created"):
        rows.append(("created", str(m["created"])))
    return rows


def index_html(index: "Index") -> str:
    """An index: size, retrieval mode, model and fusion first; the manifest folded."""
    import json

    rows = "".join(f"<tr><th style='text-align:left'>{_e(k)}</th><td style='text-align:left'>{_e(v)}</td></tr>"
                   for k, v in _index_summary(index))
    manifest = index.manifest
    detail = (f"<details><summary>manifest</summary><pre>{html.escape(json.dumps(manifest, indent=1, ensure_ascii=False)[:20000])}</pre></details>"
              if manifest else "<p><small>not saved yet</small></p>")
    return f"<div class='medrag-index'><p><b>medrag index</b></p><table>{rows}</table>{detail}</div>"


def index_markdown(index: "Index") -> str:
    return "\n".join(["**medrag index**", ""] + [f"- {escape_markdown(k)}: {escape_markdown(v)}"
                                                  for k, v in _index_summary(index)])
