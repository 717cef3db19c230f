"""Recommendations: statements and their grades, in any grading system (:mod:`.grades`).

A recommendation is found in one of three ways:

1. **A trailing grade** ("... (Strong recommendation, low quality evidence)", "Grade A,
   Level 1+", "A recommendation.", "(recommendation category: A, evidence type: 4)",
   "GPP"): the statement is the text before it, back to the previous grade in the same
   paragraph, or, when the grade opens its paragraph (a boxed grade line), back over the
   paragraphs before it to a heading, a "Recommendation" label or the previous
   recommendation. A statement may run across a column or page break.
2. **A leading grade** (a row of a class-of-recommendation table: "1 | A | 1. In
   patients ..."): the statement is the rest of the row.
3. **A marker or a number with no grade**: SIGN's "R" and good-practice ticks, numbered
   NICE-style recommendations ("1.1.4 Offer aspirin ...", strength from the verb), and a
   statement under a "GOOD PRACTICE STATEMENT" label. Its strength comes from the
   wording (:func:`~.grades.wording_strength`).

Every recommendation's ``text`` is exactly ``Document.text[start:end]``.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...types import Recommendation, Section
from .grades import Grade, find_grades, wording_strength

if TYPE_CHECKING:
    from .structure import _Placed

_REC_LABEL = re.compile(
    r"^(?:key\s+)?(recommendations?|recommandations?|good practice statements?|good practice points?)"
    r"(?:\s+(?P<num>\d{1,2}(?:\.\d{1,2}){0,2}[a-z]?))?\s*[.:]?$",
    re.I,
)
_GPS_LABEL = re.compile(r"^good practice (statements?|points?)\s*:?$", re.I)
# What may open a statement and is not part of it: bullets, a margin grade letter or
# marker, a "Recommendation 1.2" label, a list number.
_LEAD = re.compile(  # used with .match(text, pos): no "^"
    r"(?:[\u2022\u25a0\u25cf\u2023\u2043›»\-–*]+\s*"
    r"|(?P<mark>R|GPP|[A-D])\s+(?=[A-Z(\d])"
    r"|[\u2713\u2714]\s*"
    r"|GOOD PRACTICE (?:STATEMENT|POINT)S?\s*:?\s+(?=[A-Z])"
    r"|(?P<label>(?:(?i:recommendations?|recommandations?)\s*(?P<num>\d+(?:\.\d+)*[a-z]?)\s*[.:]?"
    r"|RECOMMENDATIONS?\s*:?|RECOMMANDATIONS?\s*:?|(?i:recommendations?)\s*:)\s+)"
    r"|(?P<num2>\d{1,2}(?:\.\d{1,2}){0,2}[a-z]?)[.)]?\s+(?=[A-Z(])"
    r")"
)
_GPS_LEAD = re.compile(r"^GOOD PRACTICE (?:STATEMENT|POINT)S?\s*:?\s+(?=[A-Z])")  # a box label
_SIGN_R = re.compile(r"^R\s+(?=[A-Z(\d])")
_GPP_LEAD = re.compile(r"^GPP\s+(?=[A-Z(])")
_TICK = re.compile(r"^[\u2713\u2714]\s*(?=[A-Z(\d])")
_NUMBERED = re.compile(r"^(?P<num>\d{1,2}\.\d{1,2}\.\d{1,2})\s+(?=[A-Z(])")
_YEAR_TAG = re.compile(r"\[(?:new\s+)?(?:19|20)\d\d(?:[^\]]{0,40})\]")
_IMPERATIVE = re.compile(
    r"^(?:offer|consider|do\s+not|don't|use|give|refer|ensure|assess|discuss|provide|exclude|"
    r"admit|perform|treat|monitor|measure|start|stop|be\s+aware|explain|arrange|check|seek|"
    r"take|think\s+about|avoid|record|review|recognise|recognize|advise|continue|encourage|"
    r"establish|inform|involve|maintain|manage|repeat|support|tell|test|carry\s+out|follow)\b",
    re.I,
)
_END = re.compile(r"[.!?:;)\]]\s*$")
_MIN_STATEMENT = 15  # characters of letters a statement needs


def _letters(s: str) -> int:
    return sum(c.isalpha() for c in s)


def find_recommendations(
    placed: list["_Placed"],
    text: str,
    heads: set[int],
    body_secs: list[Section],
    page_at: Callable[[int], int],
) -> list[Recommendation]:
    """The recommendations among the placed paragraphs, in text order (no overlaps)."""
    n = len(placed)
    label = [bool(_REC_LABEL.match(p.text)) for p in placed]
    stop = [i in heads or label[i] or placed[i].para.table for i in range(n)]
    found = [find_grades(p.text, table=p.para.table) for p in placed]
    # where a grade letter set apart in the margin opens a paragraph ("A" / "Oral
    # glucose ..."): only there is a leading "A" a marker and not the article
    marked = {p.start for p in placed if p.para.lines and p.para.lines[0].margin_mark}

    def section_label(off: int) -> str | None:
        out = None
        for s in body_secs:
            if s.start <= off < max(s.end, s.start + 1):
                out = s.label
        return out

    def make(start: int, end: int, grade: Grade | None, number: str | None, system: str | None = None,
             strength: str | None = None) -> Recommendation | None:
        start, number2 = _clean_start(text, start, end, marked)
        number = number or number2
        while end > start and text[end - 1].isspace():
            end -= 1
        if end <= start or _letters(text[start:end]) < _MIN_STATEMENT:
            return None
        statement = text[start:end]
        if grade is not None:
            system = grade.system
            strength = grade.strength or wording_strength(statement)
            certainty, raw = grade.certainty, grade.raw
        else:
            certainty, raw = None, None
            strength = strength or wording_strength(statement)
        first, last = page_at(start), page_at(max(start, end - 1))
        return Recommendation(
            text=statement, start=start, end=end, page=first, strength=strength,
            certainty=certainty, label=section_label(start), number=number, grade=raw,
            system=system, pages=tuple(range(first, last + 1)),
        )

    recs: list[Recommendation] = []
    last_end = 0  # where the previous recommendation (or a heading) ended
    last_rec_end = 0  # where the previous recommendation ended
    for i, p in enumerate(placed):
        if i in heads or label[i]:
            last_end = max(last_end, p.end)
        prev_local = 0
        for f in found[i]:
            g_end = p.start + f.end
            if f.grader.trailing and g_end < p.end and text[g_end] in ".;":
                g_end += 1  # the statement's own full stop after its grade: "(Grade B)."
            if not f.grader.trailing:
                end = _run_end(placed, stop, i, n)
                rec = make(g_end, end, f.grade, None)
                if rec:
                    recs.append(rec)
                    last_end = last_rec_end = rec.end
                prev_local = f.end
                continue
            before = p.text[prev_local:f.start]
            goes_on = i > 0 and not prev_local and _continues(placed, stop, found, i, last_end)
            if prev_local or _letters(before) >= _MIN_STATEMENT and not p.text[:1].islower() and not goes_on:
                start = p.start + prev_local
            else:  # the grade opens its paragraph, or the paragraph goes on from above
                first = _statement_first(placed, stop, i, last_end)
                if first == i and f.start < 3 and i >= 2 and i - 1 in heads and not stop[i - 2] \
                        and placed[i - 2].end > last_rec_end and not found[i - 2]:
                    # a heading read between a statement and its grade line (the grade
                    # opens the next column): the statement is the paragraph above it
                    rec = make(placed[i - 2].start, placed[i - 2].end, f.grade, None)
                    prev_local = g_end - p.start
                    last_end = last_rec_end = max(last_end, g_end)
                    if rec:
                        recs.append(rec)
                    continue
                start = placed[first].start
            start = max(start, last_end)
            rec = make(start, g_end, f.grade, _label_number(placed, label, start))
            prev_local = g_end - p.start
            last_end = last_rec_end = max(last_end, g_end)
            if rec:
                recs.append(rec)

    # Statements marked, numbered or labelled, with no grade of their own.
    covered = [(r.start, r.end) for r in recs]

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in covered)

    for i, p in enumerate(placed):
        if stop[i] or not free(p.start, p.end):
            continue
        t = p.text
        kind = None
        if _TICK.match(t):
            kind = ("SIGN", "good-practice", "good practice point", None)
        elif _SIGN_R.match(t):
            kind = ("SIGN", None, "R", None)
        elif _GPP_LEAD.match(t):  # a good-practice point marked in the margin: "GPP Treatment ..."
            kind = ("SIGN", "good-practice", "GPP", None)
        elif (m := _NUMBERED.match(t)) and (_IMPERATIVE.match(t[m.end():]) or _YEAR_TAG.search(
                text, p.start, _run_end(placed, stop, i, n, marker=True))):
            kind = ("NICE-wording", None, None, m.group("num"))
        elif i > 0 and _GPS_LABEL.match(placed[i - 1].text):
            kind = ("GRADE", "good-practice", " ".join(placed[i - 1].text.lower().split()), None)
        elif m2 := _GPS_LEAD.match(t):
            kind = ("GRADE", "good-practice", " ".join(m2.group(0).lower().split()), None)
        if kind is None:
            continue
        system, strength, raw, number = kind
        end = _run_end(placed, stop, i, n, marker=True)
        if not free(p.start, end):
            continue
        grade = Grade(system, strength, None, raw) if raw else None
        rec = make(p.start, end, grade, number, system=system, strength=strength)
        if rec:
            recs.append(rec)
            covered.append((rec.start, rec.end))
    recs.sort(key=lambda r: r.start)
    return _ungraded_in_lists(placed, stop, text, recs, make)


_LEAD_LABEL = re.compile(r"^[A-Z][a-z]+(?:\s+[a-z]+)?\s*:")  # "Comment:", "Remarks:"
_RECOMMENDING = re.compile(r"\b(?:should|must|shall|(?:is|are)\s+(?:not\s+)?recommended|recommends?)\b", re.I)


def _ungraded_in_lists(placed: list["_Placed"], stop: list[bool], text: str, recs: list[Recommendation],
                       make: Callable[..., Recommendation | None]) -> list[Recommendation]:
    """Add the statements without a grade set in a list of graded ones: a paragraph
    right after a recommendation that ends in its printed grade and right before the
    next recommendation (no heading between),
    that is one or more whole sentences with a recommending verb ("should", "is
    recommended") and no label ("Comment:"): ``strength="ungraded"``, no system."""
    if len(recs) < 2:
        return recs
    starts = sorted(r.start for r in recs)
    ends = sorted(r.end for r in recs)
    # recommendations that end in their printed grade ("... (Grade B)."), not marked ones
    # ("R ..."), whose next paragraph may go on with the statement
    graded_end = {r.end for r in recs if r.grade and len(r.grade) > 3
                  and "".join(r.text.split()).rstrip(".;)").endswith("".join(r.grade.split()).rstrip(")"))}
    added: list[Recommendation] = []
    for i in range(1, len(placed) - 1):
        p, q, nx = placed[i], placed[i - 1], placed[i + 1]
        if stop[i] or stop[i - 1] or stop[i + 1]:
            continue
        k = bisect.bisect_left(starts, p.start)
        if k < len(starts) and starts[k] < p.end or any(s < p.end and e > p.start for s, e in zip(starts, ends)):
            continue  # part of a recommendation already
        e = bisect.bisect_right(ends, p.start) - 1
        if e < 0 or not q.start <= ends[e] <= q.end + 2 or ends[e] not in graded_end:
            continue  # the paragraph above does not end a recommendation with its grade
        k = bisect.bisect_left(starts, nx.start)
        if k >= len(starts) or starts[k] >= nx.end:
            continue  # the paragraph below does not open one
        t = p.text
        if (not t[:1].isupper() or _LEAD_LABEL.match(t) or not _SENTENCE_END.search(t)
                or not _RECOMMENDING.search(t) or _letters(t) < _MIN_STATEMENT):
            continue
        rec = make(p.start, p.end, None, None, system=None, strength="ungraded")
        if rec:
            added.append(rec)
    if not added:
        return recs
    return sorted(recs + added, key=lambda r: r.start)


_OPENS = re.compile(
    r"^(?:R|GPP|[A-D])\s+[A-Z(]|^[\u2713\u2714]|^(?i:recommendations?)\s*\d|^\d{1,2}\.\d{1,2}\.\d{1,2}\s"
)
_BULLETS = ("\u2022", "\u25a0", "\u25cf", "\u2023", "\u2043")
_NUMBERED_ITEM = re.compile(r"^\d{1,2}[.)]\s+[A-Z]")
_SENTENCE_END = re.compile(r"[.!?]\s*$|[.!?][)\]\u201d\"']\s*$")


def _statement_first(placed: list["_Placed"], stop: list[bool], i: int, last_end: int) -> int:
    """The paragraph where the statement that ends in paragraph ``i`` begins: walk back
    while the text above goes on (the paragraph just above always belongs to it), and
    stop at a heading or label, at the previous recommendation, at a paragraph that opens
    with a marker ("R", a grade letter, "Recommendation 2"), or at a long numbered item
    that follows a finished sentence ("1. Nonopioid therapies are ...")."""
    first = i
    j = i - 1
    while j >= 0 and i - j <= 8 and not stop[j] and placed[j].end > last_end:
        cur = placed[first].text
        if first != i:
            if _OPENS.match(cur):
                break
            if _NUMBERED_ITEM.match(cur) and len(cur) >= 60 and _SENTENCE_END.search(placed[j].text):
                break
            if cur.startswith(_BULLETS) and not placed[j].text.startswith(_BULLETS) \
                    and not placed[j].text.rstrip().endswith(":"):
                break  # a bulleted statement after a label or subheading, not after a lead-in
            if first != i and _SENTENCE_END.search(placed[j].text) and not cur[:1].islower() \
                    and not cur.startswith(("\u2022", "-", "\u2013")) and not _NUMBERED_ITEM.match(cur):
                break
        first = j
        j -= 1
    return first


def _continues(placed: list["_Placed"], stop: list[bool], found: list[list], i: int, last_end: int) -> bool:
    """Paragraph ``i`` goes on from the one above: that one is not a heading, does not end
    a sentence, and is not the tail of the previous recommendation ("... evidence). Source")."""
    q = placed[i - 1]
    if stop[i - 1] or q.end <= last_end or _SENTENCE_END.search(q.text):
        return False
    if found[i - 1] and _letters(q.text[found[i - 1][-1].end:]) < _MIN_STATEMENT:
        return False
    return q.text.rstrip().endswith((":", ",", ";"))  # a lead-in: "... one of the following regimens:"


def _label_number(placed: list["_Placed"], label: list[bool], start: int) -> str | None:
    """The number of a "Recommendation 1.2" label set just above the statement at ``start``."""
    for k, p in enumerate(placed):
        if p.start <= start < p.end + 2:
            if k and label[k - 1]:
                m = _REC_LABEL.match(placed[k - 1].text)
                return m.group("num") if m else None
            return None
    return None


def _run_end(placed: list["_Placed"], stop: list[bool], i: int, n: int, marker: bool = False) -> int:
    """End of the statement that starts in paragraph ``i``: the paragraph, and the ones
    after it that continue its sentence (it does not end a sentence, or they start in
    lower case), up to four."""
    end = placed[i].end
    j = i + 1
    while j < n and j - i <= 4 and not stop[j]:
        cur, nxt = placed[j - 1].text, placed[j].text
        if marker and (_SIGN_R.match(nxt) or _TICK.match(nxt) or _NUMBERED.match(nxt)):
            break
        if _END.search(cur) and not nxt[:1].islower() and not _YEAR_TAG.fullmatch(nxt.strip()):
            break  # (a provenance tag on a line of its own, "[2008]", still belongs)
        end = placed[j].end
        j += 1
    return end


def _clean_start(text: str, start: int, end: int, marked: set[int] | frozenset[int] = frozenset()
                 ) -> tuple[int, str | None]:
    """Skip what opens a statement but is not part of it; the number found there.
    ``marked``: offsets where a margin marker opens a paragraph; a single grade letter
    ("A", "B", "C", "D") is skipped only there ("A SEE-FIM protocol should" is text)."""
    number = None
    while start < end and (text[start].isspace() or text[start] in ".;,"):
        start += 1  # the end of the previous statement: "(Grade B). HRT is ..."
    for k in range(4):
        while start < end and text[start].isspace():
            start += 1
        m = _LEAD.match(text, start, end)
        if not m or m.end() == start or m.group("mark") and k:
            break  # a margin letter only opens a statement: "A Cochrane review" is text
        if m.group("mark") and len(m.group("mark")) == 1 and m.group("mark") != "R" and start not in marked:
            break
        num = m.group("num") or m.group("num2")
        if num and number is None:
            number = num
        start = m.end()
    while start < end and text[start].isspace():
        start += 1
    return start, number
