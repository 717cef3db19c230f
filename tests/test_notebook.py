"""The example notebook runs headless, offline, on the data committed with medrag,
and shows what it says it shows (nbclient with a real Python kernel)."""

from __future__ import annotations

import os

import pytest

from conftest import REPO

NOTEBOOK = REPO / "examples" / "notebook_tour.ipynb"


def _outputs(cell) -> str:
    """Everything a cell put out, as one string (text, HTML, stream, error)."""
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        for k, v in (o.get("data") or {}).items():
            if k.startswith("text/") or k.endswith("json"):
                parts.append(v if isinstance(v, str) else str(v))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def executed():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = nbclient.NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
        )
        client.execute()  # raises CellExecutionError on any failing cell
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return [c for c in nb.cells if c.cell_type == "code"]


def _cell(cells, needle: str):
    return next(c for c in cells if needle in c.source)


def test_notebook_runs_and_shows_rich_views(executed):
    assert all(c.get("execution_count") for c in executed)
    report = _outputs(_cell(executed, "report = IngestReport()"))
    assert "medrag-report" in report and "deletion(s)" in report
    doc = _outputs(_cell(executed, "next(d for d in docs"))
    assert "medrag-document" in doc and "https://pubmed.ncbi.nlm.nih.gov/" in doc and "https://doi.org/" in doc
    build = _cell(executed, "Index.build(")
    assert "medrag-index" in _outputs(build) and "lexical (BM25)" in _outputs(build)
    results = _outputs(_cell(executed, 'results = index.search('))
    assert "medrag-results" in results and "5 passage(s)" in results and "p. " in results
    table = _outputs(_cell(executed, "df = results.to_pandas()"))
    assert "<table" in table and "score" in table


def test_notebook_shows_progress(executed):
    build = _cell(executed, "Index.build(")
    out = _outputs(build)
    # tqdm.auto: a widget in a notebook (text fallback "chunk: 100%|...") or stderr text
    assert "chunk" in out and "bm25" in out, out[:2000]


def test_notebook_answers_with_citations_and_abstains(executed):
    ans = _cell(executed, 'a = answer("How is latent TB')
    out = _outputs(ans)
    assert out.startswith("answered") or out.startswith("partial"), out[:300]
    assert "medrag-answer" in out
    evidence = _outputs(_cell(executed, "a.to_pandas()"))
    assert "<table" in evidence and "quote" in evidence
    assert _outputs(_cell(executed, "outside = answer(")).startswith("abstained")


def test_notebook_draws_the_score_plot(executed):
    plot = _cell(executed, "plt.subplots(")
    assert any("image/png" in (o.get("data") or {}) for o in plot.outputs)
