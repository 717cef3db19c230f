"""medrag.eval against values computed by hand on toy inputs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from medrag.errors import ConfigError, MissingDependencyError
from medrag.eval import (
    abstention_curve,
    beir_runs,
    citation_precision_recall,
    evaluate_index_on_beir,
    evaluate_run,
    markdown_table,
    passages_to_doc_run,
    plot_abstention_curve,
    read_trec_run,
    write_trec_run,
)
from medrag.types import Chunk, Passage, SourceInfo

pytest.importorskip("ir_measures")

# --------------------------------------------------------------------------- toy data

QRELS = {
    "q1": {"d1": 1, "d2": 0, "d3": 2},  # d2 judged non-relevant
    "q2": {"d5": 1},
    "q3": {"d6": 1},  # never retrieved: counts as 0
}
RUN = {
    "q1": {"d2": 3.0, "d1": 2.0, "d4": 1.0, "d3": 0.5},
    "q2": {"d5": 9.0, "d7": 1.0},
    "q9": {"d1": 1.0},  # not judged: ignored
}


def _dcg(gains: list[float]) -> float:
    # trec_eval's ndcg: gain = relevance, discount log2(rank + 1)
    return sum(g / math.log2(rank + 1) for rank, g in enumerate(gains, start=1))


def test_evaluate_run_matches_hand_computed_values():
    ndcg_q1 = _dcg([0, 1, 0, 2]) / _dcg([2, 1])
    assert ndcg_q1 == pytest.approx(1.4922819 / 2.6309298, abs=1e-6)
    got = evaluate_run(RUN, QRELS, ("nDCG@10", "R@100", "RR@10", "R@2", "P@2"))
    assert got["nDCG@10"] == pytest.approx((ndcg_q1 + 1.0 + 0.0) / 3)
    assert got["RR@10"] == pytest.approx((1 / 2 + 1 / 1 + 0) / 3)
    assert got["R@100"] == pytest.approx((2 / 2 + 1 / 1 + 0) / 3)
    assert got["R@2"] == pytest.approx((1 / 2 + 1 / 1 + 0) / 3)
    assert got["P@2"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert list(got) == ["nDCG@10", "R@100", "RR@10", "R@2", "P@2"]


def test_evaluate_run_cutoff_and_errors():
    # the only relevant document at rank 11 is outside nDCG@10 and RR@10
    run = {"q": {f"x{i:02d}": 100.0 - i for i in range(10)} | {"rel": 1.0}}
    got = evaluate_run(run, {"q": {"rel": 1}})
    assert got == {"nDCG@10": 0.0, "R@100": 1.0, "RR@10": 0.0}
    with pytest.raises(ConfigError):
        evaluate_run(RUN, QRELS, ("NoSuchMeasure@3",))
    with pytest.raises(ConfigError):
        evaluate_run(RUN, {})


def test_missing_evaluator_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ir_measures", None)
    with pytest.raises(MissingDependencyError, match=r"medrag\[eval\]"):
        evaluate_run(RUN, QRELS)


def _passage(doc_id: str, n: int, score: float, rank: int) -> Passage:
    chunk = Chunk(id=f"{doc_id}#{n}", doc_id=doc_id, text="t", start=0, end=1, index_text="t")
    return Passage(chunk=chunk, source=SourceInfo(doc_id=doc_id, kind="text", title="T"), score=score, rank=rank)


def test_passages_collapse_to_documents_by_max_score():
    per_query = {
        "q1": [_passage("doc:a", 1, 5.0, 1), _passage("doc:b", 0, 4.0, 2), _passage("doc:a", 0, 3.0, 3)],
        "q2": [],
    }
    assert passages_to_doc_run(per_query) == {"q1": {"a": 5.0, "b": 4.0}, "q2": {}}
    assert passages_to_doc_run(per_query, id_map=lambda d: d.upper(), k=1) == {"q1": {"DOC:A": 5.0}, "q2": {}}


# --------------------------------------------------------------------------- TREC runs


def test_trec_run_file_format(tmp_path: Path):
    path = write_trec_run(RUN, tmp_path / "runs" / "toy.trec", "toy-bm25")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[:4] == [
        "q1 Q0 d2 1 3.0 toy-bm25",
        "q1 Q0 d1 2 2.0 toy-bm25",
        "q1 Q0 d4 3 1.0 toy-bm25",
        "q1 Q0 d3 4 0.5 toy-bm25",
    ]
    assert lines[4:] == ["q2 Q0 d5 1 9.0 toy-bm25", "q2 Q0 d7 2 1.0 toy-bm25", "q9 Q0 d1 1 1.0 toy-bm25"]
    assert all(len(line.split()) == 6 for line in lines)
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.trec"]  # no temporary left behind
    # our reader and ir_measures' reader agree with what was written
    assert read_trec_run(path) == RUN
    import ir_measures

    parsed = list(ir_measures.read_trec_run(str(path)))
    assert [(s.query_id, s.doc_id, s.score) for s in parsed][:2] == [("q1", "d2", 3.0), ("q1", "d1", 2.0)]
    assert evaluate_run(read_trec_run(path), QRELS) == evaluate_run(RUN, QRELS)


def test_trec_run_ties_are_deterministic_and_bad_ids_refused(tmp_path: Path):
    path = write_trec_run({"q": {"b": 1.0, "a": 1.0}}, tmp_path / "t.trec", "x")
    assert path.read_text().splitlines() == ["q Q0 a 1 1.0 x", "q Q0 b 2 1.0 x"]
    for run, tag in (({"q": {"a b": 1.0}}, "x"), ({"q": {"a": 1.0}}, "has space"), ({"q": {"a": math.nan}}, "x")):
        with pytest.raises(ConfigError):
            write_trec_run(run, tmp_path / "bad.trec", tag)
    assert not (tmp_path / "bad.trec").exists()


# --------------------------------------------------------------------------- BEIR + index


def _tiny_beir(root: Path) -> Path:
    root.mkdir()
    corpus = [
        ("d1", "Aspirin", "aspirin reduces fever and pain"),
        ("d2", "Insulin", "insulin treats diabetes mellitus"),
        ("d3", "Statins", "statins lower cholesterol levels"),
    ]
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in corpus)
    )
    queries = {"q1": "insulin for diabetes", "q2": "statins and cholesterol", "q3": "aspirin", "q4": "unjudged query"}
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()))
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td3\t1\nq3\td2\t1\n")
    return root


def test_evaluate_index_on_beir_lexical(tmp_path: Path):
    from medrag.index import Index, IndexConfig
    from medrag.ingest.beir import iter_beir_corpus

    folder = _tiny_beir(tmp_path / "beir")
    index = Index.build(iter_beir_corpus(folder), IndexConfig(encoder=None))
    runs, qrels = beir_runs(index, folder, split="test", modes=("bm25",), k=10)
    assert set(runs["bm25"]) == {"q1", "q2", "q3"}  # q4 has no judgments
    assert next(iter(runs["bm25"]["q1"])) == "d2" and next(iter(runs["bm25"]["q2"])) == "d3"
    assert "d2" not in runs["bm25"]["q3"]  # "aspirin" does not match the insulin abstract
    got = evaluate_index_on_beir(index, folder, split="test", modes=("bm25",), k=10, run_dir=tmp_path / "runs")
    # q1 and q2 find their document at rank 1, q3 never does
    assert got == {"bm25": pytest.approx({"nDCG@10": 2 / 3, "R@100": 2 / 3, "RR@10": 2 / 3})}
    assert read_trec_run(tmp_path / "runs" / "bm25.trec") == runs["bm25"]
    with pytest.raises(ConfigError, match="no dense vectors"):
        evaluate_index_on_beir(index, folder, split="test", modes=("dense",))
    with pytest.raises(FileNotFoundError):
        evaluate_index_on_beir(index, folder, split="dev", modes=("bm25",))


# --------------------------------------------------------------------------- answers


def test_abstention_curve_toy():
    curve = abstention_curve(
        scores_answerable=[0.9, 0.5, None, 0.2],
        cited_own=[True, False, False, True],
        scores_unanswerable=[0.8, None, 0.1],
        thresholds=[0.0, 0.3, 0.6, 1.0],
    )
    assert curve == [
        {"threshold": 0.0, "answered_rate": 3 / 4, "answered_citing_own_rate": 2 / 4, "abstained_unanswerable_rate": 1 / 3},
        {"threshold": 0.3, "answered_rate": 2 / 4, "answered_citing_own_rate": 1 / 4, "abstained_unanswerable_rate": 2 / 3},
        {"threshold": 0.6, "answered_rate": 1 / 4, "answered_citing_own_rate": 1 / 4, "abstained_unanswerable_rate": 2 / 3},
        {"threshold": 1.0, "answered_rate": 0.0, "answered_citing_own_rate": 0.0, "abstained_unanswerable_rate": 1.0},
    ]
    empty = abstention_curve([0.5], [True], [], [0.5])
    assert empty[0]["abstained_unanswerable_rate"] is None and empty[0]["answered_rate"] == 1.0
    with pytest.raises(ConfigError):
        abstention_curve([0.5, 0.2], [True], [], [0.5])


def test_citation_precision_recall_alce():
    def verifier(sentence: str, passage: str) -> bool:  # supported when every word appears
        return set(sentence.split()) <= set(passage.split())

    calls: list[tuple[str, str]] = []

    def counting(sentence: str, passage: str) -> bool:
        calls.append((sentence, passage))
        return verifier(sentence, passage)

    sentences = [
        ("a b", ["a b c"]),  # supported by its one citation
        ("a d", ["a x", "d y"]),  # supported only jointly: both citations needed
        ("a b", ["a b", "z"]),  # supported; "z" is not needed
        ("q", []),  # no citation: unsupported
        ("m n", ["m"]),  # cited but unsupported: the citation does not count
    ]
    got = citation_precision_recall(sentences, counting)
    assert got == {
        "recall": 3 / 5,
        "precision": 4 / 6,
        "n_sentences": 5,
        "n_supported": 3,
        "n_citations": 6,
        "n_precise": 4,
    }
    assert ("a d", "a x\nd y") in calls  # citations joined for the joint check
    assert citation_precision_recall([], verifier)["recall"] is None
    assert citation_precision_recall([("a", [])], verifier)["precision"] is None


# --------------------------------------------------------------------------- reporting


def test_markdown_table():
    rows = [
        {"mode": "bm25", "nDCG@10": 0.68661, "n": 3},
        {"mode": "dense|x", "nDCG@10": None, "n": 12},
    ]
    assert markdown_table(rows) == (
        "| mode | nDCG@10 | n |\n"
        "|---|---:|---:|\n"
        "| bm25 | 0.6866 | 3 |\n"
        "| dense\\|x |  | 12 |\n"
    )
    assert markdown_table([]) == ""


def test_plot_abstention_curve(tmp_path: Path):
    curve = abstention_curve([0.9, 0.1], [True, False], [0.2], [0.0, 0.5, 1.0])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="matplotlib"):
            plot_abstention_curve(curve, tmp_path / "curve.png")
    else:
        out = plot_abstention_curve(curve, tmp_path / "curve.png")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
