"""A cross-encoder / NLI model from a local path as a :class:`~medrag.answer.verify.Verifier`.

For users who have one (e.g. a DeBERTa or PubMedBERT fine-tuned on MNLI, SciFact or
MedNLI): the (passage, sentence) pair is scored jointly and the verdict's score is the
model's probability of **entailment** (softmax over its labels, the label named
"entailment" / "support" / "yes" in the model's ``id2label``), so it is a probability
in [0, 1] that :class:`~medrag.answer.judge.CombinedVerifier` can threshold.

Loading refuses what would silently give random scores: ``CrossEncoder(<bi-encoder>)``
loads a sentence-embedding model with a freshly initialised classification head. A
path is accepted only when its ``config.json`` names a ``*ForSequenceClassification``
architecture with an entailment label (or a single relevance logit, with
``allow_single_logit=True``); a sentence-transformers folder (``modules.json`` with a
pooling module) is refused. Nothing is downloaded: ``local_files_only=True``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, MissingDependencyError
from .verify import Verdict

__all__ = ["NLIVerifier", "check_cross_encoder_dir"]

logger = logging.getLogger(__name__)

_ENTAIL_NAMES = ("entailment", "entail", "support", "supports", "supported", "yes", "true")


def check_cross_encoder_dir(path: str | os.PathLike, allow_single_logit: bool = False) -> tuple[dict, int | None]:
    """The model's ``config.json`` and the index of its entailment label (None for a
    single-logit model), or :class:`ConfigError` saying why the folder is not a
    cross-encoder."""
    p = Path(path)
    if not p.is_dir():
        raise ConfigError(f"{p}: not a model folder")
    cfg_path = p / "config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"{p}: no config.json: not a transformers model folder")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{cfg_path}: unreadable ({exc})") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"{cfg_path}: not a JSON object")
    archs = [str(a) for a in cfg.get("architectures") or []]
    modules = p / "modules.json"
    if modules.is_file():
        try:
            mods = json.loads(modules.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            mods = []
        kinds = " ".join(str(m.get("type", "")) for m in mods if isinstance(m, dict))
        if "Pooling" in kinds and not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ConfigError(
                f"{p} is a sentence-transformers bi-encoder (modules.json with a Pooling module, "
                f"architectures {archs or 'none'}): as a cross-encoder it would score with a random head"
            )
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ConfigError(
            f"{p}: architectures {archs or 'none'} has no *ForSequenceClassification head: "
            "not a cross-encoder / NLI model (a bi-encoder would get a random classification head)"
        )
    id2label = {int(k): str(v).lower() for k, v in (cfg.get("id2label") or {}).items()}
    n = int(cfg.get("num_labels", len(id2label) or 1))
    if n == 1 or len(id2label) == 1:
        if not allow_single_logit:
            raise ConfigError(
                f"{p}: a single-logit cross-encoder scores relevance, not entailment; "
                "pass allow_single_logit=True to use its sigmoid as the support score"
            )
        return cfg, None
    for i, name in sorted(id2label.items()):
        if name in _ENTAIL_NAMES:
            return cfg, i
    raise ConfigError(f"{p}: no entailment label among {sorted(id2label.values())} (id2label in config.json)")


@dataclass
class NLIVerifier:
    """An NLI / cross-encoder model from a local folder (see the module docstring).

    Args:
        path: the model folder (config.json, weights, tokenizer).
        threshold: ``supported`` when P(entailment) reaches it.
        max_length: tokens of (passage, sentence) fed to the model; the passage is
            truncated first.
        batch_size: pairs per forward pass.
    """

    path: str | os.PathLike
    threshold: float = 0.5
    max_length: int = 512
    batch_size: int = 16
    allow_single_logit: bool = False
    _model: object = field(default=None, init=False, repr=False)
    _tok: object = field(default=None, init=False, repr=False)
    _entail: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not (0.0 < float(self.threshold) < 1.0):
            raise ConfigError(f"threshold must be in (0, 1), not {self.threshold!r}")
        _, self._entail = check_cross_encoder_dir(self.path, self.allow_single_logit)

    @property
    def name(self) -> str:
        return f"nli:{Path(self.path).name}"

    def _load(self):
        if self._model is None:
            try:
                import torch  # noqa: F401
                from transformers import AutoModelForSequenceClassification, AutoTokenizer
            except ImportError as exc:
                raise MissingDependencyError("transformers and torch", "dense", "NLIVerifier") from exc
            self._tok = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self._model = AutoModelForSequenceClassification.from_pretrained(str(self.path), local_files_only=True)
            self._model.eval()
        return self._tok, self._model

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """P(entailment) of each (sentence, passage) pair."""
        import torch

        tok, model = self._load()
        out: list[float] = []
        for i in range(0, len(pairs), self.batch_size):
            chunk = pairs[i: i + self.batch_size]
            enc = tok([p for _, p in chunk], [s for s, _ in chunk], truncation="only_first",
                      max_length=self.max_length, padding=True, return_tensors="pt")
            with torch.inference_mode():
                logits = model(**enc).logits.float()
            if self._entail is None:
                probs = torch.sigmoid(logits[:, 0])
            else:
                probs = torch.softmax(logits, dim=-1)[:, self._entail]
            out.extend(float(x) for x in probs)
        return out

    def verify_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        return [
            Verdict(True, p) if p >= self.threshold
            else Verdict(False, p, f"P(entailment) {p:.2f} is below {self.threshold:.2f}")
            for p in self.probabilities(pairs)
        ]

    def verify(self, sentence: str, passage: str) -> Verdict:
        return self.verify_batch([(sentence, passage)])[0]
