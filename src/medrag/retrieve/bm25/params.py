"""BM25 parameters (:class:`BM25Params`) and the token-list argument check."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ...errors import ConfigError

__all__ = ["BM25Params"]


@dataclass(frozen=True, slots=True)
class BM25Params:
    """BM25 parameters; the defaults are rank-bm25's ``BM25Okapi`` defaults.

    Attributes:
        k1: term-frequency saturation (>= 0).
        b: document-length normalization, in [0, 1].
        epsilon: a negative idf is replaced by ``epsilon * mean idf``.
        variant: the scoring formula; only ``"okapi"`` (rank-bm25's BM25Okapi) exists.
    """

    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25
    variant: Literal["okapi"] = "okapi"

    def __post_init__(self) -> None:
        for name in ("k1", "b", "epsilon"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"BM25Params.{name} must be a finite number, not {v!r}")
            object.__setattr__(self, name, float(v))
        if self.k1 < 0:
            raise ConfigError(f"BM25Params.k1 must be >= 0, not {self.k1}")
        if not 0.0 <= self.b <= 1.0:
            raise ConfigError(f"BM25Params.b must be in [0, 1], not {self.b}")
        if self.variant != "okapi":
            raise ConfigError(f"unknown BM25 variant {self.variant!r} (known: 'okapi')")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BM25Params":
        unknown = set(data) - {"k1", "b", "epsilon", "variant"}
        if unknown:
            raise ConfigError(f"BM25Params: unknown fields {sorted(unknown)}")
        return cls(**data)


def _check_tokens(tokens: Any, what: str) -> None:
    if isinstance(tokens, (str, bytes)):
        raise ConfigError(
            f"{what} must be a list of tokens, not a string; tokenize it first "
            "(e.g. analyzer.tokenize(text))"
        )
