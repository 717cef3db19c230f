"""Stream PubMed XML (baseline, update and E-utilities ``efetch`` files) into Documents.

Memory stays constant however large the file: :func:`lxml.etree.iterparse` reports each
``<PubmedArticle>``, ``<PubmedBookArticle>`` and ``<DeleteCitation>`` when it closes, and
the element is cleared (with its already-processed siblings) right after.

Security: the parser never loads a DTD, never touches the network and never resolves
entities other than XML's five predefined ones; a document type with an internal
subset that declares entities (an "entity-expansion bomb", an external entity pointing
at a local file) is refused before any record is read.

Text: titles and abstracts are flattened with ``itertext()`` so that nothing after an
inline ``<i>``, ``<sup>``, ``<sub>`` or ``<b>`` is lost; MathML is flattened to readable
text (``<msub><mi>T</mi><mn>1</mn></msub>`` becomes ``T1``); whitespace runs collapse to
one space.
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from lxml import etree

from ..errors import IngestError
from ..types import (
    RETRACTION_REF_TYPES,
    Author,
    Chemical,
    CommentCorrection,
    Deletion,
    Document,
    Journal,
    MeshHeading,
    MeshQualifier,
    PubDate,
    PublicationType,
    PubmedMetadata,
    Section,
    SourceFile,
)
from ._common import (
    IngestReport,
    OnError,
    PathLike,
    check_on_error,
    expand_paths,
    handle,
    sha256_file,
)

__all__ = ["iter_pubmed", "iter_pubmed_events", "SECTION_SEPARATOR"]

logger = logging.getLogger(__name__)

#: What joins two sections in :attr:`Document.text`.
SECTION_SEPARATOR = "\n\n"

_MATHML_NS = "{http://www.w3.org/1998/Math/MathML}"
_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")
_ROOT_TAGS = ("PubmedArticleSet", "PubmedArticle", "PubmedBookArticle")
_RETRACTED_PUBTYPE = "Retracted Publication"
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
        start=1,
    )
}
_YEAR_RE = re.compile(r"(?<!\d)(1[6-9]\d\d|20\d\d)(?!\d)")
_ENTITY_DECL_RE = re.compile(rb"<!ENTITY", re.IGNORECASE)
_HEAD_BYTES = 64 * 1024
_ENTITY_REFUSAL = (
    "the document type declares entities (possible entity-expansion bomb or "
    "external entity); refused"
)


# --------------------------------------------------------------------------- text


def _norm(s: str) -> str:
    return " ".join(s.split())


def _math_text(el: etree._Element) -> str:
    # Inside MathML, whitespace between elements is layout, not content.
    parts: list[str] = []
    for node in el.iter():
        if node.text and node.text.strip():
            parts.append(node.text.strip())
    return "".join(parts)


def _collect(el: etree._Element, parts: list[str]) -> None:
    if el.text:
        parts.append(el.text)
    for child in el:
        if isinstance(child.tag, str) and child.tag.startswith(_MATHML_NS):
            parts.append(_math_text(child))
        elif isinstance(child.tag, str):
            _collect(child, parts)
        if child.tail:
            parts.append(child.tail)


def _text(el: etree._Element | None) -> str:
    """All text under ``el``, inline markup and MathML flattened, whitespace folded."""
    if el is None:
        return ""
    if len(el) == 0:
        return _norm(el.text or "")
    parts: list[str] = []
    _collect(el, parts)
    return _norm("".join(parts))


def _opt(el: etree._Element | None) -> str | None:
    t = _text(el)
    return t or None


# --------------------------------------------------------------------------- fields


def _int_or_none(s: str | None) -> int | None:
    if s is None:
        return None
    s = s.strip()
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses (and
    # int() refuses more than 4300 digits); a number that long is no PubMed value.
    return int(s) if s.isascii() and s.isdigit() and len(s) <= 18 else None


def _year_or_none(s: str | None) -> int | None:
    """A year of at most four digits, else None (an index keeps years as int32)."""
    y = _int_or_none(s)
    return y if y is not None and 0 < y <= 9999 else None


def _month(s: str | None) -> int | None:
    if not s:
        return None
    s = s.strip()
    if s.isdigit():
        m = int(s)
        return m if 1 <= m <= 12 else None
    return _MONTHS.get(s[:3].lower())


def _date(el: etree._Element | None) -> PubDate | None:
    if el is None:
        return None
    year_el = el.find("Year")
    if year_el is not None:
        return PubDate(
            year=_year_or_none(year_el.text),
            month=_month(el.findtext("Month")),
            day=_int_or_none(el.findtext("Day")),
            raw=_opt(el.find("Season")),
        )
    raw = _opt(el.find("MedlineDate"))
    if raw is None:
        return PubDate()
    m = _YEAR_RE.search(raw)
    return PubDate(year=int(m.group(1)) if m else None, raw=raw)


def _authors(author_list: etree._Element | None) -> tuple[Author, ...]:
    if author_list is None:
        return ()
    out = []
    for a in author_list.iterchildren("Author"):
        if a.get("ValidYN") == "N":
            continue
        fields: dict[str, str | None] = {}
        affiliations: list[str] = []
        for c in a:
            tag = c.tag
            if tag == "AffiliationInfo":
                for x in c.iterchildren("Affiliation"):
                    t = _text(x)
                    if t:
                        affiliations.append(t)
            elif tag == "Identifier":
                if (c.get("Source") or "").upper() == "ORCID":
                    fields["orcid"] = _opt(c)
            elif tag in _AUTHOR_FIELDS:
                fields[_AUTHOR_FIELDS[tag]] = _opt(c)
        out.append(Author(affiliations=tuple(affiliations), **fields))
    return tuple(out)


_AUTHOR_FIELDS = {
    "LastName": "last_name",
    "ForeName": "fore_name",
    "Initials": "initials",
    "CollectiveName": "collective",
}


def _mesh(mesh_list: etree._Element | None) -> tuple[MeshHeading, ...]:
    if mesh_list is None:
        return ()
    out = []
    for mh in mesh_list:
        desc = None
        quals = []
        for c in mh:
            tag = c.tag
            if tag == "DescriptorName":
                desc = c
            elif tag == "QualifierName":
                quals.append(MeshQualifier(_text(c), c.get("UI"), c.get("MajorTopicYN") == "Y"))
        if desc is not None:
            out.append(
                MeshHeading(_text(desc), desc.get("UI"), desc.get("MajorTopicYN") == "Y", tuple(quals))
            )
    return tuple(out)


def _pub_types(parent: etree._Element | None) -> tuple[PublicationType, ...]:
    if parent is None:
        return ()
    return tuple(
        PublicationType(name=_text(p), ui=p.get("UI"))
        for p in parent.findall("PublicationTypeList/PublicationType")
    )


def _comments(citation: etree._Element) -> tuple[CommentCorrection, ...]:
    return tuple(
        CommentCorrection(
            ref_type=c.get("RefType") or "",
            ref_source=_opt(c.find("RefSource")),
            pmid=_opt(c.find("PMID")),
            note=_opt(c.find("Note")),
        )
        for c in citation.findall("CommentsCorrectionsList/CommentsCorrections")
    )


def _article_ids(record: etree._Element, data_path: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    for a in record.findall(f"{data_path}/ArticleIdList/ArticleId"):
        kind = a.get("IdType")
        val = _text(a)
        if kind and val and kind not in ids:
            ids[kind] = val
    return ids


class _TextBuilder:
    """Accumulates section texts into one string and records their spans."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.sections: list[Section] = []
        self.length = 0

    def add(self, text: str, **section_fields: object) -> None:
        if not text:
            return
        if self.parts:
            self.parts.append(SECTION_SEPARATOR)
            self.length += len(SECTION_SEPARATOR)
        start = self.length
        self.parts.append(text)
        self.length += len(text)
        self.sections.append(Section(start=start, end=self.length, **section_fields))  # type: ignore[arg-type]

    def add_abstract(self, abstract: etree._Element | None, kind: str, language: str | None) -> None:
        if abstract is None:
            return
        for at in abstract.findall("AbstractText"):
            label = at.get("Label") or None
            # An empty section whose label carries the content ("LEVEL OF EVIDENCE: 4")
            # keeps the label as its text rather than vanish.
            self.add(
                _text(at) or (label or ""),
                kind=kind,
                label=label,
                category=at.get("NlmCategory") or None,
                language=language,
            )

    def build(self) -> tuple[str, tuple[Section, ...]]:
        return "".join(self.parts), tuple(self.sections)


