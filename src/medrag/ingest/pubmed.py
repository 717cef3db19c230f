"""Stream PubMed XML (baseline, update and E-utilities ``efetch`` files) into Documents.

Memory follows the record being read, never the file: the decompressed XML is fed to
an :class:`lxml.etree.XMLPullParser` 64 KiB at a time; each ``<PubmedArticle>``,
``<PubmedBookArticle>`` and ``<DeleteCitation>`` is cleared (with its already-processed
siblings) as soon as it closes, and after every read whatever finished element is not a
record (unknown elements between records, however many) is deleted too. A record over
:class:`~medrag.ingest.RecordLimits` (bytes or elements) is an ``IngestError`` for that
record, and its content is discarded as it arrives. Only regular files are read (a FIFO
or ``/dev/zero`` is refused, not waited on).

PMIDs are positive integers of at most 9 digits; a record (or a ``<DeleteCitation>``
entry) with anything else is an ``IngestError`` for that record. A date field out of
range (a Day of 0 or 32, Feb 30, a Year past 9999) is dropped from the record (``None``)
with a logged warning naming the file, the PMID and the value: the record is kept.

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

import calendar
import gzip
import logging
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from lxml import etree

from ..errors import ConfigError, IngestError
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
    RecordLimits,
    bad_pmid_reason,
    check_on_error,
    expand_paths,
    handle,
    open_regular,
    sha256_handle,
    valid_pmid,
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
#: Decompressed bytes fed to the parser at a time.
_CHUNK = 64 * 1024
#: Elements that produce parser events: the records, and the root (to find the tree).
_EVENT_TAGS = _RECORD_TAGS + ("PubmedArticleSet",)
#: A PubMed file opens its root within a few KB; past this without one, it is not PubMed.
_NO_ROOT_BYTES = 1 << 20
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


def checked_date(
    year: str | None, month: str | None, day: str | None, notes: list[str], field: str
) -> tuple[int | None, int | None, int | None]:
    """Year, month and day of a date, each ``None`` when absent or out of range (a
    year outside 1-9999, a month not 1-12 or a month name, a day outside the month);
    each value dropped adds a line to ``notes``."""
    y = _year_or_none(year)
    if year is not None and year.strip() and y is None:
        notes.append(f"{field} Year {_shown(year)} is out of range; dropped")
    m = _month(month)
    if month is not None and month.strip() and m is None:
        notes.append(f"{field} Month {_shown(month)} is not a month; dropped")
    d = _int_or_none(day)
    if day is not None and day.strip():
        last = calendar.monthrange(y, m)[1] if y is not None and m is not None else 31
        if d is None or not 1 <= d <= last:
            notes.append(f"{field} Day {_shown(day)} is {'not a day' if d is None else 'out of range'}; dropped")
            d = None
    return y, m, d


def _shown(value: str) -> str:
    value = value.strip()
    return repr(value if len(value) <= 24 else value[:21] + "...")


def _date(el: etree._Element | None, notes: list[str] | None = None, field: str = "date") -> PubDate | None:
    if el is None:
        return None
    year_el = el.find("Year")
    if year_el is not None:
        y, m, d = checked_date(
            year_el.text, el.findtext("Month"), el.findtext("Day"), notes if notes is not None else [], field
        )
        return PubDate(year=y, month=m, day=d, raw=_opt(el.find("Season")))
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


def _ref_pmid(value: str | None) -> str | None:
    # A comment/correction names another record by PMID; a value that is not one is
    # not kept (the reference keeps its RefSource text).
    return value if valid_pmid(value) else None


def _comments(citation: etree._Element) -> tuple[CommentCorrection, ...]:
    return tuple(
        CommentCorrection(
            ref_type=c.get("RefType") or "",
            ref_source=_opt(c.find("RefSource")),
            pmid=_ref_pmid(_opt(c.find("PMID"))),
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


# --------------------------------------------------------------------------- files


def _decompressed(f: IO[bytes]) -> IO[bytes]:
    """The file's XML bytes from its start: gunzipped when its first bytes say gzip."""
    f.seek(0)
    magic = f.read(2)
    f.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")
    return f


def _check_head(f: IO[bytes], source: str) -> None:
    """Refuse entity declarations (bombs, external entities) before parsing."""
    chunks: list[bytes] = []
    size = 0
    stream = _decompressed(f)
    try:
        while size < _HEAD_BYTES:
            block = stream.read(4096)
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


