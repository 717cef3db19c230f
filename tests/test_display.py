"""Notebook views (medrag.display): summary first, details folded, working PubMed and
DOI links, pages; untrusted text escaped; search results and answers as tables."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

import pytest

from conftest import need_data
from medrag import AnswerConfig, Index, IndexConfig, answer
from medrag.display import ANSWER_COLUMNS, PASSAGE_COLUMNS, SearchResults
from medrag.ingest import IngestReport, iter_guideline_pdf, iter_pubmed
from medrag.types import Document, PubmedMetadata, Section, SourceFile

XML = ("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")


class _Tags(HTMLParser):
    """Every tag and every link target of an HTML fragment (a real parser)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.hrefs += [v for k, v in attrs if k == "href"]

    def handle_data(self, data):
        self.text.append(data)


def _parse(fragment: str) -> _Tags:
    p = _Tags()
    p.feed(fragment)
    p.close()
    return p


@pytest.fixture(scope="module")
def corpus():
    report = IngestReport()
    docs = list(iter_pubmed(need_data(*XML), report=report))
    return docs, report


@pytest.fixture(scope="module")
def index(corpus):
    return Index.build(corpus[0], IndexConfig(encoder=None))


def test_search_results_are_a_list_with_a_table_view(index):
    res = index.search("cancer patients treatment outcomes", k=5)
    assert isinstance(res, SearchResults) and isinstance(res, list) and len(res) == 5
    assert res == list(res) and res.query == "cancer patients treatment outcomes"
    assert res.mode == "bm25"  # the mode actually used: the index is lexical only
    html = res._repr_html_()
    t = _parse(html)
    assert html.index("5 passage(s)") < html.index("<table>") < html.index("<details>")
    assert t.tags.count("details") == 5
    for p in res:
        assert f"https://pubmed.ncbi.nlm.nih.gov/{p.source.pmid}/" in t.hrefs
        if p.source.doi:
            assert any(h.startswith("https://doi.org/10.") for h in t.hrefs)
    md = res._repr_markdown_()
    assert md.splitlines()[2].startswith("| # | score")
    assert f"(<https://pubmed.ncbi.nlm.nih.gov/{res[0].source.pmid}/>)" in md
    # one passage on its own
    one = _parse(res[0]._repr_html_())
    assert "details" in one.tags and f"https://pubmed.ncbi.nlm.nih.gov/{res[0].source.pmid}/" in one.hrefs


def test_search_records_and_dataframe(index):
    res = index.search("cancer patients", k=4)
    recs = res.to_records()
    assert [r["rank"] for r in recs] == [1, 2, 3, 4]
    for r, p in zip(recs, res):
        assert tuple(r) == PASSAGE_COLUMNS
        assert (r["chunk_id"], r["score"], r["bm25"], r["dense"], r["pmid"]) == \
            (p.chunk.id, p.score, p.scores["bm25"], None, p.source.pmid)
        assert r["text"] == p.chunk.text and r["url"] == f"https://pubmed.ncbi.nlm.nih.gov/{p.source.pmid}/"
    pd = pytest.importorskip("pandas")
    df = res.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == list(PASSAGE_COLUMNS) and len(df) == 4
    assert df["score"].is_monotonic_decreasing
    empty = index.search("zzzzqqqq", k=3)
    assert len(empty) == 0 and list(empty.to_pandas().columns) == list(PASSAGE_COLUMNS)
    assert "0 passage(s)" in empty._repr_html_()


def test_guideline_passages_show_their_pages():
    docs = list(iter_guideline_pdf(need_data("guidelines", "cdc_what_you_need_to_know_about_tb_2023.pdf")))
    ix = Index.build(docs, IndexConfig(encoder=None))
    res = ix.search("latent TB infection treatment", k=3)
    assert res and all(p.chunk.pages for p in res)
    html, md = res._repr_html_(), res._repr_markdown_()
    for p in res:
        pages = p.chunk.pages
        shown = f"p. {pages[0]}" if len(pages) == 1 else f"pp. {pages[0]}-{pages[-1]}"
        assert shown in html and shown in md
    # a guideline has no PMID: no PubMed link is made up
    assert not any("pubmed" in h for h in _parse(html).hrefs)


