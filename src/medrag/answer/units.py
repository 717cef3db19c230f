"""Quotable units of a passage: full sentences, and list items with their lead-in.

An extractive answer quotes exact spans, and a span a clinician can read on its own is
either a full sentence or a list with the sentence that introduces it. This module cuts
a chunk's text into such units and labels the rest so that it is never quoted:

* **headings** (a short paragraph with no terminal punctuation, not a list item);
* **dangling lead-ins** ("Symptoms of active TB disease include:") on their own: a
  lead-in is quoted only together with the list items (or table rows, cells joined by
  " | ") that follow it, up to :data:`MAX_LIST_CHARS` characters;
* **fragments**: a paragraph that starts in lower case continues the one before it
  (a page or column break cut the sentence in two in the PDF); the two are joined into
  one unit, which then cites both pages.

Offsets are into the text given (a chunk's text); the composer adds the chunk's start.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..sentences import split_sentences
from .text import content_tokens

__all__ = ["Unit", "quote_units", "sentence_tokens", "MAX_LIST_CHARS"]

#: The longest lead-in + list quoted as one unit, in characters.
MAX_LIST_CHARS = 900

_BLANK = re.compile(r"\n[ \t\r\f\v]*\n")
# "•", "-", "–", "▪", "◦", "*", "1.", "1)", "a.", "a)", "(a)", "(1)", "i."
_ITEM = re.compile(r"^(?:[•●○◦▪■□➢►\-–—*]\s*|\(?(?:\d{1,2}|[a-zA-Z]|[ivx]{1,4})[.)]\s+)")
_TERMINAL = re.compile(r"[.?!…][\"'”’)\]]*$")
_LEADIN = re.compile(r":[\"'”’)\]]*$")


@dataclass(frozen=True, slots=True)
class Unit:
    """A quotable span ``[start, end)`` of the text, its content tokens, and its kind:
    ``"sentence"``, ``"list"`` (a lead-in with its items) or ``"item"`` (a list item
    whose lead-in did not fit, or that has none)."""

    start: int
    end: int
    tokens: frozenset[str]
    kind: str


def _paragraphs(text: str) -> list[tuple[int, int]]:
    out, pos = [], 0
    for m in _BLANK.finditer(text):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, len(text)))
    spans = []
    for a, b in out:
        piece = text[a:b]
        core = piece.strip()
        if core:
            a += len(piece) - len(piece.lstrip())
            spans.append((a, a + len(core)))
    return spans


def _is_item(s: str) -> bool:
    return bool(_ITEM.match(s))


def _is_table(s: str) -> bool:
    """Table rows as the PDF reader writes them: cells separated by " | "."""
    return " | " in s


def _is_heading(s: str) -> bool:
    """A short line without terminal punctuation that is not a list item."""
    if _is_item(s) or _TERMINAL.search(s) or _LEADIN.search(s):
        return False
    return len(s.split()) <= 20


@functools.lru_cache(maxsize=4096)
def sentence_tokens(text: str) -> tuple[tuple[int, int, frozenset[str]], ...]:
    """Plain sentence spans of ``text`` with their content tokens (cached; what the
    support model was calibrated on)."""
    out = []
    for a, b in split_sentences(text):
        toks = frozenset(content_tokens(text[a:b]))
        if toks:
            out.append((a, b, toks))
    return tuple(out)


def _sentences(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """Sentences of ``text[a:b]``, a sentence cut by a blank line (a page or column
    break) joined back into one."""
    out: list[tuple[int, int]] = []
    for sa, sb in split_sentences(text, a, b):
        if out and text[sa].islower() and not _TERMINAL.search(text[out[-1][0] : out[-1][1]]):
            out[-1] = (out[-1][0], sb)
        else:
            out.append((sa, sb))
    return out


def _unit(text: str, a: int, b: int, kind: str) -> Unit | None:
    toks = frozenset(content_tokens(text[a:b]))
    return Unit(a, b, toks, kind) if toks else None


@functools.lru_cache(maxsize=4096)
def quote_units(text: str) -> tuple[Unit, ...]:
    """The quotable units of ``text`` in order (see the module docstring). Units may
    overlap (a list unit contains items that are also units when the list is long)."""
    paras = _paragraphs(text)
    # join a paragraph that starts in lower case to the one before it when that one
    # has no terminal punctuation: a sentence cut by a page or column break
    joined: list[list[int]] = []
    for a, b in paras:
        first = text[a]
        if (
            joined
            and first.islower()
            and not _is_item(text[a:b])
            and not _TERMINAL.search(text[joined[-1][0] : joined[-1][1]])
            and not _LEADIN.search(text[joined[-1][0] : joined[-1][1]])
        ):
            joined[-1][1] = b
        else:
            joined.append([a, b])
    units: list[Unit] = []
    i, n = 0, len(joined)
    while i < n:
        a, b = joined[i]
        para = text[a:b]
        if (_is_item(para) and not _LEADIN.search(para)) or _is_table(para):
            u = _unit(text, a, b, "item")
            if u:
                units.append(u)
            i += 1
            continue
        heading = _is_heading(para)
        sents = _sentences(text, a, b) if not heading else [(a, b)]
        # every full sentence but a final lead-in is a unit of its own
        last_a, last_b = sents[-1]
        lead = text[last_a:last_b]
        colon = _LEADIN.search(lead) is not None

        def item_at(j: int) -> bool:
            p = text[joined[j][0] : joined[j][1]]
            # after a lead-in ending in ":", short unpunctuated lines are items too
            # (bullets the PDF lost: "Chest pain Fever Chills")
            return _is_item(p) or (colon and (_is_heading(p) or _is_table(p)))

        leads_list = i + 1 < n and item_at(i + 1) and (heading or colon)
        for sa, sb in sents if not heading else []:
            if (sa, sb) == (last_a, last_b) and _LEADIN.search(lead):
                break  # a lead-in is quoted only with its list
            s = text[sa:sb]
            if s[:1].islower() and units == [] and sa == a and a == 0:
                continue  # the chunk starts mid-sentence (an overlap cut): a fragment
            u = _unit(text, sa, sb, "sentence")
            if u:
                units.append(u)
        if leads_list:
            # the lead-in (a sentence ending in ":" or a heading over a list) with the
            # items that follow it, while they fit under the cap
            start = last_a
            end = None
            j = i + 1
            while j < n and item_at(j):
                if joined[j][1] - start > MAX_LIST_CHARS and end is not None:
                    break
                end = joined[j][1]
                j += 1
            if end is not None and end - start <= MAX_LIST_CHARS:
                u = _unit(text, start, end, "list")
                if u:
                    units.append(u)
                    # its items are quoted with it, never alone
                    i = j
                    continue
        i += 1
    return tuple(units)
