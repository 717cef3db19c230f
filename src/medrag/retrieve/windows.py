"""Windows for texts longer than an encoder reads, and pooling of their vectors.

A transformer bi-encoder reads at most ``max_seq_length`` word pieces (256 for
all-MiniLM-L6-v2, special tokens included) and silently drops the rest, so the end of a
512-token chunk is invisible to dense retrieval. :func:`split_windows` cuts such a text
into overlapping windows the encoder reads whole: the first is what the encoder reads of
the text anyway (its first pieces), the others are verbatim substrings with edges on word
boundaries; :func:`pool` turns the windows' vectors into one vector per text. A text that
fits is its own single window, so its vector is exactly the unpooled one.

This is the "MaxP / AvgP" passage aggregation of Dai & Callan, *Deeper Text
Understanding for IR with Contextual Neural Language Modeling* (SIGIR 2019), applied
inside one chunk at embedding time rather than at scoring time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["POOLINGS", "split_windows", "pool", "encode_windowed", "piece_counts"]

logger = logging.getLogger(__name__)

#: How window vectors become one chunk vector: the mean of the unit window vectors, or
#: their coordinate-wise maximum; either is L2-normalized again.
POOLINGS = ("mean", "max")


def _check(budget: int, overlap: int) -> None:
    if budget < 8:
        raise ConfigError(f"a window must hold at least 8 word pieces, not {budget}")
    if not 0 <= overlap < budget // 2:
        raise ConfigError(f"window overlap must be in [0, {budget // 2}) word pieces, not {overlap}")


def piece_counts(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Word pieces per text (no special tokens), as the encoder's tokenizer counts them."""
    if not texts:
        return []
    enc = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
    return [len(ids) for ids in enc["input_ids"]]


def split_windows(tokenizer: Any, text: str, budget: int, overlap: int) -> list[str]:
    """Cut ``text`` into windows of at most ``budget`` word pieces each.

    The first window is ``text`` itself, which an encoder truncating at ``budget``
    pieces reads as its first ``budget`` pieces (so a pooled index reuses the plain
    vectors and pays only for the continuation windows). The others are verbatim
    substrings of at most ``budget`` pieces: each starts about ``overlap`` pieces before
    the previous one ends, on a word boundary (a word longer than a window is cut inside),
    and the last ends at the end of the text. ``tokenizer`` is a Hugging Face fast
    tokenizer (offsets and word ids are needed). A text of at most ``budget`` pieces is
    its only window.
    """
    _check(budget, overlap)
    enc = tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True, verbose=False)
    offsets = enc["offset_mapping"]
    n = len(offsets)
    if n <= budget:
        return [text]
    words = enc.word_ids()

    def word_start(i: int) -> bool:  # piece i begins a word (or the text ends there)
        return i <= 0 or i >= n or words[i] is None or words[i] != words[i - 1]

    def back_to_word_start(i: int, floor: int) -> int:
        j = i
        while j > floor and not word_start(j):
            j -= 1
        return j if j > floor else i  # one word longer than the window: cut inside it

    # the last window ends at the text's end; it starts on the first word start after n - budget
    last = n - budget
    while last < n and not word_start(last):
        last += 1
    if last >= n:  # one word longer than a window at the end: cut inside it
        last = n - budget
    spans: list[tuple[int, int]] = []
    start = 0
    while start < last:
        end = back_to_word_start(start + budget, start)
        spans.append((start, end))
        nxt = back_to_word_start(end - overlap, start)
        start = nxt if nxt > start else end
    spans.append((last, n))
    # the first window is the text itself: the encoder reads exactly its first `budget`
    # pieces, so that window's vector is the plain (truncated) one and is not computed twice
    return [text] + [text[offsets[a][0] : offsets[b - 1][1]] for a, b in spans[1:]]


def pool(vectors: np.ndarray, how: str) -> np.ndarray:
    """One unit vector from the unit vectors of a text's windows (rows of ``vectors``)."""
    if how == "mean":
        v = vectors.mean(axis=0)
    elif how == "max":
        v = vectors.max(axis=0)
    else:
        raise ConfigError(f"unknown window pooling {how!r}; choose one of {POOLINGS}")
    norm = float(np.linalg.norm(v))
    return (v / norm if norm > 0 else v).astype(np.float32)


def encode_windowed(
    texts: Sequence[str],
    encode: Callable[[list[str]], np.ndarray],
    tokenizer: Any,
    budget: int,
    overlap: int,
    how: str,
) -> np.ndarray:
    """Embed each text as the pooled vector of its windows.

    ``encode`` embeds a list of texts as unit rows (one forward pass per window; a text
    that fits is one window, so its row is what ``encode`` alone gives). Units: ``budget``
    and ``overlap`` are word pieces of ``tokenizer``, special tokens and any prefix
    excluded.
    """
    if how not in POOLINGS:
        raise ConfigError(f"unknown window pooling {how!r}; choose one of {POOLINGS}")
    _check(budget, overlap)
    flat: list[str] = []
    owner: list[int] = []
    for i, t in enumerate(texts):
        ws = split_windows(tokenizer, t, budget, overlap)
        flat.extend(ws)
        owner.extend([i] * len(ws))
    if len(flat) > len(texts):
        logger.info("embedding %d texts as %d windows of <= %d word pieces", len(texts), len(flat), budget)
    vecs = encode(flat)
    if not len(texts):
        return vecs
    out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
    own = np.asarray(owner)
    bounds = np.flatnonzero(np.r_[True, own[1:] != own[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        out[own[a]] = vecs[a] if b - a == 1 else pool(vecs[a:b], how)
    return out
