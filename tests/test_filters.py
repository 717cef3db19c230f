"""Grade filters and the grade boost (issue 14: recommendations are retrievable evidence).

The ranking tests read the real WHO IPC core components guideline (2016) from
../shared/data/guidelines and skip without it; the table tests (add, delete, save,
load, an index saved without a grade table) use guideline documents made here with
the library's own types, so that they run everywhere.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import need_data
from medrag.errors import ConfigError
from medrag.index import Filters, Index, IndexConfig
from medrag.index.grades import CERTAINTIES, STRENGTHS, GradeTable
from medrag.types import Document, GuidelineMetadata, Recommendation, Section, SourceFile

LEXICAL = IndexConfig(encoder=None)
IPC_QUESTION = "Should there be a dedicated IPC team in every acute health care facility?"


@pytest.fixture(scope="module")
def who_ipc():
    from medrag.ingest import iter_guideline_pdf

    doc = next(iter_guideline_pdf(need_data("guidelines", "who_ipc_core_components_guidelines_2016.pdf")))
    return Index.build([doc], LEXICAL)


def _recs(ix: Index) -> dict[int, Recommendation]:
    """The oracle: every live row's recommendation, read from the chunks one by one."""
    out = {}
    for row in np.flatnonzero(np.asarray(ix._bm25.alive)):
        r = ix.chunk(int(row)).recommendation
        if r is not None:
            out[int(row)] = r
    return out


def _rows(ix: Index, filters: Filters, query: str = "infection prevention control programme") -> set[int]:
    """The rows a filtered search can return: all of them, with k = the index size."""
    mask = ix._row_mask(filters)
    found = ix.search(query, k=len(ix) + 5, filters=filters, mode="bm25")
    got = {p.chunk.id for p in found}
    assert got <= {ix.chunk(int(r)).id for r in np.flatnonzero(mask)}
    return {int(r) for r in np.flatnonzero(mask)}


# ---------------------------------------------------------------- the real guideline


def test_vocabularies_are_those_the_pdf_grader_produces():
    from medrag.ingest.pdf import grades

    assert STRENGTHS == grades.STRENGTHS and CERTAINTIES == grades.CERTAINTIES


def test_boost_ranks_the_graded_recommendation_on_page_30_first(who_ipc):
    plain = who_ipc.search(IPC_QUESTION, k=5, mode="bm25")
    boosted = who_ipc.search(IPC_QUESTION, k=5, mode="bm25", boost={"strong": 1.2})
    target = [p for p in plain if p.chunk.recommendation is not None and 30 in p.chunk.pages]
    assert target, "the p. 30 recommendation is not in the plain top 5"
    assert plain[0].chunk.id != target[0].chunk.id  # what issue 14 reports: something else ranks first
    top = boosted[0]
    assert top.chunk.id == target[0].chunk.id
    assert top.chunk.recommendation.strength == "strong" and top.chunk.recommendation.page == 30
    assert "dedicated" in top.chunk.text and top.scores["boost"] == pytest.approx(1.2)
    assert top.score == pytest.approx(target[0].score * 1.2)
    # unboosted passages keep their scores; no "boost" entry on them
    for p in boosted:
        if p.chunk.recommendation is None:
            assert "boost" not in p.scores and p.score == pytest.approx(p.scores["bm25"])


def test_strength_filter_returns_only_strong_recommendations(who_ipc):
    recs = _recs(who_ipc)
    strong = {r for r, rec in recs.items() if rec.strength == "strong"}
    assert len(strong) >= 5 and len(strong) < len(recs)  # the guideline has other strengths too
    assert _rows(who_ipc, Filters(strength=("strong",))) == strong
    found = who_ipc.search(IPC_QUESTION, k=50, filters=Filters(strength=("strong",)), mode="bm25")
    assert found and all(p.chunk.recommendation.strength == "strong" for p in found)
    assert found[0].chunk.recommendation.page == 30


@pytest.mark.parametrize(
    "filters, keep",
    [
        (Filters(recommendations_only=True), lambda r: True),
        (Filters(strength=("good-practice",)), lambda r: r.strength == "good-practice"),
        (Filters(certainty=("very low", "low")), lambda r: r.certainty in ("very low", "low")),
        (Filters(grade_systems=("GRADE",)), lambda r: r.system == "GRADE"),
        (Filters(strength=("strong",), certainty=("low",)), lambda r: r.strength == "strong" and r.certainty == "low"),
        (Filters(strength=("against",)), lambda r: r.strength == "against"),
    ],
)
def test_grade_filters_equal_a_scan_of_the_chunks(who_ipc, filters, keep):
    want = {row for row, r in _recs(who_ipc).items() if keep(r)}
    assert _rows(who_ipc, filters) == want


