"""Citation-grounded answers: the contract, abstention, generated answers verified
against a local chat-completions server with scripted (and adversarial) outputs, audit."""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import need_data

from medrag.answer import AnswerConfig, LexicalVerifier, OpenAIChatGenerator, answer
from medrag.answer.compose import compose_extractive
from medrag.answer.text import content_tokens
from medrag.audit import AuditLog, verify_audit_log
from medrag.errors import GenerationError
from medrag.index import Index, IndexConfig
from medrag.ingest import iter_pubmed
from medrag.ingest.pubmedqa import read_pubmedqa
from medrag.types import Answer, AnswerSentence


@pytest.fixture(scope="module")
def docs():
    return {d.id: d for d in iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml"))}


@pytest.fixture(scope="module")
def index(docs):
    return Index.build(list(docs.values()), IndexConfig(encoder=None))


Q_DOPAMINE = "Does dopamine modulate acute responses to cocaine and nicotine in Drosophila?"


def _check_contract(a: Answer, docs) -> None:
    if a.status == "abstained":
        assert a.abstain_reason and not a.sentences
        return
    assert a.sentences
    for s in a.sentences:
        assert s.citations
        for c in s.citations:
            assert docs[c.doc_id].text[c.start : c.end] == c.quote


def test_extractive_answer_cites_exact_spans(index, docs):
    a = answer(Q_DOPAMINE, index)
    assert a.status in ("answered", "partial"), a.abstain_reason
    _check_contract(a, docs)
    assert any(c.pmid == "10704411" for s in a.sentences for c in s.citations)
    # every sentence is an exact quote of its source
    assert all(s.text == s.citations[0].quote for s in a.sentences)
    assert len(a.sentences) <= AnswerConfig().max_sentences


def test_unrelated_question_abstains_with_reason(index, docs):
    a = answer("What is the Hawking temperature of a rotating black hole?", index)
    assert a.status == "abstained"
    assert "threshold" in a.abstain_reason or "no passage" in a.abstain_reason
    _check_contract(a, docs)


def test_only_retracted_evidence_abstains_and_says_so(index, docs):
    q = "Does miR-429 promote proliferation of non-small cell lung cancer cells by targeting DLC-1?"
    a = answer(q, index)
    assert all(not p.source.retracted for p in a.passages)
    assert a.status == "abstained" and "retracted" in a.abstain_reason
    from medrag.index import Filters

    b = answer(q, index, filters=Filters(include_retracted=True))
    assert b.answered and any(c.pmid == "27602157" for s in b.sentences for c in s.citations)


def test_threshold_is_the_callers(index):
    strict = answer(Q_DOPAMINE, index, config=AnswerConfig(threshold=0.9999))
    assert strict.status == "abstained" and "threshold" in strict.abstain_reason
    assert answer(Q_DOPAMINE, index, config=AnswerConfig(threshold=0.0)).answered


def test_answer_round_trips_and_renders(index):
    a = answer(Q_DOPAMINE, index)
    again = Answer.from_dict(json.loads(json.dumps(a.to_dict())))
    assert again == a
    md = a.to_markdown()
    assert "https://pubmed.ncbi.nlm.nih.gov/10704411/" in md and "[1]" in md
    h = a.to_html()
    assert "<ol>" in h and f"status: <b>{a.status}</b>; support {a.support:.2f}" in h
    no = answer(Q_DOPAMINE, index, config=AnswerConfig(threshold=0.9999))
    assert "status: <b>abstained</b>" in no.to_html() and "No answer." in no.to_html()


def test_answer_refuses_to_break_the_contract(index):
    a = answer(Q_DOPAMINE, index)
    s = a.sentences[0]
    c = s.citations[0]
    with pytest.raises(ValueError, match="citation"):
        dataclasses.replace(a, sentences=(AnswerSentence(text="Uncited.", citations=()),))
    with pytest.raises(ValueError, match="not among the passages"):
        dataclasses.replace(a, sentences=(dataclasses.replace(s, citations=(dataclasses.replace(c, chunk_id="pmid:1#0"),)),))
    with pytest.raises(ValueError, match="quote"):
        bad = dataclasses.replace(c, quote=c.quote.upper())
        dataclasses.replace(a, sentences=(dataclasses.replace(s, citations=(bad,)),))
    with pytest.raises(ValueError, match="reason"):
        dataclasses.replace(a, status="abstained", sentences=(), abstain_reason=None)
    with pytest.raises(ValueError):
        dataclasses.replace(a, status="answered", sentences=())


def test_no_passages_abstains():
    a = compose_extractive("anything", [], index_id="x")
    assert a.status == "abstained" and "no passage" in a.abstain_reason


# ------------------------------------------------------------------ verifier


def test_lexical_verifier_catches_doses_and_reversals():
    v = LexicalVerifier()
    passage = "Metformin 500 mg twice daily reduced HbA1c by 1.1% compared with placebo in 120 patients."
    assert v.verify("Metformin 500 mg twice daily reduced HbA1c by 1.1% compared with placebo.", passage).supported
    dose = v.verify("Metformin 850 mg twice daily reduced HbA1c by 1.1% compared with placebo.", passage)
    assert not dose.supported and "850" in dose.reason
    rev = v.verify("Metformin 500 mg twice daily increased HbA1c compared with placebo.", passage)
    assert not rev.supported and "direction" in rev.reason
    drug = v.verify("Sitagliptin 500 mg twice daily reduced HbA1c by 1.1% compared with placebo.", passage)
    assert not drug.supported
    neg = v.verify("Metformin did not reduce HbA1c compared with placebo.", passage)
    assert not neg.supported


# ------------------------------------------------------------------ generated answers


class _ChatServer:
    """A local chat-completions server that returns scripted outputs in turn."""

    def __init__(self, outputs):
        self.outputs = list(outputs)
        self.requests = []
        owner = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((self.path, dict(self.headers), body))
                if not owner.outputs:
                    self.send_error(500)
                    return
                out = owner.outputs.pop(0)
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": out}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def chat():
    servers = []

    def make(*outputs):
        s = _ChatServer(outputs)
        servers.append(s)
        return OpenAIChatGenerator(base_url=s.url, model="scripted", api_key="sk-test"), s

    yield make
    for s in servers:
        s.close()


def _gen_answer(index, gen):
    return answer(Q_DOPAMINE, index, generator=gen)


def test_generated_answer_verified_and_cited(index, docs, chat):
    a0 = answer(Q_DOPAMINE, index)
    first = next(i for i, p in enumerate(a0.passages, 1) if p.source.pmid == "10704411")
    good = (f"Dopamine plays a role in the responses of Drosophila to cocaine, nicotine or ethanol [{first}]. "
            f"Acute responses to cocaine and nicotine are blunted by reductions in dopamine levels [{first}].")
    gen, server = chat(good)
    a = _gen_answer(index, gen)
    assert a.status == "answered", (a.abstain_reason, a.removed)
    assert len(a.sentences) == 2 and not a.removed
    _check_contract(a, docs)
    assert a.generator == "openai-chat:scripted" and a.prompt_id.startswith("medrag-cite-v1:")
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
    assert "[1]" in body["messages"][1]["content"] and Q_DOPAMINE in body["messages"][1]["content"]


def test_adversarial_generated_sentences_are_removed(index, docs, chat):
    a0 = answer(Q_DOPAMINE, index)
    n = next(i for i, p in enumerate(a0.passages, 1) if p.source.pmid == "10704411")
    script = (
        f"Dopamine plays a role in the responses of Drosophila to cocaine, nicotine or ethanol [{n}]. "
        "Flies given dopamine agonists live longer. "  # uncited
        f"Cocaine and nicotine showed a high degree of synergy in their effects [{len(a0.passages) + 7}]. "  # out of range
        f"Acute responses to cocaine were blunted by 50 mg/kg of dopamine [{n}]. "  # hallucinated dose
        f"Acute responses to cocaine and nicotine are increased by reductions in dopamine levels [{n}]."  # reversed
    )
    gen, _ = chat(script)
    a = _gen_answer(index, gen)
    assert a.status == "partial"
    assert [s.text for s in a.sentences] == [
        "Dopamine plays a role in the responses of Drosophila to cocaine, nicotine or ethanol."
    ]
    reasons = [r.reason for r in a.removed]
    assert len(reasons) == 4
    assert reasons[0] == "cites no passage"
    assert "not given" in reasons[1]
    assert "50" in reasons[2]
    assert "direction" in reasons[3] or "negat" in reasons[3]
    _check_contract(a, docs)


def test_nothing_supported_abstains(index, chat):
    gen, _ = chat("Dopamine cures Drosophila addiction with 20 mg of haloperidol [1]. It is safe.")
    a = _gen_answer(index, gen)
    assert a.status == "abstained" and "supported" in a.abstain_reason and a.removed


def test_generator_says_insufficient(index, chat):
    gen, _ = chat("INSUFFICIENT EVIDENCE")
    assert _gen_answer(index, gen).status == "abstained"


def test_generator_failure_is_a_generation_error(index, chat):
    gen, server = chat()  # the server answers HTTP 500
    with pytest.raises(GenerationError, match="500"):
        _gen_answer(index, gen)


def test_nothing_is_sent_without_a_generator(index, monkeypatch):
    import socket

    calls = []
    monkeypatch.setattr(socket.socket, "connect", lambda *a: calls.append(a))
    answer(Q_DOPAMINE, index)
    assert calls == []


# ------------------------------------------------------------------ audit trail


def test_audit_trail_hash_chain(index, tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    a = answer(Q_DOPAMINE, index, audit=log)
    b = answer("What is the Hawking temperature of a rotating black hole?", index, audit=log)
    entries = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [e["status"] for e in entries] == [a.status, b.status]
    assert entries[0]["question"] == Q_DOPAMINE and entries[0]["sentences"][0]["citations"]
    assert entries[1]["abstain_reason"] == b.abstain_reason
    log.review(entries[0]["hash"], "edit", reviewer="dr-x", reason="tighter wording", sentence=0, new_text="x")
    assert verify_audit_log(tmp_path / "audit.jsonl").ok

    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    edited = json.loads(lines[0])
    edited["status"] = "answered" if edited["status"] != "answered" else "partial"
    (tmp_path / "edited.jsonl").write_text("\n".join([json.dumps(edited)] + lines[1:]) + "\n")
    res = verify_audit_log(tmp_path / "edited.jsonl")
    assert not res.ok and "line 1" in res.problems[0]
    (tmp_path / "deleted.jsonl").write_text("\n".join([lines[0], lines[2]]) + "\n")
    res = verify_audit_log(tmp_path / "deleted.jsonl")
    assert not res.ok and any("line 2" in p for p in res.problems)


def test_audit_redaction(index, tmp_path):
    log = AuditLog(tmp_path / "a.jsonl", redact_question=True)
    answer(Q_DOPAMINE, index, audit=log)
    text = (tmp_path / "a.jsonl").read_text()
    assert Q_DOPAMINE not in text and "question_sha256" in text
    assert verify_audit_log(tmp_path / "a.jsonl").ok


def test_support_standout_features_on_real_passages(index, docs):
    """The standout features (issue 12) computed by hand from the retrieved passages'
    scores; the own abstract stands out, and support drops once it is deleted."""
    from medrag.answer.support import FEATURES, passage_features, standout, support_features, support_of
    from medrag.answer.text import content_tokens

    passages = index.search(Q_DOPAMINE, k=AnswerConfig().k)
    top = passages[0]
    assert top.chunk.doc_id == "pmid:10704411"
    others = [p for p in passages if p.chunk.doc_id != top.chunk.doc_id]
    assert others
    gap, r_top, r_mean = standout(top, passages)
    assert gap == pytest.approx(top.score - sum(p.score for p in others) / len(others))
    assert r_top == pytest.approx(max(p.scores["bm25"] for p in others) / top.scores["bm25"])
    assert r_mean == pytest.approx(sum(p.scores["bm25"] for p in others) / len(others) / top.scores["bm25"])
    assert 0 < r_mean <= r_top < 1  # ahead of every other document
    # a lower-ranked passage does not stand out: a ratio above 1, a negative gap
    low = standout(passages[-1], passages)
    assert low[0] < 0 and low[1] > 1
    # alone, the others count as 0
    assert standout(top, [top]) == (top.score, 0.0, 0.0)
    weights = index.term_weights(sorted(set(content_tokens(Q_DOPAMINE))))
    f = support_features(Q_DOPAMINE, top, passages, weights)
    assert len(f) == len(FEATURES) and f[:4] == passage_features(Q_DOPAMINE, top, weights)
    config = AnswerConfig()
    s_own, best = support_of(Q_DOPAMINE, passages, config, weights)
    assert best is top
    try:
        index.delete(["pmid:10704411"])
        without = index.search(Q_DOPAMINE, k=config.k)
        s_without, _ = support_of(Q_DOPAMINE, without, config, index.term_weights(sorted(set(content_tokens(Q_DOPAMINE)))))
    finally:
        index.add([docs["pmid:10704411"]])
    assert s_without < s_own


def test_support_model_reads_short_feature_vectors():
    """Four passage features (the 0.1 vector) score as a full vector with the standout
    features at 0, and the standout weights change the score of a full one."""
    from medrag.answer import SupportModel

    m = SupportModel()
    four = (0.6, 0.5, 0.4, 0.5)
    assert m.logit(four) == pytest.approx(m.logit(four + (0.0, 0.0, 0.0)))
    assert m.logit(four, has_dense=False) == pytest.approx(m.logit(four + (0.0, 0.0, 0.0), has_dense=False))
    assert m.logit(four + (0.3, 0.0, 0.0)) == pytest.approx(m.logit(four) + 0.3 * m.w_fused_gap)
    assert m.logit(four + (0.0, 0.8, 0.5), has_dense=False) == pytest.approx(
        m.logit(four, has_dense=False) + 0.8 * m.lex_w_bm25_ratio_top + 0.5 * m.lex_w_bm25_ratio_mean)


# ------------------------------------------------ PubMedQA: answers with the own abstract, abstains without

PUBMEDQA_N = 100  # the first 100 real dev questions: ~10 s on a loaded 2-core machine


@pytest.fixture(scope="module")
def pubmedqa():
    """A lexical-only index of the 500 real PubMedQA PQA-L dev abstracts (no titles: the
    question is usually the title), built as ``benchmarks/bench_answer.py`` builds it (``read_pubmedqa``)."""
    docs, questions = read_pubmedqa(need_data("pubmedqa", "pqal_dev.json"))
    return Index.build(docs, IndexConfig(encoder=None)), {d.id: d for d in docs}, questions[:PUBMEDQA_N]


def _own_abstract_protocol(index, docs, questions) -> tuple[int, int]:
    """(answers citing their own abstract, abstentions once it is deleted), default config."""
    cites_own = abstained = 0
    for pmid, q in questions:
        own = f"pmid:{pmid}"
        a = answer(q, index)
        cites_own += a.answered and any(c.doc_id == own for s in a.sentences for c in s.citations)
        index.delete([own])
        try:
            u = answer(q, index)
        finally:
            index.add([docs[own]])
        abstained += not u.answered
        if not u.answered:
            assert u.abstain_reason and not u.sentences
    return cites_own, abstained


def test_pubmedqa_answers_citing_own_abstract_and_abstains_without_it(pubmedqa):
    """The bench_answer protocol (issue 12) on real questions, default config: asked with
    its own abstract in the index an answer quotes that abstract; asked again with the
    abstract deleted it abstains. On these 100 questions at threshold 0.50 the shipped
    lexical weights give 95% answered citing own and 92% abstained (the whole dev set:
    see the README); the floors leave room for small changes, not for a broken support
    model (abstaining on everything, or on nothing, fails one of them)."""
    index, docs, questions = pubmedqa
    cites_own, abstained = _own_abstract_protocol(index, docs, questions)
    n = len(questions)
    assert cites_own / n >= 0.85, f"answered citing own abstract {cites_own}/{n}"
    assert abstained / n >= 0.85, f"abstained without it {abstained}/{n}"


def test_answer_quotes_the_passage_whose_support_it_reports(pubmedqa):
    """An extractive answer quotes the document of the passage that gives its support
    (``support_of``): the support it reports is that passage's, so an answer quoting
    only other documents would cite evidence the support never vouched for. (A passage
    with no unit reaching ``min_sentence_coverage`` cannot be quoted.)"""
    from medrag.answer.select import candidates
    from medrag.answer.support import support_of

    index, _, questions = pubmedqa
    config = AnswerConfig(threshold=0.0)
    answered = 0
    for _, q in questions:
        passages = index.search(q, k=config.k)
        weights = index.term_weights(sorted(set(content_tokens(q))))
        a = compose_extractive(q, passages, config=config, term_weights=weights)
        if not a.answered:
            continue
        answered += 1
        support, best = support_of(q, passages, config, weights)
        assert a.support == pytest.approx(support, abs=1e-4)
        cited = {c.doc_id for s in a.sentences for c in s.citations}
        quotable = [c for c in candidates([best], sorted(set(content_tokens(q))))
                    if c.coverage >= config.min_sentence_coverage]
        assert best.chunk.doc_id in cited or not quotable, (q, best.chunk.doc_id, cited)
    assert answered >= 90


@pytest.fixture(scope="module")
def pubmedqa_hybrid(pubmedqa, minilm):
    """A hybrid index (BM25 + the packaged MiniLM, loaded once per session by conftest)
    of the first 40 real PubMedQA abstracts (a few seconds of encoding)."""
    from medrag.retrieve.dense import EncoderConfig

    _, docs, questions = pubmedqa
    questions = questions[:40]
    own = [docs[f"pmid:{pmid}"] for pmid, _ in questions]
    index = Index.build(own, IndexConfig(encoder=EncoderConfig()), encoder=minilm)
    return index, {d.id: d for d in own}, questions


def test_dense_margin_on_a_real_hybrid_index(pubmedqa_hybrid):
    """The dense margin (issue 12) by hand from real MiniLM scores: the own abstract is
    nearer to its question than any other document; the best passage left once it is
    deleted has a smaller margin, and support drops."""
    from medrag.answer.support import FEATURES, dense_margin, support_features, support_of

    index, docs, questions = pubmedqa_hybrid
    config = AnswerConfig()
    margins_own, margins_left, n = [], [], 0
    for pmid, q in questions[:20]:
        own = f"pmid:{pmid}"
        passages = index.search(q, k=config.k)
        mine = [p for p in passages if p.chunk.doc_id == own]
        if not mine:
            continue
        n += 1
        p = mine[0]
        others = [o.scores["dense"] for o in passages if o.chunk.doc_id != own]
        assert dense_margin(p, passages) == pytest.approx(p.scores["dense"] - max(others))
        f = support_features(q, p, passages, None)
        assert len(f) == len(FEATURES) and f[FEATURES.index("dense_margin")] == dense_margin(p, passages)
        margins_own.append(dense_margin(p, passages))
        s_own, _ = support_of(q, passages, config)
        index.delete([own])
        try:
            left = index.search(q, k=config.k)
            s_left, best = support_of(q, left, config)
            margins_left.append(dense_margin(best, left))
        finally:
            index.add([docs[own]])
        assert s_left < s_own or s_own < 0.5, q
    assert n >= 18
    assert sum(m > 0 for m in margins_own) >= 0.9 * n
    assert sum(margins_own) / n > sum(margins_left) / n


def test_pubmedqa_hybrid_answers_citing_own_and_abstains_without(pubmedqa_hybrid):
    """The bench_answer protocol on a real hybrid index of 40 abstracts with the shipped
    hybrid support weights (fit with 18,444 distractors) at the default threshold:
    39/40 answered citing own and 40/40 abstained measured (a small corpus is the easy
    case; the README has the 18,940-document figures); the floors catch a support model
    that answers, or abstains on, everything."""
    index, docs, questions = pubmedqa_hybrid
    cites_own, abstained = _own_abstract_protocol(index, docs, questions)
    n = len(questions)
    assert cites_own / n >= 0.85, f"answered citing own abstract {cites_own}/{n}"
    assert abstained / n >= 0.80, f"abstained without it {abstained}/{n}"
