"""Sentence splitting for biomedical prose, returning exact character spans.

:func:`split_sentences` returns ``(start, end)`` offsets into the string it is given, so
that ``text[start:end]`` is a sentence with its surrounding whitespace stripped. It never
rewrites the text: chunk spans and citations built on it stay exact.

The splitter is rule-based and deliberately small. A *candidate* boundary is a run of
terminal punctuation (``.``, ``?``, ``!``, ``…``), optionally followed by closing quotes
or brackets, then whitespace. A candidate is kept unless the evidence on either side says
otherwise:

* the word before it is an abbreviation that does not end sentences (``e.g.``, ``i.e.``,
  ``vs.``, ``Fig.``, ``Dr.``, ``approx.``, ...), or one that ends them only before a
  capitalised word (``et al.``, ``etc.``, ``Inc.``);
* the word before it is a list number (``1.`` at the start of a sentence) or a single
  letter used as an initial before a capitalised name;
* the next word starts in lower case (``E. coli``, ``H. pylori``, ``p. 12``), unless it
  is a gene or molecule name that starts in lower case (``mTORC2``, ``cGAS``, ``p53``,
  ``siRNA``) after an ordinary word.

A blank line always ends a sentence (the sections of a :class:`~medrag.types.Document`
are joined by blank lines). Decimal points (``2.5 mg/kg``, ``p < 0.05``) are never
candidates because no whitespace follows them.

On SciFact's 5,183 gold-segmented abstracts the splitter reaches a boundary F1 of about
0.99 (``benchmarks/bench_sentences.py``), above pysbd, syntok, segtok and blingfire on the
same data, and splits several hundred thousand sentences per second.
"""

from __future__ import annotations

import re

__all__ = ["split_sentences"]

# Terminal punctuation, then closing quotes/brackets, then whitespace (captured so the
# blank-line rule can see it). A lone "." inside "2.5" or "e.g.," never matches.
_CANDIDATE = re.compile(r"[.?!…]+[\"'”’)\]]*(?:[ \t]+[\"”’]+(?=\s))?(\s+)")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")
_NEXT_WORD = re.compile(r"\S+")

