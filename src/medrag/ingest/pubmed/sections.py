"""A Document's text and its section spans, built section by section."""

from __future__ import annotations

from lxml import etree

from ...types import Section
from .text import _text

#: What joins two sections in :attr:`Document.text`.
SECTION_SEPARATOR = "\n\n"


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
