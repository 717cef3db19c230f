"""The cross-encoder evidence reranker (medrag.answer.rerank, issue 12): the packaged
MiniLM read as a cross-encoder from cached lower-layer states (as the benchmark fits
it) computes what transformers computes; a reranker written as the benchmark writes it
loads with its adapters merged and scores as the fitted model did; another base model
is refused. Real model, real SciFact text. (No reranker ships: held out, it did not beat
the dense scorer; see the README.)"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need_data

from medrag.errors import ConfigError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def base():
    from medrag.answer.rerank import base_model_dir
    from medrag.errors import MissingDependencyError

    try:
        return base_model_dir()
    except MissingDependencyError as exc:
        pytest.skip(f"the packaged MiniLM model is not installed: {exc}")


@pytest.fixture(scope="module")
def minilm(base):
    """The packaged MiniLM (transformers model, eval mode) and its tokenizer, loaded once."""
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(str(base)).eval(), AutoTokenizer.from_pretrained(str(base))


def _scifact_pairs(n: int):
    import json

    path = need_data("scifact", "original_corpus.jsonl")
    pairs = []
    for line in open(path, encoding="utf-8"):
        rec = json.loads(line)
        pairs.append((rec["title"], rec["abstract"][len(pairs) % max(1, len(rec["abstract"]))]))
        if len(pairs) == n:
            break
    return pairs


def test_layer_forward_is_the_models_own_forward(minilm):
    """The benchmark fits the top layers from cached lower-layer states with
    rerank.layer_forward: it must compute what the transformers model computes."""
    from medrag.answer.rerank import additive_mask, layer_forward

    model, tok = minilm
    pairs = _scifact_pairs(6)
    enc = tok([a for a, _ in pairs], [b for _, b in pairs], truncation="only_second", max_length=128,
              padding=True, return_tensors="pt")
    with torch.inference_mode():
        ref = model(**enc).last_hidden_state
        h = model.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
        madd = additive_mask(enc["attention_mask"], h.dtype)
        for layer in model.encoder.layer:
            h = layer_forward(layer, h, madd)
    real = enc["attention_mask"].bool()
    assert real.sum() > 100 and (~real).sum() > 0  # padding is there, and masked
    assert float((ref - h)[real].abs().max()) < 1e-4


def _written_reranker(tmp_path, minilm, sha: str):
    """A reranker fit as bench_evidence_cross.py fits one (LoRA on the top layer; its
    adapters given random values so that they change the model), exported and written
    as the benchmark writes it."""
    import json

    from medrag.answer.rerank import BASE_MODEL, TARGETS
    from medrag.answer.rerank_train import CrossModel, export

    model = minilm[0]
    cm = CrossModel(model, [5], rank=4, alpha=8.0, seed=1)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in cm.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    flat, spec = export(cm)
    meta = {"base": BASE_MODEL, "base_sha256": sha, "max_length": 128, "top_n": 4, "layers": [5],
            "targets": list(TARGETS), "lora_rank": 4, "lora_alpha": 8.0, "params": spec,
            "combiner": {"coef": [1.0, 0.5], "intercept": -0.2}}
    path = tmp_path / "evidence_cross.json"
    path.write_text(json.dumps(meta))
    np.save(tmp_path / "evidence_cross.npy", flat, allow_pickle=False)
    return model, cm, path


def test_written_reranker_gives_the_fitted_models_logits(tmp_path, base, minilm):
    """The library's loader (adapters merged into the base weights, transformers'
    forward) scores as the fitted model does over cached lower-layer states."""
    from medrag.answer.rerank import CrossReranker, weights_sha256
    from medrag.answer.rerank_train import advance, encode_lower, predict

    model, cm, path = _written_reranker(tmp_path, minilm, weights_sha256(base))
    rr = CrossReranker(path)
    pairs = _scifact_pairs(5)
    tok = minilm[1]
    ls = advance(model, encode_lower(model, tok, pairs, upto=4, max_length=128), 5)
    fitted = predict(cm, ls, np.arange(len(pairs)))
    got = np.array([rr.logits(q, [u])[0] for q, u in pairs])
    assert np.std(fitted) > 1e-3  # the adapters and head do something
    np.testing.assert_allclose(got, fitted, atol=2e-2)  # the cached states are float16
    probs = np.array([0.9, 0.2, 0.6, 0.1, 0.05, 0.3])
    texts = [u for _, u in pairs] + ["Another sentence."]
    out = rr.rerank(pairs[0][0], texts, probs)
    top = np.argsort(-probs, kind="stable")[:4]  # only the top_n are reranked
    rest = np.setdiff1d(np.arange(6), top)
    np.testing.assert_array_equal(out[rest], probs[rest])
    z = rr.logits(pairs[0][0], [texts[i] for i in top])
    expect = 1 / (1 + np.exp(-(np.log(probs[top] / (1 - probs[top])) + 0.5 * z - 0.2)))
    np.testing.assert_allclose(out[top], expect, rtol=1e-6)


def test_another_base_model_is_refused(tmp_path, minilm):
    from medrag.answer.rerank import CrossReranker

    _, _, path = _written_reranker(tmp_path, minilm, "0" * 64)
    with pytest.raises(ConfigError, match="sha256"):
        CrossReranker(path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"not the packaged MiniLM")
    with pytest.raises(ConfigError, match="sha256"):
        CrossReranker(path, model_dir=other)
