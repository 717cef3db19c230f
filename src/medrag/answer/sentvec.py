"""Question-sentence dense similarity for the evidence scorer, with unit vectors cached
per chunk.

The quotable units of a passage (:func:`~medrag.answer.units.quote_units`) are encoded
with the index's own encoder (documents side), all the uncached units of an answer's
passages in one batch. The vectors of a chunk are kept in a bounded, thread-safe LRU
cache keyed by the chunk's id and a hash of its text, one cache per encoder object, so
repeated answers over the same passages encode nothing again. Similarities are cosines
(the encoders return L2-normalised vectors; they are normalised again here in case a
custom encoder does not).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..types import Passage
from .units import quote_units

__all__ = ["UnitVectorCache", "UnitVectors", "unit_similarities", "unit_vectors"]

logger = logging.getLogger(__name__)

#: chunks whose unit vectors one cache keeps (MiniLM: 384 float32 = 1.5 KiB a unit,
#: ~10 units a chunk, so ~60 MiB at the bound)
DEFAULT_MAX_CHUNKS = 4096


def _normalise(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"an encoder returned an array of shape {m.shape}, not (n, dim)")
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return m / norms


class UnitVectorCache:
    """Unit vectors of chunks for one encoder, at most ``max_chunks`` chunks (least
    recently used dropped first). Counters ``hits`` / ``misses`` count chunks."""

    def __init__(self, encoder, max_chunks: int = DEFAULT_MAX_CHUNKS) -> None:
        if max_chunks < 1:
            raise ValueError(f"max_chunks must be at least 1, not {max_chunks}")
        self._encoder = encoder
        self._max = max_chunks
        self._lock = threading.Lock()
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._vectors)

    @staticmethod
    def _key(passage: Passage) -> tuple[str, str]:
        c = passage.chunk
        return (c.id, hashlib.blake2b(c.text.encode("utf-8"), digest_size=12).hexdigest())

    def vectors(self, passages: Sequence[Passage]) -> dict[str, np.ndarray]:
        """chunk id -> (units, dim) array of unit vectors, encoding what is not cached
        in one batch."""
        out: dict[str, np.ndarray] = {}
        todo: dict[tuple[str, str], Passage] = {}
        with self._lock:
            for p in passages:
                key = self._key(p)
                v = self._vectors.get(key)
                if v is not None:
                    self._vectors.move_to_end(key)
                    out[p.chunk.id] = v
                    self.hits += 1
                elif key not in todo:
                    todo[key] = p
        if todo:
            texts: list[str] = []
            spans: list[tuple[tuple[str, str], str, int, int]] = []
            for key, p in todo.items():
                units = quote_units(p.chunk.text)
                spans.append((key, p.chunk.id, len(texts), len(texts) + len(units)))
                texts.extend(p.chunk.text[u.start : u.end] for u in units)
            m = _normalise(self._encoder.encode_documents(texts)) if texts else np.zeros((0, 1), np.float32)
            if m.shape[0] != len(texts):
                raise ValueError(f"the encoder returned {m.shape[0]} vectors for {len(texts)} texts")
            with self._lock:
                for key, cid, a, b in spans:
                    v = m[a:b]
                    v.setflags(write=False)
                    out[cid] = v
                    self._vectors[key] = v
                    self._vectors.move_to_end(key)
                    self.misses += 1
                while len(self._vectors) > self._max:
                    self._vectors.popitem(last=False)
            logger.debug("encoded %d units of %d chunks", len(texts), len(todo))
        return out


_CACHES: "weakref.WeakKeyDictionary[object, UnitVectorCache]" = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def cache_for(encoder) -> UnitVectorCache:
    """The unit-vector cache of ``encoder`` (made on first use, dropped with it)."""
    with _CACHES_LOCK:
        try:
            cache = _CACHES.get(encoder)
            if cache is None:
                cache = UnitVectorCache(encoder)
                _CACHES[encoder] = cache
        except TypeError:  # an encoder that cannot be weakly referenced: no cache across calls
            logger.debug("encoder %r cannot be weakly referenced; unit vectors are not cached", type(encoder))
            cache = UnitVectorCache(encoder)
        return cache


@dataclass(frozen=True)
class UnitVectors:
    """The question's vector (``question``, shape (dim,), L2-normalised) and, per chunk
    id, the L2-normalised vectors of the chunk's quotable units (``units``, shape
    (units, dim), :func:`~medrag.answer.units.quote_units` order)."""

    question: np.ndarray
    units: Mapping[str, np.ndarray]

    def similarities(self) -> dict[str, np.ndarray]:
        """chunk id -> cosine similarity of the question with each unit."""
        return {cid: (v @ self.question if len(v) else np.zeros(0, np.float32)) for cid, v in self.units.items()}


def unit_vectors(question: str, passages: Sequence[Passage], encoder) -> UnitVectors:
    """The question's vector (query side of ``encoder``) and the unit vectors of every
    passage's chunk (documents side, cached per chunk by :func:`cache_for`)."""
    qv = _normalise(encoder.encode_queries([question]))[0]
    return UnitVectors(qv, cache_for(encoder).vectors(passages))


def unit_similarities(question: str, passages: Sequence[Passage], encoder) -> dict[str, np.ndarray]:
    """chunk id -> cosine similarity of ``question`` with each quotable unit of the
    chunk (in :func:`~medrag.answer.units.quote_units` order)."""
    return unit_vectors(question, passages, encoder).similarities()
