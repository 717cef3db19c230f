"""How well does a verifier tell supported claims from contradicted and unsupported ones?

Pairs come from SciFact (Wadden et al., EMNLP 2020, "Fact or Fiction: Verifying
Scientific Claims"): each training claim cites abstracts, and for some of them the
evidence names the **rationale sentences** and a label, ``SUPPORT`` or ``CONTRADICT``;
a cited abstract without evidence is ``NEI`` (not enough information). Two levels:

* ``"abstract"``: the claim against the whole cited abstract (title + sentences);
* ``"sentence"``: the claim against its rationale sentences (label of the evidence),
  and, for a claim with no evidence in the abstract, against the abstract sentence
  closest to it in words (``NEI``; a hard negative: the sentence a model would cite).

:func:`evaluate_verifier` reports, per label, how many pairs a verifier accepts (with
Wilson 95% intervals), and the ROC AUC of its score for SUPPORT against each of the
other labels and against both (with a bootstrap 95% interval). Re-exported by
:mod:`medrag.eval`.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, IngestError

__all__ = [
    "ClaimPair",
    "load_scifact_pairs",
    "stratified_sample",
    "evaluate_verifier",
    "format_verifier_report",
    "roc_auc",
    "wilson_interval",
]

LABELS = ("SUPPORT", "CONTRADICT", "NEI")


@dataclass(frozen=True, slots=True)
class ClaimPair:
    """One claim and one passage, with the SciFact label."""

    claim_id: int
    doc_id: int
    claim: str
    passage: str
    label: str  # SUPPORT | CONTRADICT | NEI


def _jsonl(path: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise IngestError(f"line {i} is not JSON: {exc}", source=str(path), record_id=str(i)) from exc
            if not isinstance(rec, dict):
                raise IngestError(f"line {i} is not a JSON object", source=str(path), record_id=str(i))
            out.append(rec)
    return out


def _words(text: str) -> set[str]:
    from .answer.text import content_tokens

    return set(content_tokens(text))


def load_scifact_pairs(
    claims_path: str | os.PathLike, corpus_path: str | os.PathLike, level: str = "sentence"
) -> list[ClaimPair]:
    """Claim/passage pairs of SciFact's original release (``claims_*.jsonl`` with
    ``evidence`` and ``cited_doc_ids``; ``corpus.jsonl`` with ``doc_id``, ``title`` and
    ``abstract`` as a list of sentences). See the module docstring for ``level``."""
    if level not in ("sentence", "abstract"):
        raise ConfigError(f"level must be 'sentence' or 'abstract', not {level!r}")
    cpath, dpath = Path(claims_path), Path(corpus_path)
    corpus: dict[int, dict] = {}
    for rec in _jsonl(dpath):
        try:
            corpus[int(rec["doc_id"])] = {"title": str(rec.get("title", "")), "abstract": [str(s) for s in rec["abstract"]]}
        except (KeyError, TypeError, ValueError) as exc:
            raise IngestError(f"a record lacks doc_id/abstract: {str(rec)[:80]}", source=str(dpath)) from exc
    pairs: list[ClaimPair] = []
    for rec in _jsonl(cpath):
        try:
            cid, claim = int(rec["id"]), str(rec["claim"])
            evidence = rec.get("evidence") or {}
            cited = [int(d) for d in rec.get("cited_doc_ids") or []]
        except (KeyError, TypeError, ValueError) as exc:
            raise IngestError(f"claim record malformed: {str(rec)[:80]}", source=str(cpath)) from exc
        for did in cited:
            doc = corpus.get(did)
            if doc is None:
                continue
            sents = doc["abstract"]
            ev = evidence.get(str(did)) or []
            label = ev[0]["label"] if ev else "NEI"
            if label not in LABELS:
                raise IngestError(f"claim {cid}: unknown label {label!r}", source=str(cpath), record_id=str(cid))
            if level == "abstract":
                passage = (doc["title"] + ". " if doc["title"] else "") + " ".join(sents)
                pairs.append(ClaimPair(cid, did, claim, passage, label))
            elif ev:
                for rationale in ev:
                    idx = [i for i in rationale["sentences"] if 0 <= i < len(sents)]
                    if idx:
                        pairs.append(ClaimPair(cid, did, claim, " ".join(sents[i] for i in idx), rationale["label"]))
            elif sents:
                cw = _words(claim)
                best = max(range(len(sents)), key=lambda i: (len(cw & _words(sents[i])), -i))
                pairs.append(ClaimPair(cid, did, claim, sents[best], "NEI"))
    return pairs


def stratified_sample(pairs: Sequence[ClaimPair], per_label: int, seed: int = 13) -> list[ClaimPair]:
    """Up to ``per_label`` pairs of each label, drawn with ``seed``, one pair per claim
    at most (so that no claim counts twice), interleaved by label."""
    rng = random.Random(seed)
    by_label: dict[str, list[ClaimPair]] = {}
    used: set[int] = set()
    for label in LABELS:
        pool = [p for p in pairs if p.label == label]
        rng.shuffle(pool)
        took: list[ClaimPair] = []
        for p in pool:
            if len(took) >= per_label:
                break
            if p.claim_id in used:
                continue
            used.add(p.claim_id)
            took.append(p)
        by_label[label] = took
    # interleaved (S, C, N, S, C, N, ...): any prefix of the sample stays balanced
    out: list[ClaimPair] = []
    for i in range(per_label):
        out.extend(by_label[lab][i] for lab in LABELS if i < len(by_label[lab]))
    return out


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score 95% interval of a proportion k/n (Wilson 1927)."""
    if n == 0:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def roc_auc(pos: Sequence[float], neg: Sequence[float]) -> float | None:
    """P(score of a positive > score of a negative), ties counting half (the
    Mann-Whitney form of the ROC AUC), from mid-ranks in O(n log n)."""
    if not pos or not neg:
        return None
    allv = sorted([(float(v), 1) for v in pos] + [(float(v), 0) for v in neg])
    rank_sum, i = 0.0, 0
    while i < len(allv):
        j = i
        while j < len(allv) and allv[j][0] == allv[i][0]:
            j += 1
        mid = (i + 1 + j) / 2.0  # mean of the 1-based ranks i+1..j
        rank_sum += mid * sum(1 for k in range(i, j) if allv[k][1])
        i = j
    n_p, n_n = len(pos), len(neg)
    return (rank_sum - n_p * (n_p + 1) / 2.0) / (n_p * n_n)


