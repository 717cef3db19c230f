"""medrag.ingest.pubmedqa on the real PubMedQA dev file, and its errors on bad input."""

from __future__ import annotations

import json

import pytest
from conftest import need_data

from medrag.errors import IngestError
from medrag.ingest.pubmedqa import read_pubmedqa


def test_real_dev_file_offsets_and_long_answer():
    path = need_data("pubmedqa", "pqal_dev.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    docs, questions = read_pubmedqa(path)
    assert len(docs) == len(questions) == len(raw) == 500
    pmid, q = questions[0]
    rec = raw[pmid]
    assert q == rec["QUESTION"] and docs[0].id == f"pmid:{pmid}" and docs[0].title == ""
    for d in docs[:50]:
        r = raw[d.pubmed.pmid]
        assert [s.label for s in d.sections] == r["LABELS"]
        for s, ctx in zip(d.sections, r["CONTEXTS"]):
            assert d.text[s.start : s.end] == " ".join(ctx.split())
    long_docs, _ = read_pubmedqa(path, long_answer=True)
    last = long_docs[0].sections[-1]
    assert last.label == "CONCLUSIONS"
    assert long_docs[0].text[last.start : last.end] == " ".join(rec["LONG_ANSWER"].split())
    assert long_docs[0].text.startswith(docs[0].text)


@pytest.mark.parametrize(
    "content, where",
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (json.dumps({"123": {"QUESTION": "q?", "LABELS": ["A"]}}).encode(), "123"),
        (json.dumps({"9": {"QUESTION": "q?", "CONTEXTS": ["a", "b"], "LABELS": ["A"]}}).encode(), "9"),
    ],
    ids=["not-json", "not-an-object", "no-contexts", "mismatched-labels"],
)
def test_bad_files_name_file_and_record(tmp_path, content, where):
    p = tmp_path / "bad.json"
    p.write_bytes(content)
    with pytest.raises(IngestError) as ei:
        read_pubmedqa(p)
    assert ei.value.source == str(p)
    assert ei.value.record_id == where
