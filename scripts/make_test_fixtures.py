"""Regenerate tests/data/ (the small, redistributable fixtures committed with the
project) from the full data folder (default ../shared/data, or $MEDRAG_DATA).

Only files whose terms allow redistribution are copied (see ../shared/data/README.md):
NLM PubMed records, Biopython test files, metapub fixtures (Apache-2.0), CDC PDFs (US
federal works), SciFact excerpts (claims CC BY 4.0, abstracts ODC-By) and PubMedQA
(MIT). Never the WHO (CC BY-NC-SA), AHA, IDSA, NICE, SIGN or ESO files.

Files are copied verbatim to the same relative path, so a test that reads
``need_data("pubmed", "excerpts", ...)`` sees the same bytes either way. Excerpts of
large files keep their records in the original order (a prefix, plus the documents that
the first training claims cite) and are listed in tests/data/SOURCE.md. A folder of
which only some files are copied holds a ``.partial`` file; tests that need the whole
folder skip there.

Usage: python scripts/make_test_fixtures.py [--src ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEST = REPO / "tests" / "data"

VERBATIM = [
    "pubmed/excerpts/pubmed21n1298_feature_sample.xml",
    "pubmed/excerpts/pubmed21n1298_feature_sample.index.json",
    "pubmed/medline_text/biopython/pubmed_result1.txt",
    "pubmed/medline_text/biopython/pubmed_result2.txt",
    "pubmed/medline_text/biopython/pubmed_result3.txt",
    *(f"pubmed/efetch/biopython/{n}" for n in
      ("pubmed1.xml", "pubmed2.xml", "pubmed3.html", "pubmed4.xml", "pubmed5.xml", "pubmed6.xml", "pubmed7.xml")),
    "guidelines/cdc_what_you_need_to_know_about_tb_2023.pdf",
    "guidelines/cdc_guide_infection_prevention_outpatient_2016.pdf",
    "scifact/queries.jsonl",
    "pubmedqa/LICENSE",
    "pubmed/licenses/biopython_LICENSE.rst",
    "pubmed/licenses/metapub_LICENSE",
]
# metapub: the three records the E-utilities test serves and the empty result set.
METAPUB = ["32051057.xml", "11618220.xml", "32160763.xml", "37909814.xml"]
SCIFACT_PREFIX = 1000     # first corpus records kept
SCIFACT_CLAIMS = 40       # first training claims whose cited abstracts are kept
SCIFACT_GOLD_PREFIX = 300  # first records of the gold sentence lists
PUBMEDQA_N = 200          # first PQA-L dev questions


def _copy(src: Path, rel: str) -> None:
    out = DEST / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / rel, out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path,
                    default=Path(os.environ.get("MEDRAG_DATA", REPO.parent / "shared" / "data")))
    src = ap.parse_args(argv).src
    for rel in VERBATIM:
        _copy(src, rel)
    for name in METAPUB:
        _copy(src, f"pubmed/efetch/metapub/{name}")
    n_full = len(list((src / "pubmed/efetch/metapub").glob("*.xml")))
    (DEST / "pubmed/efetch/metapub/.partial").write_text(
        f"{len(METAPUB)} of the {n_full} metapub fixture files; tests that need the whole folder skip.\n")

    # SciFact: a corpus prefix plus every abstract the first training claims cite, in order.
    qrels = (src / "scifact/qrels/train.tsv").read_text(encoding="utf-8").splitlines()
    rows = [r.split("\t") for r in qrels[1:] if r.strip()]
    claims = list(dict.fromkeys(r[0] for r in rows))[:SCIFACT_CLAIMS]
    cited = {r[1] for r in rows if r[0] in claims}
    kept_lines, kept_ids = [], set()
    with open(src / "scifact/corpus.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            doc_id = json.loads(line)["_id"]
            if i < SCIFACT_PREFIX or doc_id in cited:
                kept_lines.append(line)
                kept_ids.add(doc_id)
    (DEST / "scifact/corpus.jsonl").write_text("".join(kept_lines), encoding="utf-8")
    (DEST / "scifact/qrels").mkdir(parents=True, exist_ok=True)
    (DEST / "scifact/qrels/train.tsv").write_text(
        "\n".join([qrels[0], *("\t".join(r) for r in rows if r[1] in kept_ids)]) + "\n", encoding="utf-8")
    with open(src / "scifact/original_corpus.jsonl", encoding="utf-8") as f:
        gold = [line for _, line in zip(range(SCIFACT_GOLD_PREFIX), f)]
    (DEST / "scifact/original_corpus.jsonl").write_text("".join(gold), encoding="utf-8")

    # PubMedQA PQA-L: the first questions, same JSON layout.
    pqa = json.loads((src / "pubmedqa/pqal_dev.json").read_text(encoding="utf-8"))
    first = dict(list(pqa.items())[:PUBMEDQA_N])
    (DEST / "pubmedqa/pqal_dev.json").write_text(json.dumps(first, ensure_ascii=False), encoding="utf-8")
    total = sum(p.stat().st_size for p in DEST.rglob("*") if p.is_file())
    print(f"tests/data: {total / 1e6:.2f} MB; scifact {len(kept_lines)} abstracts, "
          f"{len(claims)} claims with qrels; pubmedqa {len(first)} questions")


if __name__ == "__main__":
    main()
