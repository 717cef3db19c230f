"""Metadata filters (:class:`Filters`: document metadata and recommendation grades)
and the row mask they select: which rows of an index a search may return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .._indexparts import str_list
from ..errors import ConfigError
from .grades import CERTAINTIES, STRENGTHS, SYSTEMS, check_values

if TYPE_CHECKING:
    from .core import Index

__all__ = ["Filters", "row_mask"]


@dataclass(frozen=True, slots=True)
class Filters:
    """Metadata filters. Retracted publications are excluded unless ``include_retracted``.

    Attributes:
        year_min / year_max: inclusive bounds; a document with no year passes only when
            both are None.
        publication_types: keep documents with at least one of these (PubMed names,
            e.g. ``"Randomized Controlled Trial"``, ``"Meta-Analysis"``).
        kinds: keep these document kinds (``"pubmed"``, ``"pubmed_book"``, ``"guideline"``).
        mesh: keep documents indexed with at least one of these MeSH descriptors.
        doc_ids: keep only these documents.
        exclude_doc_ids: drop these documents.
        strength / certainty / grade_systems: keep only guideline recommendation chunks
            (:attr:`medrag.types.Chunk.recommendation`) whose normalized strength
            (``"strong"``, ``"conditional"``, ``"against"``, ``"good-practice"``,
            ``"ungraded"``), certainty of evidence (``"high"``, ``"moderate"``,
            ``"low"``, ``"very low"``, ``"expert opinion"``) or grading system
            (``"GRADE"``, ``"ACC/AHA"``, ``"USPSTF"``, ``"SIGN"``, ``"NICE-wording"``,
            ``"other"``) is one of these. A recommendation whose value is not stated
            does not pass a filter on that value.
        recommendations_only: keep only recommendation chunks (of any grade).

    The document filters and the chunk filters (the last four) all apply together.
    """

    year_min: int | None = None
    year_max: int | None = None
    publication_types: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    mesh: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    exclude_doc_ids: tuple[str, ...] = ()
    include_retracted: bool = False
    strength: tuple[str, ...] = ()
    certainty: tuple[str, ...] = ()
    grade_systems: tuple[str, ...] = ()
    recommendations_only: bool = False

    def __post_init__(self) -> None:
        for name in ("year_min", "year_max"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ConfigError(f"Filters.{name} must be an integer year or None, not {v!r}")
            object.__setattr__(self, name, int(v))
        for name in ("publication_types", "kinds", "mesh", "doc_ids", "exclude_doc_ids"):
            object.__setattr__(self, name, tuple(str_list(getattr(self, name), f"Filters.{name}", "pubmed")))
        if not isinstance(self.include_retracted, (bool, np.bool_)):
            raise ConfigError(f"Filters.include_retracted must be True or False, not {self.include_retracted!r}")
        for name, vocab in (("strength", STRENGTHS), ("certainty", CERTAINTIES), ("grade_systems", SYSTEMS)):
            object.__setattr__(self, name, check_values(getattr(self, name), f"Filters.{name}", vocab))
        if not isinstance(self.recommendations_only, (bool, np.bool_)):
            raise ConfigError(f"Filters.recommendations_only must be True or False, not {self.recommendations_only!r}")

    @property
    def by_grade(self) -> bool:
        """Whether any chunk-level (recommendation grade) filter is set."""
        return bool(self.strength or self.certainty or self.grade_systems or self.recommendations_only)


def row_mask(ix: "Index", filters: Filters | None) -> np.ndarray:
    """A boolean array over the rows of ``ix``: True where a live chunk passes
    ``filters`` (retracted publications excluded unless ``include_retracted``): the
    document filters on the document table, the grade filters on the index's grade
    table (:mod:`.grades`). The last mask is kept (read-only) until the filters or the
    index change (``ix._version``, bumped by every add, delete, compaction and save),
    so repeated searches with the same filters (the unfiltered default above all) do
    not rebuild an array of corpus size per query."""
    f = filters or Filters()
    key = (ix._version, f)
    cached = ix._mask_cache
    if cached is not None and cached[0] == key:
        return cached[1]  # the same filters on an unchanged index (O(1), not O(rows))
    ok = ix._doc_alive.copy()
    if not f.include_retracted:
        ok &= ~ix._doc_retracted
    if f.year_min is not None:
        ok &= ix._doc_year >= f.year_min
    if f.year_max is not None:
        ok &= (ix._doc_year <= f.year_max) & (ix._doc_year >= 0)
    if f.doc_ids or f.exclude_doc_ids:  # by id: looked up (medrag._docids), nothing parsed
        ids = ix._docs.ids
        if f.doc_ids:
            keep = np.zeros(ok.size, bool)
            keep[[r for i in f.doc_ids if (r := ids.row(i)) is not None]] = True
            ok &= keep
        ok[[r for i in f.exclude_doc_ids if (r := ids.row(i)) is not None]] = False
    if f.kinds or f.publication_types or f.mesh:
        kinds, pts, mesh = set(f.kinds), set(f.publication_types), set(f.mesh)
        for i in np.flatnonzero(ok):
            d = ix._docs[i]
            if (
                (kinds and d.kind not in kinds)
                or (pts and not pts.intersection(d.publication_types))
                or (mesh and not mesh.intersection(d.mesh))
            ):
                ok[i] = False
    rows = ok[ix._chunk_doc] & np.asarray(ix._bm25.alive)
    if f.by_grade:
        rows &= ix._grade_table().mask(rows.size, f.strength, f.certainty, f.grade_systems)
    rows.flags.writeable = False  # shared by the searches that reuse it
    ix._mask_cache = (key, rows)
    return rows