def _parse_article(el: etree._Element, source: SourceFile) -> Document:
    # One pass over the children of each level, dispatching on the tag: several
    # times faster than a find() per field on a record of ~150 elements.
    citation = pubmed_data = None
    for c in el:
        if c.tag == "MedlineCitation":
            citation = c
        elif c.tag == "PubmedData":
            pubmed_data = c
    if citation is None:
        raise ValueError("no <MedlineCitation>")
    pmid_el = article = mesh_list = chem_list = None
    keywords: list[str] = []
    other_abstracts: list[etree._Element] = []
    comments: tuple[CommentCorrection, ...] = ()
    for c in citation:
        tag = c.tag
        if tag == "PMID":
            pmid_el = c
        elif tag == "Article":
            article = c
        elif tag == "MeshHeadingList":
            mesh_list = c
        elif tag == "ChemicalList":
            chem_list = c
        elif tag == "CommentsCorrectionsList":
            comments = _comments(citation)
        elif tag == "KeywordList":
            keywords.extend(t for t in (_text(k) for k in c) if t)
        elif tag == "OtherAbstract":
            other_abstracts.append(c)
    pmid = _text(pmid_el)
    if not pmid:
        raise ValueError("record has no PMID")
    if article is None:
        raise ValueError("no <Article>")

    journal_el = abstract = title_el = vernacular_el = author_list = pagination = None
    article_date = None
    languages: list[str] = []
    doi = None
    pub_types: tuple[PublicationType, ...] = ()
    for c in article:
        tag = c.tag
        if tag == "Journal":
            journal_el = c
        elif tag == "ArticleTitle":
            title_el = c
        elif tag == "Abstract":
            abstract = c
        elif tag == "AuthorList":
            author_list = c
        elif tag == "Pagination":
            pagination = c
        elif tag == "ELocationID":
            if doi is None and c.get("EIdType") == "doi" and c.get("ValidYN", "Y") == "Y":
                doi = _opt(c)
        elif tag == "Language":
            t = _text(c)
            if t:
                languages.append(t)
        elif tag == "PublicationTypeList":
            pub_types = tuple(PublicationType(_text(p), p.get("UI")) for p in c)
        elif tag == "ArticleDate":
            article_date = _date(c)
        elif tag == "VernacularTitle":
            vernacular_el = c

    body = _TextBuilder()
    body.add_abstract(abstract, "abstract", None)
    for other in other_abstracts:
        lang = other.get("Language")
        body.add_abstract(other, "other_abstract", lang if lang and lang != "eng" else None)
    text, sections = body.build()

    journal = Journal()
    pub_date = PubDate()
    if journal_el is not None:
        jf: dict[str, str | None] = {}
        for c in journal_el:
            tag = c.tag
            if tag == "JournalIssue":
                for ic in c:
                    if ic.tag == "Volume":
                        jf["volume"] = _opt(ic)
                    elif ic.tag == "Issue":
                        jf["issue"] = _opt(ic)
                    elif ic.tag == "PubDate":
                        pub_date = _date(ic) or PubDate()
            elif tag == "Title":
                jf["title"] = _opt(c)
            elif tag == "ISOAbbreviation":
                jf["iso_abbreviation"] = _opt(c)
            elif tag == "ISSN":
                jf["issn"] = _opt(c)
        journal = Journal(**jf)

    pages = None
    if pagination is not None:
        pages = _opt(pagination.find("MedlinePgn"))
        if pages is None:
            sp, ep = _opt(pagination.find("StartPage")), _opt(pagination.find("EndPage"))
            if sp:
                pages = f"{sp}-{ep}" if ep else sp

    ids: dict[str, str] = {}
    if pubmed_data is not None:
        id_list = pubmed_data.find("ArticleIdList")
        if id_list is not None:
            for a in id_list:
                kind = a.get("IdType")
                if kind and kind not in ids:
                    val = _text(a)
                    if val:
                        ids[kind] = val
    doi = doi or ids.get("doi")

    retracted = any(c.ref_type in RETRACTION_REF_TYPES for c in comments) or any(
        p.name == _RETRACTED_PUBTYPE for p in pub_types
    )
    chemicals: tuple[Chemical, ...] = ()
    if chem_list is not None:
        chems = []
        for c in chem_list:
            name_el = c.find("NameOfSubstance")
            chems.append(
                Chemical(
                    _text(name_el),
                    name_el.get("UI") if name_el is not None else None,
                    _opt(c.find("RegistryNumber")),
                )
            )
        chemicals = tuple(chems)
    year = pub_date.year or (article_date.year if article_date else None)
    vernacular_title = _opt(vernacular_el)

    meta = PubmedMetadata(
        pmid=pmid,
        pmid_version=_int_or_none(pmid_el.get("Version")) or 1,
        vernacular_title=vernacular_title,
        journal=journal,
        pages=pages,
        pub_date=pub_date,
        article_date=article_date,
        languages=tuple(languages),
        doi=doi,
        pmc_id=ids.get("pmc"),
        authors=_authors(author_list),
        mesh=_mesh(mesh_list),
        keywords=tuple(keywords),
        chemicals=chemicals,
        publication_types=pub_types,
        comments_corrections=comments,
        copyright=_opt(abstract.find("CopyrightInformation")) if abstract is not None else None,
        status=citation.get("Status"),
    )
    return Document(
        id=f"pmid:{pmid}",
        kind="pubmed",
        title=_text(title_el) or (vernacular_title or ""),
        text=text,
        sections=sections,
        source=source,
        year=year,
        retracted=retracted,
        pubmed=meta,
    )


