"""Recommendations and their grades."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...types import Recommendation, Section

if TYPE_CHECKING:
    from .structure import _Placed

_GRADE = re.compile(
    r"\(?\s*(?P<strength>strong|conditional|weak|discretionary)\s+recommendation\s*[,;]\s*"
    r"(?P<certainty>very\s+low|low|moderate|high)[- ]+(?:quality|certainty)\s+(?:of\s+)?evidence\s*\)?",
    re.I,
)
_REC_LABEL = re.compile(r"^(recommendations?|recommandations?|good practice statements?)\s*:?$", re.I)
_REC_LEAD = re.compile(r"(?:recommendations?|recommandations?)\s*:?\s+", re.I)


def find_recommendations(
    placed: list["_Placed"],
    text: str,
    heads: set[int],
    body_secs: list[Section],
    page_at: Callable[[int], int],
) -> list[Recommendation]:
    """Graded recommendations among the placed paragraphs, in text order."""
    out: list[Recommendation] = []
    for i, p in enumerate(placed):
        if p.para.table:
            continue
        for m in _GRADE.finditer(p.text):
            # The statement: this paragraph up to the grade, or the paragraphs just
            # before it back to a "RECOMMENDATION" label or a heading.
            g_end = p.start + m.end()
            s_idx = i
            if m.start() < 20:
                j = i - 1
                while j >= 0 and i - j <= 4:
                    q = placed[j]
                    if q.para.table or _REC_LABEL.match(q.text) or j in heads:
                        break
                    s_idx = j
                    j -= 1
            start = placed[s_idx].start
            lead = _REC_LEAD.match(text, start, g_end)
            if lead:
                start = lead.end()
            label = None
            for s in body_secs:
                if s.start <= start < max(s.end, s.start + 1):
                    label = s.label
            if start >= g_end:
                continue
            rec_text = text[start:g_end]
            out.append(
                Recommendation(
                    text=rec_text,
                    start=start,
                    end=g_end,
                    page=page_at(start),
                    strength=m.group("strength").lower(),
                    certainty=" ".join(m.group("certainty").lower().split()),
                    label=label,
                )
            )
    return out