# Abbreviations that (almost) never end a sentence: a boundary is never placed after them.
_NEVER_END = frozenset(
    """
    e.g eg i.e ie cf viz vs approx ca cca dr mr mrs ms prof st fig figs eq eqs
    ref refs suppl tab sect sec chap ch nos vol vols pp eds dept univ subsp var nr incl
    """.split()
)
# Abbreviations that end a sentence when a capitalised word follows ("et al. We ...").
_MAY_END = frozenset(
    """
    al etc inc ltd co corp jr sr resp spp sp ssp ibid no
    conc temp wt max min avg mol dil diam
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()
)
# Before a number these never end a sentence ("Fig. 2", "No. 5", "Jan. 2010", "p. 12").
_BEFORE_NUMBER = frozenset(
    """
    fig figs eq eqs ref refs no nos vol vols p pp tab suppl sect sec chap ch
    approx ca cca jan feb mar apr jun jul aug sep sept oct nov dec ver art
    """.split()
)
# Words that typically open a sentence (used after dotted abbreviations like "U.S.").
_OPENING_WORDS = frozenset(
    """
    a an the this that these those there their it its we our they he she in on at by for
    from of to with after before during when while since although though however but
    and or as if because both each all most many some several no none one two three
    overall further furthermore moreover finally thus therefore hence additionally also
    here such similar similarly patients results conclusions methods data participants
    """.split()
)
_CLOSERS = "\"'”’)]"
_OPENERS = "\"'“‘([{"
_DOTTED = re.compile(r"(?:[a-z]{1,4}\.)+[a-z]{1,4}")  # e.g, i.e, u.s, s.c, p.o, a.m
_HEADING_LIST_NUMBER = re.compile(r"\d{1,3}")
_COMPOUND = re.compile(r"[-–/]")


def _norm(word: str) -> str:
    """The word before a period, lowercased, without brackets or the final punctuation."""
    return word.lstrip(_OPENERS).rstrip(_CLOSERS).rstrip(".?!…").lower()


def _is_acronym(word: str) -> bool:
    """"MS", "NO", "WT": upper-case acronyms are words, not abbreviations like "Ms."."""
    w = word.lstrip(_OPENERS).rstrip(_CLOSERS).rstrip(".?!…")
    return len(w) >= 2 and w.isupper()


def _is_lower_case_name(word: str) -> bool:
    """True for names that start in lower case but are not words: mTORC2, cGAS, p53."""
    w = word.lstrip(_OPENERS)
    if not w or not w[0].islower():
        return False
    rest = w[1:].split("-")[0].rstrip(_CLOSERS + ".,;:")
    return any(c.isupper() or c.isdigit() for c in rest)


def _starts_line(text: str, lo: int, i: int) -> bool:
    """True when only spaces or tabs stand between a newline (or ``lo``) and ``i``."""
    j = i - 1
    while j >= lo and text[j] in " \t":
        j -= 1
    return j < lo or text[j] == "\n"


def _is_boundary(text: str, lo: int, dot: int, nxt_start: int, hi: int, sent_start: int) -> bool:
    """Decide one candidate: its punctuation run starts at ``dot``, the next word at
    ``nxt_start``; ``sent_start`` is where the current sentence began."""
    m = _NEXT_WORD.match(text, nxt_start, hi)
    nxt = m.group(0) if m else ""
    first = nxt[:1]
    if not first:
        return False
    punct = text[dot]
    if punct in "?!…":
        return not first.islower()
    if first == ".":
        return False  # dot leaders in a table of contents: "Methods . . . . 12"
    word_start = dot
    floor = max(lo, dot - 64)
    while word_start > floor and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start : dot + 1]
    if word == ".":
        return False  # a detached period (dot leaders, "Pistil . . .")
    if text.startswith("..", dot):  # an ellipsis "..." behaves like "…"
        return not first.islower()
    base = _norm(word)
    acronym = _is_acronym(word)
    dotted = _DOTTED.fullmatch(base) is not None
    # The last piece of a compound: "Sulfolobus–E. coli", "anti-S. aureus".
    tail = _COMPOUND.split(base)[-1]
    if first.islower() or first in ",;:%)]":
        # "E. coli", "et al. reported", "p. 12", "e.g. aspirin": no boundary. After an
        # ordinary word, though, a lower-case start is a sentence that opens with a gene
        # or molecule name ("... in vitro. mTORC1 ...", "... elegans. daf-2 encodes").
        if not first.isalpha() or dotted or len(base) < 3 or (len(tail) == 1 and tail.isalpha()):
            return False
        if not acronym and (base in _NEVER_END or base in _MAY_END or base in _BEFORE_NUMBER):
            return False
        return True
    if (first.isdigit() or first in "±+−-<>=≤≥~") and base in _BEFORE_NUMBER:
        return False  # "Fig. 2", "No. 5", "p. 12", "approx. 20"
    if dotted:
        # "e.g. Aspirin" never ends; "in the U.S. The ..." does but "U.S. Food and Drug
        # Administration" does not: after U.S., a.m., Ph.D. only a word that typically
        # opens a sentence ends one.
        return base not in ("e.g", "i.e") and nxt.rstrip(",;:").lower() in _OPENING_WORDS
    if not acronym:
        if base in _NEVER_END:
            return False
        if base in _MAY_END:
            # "et al. We ..." ends; "et al. (2017) showed" and "et al., 2017" do not.
            return first.isupper()
    stripped = word.lstrip(_OPENERS)
    at_start = word_start <= sent_start or _starts_line(text, lo, word_start)
    if at_start and _HEADING_LIST_NUMBER.fullmatch(base):
        # "1. Introduction", "2. Patients were ...": a list number opening a sentence.
        return False
    if len(tail) == 1 and tail.isalpha() and stripped[:1].isupper():
        # A single capital: an initial ("J. Smith", "Lipman, D. J.") or a sentence that
        # ends in a letter ("vitamin C. The ..."). An initial follows another initial,
        # a surname with a comma, or "&"; a sentence cannot end in its first word.
        if len(base) > 1:
            return True  # "LDL-C. Moreover"
        if at_start:
            return False  # "... hosts. S. Typhimurium invades ..."
        before = text[max(lo, word_start - 40) : word_start].split()
        if before:
            prev = before[-1].lstrip(_OPENERS)
            if len(prev) == 2 and prev[0].isupper() and prev[1] == ".":
                return False
            if prev == "&" or (
                prev.endswith(",") and len(prev) > 3 and prev[0].isupper() and prev[1:-1].isalpha()
            ):
                return False
    return True


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` into sentences.

    Args:
        text: the string to split (a whole document text, typically).
        start, end: the span of ``text`` to split; offsets in the result are into
            ``text`` itself, not into the span. Out-of-range values are clamped.

    Returns:
        ``(s, e)`` pairs in order, non-overlapping, each inside ``[start, end)``, with
        ``text[s:e]`` a sentence stripped of surrounding whitespace. Whitespace-only input
        gives an empty list. The spans cover every non-whitespace character of the span.
    """
    n = len(text)
    hi = n if end is None else max(0, min(end, n))
    lo = max(0, min(start, hi))
    cuts: list[int] = []  # offsets where a new sentence begins (its first character)
    sent_start = lo
    for m in _CANDIDATE.finditer(text, lo, hi):
        nxt_start = m.end()
        if nxt_start >= hi:
            break
        ws = m.group(1)
        if ("\n" in ws and _BLANK_LINE.search(ws)) or _is_boundary(
            text, lo, m.start(), nxt_start, hi, sent_start
        ):
            cuts.append(nxt_start)
            sent_start = nxt_start
    # Blank lines are hard boundaries even without terminal punctuation.
    if "\n" in text:
        for m in _BLANK_LINE.finditer(text, lo, hi):
            cuts.append(m.end())
        cuts = sorted(set(cuts))
    spans: list[tuple[int, int]] = []
    bounds = [lo, *cuts, hi]
    for a, b in zip(bounds, bounds[1:]):
        piece = text[a:b]
        core = piece.strip()
        if core:
            a += len(piece) - len(piece.lstrip())
            spans.append((a, a + len(core)))
    return spans
