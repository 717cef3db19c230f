"""The lexical checks: right where they are used as hard constraints (numbers, units,
bounds, direction of effect, real negations), and the Verifier plumbing."""

from __future__ import annotations

import pytest

from medrag.answer.verify import LexicalVerifier, Verdict, hard_constraints, verify_pairs
from medrag.errors import GenerationError

SALT = (
    "WHO recommends that adults consume less than 5 g of salt per day. "
    "High salt intake raises blood pressure and increases the risk of stroke. "
    "Reducing salt intake lowers blood pressure in adults with hypertension. "
    "Salt substitutes did not increase the risk of hyperkalaemia."
)
V = LexicalVerifier()


@pytest.mark.parametrize(
    "claim",
    [
        "Adults should keep salt intake to less than 5 g per day.",  # 'less than' is a bound
        "High salt intake increases the risk of stroke.",
        "Low salt intake reduces the risk of stroke.",  # (-)(-) = (+), as 'high ... increases'
        "Reducing salt intake lowers blood pressure.",
        "Salt substitutes did not increase the risk of hyperkalaemia.",
        "High salt intake raises blood pressure.",
    ],
)
def test_supported_claims_pass(claim):
    v = V.verify(claim, SALT)
    assert v.supported, v.reason
    assert hard_constraints(claim, SALT) is None


@pytest.mark.parametrize(
    "claim, why",
    [
        ("Keeping salt intake low increases the risk of stroke.", "direction"),  # issue 13
        ("High salt intake decreases the risk of stroke.", "direction"),
        ("Reducing salt intake raises blood pressure.", "direction"),
        ("Low salt intake raises blood pressure.", "direction"),
        ("Salt substitutes increased the risk of hyperkalaemia.", "negation"),
        ("High salt intake does not increase the risk of stroke.", "negat"),
        ("Adults should consume less than 5 mg of salt per day.", "5 mg"),  # unit
        ("Adults should consume more than 5 g of salt per day.", "more than 5"),  # bound
        ("Adults should consume less than 6 g of salt per day.", "6"),  # number
    ],
)
def test_contradicted_claims_fail(claim, why):
    v = V.verify(claim, SALT)
    assert not v.supported
    assert why in v.reason
    reason = hard_constraints(claim, SALT)
    assert reason is not None and why in reason


def test_hard_constraints_allow_paraphrase_but_lexical_does_not():
    claim = "Eating a lot of sodium chloride makes strokes likelier."
    assert hard_constraints(claim, SALT) is None  # no number, direction or negation conflict
    assert not V.verify(claim, SALT).supported  # but the lexical verifier wants the words


def test_units_and_bounds_from_real_abstract_style():
    p = "Patients received 2.5 mg/kg of the drug for at least 12 weeks; 71% improved (p < 0.05)."
    assert hard_constraints("Patients received 2.5 mg/kg for at least 12 weeks.", p) is None
    assert "2.5 mg" in hard_constraints("Patients received 2.5 mg of the drug.", p)
    assert "12" in hard_constraints("Patients were treated for at most 12 weeks.", p)
    assert hard_constraints("71% of patients improved.", p) is None
    assert "70%" in hard_constraints("70% of patients improved.", p)


def test_verify_pairs_batches_and_wraps_failures():
    class Batched:
        name = "batched"

        def __init__(self):
            self.batches = []

        def verify(self, s, p):
            raise AssertionError("verify_batch should be used")

        def verify_batch(self, pairs):
            self.batches.append(list(pairs))
            return [Verdict(True, 0.9) for _ in pairs]

    b = Batched()
    assert [v.score for v in verify_pairs(b, [("a", "b"), ("c", "d")])] == [0.9, 0.9]
    assert b.batches == [[("a", "b"), ("c", "d")]]

    class Broken:
        name = "broken"

        def verify(self, s, p):
            raise RuntimeError("model crashed")

    with pytest.raises(GenerationError, match="verifier broken failed: RuntimeError: model crashed"):
        verify_pairs(Broken(), [("a", "b")])

    class Short:
        name = "short"

        def verify_batch(self, pairs):
            return []

        def verify(self, s, p):
            return Verdict(True, 1.0)

    with pytest.raises(GenerationError, match="0 verdicts for 1"):
        verify_pairs(Short(), [("a", "b")])


def test_a_verdict_word_alone_is_no_claim():
    for claim in ("Yes,", "No.", "See [2]."):
        assert hard_constraints(claim, SALT) == "has no content to check"
        assert not V.verify(claim, SALT).supported