def _record_pmid(el: etree._Element) -> str | None:
    """The PMID of a record, when it has a valid one (for error messages)."""
    pmid = _text(el.find("MedlineCitation/PMID")) or _text(el.find("BookDocument/PMID"))
    return pmid if valid_pmid(pmid) else None


def _prune(root: etree._Element, keep: etree._Element | None) -> None:
    """Delete every finished element that is not needed any more.

    The parser's open elements form the chain of last children from the root; every
    earlier sibling along that chain is finished (and, when a record, already read).
    Those are deleted, level by level, down to ``keep`` (the record being read, whose
    content is still needed) or to the bottom of the chain. The chain is at most 256
    deep: libxml2 refuses deeper documents unless ``huge_tree`` is set, and it is not.
    """
    node = root
    while node is not keep:
        n = len(node)
        if n == 0:
            return
        if n > 1:
            del node[: n - 1]
        node = node[-1]


def _limit_breach(limits: RecordLimits, n_bytes: int, n_elements: int) -> str | None:
    if n_bytes > limits.max_record_bytes:
        return (
            f"record is over {limits.max_record_bytes:,} bytes of XML "
            "(RecordLimits.max_record_bytes); refused"
        )
    if n_elements > limits.max_record_elements:
        return (
            f"record has over {limits.max_record_elements:,} elements "
            "(RecordLimits.max_record_elements); refused"
        )
    return None


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


def _iter_file(
    path: Path, on_error: OnError, report: IngestReport, limits: RecordLimits
) -> Iterator[Document | Deletion]:
    source = str(path)
    try:
        f = open_regular(path)
    except OSError as exc:
        handle(IngestError(f"cannot read file: {exc}", source=source), on_error, report)
        return
    with f:
        try:
            src = SourceFile(path=source, sha256=sha256_handle(f))
            _check_head(f, source)
        except OSError as exc:
            handle(IngestError(f"cannot read file: {exc}", source=source), on_error, report)
            return
        except IngestError as err:
            handle(err, on_error, report)
            return
        yield from _iter_records(_decompressed(f), source, src, on_error, report, limits)


