"""The numeric pieces of BM25 that are not the index itself: counting the terms of
token lists into a CSC matrix, and deterministic top-k selection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from .params import _check_tokens

__all__ = ["_top_k", "_count"]


def _top_k(cand: np.ndarray, sc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` by score, ties to the lower row; ``cand`` need not be sorted."""
    if cand.size > k:
        part = np.argpartition(-sc, k - 1)[:k]
        threshold = sc[part].min()
        sel = np.flatnonzero(sc >= threshold)  # every row tied at the cut-off too
        cand, sc = cand[sel], sc[sel]
    order = np.lexsort((cand, -sc))[:k]
    return cand[order], sc[order]


def _count(
    token_lists: Iterable[Sequence[str]], vocab: dict[str, int]
) -> tuple[sp.csc_matrix, np.ndarray]:
    """Term counts of the documents as CSC (rows x len(vocab)); extends ``vocab``."""
    ids: list[int] = []
    lengths: list[int] = []
    setdefault = vocab.setdefault
    for toks in token_lists:
        _check_tokens(toks, "each document")
        lengths.append(len(toks))
        ids.extend([setdefault(t, len(vocab)) for t in toks])
    n = len(lengths)
    doc_len = np.asarray(lengths, dtype=np.int64)
    term_ids = np.asarray(ids, dtype=np.int32)
    row_ids = np.repeat(np.arange(n, dtype=np.int32), doc_len)
    coo = sp.coo_matrix(
        (np.ones(term_ids.size, np.int32), (row_ids, term_ids)), shape=(n, len(vocab))
    )
    csc = coo.tocsc()
    csc.sum_duplicates()
    csc.sort_indices()
    return csc, doc_len
