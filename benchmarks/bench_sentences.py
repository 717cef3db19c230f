"""Sentence-boundary accuracy and speed of :func:`medrag.sentences.split_sentences`.

Reference: SciFact's original corpus (5,183 abstracts whose field ``abstract`` is a list of
gold sentences). Each abstract's sentences are joined with a single space to make the
text; a *boundary* is the offset where a sentence after the first begins (its first
non-whitespace character). Predicted boundaries are the starts of the predicted
sentences after the first. Precision, recall and F1 are micro-averaged over the corpus.

The gold lists were made by an automatic splitter and carry its mistakes (``"1.4 +/-"``
ends a "sentence", ``"Apoptosis ... in 1."`` too), so an F1 of 1.0 is neither possible
nor desirable: use ``--show-errors`` to read the disagreements before tuning anything.

Run from the repository root::

    python benchmarks/bench_sentences.py [--data PATH] [--splitter medrag|pysbd|syntok|
        blingfire|segtok] [--show-errors N] [--repeat N]

(The other splitters are optional and only for comparison; medrag does not use them.)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    Path(os.environ.get("MEDRAG_DATA", REPO.parent / "shared" / "data"))
    / "scifact"
    / "original_corpus.jsonl"
)

_DOT_LEADER = re.compile(r"(?:\. ){5,}")

Splitter = Callable[[str], list[tuple[int, int]]]


def load_gold(path: Path) -> list[tuple[str, set[int], int]]:
    """``(text, gold boundary offsets, number of gold sentences)`` for each abstract."""
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            sents = [s for s in rec["abstract"] if s.strip()]
            if not sents:
                continue
            text = " ".join(sents)
            bounds: set[int] = set()
            pos = 0
            for i, s in enumerate(sents):
                if i:
                    pos += 1  # the joining space
                    lead = len(s) - len(s.lstrip())
                    bounds.add(pos + lead)
                pos += len(s)
            out.append((text, bounds, len(sents)))
    return out


def _spans_from_strings(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for p in pieces:
        p = p.strip()
        if not p:
            continue
        i = text.find(p, pos)
        if i < 0:  # the splitter changed the text; skip the piece
            continue
        spans.append((i, i + len(p)))
        pos = i + len(p)
    return spans


def get_splitter(name: str) -> Splitter:
    if name == "medrag":
        from medrag.sentences import split_sentences

        return split_sentences
    if name == "pysbd":
        import pysbd

        seg = pysbd.Segmenter(language="en", clean=False, char_span=True)
        return lambda t: [(s.start, s.end) for s in seg.segment(t)]
    if name == "syntok":
        import syntok.segmenter as sg

        def split(t: str) -> list[tuple[int, int]]:
            out = []
            for para in sg.analyze(t):
                for sent in para:
                    toks = list(sent)
                    if toks:
                        s = toks[0].offset
                        e = toks[-1].offset + len(toks[-1].value)
                        out.append((s, e))
            return out

        return split
    if name == "blingfire":
        import blingfire

        def split(t: str) -> list[tuple[int, int]]:
            _, offs = blingfire.text_to_sentences_and_offsets(t)
            return [(s, e) for s, e in offs]

        return split
    if name == "segtok":
        from segtok.segmenter import split_multi

        return lambda t: _spans_from_strings(t, list(split_multi(t)))
    raise SystemExit(f"unknown splitter {name!r}")


def evaluate(
    gold: list[tuple[str, set[int], int]], split: Splitter, show_errors: int = 0
) -> dict[str, float]:
    tp = fp = fn = 0
    n_pred = 0
    errors: list[tuple[str, str, int]] = []
    for text, bounds, _ in gold:
        spans = split(text)
        n_pred += len(spans)
        pred = {s for s, _ in spans[1:]}
        tp += len(pred & bounds)
        fp_set, fn_set = pred - bounds, bounds - pred
        fp += len(fp_set)
        fn += len(fn_set)
        if show_errors:
            errors += [("FP", text, b) for b in fp_set] + [("FN", text, b) for b in fn_set]
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    if show_errors:
        random.Random(0).shuffle(errors)
        for kind, text, b in sorted(errors[:show_errors]):
            print(f"{kind}: ...{text[max(0, b - 70):b]!r} || {text[b:b + 40]!r}")
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn,
            "n_pred": n_pred}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--splitter", default="medrag")
    ap.add_argument("--show-errors", type=int, default=0, metavar="N")
    ap.add_argument("--repeat", type=int, default=3, help="timing runs (best is reported)")
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"data not found: {args.data} (set MEDRAG_DATA)", file=sys.stderr)
        return 2
    gold = load_gold(args.data)
    split = get_splitter(args.splitter)
    m = evaluate(gold, split, args.show_errors)
    n_chars = sum(len(t) for t, _, _ in gold)
    best = float("inf")
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        for text, _, _ in gold:
            split(text)
        best = min(best, time.perf_counter() - t0)
    n_gold = sum(n for _, _, n in gold)
    # A few "abstracts" are tables of contents whose dot leaders (". . . . .") the gold
    # splitter cut at every dot; report the figures without them as well.
    prose = [g for g in gold if not _DOT_LEADER.search(g[0])]
    mp = evaluate(prose, split)
    print(f"splitter        {args.splitter}")
    print(f"abstracts       {len(gold):,}  gold sentences {n_gold:,}  predicted {m['n_pred']:,}")
    print(f"boundaries      tp {m['tp']:,}  fp {m['fp']:,}  fn {m['fn']:,}")
    print(f"precision       {m['precision']:.4f}")
    print(f"recall          {m['recall']:.4f}")
    print(f"F1              {m['f1']:.4f}")
    print(f"without the {len(gold) - len(prose)} table-of-contents abstracts (dot leaders): "
          f"P {mp['precision']:.4f}  R {mp['recall']:.4f}  F1 {mp['f1']:.4f}")
    print(f"time            {best:.3f} s (best of {args.repeat})  "
          f"{m['n_pred'] / best:,.0f} sentences/s  {n_chars / best / 1e6:.2f} M chars/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
