"""Untrusted document text in rendered answers, and AnswerConfig validation (issue 11)."""

from __future__ import annotations

import ast
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest

from medrag.answer import AnswerConfig, SupportModel
from medrag.answer.render import to_html, to_markdown
from medrag.errors import ConfigError
from medrag.types import Answer, AnswerSentence, Chunk, Citation, Passage, SourceInfo

SRC = Path(__file__).resolve().parents[1] / "src" / "medrag"

EVIL = "https://evil.example/"
QUOTE = "Wash hands [now](https://evil.example/q) <img src=x onerror=alert(1)> \x1b[31mred\x1b[0m."


def _answer(kind: str = "pubmed", **src) -> Answer:
    text = QUOTE + " More text."
    ch = Chunk(id="d:1#0", doc_id="d:1", text=text, start=0, end=len(text), index_text=text, pages=(3,) if kind == "guideline" else ())
    info = SourceInfo(doc_id="d:1", kind=kind, title=src.pop("title", "A title"), **src)
    cit = Citation(chunk_id="d:1#0", doc_id="d:1", start=0, end=len(QUOTE), quote=QUOTE, page=ch.pages[0] if ch.pages else None)
    return Answer(
        question="q", status="answered", sentences=(AnswerSentence(QUOTE, (cit,)),),
        passages=(Passage(chunk=ch, source=info, score=1.0, rank=1),), index_id="i",
    )


def _md_links(md: str) -> list[str]:
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py parses the Markdown we render")
    out = []

    def walk(tokens):
        for t in tokens:
            if t.type == "link_open":
                out.append(t.attrs["href"])
            if t.type in ("html_inline", "html_block"):
                out.append("HTML:" + t.content)
            if t.children:
                walk(t.children)

    walk(markdown_it.MarkdownIt("commonmark").parse(md))
    return out


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _html_tags(h: str) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(h)
    return p.tags


HOSTILE = dict(
    title="[Official update](https://evil.example/)",
    pmid="1)](https://evil.example/x) [x",
    doi="10.1000/x) [y](https://evil.example/",
    journal="J <script>alert(1)</script>",
    authors=("Smith J](https://evil.example/)",),
    n_authors=1,
    year=2020,
)


def test_markdown_makes_no_link_from_document_text():
    md = to_markdown(_answer(**HOSTILE))
    links = _md_links(md)
    assert not any("evil" in h for h in links), links
    assert not any(h.startswith("HTML:") for h in links), links
    assert "\x1b" not in md
    # the text itself is still there for the reader
    assert "Official update" in md and "evil.example" in md


def test_guideline_title_and_url_are_not_disguised_links():
    md = to_markdown(_answer("guideline", title="[Official update](https://evil.example/)",
                             organization="WHO](https://evil.example/)", url="javascript:alert(1)", file="a](b).pdf"))
    links = _md_links(md)
    assert links == [], links
    assert "p. 3" in md


def test_html_escapes_document_text():
    h = to_html(_answer(**HOSTILE))
    tags = _html_tags(h)
    assert {t for t, _ in tags} <= {"div", "p", "sup", "ol", "li", "a", "b", "i"}, tags
    assert not any("evil" in a.get("href", "") for _, a in tags)
    assert not any(k.startswith("on") for _, a in tags for k in a)
    assert "\x1b" not in h


def test_real_identifiers_still_link():
    md = to_markdown(_answer(title="Does one size fit all?", pmid="31978945", doi="10.1016/S0140-6736(20)30183-5",
                             journal="Cytokine", year=2020))
    links = _md_links(md)
    assert "https://pubmed.ncbi.nlm.nih.gov/31978945/" in links
    assert "https://doi.org/10.1016/S0140-6736%2820%2930183-5" in links
    assert "fit all?." not in md and "fit all?\\." not in md  # no doubled punctuation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": math.nan}, {"threshold": -1}, {"threshold": 1.5}, {"threshold": "0.5"},
        {"threshold": True}, {"max_sentences": 0}, {"max_sentences": 2.5}, {"k": 0}, {"k": "8"},
        {"mmr_lambda": math.inf}, {"min_sentence_coverage": -0.1}, {"min_relative_relevance": None},
        {"partial_coverage": 2}, {"support": "default"},
    ],
)
def test_answer_config_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        AnswerConfig(**kwargs)


def test_support_model_rejects_non_finite_weights():
    with pytest.raises(ConfigError):
        SupportModel(bias=math.nan)
    assert AnswerConfig(threshold=0, max_sentences=1).threshold == 0


def _runtime_imports(path: Path) -> set[str]:
    """Modules a file imports at module level outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_data_types_and_renderer_do_not_import_each_other():
    assert not any("types" in m for m in _runtime_imports(SRC / "answer" / "render.py"))
    assert not any("answer" in m for m in _runtime_imports(SRC / "types.py"))
