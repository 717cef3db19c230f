"""Grades of recommendations as printed, and their normalized form.

Each grading system is one :class:`Grader`: a pattern that finds the grade as printed and a
function that maps the match to a :class:`Grade`. :data:`GRADERS` is the registry, tried in
order; :func:`register` adds a system (a new guideline family is one small function).
A phrase that looks like a grade but that no grader can map ("(Grade 1B)", "(Level II)")
keeps its raw text with ``system="other"``, its strength read from the wording.

The mapping, system by system (strength / certainty):

============  ==========================================================================
GRADE         "Strong" -> strong; "weak", "conditional", "discretionary" -> conditional;
              "good practice" -> good-practice. Certainty: the level named before
              "quality"/"certainty"/"evidence" (very low / low / moderate / high); a range
              ("moderate to low") takes the lower; several outcome-specific levels take the
              first; guideline-group consensus or expert opinion -> expert opinion;
              "not graded" -> none. (Guyatt et al., BMJ 2008;336:924.)
CDC (GRADE)   recommendation category A -> strong, B -> conditional; evidence type 1 high,
              2 moderate, 3 low, 4 very low (CDC opioid guideline 2022, ACIP GRADE).
ACC/AHA       COR 1 -> strong; 2a, 2b -> conditional; 3: No Benefit, 3: Harm -> against.
              LOE A high; B-R, B-NR moderate; C-LD low; C-EO expert opinion
              (Halperin et al., Circulation 2016;133:1426). A value statement ("Value
              Statement: Uncertain Value (B-NR)") rates cost value, not a class:
              ungraded, certainty from its LOE (Anderson et al., Circulation
              2014;129:2329).
USPSTF        A, B -> strong; C -> conditional; D -> against; I statement -> ungraded.
              Certainty of net benefit: A high, B/C/D moderate, I low (USPSTF procedure
              manual, 2021).
SIGN          SIGN 50 letters (A-D, "Grade X, Level Y", "(Grade X)"): certainty A high,
              B moderate, C low, D very low, evidence level 4 -> expert opinion; strength
              from the wording. SIGN "R" statements: strength from the wording; certainty
              not stated. Good-practice points (a tick, "GPP") -> good-practice.
NICE-wording  no printed grade: "offer", "do not", "should", imperative verbs -> strong;
              "consider" -> conditional (NICE, "Making decisions using NICE guidelines").
============  ==========================================================================

Wording (:func:`wording_strength`): the first modal of the statement decides:
"consider", "may", "can", "could", "might", "suggest" -> conditional; "should", "must",
"is recommended", "do not", "offer" -> strong; none -> strong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Grade", "Grader", "GRADERS", "register", "find_grades", "wording_strength"]

STRENGTHS = ("strong", "conditional", "against", "good-practice", "ungraded")
CERTAINTIES = ("high", "moderate", "low", "very low", "expert opinion")


@dataclass(frozen=True, slots=True)
class Grade:
    """A grade as printed (``raw``), normalized. ``strength`` None means: decide from the
    statement's wording (:func:`wording_strength`)."""

    system: str | None
    strength: str | None
    certainty: str | None
    raw: str | None


@dataclass(frozen=True, slots=True)
class Grader:
    """One grading system: ``pattern`` finds the printed grade; ``normalize`` maps the
    match to a :class:`Grade` (or None: not a grade after all). ``trailing``: the grade
    follows its statement (else it is a marker before it). ``in_tables``: also looked
    for inside table rows."""

    name: str
    pattern: re.Pattern[str]
    normalize: Callable[[re.Match[str]], Grade | None]
    trailing: bool = True
    in_tables: bool = False


GRADERS: list[Grader] = []


def register(grader: Grader) -> Grader:
    """Add a grading system to :data:`GRADERS` (tried after the ones already there)."""
    GRADERS.append(grader)
    return grader


_LEVEL = r"(?:very[\s-]+low|low|moderate|high)"
_LEVEL_AT = re.compile(
    rf"(?P<a>{_LEVEL})(?:\s+to\s+(?P<b>{_LEVEL}))?[\s-]*(?:-?\s*(?:quality|certainty|grade)\b|evidence\b)",
    re.I,
)
_ANY_LEVEL = re.compile(rf"\b(?P<a>{_LEVEL})(?:\s+to\s+(?P<b>{_LEVEL}))?\b", re.I)
_ORDER = {"high": 3, "moderate": 2, "low": 1, "very low": 0}


def _level(s: str) -> str:
    return " ".join(s.lower().replace("-", " ").split())


def _certainty(body: str) -> str | None:
    """The certainty a GRADE phrase states (see the module docstring for the rules)."""
    m = _LEVEL_AT.search(body) or _ANY_LEVEL.search(body)
    if m:
        a = _level(m.group("a"))
        b = _level(m.group("b")) if m.group("b") else None
        return min(a, b, key=_ORDER.__getitem__) if b else a
    if re.search(r"consensus|expert opinion|GDG", body, re.I):
        return "expert opinion"
    return None


