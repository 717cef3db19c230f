"""Progress on long work (medrag.progress): read → chunk → BM25 → embed with counts,
rate and ETA; the expected embedding time logged before the bulk of it; a model that
cannot load offline fails before the corpus is read."""

from __future__ import annotations

import io
import logging
import os
import re

import numpy as np
import pytest

from conftest import HashEncoder, need_data
from medrag import Index, IndexConfig
from medrag.errors import ConfigError
from medrag.ingest import iter_pubmed
from medrag.progress import (
    CallbackProgress,
    LogProgress,
    NullProgress,
    ProgressEvent,
    TqdmProgress,
    embed_with_progress,
    format_duration,
    resolve_progress,
    track,
)

XML = ("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")


@pytest.fixture(scope="module")
def docs():
    return list(iter_pubmed(need_data(*XML)))


def _lexical() -> IndexConfig:
    return IndexConfig(encoder=None)


def test_log_lines_cover_every_stage_with_counts(docs, caplog):
    caplog.set_level(logging.INFO, logger="medrag.progress")
    index = Index.build(iter(docs), IndexConfig(), encoder=HashEncoder(), progress=LogProgress(interval_s=0))
    lines = [r.getMessage() for r in caplog.records if r.name == "medrag.progress"]
    n_docs, n_chunks = len(docs), len(index)
    n_unique = len({d.id for d in docs})  # a later version of a PMID replaces the earlier
    final = {ln.split(":", 1)[0]: ln for ln in lines if ln.endswith(", done")}
    assert set(final) == {"read", "chunk", "bm25", "embed"}, lines
    # read: the generator had no length, so the count has no total
    assert re.match(rf"read: {n_docs:,} docs, [\d,.]+ docs/s, elapsed \S+, done$", final["read"])
    assert final["chunk"].startswith(f"chunk: {n_unique:,}/{n_unique:,} docs (100.0%)")
    assert final["bm25"].startswith(f"bm25: {n_chunks:,}/{n_chunks:,} chunks (100.0%)")
    assert final["embed"].startswith(f"embed: {n_chunks:,}/{n_chunks:,} chunks (100.0%)")
    # the order of the stages is the order of the work
    order = [ln.split(":", 1)[0] for ln in lines if ln.endswith(", done")]
    assert order == ["read", "chunk", "bm25", "embed"]
    # intermediate embed lines carry an ETA; the announcement precedes the bulk of it
    assert any(re.search(r"^embed: [\d,]+/[\d,]+ chunks .*ETA \d", ln) for ln in lines)
    ann = [ln for ln in lines if ln.startswith("embedding ")]
    assert ann[0] == f"embedding {n_chunks} chunk(s)"
    assert re.fullmatch(rf"embedding {n_chunks} chunk\(s\): about \S+ at [\d.]+ chunks/s \(measured on the first 64\)", ann[1])


def test_tqdm_bar_shows_counts_and_rate(docs):
    buf = io.StringIO()
    index = Index.build(docs, _lexical(), progress=TqdmProgress(file=buf, mininterval=0))
    out = buf.getvalue()
    n = len({d.id for d in docs})
    assert re.search(rf"chunk: 100%\S* {n}/{n} ", out), out[-500:]
    assert re.search(rf"bm25: 100%\S* {len(index)}/{len(index)} ", out)
    assert "docs/s" in out and "chunks/s" in out


def test_documents_already_read_have_no_read_stage(docs):
    events: list[ProgressEvent] = []
    Index.build(docs, _lexical(), progress=CallbackProgress(events.append))
    assert list(dict.fromkeys(e.stage for e in events)) == ["chunk", "bm25"]


def test_progress_changes_nothing_in_the_index(docs):
    plain = Index.build(docs, IndexConfig(), encoder=HashEncoder())
    shown = Index.build(docs, IndexConfig(), encoder=HashEncoder(), progress=CallbackProgress(lambda e: None))
    q = "breast cancer treatment outcomes"
    a = [(p.chunk.id, round(p.score, 9)) for p in plain.search(q, k=10)]
    b = [(p.chunk.id, round(p.score, 9)) for p in shown.search(q, k=10)]
    assert a == b and len(a) == 10


def test_callback_events_are_consistent(docs):
    events: list[ProgressEvent] = []
    Index.build(iter(docs), IndexConfig(), encoder=HashEncoder(), progress=CallbackProgress(events.append))
    by_stage: dict[str, list[ProgressEvent]] = {}
    for e in events:
        by_stage.setdefault(e.stage, []).append(e)
    assert list(by_stage) == ["read", "chunk", "bm25", "embed"]
    for name, evs in by_stage.items():
        done = [e.done for e in evs]
        assert done == sorted(done) and done[0] == 0, name
        assert evs[-1].finished and sum(e.finished for e in evs) == 1
        if evs[-1].total is not None:
            assert evs[-1].done == evs[-1].total
            mid = [e for e in evs if 0 < e.done < e.total]
            assert all(e.eta_s is not None and e.eta_s >= 0 for e in mid)


