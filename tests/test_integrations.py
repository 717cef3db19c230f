"""The LangChain and LlamaIndex adapters, against the real packages (skipped when the
`integrations` extra is not installed)."""

from __future__ import annotations

import json

import pytest

from conftest import need_data
from medrag import Filters, Index, IndexConfig
from medrag.ingest import iter_pubmed

Q = "cancer patients treatment outcomes"


@pytest.fixture(scope="module")
def index():
    docs = list(iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")))
    return Index.build(docs, IndexConfig(encoder=None))


def _check_meta(meta: dict, p) -> None:
    assert meta["chunk_id"] == p.chunk.id and meta["doc_id"] == p.chunk.doc_id
    assert meta["pmid"] == p.source.pmid and meta["doi"] == p.source.doi
    assert (meta["start"], meta["end"]) == (p.chunk.start, p.chunk.end)
    assert meta["rank"] == p.rank and meta["score"] == p.score and meta["scores"] == p.scores
    assert meta["url"] == f"https://pubmed.ncbi.nlm.nih.gov/{p.source.pmid}/"
    json.dumps(meta)  # plain JSON values: storable in any vector store / trace


def test_langchain_retriever(index):
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableLambda

    from medrag.integrations.langchain import MedragRetriever

    r = MedragRetriever(index=index, k=4)
    assert isinstance(r, BaseRetriever)
    docs = r.invoke(Q)
    expected = index.search(Q, k=4)
    assert len(docs) == 4 and all(isinstance(d, Document) for d in docs)
    for d, p in zip(docs, expected):
        assert d.page_content == p.chunk.text and d.id == p.chunk.id
        _check_meta(d.metadata, p)
    # composes in a real LCEL chain, and batches
    chain = r | RunnableLambda(lambda ds: [d.metadata["pmid"] for d in ds])
    assert chain.invoke(Q) == [p.source.pmid for p in expected]
    assert [len(x) for x in r.batch([Q, "tobacco dependence"])] == [4, len(index.search("tobacco dependence", k=4))]
    # filters pass through
    recent = MedragRetriever(index=index, k=10, filters=Filters(year_min=2020)).invoke(Q)
    assert recent and all(d.metadata["year"] >= 2020 for d in recent)


def test_llamaindex_retriever(index):
    pytest.importorskip("llama_index.core")
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

    from medrag.integrations.llamaindex import MedragLlamaRetriever

    r = MedragLlamaRetriever(index, k=4)
    assert isinstance(r, BaseRetriever)
    nodes = r.retrieve(Q)
    expected = index.search(Q, k=4)
    assert len(nodes) == 4 and all(isinstance(n, NodeWithScore) for n in nodes)
    for n, p in zip(nodes, expected):
        assert n.score == p.score and n.node.node_id == p.chunk.id
        assert n.node.get_content() == p.chunk.text
        # metadata is kept for the application but not pasted into LLM prompts
        assert n.node.get_content(metadata_mode=MetadataMode.LLM) == p.chunk.text
        _check_meta(n.node.metadata, p)
    assert [n.node.node_id for n in r.retrieve(QueryBundle(Q))] == [p.chunk.id for p in expected]
    recent = MedragLlamaRetriever(index, k=10, filters=Filters(year_min=2020)).retrieve(Q)
    assert recent and all(n.node.metadata["year"] >= 2020 for n in recent)


def test_importing_the_package_imports_no_framework():
    import subprocess
    import sys

    code = ("import sys, medrag.integrations as m; "
            "print(any(k.split('.')[0] in ('langchain_core', 'llama_index') for k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
