"""BM25 and its analyzer: rank-bm25 as the oracle on real SciFact text, the biomedical
tokens, persistence, incremental changes and corrupt files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import need_data

import medrag.retrieve as retrieve
from medrag.errors import ConfigError, IndexFormatError, IndexNotFoundError, IndexVersionError
from medrag.retrieve import Analyzer, BM25Index, BM25Params

rank_bm25 = pytest.importorskip("rank_bm25")

N_DOCS = 2000
N_QUERIES = 300
NO_STOP = Analyzer(stopwords_name="none", stopwords=())


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def scifact() -> tuple[list[str], list[str]]:
    corpus = need_data("scifact", "corpus.jsonl")
    queries = need_data("scifact", "queries.jsonl")
    texts = []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            texts.append(f"{rec['title']} {rec['text']}")
            if len(texts) == N_DOCS:
                break
    with open(queries, encoding="utf-8") as f:
        qs = [json.loads(line)["text"] for line in f][:N_QUERIES]
    return texts, qs


@pytest.fixture(scope="module")
def tokens(scifact):
    texts, qs = scifact
    out = {}
    for name, an in (("default", Analyzer()), ("nostop", NO_STOP)):
        out[name] = (an, an.tokenize_many(texts), an.tokenize_many(qs))
    return out


def _ranked(scores: np.ndarray, matched: np.ndarray, k: int) -> np.ndarray:
    """Rows by descending score, ties to the lower row, among matched rows."""
    rows = np.flatnonzero(matched)
    order = np.lexsort((rows, -scores[rows]))
    return rows[order][:k]


def _matched(token_lists, query) -> np.ndarray:
    q = set(query)
    return np.array([bool(q.intersection(d)) for d in token_lists])


# ---------------------------------------------------------------------- oracle


@pytest.mark.parametrize("analyzer_name", ["default", "nostop"])
def test_scores_equal_rank_bm25_on_scifact(tokens, analyzer_name):
    _, docs, queries = tokens[analyzer_name]
    oracle = rank_bm25.BM25Okapi(docs)
    index = BM25Index.from_token_lists(docs)
    if analyzer_name == "nostop":
        # "the", "of", ... occur in more than half the abstracts: the epsilon floor is used
        negative = [t for t, v in oracle.idf.items() if v == oracle.epsilon * oracle.average_idf]
        assert "the" in negative
        assert index.idf("the") == pytest.approx(0.25 * oracle.average_idf, abs=1e-12)
    assert index.avgdl == pytest.approx(oracle.avgdl, rel=1e-15)
    for q in queries:
        expected = oracle.get_scores(q)
        got = index.scores(q)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        rows, scores = index.search(q, k=10)
        want = _ranked(expected, _matched(docs, q), 10)
        np.testing.assert_allclose(scores, expected[want], rtol=0, atol=1e-6)
        # same rows, unless two scores tie to within rounding at some position
        if not np.array_equal(rows, want):
            assert np.allclose(expected[rows], expected[want], atol=1e-9)


@pytest.mark.parametrize("params", [BM25Params(k1=0.9, b=0.4, epsilon=0.5), BM25Params(b=0.0)])
def test_other_params_equal_rank_bm25(tokens, params):
    _, docs, queries = tokens["nostop"]
    docs = docs[:500]
    oracle = rank_bm25.BM25Okapi(docs, k1=params.k1, b=params.b, epsilon=params.epsilon)
    index = BM25Index.from_token_lists(docs, params)
    for q in queries[:50]:
        np.testing.assert_allclose(index.scores(q), oracle.get_scores(q), rtol=0, atol=1e-6)


def test_repeated_query_tokens_count_twice():
    docs = [["il-6", "il", "6", "sepsi"], ["sepsi", "shock"], ["shock"]]
    oracle = rank_bm25.BM25Okapi(docs)
    index = BM25Index.from_token_lists(docs)
    q = ["sepsi", "sepsi", "shock", "unknown"]
    np.testing.assert_allclose(index.scores(q), oracle.get_scores(q), atol=1e-12)


def test_mask_restricts_rows(tokens):
    _, docs, queries = tokens["default"]
    index = BM25Index.from_token_lists(docs)
    rng = np.random.default_rng(0)
    mask = rng.random(index.n_rows) < 0.3
    for q in queries[:40]:
        rows, scores = index.search(q, k=20, mask=mask)
        assert mask[rows].all()
        full = index.scores(q)
        want = _ranked(full, _matched(docs, q) & mask, 20)
        np.testing.assert_array_equal(rows, want)
        np.testing.assert_array_equal(scores, full[want])


def test_search_sparse_and_dense_paths_agree():
    # a rare term takes the np.unique path, a term in every row the dense path
    docs = [["common", f"u{i}"] + (["rare"] if i % 97 == 0 else []) for i in range(1000)]
    index = BM25Index.from_token_lists(docs)
    for q in (["rare"], ["common"], ["rare", "common"]):
        rows, scores = index.search(q, k=5)
        full = index.scores(q)
        np.testing.assert_array_equal(rows, _ranked(full, _matched(docs, q), 5))
    rows, _ = index.search(["common"], k=3)
    np.testing.assert_array_equal(rows, [1, 2, 3])  # shorter rows first, ties to the lower row
    rows, _ = index.search(["rare"], k=100)
    np.testing.assert_array_equal(rows, np.arange(0, 1000, 97))


def test_no_match_and_bad_arguments():
    index = BM25Index.from_token_lists([["a", "b"], ["b", "c"]])
    rows, scores = index.search(["zzz"], k=5)
    assert rows.size == 0 and scores.size == 0 and rows.dtype == np.int64
    assert not index.scores([]).any()
    with pytest.raises(ConfigError, match="tokenize"):
        index.search("b c")
    with pytest.raises(ConfigError):
        index.search(["b"], k=0)
    with pytest.raises(ConfigError, match="mask"):
        index.search(["b"], mask=np.ones(3, bool))
    with pytest.raises(ConfigError, match="mask"):
        index.search(["b"], mask=np.ones(2, int))
    with pytest.raises(ConfigError):
        index.delete([2])
    with pytest.raises(ConfigError, match="tokenize"):
        BM25Index.from_token_lists(["a string, not tokens"])
    with pytest.raises(ConfigError):
        BM25Params(b=1.5)
    with pytest.raises(ConfigError):
        BM25Params(variant="bm25l")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- analyzer


BIOMED = {
    "COVID-19": ["covid-19", "covid", "19"],
    "IL-6": ["il-6", "il", "6"],
    "β-blockers": ["β-blocker", "β", "blocker"],
    "HbA1c": ["hba1c"],
    "5-FU": ["5-fu", "5", "fu"],
    "TNF-α": ["tnf-α", "tnf", "α"],
    "SARS-CoV-2": ["sar-cov-2", "sar", "cov", "2"],
}


@pytest.mark.parametrize("text,expected", list(BIOMED.items()))
def test_analyzer_biomedical_tokens(text, expected):
    assert Analyzer().tokenize(text) == expected


def test_analyzer_normalization():
    a = Analyzer()
    # Unicode hyphens and minus, micro sign vs Greek mu, full-width, ligature, case
    assert a.tokenize("IL\u20106") == a.tokenize("IL-6") == a.tokenize("il\u22126")
    assert a.tokenize("10 \u00b5g") == a.tokenize("10 \u03bcg") == ["10", "μg"]
    assert a.tokenize("\uff29\uff2c-\uff16") == ["il-6", "il", "6"]
    assert a.tokenize("\ufb01brosis") == a.tokenize("Fibrosis")
    assert a.tokenize("the effect of the drug") == ["effect", "drug"]
    assert a.tokenize("Crohn\u2019s") == a.tokenize("crohn's") == a.tokenize("Crohn")
    spell = Analyzer(greek="spell")
    assert spell.tokenize("TNF-α") == spell.tokenize("TNF-alpha") == ["tnf-alpha", "tnf", "alpha"]
    assert Analyzer(stemmer=None).tokenize("Blockers") == ["blockers"]


def test_analyzer_compound_modes():
    text = "placebo-controlled T-cell IL-6"
    assert Analyzer().tokenize(text) == [
        "placebo", "control", "t-cell", "t", "cell", "il-6", "il", "6",
    ]  # fmt: skip
    assert Analyzer(compounds="never").tokenize(text) == [
        "placebo", "control", "t", "cell", "il", "6",
    ]  # fmt: skip
    assert Analyzer(compounds="always").tokenize(text)[:3] == [
        "placebo-control", "placebo", "control",
    ]  # fmt: skip
    assert Analyzer().tokenize("mother-of-pearl") == ["mother", "pearl"]


def test_biomedical_queries_find_their_documents():
    a = Analyzer()
    docs = [
        "Interleukin-6 (IL-6) levels rose in patients with COVID-19.",
        "β-blockers after myocardial infarction reduce mortality.",
        "HbA1c targets in type 2 diabetes.",
        "5-FU plus leucovorin in colorectal cancer.",
        "TNF-α inhibitors for rheumatoid arthritis.",
        "SARS-CoV-2 spike protein binds ACE2.",
        "Il 6 signalling in sepsis.",  # the parts only
    ]
    index = BM25Index.from_texts(docs, a)
    for query, row in [
        ("IL-6", 0), ("covid 19", 0), ("COVID-19", 0), ("beta blocker", None),
        ("β-blocker", 1), ("β blocker", 1), ("hba1c", 2), ("5-fu", 3),
        ("TNF-α", 4), ("sars-cov-2", 5), ("SARS CoV 2", 5),
    ]:  # fmt: skip
        rows, _ = index.search(a.tokenize(query), k=3)
        if row is None:
            assert 1 in rows  # "blocker" alone still finds it
        else:
            assert rows[0] == row, query
    rows, _ = index.search(a.tokenize("IL-6"), k=7)
    assert set(rows.tolist()) >= {0, 6}


def test_analyzer_round_trip_and_validation():
    a = Analyzer(
        stopwords_name="mine", stopwords=("foo", "bar"), greek="spell", min_token_len=2,
        compounds="never",
    )
    d = json.loads(json.dumps(a.to_dict()))
    assert d["stopwords"] == ["foo", "bar"]  # contents, not a library default's name
    assert Analyzer.from_dict(d) == a
    assert Analyzer.from_dict(Analyzer().to_dict()).stopwords == Analyzer().stopwords
    with pytest.raises(ConfigError):
        Analyzer.from_dict({**d, "extra": 1})
    with pytest.raises(ConfigError):
        Analyzer.from_dict({**d, "analyzer_format": 99})
    with pytest.raises(ConfigError, match="stemmer"):
        Analyzer(stemmer="klingon")
    with pytest.raises(ConfigError):
        Analyzer(token_pattern="(")
    with pytest.raises(ConfigError):
        Analyzer(compounds="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Analyzer().tokenize(b"bytes")  # type: ignore[arg-type]


def test_public_api():
    assert sorted(retrieve.__all__) == sorted(
        [
            "Analyzer", "BM25Index", "BM25Params", "BM25_FORMAT", "BM25_FORMAT_VERSION",
            "DEFAULT_TOKEN_PATTERN", "LUCENE_ENGLISH_STOPWORDS",
        ]
    )  # fmt: skip


# ---------------------------------------------------------------------- persistence


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_identical_scores(tokens, tmp_path, mmap):
    a, docs, queries = tokens["default"]
    index = BM25Index.from_token_lists(docs[:800], BM25Params(k1=1.2), analyzer=a)
    index.delete([3, 5])
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25", mmap=mmap)
    assert loaded.analyzer == a and loaded.params == BM25Params(k1=1.2)
    assert loaded.n_rows == 800 and loaded.n_docs == 798
    for q in queries[:50]:
        np.testing.assert_array_equal(loaded.scores(q), index.scores(q))
        for x, y in zip(loaded.search(q, 10), index.search(q, 10)):
            np.testing.assert_array_equal(x, y)
    # a memory-mapped index still takes changes (into new in-memory arrays)
    loaded.add(docs[800:900])
    fresh = BM25Index.from_token_lists(docs[:900], BM25Params(k1=1.2))
    fresh.delete([3, 5])
    np.testing.assert_allclose(loaded.scores(queries[0]), fresh.scores(queries[0]), atol=1e-9)


def test_loaded_index_looks_terms_up_without_a_dict(tmp_path):
    docs = [["b", "d"], ["d", "f", "f"], ["h"]]
    BM25Index.from_token_lists(docs).save(tmp_path)
    loaded = BM25Index.load(tmp_path)
    fresh = BM25Index.from_token_lists(docs)
    for q in (["a"], ["b"], ["c", "d"], ["f", "z"], ["h", "h"], [""], ["é"]):
        np.testing.assert_array_equal(loaded.scores(q), fresh.scores(q))
    assert loaded.idf("f") == fresh.idf("f") and loaded.idf("zz") == 0.0


def test_save_load_empty_index(tmp_path):
    index = BM25Index.from_token_lists([])
    index.save(tmp_path)
    loaded = BM25Index.load(tmp_path)
    assert loaded.n_rows == 0 and loaded.search(["x"])[0].size == 0
    loaded.add([["x", "y"], ["y"]])
    assert loaded.search(["x"])[0].tolist() == [0]


# ---------------------------------------------------------------------- add / delete


def test_add_delete_equal_fresh_build(tokens):
    _, docs, queries = tokens["nostop"]  # negative idfs: the epsilon floor moves too
    docs = docs[:1200]
    index = BM25Index.from_token_lists(docs[:700])
    assert index.add(docs[700:1000]).tolist() == list(range(700, 1000))
    index.add(iter(docs[1000:]))
    index.add([])
    rng = np.random.default_rng(1)
    deleted = rng.choice(len(docs), size=300, replace=False)
    assert index.delete(deleted) == 300
    assert index.delete(deleted[:10]) == 0  # idempotent
    alive = np.ones(len(docs), bool)
    alive[deleted] = False
    remaining = [d for d, keep in zip(docs, alive) if keep]
    oracle = rank_bm25.BM25Okapi(remaining)
    assert index.n_docs == len(remaining) and index.avgdl == pytest.approx(oracle.avgdl)
    for q in queries[:60]:
        got = index.scores(q)
        np.testing.assert_allclose(got[alive], oracle.get_scores(q), rtol=0, atol=1e-6)
        assert not got[~alive].any()
        rows, _ = index.search(q, k=50)
        assert alive[rows].all()
    # compaction renumbers rows and keeps scores
    old_rows = index.compact()
    np.testing.assert_array_equal(old_rows, np.flatnonzero(alive))
    fresh = BM25Index.from_token_lists(remaining)
    for q in queries[:20]:
        np.testing.assert_allclose(index.scores(q), fresh.scores(q), atol=1e-9)


def test_delete_drops_terms_from_average_idf():
    # "zeta" lives only in row 2; after deleting it, rank-bm25's mean idf has no "zeta"
    docs = [["the", "a"], ["the", "b"], ["the", "zeta"], ["c"]]
    index = BM25Index.from_token_lists(docs)
    index.delete([2])
    remaining = [docs[0], docs[1], docs[3]]
    oracle = rank_bm25.BM25Okapi(remaining)
    for q in (["the"], ["a", "the"], ["zeta"], ["c", "b"]):
        np.testing.assert_allclose(index.scores(q)[[0, 1, 3]], oracle.get_scores(q), atol=1e-12)
    assert index.idf("zeta") == 0.0


def test_failed_add_leaves_index_unchanged():
    index = BM25Index.from_token_lists([["a", "b"]])
    with pytest.raises(ConfigError):
        index.add([["new", "terms"], "oops"])
    assert index.n_terms == 2 and index.n_rows == 1
    index.add([["new"]])
    assert index.search(["new"])[0].tolist() == [1]


# ---------------------------------------------------------------------- corrupt files


@pytest.fixture
def saved(tmp_path) -> Path:
    docs = [["aspirin", "stroke"], ["stroke", "tpa"], ["aspirin"], ["statin", "stroke"]] * 5
    BM25Index.from_token_lists(docs, analyzer=Analyzer()).save(tmp_path / "bm25")
    return tmp_path / "bm25"


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("name", ["indices.npy", "weights.npy", "indptr.npy", "alive.npy"])
def test_truncated_array_is_index_format_error(saved, name, mmap):
    path = saved / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 9])
    with pytest.raises(IndexFormatError, match=name):
        BM25Index.load(saved, mmap=mmap)


@pytest.mark.parametrize(
    "name,content",
    [
        ("tf.npy", b"\x80\x04garbage that is not an npy file"),  # a pickle header
        ("doc_len.npy", b""),
        ("vocab.json", b"[\"aspirin\", "),
        ("vocab.json", b"[\"aspirin\"]"),
        ("bm25.json", b"{not json"),
    ],
)
def test_garbage_file_is_index_format_error(saved, name, content):
    (saved / name).write_bytes(content)
    with pytest.raises(IndexFormatError, match=name.replace(".", r"\.")):
        BM25Index.load(saved)


def test_wrong_dtype_or_values_are_index_format_errors(saved):
    np.save(saved / "weights.npy", np.zeros(10, np.float32))
    with pytest.raises(IndexFormatError, match="weights"):
        BM25Index.load(saved)


def test_out_of_range_rows_are_index_format_error(saved):
    ind = np.load(saved / "indices.npy")
    ind[-1] = 10_000
    np.save(saved / "indices.npy", ind)
    with pytest.raises(IndexFormatError, match="out of range"):
        BM25Index.load(saved)


def test_missing_files_and_versions(saved, tmp_path):
    with pytest.raises(IndexNotFoundError):
        BM25Index.load(tmp_path / "nowhere")
    (saved / "tf.npy").unlink()
    with pytest.raises(IndexFormatError, match="missing"):
        BM25Index.load(saved)
    meta = json.loads((saved / "bm25.json").read_text())
    (saved / "bm25.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(IndexVersionError):
        BM25Index.load(saved)
    (saved / "bm25.json").unlink()
    with pytest.raises(IndexNotFoundError):
        BM25Index.load(saved)