def _auc_interval(pos: Sequence[float], neg: Sequence[float], rounds: int = 500, seed: int = 7) -> tuple[float, float] | None:
    if not pos or not neg:
        return None
    rng = random.Random(seed)
    vals = []
    for _ in range(rounds):
        a = [pos[rng.randrange(len(pos))] for _ in pos]
        b = [neg[rng.randrange(len(neg))] for _ in neg]
        vals.append(roc_auc(a, b))
    vals.sort()
    return (vals[int(0.025 * rounds)], vals[int(0.975 * rounds) - 1])


def evaluate_verifier(
    verifier: Any,
    pairs: Sequence[ClaimPair],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Accept rates per label and ROC AUCs of ``verifier`` on ``pairs``.

    Returns a dict: ``verifier`` (its name), ``n`` (pairs per label), ``accept`` (share
    accepted per label), ``accept_ci`` (Wilson 95%), ``auc`` with keys
    ``support_vs_rest``, ``support_vs_contradict``, ``support_vs_nei`` and ``auc_ci``
    (bootstrap 95%), ``seconds_per_pair``, and ``scores`` (label, score, accepted per
    pair, in order). Pairs are verified one batch per claim (a verifier's
    ``verify_batch`` when it has one).
    """
    from .answer.verify import verify_pairs

    t0 = time.monotonic()
    scores: list[tuple[str, float, bool]] = []
    for i, p in enumerate(pairs):
        v = verify_pairs(verifier, [(p.claim, p.passage)])[0]
        scores.append((p.label, float(v.score), bool(v.supported)))
        if progress is not None:
            progress(i + 1, len(pairs))
    elapsed = time.monotonic() - t0
    by = {lab: [s for s in scores if s[0] == lab] for lab in LABELS}
    n = {lab: len(v) for lab, v in by.items()}
    accept = {lab: (sum(s[2] for s in v) / len(v) if v else None) for lab, v in by.items()}
    accept_ci = {lab: wilson_interval(sum(s[2] for s in v), len(v)) for lab, v in by.items()}
    pos = [s[1] for s in by["SUPPORT"]]
    negs = {
        "support_vs_rest": [s[1] for s in by["CONTRADICT"] + by["NEI"]],
        "support_vs_contradict": [s[1] for s in by["CONTRADICT"]],
        "support_vs_nei": [s[1] for s in by["NEI"]],
    }
    return {
        "verifier": getattr(verifier, "name", type(verifier).__name__),
        "n": n,
        "accept": accept,
        "accept_ci": accept_ci,
        "auc": {k: roc_auc(pos, v) for k, v in negs.items()},
        "auc_ci": {k: _auc_interval(pos, v) for k, v in negs.items()},
        "seconds_per_pair": elapsed / len(pairs) if pairs else None,
        "scores": scores,
    }


def format_verifier_report(result: dict[str, Any], title: str = "") -> str:
    """A Markdown table of one :func:`evaluate_verifier` result (for the CLI)."""

    def rate(lab: str) -> str:
        a, ci = result["accept"][lab], result["accept_ci"][lab]
        return f"{a:.0%} [{ci[0]:.0%}, {ci[1]:.0%}]" if a is not None else "-"

    def auc(k: str) -> str:
        v, ci = result["auc"][k], result["auc_ci"][k]
        return f"{v:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]" if v is not None else "-"

    n = result["n"]
    lines = [
        f"{title or result['verifier']}: {sum(n.values())} pairs ({', '.join(f'{k} {v}' for k, v in n.items())})",
        "",
        "| accept SUPPORT | accept CONTRADICT | accept NEI | AUC S/rest | AUC S/CONTRADICT | AUC S/NEI |",
        "|---|---|---|---|---|---|",
        "| " + " | ".join([rate(lab) for lab in LABELS]
                         + [auc(k) for k in ("support_vs_rest", "support_vs_contradict", "support_vs_nei")]) + " |",
    ]
    return "\n".join(lines)