def test_document_view_summary_first_and_links(corpus):
    docs, _ = corpus
    d = next(x for x in docs if x.pubmed and x.pubmed.doi and len(x.sections) > 1)
    html = d._repr_html_()
    t = _parse(html)
    assert f"https://pubmed.ncbi.nlm.nih.gov/{d.pmid}/" in t.hrefs
    assert any(h.startswith("https://doi.org/") for h in t.hrefs)
    assert html.index("<table>") < html.index("<details>")
    assert f"{len(d.sections)} section(s)" in html
    md = d._repr_markdown_()
    assert md.startswith("**") and f"(<https://pubmed.ncbi.nlm.nih.gov/{d.pmid}/>)" in md


def test_ingest_report_view(corpus, tmp_path):
    _, report = corpus
    html = report._repr_html_()
    assert f"{report.documents} document(s)" in html and report.deletions
    hrefs = _parse(html).hrefs
    assert [f"https://pubmed.ncbi.nlm.nih.gov/{d.pmid}/" for d in report.deletions] == hrefs
    # a skipped file is listed with its reason, escaped
    bad = tmp_path / "<b>bad<b>.xml"
    bad.write_text("<PubmedArticleSet><PubmedArticle><oops", encoding="utf-8")
    r2 = IngestReport()
    list(iter_pubmed(bad, on_error="skip", report=r2))
    assert r2.skipped
    h2 = r2._repr_html_()
    assert "&lt;b&gt;bad&lt;b&gt;.xml" in h2 and "<b>bad<b>" not in h2
    assert "1 skipped" in r2._repr_markdown_()


def test_index_view(index, tmp_path):
    html = index._repr_html_()
    assert "lexical (BM25)" in html and f"{len(index):,}" in html and "not saved yet" in html
    index.save(tmp_path / "ix")
    loaded = Index.load(tmp_path / "ix")
    h = loaded._repr_html_()
    assert loaded.id in h and "<details><summary>manifest</summary>" in h
    assert f"documents: {loaded.n_documents:,}" in loaded._repr_markdown_()


def _hostile_doc() -> Document:
    title = '<script>alert(1)</script> [Official update](https://evil.example/) **bold**'
    text = 'Procalcitonin <img src=x onerror=alert(2)> guided therapy [click](javascript:alert(3)) shortens antibiotics.'
    meta = PubmedMetadata(pmid="1)](https://evil.example/x", doi='10.1/x" onmouseover="alert(4)')
    return Document(id="pmid:evil", kind="pubmed", title=title, text=text,
                    sections=(Section("abstract", "<i>RESULTS</i>", 0, len(text)),),
                    source=SourceFile("evil.xml", "0" * 64), year=2020, pubmed=meta)


def test_untrusted_text_is_escaped_everywhere():
    d = _hostile_doc()
    ix = Index.build([d], IndexConfig(encoder=None))
    res = ix.search("procalcitonin antibiotics", k=1)
    assert len(res) == 1
    for html in (res._repr_html_(), res[0]._repr_html_(), d._repr_html_()):
        t = _parse(html)
        assert not {"script", "img", "i"} & set(t.tags), t.tags
        assert all(h.startswith(("https://pubmed.ncbi.nlm.nih.gov/", "https://doi.org/")) for h in t.hrefs), t.hrefs
        assert not any("evil" in h or "javascript" in h or "onmouseover" in h for h in t.hrefs)
        assert "&lt;script&gt;" in html
    for md in (res._repr_markdown_(), res[0]._repr_markdown_(), d._repr_markdown_()):
        assert "](https://evil" not in md and "](javascript" not in md and "<script>" not in md
        assert "\\[Official update\\]" in md


def test_answer_evidence_table(index, corpus):
    docs, _ = corpus
    a = answer("Does adherence to varenicline affect quitting smoking?", index, config=AnswerConfig(threshold=0.0))
    assert a.status in ("answered", "partial")
    rows = a.to_records()
    assert rows and all(tuple(r) == ANSWER_COLUMNS for r in rows)
    n_cites = sum(len(s.citations) for s in a.sentences)
    assert len(rows) == n_cites
    by_id = {d.id: d for d in docs}
    for r in rows:
        assert by_id[r["doc_id"]].text[r["start"]:r["end"]] == r["quote"]
        assert r["status"] == a.status and r["url"] == f"https://pubmed.ncbi.nlm.nih.gov/{r['pmid']}/"
    # reference numbers follow first citation, as in the rendered answer
    seen = list(dict.fromkeys(r["doc_id"] for r in rows))
    assert [r["ref"] for r in rows] == [seen.index(r["doc_id"]) + 1 for r in rows]
    pd = pytest.importorskip("pandas")
    df = a.to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == n_cites
    abst = dataclasses.replace(a, status="abstained", sentences=(), abstain_reason="nothing relevant")
    assert abst.to_records() == [] and len(abst.to_pandas()) == 0
