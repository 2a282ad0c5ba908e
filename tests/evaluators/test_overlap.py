"""ROUGE-L and BLEU through `evaluate` agree with `rouge_score` and `sacrebleu` run directly."""

from __future__ import annotations

import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from evaluators.overlap import OverlapEvaluator, compute
from shadow.simulator.prompts import load_prompts
from tests.evaluators.conftest import make_pair

ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
TEXTS = [
    (str(item.reference), str(item.answer(variant)))
    for item in load_prompts()
    for variant in ("reference", "paraphrase", "wrong")
]
EDGES = [
    ("", ""),
    ("Hello", ""),
    ("", "Hello"),
    ("a", "a"),
    ("Price: $1,000.50 (incl. VAT) - valid 2024-05-01.", "Price: $1,000.50 - valid 2024-05-01"),
    ("Don't re-use the e-mail &amp; <b>link</b>!", "don't reuse the email & link"),
    ("Multi\nline\n\nanswer -\nsplit", "Multi line answer split"),
    ("Ünïcödé café naïve", "Unicode cafe naive"),
    ("the the the the", "the"),
]


def reference_scores(pairs):
    rouge = [ROUGE.score(ref, pred)["rougeL"].fmeasure for ref, pred in pairs]
    bleu = [sacrebleu.sentence_bleu(pred, [ref]).score / 100 for ref, pred in pairs]
    return rouge, bleu


def our_scores(pairs):
    references = [ref for ref, _ in pairs]
    predictions = [pred for _, pred in pairs]
    return compute("rouge_l", predictions, references), compute("bleu", predictions, references)


def test_the_prompt_set_and_edge_cases_score_as_the_reference_implementations():
    pairs = TEXTS + EDGES
    ours, theirs = our_scores(pairs), reference_scores(pairs)
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine == [pytest.approx(value, abs=1e-12) for value in reference]


WORDS = st.sampled_from(
    ["the", "cat", "sat", "on", "mat", "Mat", "3.5", "1,000", "-", ".", ",", "e-mail", "a", "!"]
)
SENTENCES = st.lists(WORDS, max_size=30).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(SENTENCES, SENTENCES), min_size=1, max_size=5))
def test_random_sentences_score_as_the_reference_implementations(pairs):
    ours, theirs = our_scores(pairs), reference_scores(pairs)
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine == [pytest.approx(value, abs=1e-12) for value in reference]


def test_the_evaluator_scores_text_answers_only():
    pairs = [
        make_pair("The cat sat on the mat.", "The cat sat on the mat."),
        make_pair("The cat sat on the mat.", "A dog ran"),
        make_pair(None, "text"),
        make_pair("x", None, candidate_fields={"error_kind": "timeout"}),
    ]
    identical, unrelated, no_text, failed = OverlapEvaluator().score(pairs)
    assert identical == {"quality.rouge_l": 1.0, "quality.bleu": 1.0}
    assert unrelated == {"quality.rouge_l": 0.0, "quality.bleu": 0.0}
    assert no_text == {}
    assert failed == {}
