"""Guideline PDFs: speed, recommendation extraction against hand labels, text quality.

Run: ``python benchmarks/bench_pdf.py [DIR_OR_PDF ...] [--gold FILE] [--json OUT]``.
Without paths it reads ``$MEDRAG_DATA/guidelines`` and ``$MEDRAG_DATA/guidelines_more``
(default ``../shared/data`` next to the repo): the 14 guidelines.

Reports, per file and in total:

* pages per second, wall clock and per CPU second of this process (the machine is
  shared, so wall time depends on the load; CPU time much less);
* against ``benchmarks/guideline_gold.json`` (hand labels, see its ``about``):
  recommendation **recall** (a labelled recommendation is found when an extracted one
  starts on its page, +-1, with the labelled opening, compared without spaces,
  punctuation or case), **precision** (of the extracted recommendations that start on
  the labelled pages, the share that is a labelled one), and **grade accuracy** (of the
  found ones, the share whose normalized system, strength and certainty all equal the
  label; each field also alone);
* text quality on the labelled pages: the **glued-word rate** per 1,000 tokens: tokens
  that are not English words but segment into words one of which is a function word
  ("ofevidence", "toaround", "aday"), or a lower-case word run into capitals ("theTB");
  the word list is ``wordsegment``'s commonest unigrams and the **false-heading rate** (section headings that
  read as a fragment of a sentence: ending in a function word, a comma or an open
  bracket, starting in lower case, a word glued to a digit, or over 20 words).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import time
from pathlib import Path

from medrag.ingest import IngestReport
from medrag.ingest.pdf import iter_guideline_pdf

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MEDRAG_DATA", REPO.parent / "shared" / "data"))


def _norm(s: str) -> str:
    return re.sub(r"[^0-9a-z]", "", s.lower())


def _covered(pages: list[list[int]]) -> set[int]:
    return {p for a, b in pages for p in range(a, b + 1)}


def evaluate(doc, gold: dict) -> dict:
    """Match one document's recommendations against its gold entry."""
    cover = _covered(gold["covered_pages"])
    recs = [r for r in doc.guideline.recommendations if r.page in cover]
    used: set[int] = set()
    pairs = []
    for g in gold["recommendations"]:
        key = _norm(g["text"])
        for k, r in enumerate(recs):
            if k in used or abs(r.page - g["page"]) > 1:
                continue
            if key in _norm(r.text)[: len(key) + 12]:
                used.add(k)
                pairs.append((g, r))
                break
    fields = {"system": 0, "strength": 0, "certainty": 0}
    exact = 0
    wrong = []
    for g, r in pairs:
        ok = True
        for f in fields:
            if getattr(r, f, None) == g[f]:
                fields[f] += 1
            else:
                ok = False
        exact += ok
        if not ok:
            wrong.append({"page": g["page"], "text": g["text"][:60],
                          "gold": [g[f] for f in fields], "got": [getattr(r, f, None) for f in fields]})
    found_keys = {id(g) for g, _ in pairs}
    missed = [{"page": g["page"], "text": g["text"][:70]} for g in gold["recommendations"] if id(g) not in found_keys]
    extra = [{"page": r.page, "text": r.text[:70]} for k, r in enumerate(recs) if k not in used]
    return {"gold": len(gold["recommendations"]), "extracted": len(recs), "matched": len(pairs),
            "grade_exact": exact, **{f"grade_{f}": v for f, v in fields.items()},
            "missed": missed, "extra": extra, "wrong_grade": wrong}


_GLUE_WORDS = {"a", "an", "and", "as", "at", "be", "by", "for", "from", "in", "is", "of", "on", "or", "the", "to", "with"}
_CASE_GLUE = re.compile(r"[a-z]{2,}[A-Z]{2,}[a-z]*")
_FUNCTION_END = re.compile(r"\b(the|of|to|and|or|a|an|in|for|with|by|on|at|from|as|is|are|that|which)$", re.I)


