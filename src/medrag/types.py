"""Core data types: frozen, slotted dataclasses with ``to_dict`` / ``from_dict``.

Ids are stable strings: ``pmid:31978945`` for a PubMed record, ``pdf:<sha256-prefix>``
for a guideline PDF, and ``<doc_id>#<n>`` for the n-th chunk of a document.

All character offsets (``start``, ``end``) are Python ``str`` indices (Unicode code
points) into :attr:`Document.text`, with ``end`` exclusive, so that
``doc.text[s.start:s.end]`` is the text of section ``s``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._record import _Record

__all__ = [
    "SourceFile",
    "Section",
    "Author",
    "MeshQualifier",
    "MeshHeading",
    "Chemical",
    "PublicationType",
    "CommentCorrection",
    "Journal",
    "PubDate",
    "PubmedMetadata",
    "Recommendation",
    "GuidelineMetadata",
    "Document",
    "Deletion",
    "Chunk",
    "SourceInfo",
    "Passage",
    "Citation",
    "AnswerSentence",
    "RemovedSentence",
    "Answer",
    "ANSWER_STATUSES",
    "RETRACTION_REF_TYPES",
]

#: CommentsCorrections RefTypes that mark *this* record as retracted.
RETRACTION_REF_TYPES = frozenset({"RetractionIn"})


@dataclass(frozen=True, slots=True)
class SourceFile(_Record):
    """The file a document was read from: its path as given and its sha256 (hex)."""

    path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Section(_Record):
    """A span of :attr:`Document.text` with a label.

    Attributes:
        kind: ``"abstract"`` (a part of the main abstract), ``"other_abstract"``
            (e.g. a publisher's abstract in another language), ``"body"`` (guideline
            prose or a book section), ``"recommendation"``, ``"table"``.
        label: the label as printed (``"BACKGROUND"``, ``"3.2 Hand hygiene"``), or None.
        category: the NLM category of a structured-abstract section (``"METHODS"``), or None.
        path: the heading path from the outermost heading down, for nested sections.
        start, end: character offsets into :attr:`Document.text` (end exclusive).
        language: ISO 639-2 code where the section is in another language than the
            document, else None.
    """

    kind: str
    label: str | None
    start: int
    end: int
    category: str | None = None
    path: tuple[str, ...] = ()
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Author(_Record):
    """A person or a collective author (``collective`` holds the group's name)."""

    last_name: str | None = None
    fore_name: str | None = None
    initials: str | None = None
    collective: str | None = None
    affiliations: tuple[str, ...] = ()
    orcid: str | None = None

    @property
    def display_name(self) -> str:
        """``"Smith JA"`` (Vancouver style) or the collective's name."""
        if self.collective:
            return self.collective
        parts = [p for p in (self.last_name, self.initials or self.fore_name) if p]
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class MeshQualifier(_Record):
    name: str
    ui: str | None = None
    major: bool = False


@dataclass(frozen=True, slots=True)
class MeshHeading(_Record):
    """A MeSH heading: descriptor with its UI, major-topic flag and qualifiers."""

    descriptor: str
    ui: str | None = None
    major: bool = False
    qualifiers: tuple[MeshQualifier, ...] = ()

    @property
    def is_major(self) -> bool:
        """True when the descriptor or any of its qualifiers is a major topic."""
        return self.major or any(q.major for q in self.qualifiers)


@dataclass(frozen=True, slots=True)
class Chemical(_Record):
    name: str
    ui: str | None = None
    registry_number: str | None = None


@dataclass(frozen=True, slots=True)
class PublicationType(_Record):
    name: str
    ui: str | None = None


@dataclass(frozen=True, slots=True)
class CommentCorrection(_Record):
    """A link to another record: ``ref_type`` is NLM's RefType (``"RetractionIn"``,
    ``"ErratumIn"``, ``"CommentOn"``, ``"UpdateIn"``, ...)."""

    ref_type: str
    ref_source: str | None = None
    pmid: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Journal(_Record):
    title: str | None = None
    iso_abbreviation: str | None = None
    volume: str | None = None
    issue: str | None = None
    issn: str | None = None


@dataclass(frozen=True, slots=True)
class PubDate(_Record):
    """A publication date; ``raw`` keeps a free-text ``MedlineDate`` ("1998 Dec-1999 Jan")."""

    year: int | None = None
    month: int | None = None
    day: int | None = None
    raw: str | None = None


@dataclass(frozen=True, slots=True)
class PubmedMetadata(_Record):
    """Everything PubMed says about a record beyond its text."""

    pmid: str
    pmid_version: int = 1
    vernacular_title: str | None = None
    journal: Journal = field(default_factory=Journal)
    pages: str | None = None
    pub_date: PubDate = field(default_factory=PubDate)
    article_date: PubDate | None = None
    languages: tuple[str, ...] = ()
    doi: str | None = None
    pmc_id: str | None = None
    authors: tuple[Author, ...] = ()
    mesh: tuple[MeshHeading, ...] = ()
    keywords: tuple[str, ...] = ()
    chemicals: tuple[Chemical, ...] = ()
    publication_types: tuple[PublicationType, ...] = ()
    comments_corrections: tuple[CommentCorrection, ...] = ()
    copyright: str | None = None
    status: str | None = None
    book_title: str | None = None
    publisher: str | None = None


@dataclass(frozen=True, slots=True)
class Recommendation(_Record):
    """A recommendation in a guideline, with its span in :attr:`Document.text`.

    Attributes:
        text: ``Document.text[start:end]``, the statement as printed (with its grade
            when the grade is printed inline).
        page: the page where the statement begins (1-based); ``pages`` lists every
            page it runs over (a statement across a page break is one record).
        strength: normalized strength: ``"strong"``, ``"conditional"`` (GRADE weak /
            conditional / discretionary, ACC/AHA 2a/2b, USPSTF C, NICE "consider"),
            ``"against"`` (a grade that is itself against: ACC/AHA 3, USPSTF D),
            ``"good-practice"`` or ``"ungraded"``; None only in data written before 0.2.
        certainty: normalized certainty of evidence: ``"high"``, ``"moderate"``,
            ``"low"``, ``"very low"``, ``"expert opinion"``, or None when not stated.
        label: the heading of the section the statement sits in.
        number: the statement's own label or number as printed ("Recommendation 1.1",
            "1.1.4", "R"), or None.
        grade: the grade text exactly as printed ("Strong recommendation, low quality
            evidence", "Grade A, Level 1+", "COR 1, LOE B-R"), or None when ungraded.
        system: the grading system the grade was read in: ``"GRADE"``, ``"ACC/AHA"``,
            ``"USPSTF"``, ``"SIGN"``, ``"NICE-wording"``, ``"other"`` (an unknown
            phrase: ``grade`` keeps it), or None (ungraded). The mapping is documented
            in :mod:`medrag.ingest.pdf.grades`.
    """

    text: str
    start: int
    end: int
    page: int
    strength: str | None = None
    certainty: str | None = None
    label: str | None = None
    number: str | None = None
    grade: str | None = None
    system: str | None = None
    pages: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class GuidelineMetadata(_Record):
    """What a guideline PDF states about itself, and which pages gave no evidence:
    ``pages_without_text`` (no text layer, e.g. scanned) and ``unreadable_pages``
    (damaged, skipped with ``on_error="skip"``), both 1-based."""

    organization: str | None = None
    page_count: int = 0
    pdf_title: str | None = None
    recommendations: tuple[Recommendation, ...] = ()
    pages_without_text: tuple[int, ...] = ()
    unreadable_pages: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Document(_Record):
    """One unit of evidence: a PubMed article or book article, or a guideline.

    Attributes:
        id: stable id, ``pmid:<PMID>`` or ``pdf:<first 16 hex of sha256>``.
        kind: ``"pubmed"``, ``"pubmed_book"``, ``"guideline"``, or ``"text"`` (a plain
            title + text record, e.g. from a BEIR corpus).
        title: the title, flattened to plain text (not part of :attr:`text`).
        text: the body, i.e. the concatenation of :attr:`sections` joined by blank lines.
            Citations and chunk spans are character offsets into this string.
        sections: spans of :attr:`text`, in order, non-overlapping.
        source: the file the document came from, with its sha256.
        year: the publication year, or None when unknown.
        retracted: True when the record is a retracted publication.
        page_starts: for paginated sources, the offset in :attr:`text` where each page
            begins (page ``i + 1`` starts at ``page_starts[i]``); empty otherwise.
        pubmed / guideline: source-specific metadata (exactly one is set, or neither).
    """

    id: str
    kind: str
    title: str
    text: str
    sections: tuple[Section, ...]
    source: SourceFile
    year: int | None = None
    retracted: bool = False
    page_starts: tuple[int, ...] = ()
    pubmed: PubmedMetadata | None = None
    guideline: GuidelineMetadata | None = None

    KINDS: ClassVar[frozenset[str]] = frozenset({"pubmed", "pubmed_book", "guideline", "text"})

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"Document {self.id}: unknown kind {self.kind!r}")
        n = len(self.text)
        prev_end = 0
        for s in self.sections:
            if not (prev_end <= s.start <= s.end <= n):
                raise ValueError(
                    f"Document {self.id}: section {s.label!r} span [{s.start}, {s.end}) "
                    f"is out of order or outside the text (length {n})"
                )
            prev_end = s.end

    @property
    def pmid(self) -> str | None:
        return self.pubmed.pmid if self.pubmed else None

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding character ``offset`` of :attr:`text`, or None."""
        if not self.page_starts:
            return None
        return max(1, bisect.bisect_right(self.page_starts, offset))

    def section_at(self, offset: int) -> Section | None:
        """The section whose span holds character ``offset``, or None (a separator)."""
        for s in self.sections:
            if s.start <= offset < s.end:
                return s
        return None

    def _repr_html_(self) -> str:  # notebooks (medrag.display)
        from .display import document_html

        return document_html(self)

    def _repr_markdown_(self) -> str:
        from .display import document_markdown

        return document_markdown(self)


@dataclass(frozen=True, slots=True)
class Deletion(_Record):
    """A ``<DeleteCitation>`` entry: NLM withdrew this PMID; an index should drop it."""

    pmid: str
    source: SourceFile
    version: int = 1

    @property
    def doc_id(self) -> str:
        return f"pmid:{self.pmid}"


@dataclass(frozen=True, slots=True)
class Chunk(_Record):
    """A retrievable piece of a document.

    Attributes:
        id: ``<doc_id>#<n>``, stable when the same document is chunked again with the same
            parameters.
        doc_id: the document's id.
        text: exactly ``document.text[start:end]`` (the span a citation quotes).
        start, end: character offsets into the document's text (end exclusive).
        section: the section label, ``path`` its heading path.
        pages: the 1-based pages the chunk spans (PDFs), else empty.
        index_text: the text given to retrievers (may carry the title as a prefix).
        n_tokens: the chunk's length in tokens of the chunker's encoding.
        oversized: True when one sentence alone exceeded the token budget and was cut.
        page_starts: when the chunk spans several pages, the document offset at which
            each of ``pages`` begins inside the chunk (the first is ``start``), so that
            a quote cites its own page(s); empty otherwise.
        section_spans: when the chunk touches several sections, ``(start, end, label)``
            of each (document offsets), so that a quote names its own section; empty
            otherwise.
        recommendation: when the chunk is a guideline's recommendation (the
            recommendation makes up at least half of the chunk's text), that
            :class:`Recommendation` with its normalized ``strength`` / ``certainty`` /
            ``system``, printed ``grade`` and ``pages`` (offsets into the document's
            text), so that search can filter and boost by grade; None otherwise and in
            indexes written before this field existed.
    """

    id: str
    doc_id: str
    text: str
    start: int
    end: int
    index_text: str
    section: str | None = None
    path: tuple[str, ...] = ()
    pages: tuple[int, ...] = ()
    n_tokens: int = 0
    oversized: bool = False
    page_starts: tuple[int, ...] = ()
    section_spans: tuple[tuple[int, int, str], ...] = ()
    recommendation: Recommendation | None = None

    def pages_of(self, start: int, end: int) -> tuple[int, ...]:
        """The pages a span ``[start, end)`` of the document (inside the chunk) lies on."""
        if not self.pages:
            return ()
        if len(self.page_starts) != len(self.pages):
            return self.pages[:1]
        first = max(0, bisect.bisect_right(self.page_starts, start) - 1)
        last = max(0, bisect.bisect_right(self.page_starts, max(start, end - 1)) - 1)
        return self.pages[first : last + 1]

    def section_of(self, start: int) -> str | None:
        """The label of the section holding document offset ``start`` (inside the chunk)."""
        for a, b, label in self.section_spans:
            if a <= start < b:
                return label or None
        return None if self.section_spans else self.section


def _grade_words(strength: str | None, certainty: str | None) -> str:
    """"strong, very low certainty of evidence" from normalized fields ("" if ungraded)."""
    if strength in (None, "ungraded"):
        return ""
    return strength + (f", {certainty} certainty of evidence" if certainty else "")


@dataclass(frozen=True, slots=True)
class SourceInfo(_Record):
    """What a citation needs to say about a document, and what filters look at.

    Kept by an index for each document, so that passages carry their evidence context
    without the index holding whole documents.
    """

    doc_id: str
    kind: str
    title: str
    year: int | None = None
    retracted: bool = False
    pmid: str | None = None
    doi: str | None = None
    journal: str | None = None
    volume: str | None = None
    issue: str | None = None
    pages: str | None = None
    authors: tuple[str, ...] = ()
    n_authors: int = 0
    publication_types: tuple[str, ...] = ()
    mesh: tuple[str, ...] = ()
    organization: str | None = None
    book_title: str | None = None
    source_sha256: str | None = None
    file: str | None = None
    url: str | None = None
    #: a guideline's graded recommendations: ``(start, end, grade)`` in its text, the
    #: grade as printed (or its normalized strength), so a quote can carry it
    recommendations: tuple[tuple[int, int, str], ...] = ()

    #: Authors kept for a Vancouver-style reference ("et al." after six).
    MAX_AUTHORS: ClassVar[int] = 7

    @classmethod
    def from_document(cls, doc: Document) -> "SourceInfo":
        p, g = doc.pubmed, doc.guideline
        authors = tuple(a.display_name for a in p.authors) if p else ()
        return cls(
            doc_id=doc.id,
            kind=doc.kind,
            title=doc.title,
            year=doc.year,
            retracted=doc.retracted,
            pmid=p.pmid if p else None,
            doi=p.doi if p else None,
            journal=(p.journal.iso_abbreviation or p.journal.title) if p else None,
            volume=p.journal.volume if p else None,
            issue=p.journal.issue if p else None,
            pages=p.pages if p else None,
            authors=authors[: cls.MAX_AUTHORS],
            n_authors=len(authors),
            publication_types=tuple(t.name for t in p.publication_types) if p else (),
            mesh=tuple(m.descriptor for m in p.mesh) if p else (),
            organization=g.organization if g else None,
            book_title=p.book_title if p else None,
            source_sha256=doc.source.sha256,
            # a guideline's reference names its file (base name only) and URL if known
            file=doc.source.path.replace("\\", "/").rsplit("/", 1)[-1] if g else None,
            url=getattr(g, "url", None) if g else None,
            recommendations=tuple(
                (r.start, r.end, r.grade or _grade_words(r.strength, r.certainty)) for r in g.recommendations
            ) if g else (),
        )


@dataclass(frozen=True, slots=True)
class Passage(_Record):
    """A retrieved chunk with its fused score, its rank (1-based) and each retriever's
    score (``{"bm25": 12.3, "dense": 0.71}``; a retriever that did not score it is absent)."""

    chunk: Chunk
    source: SourceInfo
    score: float
    rank: int
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def page(self) -> int | None:
        return self.chunk.pages[0] if self.chunk.pages else None

    def _repr_html_(self) -> str:  # notebooks (medrag.display)
        from .display import passage_html

        return passage_html(self)

    def _repr_markdown_(self) -> str:
        from .display import passage_markdown

        return passage_markdown(self)


ANSWER_STATUSES = ("answered", "partial", "abstained")


@dataclass(frozen=True, slots=True)
class Citation(_Record):
    """An exact quote of a retrieved passage.

    ``start`` / ``end`` are character offsets into the *document's* text (so
    ``document.text[start:end] == quote``); ``chunk_id`` names the passage it was
    retrieved in, whose span contains them. ``support`` is the verifier's support
    score of the cited sentence by this quote, in [0, 1]. ``section`` and ``page`` are
    the quote's own (the section it starts in, the page it starts on); ``pages`` every
    page it lies on (a sentence across a page break cites both). ``grade``: when the
    quote is (part of) a guideline's graded recommendation, its grade as printed.
    """

    chunk_id: str
    doc_id: str
    start: int
    end: int
    quote: str
    support: float = 0.0
    pmid: str | None = None
    doi: str | None = None
    page: int | None = None
    section: str | None = None
    pages: tuple[int, ...] = ()
    grade: str | None = None


@dataclass(frozen=True, slots=True)
class AnswerSentence(_Record):
    """One sentence of an answer with the citations it rests on (at least one)."""

    text: str
    citations: tuple[Citation, ...]
    support: float = 0.0


@dataclass(frozen=True, slots=True)
class RemovedSentence(_Record):
    """A generated sentence that verification removed, and why."""

    text: str
    reason: str
    cited: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer(_Record):
    """An answer whose every sentence cites retrieved passages, or an abstention.

    The contract is checked on construction (a :class:`ValueError` otherwise):
    an answered or partial answer has at least one sentence; every sentence has at
    least one citation; every citation names a chunk among :attr:`passages`, lies
    inside that chunk's span, and quotes exactly that chunk's text there; an
    abstention has a reason and no sentences. A ``partial`` answer may carry an
    :attr:`abstain_reason` too: the part of the question nothing answered.
    """

    question: str
    status: str
    sentences: tuple[AnswerSentence, ...]
    passages: tuple[Passage, ...]
    index_id: str
    abstain_reason: str | None = None
    support: float = 0.0
    removed: tuple[RemovedSentence, ...] = ()
    generator: str | None = None
    prompt_id: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ANSWER_STATUSES:
            raise ValueError(f"Answer status must be one of {ANSWER_STATUSES}, not {self.status!r}")
        if self.status == "abstained":
            if not self.abstain_reason:
                raise ValueError("an abstention must carry a reason")
            if self.sentences:
                raise ValueError("an abstention has no sentences")
            return
        if not self.sentences:
            raise ValueError(f"a {self.status} answer needs at least one sentence")
        chunks = {p.chunk.id: p.chunk for p in self.passages}
        for s in self.sentences:
            if not s.citations:
                raise ValueError(f"sentence without a citation: {s.text[:80]!r}")
            for c in s.citations:
                ch = chunks.get(c.chunk_id)
                if ch is None:
                    raise ValueError(f"citation to {c.chunk_id}, which is not among the passages")
                if c.doc_id != ch.doc_id or not (ch.start <= c.start < c.end <= ch.end):
                    raise ValueError(f"citation span [{c.start}, {c.end}) is outside chunk {ch.id}")
                if ch.text[c.start - ch.start : c.end - ch.start] != c.quote:
                    raise ValueError(f"citation quote does not match chunk {ch.id} at [{c.start}, {c.end})")

    @property
    def answered(self) -> bool:
        return self.status != "abstained"

    @property
    def text(self) -> str:
        """The answer's sentences joined by spaces (no citation markers)."""
        return " ".join(s.text for s in self.sentences)

    def to_markdown(self) -> str:
        from .answer.render import to_markdown

        return to_markdown(self)

    def to_html(self) -> str:
        from .answer.render import to_html

        return to_html(self)

    def _repr_html_(self) -> str:  # notebooks
        return self.to_html()

    def to_records(self) -> list[dict[str, Any]]:
        """The evidence table: one dict per (sentence, citation); see
        :func:`medrag.display.answer_records`."""
        from .display import answer_records

        return answer_records(self)

    def to_pandas(self) -> Any:
        """:meth:`to_records` as a pandas DataFrame (``pip install 'medrag[notebook]'``)."""
        from .display import ANSWER_COLUMNS, answer_records, records_to_pandas

        return records_to_pandas(answer_records(self), ANSWER_COLUMNS)
