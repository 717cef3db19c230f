"""Evidence scorer: the expected-F1 cut, the dense question-sentence similarity and its
per-chunk unit-vector cache (issue 12)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import HashEncoder, need_data

from medrag.answer import AnswerConfig
from medrag.answer.compose import compose_extractive
from medrag.answer.scorer import (
    DENSE_CONTEXT_FEATURES,
    DENSE_FEATURES,
    FEATURES,
    EvidenceScorer,
    dense_context_features,
    evidence_scorer,
    pick_expected_f1,
    score_candidates,
)
from medrag.answer.select import candidates
from medrag.answer.select import question_weights
from medrag.answer.sentvec import UnitVectorCache, unit_similarities, unit_vectors
from medrag.answer.text import content_tokens
from medrag.answer.units import quote_units
from medrag.errors import ConfigError
from medrag.index import Index, IndexConfig
from medrag.ingest.beir import iter_beir_corpus


class CountingEncoder(HashEncoder):
    """The hash encoder, counting the texts it is asked to encode as documents."""

    def __init__(self) -> None:
        super().__init__(64)
        self.encoded = 0

    def encode_documents(self, texts, *, show_progress=False):
        self.encoded += len(texts)
        return super().encode_documents(texts)


@pytest.fixture(scope="module")
def scifact_index():
    docs = list(iter_beir_corpus(need_data("scifact")))[:300]
    return Index.build(docs, IndexConfig(encoder=None))


def _question(index) -> str:
    # a real abstract's title as the question: its own abstract is retrieved
    return index.search("vitamin D deficiency", k=1)[0].source.title or "vitamin D deficiency"


def test_shipped_scorers_load_with_their_features():
    def n_read(s):
        return s.trees.n_features if s.trees is not None else len(s.coef)

    lex = evidence_scorer()
    assert lex is not None and not lex.dense and n_read(lex) == len(FEATURES)
    dense = evidence_scorer(dense=True)
    assert dense is not None and dense.dense and dense.dense_context
    assert n_read(dense) == len(FEATURES) + len(DENSE_FEATURES) + len(DENSE_CONTEXT_FEATURES)
    rng = np.random.default_rng(0)
    for s in (lex, dense):
        p = s.probabilities(rng.random((50, n_read(s))))
        assert p.shape == (50,) and np.all((p >= 0) & (p <= 1))


def test_a_weight_file_with_other_features_is_refused(tmp_path):
    p = tmp_path / "evidence.json"
    p.write_text(json.dumps({"features": ["coverage"], "coef": [1.0], "intercept": 0.0, "threshold": 0.5}))
    with pytest.raises(ValueError, match="features differ"):
        EvidenceScorer.load(p)


def test_expected_f1_cut_quotes_as_many_as_the_probabilities_support(scifact_index):
    q = "vitamin D deficiency"
    passages = scifact_index.search(q, k=4)
    pool = candidates(passages, sorted(set(content_tokens(q))))
    assert len(pool) >= 6
    probs = np.full(len(pool), 0.01)
    probs[[0, 3]] = 0.9  # two likely units, the rest unlikely
    picked = pick_expected_f1(pool, probs, max_units=5)
    assert [pool.index(c) for c in picked] == [0, 3]
    probs[:] = 0.01
    probs[2] = 0.6  # one likely unit: quoting a second lowers the expected F1
    assert [pool.index(c) for c in pick_expected_f1(pool, probs, max_units=5)] == [2]
    probs[:] = 0.95  # many likely ones: capped
    assert len(pick_expected_f1(pool, probs, max_units=3)) == 3


def test_unit_vector_cache_encodes_each_chunk_once_and_evicts(scifact_index):
    enc = CountingEncoder()
    cache = UnitVectorCache(enc, max_chunks=3)
    passages = scifact_index.search("vitamin D deficiency", k=3)
    n_units = sum(len(quote_units(p.chunk.text)) for p in passages)
    first = cache.vectors(passages)
    assert enc.encoded == n_units and cache.misses == 3 and cache.hits == 0
    again = cache.vectors(passages)
    assert enc.encoded == n_units and cache.hits == 3  # nothing encoded again
    for p in passages:
        assert np.array_equal(first[p.chunk.id], again[p.chunk.id])
        assert first[p.chunk.id].shape == (len(quote_units(p.chunk.text)), 64)
    other = scifact_index.search("tumor necrosis factor", k=6)
    new = [p for p in other if p.chunk.id not in first][:2]
    cache.vectors(new)
    assert len(cache) == 3  # bounded: the least recently used chunks went


def test_similarities_are_cosines_of_the_encoders_own_vectors(scifact_index, minilm):
    q = _question(scifact_index)
    passages = scifact_index.search(q, k=2)
    sims = unit_similarities(q, passages, minilm)
    qv = minilm.encode_queries([q])[0]
    for p in passages:
        texts = [p.chunk.text[u.start : u.end] for u in quote_units(p.chunk.text)]
        direct = minilm.encode_documents(texts) @ qv
        np.testing.assert_allclose(sims[p.chunk.id], direct, atol=1e-4)


class _Counting:
    """The real encoder, counting the passage texts it is asked to encode."""

    def __init__(self, encoder):
        self._encoder = encoder
        self.documents = 0

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode_documents(self, texts, *args, **kwargs):
        texts = list(texts)
        self.documents += len(texts)
        return self._encoder.encode_documents(texts, *args, **kwargs)


def test_dense_evidence_answer_quotes_exact_spans_and_reuses_vectors(scifact_index, minilm):
    q = _question(scifact_index)
    passages = scifact_index.search(q, k=8)
    cfg = AnswerConfig(dense_evidence=True, threshold=0.0)
    enc = _Counting(minilm)
    weights = scifact_index.term_weights(sorted(set(content_tokens(q))))
    a = compose_extractive(q, passages, config=cfg, encoder=enc, term_weights=weights)
    cold = enc.documents
    assert a.sentences
    assert cold > 0  # the first answer encoded the passages' sentences
    texts = {p.chunk.id: p.chunk.text for p in passages}
    for s in a.sentences:
        assert any(s.text in t for t in texts.values())
    b = compose_extractive(q, passages, config=cfg, encoder=enc, term_weights=weights)
    assert [s.text for s in a.sentences] == [s.text for s in b.sentences]
    assert enc.documents == cold  # the second answer encodes only the question
    # without an encoder the lexical scorer answers
    c = compose_extractive(q, passages, config=cfg)
    assert c.sentences


def test_dense_evidence_must_be_a_bool():
    with pytest.raises(ConfigError, match="dense_evidence"):
        AnswerConfig(dense_evidence="yes")  # type: ignore[arg-type]


def test_boosted_trees_from_plain_arrays_equal_sklearn():
    sklearn_ensemble = pytest.importorskip("sklearn.ensemble")
    from medrag.answer.trees import BoostedTrees

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 6))
    y = ((X[:, 0] * X[:, 1] + X[:, 2]) > 0.2).astype(int)
    X[rng.random(X.shape) < 0.03] = np.nan  # missing values take the learnt side
    m = sklearn_ensemble.HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(X, y)
    trees = BoostedTrees.from_json(json.loads(json.dumps(BoostedTrees.from_sklearn(m).to_json())))
    np.testing.assert_allclose(trees.probabilities(X), m.predict_proba(X)[:, 1], atol=1e-12)
    with pytest.raises(ValueError, match="read 6 features"):
        trees.raw(X[:, :5])


def test_boosted_trees_refuse_arrays_pointing_outside():
    from medrag.answer.trees import BoostedTrees

    arrays = {"feature": [0, 0, 0], "threshold": [0.5, 0, 0], "left": [1, 0, 0], "right": [7, 0, 0],
              "is_leaf": [0, 1, 1], "missing_left": [1, 0, 0], "value": [0, -1.0, 1.0], "roots": [0]}
    with pytest.raises(ValueError, match="outside"):
        BoostedTrees(arrays, 0.0, 1)
    arrays["right"] = [2, 0, 0]
    t = BoostedTrees(arrays, 0.0, 1)
    assert t.raw(np.array([[0.0], [1.0], [np.nan]])).tolist() == [-1.0, 1.0, -1.0]


def test_answer_passes_the_index_encoder_only_when_asked():
    from medrag.answer import answer

    enc = CountingEncoder()
    docs = list(iter_beir_corpus(need_data("scifact")))[:120]
    index = Index.build(docs, IndexConfig(), encoder=enc)
    q = "vitamin D deficiency"
    before = enc.encoded
    answer(q, index, config=AnswerConfig(threshold=0.0))
    assert enc.encoded == before  # lexical features: no unit is encoded
    a = answer(q, index, config=AnswerConfig(threshold=0.0, dense_evidence=True, min_sentence_coverage=0.0))
    assert enc.encoded > before and a.sentences  # the units of the retrieved passages were encoded


def test_dense_context_features_equal_a_unit_by_unit_computation(scifact_index):
    enc = HashEncoder(64)
    q = "vitamin D deficiency and bone fractures"
    passages = scifact_index.search(q, k=4)
    pool = candidates(passages, sorted(set(content_tokens(q))))
    uv = unit_vectors(q, passages, enc)
    F = dense_context_features(pool, uv)
    assert F.shape == (len(pool), len(DENSE_CONTEXT_FEATURES))
    col = {name: i for i, name in enumerate(DENSE_CONTEXT_FEATURES)}
    qv = enc.encode_queries([q])[0]
    qv = qv / np.linalg.norm(qv)

    def unit(v):
        n = np.linalg.norm(v)
        return v / n if n else v

    w3_all = []
    for row, c in zip(F, pool):
        texts = [c.passage.chunk.text[u.start : u.end] for u in quote_units(c.passage.chunk.text)]
        U = np.array([unit(v) for v in enc.encode_documents(texts)])
        s = U @ qv
        j = c.position
        window = [U[i] for i in (j - 1, j, j + 1) if 0 <= i < len(U)]
        w3 = [float(unit(sum(U[i] for i in (k - 1, k, k + 1) if 0 <= i < len(U))) @ qv) for k in range(len(U))]
        w3_all.append(w3[j])
        np.testing.assert_allclose(row[col["window3_sim"]], unit(sum(window)) @ qv, atol=1e-6)
        # the document's units: those of every chunk of the same document among the passages
        doc_chunks = list(dict.fromkeys(x.passage.chunk.id for x in pool if x.passage.chunk.doc_id == c.passage.chunk.doc_id))
        assert doc_chunks == [c.passage.chunk.id]  # one chunk per abstract here
        np.testing.assert_allclose(row[col["doc_mean_sim"]], unit(U.mean(axis=0)) @ qv, atol=1e-6)
        np.testing.assert_allclose(row[col["centrality"]], U[j] @ unit(U.mean(axis=0)), atol=1e-6)
        np.testing.assert_allclose(row[col["sim_to_best_in_doc"]], U[j] @ U[int(np.argmax(s))], atol=1e-6)
        np.testing.assert_allclose(row[col["prev2_dense_sim"]], s[j - 2] if j >= 2 else 0.0, atol=1e-6)
        np.testing.assert_allclose(row[col["next2_dense_sim"]], s[j + 2] if j + 2 < len(s) else 0.0, atol=1e-6)
        with_next = unit(U[j] + U[j + 1]) @ qv if j + 1 < len(U) else s[j]
        np.testing.assert_allclose(row[col["with_next_sim"]], with_next, atol=1e-6)
        np.testing.assert_allclose(row[col["window3_minus_best_in_doc"]], w3[j] - max(w3), atol=1e-6)
        above = round(1.0 / row[col["inv_window3_rank_in_doc"]]) - 1  # units ranked above this one
        assert sum(x > w3[j] + 1e-6 for x in w3) <= above <= sum(x > w3[j] - 1e-6 for x in w3)
        assert row[col["doc_units"]] == len(U)
    np.testing.assert_allclose(F[:, col["window3_minus_best"]], np.array(w3_all) - max(w3_all), atol=1e-6)


def test_a_dense_context_scorer_needs_the_unit_vectors(scifact_index):
    q = "vitamin D deficiency"
    passages = scifact_index.search(q, k=3)
    toks = sorted(set(content_tokens(q)))
    pool = candidates(passages, toks)
    weight = question_weights(toks, pool, None)
    scorer = evidence_scorer(dense=True)
    enc = HashEncoder(64)
    uv = unit_vectors(q, passages, enc)
    p = score_candidates(pool, toks, weight, toks[0], q, scorer, uv)
    assert p.shape == (len(pool),) and np.all((p >= 0) & (p <= 1))
    with pytest.raises(ValueError, match="unit vectors"):
        score_candidates(pool, toks, weight, toks[0], q, scorer, uv.similarities())


def test_dense_context_pools_the_units_of_every_chunk_of_a_document():
    from medrag.chunking import ChunkConfig

    docs = list(iter_beir_corpus(need_data("scifact")))[:60]
    index = Index.build(docs, IndexConfig(encoder=None, chunking=ChunkConfig(max_tokens=96)))
    q = "cells protein expression increased patients"
    passages = index.search(q, k=40)
    by_doc: dict[str, list] = {}
    for p in passages:
        by_doc.setdefault(p.chunk.doc_id, []).append(p)
    doc, parts = max(by_doc.items(), key=lambda kv: len(kv[1]))
    assert len(parts) >= 2, "the short chunks should split an abstract"
    enc = HashEncoder(64)
    pool = candidates(passages, sorted(set(content_tokens(q))))
    F = dense_context_features(pool, unit_vectors(q, passages, enc))
    col = {name: i for i, name in enumerate(DENSE_CONTEXT_FEATURES)}
    qv = enc.encode_queries([q])[0]
    qv = qv / np.linalg.norm(qv)
    order = list(dict.fromkeys(c.passage.chunk.id for c in pool if c.passage.chunk.doc_id == doc))
    chunk_of = {p.chunk.id: p.chunk for p in parts}
    U = []
    for cid in order:
        text = chunk_of[cid].text
        for v in enc.encode_documents([text[u.start : u.end] for u in quote_units(text)]):
            n = np.linalg.norm(v)
            U.append(v / n if n else v)
    U = np.array(U)
    mean = U.mean(axis=0) / np.linalg.norm(U.mean(axis=0))
    rows = [i for i, c in enumerate(pool) if c.passage.chunk.doc_id == doc]
    assert len(rows) == len(U)
    np.testing.assert_allclose(F[rows, col["doc_units"]], len(U))
    np.testing.assert_allclose(F[rows, col["doc_mean_sim"]], mean @ qv, atol=1e-6)
    np.testing.assert_allclose(F[rows, col["centrality"]], U @ mean, atol=1e-6)
    s = U @ qv
    np.testing.assert_allclose(F[rows, col["dense_z_in_doc"]], (s - s.mean()) / (s.std() + 1e-6), atol=1e-5)
