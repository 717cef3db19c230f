"""Fitting the cross-encoder evidence reranker (:mod:`.rerank`) on CPU.

The (question, unit) pairs are encoded once through the frozen lower layers of MiniLM
and their hidden states cached (float16, :func:`encode_lower`); the top layers are then
fit from the cached states with low-rank adapters (LoRA, Hu et al., ICLR 2022) on their
linear maps and a linear head over the mean-pooled last layer (:func:`fit`), so an epoch
costs only the top layers' forward and backward. Used by
``benchmarks/bench_evidence_cross.py``; the library itself only loads the result.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .rerank import TARGETS, _torch, additive_mask, layer_forward, mean_pool

__all__ = ["LowerStates", "encode_lower", "CrossModel", "fit", "predict", "export"]

logger = logging.getLogger(__name__)


@dataclass
class LowerStates:
    """Hidden states of pairs after the frozen lower layers: ``states`` (tokens in all,
    dim) float16, pair ``i`` at rows ``offsets[i]:offsets[i]+lengths[i]``; ``segment``
    (tokens in all,) 1 on the unit's tokens; ``frozen`` (pairs, 3*dim) float32: the
    frozen model's last layer, mean over all tokens, over the unit's tokens, and the
    [CLS] state (the head-only variant's input)."""

    states: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    segment: np.ndarray
    frozen: np.ndarray
    upto: int


def encode_lower(model, tokenizer, pairs: Sequence[tuple[str, str]], *, upto: int, max_length: int,
                 batch_size: int = 32, log_every: int = 2000) -> LowerStates:
    """Encode ``pairs`` (question, unit) through the embeddings and layers ``0..upto-1``
    (kept), and on through the remaining frozen layers (for ``frozen``)."""
    torch = _torch()
    model.eval()
    order = np.argsort([len(q) + len(u) for q, u in pairs], kind="stable")  # similar lengths batch together
    lengths = np.zeros(len(pairs), dtype=np.int64)
    chunks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    dim = model.config.hidden_size
    frozen = np.zeros((len(pairs), 3 * dim), dtype=np.float32)
    with torch.inference_mode():
        for a in range(0, len(pairs), batch_size):
            idx = order[a : a + batch_size]
            enc = tokenizer([pairs[i][0] for i in idx], [pairs[i][1] for i in idx], truncation="only_second",
                            max_length=max_length, padding=True, return_tensors="pt")
            mask = enc["attention_mask"]
            h = model.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
            madd = additive_mask(mask, h.dtype)
            for li, layer in enumerate(model.encoder.layer):
                if li == upto:
                    kept = h
                h = layer_forward(layer, h, madd)
            if upto == len(model.encoder.layer):
                kept = h
            seg = enc["token_type_ids"] * mask
            frozen[idx] = torch.cat([mean_pool(h, mask), mean_pool(h, seg), h[:, 0]], dim=1).numpy()
            for r, i in enumerate(idx):
                n = int(mask[r].sum())
                lengths[i] = n
                chunks[int(i)] = (kept[r, :n].numpy().astype(np.float16), seg[r, :n].numpy().astype(np.int8))
            if log_every and (a // batch_size) % max(1, log_every // batch_size) == 0:
                logger.info("encoded %d / %d pairs", a + len(idx), len(pairs))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    states = np.zeros((int(lengths.sum()), dim), dtype=np.float16)
    segment = np.zeros(int(lengths.sum()), dtype=np.int8)
    for i, (s, g) in chunks.items():
        states[offsets[i] : offsets[i] + lengths[i]] = s
        segment[offsets[i] : offsets[i] + lengths[i]] = g
    return LowerStates(states, offsets, lengths, segment, frozen, upto)


def _lora_linear_class():
    torch = _torch()
    nn = torch.nn

    class LoRALinear(nn.Module):
        """``base(x) + x A^T B^T * alpha / rank`` with ``base`` frozen (Hu et al. 2022)."""

        def __init__(self, base, rank: int, alpha: float, seed: int) -> None:
            super().__init__()
            self.base = base
            for p in base.parameters():
                p.requires_grad_(False)
            g = torch.Generator().manual_seed(seed)
            self.A = nn.Parameter(torch.randn(rank, base.in_features, generator=g) / math.sqrt(base.in_features))
            self.B = nn.Parameter(torch.zeros(base.out_features, rank))
            self.scale = alpha / rank

        def forward(self, x):
            return self.base(x) + (x @ self.A.T @ self.B.T) * self.scale

    return LoRALinear


class CrossModel:
    """The trainable top: copies of the base model's layers ``layers`` (consecutive, the
    last ones) with LoRA adapters of ``rank`` on :data:`~.rerank.TARGETS`, and a linear
    head on the mean-pooled output."""

    def __init__(self, model, layers: Sequence[int], rank: int, alpha: float, seed: int = 0) -> None:
        import copy

        torch = _torch()
        LoRALinear = _lora_linear_class()
        self.layer_ids = [int(x) for x in layers]
        self.layers = torch.nn.ModuleList(copy.deepcopy(model.encoder.layer[i]) for i in self.layer_ids)
        for p in self.layers.parameters():
            p.requires_grad_(False)
        self.rank, self.alpha = rank, alpha
        for n, layer in enumerate(self.layers):
            for t in TARGETS:
                parent_name, _, leaf = t.rpartition(".")
                parent = layer.get_submodule(parent_name)
                setattr(parent, leaf, LoRALinear(getattr(parent, leaf), rank, alpha, seed * 1000 + n * 10 + TARGETS.index(t)))
        torch.manual_seed(seed)
        self.head = torch.nn.Linear(model.config.hidden_size, 1)
        torch.nn.init.normal_(self.head.weight, std=0.02)
        torch.nn.init.zeros_(self.head.bias)

    def parameters(self):
        return [p for p in self.layers.parameters() if p.requires_grad] + list(self.head.parameters())

    def forward(self, h, mask, training: bool = False, dropout: float = 0.1):
        torch = _torch()
        madd = additive_mask(mask, h.dtype)
        for layer in self.layers:
            h = layer_forward(layer, h, madd, dropout=dropout, training=training)
        pooled = mean_pool(h, mask)
        if training and dropout:
            pooled = torch.nn.functional.dropout(pooled, dropout, True)
        return self.head(pooled).squeeze(-1)


def _batch(ls: LowerStates, idx: np.ndarray):
    torch = _torch()
    t = int(ls.lengths[idx].max())
    h = np.zeros((len(idx), t, ls.states.shape[1]), dtype=np.float32)
    mask = np.zeros((len(idx), t), dtype=np.float32)
    for r, i in enumerate(idx):
        n = int(ls.lengths[i])
        h[r, :n] = ls.states[ls.offsets[i] : ls.offsets[i] + n]
        mask[r, :n] = 1.0
    return torch.from_numpy(h), torch.from_numpy(mask)


def _batches(ls: LowerStates, idx: np.ndarray, batch_size: int, rng: np.random.Generator | None):
    """Batches of similar length (shuffled within and between buckets when ``rng``)."""
    idx = np.asarray(idx)
    if rng is not None:
        idx = idx[rng.permutation(len(idx))]
        buckets = [idx[a : a + 50 * batch_size] for a in range(0, len(idx), 50 * batch_size)]
        out = []
        for b in buckets:
            b = b[np.argsort(ls.lengths[b], kind="stable")]
            out.extend(b[a : a + batch_size] for a in range(0, len(b), batch_size))
        return [out[i] for i in rng.permutation(len(out))]
    idx = idx[np.argsort(ls.lengths[idx], kind="stable")]
    return [idx[a : a + batch_size] for a in range(0, len(idx), batch_size)]


def fit(model, ls: LowerStates, idx: np.ndarray, y: np.ndarray, *, rank: int = 8, alpha: float = 16.0,
        epochs: int = 2, lr: float = 5e-4, head_lr: float = 2e-3, batch_size: int = 32, weight_decay: float = 0.01,
        dropout: float = 0.1, seed: int = 0) -> CrossModel:
    """Fit the top layers (``ls.upto`` .. last) with LoRA and the head on the pairs
    ``idx`` with labels ``y`` (1: the unit is evidence), binary cross-entropy, AdamW
    with linear warm-up (5%) and decay."""
    torch = _torch()
    layers = list(range(ls.upto, len(model.encoder.layer)))
    cm = CrossModel(model, layers, rank, alpha, seed)
    lora = [p for p in cm.layers.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": lora, "lr": lr}, {"params": list(cm.head.parameters()), "lr": head_lr}],
                            weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    yy = np.zeros(int(np.max(idx)) + 1, dtype=np.float32)
    yy[idx] = y
    plan = [_batches(ls, idx, batch_size, rng) for _ in range(epochs)]
    total = sum(len(p) for p in plan)
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / max(1, total - warm)))
    cm.layers.train()
    step = 0
    for e, batches in enumerate(plan):
        run = 0.0
        for b in batches:
            h, mask = _batch(ls, b)
            out = cm.forward(h, mask, training=True, dropout=dropout)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out, torch.from_numpy(yy[b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            run += loss.item()
            step += 1
        logger.info("epoch %d: mean loss %.4f over %d batches", e + 1, run / max(1, len(batches)), len(batches))
    cm.layers.eval()
    return cm


def predict(cm: CrossModel, ls: LowerStates, idx: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The logits of pairs ``idx``."""
    torch = _torch()
    out = np.zeros(len(idx))
    pos = {int(i): r for r, i in enumerate(idx)}
    with torch.inference_mode():
        for b in _batches(ls, np.asarray(idx), batch_size, None):
            h, mask = _batch(ls, b)
            z = cm.forward(h, mask).numpy()
            for i, v in zip(b, z):
                out[pos[int(i)]] = v
    return out


def export(cm: CrossModel) -> tuple[np.ndarray, list[dict]]:
    """The adapters and the head as one float32 vector and its layout (name, shape,
    offset), as :class:`~.rerank.CrossReranker` reads them."""
    arrays: list[tuple[str, np.ndarray]] = []
    for li, layer in zip(cm.layer_ids, cm.layers):
        for t in TARGETS:
            lin = layer.get_submodule(t)
            arrays.append((f"{li}.{t}.A", lin.A.detach().numpy()))
            arrays.append((f"{li}.{t}.B", lin.B.detach().numpy()))
    arrays.append(("head.weight", cm.head.weight.detach().numpy()))
    arrays.append(("head.bias", cm.head.bias.detach().numpy()))
    spec, parts, off = [], [], 0
    for name, a in arrays:
        spec.append({"name": name, "shape": list(a.shape), "offset": off})
        parts.append(a.astype(np.float32).ravel())
        off += a.size
    return np.concatenate(parts), spec


def advance(model, ls: LowerStates, to: int, batch_size: int = 64) -> LowerStates:
    """The states of ``ls`` run on through the frozen layers ``ls.upto .. to-1``."""
    torch = _torch()
    if to == ls.upto:
        return ls
    states = np.zeros_like(ls.states)
    idx = np.arange(len(ls.lengths))
    with torch.inference_mode():
        for b in _batches(ls, idx, batch_size, None):
            h, mask = _batch(ls, b)
            madd = additive_mask(mask, h.dtype)
            for li in range(ls.upto, to):
                h = layer_forward(model.encoder.layer[li], h, madd)
            for r, i in enumerate(b):
                n = int(ls.lengths[i])
                states[ls.offsets[i] : ls.offsets[i] + n] = h[r, :n].numpy().astype(np.float16)
    return LowerStates(states, ls.offsets, ls.lengths, ls.segment, ls.frozen, to)
