"""Generated answers: citations read as real models write them, and the generator
contract (None, bytes, raising, hanging, huge output) ending in a clear error or an
abstention, never in an unverified sentence. Real passages from a real (lexical) index;
the generators are the input under test, so they are plain callables."""

from __future__ import annotations

import time

import pytest

from medrag.answer import AnswerConfig, OpenAIChatGenerator
from medrag.answer.citeparse import parse_citations, split_cited
from medrag.answer.generated import build_prompt, compose_generated, prompt_id
from medrag.errors import ConfigError, GenerationError
from medrag.index import Index, IndexConfig
from medrag.types import Document, Section, SourceFile

SALT = (
    "WHO recommends that adults consume less than 5 g of salt per day. "
    "High salt intake raises blood pressure and increases the risk of stroke. "
    "Reducing salt intake lowers blood pressure in adults with hypertension."
)
POTASSIUM = (
    "Potassium intake of at least 3.5 g per day is recommended for adults. "
    "Higher potassium intake reduces blood pressure in adults."
)
Q = "How much salt should adults consume per day, and does salt intake raise blood pressure and stroke risk?"


def _doc(i: int, title: str, text: str) -> Document:
    return Document(
        id=f"pmid:{9000 + i}", kind="text", title=title, text=text,
        sections=(Section(kind="abstract", label=None, start=0, end=len(text)),),
        source=SourceFile(path="tests/generated", sha256="0" * 64),
    )


@pytest.fixture(scope="module")
def passages():
    idx = Index.build([_doc(1, "Salt and stroke", SALT), _doc(2, "Potassium", POTASSIUM)], IndexConfig(encoder=None))
    ps = idx.search(Q, k=2)
    assert [p.chunk.doc_id for p in ps][:1] == ["pmid:9001"]
    return ps


CFG = AnswerConfig(threshold=0.05)


class Scripted:
    """A generator that returns a fixed output (or raises / sleeps), like a model would."""

    def __init__(self, output=None, *, exc: BaseException | None = None, sleep: float = 0.0) -> None:
        self.output, self.exc, self.sleep = output, exc, sleep
        self.calls: list = []

    name = "scripted"

    def generate(self, messages):
        self.calls.append(messages)
        if self.sleep:
            time.sleep(self.sleep)
        if self.exc is not None:
            raise self.exc
        return self.output


def _answer(passages, output, **kw):
    return compose_generated(Q, passages, Scripted(output), config=CFG, **kw)


# ------------------------------------------------------------------ citation styles

@pytest.mark.parametrize(
    "output, expected",
    [
        ("Salt is bad [1]. Potassium helps [2].", [("Salt is bad.", [1]), ("Potassium helps.", [2])]),
        ("Salt is bad. [1] Potassium helps. [2]", [("Salt is bad.", [1]), ("Potassium helps.", [2])]),
        ("Salt is bad.[1][2] Potassium helps.[2]", [("Salt is bad.", [1, 2]), ("Potassium helps.", [2])]),
        ("Salt is bad [1, 2]. Both help [1-3].", [("Salt is bad.", [1, 2]), ("Both help.", [1, 2, 3])]),
        ("Salt is bad [1–2]; see also [3; 4].", [("Salt is bad; see also.", [1, 2, 3, 4])]),
        ("Salt is bad (1). Potassium helps (2).", [("Salt is bad.", [1]), ("Potassium helps.", [2])]),
        ("Salt is bad [Passage 1]. Potassium helps [passages 1 and 2].",
         [("Salt is bad.", [1]), ("Potassium helps.", [1, 2])]),
        ("Salt is bad.¹ Potassium helps².", [("Salt is bad.", [1]), ("Potassium helps.", [2])]),
        ("Salt is bad[^1].\n\n[^1]: Salt and stroke (2020)", [("Salt is bad.", [1])]),
        ("Salt is bad [1].\n\nReferences:\n[1] Salt and stroke. 2020.", [("Salt is bad.", [1])]),
        ("- Salt is bad [1]\n- Potassium helps [2]", [("Salt is bad", [1]), ("Potassium helps", [2])]),
        ("Salt is bad.\n[1]\nPotassium helps [2].", [("Salt is bad.", [1]), ("Potassium helps.", [2])]),
        ("**Answer:** Salt is bad [1].", [("Salt is bad.", [1])]),
        ("Yes. Salt is bad [1].", [("Yes.", []), ("Salt is bad.", [1])]),
    ],
)
def test_citation_styles(output, expected):
    assert split_cited(output) == expected


