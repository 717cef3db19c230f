"""Index.build_to: a saved lexical index written from a stream of documents in bounded
memory (issue 16), against Index.build(...).save() of the same real PubMed records."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from test_index import real_pubmed  # noqa: F401  (1,103 real PubMed articles)

from medrag.errors import ConfigError
from medrag.index import Filters, Index, IndexConfig

LEX = IndexConfig(encoder=None)
SAME_BYTES = (
    "docs.jsonl", "chunks.jsonl", "doc_offsets.npy", "chunk_offsets.npy", "chunk_doc.npy", "doc_year.npy",
    "doc_retracted.npy", "doc_ids.bin", "doc_id_offsets.npy", "doc_id_hash.npy", "doc_id_order.npy",
    "doc_sha256.npy", "grades_rows.npy", "grades_codes.npy",
)


@pytest.fixture(scope="module")
def corpus(real_pubmed):  # noqa: F811
    return list({d.id: d for d in real_pubmed}.values())  # one version per PMID


def _gen(path):
    m = json.loads((path / "manifest.json").read_text())
    return m, path


def test_streamed_index_equals_a_built_and_saved_one(corpus, tmp_path):
    Index.build(corpus, LEX, lexical="segments").save(tmp_path / "built")
    Index.build_to(tmp_path / "streamed", iter(corpus), LEX, batch_docs=97, segment_tokens=20_000)
    (mb, b), (ms, s) = _gen(tmp_path / "built"), _gen(tmp_path / "streamed")
    for rel in SAME_BYTES:
        assert (b / rel).read_bytes() == (s / rel).read_bytes(), rel
    for key in ("counts", "corpus_fingerprint", "chunking", "analyzer", "bm25", "fusion", "grades", "lexical", "format_version"):
        assert mb[key] == ms[key], key
    a, z = Index.load(b), Index.load(s)
    assert z._bm25._s.n_segments > 1  # the stream was cut into segments
    queries = [d.title for d in corpus if d.title][::5] + ["dopamine receptor antagonist", "the"]
    for f in (None, Filters(year_min=1978), Filters(exclude_doc_ids=(corpus[0].id,))):
        for q in queries:
            ra, rz = a.search(q, 10, mode="bm25", filters=f), z.search(q, 10, mode="bm25", filters=f)
            assert [p.chunk.id for p in ra] == [p.chunk.id for p in rz], q
            assert np.allclose([p.score for p in ra], [p.score for p in rz], rtol=1e-12, atol=0), q
    assert z.source(corpus[7].id) == a.source(corpus[7].id)
    # the streamed index is an ordinary one: changed in place and saved again
    z.delete([corpus[1].id])
    z.add([dataclasses.replace(corpus[2], title="a revised title of this record")])
    z.save(s)
    again = Index.load(s, verify="full")
    assert corpus[1].id not in again.document_ids() and again.source(corpus[2].id).title.startswith("a revised")


def test_a_failing_stream_keeps_the_previous_generation(corpus, tmp_path):
    d = tmp_path / "ix"
    Index.build_to(d, corpus[:50], LEX)
    before = Index.load(d).document_ids()

    def broken():
        yield from corpus[50:120]
        raise OSError("the disk with the input went away")

    with pytest.raises(OSError, match="went away"):
        Index.build_to(d, broken(), LEX, batch_docs=30)
    assert Index.load(d, verify="full").document_ids() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ix.lock", "ix"]  # no staging left
    # an id in two batches: refused before anything is committed
    twice = corpus[:40] + [dataclasses.replace(corpus[3], title="again")]
    read = []

    def counted(docs):
        for x in docs:
            read.append(x.id)
            yield x

    with pytest.raises(ConfigError, match=f"{corpus[3].id}.*appears twice.*documents 3 and 40"):
        Index.build_to(d, counted(twice + corpus[40:400]), LEX, batch_docs=20)
    assert len(read) <= 60  # found with the batch that repeats it, not at the end
    assert Index.load(d).document_ids() == before
    # within one batch the last version wins, as in Index.add
    Index.build_to(d, twice, LEX, batch_docs=1000)
    assert Index.load(d).source(corpus[3].id).title == "again"


def test_bad_arguments_are_refused_before_reading(corpus, tmp_path):
    def never():
        raise AssertionError("read")
        yield

    with pytest.raises(ConfigError, match="lexical index"):
        Index.build_to(tmp_path / "a", never(), IndexConfig())  # the default config has an encoder
    with pytest.raises(ConfigError, match="batch_docs"):
        Index.build_to(tmp_path / "a", never(), LEX, batch_docs=0)
    with pytest.raises(ConfigError, match="Document"):
        Index.build_to(tmp_path / "a", [corpus[0], "not a document"], LEX)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    with pytest.raises(ConfigError):
        Index.build_to(tmp_path / "mine", never(), LEX)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "the user's"
    Index.build_to(tmp_path / "empty", [], LEX)
    assert Index.load(tmp_path / "empty").document_ids() == []
