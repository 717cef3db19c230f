"""XML text of a PubMed element: titles and abstracts are flattened with ``itertext()``
semantics so that nothing after an inline ``<i>``, ``<sup>``, ``<sub>`` or ``<b>`` is
lost; MathML is flattened to readable text (``<msub><mi>T</mi><mn>1</mn></msub>``
becomes ``T1``); whitespace runs collapse to one space."""

from __future__ import annotations

from lxml import etree

_MATHML_NS = "{http://www.w3.org/1998/Math/MathML}"


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