def test_numbers_in_text_are_not_citations():
    # a year in parentheses, a type number mid-sentence, a dose: text, not citations
    assert split_cited("In 2019 (2019) type (2) diabetes rose by 5 mg [1].") == [
        ("In 2019 (2019) type (2) diabetes rose by 5 mg.", [1])
    ]
    assert parse_citations("no citation here (95% CI 1.2-3.4)") == ("no citation here (95% CI 1.2-3.4)", [])


def test_wide_range_is_not_expanded():
    assert split_cited("Claim [3-250].") == [("Claim.", [3, 250])]


def test_sentence_cited_after_its_period_is_kept(passages):
    """The most common style of real models: '... per day. [1]' (issue 13: 0 of 52 kept)."""
    sents = [SALT.split(". ")[0] + ".", "High salt intake raises blood pressure and increases the risk of stroke."]
    out = " ".join(f"{s} [1]" for s in sents).replace(". [1]", ". [1]")
    after = " ".join(f"{s} [1]" for s in sents)  # '... day. [1] High ...'
    assert ". [1]" in after
    a = _answer(passages, after)
    assert a.status == "answered", a.removed
    assert [s.text for s in a.sentences] == sents
    assert all(c.doc_id == "pmid:9001" for s in a.sentences for c in s.citations)
    assert out == after


def test_missing_citation_removes_the_sentence_with_a_reason(passages):
    a = _answer(passages, "Adults should consume less than 5 g of salt per day. High salt intake raises blood pressure [1].")
    assert a.status == "partial"
    assert [r.reason for r in a.removed] == ["cites no passage"]
    assert [s.text for s in a.sentences] == ["High salt intake raises blood pressure."]


def test_issue13_salt_sentences(passages):
    """Kept: 'less than 5 g' (a bound, not a negation). Removed: the reversed claim."""
    a = _answer(passages, "Adults should keep salt intake to less than 5 g per day. [1] "
                          "Keeping salt intake low increases the risk of stroke. [1]")
    assert [s.text for s in a.sentences] == ["Adults should keep salt intake to less than 5 g per day."]
    assert len(a.removed) == 1 and "direction" in a.removed[0].reason


def test_multi_citation_scores_each_passage(passages):
    a = _answer(passages, "Reducing salt intake lowers blood pressure in adults [1, 2].")
    assert a.status == "answered", a.removed
    assert [c.doc_id for c in a.sentences[0].citations] == ["pmid:9001", "pmid:9002"]


# ------------------------------------------------------------------ generator contract

@pytest.mark.parametrize(
    "gen, match",
    [
        (Scripted(None), "nothing"),
        (Scripted(b"Salt is bad [1]."), "bytes"),
        (Scripted(["Salt is bad [1]."]), "list"),
        (Scripted(exc=RuntimeError("CUDA out of memory")), "RuntimeError: CUDA out of memory"),
        (Scripted(exc=KeyError("choices")), "KeyError"),
        (Scripted(exc=OSError("connection reset")), "connection reset"),
    ],
)
def test_bad_generator_output_is_a_generation_error(passages, gen, match):
    with pytest.raises(GenerationError, match=match):
        compose_generated(Q, passages, gen, config=CFG)


def test_bad_generator_output_can_abstain_with_the_reason(passages):
    a = compose_generated(Q, passages, Scripted(None), config=CFG, on_error="abstain")
    assert a.status == "abstained" and not a.sentences
    assert "generation failed" in a.abstain_reason and "nothing" in a.abstain_reason
    assert a.generator == "scripted" and a.prompt_id.startswith("medrag-cite-v1:")


