"""Strength of evidence of a passage's source, from its publication types."""

from __future__ import annotations

from ..types import Passage

__all__ = ["evidence_level"]

#: Publication types from strongest to weakest evidence (lower is stronger), after the
#: usual evidence pyramid (guidelines and syntheses above trials above observation).
_EVIDENCE_ORDER = [
    ("Practice Guideline", 0),
    ("Guideline", 0),
    ("Meta-Analysis", 1),
    ("Systematic Review", 1),
    ("Randomized Controlled Trial", 2),
    ("Controlled Clinical Trial", 3),
    ("Clinical Trial", 3),
    ("Multicenter Study", 4),
    ("Comparative Study", 4),
    ("Observational Study", 4),
    ("Review", 5),
    ("Case Reports", 6),
    ("Editorial", 7),
    ("Comment", 7),
    ("Letter", 7),
]
_DEFAULT_LEVEL = 5


def evidence_level(passage: Passage) -> int:
    """0 (guideline) .. 7 (opinion): the strongest level among the document's types."""
    if passage.source.kind == "guideline":
        return 0
    levels = [lvl for name, lvl in _EVIDENCE_ORDER if name in passage.source.publication_types]
    return min(levels) if levels else _DEFAULT_LEVEL