def _grade_strength(word: str) -> str:
    w = word.lower()
    if w == "strong":
        return "strong"
    if w.startswith("good"):
        return "good-practice"
    return "conditional"


def _gra_paren(m: re.Match[str]) -> Grade | None:
    body = m.group("body")
    if not re.search(r"recommend|evidence|quality|certainty|consensus|graded|statement|practice", body, re.I):
        return None
    strength = _grade_strength(m.group("s"))
    certainty = None if strength == "good-practice" else _certainty(body[len(m.group("s")):])
    return Grade("GRADE", strength, certainty, " ".join(body.split()))


register(Grader(
    "GRADE (parenthetical)",
    re.compile(
        r"\(\s*(?P<body>(?P<s>strong|weak|conditional|discretionary|good[\s-]+practice)\b"
        r"(?:[^()]|\([^()]{0,300}\)){0,400}?)\)",
        re.I,
    ),
    _gra_paren,
))


def _gra_slash(m: re.Match[str]) -> Grade | None:
    return Grade("GRADE", _grade_strength(m.group("s")), _level(m.group("c")), " ".join(m.group(0).strip("()").split()))


register(Grader(
    "GRADE (strength/certainty)",
    re.compile(rf"\((?P<s>strong|weak|conditional)\s*/\s*(?P<c>{_LEVEL})\s+(?:grade|quality|certainty)\s+of\s+evidence\)", re.I),
    _gra_slash,
))


def _gra_bare(m: re.Match[str]) -> Grade | None:
    return Grade("GRADE", _grade_strength(m.group("s")), _level(m.group("c")), " ".join(m.group(0).split()))


register(Grader(  # unparenthesized, as in a boxed statement: "Strong recommendation, low quality of evidence"
    "GRADE (bare)",
    re.compile(
        rf"(?<!\()\b(?P<s>strong|conditional|weak|discretionary)\s+recommendation\s*[,;]\s*"
        rf"(?P<c>{_LEVEL})[- ]+(?:quality|certainty)\s+(?:of\s+)?evidence\b",
        re.I,
    ),
    _gra_bare,
))

_CDC_TYPE = {"1": "high", "2": "moderate", "3": "low", "4": "very low"}


register(Grader(
    "CDC category/evidence type",
    re.compile(r"\(\s*recommendation\s+category\s*:?\s*(?P<c>[AB])\s*,\s*evidence\s+type\s*:?\s*(?P<t>[1-4])\s*\)", re.I),
    lambda m: Grade("GRADE", "strong" if m.group("c").upper() == "A" else "conditional",
                    _CDC_TYPE[m.group("t")], " ".join(m.group(0).strip("()").split())),
))

_SIGN_LETTER = {"A": "high", "B": "moderate", "C": "low", "D": "very low"}


def _sign50(m: re.Match[str]) -> Grade | None:
    letter = m.group("g").upper()
    level = re.sub(r"\s+", "", m.groupdict().get("l") or "")
    certainty = "expert opinion" if level.startswith("4") else _SIGN_LETTER[letter]
    return Grade("SIGN", None, certainty, " ".join(m.group(0).strip("()[]").split()))


register(Grader(
    "SIGN 50 grade and level",
    re.compile(r"\bGrade\s+(?P<g>[A-D])\s*,\s*Level\s+(?P<l>[1-4](?:\s*[+-]\s*[+-]?)?)", re.I),
    _sign50,
))
register(Grader(
    "letter grade in brackets",
    re.compile(r"[(\[]\s*Grade\s+(?P<g>[A-D])\s*[)\]]", re.I),
    _sign50,
))
register(Grader(  # a good-practice point's trailing "GPP" (or a leading one: see find_grades)
    "good practice point",
    re.compile(r"(?:^|(?<=[.)]\s)|(?<=\n))GPP(?=\s+[A-Z(]|\s*$)", re.M),
    lambda m: Grade("SIGN", "good-practice", None, "GPP"),
))

_USPSTF = {"A": ("strong", "high"), "B": ("strong", "moderate"), "C": ("conditional", "moderate"),
           "D": ("against", "moderate")}


def _uspstf(m: re.Match[str]) -> Grade | None:
    g = m.group("g")
    if g == "I":
        return Grade("USPSTF", "ungraded", "low", "I statement")
    strength, certainty = _USPSTF[g]
    return Grade("USPSTF", strength, certainty, f"{g} recommendation")


register(Grader(  # a sentence of its own after the statement: "... (Table 1). A recommendation."
    "USPSTF letter",
    re.compile(r"(?<=[.)]\s)(?:(?P<g>[A-D]) recommendation|(?P<g2>I) statement)\.(?=\s|$)"),
    lambda m: _uspstf_fix(m),
))


