"""medrag.sentences.split_sentences: hard biomedical cases, exact spans, properties, and
a floor on boundary F1 against SciFact's gold sentences."""

from __future__ import annotations

import json

import pytest
from conftest import need_data
from hypothesis import given, settings
from hypothesis import strategies as st

from medrag.sentences import split_sentences


def sents(text: str) -> list[str]:
    spans = split_sentences(text)
    for s, e in spans:
        piece = text[s:e]
        assert piece == piece.strip() and piece, (s, e, piece)
    return [text[s:e] for s, e in spans]


HARD_CASES = [
    # abbreviations that do not end sentences
    (
        "Statins (e.g. atorvastatin) lower LDL. Adverse events, i.e. myalgia, were rare.",
        ["Statins (e.g. atorvastatin) lower LDL.", "Adverse events, i.e. myalgia, were rare."],
    ),
    (
        "Use of NSAIDs, e.g. Ibuprofen, was common. It was safe.",
        ["Use of NSAIDs, e.g. Ibuprofen, was common.", "It was safe."],
    ),
    (
        "Smith et al. reported a benefit. Jones et al. (2017) did not. "
        "This was confirmed by Lee et al. We agree.",
        [
            "Smith et al. reported a benefit.",
            "Jones et al. (2017) did not.",
            "This was confirmed by Lee et al.",
            "We agree.",
        ],
    ),
    (
        "Drug A vs. placebo was tested. Outcomes differed.",
        ["Drug A vs. placebo was tested.", "Outcomes differed."],
    ),
    (
        "Mortality fell (Fig. 2). See Fig. 3A for details. Tab. 1 lists doses.",
        ["Mortality fell (Fig. 2).", "See Fig. 3A for details.", "Tab. 1 lists doses."],
    ),
    (
        "Dr. Smith treated the patient. Approx. 20 patients responded.",
        ["Dr. Smith treated the patient.", "Approx. 20 patients responded."],
    ),
    (
        "The sample was approx. 500 adults. No. 3 was excluded.",
        ["The sample was approx. 500 adults.", "No. 3 was excluded."],
    ),
    # doses, decimals, p values
    (
        "Patients received 2.5 mg/kg daily. The effect was significant (p < 0.05). "
        "Mean age was 54.3 years.",
        [
            "Patients received 2.5 mg/kg daily.",
            "The effect was significant (p < 0.05).",
            "Mean age was 54.3 years.",
        ],
    ),
    (
        "The difference was significant, p < 0.001. A total of 1,204.5 person-years accrued.",
        ["The difference was significant, p < 0.001.", "A total of 1,204.5 person-years accrued."],
    ),
    # species names
    (
        "E. coli and H. pylori were isolated. S. aureus was not. Infection with E. coli "
        "O157 is rare.",
        ["E. coli and H. pylori were isolated.", "S. aureus was not.",
         "Infection with E. coli O157 is rare."],
    ),
    (
        "Many pathogens infect hosts. S. Typhimurium invades epithelial cells.",
        ["Many pathogens infect hosts.", "S. Typhimurium invades epithelial cells."],
    ),
    # a sentence that ends in a single capital letter, and acronyms
    (
        "Levels of vitamin D. The deficiency was common in MS. CSF was normal.",
        ["Levels of vitamin D.", "The deficiency was common in MS.", "CSF was normal."],
    ),
    # sentences that open with a lower-case gene name
    (
        "This links mTORC2 to cancer metabolism. mTORC2 phosphorylates xCT. "
        "cGAS senses DNA.",
        ["This links mTORC2 to cancer metabolism.", "mTORC2 phosphorylates xCT.",
         "cGAS senses DNA."],
    ),
    # list enumerations
    (
        "1. Patients were randomised. 2. Outcomes were blinded. 3. Data were pooled.",
        ["1. Patients were randomised.", "2. Outcomes were blinded.", "3. Data were pooled."],
    ),
    (
        "Exclusion criteria were: (1) pregnancy; (2) renal failure. Follow-up was 12 mo. "
        "The trial ended in 2010. 25 patients were lost.",
        [
            "Exclusion criteria were: (1) pregnancy; (2) renal failure.",
            "Follow-up was 12 mo.",
            "The trial ended in 2010.",
            "25 patients were lost.",
        ],
    ),
    # section labels and headings separated by blank lines
    (
        "BACKGROUND: Sepsis is common.\n\nMETHODS: We enrolled 40 adults. Doses were 1.5 g.",
        ["BACKGROUND: Sepsis is common.", "METHODS: We enrolled 40 adults.", "Doses were 1.5 g."],
    ),
    (
        "3.2 Hand hygiene\n\nHands should be cleaned. Gloves are not a substitute.",
        ["3.2 Hand hygiene", "Hands should be cleaned.", "Gloves are not a substitute."],
    ),
    # questions, exclamations, quotes, brackets, ellipses
    (
        'Is it safe? Yes! The term "inflammaging." Was coined later. (See below.) It stuck.',
        ["Is it safe?", "Yes!", 'The term "inflammaging."', "Was coined later.",
         "(See below.)", "It stuck."],
    ),
    (
        "Results were mixed… Further work is needed.",
        ["Results were mixed…", "Further work is needed."],
    ),
    # initials in references
    (
        "As shown by (Pearson, W. R. & Lipman, D. J. 1988), it works. Good.",
        ["As shown by (Pearson, W. R. & Lipman, D. J. 1988), it works.", "Good."],
    ),
    # dotted abbreviations
    (
        "Mice were given 5 mg i.p. daily. In the U.S. Food and Drug Administration data "
        "the rate was low.",
        ["Mice were given 5 mg i.p. daily.",
         "In the U.S. Food and Drug Administration data the rate was low."],
    ),
    # table-of-contents dot leaders are not sentence ends
    (
        "Introduction . . . . . . 12\n\nMethods . . . . . . 15",
        ["Introduction . . . . . . 12", "Methods . . . . . . 15"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), HARD_CASES, ids=[c[0][:30] for c in HARD_CASES])
def test_hard_cases(text: str, expected: list[str]) -> None:
    assert sents(text) == expected


def test_spans_are_exact_offsets() -> None:
    text = "  First one.   Second one?\n\n  Third (Fig. 1).  "
    assert split_sentences(text) == [(2, 12), (15, 26), (30, 45)]
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "First one.", "Second one?", "Third (Fig. 1)."]