def test_grade_filters_combine_with_document_filters(who_ipc):
    doc_id = who_ipc.document_ids()[0]
    assert _rows(who_ipc, Filters(strength=("strong",), exclude_doc_ids=(doc_id,))) == set()
    assert _rows(who_ipc, Filters(strength=("strong",), kinds=("guideline",))) == _rows(who_ipc, Filters(strength=("strong",)))


# ---------------------------------------------------------------- made-up guidelines


def _guideline(n: int, grades: list[tuple[str | None, str | None, str | None]], tag: str) -> Document:
    """A guideline document of ``len(grades)`` recommendation sections between body
    sections (long enough for the document not to be chunked whole), each
    recommendation graded as given."""
    parts, sections, recs = [], [], []
    pos = 0
    for i, (strength, certainty, system) in enumerate(grades):
        body = " ".join(f"Background {tag} {i}.{j}: hand hygiene audits and surveillance of infections in acute care "
                        f"facilities were reviewed in study {j}." for j in range(40))  # > one chunk
        rec = f"Recommendation {i + 1}: facilities should run a {tag} programme number {i} with trained staff."
        for kind, text in (("body", body), ("recommendation", rec)):
            sections.append(Section(kind=kind, label=f"{kind} {i}", start=pos, end=pos + len(text)))
            if kind == "recommendation":
                recs.append(Recommendation(text=text, start=pos, end=pos + len(text), page=i + 1, strength=strength,
                                           certainty=certainty, system=system, pages=(i + 1,)))
            parts.append(text)
            pos += len(text) + 2
    text = "\n\n".join(parts)
    return Document(
        id=f"pdf:{n:016x}", kind="guideline", title=f"Guideline {tag}", text=text, sections=tuple(sections),
        source=SourceFile(f"{tag}.pdf", "0" * 64), year=2020, guideline=GuidelineMetadata(recommendations=tuple(recs)),
    )


GRADES_A = [("strong", "high", "GRADE"), ("conditional", "low", "GRADE"), ("good-practice", None, None)]
GRADES_B = [("strong", "very low", "SIGN"), (None, None, None), ("against", "moderate", "ACC/AHA")]


def _check_table(ix: Index) -> None:
    """The grade table equals a scan of the live chunks (rows and codes)."""
    alive = np.asarray(ix._bm25.alive)
    t = ix._grade_table()
    live = alive[t.rows]
    scanned = GradeTable.of_chunks([ix.chunk(r) for r in range(ix._bm25.n_rows)])
    assert t.rows[live].tolist() == [r for r in scanned.rows.tolist() if alive[r]]
    assert t.codes[live].tolist() == [c for r, c in zip(scanned.rows.tolist(), scanned.codes.tolist()) if alive[r]]


def test_table_follows_add_delete_save_and_load(tmp_path):
    a, b = _guideline(1, GRADES_A, "alpha"), _guideline(2, GRADES_B, "beta")
    ix = Index.build([a], LEXICAL)
    assert len(ix._grade_table()) == 3
    ix.add([b])
    _check_table(ix)
    assert _rows(ix, Filters(strength=("strong",))) == {
        r for r, rec in _recs(ix).items() if rec.strength == "strong"
    }
    assert len(_rows(ix, Filters(recommendations_only=True))) == 6
    assert len(_rows(ix, Filters(certainty=("low",)))) == 1  # a certainty not stated does not pass
    ix.delete([a.id])
    _check_table(ix)
    assert {_recs(ix)[r].system for r in _rows(ix, Filters(recommendations_only=True))} == {"SIGN", None, "ACC/AHA"}
    ix.save(tmp_path / "ix")  # compacts: the table is renumbered with the rows
    _check_table(ix)
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["grades"]["strength"] == list(STRENGTHS)
    assert {"grades_rows.npy", "grades_codes.npy"} <= set(manifest["files"])
    loaded = Index.load(tmp_path / "ix")
    _check_table(loaded)
    assert loaded.search("programme trained staff", k=3, filters=Filters(strength=("against",)), mode="bm25")[
        0
    ].chunk.recommendation.system == "ACC/AHA"
    # an index loaded without its table (saved before it existed) reads it from the chunks
    loaded._grades = None
    _check_table(loaded)
    loaded.add([a])
    _check_table(loaded)
    loaded.close()