def text_quality(doc, pages: set[int], words: set[str] | None) -> dict:
    ps = list(doc.page_starts) + [len(doc.text)]
    chunk = "\n".join(doc.text[ps[p - 1]:ps[p]] for p in sorted(pages) if p <= len(doc.page_starts))
    tokens = re.findall(r"[A-Za-z]+", chunk)
    glued = sum(1 for t in tokens if _CASE_GLUE.fullmatch(t))  # "theTB"
    if words is not None:
        from wordsegment import segment

        for t in tokens:
            lw = t.lower()
            if len(lw) >= 5 and lw not in words and not _CASE_GLUE.fullmatch(t):
                parts = segment(lw)
                if (len(parts) >= 2 and any(p in _GLUE_WORDS for p in parts)
                        and all(p in words and (len(p) >= 3 or p in _GLUE_WORDS) for p in parts)):
                    glued += 1
    heads = [s for s in doc.sections if s.kind == "body" and s.label
             and any(p in pages for p in range(doc.page_at(s.start), doc.page_at(s.start) + 1))]
    false = 0
    for s in heads:
        lab = s.label.strip()
        if (_FUNCTION_END.search(lab) or lab.endswith((",", "(", "-")) or lab[:1].islower()
                or re.search(r"[a-z]\d+$", lab) or len(lab.split()) > 20):
            false += 1
    return {"tokens": len(tokens), "glued": glued, "headings": len(heads), "false_headings": false}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path, default=[DATA / "guidelines", DATA / "guidelines_more"])
    ap.add_argument("--gold", type=Path, default=REPO / "benchmarks" / "guideline_gold.json")
    ap.add_argument("--json", type=Path, help="write the full results (misses, extras) here")
    ap.add_argument("--no-text", action="store_true", help="skip the text-quality measures")
    args = ap.parse_args()
    logging.getLogger("pypdf").setLevel(logging.ERROR)

    files = []
    for p in args.paths:
        files.extend(sorted(p.glob("*.pdf")) if p.is_dir() else [p])
    if not files:
        raise SystemExit(f"no PDFs found in {[str(p) for p in args.paths]}")
    gold = {Path(g["file"]).name: g for g in json.loads(args.gold.read_text())["guidelines"]} if args.gold.exists() else {}
    words = None
    if not args.no_text:
        try:
            import wordsegment

            wordsegment.load()
            words = {w for w, c in wordsegment.UNIGRAMS.items() if c > 20000}
        except ImportError:
            print("(wordsegment not installed: no glued-word rate)")

    total_pages = 0
    wall = cpu = 0.0
    results = {}
    print(f"{'file':48s} {'pages':>5s} {'recs':>5s} {'wall s':>7s} {'cpu s':>6s} {'p/s cpu':>8s}")
    for f in files:
        report = IngestReport()
        t0, c0 = time.perf_counter(), time.process_time()
        docs = list(iter_guideline_pdf(f, on_error="skip", report=report))
        w, c = time.perf_counter() - t0, time.process_time() - c0
        if not docs:
            print(f"{f.name:48s} skipped: {report.skipped}")
            continue
        doc = docs[0]
        pages = doc.guideline.page_count
        total_pages += pages
        wall += w
        cpu += c
        res = {"pages": pages, "wall_s": round(w, 3), "cpu_s": round(c, 3),
               "recommendations": len(doc.guideline.recommendations)}
        if f.name in gold:
            res["gold"] = evaluate(doc, gold[f.name])
            if not args.no_text:
                res["text"] = text_quality(doc, _covered(gold[f.name]["covered_pages"]), words)
        results[f.name] = res
        print(f"{f.name:48s} {pages:5d} {res['recommendations']:5d} {w:7.2f} {c:6.2f} {pages / max(c, 1e-9):8.1f}")
    print(f"{'total':48s} {total_pages:5d} {'':5s} {wall:7.2f} {cpu:6.2f} {total_pages / max(cpu, 1e-9):8.1f}"
          f"   (wall: {total_pages / max(wall, 1e-9):.1f} pages/s)")

    g = [r["gold"] for r in results.values() if "gold" in r]
    if g:
        print(f"\n{'gold guideline':40s} {'gold':>5s} {'found':>5s} {'extr':>5s} {'recall':>7s} {'prec':>6s} {'grade':>6s}")
        for name, r in results.items():
            if "gold" not in r:
                continue
            e = r["gold"]
            print(f"{name:40s} {e['gold']:5d} {e['matched']:5d} {e['extracted']:5d} "
                  f"{e['matched'] / max(e['gold'], 1):7.3f} {e['matched'] / max(e['extracted'], 1):6.3f} "
                  f"{e['grade_exact'] / max(e['matched'], 1):6.3f}")
        n_gold = sum(e["gold"] for e in g)
        n_match = sum(e["matched"] for e in g)
        n_extr = sum(e["extracted"] for e in g)
        n_exact = sum(e["grade_exact"] for e in g)
        print(f"{'all':40s} {n_gold:5d} {n_match:5d} {n_extr:5d} {n_match / n_gold:7.3f} "
              f"{n_match / max(n_extr, 1):6.3f} {n_exact / max(n_match, 1):6.3f}")
        for f in ("system", "strength", "certainty"):
            print(f"  grade field {f:10s} accuracy {sum(e['grade_' + f] for e in g) / max(n_match, 1):.3f}")
    t = [r["text"] for r in results.values() if "text" in r]
    if t:
        tok = sum(x["tokens"] for x in t)
        heads = sum(x["headings"] for x in t)
        print(f"\ntext on the labelled pages: {tok} tokens, glued words {sum(x['glued'] for x in t)} "
              f"({1000 * sum(x['glued'] for x in t) / max(tok, 1):.2f} per 1,000); "
              f"headings {heads}, false headings {sum(x['false_headings'] for x in t)} "
              f"({sum(x['false_headings'] for x in t) / max(heads, 1):.3f})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
