"""What a guideline says about itself: title, organization, year."""

from __future__ import annotations

import re
from typing import Any

from pypdf.errors import PyPdfError

from .lines import _Line
from .repair import _MULTISPACE, _join_lines, _normalize

_WHO_REGION = re.compile(
    r"World Health Organi[sz]ation\.\s+Regional Office for (the )?(?P<r>[A-Z][a-z]+( [A-Z][a-z]+)*?)(?= [A-Z][a-z]+ [a-z]|[^A-Za-z ]|$)"
)
_COPYRIGHT_HOLDER = re.compile(r"©\s*(?:Copyright\s+)?(?P<org>[A-Z][A-Za-z .,&()-]{3,100}?)[ ,]*(19|20)\d\d")
_ORGS = [
    (re.compile(r"World Health Organi[sz]ation"), "World Health Organization"),
    (re.compile(r"Centers for Disease Control and Prevention"), "Centers for Disease Control and Prevention"),
    (re.compile(r"National Institute for Health and (Care|Clinical) Excellence"), "National Institute for Health and Care Excellence"),
    (re.compile(r"Scottish Intercollegiate Guidelines Network"), "Scottish Intercollegiate Guidelines Network"),
    (re.compile(r"European Centre for Disease Prevention and Control"), "European Centre for Disease Prevention and Control"),
]
_ORG_WORDS = re.compile(
    r"organi[sz]ation|centers?|centres?|institute|agency|ministry|society|college|association|"
    r"department|committee|council|network|\bWHO\b|\bCDC\b|\bNICE\b",
    re.I,
)
_YEAR = r"(19[5-9]\d|20\d\d)"
_COPYRIGHT_YEAR = re.compile(r"(?:©|\(c\)|copyright)\s*(?:[^\n\d]{0,80}?)\s*" + _YEAR, re.I)
_MONTH_YEAR = re.compile(
    r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December)\s+" + _YEAR
)
_BAD_TITLE = re.compile(r"^(untitled|microsoft word|document\d*)|\.(docx?|indd|pdf|pptx?)$", re.I)


def _meta_str(meta: Any, key: str) -> str | None:
    if not meta:
        return None
    try:
        value = meta.get(key)
    except (PyPdfError, KeyError, ValueError, TypeError):
        return None
    if value is None:
        return None
    s = _MULTISPACE.sub(" ", _normalize(str(value))).strip()
    return s or None


def _organization(meta_author: str | None, front: str) -> str | None:
    """The publisher: a WHO regional office's cataloguing line, else the copyright
    holder, else the first well-known organization named, else the PDF's author."""
    m = _WHO_REGION.search(front)
    if m:
        return f"World Health Organization Regional Office for the {m.group('r')}"
    m = _COPYRIGHT_HOLDER.search(front)
    if m and _ORG_WORDS.search(m.group("org")):
        holder = m.group("org").strip(" ,.")
        for pattern, name in _ORGS:
            if pattern.search(holder):
                return name
        return holder
    hits = [(m.start(), name) for pattern, name in _ORGS if (m := pattern.search(front))]
    if hits:
        return min(hits)[1]
    if meta_author and _ORG_WORDS.search(meta_author):
        return re.sub(r"\s*\((CDC|WHO|NICE)\)\s*$", "", meta_author)
    return None


def _year(front: str, creation: Any) -> int | None:
    for pattern in (_COPYRIGHT_YEAR, _MONTH_YEAR):
        m = pattern.search(front)
        if m:
            return int(m.group(m.lastindex or 1))
    try:
        if creation is not None:
            return int(creation.year)
    except (AttributeError, ValueError, TypeError):
        pass
    return None


def _front_title(first_page: list[_Line]) -> str | None:
    lines = [ln for ln in first_page if any(c.isalpha() for c in ln.text)]
    if not lines:
        return None
    lines = [ln for ln in lines if not re.fullmatch(r"[A-Z0-9/.\-]+", ln.text)]  # document codes
    if not lines:
        return None
    biggest = max(ln.size for ln in lines)
    picked = [ln for ln in lines if ln.size >= biggest * 0.6][:4]
    title = _join_lines([ln.text for ln in picked], None)
    title = _MULTISPACE.sub(" ", title).strip()
    return title[:300] or None
