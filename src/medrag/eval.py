"""Evaluation: retrieval metrics on BEIR-format folders, TREC run files, and the
answer-side metrics (abstention curve, ALCE citation precision and recall).

Everything here is a pure function of its inputs (plus the files it is asked to read
or write); nothing prints. Retrieval metrics are computed by ``ir_measures`` (the
``eval`` extra), imported only when a metric is asked for.

Conventions:

* A *run* is ``{query_id: {doc_id: score}}`` (higher is better) and *qrels* are
  ``{query_id: {doc_id: relevance}}``, the plain-dict inputs ``ir_measures`` takes.
* A measure is named as ``ir_measures`` parses it: ``"nDCG@10"``, ``"R@100"``,
  ``"RR@10"`` (mean reciprocal rank at 10, i.e. MRR@10), ``"P@5"``, ``"AP"``.
* Means are over the queries in the qrels: a judged query missing from the run scores
  0 on every measure; a run query without judgments is ignored (``ir_measures``
  semantics).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import atomic_write_text
from .errors import ConfigError, MissingDependencyError
from .ingest.beir import beir_id, read_beir_qrels, read_beir_queries
from .verifier_eval import (
    ClaimPair,
    evaluate_verifier,
    load_scifact_pairs,
    roc_auc,
    stratified_sample,
    wilson_interval,
)

if TYPE_CHECKING:  # pragma: no cover
    from .index import Index
    from .types import Passage

__all__ = [
    "DEFAULT_MEASURES",
    "evaluate_run",
    "passages_to_doc_run",
    "write_trec_run",
    "read_trec_run",
    "beir_runs",
    "evaluate_index_on_beir",
    "abstention_curve",
    "citation_precision_recall",
    "plot_abstention_curve",
    "markdown_table",
    # verifier evaluation (medrag.verifier_eval)
    "ClaimPair",
    "load_scifact_pairs",
    "stratified_sample",
    "evaluate_verifier",
    "roc_auc",
    "wilson_interval",
]

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]

#: The measures reported by default: nDCG@10 (BEIR's headline), recall@100, MRR@10.
DEFAULT_MEASURES: tuple[str, ...] = ("nDCG@10", "R@100", "RR@10")


# --------------------------------------------------------------------------- retrieval


def _ir_measures() -> Any:
    try:
        import ir_measures
    except ImportError as exc:
        raise MissingDependencyError("ir_measures", "eval", "retrieval evaluation") from exc
    return ir_measures


def evaluate_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence[str] = DEFAULT_MEASURES,
) -> dict[str, float]:
    """Mean of each measure over the judged queries, keyed by the name as given.

    Args:
        run: ``{query_id: {doc_id: score}}``; higher scores rank first.
        qrels: ``{query_id: {doc_id: relevance}}``; relevance > 0 is relevant.
        measures: names ``ir_measures`` parses (``"nDCG@10"``, ``"R@100"``, ``"RR@10"``).

    Raises:
        MissingDependencyError: ``ir_measures`` is not installed.
        ConfigError: a measure name ``ir_measures`` does not know, or empty qrels.
    """
    irm = _ir_measures()
    if not qrels:
        raise ConfigError("qrels are empty: nothing to evaluate against")
    parsed = {}
    for name in measures:
        try:
            parsed[name] = irm.parse_measure(name)
        except (ValueError, TypeError, NameError, SyntaxError, AttributeError) as exc:
            raise ConfigError(f"unknown measure {name!r}: {exc}") from exc
    q = {str(qid): {str(d): int(r) for d, r in docs.items()} for qid, docs in qrels.items()}
    r = {str(qid): {str(d): float(s) for d, s in docs.items()} for qid, docs in run.items()}
    agg = irm.calc_aggregate(list(parsed.values()), q, r)
    return {name: float(agg.get(m, 0.0)) for name, m in parsed.items()}


def passages_to_doc_run(
    passages_per_query: Mapping[str, Sequence["Passage"]],
    id_map: Callable[[str], str] = beir_id,
    *,
    k: int | None = None,
) -> Run:
    """Collapse chunk-level passages to a document-level run.

    A document's score is the highest score of any of its passages (MaxP, Dai & Callan
    2019). ``id_map`` turns a medrag document id into the id the qrels use (by default
    :func:`~medrag.ingest.beir.beir_id`, ``"doc:123" -> "123"``). ``k`` keeps only each
    query's ``k`` best documents.
    """
    run: Run = {}
    for qid, passages in passages_per_query.items():
        docs: dict[str, float] = {}
        for p in passages:
            did = id_map(p.chunk.doc_id)
            s = float(p.score)
            if did not in docs or s > docs[did]:
                docs[did] = s
        if k is not None:
            docs = dict(sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:k])
        run[str(qid)] = docs
    return run


def _check_token(value: str, what: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ConfigError(f"a TREC run {what} must be non-empty with no whitespace: {value!r}")
    return value


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def write_trec_run(run: Mapping[str, Mapping[str, float]], path: str | os.PathLike[str], tag: str) -> Path:
    """Write ``run`` as a TREC run file and return its path.

    Six space-separated columns per line, ``qid Q0 docid rank score tag``, each query's
    documents in descending score order (ties broken by document id) with ranks from 1.
    Queries are written in sorted order. Scores are written in full (shortest
    round-trip) precision, since evaluators re-sort by score and ignore the rank column. The file is written atomically (a temporary
    sibling, then ``os.replace``).

    Raises:
        ConfigError: an id or the tag is empty or contains whitespace, or a score is not
            finite.
    """
    _check_token(tag, "tag")
    lines = []
    for qid in sorted(run):
        _check_token(str(qid), "query id")
        ranked_docs = sorted(run[qid].items(), key=lambda kv: (-float(kv[1]), str(kv[0])))
        for rank, (doc, score) in enumerate(ranked_docs, start=1):
            _check_token(str(doc), "document id")
            score = float(score)
            if not math.isfinite(score):
                raise ConfigError(f"score of {doc!r} for query {qid!r} is not finite: {score}")
            lines.append(f"{qid} Q0 {doc} {rank} {score!r} {tag}\n")
    out = Path(path)
    _atomic_write_text(out, "".join(lines))
    return out


def read_trec_run(path: str | os.PathLike[str]) -> Run:
    """Read a TREC run file (six whitespace-separated columns) into a run dict."""
    run: Run = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 6:
                raise ConfigError(f"{path}:{n}: expected 6 columns, found {len(parts)}")
            try:
                run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
            except ValueError as exc:
                raise ConfigError(f"{path}:{n}: bad score {parts[4]!r}") from exc
    return run


def _beir_inputs(folder: str | os.PathLike[str], split: str) -> tuple[dict[str, str], Qrels]:
    root = Path(folder)
    qrels_path = root / "qrels" / f"{split}.tsv"
    queries_path = root / "queries.jsonl"
    for p in (qrels_path, queries_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: not found (expected a BEIR folder with queries.jsonl and qrels/{split}.tsv)")
    qrels = read_beir_qrels(qrels_path)
    queries = read_beir_queries(queries_path)
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise ConfigError(
            f"{qrels_path}: {len(missing)} judged quer(ies) have no text in {queries_path}: {missing[:5]}"
        )
    return {qid: queries[qid] for qid in qrels}, qrels


def _check_modes(index: "Index", modes: Sequence[str]) -> None:
    for mode in modes:
        if mode not in ("bm25", "dense", "hybrid"):
            raise ConfigError(f"mode must be bm25, dense or hybrid, not {mode!r}")
        if mode != "bm25" and index.encoder is None:
            raise ConfigError(f"this index has no dense vectors: mode {mode!r} cannot be evaluated")


def beir_runs(
    index: "Index",
    folder: str | os.PathLike[str],
    *,
    split: str = "train",
    modes: Sequence[str] = ("bm25", "dense", "hybrid"),
    k: int = 100,
    id_map: Callable[[str], str] = beir_id,
) -> tuple[dict[str, Run], Qrels]:
    """Search ``index`` with the judged queries of a BEIR folder, one run per mode.

    Queries are those of ``queries.jsonl`` that appear in ``qrels/<split>.tsv``. Each
    query retrieves ``2 * k`` passages (several may come from one document), collapsed
    to its ``k`` best documents by :func:`passages_to_doc_run`.

    Returns:
        ``({mode: run}, qrels)``.
    """
    if k < 1:
        raise ConfigError("k must be >= 1")
    _check_modes(index, modes)
    queries, qrels = _beir_inputs(folder, split)
    qids = sorted(queries)
    texts = [queries[q] for q in qids]
    runs: dict[str, Run] = {}
    for mode in modes:
        results = index.search_many(texts, k=2 * k, mode=mode)  # type: ignore[arg-type]
        runs[mode] = passages_to_doc_run(dict(zip(qids, results)), id_map, k=k)
    return runs, qrels


def evaluate_index_on_beir(
    index: "Index",
    folder: str | os.PathLike[str],
    split: str = "train",
    modes: Sequence[str] = ("bm25", "dense", "hybrid"),
    k: int = 100,
    *,
    measures: Sequence[str] = DEFAULT_MEASURES,
    run_dir: str | os.PathLike[str] | None = None,
    tag: str = "medrag",
) -> dict[str, dict[str, float]]:
    """Evaluate each retrieval mode of ``index`` on a BEIR folder.

    The index must hold the folder's corpus with ids that ``beir_id`` maps back to the
    corpus ``_id`` (as :func:`~medrag.ingest.beir.iter_beir_corpus` makes them). With
    ``run_dir``, each mode's run is also written there as ``<mode>.trec`` (tag
    ``<tag>-<mode>``).

    Returns:
        ``{mode: {measure: mean value}}``.

    Raises:
        ConfigError: a mode the index cannot serve (dense or hybrid without vectors).
        FileNotFoundError / IngestError: a missing or malformed BEIR file.
        MissingDependencyError: ``ir_measures`` is not installed.
    """
    _ir_measures()  # fail before searching when the evaluator is missing
    runs, qrels = beir_runs(index, folder, split=split, modes=modes, k=k)
    out: dict[str, dict[str, float]] = {}
    for mode, run in runs.items():
        if run_dir is not None:
            write_trec_run(run, Path(run_dir) / f"{mode}.trec", f"{tag}-{mode}")
        out[mode] = evaluate_run(run, qrels, measures)
    return out


# --------------------------------------------------------------------------- answers


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def abstention_curve(
    scores_answerable: Sequence[float | None],
    cited_own: Sequence[bool],
    scores_unanswerable: Sequence[float | None],
    thresholds: Iterable[float],
) -> list[dict[str, float | None]]:
    """The trade-off between answering and abstaining as a confidence threshold moves.

    Each question has a confidence score, or None when the system abstained whatever
    the threshold. At threshold ``t`` a question is answered when its score is not None
    and ``score >= t``; otherwise the system abstains.

    Args:
        scores_answerable: scores of questions whose evidence is in the index.
        cited_own: for each answerable question, whether its answer cites the
            question's own (gold) source.
        scores_unanswerable: scores of questions the index cannot answer.
        thresholds: the thresholds to evaluate, in the order given.

    Returns:
        One dict per threshold: ``threshold``; ``answered_rate`` (answerable questions
        answered); ``answered_citing_own_rate`` (answerable questions answered *and*
        citing their own source); ``abstained_unanswerable_rate`` (unanswerable
        questions abstained on). A rate over an empty list is None.
    """
    if len(cited_own) != len(scores_answerable):
        raise ConfigError(
            f"cited_own has {len(cited_own)} entries for {len(scores_answerable)} answerable scores"
        )
    n_a, n_u = len(scores_answerable), len(scores_unanswerable)
    curve: list[dict[str, float | None]] = []
    for t in thresholds:
        t = float(t)
        answered = [s is not None and s >= t for s in scores_answerable]
        n_answered = sum(answered)
        n_own = sum(1 for a, own in zip(answered, cited_own) if a and own)
        n_abstained_u = sum(1 for s in scores_unanswerable if s is None or s < t)
        curve.append(
            {
                "threshold": t,
                "answered_rate": _rate(n_answered, n_a),
                "answered_citing_own_rate": _rate(n_own, n_a),
                "abstained_unanswerable_rate": _rate(n_abstained_u, n_u),
            }
        )
    return curve


def citation_precision_recall(
    sentences: Sequence[tuple[str, Sequence[str]]],
    verifier: Callable[[str, str], bool],
    *,
    joiner: str = "\n",
) -> dict[str, float | int | None]:
    """Citation recall and precision of one answer, as ALCE defines them (Gao et al.
    2023, "Enabling Large Language Models to Generate Text with Citations").

    Args:
        sentences: the answer's sentences, each with the texts of the passages it cites.
        verifier: ``verifier(sentence, passage_text) -> bool``, True when the text
            supports (entails) the sentence, e.g. an NLI model.
        joiner: how several cited passages are concatenated for the verifier.

    Recall: a sentence is supported when it has citations and the verifier accepts the
    concatenation of all of them; recall is the fraction of supported sentences.

    Precision: a citation counts when its sentence is supported and the citation is
    needed: either it supports the sentence alone, or the other citations of the
    sentence no longer support it without it. Citations of an unsupported sentence
    never count. Precision is counted citations over all citations.

    Returns:
        ``{"recall", "precision", "n_sentences", "n_supported", "n_citations",
        "n_precise"}``; recall (precision) is None for an answer with no sentences (no
        citations). Average over answers yourself (ALCE takes the macro mean).
    """
    n_supported = n_citations = n_precise = 0
    for sentence, cited in sentences:
        cited = list(cited)
        n_citations += len(cited)
        supported = bool(cited) and bool(verifier(sentence, joiner.join(cited)))
        if not supported:
            continue
        n_supported += 1
        if len(cited) == 1:
            n_precise += 1
            continue
        for i, passage in enumerate(cited):
            if verifier(sentence, passage):
                n_precise += 1
                continue
            rest = cited[:i] + cited[i + 1 :]
            if not verifier(sentence, joiner.join(rest)):
                n_precise += 1  # needed: the others do not support the sentence without it
    return {
        "recall": _rate(n_supported, len(sentences)),
        "precision": _rate(n_precise, n_citations),
        "n_sentences": len(sentences),
        "n_supported": n_supported,
        "n_citations": n_citations,
        "n_precise": n_precise,
    }


# --------------------------------------------------------------------------- reporting


def plot_abstention_curve(curve: Sequence[Mapping[str, Any]], path_png: str | os.PathLike[str]) -> Path:
    """Plot an :func:`abstention_curve` against its thresholds into a PNG file.

    Uses matplotlib's object-oriented API (no ``pyplot`` global state, no backend
    switch). Raises :class:`~medrag.errors.MissingDependencyError` without matplotlib.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "eval", "plotting") from exc
    xs = [float(p["threshold"]) for p in curve]
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for key, label in (
        ("answered_rate", "answerable: answered"),
        ("answered_citing_own_rate", "answerable: answered, citing own source"),
        ("abstained_unanswerable_rate", "unanswerable: abstained"),
    ):
        ys = [p.get(key) for p in curve]
        ax.plot(xs, [math.nan if y is None else float(y) for y in ys], marker="o", label=label)
    ax.set_xlabel("confidence threshold")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    out = Path(path_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=120)
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A GitHub-flavoured Markdown table of ``rows``.

    Columns are the keys in first-seen order; floats are shown with 4 decimals, None as
    an empty cell; numeric columns are right-aligned. No rows gives an empty string.
    """
    if not rows:
        return ""
    cols: list[str] = []
    for row in rows:
        for key in row:
            if key not in cols:
                cols.append(key)
    numeric = {
        c: all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in rows if r.get(c) is not None)
        and any(r.get(c) is not None for r in rows)
        for c in cols
    }
    header = "| " + " | ".join(_cell(c) for c in cols) + " |"
    rule = "|" + "|".join("---:" if numeric[c] else "---" for c in cols) + "|"
    body = ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join([header, rule, *body]) + "\n"
