"""Windows pooled per chunk, so dense retrieval sees past the encoder's 256 word pieces:
real SciFact abstracts, the real packaged MiniLM and its tokenizer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import need_data
from medrag.errors import ConfigError
from medrag.retrieve.windows import encode_windowed, piece_counts, pool, split_windows


@pytest.fixture(scope="module")
def abstracts():
    path = need_data("scifact", "corpus.jsonl")
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out.append(d["title"] + " " + d["text"])
            if len(out) == 300:
                break
    return out


def test_windows_cover_the_text_within_budget(minilm, abstracts):
    tok = minilm.tokenizer
    budget = minilm.window_budget
    assert budget == 254  # 256 less [CLS] and [SEP]
    long_ones = [t for t, n in zip(abstracts, piece_counts(tok, abstracts)) if n > budget]
    assert len(long_ones) > 50  # many real abstracts are longer than MiniLM reads
    for text in long_ones:
        ws = split_windows(tok, text, budget, 32)
        assert len(ws) >= 2
        assert ws[0] == text  # the encoder reads its first `budget` pieces
        assert max(piece_counts(tok, ws[1:])) <= budget
        # verbatim substrings, in order, first at the start and last at the end
        pos = [text.find(w) for w in ws]
        assert all(p >= 0 for p in pos) and pos == sorted(pos)
        assert pos[0] == 0 and pos[-1] + len(ws[-1]) == len(text)
        # no gap: every window starts before the previous one ends (they overlap)
        for (a, wa), b in zip(zip(pos, ws), pos[1:]):
            assert b < a + len(wa)
        # every word piece of the text is read by some window
        assert budget + sum(piece_counts(tok, ws[1:])) >= piece_counts(tok, [text])[0]


def test_short_text_is_its_own_window(minilm):
    text = "Procalcitonin-guided antibiotic therapy shortened treatment in lower respiratory tract infection."
    assert split_windows(minilm.tokenizer, text, minilm.window_budget, 32) == [text]


def test_bad_window_settings_are_refused(minilm):
    from medrag.retrieve.dense import EncoderConfig

    with pytest.raises(ConfigError, match="overlap"):
        split_windows(minilm.tokenizer, "a b c", 20, 15)
    with pytest.raises(ConfigError, match="windows"):
        EncoderConfig(windows="sum")
    with pytest.raises(ConfigError, match="pooling"):
        pool(np.ones((2, 3), np.float32), "sum")


@pytest.fixture(scope="module")
def windowed(minilm):
    from medrag.retrieve.dense import EncoderConfig, SentenceTransformerEncoder

    return SentenceTransformerEncoder(EncoderConfig(windows="mean"))


def test_pooled_encoder_equals_pooling_its_windows(minilm, windowed, abstracts):
    """Oracle: each window embedded alone by the plain encoder, pooled by hand."""
    counts = piece_counts(minilm.tokenizer, abstracts)
    long_text = next(t for t, n in zip(abstracts, counts) if n > 300)
    short_text = next(t for t, n in zip(abstracts, counts) if n < 200)
    plain = minilm.encode_documents([short_text, long_text])
    ws = split_windows(minilm.tokenizer, long_text, 254, 32)
    wv = minilm.encode_documents(ws)
    for how in ("mean", "max"):
        if how == "mean":
            got = windowed.encode_documents([short_text, long_text])
        else:  # the same path, the other pooling
            got = encode_windowed([short_text, long_text], minilm.encode_documents, minilm.tokenizer, 254, 32, "max")
        np.testing.assert_allclose(got[0], plain[0], atol=1e-5)  # fits: unchanged
        want = wv.mean(axis=0) if how == "mean" else wv.max(axis=0)
        np.testing.assert_allclose(got[1], want / np.linalg.norm(want), atol=1e-5)
        assert float(got[1] @ plain[1]) < 0.999  # the cut text's vector did change
        assert abs(float(np.linalg.norm(got[1])) - 1.0) < 1e-5


def test_encode_windowed_keeps_row_order_and_empty_input(minilm):
    calls = []

    def fake_encode(texts):
        calls.append(list(texts))
        return np.eye(len(texts), 4, dtype=np.float32) if texts else np.zeros((0, 4), np.float32)

    assert encode_windowed([], fake_encode, minilm.tokenizer, 254, 32, "mean").shape == (0, 4)
    out = encode_windowed(["one", "two", "three"], fake_encode, minilm.tokenizer, 254, 32, "max")
    np.testing.assert_array_equal(out, np.eye(3, 4, dtype=np.float32))


def test_describe_unchanged_without_windows_and_recorded_with(minilm, windowed):
    """Without windows the description is the 0.1/0.2 one (manifests and embedding caches
    keep their keys); with windows it names them and rebuilds the same encoder."""
    from medrag.retrieve.dense import EncoderConfig, encoder_config_from_description

    assert set(minilm.describe()) == {
        "type", "dim", "model", "query_prefix", "document_prefix", "max_seq_length", "batch_size"
    }
    desc = windowed.describe()
    assert desc["windows"] == "mean" and desc["window_overlap"] == 32
    assert encoder_config_from_description(json.loads(json.dumps(desc))) == windowed.config
    assert encoder_config_from_description(minilm.describe()) == EncoderConfig()  # a 0.2 manifest: no windows
    assert EncoderConfig(windows="max", window_overlap=48) == encoder_config_from_description(
        {**desc, "windows": "max", "window_overlap": 48}
    )


def test_index_saved_with_windows_loads_with_windows(minilm, windowed, tmp_path):
    from medrag.index import Index, IndexConfig
    from medrag.ingest.beir import iter_beir_corpus
    from medrag.retrieve.dense import EncoderConfig

    docs = []
    for d in iter_beir_corpus(need_data("scifact")):
        if piece_counts(minilm.tokenizer, [d.text])[0] > 300:
            docs.append(d)
        if len(docs) == 3:
            break
    long_ones = [d.text for d in docs]
    cfg = IndexConfig(encoder=EncoderConfig(windows="mean"))
    index = Index.build(docs, cfg, encoder=windowed)
    index.save(tmp_path / "ix")
    loaded = Index.load(tmp_path / "ix")
    assert loaded.encoder.describe() == index.encoder.describe()
    assert loaded.encoder.describe()["windows"] == "mean"
    assert loaded.config.encoder.windows == "mean"  # the index's config says what its encoder does
    q = long_ones[1][-200:]  # words only the second window reads
    assert [p.chunk.id for p in loaded.search(q, k=3, mode="dense")] == [p.chunk.id for p in index.search(q, k=3, mode="dense")]