def test_boost_can_lift_a_row_from_below_k():
    docs = [_guideline(i, [("conditional", "low", "GRADE")] * 2, f"topic{i}") for i in range(6)]
    docs.append(_guideline(99, [("strong", "high", "GRADE")], "topic0"))
    ix = Index.build(docs, LEXICAL)
    q = "topic0 programme trained staff"
    plain = ix.search(q, k=1, mode="bm25")
    assert plain[0].chunk.recommendation.strength != "strong"
    lifted = ix.search(q, k=1, mode="bm25", boost={"strong": 50.0})
    assert lifted[0].chunk.recommendation.strength == "strong"
    # factors that match one chunk multiply
    both = ix.search(q, k=1, mode="bm25", boost={"strong": 5.0, "high": 10.0})
    assert both[0].scores["boost"] == pytest.approx(50.0)
    assert ix.search_many([q], k=1, mode="bm25", boost={"recommendation": 2.0})[0][0].scores["boost"] == 2.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strength": ("strng",)}, "unknown value"),
        ({"strength": "strong"}, "not a single string"),
        ({"certainty": ("verylow",)}, "very low"),
        ({"grade_systems": (1,)}, "must hold strings"),
        ({"recommendations_only": "yes"}, "True or False"),
    ],
)
def test_bad_grade_filters_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Filters(**kwargs)


@pytest.mark.parametrize(
    "boost, message",
    [
        ({"strongest": 1.2}, "unknown key"),
        ({"strong": 0}, "positive number"),
        ({"strong": float("nan")}, "positive number"),
        ({"strong": True}, "positive number"),
        ([("strong", 1.2)], "mapping"),
    ],
)
def test_bad_boosts_are_refused(boost, message):
    ix = Index.build([_guideline(1, GRADES_A, "alpha")], LEXICAL)
    with pytest.raises(ConfigError, match=message):
        ix.search("programme", boost=boost)


def test_cli_search_filters_by_grade(tmp_path, capsys):
    """The grade filters of ``medrag search`` (the command's ``main`` run in this process:
    no interpreter start-up per search; tests/test_cli.py runs it as a subprocess)."""
    from medrag.cli import main

    ix = Index.build([_guideline(1, GRADES_A, "alpha"), _guideline(2, GRADES_B, "beta")], LEXICAL)
    ix.save(tmp_path / "ix")

    def search(*opts: str) -> list[dict]:
        code = main(["search", "--index", str(tmp_path / "ix"), "-k", "20", "--json", *opts, "programme trained staff"])
        out = capsys.readouterr()
        assert code == 0, out.err
        return json.loads(out.out)["passages"]

    strong = search("--strength", "strong")
    assert len(strong) == 2 and all(p["chunk"]["recommendation"]["strength"] == "strong" for p in strong)
    sign = search("--grade-system", "SIGN", "--certainty", "very low")
    assert [p["chunk"]["recommendation"]["system"] for p in sign] == ["SIGN"]
    assert len(search("--recommendations-only")) == 6


def test_the_row_mask_is_reused_until_the_filters_or_the_index_change(tmp_path):
    a, b = _guideline(1, GRADES_A, "alpha"), _guideline(2, GRADES_B, "beta")
    ix = Index.build([a, b], LEXICAL)
    m1 = ix._row_mask(None)
    assert ix._row_mask(Filters()) is m1 and not m1.flags.writeable
    strong = ix._row_mask(Filters(strength=("strong",)))
    assert strong is not m1 and ix._row_mask(Filters(strength=("strong",))) is strong
    n_strong = int(strong.sum())
    ix.delete([a.id])
    after = ix._row_mask(Filters(strength=("strong",)))
    assert int(after.sum()) == n_strong - 1  # alpha's strong recommendation is gone
    ix.add([a])
    assert int(ix._row_mask(Filters(strength=("strong",))).sum()) == n_strong
    ix.save(tmp_path / "ix")  # compaction renumbers the rows: a fresh mask of the new size
    m2 = ix._row_mask(None)
    assert m2.shape == (ix._bm25.n_rows,) and m2.all()