def _add_book_sections(parent: etree._Element, body: _TextBuilder, path: tuple[str, ...]) -> None:
    for sec in parent.findall("Section"):
        title = _text(sec.find("SectionTitle"))
        sub_path = path + ((title,) if title else ())
        body.add(title, kind="body", label=title or None, path=sub_path)
        _add_book_sections(sec, body, sub_path)


def _parse_book(el: etree._Element, source: SourceFile) -> Document:
    doc = el.find("BookDocument")
    if doc is None:
        raise ValueError("no <BookDocument>")
    pmid_el = doc.find("PMID")
    pmid = _text(pmid_el)
    if not pmid:
        raise ValueError("record has no PMID")
    book = doc.find("Book")
    book_title = _opt(book.find("BookTitle")) if book is not None else None

    body = _TextBuilder()
    abstract = doc.find("Abstract")
    body.add_abstract(abstract, "abstract", None)
    sections_el = doc.find("Sections")
    if sections_el is not None:
        _add_book_sections(sections_el, body, ())
    text, sections = body.build()

    pub_date = (_date(book.find("PubDate")) if book is not None else None) or PubDate()
    ids = _article_ids(el, "PubmedBookData")
    ids.update({k: v for k, v in _article_ids(el, "BookDocument").items() if k not in ids})
    authors = _authors(doc.find("AuthorList"))
    if not authors and book is not None:
        authors = _authors(book.find("AuthorList"))
    comments = _comments(doc)
    pub_types = _pub_types(doc)
    meta = PubmedMetadata(
        pmid=pmid,
        pmid_version=_int_or_none(pmid_el.get("Version")) or 1,
        pub_date=pub_date,
        languages=tuple(t for t in (_text(x) for x in doc.findall("Language")) if t),
        doi=ids.get("doi"),
        pmc_id=ids.get("pmc"),
        authors=authors,
        keywords=tuple(t for t in (_text(k) for k in doc.findall("KeywordList/Keyword")) if t),
        publication_types=pub_types,
        comments_corrections=comments,
        copyright=_opt(abstract.find("CopyrightInformation")) if abstract is not None else None,
        book_title=book_title,
        publisher=_opt(book.find("Publisher/PublisherName")) if book is not None else None,
    )
    title = _text(doc.find("ArticleTitle")) or (book_title or "")
    return Document(
        id=f"pmid:{pmid}",
        kind="pubmed_book",
        title=title,
        text=text,
        sections=sections,
        source=source,
        year=pub_date.year,
        retracted=any(c.ref_type in RETRACTION_REF_TYPES for c in comments)
        or any(p.name == _RETRACTED_PUBTYPE for p in pub_types),
        pubmed=meta,
    )


