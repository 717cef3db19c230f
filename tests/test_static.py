"""The static-embedding encoder (model2vec format): encoding against model2vec itself and
a hand computation, refusals (hub names, missing files, a changed model), and an index
that records it and loads it again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import need_data
from medrag.errors import ConfigError, IndexFormatError

tokenizers = pytest.importorskip("tokenizers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from medrag.retrieve.static import StaticConfig, StaticEncoder  # noqa: E402

WORDS = (
    "procalcitonin guided antibiotic therapy reduced duration in lower respiratory tract infection "
    "randomized trial of aspirin for primary prevention of cardiovascular events in diabetes "
    "statins lowered ldl cholesterol and mortality the a of"
).split()


def make_model(folder: Path, dim: int = 8, *, weights: bool = False, mapping: bool = False, seed: int = 0) -> Path:
    """A small model2vec-format model: a word-level tokenizer and a random table."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.normalizers import Lowercase
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"[UNK]": 0}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = Lowercase()
    tok.pre_tokenizer = Whitespace()
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    rng = np.random.default_rng(seed)
    tensors = {}
    if mapping:  # vocabulary quantization: tokens share rows of a smaller table
        tensors["embeddings"] = rng.standard_normal((5, dim)).astype(np.float32)
        tensors["mapping"] = (np.arange(len(vocab)) % 5).astype(np.int64)
    else:
        tensors["embeddings"] = rng.standard_normal((len(vocab), dim)).astype(np.float16)
    if weights:
        tensors["weights"] = rng.uniform(0.5, 2.0, len(vocab)).astype(np.float32)
    safetensors_numpy.save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "model2vec", "normalize": True, "hidden_dim": dim}))
    return folder


TEXTS = [
    "Procalcitonin guided antibiotic therapy in lower respiratory tract infection",
    "Aspirin for primary prevention of cardiovascular events in diabetes: a randomized trial",
    "Statins lowered LDL cholesterol",
    "zzz qqq",  # only unknown words
    "",
]


def test_mean_of_piece_vectors_by_hand(tmp_path):
    folder = make_model(tmp_path / "m")
    enc = StaticEncoder(str(folder))
    got = enc.encode_documents(TEXTS)
    assert got.shape == (len(TEXTS), 8) and got.dtype == np.float32
    table = safetensors_numpy.load_file(str(folder / "model.safetensors"))["embeddings"].astype(np.float32)
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    words = "statins lowered ldl cholesterol".split()
    want = table[[vocab[w] for w in words]].mean(axis=0)
    np.testing.assert_allclose(got[2], want / np.linalg.norm(want), atol=1e-6)
    assert not got[3].any() and not got[4].any()  # nothing known: the zero vector
    np.testing.assert_allclose(np.linalg.norm(got[:3], axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(enc.encode_queries(TEXTS), got)  # symmetric


@pytest.mark.parametrize("weights,mapping", [(False, False), (True, False), (True, True)])
def test_equals_model2vec(tmp_path, weights, mapping):
    """Oracle: model2vec's own StaticModel on the same folder."""
    model2vec = pytest.importorskip("model2vec")
    folder = make_model(tmp_path / "m", weights=weights, mapping=mapping)
    want = model2vec.StaticModel.from_pretrained(str(folder)).encode(TEXTS, max_length=None, use_multiprocessing=False)
    got = StaticEncoder(str(folder)).encode_documents(TEXTS)
    np.testing.assert_allclose(got, want, atol=2e-3)  # model2vec averages in float16


def test_max_tokens_truncates(tmp_path):
    enc = StaticEncoder(StaticConfig(model=str(make_model(tmp_path / "m")), max_tokens=2))
    full = StaticEncoder(str(tmp_path / "m"))
    np.testing.assert_allclose(enc.encode_documents(["statins lowered ldl"]), full.encode_documents(["statins lowered"]))


def test_refuses_hub_names_and_incomplete_folders(tmp_path):
    with pytest.raises(ConfigError, match="not a local folder"):
        StaticEncoder("minishlab/potion-base-8M")
    bad = tmp_path / "pickled"
    bad.mkdir()
    (bad / "pytorch_model.bin").write_bytes(b"\x80\x04not read")
    with pytest.raises(ConfigError, match="missing model.safetensors, tokenizer.json, config.json"):
        StaticEncoder(str(bad))
    broken = make_model(tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="unreadable static model"):
        StaticEncoder(str(broken))
    with pytest.raises(ConfigError, match="max_tokens"):
        StaticConfig(model=str(broken), max_tokens=0)


def test_description_rebuilds_and_pins_the_files(tmp_path):
    from medrag.retrieve.dense import encoder_from_description

    folder = make_model(tmp_path / "m")
    enc = StaticEncoder(str(folder))
    desc = json.loads(json.dumps(enc.describe()))
    assert desc["type"] == "static" and desc["model"] == str(folder.resolve()) and len(desc["sha256"]) == 64
    again = encoder_from_description(desc)
    np.testing.assert_array_equal(again.encode_documents(TEXTS), enc.encode_documents(TEXTS))
    make_model(folder, seed=1)  # the same folder now holds another model
    with pytest.raises(IndexFormatError, match="not the one the index was built with"):
        encoder_from_description(desc)


def test_index_records_the_static_encoder_and_loads_it(tmp_path):
    from medrag.index import Index, IndexConfig
    from medrag.ingest.beir import iter_beir_corpus

    docs = []
    for d in iter_beir_corpus(need_data("scifact")):
        docs.append(d)
        if len(docs) == 40:
            break
    folder = make_model(tmp_path / "m", dim=16)
    enc = StaticEncoder(str(folder))
    index = Index.build(docs, IndexConfig(encoder=None), encoder=enc)
    index.save(tmp_path / "ix")
    loaded = Index.load(tmp_path / "ix")
    assert isinstance(loaded.encoder, StaticEncoder)
    assert loaded.encoder.describe() == enc.describe()
    q = "randomized trial of aspirin in diabetes"
    assert [p.chunk.id for p in loaded.search(q, k=5, mode="dense")] == [p.chunk.id for p in index.search(q, k=5, mode="dense")]
    make_model(folder, dim=16, seed=2)
    with pytest.raises(IndexFormatError, match="not the one the index was built with"):
        Index.load(tmp_path / "ix")
    assert len(Index.load(tmp_path / "ix", load_encoder=False).search(q, k=3, mode="bm25")) == 3


@pytest.mark.skipif(not os.environ.get("MEDRAG_STATIC_MODEL"), reason=(
    "set MEDRAG_STATIC_MODEL to a folder made by `python benchmarks/bench_static.py --distill DIR` "
    "(about 3 min) to test the distilled MiniLM"))
def test_distilled_minilm_against_model2vec():
    model2vec = pytest.importorskip("model2vec")
    folder = os.environ["MEDRAG_STATIC_MODEL"]
    texts = []
    with open(need_data("scifact", "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            texts.append(d["title"] + " " + d["text"])
            if len(texts) == 200:
                break
    got = StaticEncoder(folder).encode_documents(texts)
    want = model2vec.StaticModel.from_pretrained(folder).encode(texts, max_length=None, use_multiprocessing=False)
    assert np.min(np.sum(got * want, axis=1)) > 0.999
