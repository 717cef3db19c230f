"""MEDLINE text (``.nbib``, ``.txt`` from PubMed's "Save > PubMed format") into Documents.

Parsing of the tagged format is Biopython's :mod:`Bio.Medline`; this module maps its
records onto the same :class:`~medrag.types.Document` that :mod:`.pubmed` builds from
XML. MEDLINE text flattens a structured abstract into one paragraph with ``LABEL:``
prefixes; those labels are recovered as sections (without an NLM category, which the
format does not carry).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import IngestError
from ..types import (
    RETRACTION_REF_TYPES,
    Author,
    Chemical,
    CommentCorrection,
    Document,
    Journal,
    MeshHeading,
    MeshQualifier,
    PubDate,
    PublicationType,
    PubmedMetadata,
    SourceFile,
)
from ._common import (
    IngestReport,
    OnError,
    PathLike,
    bad_pmid_reason,
    check_on_error,
    expand_paths,
    handle,
    open_regular,
    sha256_handle,
    valid_pmid,
)
from .pubmed import _TextBuilder, checked_date

__all__ = ["iter_medline"]

logger = logging.getLogger(__name__)

#: MEDLINE comment/correction tags and the XML RefType each one stands for.
_CC_TAGS = {
    "CIN": "CommentIn",
    "CON": "CommentOn",
    "EIN": "ErratumIn",
    "EFR": "ErratumFor",
    "RIN": "RetractionIn",
    "ROF": "RetractionOf",
    "UIN": "UpdateIn",
    "UOF": "UpdateOf",
    "ECI": "ExpressionOfConcernIn",
    "ECF": "ExpressionOfConcernFor",
    "CRI": "CorrectedandRepublishedIn",
    "CRF": "CorrectedandRepublishedFrom",
    "RPI": "RepublishedIn",
    "RPF": "RepublishedFrom",
    "RRI": "RetractedandRepublishedIn",
    "RRF": "RetractedandRepublishedFrom",
    "SPIN": "SummaryForPatientsIn",
    "ORI": "OriginalReportIn",
}
_LABEL_RE = re.compile(r"(?:^|(?<=[.?!] ))([A-Z][A-Z0-9 ,&/()-]{2,60}): ")
_YEAR_RE = re.compile(r"(?<!\d)(1[6-9]\d\d|20\d\d)(?!\d)")
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_CC_PMID_RE = re.compile(r"PMID:\s*(\d+)")
_RN_RE = re.compile(r"^(.*?)\s*\((.*)\)\s*$")


def _first(rec: dict, key: str) -> str | None:
    v = rec.get(key)
    if isinstance(v, list):
        v = v[0] if v else None
    v = " ".join(v.split()) if v else None
    return v or None


def _list(rec: dict, key: str) -> list[str]:
    v = rec.get(key) or []
    if isinstance(v, str):
        v = [v]
    return [" ".join(x.split()) for x in v if x and x.strip()]


def _date(dp: str | None, notes: list[str]) -> PubDate:
    if not dp:
        return PubDate()
    parts = dp.split()
    m = _YEAR_RE.search(dp)
    year = int(m.group(1)) if m else None
    if len(parts) >= 2 and parts[0].isdigit() and len(parts) <= 3 and "-" not in dp:
        month = _MONTHS.get(parts[1][:3].lower())
        if month is not None:
            # The day as written, checked against the month (out of range: dropped).
            day_s = parts[2] if len(parts) == 3 else None
            _, _, day = checked_date(
                str(year) if year is not None else None, str(month), day_s, notes, "DP"
            )
            return PubDate(year=year, month=month, day=day)
    if len(parts) == 1 and parts[0].isdigit():
        return PubDate(year=year)
    return PubDate(year=year, raw=dp)


def _abstract_sections(abstract: str) -> list[tuple[str | None, str]]:
    matches = list(_LABEL_RE.finditer(abstract))
    if not matches or matches[0].start() != 0:
        return [(None, abstract)]
    out = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(abstract)
        out.append((m.group(1), abstract[m.end():end].strip()))
    return out


def _mesh(terms: list[str]) -> tuple[MeshHeading, ...]:
    out = []
    for term in terms:
        desc, *quals = term.split("/")
        out.append(
            MeshHeading(
                descriptor=desc.lstrip("*"),
                major=desc.startswith("*"),
                qualifiers=tuple(MeshQualifier(name=q.lstrip("*"), major=q.startswith("*")) for q in quals),
            )
        )
    return tuple(out)


def _authors(rec: dict) -> tuple[Author, ...]:
    full = _list(rec, "FAU")
    short = _list(rec, "AU")
    affs = _list(rec, "AD")
    out = []
    for i, au in enumerate(short):
        fau = full[i] if i < len(full) else None
        last, _, fore = (fau or "").partition(", ")
        last_s, _, initials = au.rpartition(" ")
        out.append(
            Author(
                last_name=last or last_s or au,
                fore_name=fore or None,
                initials=initials or None,
                # Old records list affiliations for the whole author list, not per author.
                affiliations=tuple(affs) if i == 0 and len(affs) == 1 else (),
            )
        )
    for cn in _list(rec, "CN"):
        out.append(Author(collective=cn))
    return tuple(out)


def _id_with(values: list[str], kind: str) -> str | None:
    for v in values:
        if v.endswith(f"[{kind}]"):
            return v[: -len(kind) - 2].strip()
    return None


def _record_to_document(rec: dict, src: SourceFile, notes: list[str]) -> Document:
    pmid = _first(rec, "PMID")
    if not valid_pmid(pmid):
        raise ValueError(bad_pmid_reason(pmid))
    body = _TextBuilder()
    abstract = _first(rec, "AB")
    if abstract:
        for label, text in _abstract_sections(abstract):
            body.add(text, kind="abstract", label=label)
    text, sections = body.build()

    comments = []
    for tag, ref_type in _CC_TAGS.items():
        for v in _list(rec, tag):
            m = _CC_PMID_RE.search(v)
            ref = m.group(1) if m else None
            comments.append(
                CommentCorrection(ref_type=ref_type, ref_source=v, pmid=ref if valid_pmid(ref) else None)
            )
    pub_types = tuple(PublicationType(name=p) for p in _list(rec, "PT"))
    chemicals = []
    for rn in _list(rec, "RN"):
        m = _RN_RE.match(rn)
        chemicals.append(
            Chemical(name=m.group(2), registry_number=m.group(1) or None) if m else Chemical(name=rn)
        )
    ids = _list(rec, "AID") + _list(rec, "LID")
    pub_date = _date(_first(rec, "DP"), notes)
    meta = PubmedMetadata(
        pmid=pmid,
        vernacular_title=_first(rec, "TT"),
        journal=Journal(
            title=_first(rec, "JT"),
            iso_abbreviation=_first(rec, "TA"),
            volume=_first(rec, "VI"),
            issue=_first(rec, "IP"),
            issn=(_first(rec, "IS") or "").split(" (")[0] or None,
        ),
        pages=_first(rec, "PG"),
        pub_date=pub_date,
        languages=tuple(_list(rec, "LA")),
        doi=_id_with(ids, "doi"),
        pmc_id=_first(rec, "PMC"),
        authors=_authors(rec),
        mesh=_mesh(_list(rec, "MH")),
        keywords=tuple(_list(rec, "OT")),
        chemicals=tuple(chemicals),
        publication_types=pub_types,
        comments_corrections=tuple(comments),
        copyright=_first(rec, "CI"),
        status=_first(rec, "STAT"),
    )
    return Document(
        id=f"pmid:{pmid}",
        kind="pubmed",
        title=_first(rec, "TI") or "",
        text=text,
        sections=sections,
        source=src,
        year=pub_date.year,
        retracted=any(c.ref_type in RETRACTION_REF_TYPES for c in comments)
        or any(p.name == "Retracted Publication" for p in pub_types),
        pubmed=meta,
    )


def _iter_file(path: Path, on_error: OnError, report: IngestReport) -> Iterator[Document]:
    from Bio import Medline

    source = str(path)
    try:
        raw = open_regular(path)
    except OSError as exc:
        handle(IngestError(f"cannot read file: {exc}", source=source), on_error, report)
        return
    try:
        src = SourceFile(path=source, sha256=sha256_handle(raw))
        handle_ = io.TextIOWrapper(raw, encoding="utf-8")
    except OSError as exc:
        raw.close()
        handle(IngestError(f"cannot read file: {exc}", source=source), on_error, report)
        return
    position = 0
    with handle_:
        records = Medline.parse(handle_)
        while True:
            try:
                rec = next(records)
            except StopIteration:
                break
            except (ValueError, UnicodeDecodeError, KeyError) as exc:
                # Bio.Medline raises KeyError for a continuation line ("      x") with no
                # tag line before it in its record: malformed input, reported as such.
                why = f"continuation line without a tag ({exc})" if isinstance(exc, KeyError) else str(exc)
                handle(
                    IngestError(f"not MEDLINE text: {why}", source=source, position=position),
                    on_error,
                    report,
                )
                return
            notes: list[str] = []
            try:
                doc = _record_to_document(rec, src, notes)
            except (ValueError, TypeError, AttributeError) as exc:
                pmid = _first(rec, "PMID")
                handle(
                    IngestError(str(exc), source=source, record_id=pmid if valid_pmid(pmid) else None, position=position),
                    on_error,
                    report,
                )
            else:
                for note in notes:
                    logger.warning("%s, record %s: %s", source, doc.pmid, note)
                yield doc
            position += 1
    if position == 0:
        handle(IngestError("no MEDLINE record found", source=source), on_error, report)


def iter_medline(
    paths: PathLike | Iterable[PathLike],
    *,
    on_error: OnError = "raise",
    report: IngestReport | None = None,
) -> Iterator[Document]:
    """Stream :class:`Document` objects from MEDLINE text files (``.nbib``, ``.txt``).

    ``on_error`` and ``report`` behave as in :func:`medrag.ingest.iter_pubmed`. A file
    with no MEDLINE record at all is an error (it is most likely not MEDLINE text).
    """
    check_on_error(on_error)
    report = report if report is not None else IngestReport()
    for path in expand_paths(paths, suffixes=(".nbib", ".txt", ".medline"), on_error=on_error, report=report):
        report.files += 1
        for doc in _iter_file(path, on_error, report):
            report.documents += 1
            yield doc