def test_start_end_window_gives_offsets_into_the_whole_text() -> None:
    text = "Ignored. Alpha beta. Gamma delta. Also ignored."
    start = text.index("Alpha")
    end = text.index(" Also")
    spans = split_sentences(text, start, end)
    assert [text[s:e] for s, e in spans] == ["Alpha beta.", "Gamma delta."]
    assert all(start <= s < e <= end for s, e in spans)
    # the window's edge is a boundary even in the middle of a sentence
    assert [text[s:e] for s, e in split_sentences(text, 9, 14)] == ["Alpha"]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t"])
def test_empty_and_whitespace(text: str) -> None:
    assert split_sentences(text) == []


def test_out_of_range_window_is_clamped() -> None:
    assert split_sentences("One. Two.", -5, 100) == [(0, 4), (5, 9)]
    assert split_sentences("One. Two.", 7, 3) == []


def test_no_text_is_rewritten_unicode() -> None:
    text = "Le café était fermé. Über 50 % der Patienten… Ça va? 漢字。Ok."
    spans = split_sentences(text)
    assert "".join(text[s:e] for s, e in spans).replace(" ", "") == text.replace(" ", "")


_WORDS = st.sampled_from(
    ["the", "cells", "E.", "coli", "et", "al.", "Fig.", "2.", "2.5", "mg/kg", "p", "<",
     "0.05.", "Dr.", "vs.", "i.e.", "e.g.", "A.", "MS.", "mTORC1", "1.", "(1)", "word.",
     "Word", "What?", "Yes!", "…", ". .", '"', "café", "\n", "\n\n", "  ", "x" * 30]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=60), st.data())
def test_properties(words: list[str], data: st.DataObject) -> None:
    text = " ".join(words)
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    spans = split_sentences(text, start, end)
    prev = start
    for s, e in spans:
        assert prev <= s < e <= end
        piece = text[s:e]
        assert piece == piece.strip()
        # nothing but whitespace between consecutive sentences
        assert not text[prev:s].strip()
        prev = e
    assert not text[prev:end].strip()
    assert split_sentences(text, start, end) == spans  # deterministic


def test_scifact_boundary_f1() -> None:
    """A floor on agreement with SciFact's gold sentences (the benchmark reports the
    full figures; the gold itself has known splitter errors)."""
    path = need_data("scifact", "original_corpus.jsonl")
    tp = fp = fn = 0
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == 1500:
                break
            gold_sents = [s for s in json.loads(line)["abstract"] if s.strip()]
            text = " ".join(gold_sents)
            gold, pos = set(), 0
            for k, s in enumerate(gold_sents):
                if k:
                    pos += 1
                    gold.add(pos + len(s) - len(s.lstrip()))
                pos += len(s)
            pred = {s for s, _ in split_sentences(text)[1:]}
            tp += len(pred & gold)
            fp += len(pred - gold)
            fn += len(gold - pred)
    p, r = tp / (tp + fp), tp / (tp + fn)
    f1 = 2 * p * r / (p + r)
    assert p >= 0.98 and f1 >= 0.97, (p, r, f1)