def test_hanging_generator_is_bounded(passages):
    t0 = time.monotonic()
    with pytest.raises(GenerationError, match="within 0.5 s"):
        compose_generated(Q, passages, Scripted("x [1].", sleep=30), config=CFG, timeout=0.5)
    assert time.monotonic() - t0 < 3.0


def test_huge_output_is_refused_fast(passages):
    """Issue 11: verifying a 10 MB output took 296 s."""
    huge = "High salt intake raises blood pressure [1]. " * 250_000  # 11 MB
    t0 = time.monotonic()
    a = compose_generated(Q, passages, Scripted(huge), config=CFG, on_error="abstain")
    assert time.monotonic() - t0 < 2.0
    assert a.status == "abstained" and "over the cap" in a.abstain_reason


def test_settings_are_checked(passages):
    for kw in ({"on_error": "ignore"}, {"timeout": -1}, {"max_output_chars": 0}):
        with pytest.raises(ConfigError):
            compose_generated(Q, passages, Scripted("x"), config=CFG, **kw)
    with pytest.raises(ConfigError):
        OpenAIChatGenerator(base_url="http://127.0.0.1:9/v1", model="m", timeout=0)


def test_unreachable_endpoint_is_a_clear_error_in_bounded_time(passages):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = OpenAIChatGenerator(base_url=f"http://127.0.0.1:{port}/v1", model="m", retries=1, backoff=0.05, timeout=2)
    t0 = time.monotonic()
    with pytest.raises(GenerationError, match=f"127.0.0.1:{port}"):
        compose_generated(Q, passages, gen, config=CFG)
    assert time.monotonic() - t0 < 5.0


def test_prompt_instruction_changes_the_prompt_id(passages):
    a, b = build_prompt(Q, passages), build_prompt(Q, passages, "Begin with Yes, No or Maybe.")
    assert b[0]["content"].endswith("Begin with Yes, No or Maybe.")
    assert prompt_id(a) != prompt_id(b)
    assert "[1] Salt and stroke" in a[1]["content"]


def test_answer_prompt_versions_are_selectable_and_named_in_the_prompt_id(passages):
    from medrag.answer.generated import CITE_PROMPTS

    v1, v2 = build_prompt(Q, passages), build_prompt(Q, passages, "Begin with Yes.", prompt="medrag-cite-v2")
    assert v2[0]["content"] == CITE_PROMPTS["medrag-cite-v2"] + " Begin with Yes." and v1[1] == v2[1]
    assert prompt_id(v1).startswith("medrag-cite-v1:") and prompt_id(v2).startswith("medrag-cite-v2:")
    with pytest.raises(ConfigError, match="unknown answer prompt"):
        build_prompt(Q, passages, prompt="medrag-cite-v0")
    a = compose_generated(Q, passages, Scripted("Salt raises blood pressure [1]."), config=CFG, prompt="medrag-cite-v2")
    assert a.prompt_id.startswith("medrag-cite-v2:")


def test_model_file_with_wrong_sha256_is_refused(tmp_path):
    import hashlib

    from medrag.answer.local_llm import LlamaServer, verify_model_file

    f = tmp_path / "model.gguf"
    f.write_bytes(b"GGUF" + b"\0" * 1000)
    good = hashlib.sha256(f.read_bytes()).hexdigest()
    assert verify_model_file(f, good, 1004) == f
    with pytest.raises(ConfigError, match="sha256"):
        verify_model_file(f, "0" * 64)
    with pytest.raises(ConfigError, match="1004 bytes, expected 5"):
        verify_model_file(f, good, 5)
    with pytest.raises(ConfigError, match="sha256"):
        LlamaServer(f, sha256="1" * 64)  # refused before llama.cpp is touched
    with pytest.raises(ConfigError, match="not found"):
        LlamaServer(tmp_path / "missing.gguf")


