"""The grades of guideline recommendation chunks, kept beside the index so that search
can filter and boost by grade without reading chunk text.

A chunk is a recommendation chunk when :attr:`medrag.types.Chunk.recommendation` is set
(:func:`medrag.chunking.chunk_document` does it for guideline recommendations). The
table is sparse: the rows that are recommendation chunks (sorted) and, for each, three
small codes: its ``strength``, ``certainty`` and grading ``system`` (0: not stated,
``1 + i``: the i-th value of :data:`STRENGTHS` / :data:`CERTAINTIES` / :data:`SYSTEMS`,
255: a value outside them, kept only in the chunk). A saved index stores it as
``grades_rows.npy`` (int64) and ``grades_codes.npy`` (uint8, rows x 3) and names the
vocabularies in its manifest (``"grades"``), so codes written by one version read
correctly in another. An index saved without these files (before they existed) gets
its table from its chunks the first time a grade filter or boost needs it.

Boosting (:func:`boost_factors`): a mapping from a strength, a certainty, a system, or
``"recommendation"`` (any recommendation chunk) to a positive factor; a row's factor
is the product of the factors that match it. It multiplies the row's final score (the
fused score in hybrid mode); a negative score (possible for dense cosine) is divided
by it instead, so a factor above 1 always raises a row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, IndexFormatError
from ..types import Chunk

__all__ = ["STRENGTHS", "CERTAINTIES", "SYSTEMS", "GradeTable", "check_boost", "check_values"]

#: the normalized values of :class:`medrag.types.Recommendation` (see its docstring and
#: :mod:`medrag.ingest.pdf.grades`, which produces them)
STRENGTHS = ("strong", "conditional", "against", "good-practice", "ungraded")
CERTAINTIES = ("high", "moderate", "low", "very low", "expert opinion")
SYSTEMS = ("GRADE", "ACC/AHA", "USPSTF", "SIGN", "NICE-wording", "other")
FIELDS = ("strength", "certainty", "system")
VOCAB = dict(zip(FIELDS, (STRENGTHS, CERTAINTIES, SYSTEMS)))
_OTHER = 255
_NEEDLE = b'"recommendation":{'  # how Chunk.to_dict + compact json.dumps writes a set field


def check_values(values: Any, what: str, allowed: Sequence[str]) -> tuple[str, ...]:
    """``values`` as a tuple of strings from ``allowed``, or a ConfigError naming ``what``."""
    from .._indexparts import str_list

    out = tuple(str_list(values, what, allowed[0]))
    bad = [v for v in out if v not in allowed]
    if bad:
        raise ConfigError(f"{what}: unknown value(s) {bad}; use any of {list(allowed)}")
    return out


def check_boost(boost: Mapping[str, float] | None) -> tuple[tuple[str, int, float], ...]:
    """The boost as ``(field, code, factor)`` triples (field ``"any"`` for
    ``"recommendation"``), or a ConfigError for an unknown key or a factor that is not a
    positive finite number."""
    if boost is None:
        return ()
    if not isinstance(boost, Mapping):
        raise ConfigError(f"boost must be a mapping like {{'strong': 1.2}}, not {type(boost).__name__}")
    out = []
    for key, factor in boost.items():
        if isinstance(factor, bool) or not isinstance(factor, (int, float, np.integer, np.floating)) or not (
            math.isfinite(float(factor)) and float(factor) > 0
        ):
            raise ConfigError(f"boost[{key!r}] must be a positive number, not {factor!r}")
        if key == "recommendation":
            out.append(("any", 0, float(factor)))
            continue
        for name, vocab in VOCAB.items():
            if key in vocab:
                out.append((name, 1 + vocab.index(key), float(factor)))
                break
        else:
            allowed = ["recommendation", *STRENGTHS, *CERTAINTIES, *SYSTEMS]
            raise ConfigError(f"boost: unknown key {key!r}; use any of {allowed}")
    return tuple(out)


def _code(value: str | None, vocab: tuple[str, ...]) -> int:
    if value is None:
        return 0
    return 1 + vocab.index(value) if value in vocab else _OTHER


def chunk_codes(chunk: Chunk) -> tuple[int, int, int] | None:
    """The three codes of a recommendation chunk; None for any other chunk."""
    r = chunk.recommendation
    if r is None:
        return None
    return (_code(r.strength, STRENGTHS), _code(r.certainty, CERTAINTIES), _code(r.system, SYSTEMS))


@dataclass(frozen=True, slots=True)
class GradeTable:
    """The recommendation rows of an index (sorted) and their codes (rows x 3 uint8)."""

    rows: np.ndarray
    codes: np.ndarray

    @classmethod
    def empty(cls) -> "GradeTable":
        return cls(np.zeros(0, np.int64), np.zeros((0, 3), np.uint8))

    @classmethod
    def of_chunks(cls, chunks: Sequence[Chunk], first_row: int = 0) -> "GradeTable":
        """The table of ``chunks``, the first being row ``first_row``."""
        rows, codes = [], []
        for i, c in enumerate(chunks):
            cc = chunk_codes(c)
            if cc is not None:
                rows.append(first_row + i)
                codes.append(cc)
        return cls(np.asarray(rows, np.int64), np.asarray(codes, np.uint8).reshape(-1, 3))

    @classmethod
    def scan(cls, n_rows: int, raw: Any, chunk: Any) -> "GradeTable":
        """The table read from the chunks themselves: ``raw(row)`` gives a row's stored
        JSON line (only lines naming a recommendation are parsed), ``chunk(row)`` the
        chunk. O(corpus): used once, for an index saved without the table."""
        rows, codes = [], []
        for row in range(n_rows):
            line = raw(row)
            if line is not None and _NEEDLE not in line:
                continue
            cc = chunk_codes(chunk(row))
            if cc is not None:
                rows.append(row)
                codes.append(cc)
        return cls(np.asarray(rows, np.int64), np.asarray(codes, np.uint8).reshape(-1, 3))

    def __len__(self) -> int:
        return int(self.rows.size)

    def extend(self, other: "GradeTable") -> "GradeTable":
        return GradeTable(np.concatenate([self.rows, other.rows]), np.concatenate([self.codes, other.codes]))

    def take(self, old_rows: np.ndarray) -> "GradeTable":
        """The table after compaction: ``old_rows[new] == old`` (sorted)."""
        old_rows = np.asarray(old_rows, np.int64)
        if not old_rows.size:
            return GradeTable.empty()
        pos = np.minimum(np.searchsorted(old_rows, self.rows), old_rows.size - 1)
        keep = old_rows[pos] == self.rows
        return GradeTable(pos[keep].astype(np.int64), self.codes[keep])

    # ------------------------------------------------------------------ use

    def mask(self, n_rows: int, strength: tuple[str, ...], certainty: tuple[str, ...], systems: tuple[str, ...]) -> np.ndarray:
        """Rows that are recommendation chunks with a strength in ``strength``, a
        certainty in ``certainty`` and a system in ``systems`` (an empty tuple: any)."""
        ok = np.ones(self.rows.size, bool)
        for col, values, vocab in ((0, strength, STRENGTHS), (1, certainty, CERTAINTIES), (2, systems, SYSTEMS)):
            if values:
                ok &= np.isin(self.codes[:, col], [1 + vocab.index(v) for v in values])
        out = np.zeros(n_rows, bool)
        out[self.rows[ok]] = True
        return out

    def factors(self, rows: np.ndarray, boost: tuple[tuple[str, int, float], ...]) -> np.ndarray:
        """The boost factor of each of ``rows`` (1.0 where nothing matches)."""
        rows = np.asarray(rows, np.int64)
        out = np.ones(rows.size, np.float64)
        if not boost or not self.rows.size or not rows.size:
            return out
        pos = np.minimum(np.searchsorted(self.rows, rows), self.rows.size - 1)
        is_rec = self.rows[pos] == rows
        codes = self.codes[pos]
        for name, code, factor in boost:
            hit = is_rec if name == "any" else is_rec & (codes[:, FIELDS.index(name)] == code)
            out[hit] *= factor
        return out

    # ------------------------------------------------------------------ on disk

    def save(self, d: Any) -> dict[str, Any]:
        """Write the two arrays into directory ``d``; returns the manifest entry."""
        np.save(d / "grades_rows.npy", self.rows.astype(np.int64), allow_pickle=False)
        np.save(d / "grades_codes.npy", self.codes.astype(np.uint8), allow_pickle=False)
        return {"rows": "grades_rows.npy", "codes": "grades_codes.npy", **{f: list(v) for f, v in VOCAB.items()}}

    @classmethod
    def load(cls, root: Any, entry: Any, n_rows: int, mmap: bool) -> "GradeTable":
        """The table a manifest ``"grades"`` entry names, its codes translated to this
        version's vocabularies; IndexFormatError when malformed."""
        from .._indexparts import load_array

        try:
            vocabs = {f: [str(x) for x in entry[f]] for f in FIELDS}
            m = int(np.load(root / "grades_rows.npy", mmap_mode="r", allow_pickle=False).shape[0])
        except (KeyError, TypeError, ValueError, OSError, IndexError) as exc:
            raise IndexFormatError(f"{root}: malformed grade table: {exc}") from exc
        rows = load_array(root / "grades_rows.npy", np.int64, (m,), mmap)
        codes = np.array(load_array(root / "grades_codes.npy", np.uint8, (m, 3), mmap))
        if m and (int(rows.min()) < 0 or int(rows.max()) >= n_rows or np.any(np.diff(rows) <= 0)):
            raise IndexFormatError(f"{root}/grades_rows.npy: rows not increasing inside the index")
        for col, f in enumerate(FIELDS):
            table = np.full(256, _OTHER, np.uint8)
            table[0] = 0
            for i, v in enumerate(vocabs[f]):
                if i + 1 < _OTHER:
                    table[i + 1] = 1 + VOCAB[f].index(v) if v in VOCAB[f] else _OTHER
            codes[:, col] = table[codes[:, col]]
        return cls(np.asarray(rows), codes)