def _uspstf_fix(m: re.Match[str]) -> Grade | None:
    if m.group("g2"):
        return Grade("USPSTF", "ungraded", "low", "I statement")
    return _uspstf(m)


_COR = {"1": "strong", "2a": "conditional", "2b": "conditional"}
_LOE = {"A": "high", "B-R": "moderate", "B-NR": "moderate", "C-LD": "low", "C-EO": "expert opinion"}


def _acc_aha(m: re.Match[str]) -> Grade | None:
    cor = " ".join(m.group("cor").split())
    loe = m.group("loe").upper()
    strength = "against" if cor.startswith("3") else _COR.get(cor.lower())
    if strength is None:
        return None
    return Grade("ACC/AHA", strength, _LOE.get(loe), f"COR {cor}, LOE {loe}")


register(Grader(  # a row of a class-of-recommendation table: "1 | A | 1. In patients ..."
    "ACC/AHA class and level",
    re.compile(
        r"^(?:COR\s*)?(?P<cor>1|2a|2b|3\s*:\s*(?:No\s+Benefit|Harm))\s*\|?\s*(?:LOE\s*)?"
        r"(?P<loe>A|B-R|B-NR|C-LD|C-EO)\s*\|?\s*(?=\d{1,2}\.\s)",
        re.I | re.M,
    ),
    _acc_aha,
    trailing=False,
    in_tables=True,
))


register(Grader(  # a value statement row: "Value Statement: High Value (A) | 2. ..."
    "ACC/AHA value statement",
    re.compile(
        r"^Value\s+Statement\s*:\s*(?P<v>[A-Za-z ]{2,40}?)\s*\(\s*(?P<loe>A|B-R|B-NR|C-LD|C-EO)\s*\)"
        r"\s*\|?\s*(?=\d{1,2}\.\s)",
        re.M,
    ),
    lambda m: Grade("ACC/AHA", "ungraded", _LOE.get(m.group("loe")),
                    f"Value Statement: {' '.join(m.group('v').split())} ({m.group('loe')})"),
    trailing=False,
    in_tables=True,
))


register(Grader(  # any other printed grade: kept as printed, system "other"
    "unknown grading phrase",
    re.compile(
        r"\((?P<body>(?:(?:evidence|recommendation|quality)\s+)?(?:grade|level(?:\s+of\s+evidence)?|class|category"
        r"|strength|LoE|GoR)\s*:?\s*(?:[A-D][+-]?|[1-5][a-c]?[+-]{0,2}|I{1,3}V?|IV|V)\b[^()]{0,60})\)"
        r"(?=\s*[.;]?\s*(?:$|\n|(?-i:[A-Z])))",
        re.I,
    ),
    lambda m: Grade("other", None, None, " ".join(m.group("body").split())),
))


@dataclass(frozen=True, slots=True)
class Found:
    """A grade found in a text: where (``start``, ``end``), by which grader, and what."""

    start: int
    end: int
    grader: Grader
    grade: Grade


def find_grades(text: str, *, table: bool = False) -> list[Found]:
    """Every grade in ``text``, in text order, without overlaps (where two overlap, the
    grader registered first in :data:`GRADERS` wins)."""
    hits: list[Found] = []
    for g in GRADERS:
        if table and not g.in_tables:
            continue
        for m in g.pattern.finditer(text):
            grade = g.normalize(m)
            if grade is not None:
                hits.append(Found(m.start(), m.end(), g, grade))
    out: list[Found] = []
    for f in hits:  # in registry order: an earlier grader wins an overlap
        if all(f.end <= o.start or f.start >= o.end for o in out):
            out.append(f)
    out.sort(key=lambda f: f.start)
    return out


def looks_graded(text: str) -> bool:
    """True when ``text`` holds a printed grade (such a paragraph is not a heading)."""
    return any(g.trailing and g.pattern.search(text) for g in GRADERS if g.name != "good practice point")


_MODAL = re.compile(
    r"\b(?P<c>(?:should|may|can|could|might)\s+(?:also\s+)?be\s+considered|consider|may|can|could|might"
    r"|suggests?)\b"
    r"|\b(?P<s>should|must|shall|(?:is|are)\s+(?:not\s+)?recommended|recommends?|do\s+not|offer|ensure)\b",
    re.I,
)


def wording_strength(statement: str) -> str:
    """Strength from the wording: the first modal of the statement decides ("should",
    "must", "is recommended", "do not", "offer" -> ``"strong"``; "consider", "may",
    "can", "could", "might", "suggest", "should be considered" -> ``"conditional"``);
    no modal -> ``"strong"`` (a plain statement of what is done)."""
    m = _MODAL.search(statement[:400])
    return "conditional" if m and m.group("c") else "strong"