# --------------------------------------------------------------------------- files


def _open(path: Path) -> IO[bytes]:
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _check_head(path: Path, source: str) -> None:
    """Refuse entity declarations (bombs, external entities) before parsing."""
    chunks: list[bytes] = []
    size = 0
    with _open(path) as f:
        try:
            while size < _HEAD_BYTES:
                block = f.read(4096)
                if not block:
                    break
                chunks.append(block)
                size += len(block)
        except (EOFError, OSError, zlib.error) as exc:
            # A truncated file: what was read so far is checked; the parser will
            # meet the same error later and report it with the record position.
            if not chunks:
                raise IngestError(f"unreadable or truncated file: {exc}", source=source) from exc
    head = b"".join(chunks)
    # An internal DTD subset sits inside the DOCTYPE, before the root element.
    doctype_end = head.find(b"<PubmedArticleSet")
    scope = head if doctype_end < 0 else head[:doctype_end]
    if _ENTITY_DECL_RE.search(scope):
        raise IngestError(_ENTITY_REFUSAL, source=source)


def _iter_file(
    path: Path, on_error: OnError, report: IngestReport
) -> Iterator[Document | Deletion]:
    source = str(path)
    try:
        digest = sha256_file(path)
    except OSError as exc:
        handle(IngestError(f"cannot read file: {exc}", source=source), on_error, report)
        return
    src = SourceFile(path=source, sha256=digest)
    try:
        _check_head(path, source)
    except IngestError as err:
        handle(err, on_error, report)
        return

    position = 0
    last_pmid: str | None = None
    dtd_checked = False
    f = _open(path)
    try:
        context = etree.iterparse(
            f,
            events=("end",),
            tag=_RECORD_TAGS,
            load_dtd=False,
            no_network=True,
            resolve_entities=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        try:
            for _, el in context:
                if not dtd_checked:
                    # Second line of defence behind _check_head, which a DOCTYPE longer
                    # than its byte window (or a fake root tag in a comment) slips past:
                    # the parsed internal subset itself must declare no entity.
                    dtd_checked = True
                    dtd = el.getroottree().docinfo.internalDTD
                    if dtd is not None and next(dtd.iterentities(), None) is not None:
                        handle(IngestError(_ENTITY_REFUSAL, source=source), on_error, report)
                        return
                tag = el.tag
                if tag == "DeleteCitation":
                    for p in el.findall("PMID"):
                        pmid = _text(p)
                        if pmid:
                            yield Deletion(
                                pmid=pmid,
                                source=src,
                                version=_int_or_none(p.get("Version")) or 1,
                            )
                else:
                    try:
                        if tag == "PubmedArticle":
                            doc = _parse_article(el, src)
                        else:
                            doc = _parse_book(el, src)
                    except (ValueError, TypeError, AttributeError) as exc:
                        record_id = _text(el.find("MedlineCitation/PMID")) or _text(
                            el.find("BookDocument/PMID")
                        )
                        handle(
                            IngestError(
                                str(exc), source=source, record_id=record_id or None, position=position
                            ),
                            on_error,
                            report,
                        )
                    else:
                        last_pmid = doc.pmid
                        yield doc
                    position += 1
                el.clear(keep_tail=False)
                parent = el.getparent()
                if parent is not None:
                    while el.getprevious() is not None:
                        del parent[0]
            root = context.root
            if root is None or root.tag not in _ROOT_TAGS:
                tag = "nothing" if root is None else f"<{root.tag}>"
                handle(
                    IngestError(f"not PubMed XML: the root element is {tag}", source=source),
                    on_error,
                    report,
                )
        except etree.XMLSyntaxError as exc:
            after = f" after PMID {last_pmid}" if last_pmid else ""
            handle(
                IngestError(
                    f"malformed XML{after}: {exc}", source=source, position=position
                ),
                on_error,
                report,
            )
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            after = f" after PMID {last_pmid}" if last_pmid else ""
            handle(
                IngestError(
                    f"truncated or corrupt compressed file{after}: {exc}",
                    source=source,
                    position=position,
                ),
                on_error,
                report,
            )
    finally:
        f.close()


def iter_pubmed_events(
    paths: PathLike | Iterable[PathLike],
    *,
    on_error: OnError = "raise",
    report: IngestReport | None = None,
) -> Iterator[Document | Deletion]:
    """Stream :class:`Document` and :class:`Deletion` events, in file order.

    Args:
        paths: a ``.xml`` / ``.xml.gz`` file, a directory of them, or several.
            Compression is detected from the file's first bytes, not its name.
        on_error: ``"raise"`` raises :class:`~medrag.errors.IngestError` naming the file
            and the record (PMID or 0-based position); ``"skip"`` skips the record (or
            the unreadable rest of a file), counts it in ``report.skipped`` and goes on.
        report: an :class:`IngestReport` to fill (files, documents, skipped, deletions).

    A ``<DeleteCitation>`` yields one :class:`Deletion` per withdrawn PMID, so that an
    index built from update files can apply them in order.
    """
    check_on_error(on_error)
    report = report if report is not None else IngestReport()
    for path in expand_paths(paths, suffixes=(".xml", ".xml.gz", ".gz")):
        report.files += 1
        for item in _iter_file(path, on_error, report):
            if isinstance(item, Document):
                report.documents += 1
            else:
                report.deletions.append(item)
            yield item


def iter_pubmed(
    paths: PathLike | Iterable[PathLike],
    *,
    on_error: OnError = "raise",
    report: IngestReport | None = None,
) -> Iterator[Document]:
    """Stream :class:`Document` objects from PubMed XML files (see :func:`iter_pubmed_events`).

    Deletions (``<DeleteCitation>``) are not yielded: they are collected in
    ``report.deletions``; pass a ``report`` to act on them, or use
    :func:`iter_pubmed_events`. Without a report they are logged as a warning, never
    dropped silently.
    """
    own = report is None
    report = report if report is not None else IngestReport()
    n_del = 0
    for item in iter_pubmed_events(paths, on_error=on_error, report=report):
        if isinstance(item, Document):
            yield item
        else:
            n_del += 1
    if own and n_del:
        logger.warning(
            "%d PMID(s) were withdrawn by <DeleteCitation>; pass report= to iter_pubmed "
            "or use iter_pubmed_events to apply them",
            n_del,
        )
