"""The cross-encoder evidence reranker (medrag.answer.rerank, issue 12): the packaged
MiniLM read as a cross-encoder, the shipped adapters over it, the base-model check, and
the reranker on text it was never fit on (PubMedQA questions over their own abstracts)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need_data
from test_evidence_heldout import FINDINGS, _role

from medrag.answer import AnswerConfig
from medrag.errors import ConfigError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def base():
    from medrag.answer.rerank import base_model_dir
    from medrag.errors import MissingDependencyError

    try:
        return base_model_dir()
    except MissingDependencyError as exc:
        pytest.skip(f"the packaged MiniLM model is not installed: {exc}")


@pytest.fixture(scope="module")
def reranker(base):
    from medrag.answer.rerank import cross_reranker

    rr = cross_reranker()
    if rr is None:
        pytest.skip("no reranker weights shipped (src/medrag/answer/data/evidence_cross.json)")
    return rr


def _scifact_pairs(n: int):
    import json

    path = need_data("scifact", "original_corpus.jsonl")
    pairs = []
    for line in open(path, encoding="utf-8"):
        rec = json.loads(line)
        pairs.append((rec["title"], rec["abstract"][len(pairs) % max(1, len(rec["abstract"]))]))
        if len(pairs) == n:
            break
    return pairs


def test_layer_forward_is_the_models_own_forward(base):
    """The benchmark fits the top layers from cached lower-layer states with
    rerank.layer_forward: it must compute what the transformers model computes."""
    from transformers import AutoModel, AutoTokenizer

    from medrag.answer.rerank import additive_mask, layer_forward

    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModel.from_pretrained(str(base)).eval()
    pairs = _scifact_pairs(6)
    enc = tok([a for a, _ in pairs], [b for _, b in pairs], truncation="only_second", max_length=128,
              padding=True, return_tensors="pt")
    with torch.inference_mode():
        ref = model(**enc).last_hidden_state
        h = model.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
        madd = additive_mask(enc["attention_mask"], h.dtype)
        for layer in model.encoder.layer:
            h = layer_forward(layer, h, madd)
    real = enc["attention_mask"].bool()
    assert real.sum() > 100 and (~real).sum() > 0  # padding is there, and masked
    assert float((ref - h)[real].abs().max()) < 1e-4


def test_another_base_model_is_refused(tmp_path, base):
    from medrag.answer.rerank import _DATA, CrossReranker

    if not (_DATA / "evidence_cross.json").exists():
        pytest.skip("no reranker weights shipped")
    (tmp_path / "model.safetensors").write_bytes(b"not the packaged MiniLM")
    with pytest.raises(ConfigError, match="sha256"):
        CrossReranker(model_dir=tmp_path)


N_QUESTIONS = 24
def _finding_first(reranker, n: int):
    """PubMedQA questions over their own abstract (long answer as CONCLUSIONS; text the
    reranker was never fit on): how often the unit the cross-encoder alone ranks first is
    a finding, against MiniLM's question-sentence cosine; and the reranker's own pick."""
    from medrag.answer.select import candidates
    from medrag.answer.text import content_tokens
    from medrag.index import Index, IndexConfig
    from medrag.ingest.pubmedqa import read_pubmedqa
    from medrag.retrieve.dense import EncoderConfig, SentenceTransformerEncoder

    docs, questions = read_pubmedqa(need_data("pubmedqa", "pqal_dev.json"), long_answer=True)
    index = Index.build(docs[:n], IndexConfig(encoder=None))
    enc = SentenceTransformerEncoder(EncoderConfig())
    cross = cosine = m = 0
    for pmid, question in questions[:n]:
        passages = [p for p in index.search(question, k=8) if p.chunk.doc_id == f"pmid:{pmid}"]
        if not passages:
            continue
        pool = candidates(passages, sorted(set(content_tokens(question))))
        roles = [_role(c.section or "") for c in pool]
        if not any(r in FINDINGS for r in roles) or all(r in FINDINGS for r in roles):
            continue
        texts = [c.text for c in pool]
        z = reranker.logits(question, texts)
        sims = enc.encode_documents(texts) @ enc.encode_queries([question])[0]
        m += 1
        cross += roles[int(np.argmax(z))] in FINDINGS
        cosine += roles[int(np.argmax(sims))] in FINDINGS
    return cross / max(m, 1), cosine / max(m, 1), m
