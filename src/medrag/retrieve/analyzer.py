"""The lexical analyzer: text -> tokens, identically for documents and queries.

An :class:`Analyzer` is a frozen value. Everything that decides which tokens come out
(case folding, the stopword *contents*, the Snowball stemmer name, the token pattern,
compound splitting, Greek handling) is a field, and :meth:`Analyzer.to_dict` writes all
of it, so an index manifest rebuilds exactly the analyzer the index was built with. The
stopwords are stored as a list, never as the name of a library default that may change.

The steps, in order::

    NFKC  ->  dashes/apostrophes to ASCII  ->  casefold  ->  (Greek spelled out)
          ->  token pattern  ->  (British spelling to American)  ->  compound splitting
          ->  stopwords  ->  stemming

Spelling folding (``spelling="us"``, the default since 0.2; :mod:`medrag.spelling`)
makes ``bacteraemia`` and ``bacteremia``, ``tumour`` and ``tumor``, ``randomised`` and
``randomized`` one token. Indexes written by 0.1 have no ``spelling`` in their manifest
and keep analysing without it (``"none"``), exactly as they were built.

Biomedical tokens stay searchable. A hyphenated token is always emitted as its parts
(stopword parts dropped, every part stemmed) and, when it looks like a name (see
``compounds``), first as the whole compound; the same way for queries and documents.
So ``"COVID-19"`` gives ``covid-19, covid, 19``: a query for ``"IL-6"`` matches a
document that says ``"IL-6"`` through the compound and one that says ``"IL 6"`` through
the parts, while ``"placebo-controlled"`` gives just ``placebo, control``.
``"HbA1c"`` is one token (``hba1c``), ``"TNF-α"`` gives ``tnf-α, tnf, α`` and
``"β-blockers"`` gives ``β-blocker, β, blocker``. NFKC folds compatibility forms (the
micro sign ``µ`` becomes Greek ``μ``, full-width letters become ASCII, ligatures
split); the Unicode hyphens and minus signs become ``-``.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from ..errors import ConfigError, MissingDependencyError
from ..spelling import SPELLING_RULES_VERSION
from ..spelling import fold as _fold_spelling

__all__ = ["Analyzer", "LUCENE_ENGLISH_STOPWORDS", "DEFAULT_TOKEN_PATTERN"]

#: The classic Lucene/Elasticsearch English stopword list (33 words), frozen here so a
#: saved index never depends on what a library ships as its default.
LUCENE_ENGLISH_STOPWORDS: tuple[str, ...] = (
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
    "is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then",
    "there", "these", "they", "this", "to", "was", "will", "with",
)  # fmt: skip

#: Runs of letters/digits (no underscore), joined by inner hyphens or apostrophes:
#: ``covid-19``, ``sars-cov-2``, ``hba1c``, ``tnf-α``, ``crohn's``.
DEFAULT_TOKEN_PATTERN = r"[^\W_]+(?:['-][^\W_]+)*"
#: The token patterns :meth:`Analyzer.from_dict` accepts from a saved index (the default;
#: letter/digit runs; word-character runs), all linear-time.
KNOWN_TOKEN_PATTERNS: frozenset[str] = frozenset({DEFAULT_TOKEN_PATTERN, r"[^\W_]+", r"\w+"})

_ANALYZER_FORMAT = 1

# Hyphen-like characters NFKC leaves alone -> ASCII hyphen; typographic apostrophes -> '.
_PUNCT_MAP = {
    **{cp: "-" for cp in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212, 0xFE63, 0xFF0D)},
    **{cp: "'" for cp in (0x2018, 0x2019, 0x02BC)},
}
_GREEK_NAMES = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta",
    "η": "eta", "θ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "μ": "mu",
    "ν": "nu", "ξ": "xi", "ο": "omicron", "π": "pi", "ρ": "rho", "σ": "sigma",
    "ς": "sigma", "τ": "tau", "υ": "upsilon", "φ": "phi", "χ": "chi", "ψ": "psi",
    "ω": "omega", "ϵ": "epsilon", "ϑ": "theta", "ϕ": "phi",
}  # fmt: skip
_GREEK_MAP = {ord(k): v for k, v in _GREEK_NAMES.items()}
_GREEK_WORDS = frozenset(_GREEK_NAMES.values())


def _fold_token(tok: str) -> str:
    """British -> American spelling of a raw token, part by part for compounds."""
    if "-" in tok:
        return "-".join(_fold_spelling(p) for p in tok.split("-"))
    return _fold_spelling(tok)


def _is_identifier_part(part: str) -> bool:
    """A compound part that makes the compound a name: ``6``, ``α``, ``alpha``, ``il``,
    ``cd4``."""
    return (
        len(part) <= 2
        or not part.isascii()
        or any(c.isdigit() for c in part)
        or part.casefold() in _GREEK_WORDS
    )


@lru_cache(maxsize=32)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@lru_cache(maxsize=32)
def _stopset(words: tuple[str, ...]) -> frozenset[str]:
    return frozenset(words)


_local = threading.local()  # PyStemmer objects are not thread-safe: one per thread


def _stemmer(name: str) -> Any:
    cache = getattr(_local, "stemmers", None)
    if cache is None:
        cache = _local.stemmers = {}
    st = cache.get(name)
    if st is None:
        st = cache[name] = _import_stemmer().Stemmer(name)
    return st


def _import_stemmer() -> Any:
    try:
        import Stemmer
    except ImportError as e:  # pragma: no cover - PyStemmer is a core dependency
        raise MissingDependencyError("PyStemmer", "all", "Snowball stemming") from e
    return Stemmer


@dataclass(frozen=True, slots=True)
class Analyzer:
    """Text -> tokens for BM25, saved with the index and rebuilt from it.

    Attributes:
        lowercase: case-fold (``str.casefold``) before matching stopwords and stemming.
        stopwords_name: a label for the list (``"lucene-en"``); informative only.
        stopwords: the stopwords themselves, compared after case folding and before
            stemming. Stored in the manifest in full.
        stemmer: a Snowball algorithm name known to PyStemmer (``"english"``), or None.
        token_pattern: the regular expression whose matches are the raw tokens.
        compounds: a hyphenated token is always emitted as its parts; ``"always"``
            also emits the whole compound first, ``"never"`` does not, and
            ``"identifiers"`` (the default) emits it only when it looks like a name
            (a part that is not a stopword has a digit, a non-ASCII letter, at most
            two characters or is a Greek letter's name:
            ``il-6``, ``covid-19``, ``tnf-α``, ``β-blocker``, ``t-cell``) and not for
            word-word compounds (``placebo-controlled``, ``long-term``), whose rare
            whole form would outweigh the words: on SciFact, emitting every compound
            costs 0.006 nDCG@10.
        greek: ``"keep"`` leaves Greek letters as they are (``tnf-α``); ``"spell"``
            writes them out (``tnf-alpha``) so ``TNF-α`` and ``TNF-alpha`` match.
        min_token_len: drop tokens (and compound parts) shorter than this, in characters.
        spelling: ``"us"`` folds British spellings to American ones in documents and
            queries alike (:func:`medrag.spelling.fold`); ``"none"`` leaves them (the
            behaviour of indexes written by 0.1, whose manifests lack this field).
    """

    lowercase: bool = True
    stopwords_name: str = "lucene-en"
    stopwords: tuple[str, ...] = LUCENE_ENGLISH_STOPWORDS
    stemmer: str | None = "english"
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    compounds: Literal["identifiers", "always", "never"] = "identifiers"
    greek: Literal["keep", "spell"] = "keep"
    min_token_len: int = 1
    spelling: Literal["us", "none"] = "us"

    def __post_init__(self) -> None:
        if isinstance(self.stopwords, (set, frozenset)):
            object.__setattr__(self, "stopwords", tuple(sorted(self.stopwords)))
        elif isinstance(self.stopwords, list):
            object.__setattr__(self, "stopwords", tuple(self.stopwords))
        if not isinstance(self.stopwords, tuple) or not all(
            isinstance(w, str) for w in self.stopwords
        ):
            raise ConfigError("Analyzer.stopwords must be a sequence of strings")
        if self.compounds not in ("identifiers", "always", "never"):
            raise ConfigError(
                "Analyzer.compounds must be 'identifiers', 'always' or 'never', "
                f"not {self.compounds!r}"
            )
        if self.greek not in ("keep", "spell"):
            raise ConfigError(f"Analyzer.greek must be 'keep' or 'spell', not {self.greek!r}")
        if self.spelling not in ("us", "none"):
            raise ConfigError(f"Analyzer.spelling must be 'us' or 'none', not {self.spelling!r}")
        if not isinstance(self.min_token_len, int) or self.min_token_len < 1:
            raise ConfigError("Analyzer.min_token_len must be an integer >= 1")
        try:
            _compile(self.token_pattern)
        except re.error as e:
            raise ConfigError(f"Analyzer.token_pattern is not a valid regex: {e}") from e
        if self.stemmer is not None:
            algorithms = _import_stemmer().algorithms()
            if self.stemmer not in algorithms:
                raise ConfigError(
                    f"unknown stemmer {self.stemmer!r}; PyStemmer knows {sorted(algorithms)}"
                )

    def normalize(self, text: str) -> str:
        """The text after NFKC, punctuation folding, case folding and Greek handling."""
        text = unicodedata.normalize("NFKC", text).translate(_PUNCT_MAP)
        if self.lowercase:
            text = text.casefold()
        if self.greek == "spell":
            text = text.translate(_GREEK_MAP)
        return text

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text``, in order; the same function for queries and documents."""
        if not isinstance(text, str):
            raise ConfigError(f"Analyzer.tokenize takes a str, not {type(text).__name__}")
        raw = _compile(self.token_pattern).findall(self.normalize(text))
        stop = _stopset(self.stopwords)
        minlen = self.min_token_len
        fold = (lambda w: w) if self.lowercase else str.casefold
        stem = _stemmer(self.stemmer).stemWord if self.stemmer is not None else (lambda w: w)
        if self.spelling == "us":
            raw = [_fold_token(t) for t in raw]
        out: list[str] = []
        for tok in raw:
            if "-" not in tok:
                if len(tok) >= minlen and fold(tok) not in stop:
                    out.append(stem(tok))
                continue
            parts = [p for p in tok.split("-") if p]
            if not parts:
                continue
            if self.compounds == "always" or (
                self.compounds == "identifiers"
                and any(_is_identifier_part(p) for p in parts if fold(p) not in stop)
            ):
                out.append("-".join(stem(p) for p in parts))
            out.extend(stem(p) for p in parts if len(p) >= minlen and fold(p) not in stop)
        return out

    def tokenize_many(self, texts: list[str] | tuple[str, ...]) -> list[list[str]]:
        """:meth:`tokenize` over a sequence of texts."""
        return [self.tokenize(t) for t in texts]

    def to_dict(self) -> dict[str, Any]:
        """Every setting, as plain JSON types, for an index manifest."""
        return {
            "analyzer_format": _ANALYZER_FORMAT,
            "lowercase": self.lowercase,
            "stopwords_name": self.stopwords_name,
            "stopwords": list(self.stopwords),
            "stemmer": self.stemmer,
            "token_pattern": self.token_pattern,
            "compounds": self.compounds,
            "greek": self.greek,
            "min_token_len": self.min_token_len,
            "spelling": self.spelling,
            "spelling_rules": SPELLING_RULES_VERSION if self.spelling != "none" else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Analyzer":
        """Rebuild the analyzer :meth:`to_dict` described; unknown keys are an error."""
        if not isinstance(data, dict):
            raise ConfigError("an analyzer description must be a JSON object")
        data = dict(data)
        fmt = data.pop("analyzer_format", None)
        if fmt != _ANALYZER_FORMAT:
            raise ConfigError(
                f"unknown analyzer_format {fmt!r} (this library reads {_ANALYZER_FORMAT})"
            )
        names = {
            "lowercase", "stopwords_name", "stopwords", "stemmer", "token_pattern", "compounds", "greek", "min_token_len",
        }  # fmt: skip
        # written by 0.1: no spelling folding (the index was built without it)
        data.setdefault("spelling", "none")
        rules = data.pop("spelling_rules", None)
        if data["spelling"] != "none" and rules != SPELLING_RULES_VERSION:
            raise ConfigError(
                f"the index was built with spelling rules {rules!r}; this library has "
                f"{SPELLING_RULES_VERSION}: rebuild the index"
            )
        names = names | {"spelling"}
        unknown = set(data) - names
        missing = names - set(data)
        if unknown or missing:
            raise ConfigError(
                f"analyzer description: unknown keys {sorted(unknown)}, missing {sorted(missing)}"
            )
        if not isinstance(data["token_pattern"], str) or data["token_pattern"] not in KNOWN_TOKEN_PATTERNS:
            # a saved pattern is compiled and run on every query: only known, linear-time
            # tokenizers are accepted from a file (a crafted regex can take seconds a query)
            raise ConfigError(f"analyzer description: token_pattern {data['token_pattern']!r} is not a known tokenizer")
        data["stopwords"] = tuple(data["stopwords"])
        return cls(**data)
