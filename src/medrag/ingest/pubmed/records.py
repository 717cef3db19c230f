"""One PubMed record element into a :class:`~medrag.types.Document` (``<PubmedArticle>``,
``<PubmedBookArticle>``) or :class:`~medrag.types.Deletion` events (``<DeleteCitation>``).

PMIDs are positive integers of at most 9 digits; a record (or a ``<DeleteCitation>``
entry) with anything else is an ``IngestError`` for that record."""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from ...errors import IngestError
from ...types import (
    RETRACTION_REF_TYPES,
    Chemical,
    CommentCorrection,
    Deletion,
    Document,
    Journal,
    PubDate,
    PublicationType,
    PubmedMetadata,
    SourceFile,
)
from .._common import IngestReport, OnError, bad_pmid_reason, handle, valid_pmid
from .fields import _article_ids, _authors, _comments, _date, _int_or_none, _mesh, _pub_types
from .sections import _TextBuilder
from .text import _opt, _text

_RETRACTED_PUBTYPE = "Retracted Publication"


def _parse_article(el: etree._Element, source: SourceFile, notes: list[str]) -> Document:
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
    if not valid_pmid(pmid):
        raise ValueError(bad_pmid_reason(pmid))
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
            article_date = _date(c, notes, "ArticleDate")
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
                        pub_date = _date(ic, notes, "PubDate") or PubDate()
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


def _parse_book(el: etree._Element, source: SourceFile, notes: list[str]) -> Document:
    doc = el.find("BookDocument")
    if doc is None:
        raise ValueError("no <BookDocument>")
    pmid_el = doc.find("PMID")
    pmid = _text(pmid_el)
    if not valid_pmid(pmid):
        raise ValueError(bad_pmid_reason(pmid))
    book = doc.find("Book")
    book_title = _opt(book.find("BookTitle")) if book is not None else None

    body = _TextBuilder()
    abstract = doc.find("Abstract")
    body.add_abstract(abstract, "abstract", None)
    sections_el = doc.find("Sections")
    if sections_el is not None:
        _add_book_sections(sections_el, body, ())
    text, sections = body.build()

    pub_date = (_date(book.find("PubDate"), notes, "PubDate") if book is not None else None) or PubDate()
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


def _record_pmid(el: etree._Element) -> str | None:
    """The PMID of a record, when it has a valid one (for error messages)."""
    pmid = _text(el.find("MedlineCitation/PMID")) or _text(el.find("BookDocument/PMID"))
    return pmid if valid_pmid(pmid) else None


def _deletions(
    el: etree._Element, src: SourceFile, position: int, on_error: OnError, report: IngestReport
) -> Iterator[Deletion]:
    for p in el.iterchildren("PMID"):
        pmid = _text(p)
        if not pmid:
            continue
        if not valid_pmid(pmid):
            handle(
                IngestError(f"<DeleteCitation>: {bad_pmid_reason(pmid)}", source=src.path, position=position),
                on_error,
                report,
            )
            continue
        yield Deletion(pmid=pmid, source=src, version=_int_or_none(p.get("Version")) or 1)