def _iter_records(
    stream: IO[bytes],
    source: str,
    src: SourceFile,
    on_error: OnError,
    report: IngestReport,
    limits: RecordLimits,
) -> Iterator[Document | Deletion]:
    parser = etree.XMLPullParser(
        events=("start", "end"),
        tag=_EVENT_TAGS,
        load_dtd=False,
        no_network=True,
        resolve_entities=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    position = 0
    last_pmid: str | None = None
    root: etree._Element | None = None
    # The record being read: its element, the bytes and start tags fed since it
    # opened (counted per read, so to within one read), and whether it broke a limit.
    current: etree._Element | None = None
    rec_bytes = rec_elements = 0
    refused = False
    fed = 0
    done = False
    # read1 on a gzip stream decompresses what it has; a truncated file then loses
    # nothing before its last incomplete block (read() would drop the whole buffer).
    read = stream.read1 if isinstance(stream, gzip.GzipFile) else stream.read
    closed_root: etree._Element | None = None
    try:
        while not done:
            syntax_error: etree.XMLSyntaxError | None = None
            chunk = read(_CHUNK)
            n_elements = chunk.count(b"<") - chunk.count(b"</")
            fed += len(chunk)
            rec_bytes += len(chunk)
            rec_elements += n_elements
            try:
                if chunk:
                    parser.feed(chunk)
                else:
                    done = True
                    closed_root = parser.close()
            except etree.XMLSyntaxError as exc:
                # The events before the error are still delivered: read them first.
                syntax_error = exc
            for event, el in parser.read_events():
                if root is None:
                    root = el.getroottree().getroot()
                    # Second line of defence behind _check_head, which a DOCTYPE longer
                    # than its byte window (or a fake root tag in a comment) slips past:
                    # the parsed internal subset itself must declare no entity.
                    dtd = el.getroottree().docinfo.internalDTD
                    if dtd is not None and next(dtd.iterentities(), None) is not None:
                        handle(IngestError(_ENTITY_REFUSAL, source=source), on_error, report)
                        return
                tag = el.tag
                if tag not in _RECORD_TAGS:
                    continue
                if event == "start":
                    if current is None:
                        current, rec_bytes, rec_elements, refused = el, len(chunk), n_elements, False
                    continue
                skip = False
                if el is current:
                    why = None if refused else _limit_breach(limits, rec_bytes, rec_elements)
                    if why is not None:
                        handle(
                            IngestError(why, source=source, record_id=_record_pmid(el), position=position),
                            on_error,
                            report,
                        )
                    skip = refused or why is not None
                    current = None
                if skip:
                    pass
                elif tag == "DeleteCitation":
                    yield from _deletions(el, src, position, on_error, report)
                else:
                    notes: list[str] = []
                    try:
                        if tag == "PubmedArticle":
                            doc = _parse_article(el, src, notes)
                        else:
                            doc = _parse_book(el, src, notes)
                    except (ValueError, TypeError, AttributeError) as exc:
                        handle(
                            IngestError(
                                str(exc), source=source, record_id=_record_pmid(el), position=position
                            ),
                            on_error,
                            report,
                        )
                    else:
                        for note in notes:
                            logger.warning("%s, record %s: %s", source, doc.pmid, note)
                        last_pmid = doc.pmid
                        yield doc
                if tag != "DeleteCitation":
                    position += 1
                el.clear(keep_tail=False)
                parent = el.getparent()
                if parent is not None:
                    while el.getprevious() is not None:
                        del parent[0]
            if syntax_error is not None:
                raise syntax_error
            if current is not None and not refused:
                why = _limit_breach(limits, rec_bytes, rec_elements)
                if why is not None:
                    # Refused now, while it is still being read: its content is
                    # discarded as it arrives, and the rest of the file goes on.
                    refused = True
                    handle(
                        IngestError(why, source=source, record_id=_record_pmid(current), position=position),
                        on_error,
                        report,
                    )
            if root is not None:
                _prune(root, None if refused else current)
            elif fed > _NO_ROOT_BYTES:
                handle(
                    IngestError(
                        f"not PubMed XML: no <PubmedArticleSet> or record element in its first "
                        f"{_NO_ROOT_BYTES:,} bytes",
                        source=source,
                    ),
                    on_error,
                    report,
                )
                return
        top = root if root is not None else closed_root
        if top is None or top.tag not in _ROOT_TAGS:
            tag = "nothing" if top is None else f"<{top.tag}>"
            handle(
                IngestError(f"not PubMed XML: the root element is {tag}", source=source),
                on_error,
                report,
            )
    except etree.XMLSyntaxError as exc:
        after = f" after PMID {last_pmid}" if last_pmid else ""
        handle(
            IngestError(f"malformed XML{after}: {exc}", source=source, position=position),
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


def iter_pubmed_events(
    paths: PathLike | Iterable[PathLike],
    *,
    on_error: OnError = "raise",
    report: IngestReport | None = None,
    limits: RecordLimits | None = None,
) -> Iterator[Document | Deletion]:
    """Stream :class:`Document` and :class:`Deletion` events, in file order.

    Args:
        paths: a ``.xml`` / ``.xml.gz`` file, a directory of them, or several.
            Compression is detected from the file's first bytes, not its name.
        on_error: ``"raise"`` raises :class:`~medrag.errors.IngestError` naming the file
            and the record (PMID or 0-based position); ``"skip"`` skips the record (or
            the unreadable rest of a file), counts it in ``report.skipped`` and goes on.
        report: an :class:`IngestReport` to fill (files, documents, skipped, deletions).
        limits: bounds on one record (:class:`~medrag.ingest.RecordLimits`; the
            defaults are far above any real record). A record over them is an
            ``IngestError`` for that record, raised or skipped per ``on_error``.

    Paths are expanded by the rules of :func:`medrag.ingest._common.expand_paths`
    (directories walked without entering symlinked ones, glob patterns, FIFOs and
    devices refused).

    A ``<DeleteCitation>`` yields one :class:`Deletion` per withdrawn PMID, so that an
    index built from update files can apply them in order.
    """
    check_on_error(on_error)
    report = report if report is not None else IngestReport()
    limits = limits if limits is not None else RecordLimits()
    if not isinstance(limits, RecordLimits):
        raise ConfigError(f"limits must be a RecordLimits, not {type(limits).__name__}")
    for path in expand_paths(paths, suffixes=(".xml", ".xml.gz", ".gz"), on_error=on_error, report=report):
        report.files += 1
        for item in _iter_file(path, on_error, report, limits):
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
    limits: RecordLimits | None = None,
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
    for item in iter_pubmed_events(paths, on_error=on_error, report=report, limits=limits):
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