def test_answer_abstains_on_generation_error_when_asked(passages):
    from medrag.answer import answer

    idx = Index.build([_doc(1, "Salt and stroke", SALT), _doc(2, "Potassium", POTASSIUM)], IndexConfig(encoder=None))
    a = answer(Q, idx, config=CFG, generator=Scripted(exc=RuntimeError("boom")), on_generation_error="abstain")
    assert a.status == "abstained" and "RuntimeError: boom" in a.abstain_reason
    with pytest.raises(GenerationError, match="boom"):
        answer(Q, idx, config=CFG, generator=Scripted(exc=RuntimeError("boom")))


def test_heading_style_blocks_cite_their_heading():
    """Small models echo the prompt's '[n] Title' blocks: the title is no claim, and the
    block's sentences cite n (what the 0.5B test model writes)."""
    out = ("[1] Salt and stroke\nWHO recommends less than 5 g of salt per day. Salt raises blood pressure.\n\n"
           "[2] Potassium\nPotassium helps [1].\n\nIn short, eat less salt.")
    assert split_cited(out) == [
        ("WHO recommends less than 5 g of salt per day.", [1]),
        ("Salt raises blood pressure.", [1]),
        ("Potassium helps.", [1]),  # its own citation wins
        ("In short, eat less salt.", []),  # after the blank line: no longer in a block
    ]


def test_answer_takes_the_generation_prompt_and_records_it(tmp_path):
    """answer(prompt=...) reaches the generator and is named in the answer's prompt_id
    and in the audit record; a prompt without a generator, or an unknown one, is a
    ConfigError before anything is retrieved or generated."""
    import json

    from medrag.answer import answer
    from medrag.answer.generated import CITE_PROMPTS
    from medrag.audit import AuditLog

    idx = Index.build([_doc(1, "Salt and stroke", SALT), _doc(2, "Potassium", POTASSIUM)], IndexConfig(encoder=None))
    log = AuditLog(tmp_path / "audit.jsonl")
    gen = Scripted("High salt intake raises blood pressure [1].")
    a = answer(Q, idx, config=CFG, generator=gen, prompt="medrag-cite-v2", audit=log)
    assert gen.calls[-1][0]["content"] == CITE_PROMPTS["medrag-cite-v2"]
    assert a.prompt_id.startswith("medrag-cite-v2:") and a.sentences
    entry = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["prompt_id"] == a.prompt_id
    default = answer(Q, idx, config=CFG, generator=Scripted("High salt intake raises blood pressure [1]."))
    assert default.prompt_id.startswith("medrag-cite-v1:")
    unused = Scripted("never asked")
    with pytest.raises(ConfigError, match="unknown answer prompt 'medrag-cite-v0'"):
        answer(Q, idx, config=CFG, generator=unused, prompt="medrag-cite-v0")
    with pytest.raises(ConfigError, match="needs a generator"):
        answer(Q, idx, config=CFG, prompt="medrag-cite-v2")
    assert unused.calls == []


def test_cli_ask_answer_prompt_reaches_the_endpoint(tmp_path, capsys):
    """medrag ask --answer-prompt: the chosen system prompt is what a real HTTP
    chat-completions server on 127.0.0.1 receives, and the answer names it."""
    import json

    from conftest import ChatServer

    from medrag.answer.generated import CITE_PROMPTS
    from medrag.cli import main

    Index.build([_doc(1, "Salt and stroke", SALT), _doc(2, "Potassium", POTASSIUM)],
                IndexConfig(encoder=None)).save(tmp_path / "idx")
    base = ["ask", "--index", str(tmp_path / "idx"), Q, "--json", "--threshold", "0.05"]
    with ChatServer("High salt intake raises blood pressure [1].") as srv:
        code = main(base + ["--generator", "openai", "--llm-url", srv.url, "--llm-model", "scripted",
                            "--answer-prompt", "medrag-cite-v2"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert srv.seen and srv.seen[0]["messages"][0]["content"] == CITE_PROMPTS["medrag-cite-v2"]
    assert json.loads(out.out)["prompt_id"].startswith("medrag-cite-v2:")
    assert main(base + ["--answer-prompt", "medrag-cite-v2"]) != 0
    assert "need(s) --generator" in capsys.readouterr().err
