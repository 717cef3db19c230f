"""Small text utilities for the composer and the verifier (no retrieval imports)."""

from __future__ import annotations

import functools
import re
import unicodedata

from ..spelling import fold

__all__ = ["surface_words", "content_tokens", "content_token_set", "numbers", "stem"]

_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:\s?%)?")

#: Function words, and the words questions are made of that say nothing about content.
STOPWORDS = frozenset(
    """a an and are as at be been being but by can could did do does done for from had has
    have how i if in into is it its may might of on or our should so such than that the their
    them then there these they this those to was we were what when where whether which while
    who whom why will with would you your vs versus also both each other any all among
    between after before during about over under more most less least very much many""".split()
)


@functools.lru_cache(maxsize=1)
def _stemmer():
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:  # PyStemmer is a core dependency; fall back to identity anyway
        return None


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    st = _stemmer()
    return st.stemWord(word) if st is not None else word


def surface_words(text: str) -> list[str]:
    """Lower-cased words (NFKC), hyphenated compounds kept whole."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


@functools.lru_cache(maxsize=131072)
def _content_word(w: str) -> str | None:
    if w in STOPWORDS or w.isdigit():
        return None
    return stem("-".join(fold(p) for p in w.split("-")) if "-" in w else fold(w))


def content_tokens(text: str) -> list[str]:
    """Stemmed words that carry content (no stopwords, no bare numbers), British
    spellings folded to American ones (:func:`medrag.spelling.fold`)."""
    out = []
    for w in surface_words(text):
        t = _content_word(w)
        if t is not None:
            out.append(t)
    return out


@functools.lru_cache(maxsize=8192)
def content_token_set(text: str) -> frozenset[str]:
    """:func:`content_tokens` as a set, cached (passages are scored several times)."""
    return frozenset(content_tokens(text))


def numbers(text: str) -> list[str]:
    """Numbers as written (``"2.5"``, ``"71%"``, ``"1,099"``), normalised: no thousands
    commas, no space before ``%``."""
    out = []
    for m in _NUMBER.finditer(unicodedata.normalize("NFKC", text)):
        n = m.group(0).replace(" ", "")
        if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(%)?", n):
            n = n.replace(",", "")
        out.append(n.lstrip("+"))
    return out
