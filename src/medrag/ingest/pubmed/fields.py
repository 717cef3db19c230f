"""PubMed fields of one record: numbers, dates, authors, MeSH, publication types,
comments/corrections and article ids, each read from its element into the typed value
of :mod:`medrag.types`.

A date field out of range (a Day of 0 or 32, Feb 30, a Year past 9999) is dropped
(``None``) and noted, so that the caller logs a warning naming the file, the PMID and
the value: the record is kept."""

from __future__ import annotations

import calendar
import re

from lxml import etree

from ...types import Author, CommentCorrection, MeshHeading, MeshQualifier, PubDate, PublicationType
from .._common import valid_pmid
from .text import _opt, _text

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
        start=1,
    )
}
_YEAR_RE = re.compile(r"(?<!\d)(1[6-9]\d\d|20\d\d)(?!\d)")


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