def test_embedding_in_slices_equals_one_call(caplog):
    caplog.set_level(logging.INFO, logger="medrag.progress")
    enc = HashEncoder(dim=24)
    texts = [f"text number {i} about sepsis and {i % 7} antibiotics" for i in range(1300)]
    events: list[ProgressEvent] = []
    got = embed_with_progress(enc, texts, CallbackProgress(events.append), probe=64, step=512)
    np.testing.assert_array_equal(got, enc.encode_documents(texts))
    assert [e.done for e in events] == [0, 64, 576, 1088, 1300, 1300]
    assert any("measured on the first 64" in r.getMessage() for r in caplog.records)


def test_resolve_progress_choices():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(resolve_progress("auto", stream=io.StringIO()), LogProgress)
    assert isinstance(resolve_progress(True, stream=Tty()), TqdmProgress)
    for off in (None, False, "off"):
        assert not resolve_progress(off).enabled
    p = LogProgress()
    assert resolve_progress(p) is p
    with pytest.raises(ConfigError, match="progress must be"):
        resolve_progress("loud")
    with pytest.raises(ConfigError):
        LogProgress(interval_s=-1)


def test_track_counts_items_and_keeps_them():
    events: list[ProgressEvent] = []
    items = list(track(range(5), "read", progress=CallbackProgress(events.append), unit="doc"))
    assert items == [0, 1, 2, 3, 4]
    assert events[-1].done == 5 and events[-1].total == 5 and events[-1].finished
    assert list(track(iter("ab"), "x", progress=NullProgress())) == ["a", "b"]


def test_format_duration():
    assert [format_duration(s) for s in (0, 12.4, 185, 3720, None, float("inf"))] == ["0s", "12s", "3m05s", "1h02m", "?", "?"]
    assert ProgressEvent("embed", 3, 10, "chunk", 2.0, 1.5, 4.67).line() == \
        "embed: 3/10 chunks (30.0%), 1.5 chunks/s, elapsed 2s, ETA 5s"


def test_hub_model_fails_before_reading_the_corpus(docs):
    pytest.importorskip("sentence_transformers")
    from medrag.retrieve.dense import EncoderConfig

    pulled = []

    def corpus():
        for d in docs:
            pulled.append(d.id)
            yield d

    cfg = IndexConfig(encoder=EncoderConfig(model="BAAI/bge-small-en-v1.5"))
    with pytest.raises(ConfigError, match=r"use package:<name> .*or a local folder"):
        Index.build(corpus(), cfg, progress="log")
    assert pulled == []  # not one document was read


def test_real_model_sliced_embedding_matches_one_call(minilm):
    enc = minilm
    texts = [f"Procalcitonin guided antibiotic therapy, trial {i}, reduced duration by {i % 5} days." for i in range(80)]
    sliced = embed_with_progress(enc, texts, CallbackProgress(lambda e: None), probe=16, step=32)
    whole = enc.encode_documents(texts)
    assert sliced.shape == whole.shape == (80, enc.dim)
    np.testing.assert_allclose(sliced, whole, atol=1e-5)


def test_read_files_counts_files_and_documents():
    from medrag.ingest import IngestReport
    from medrag.progress import read_files

    folder = need_data("pubmed", "medline_text", "biopython")
    from medrag.ingest import iter_medline

    events: list[ProgressEvent] = []
    report = IngestReport()
    got = list(read_files(folder, iter_medline, progress=CallbackProgress(events.append), report=report))
    plain = list(iter_medline(folder))
    assert [d.id for d in got] == [d.id for d in plain] and got
    files = [e for e in events if e.stage == "read"]
    docs = [e for e in events if e.stage == "docs"]
    n_files = len(list(folder.iterdir()))
    assert files[-1].finished and files[-1].done == files[-1].total == n_files == report.files
    assert docs[-1].finished and docs[-1].done == len(got) and docs[-1].total is None
    assert [e.done for e in files] == list(range(n_files + 1)) + [n_files]


@pytest.mark.slow
def test_cli_build_loads_the_model_before_reading(tmp_path, capsys):
    """`medrag build` with a hub model that cannot load offline fails on the model, not on
    the (unreadable) corpus: the encoder is loaded before any file is read. The command
    runs in this process (no interpreter and torch start-up; offline: conftest sets
    HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE before anything is imported)."""
    pytest.importorskip("sentence_transformers")
    from medrag.cli import main

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    code = main(["build", str(tmp_path / "missing.xml"), "--index", str(tmp_path / "ix"),
                 "--model", "BAAI/bge-small-en-v1.5"])
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot load the encoder model 'BAAI/bge-small-en-v1.5'" in err and "or a local folder" in err
    assert "missing.xml" not in err
