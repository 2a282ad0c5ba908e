"""Each evaluator on hand-made pairs whose right answers are known."""

from __future__ import annotations

import logging

import pytest

from evaluators.answers import (
    ExactMatchEvaluator,
    LengthRatioEvaluator,
    RefusalEvaluator,
    is_refusal,
)
from evaluators.config import EvaluatorsConfig, ModelPrice
from evaluators.cost import CandidateCostEvaluator, PrimaryCostEvaluator, price_table
from evaluators.latency import LatencyEvaluator
from evaluators.pair import Answer, Deployment
from evaluators.registry import METRICS, get_evaluators
from evaluators.structured import JsonEvaluator, ToolCallEvaluator
from shadow.config import ConfigError, parse_config
from shadow.simulator.prompts import load_prompts
from tests.evaluators.conftest import make_pair

PROMPTS = load_prompts()


def one(evaluator, pair):
    [values] = evaluator.score([pair])
    return values


# --- latency ---------------------------------------------------------------------------------


def test_latency_figures_are_copied_and_the_ratio_computed():
    pair = make_pair(
        primary_fields={"latency_ms": 200.0, "ttft_ms": 50.0},
        candidate_fields={"latency_ms": 300.0, "ttft_ms": 80.0, "tpot_ms": 12.5},
    )
    assert one(LatencyEvaluator(), pair) == {
        "primary.latency_ms": 200.0,
        "candidate.latency_ms": 300.0,
        "primary.ttft_ms": 50.0,
        "candidate.ttft_ms": 80.0,
        "candidate.tpot_ms": 12.5,
        "candidate.error": 0.0,
        "latency.ratio": 1.5,
    }


def test_a_timeout_is_an_error_and_keeps_its_latency():
    pair = make_pair(
        candidate=None,
        candidate_fields={"latency_ms": 5000.0, "ttft_ms": None, "error_kind": "timeout"},
    )
    values = one(LatencyEvaluator(), pair)
    assert values["candidate.error"] == 1.0
    assert values["candidate.latency_ms"] == 5000.0
    assert values["latency.ratio"] == 50.0
    assert "candidate.ttft_ms" not in values
    assert "candidate.tpot_ms" not in values


def test_quality_metrics_skip_a_failed_candidate():
    pair = make_pair(candidate=None, candidate_fields={"error_kind": "invalid_response"})
    for evaluator in get_evaluators(EvaluatorsConfig(), ("exact_match", "json", "refusal")):
        assert one(evaluator, pair) == {}


# --- exact match, refusal, length ------------------------------------------------------------


@pytest.mark.parametrize(
    ("primary", "candidate", "expected"),
    [
        ("positive", "positive", 1.0),
        ("positive", "  Positive.\n", 1.0),
        ('"Billing"', "billing", 1.0),
        ("positive", "negative", 0.0),
        ("The order ships Monday.", "The order ships on Monday.", 0.0),
        ("positive", "", 0.0),
    ],
)
def test_exact_match_after_normalisation(primary, candidate, expected):
    assert one(ExactMatchEvaluator(), make_pair(primary, candidate)) == {
        "quality.exact_match": expected
    }


def test_exact_match_needs_a_text_answer_from_the_primary():
    assert one(ExactMatchEvaluator(), make_pair(None, "x")) == {}


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I cannot assist with that request.",
        "Sorry, I can\u2019t share internal account details.",
        "As an AI language model, I cannot give legal advice.",
        "I won't provide that information.",
    ],
)
def test_refusals_are_recognised(text):
    assert one(RefusalEvaluator(), make_pair("Here is how.", text)) == {"quality.refusal": 1.0}


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry to hear that! Open Settings > Billing to change your card.",
        "Sorry for the wait: your refund was issued yesterday.",
        "I can help with that: go to Settings.",
    ],
)
def test_apologies_that_answer_are_not_refusals(text):
    assert one(RefusalEvaluator(), make_pair("Here is how.", text)) == {"quality.refusal": 0.0}


def test_the_prompt_sets_refusals_are_found_and_nothing_else():
    """Its answers say "can't" in many ways; only the six canned refusals are refusals."""
    found = set()
    for item in PROMPTS:
        for variant in ("reference", "paraphrase", "wrong"):
            answer = item.answer(variant)
            if isinstance(answer, str) and is_refusal(Answer(text=answer)):
                found.add((item.id, variant, answer))
    assert {answer for _, _, answer in found} == {"I'm sorry, but I can't help with that."}
    assert {variant for _, variant, _ in found} == {"wrong"}
    assert len(found) == 6


def test_refusal_does_not_apply_when_the_primary_refused_too():
    pair = make_pair("I can't help with that.", "I cannot assist with that.")
    assert one(RefusalEvaluator(), pair) == {}


def test_content_filter_counts_as_a_refusal():
    pair = make_pair("Sure.", "", candidate_fields={"finish_reason": "content_filter"})
    assert one(RefusalEvaluator(), pair) == {"quality.refusal": 1.0}


def test_length_ratio_is_completion_tokens_over_the_primarys():
    pair = make_pair(
        primary_fields={"completion_tokens": 40}, candidate_fields={"completion_tokens": 50}
    )
    assert one(LengthRatioEvaluator(), pair) == {"quality.length_ratio": 1.25}
    assert one(LengthRatioEvaluator(), make_pair()) == {}


# --- JSON --------------------------------------------------------------------------------------

ORDER = '{"order_id": "A-1", "total": 89.5, "items": [{"sku": "X", "qty": 2}], "gift": false}'
JSON_MODE = {"model": "m", "messages": [], "response_format": {"type": "json_object"}}


def test_reordered_json_keys_are_a_full_match():
    reordered = (
        '{"gift": false, "items": [{"qty": 2.0, "sku": "X"}], "total": 89.5, "order_id": "A-1"}'
    )
    values = one(JsonEvaluator(), make_pair(ORDER, reordered, request=JSON_MODE))
    assert values == {"quality.json_valid": 1.0, "quality.json_match": 1.0}


def test_json_match_is_the_share_of_the_primarys_fields_reproduced():
    candidate = '{"order_id": "A-1", "total": 98.5, "items": [{"sku": "X", "qty": 3}]}'
    values = one(JsonEvaluator(), make_pair(ORDER, candidate))
    # 5 fields: order_id ok, total wrong, sku ok, qty wrong, gift missing
    assert values == {"quality.json_valid": 1.0, "quality.json_match": pytest.approx(2 / 5)}


def test_booleans_are_not_numbers():
    values = one(JsonEvaluator(), make_pair('{"a": true}', '{"a": 1}'))
    assert values["quality.json_match"] == 0.0


def test_broken_json_is_invalid_and_matches_nothing():
    broken = '{"order_id": "A-1", "total": 89.5,'
    values = one(JsonEvaluator(), make_pair(ORDER, broken, request=JSON_MODE))
    assert values == {"quality.json_valid": 0.0, "quality.json_match": 0.0}


def test_json_in_a_markdown_fence_is_not_valid_json():
    fenced = f"```json\n{ORDER}\n```"
    assert one(JsonEvaluator(), make_pair(ORDER, fenced))["quality.json_valid"] == 0.0


def test_json_mode_needs_an_object():
    values = one(JsonEvaluator(), make_pair("hello", "[1, 2]", request=JSON_MODE))
    assert values == {"quality.json_valid": 0.0}


def test_the_requested_schema_is_checked():
    request = {
        "model": "m",
        "messages": [],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "order",
                "schema": {
                    "type": "object",
                    "properties": {"total": {"type": "number"}},
                    "required": ["total"],
                },
            },
        },
    }
    good = one(JsonEvaluator(), make_pair('{"total": 1}', '{"total": 2.5}', request=request))
    bad = one(JsonEvaluator(), make_pair('{"total": 1}', '{"total": "2.5"}', request=request))
    assert good["quality.json_valid"] == 1.0
    assert bad["quality.json_valid"] == 0.0


def test_json_metrics_do_not_apply_to_plain_text():
    assert one(JsonEvaluator(), make_pair("The answer is 42.", "42")) == {}


# --- tool calls --------------------------------------------------------------------------------

TOOLS_REQUEST = {
    "model": "m",
    "messages": [{"role": "user", "content": "Weather in Lisbon?"}],
    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
}


def call(name, arguments):
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_pair(primary_calls, candidate_calls):
    return make_pair(
        None,
        None,
        request=TOOLS_REQUEST,
        primary_fields={"tool_calls": tuple(primary_calls)},
        candidate_fields={"tool_calls": tuple(candidate_calls)},
    )


def test_same_tool_with_reordered_arguments_matches():
    pair = tool_pair(
        [call("get_weather", '{"location": "Lisbon", "unit": "celsius", "days": 2}')],
        [call("get_weather", '{"days": 2.0, "unit": "celsius",\n "location": "Lisbon"}')],
    )
    assert one(ToolCallEvaluator(), pair) == {"quality.tool_call_match": 1.0}


@pytest.mark.parametrize(
    "candidate_calls",
    [
        [call("get_weather", '{"location": "Porto", "unit": "celsius", "days": 2}')],
        [call("get_forecast", '{"location": "Lisbon", "unit": "celsius", "days": 2}')],
        [call("get_weather", '{"location": "Lisbon", "unit": "celsius"}')],
        [
            call("get_weather", '{"location": "Lisbon", "unit": "celsius", "days": 2'),
        ],
        [],
    ],
)
def test_different_tool_calls_do_not_match(candidate_calls):
    primary = [call("get_weather", '{"location": "Lisbon", "unit": "celsius", "days": 2}')]
    pair = tool_pair(primary, candidate_calls)
    assert one(ToolCallEvaluator(), pair) == {"quality.tool_call_match": 0.0}


def test_tool_call_match_needs_tools():
    assert one(ToolCallEvaluator(), make_pair("Hi", "Hi")) == {}


# --- cost ----------------------------------------------------------------------------------------


def test_token_prices_are_applied_to_the_usage_exactly():
    evaluator = PrimaryCostEvaluator(price_table({}))
    pair = make_pair(primary_fields={"prompt_tokens": 1234, "completion_tokens": 567})
    # gpt-4o-mini: $0.15 per million prompt tokens, $0.60 per million completion tokens
    expected = (1234 * 0.15 + 567 * 0.60) / 1_000_000
    assert one(evaluator, pair) == {"cost.primary_usd": pytest.approx(expected, rel=1e-12)}


def test_dated_snapshots_and_gateway_prefixes_cost_what_their_model_costs():
    evaluator = PrimaryCostEvaluator(price_table({}))
    tokens = {"prompt_tokens": 1_000_000, "completion_tokens": 0}
    for model in ("gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini", "gpt-4o-mini"):
        pair = make_pair(primary_model=model, primary_fields=tokens)
        assert one(evaluator, pair) == {"cost.primary_usd": pytest.approx(0.15)}


def test_configured_prices_override_the_table():
    table = price_table({"gpt-4o-mini": ModelPrice(input_per_mtok=1, output_per_mtok=2)})
    pair = make_pair(primary_fields={"prompt_tokens": 10, "completion_tokens": 20})
    assert one(PrimaryCostEvaluator(table), pair) == {"cost.primary_usd": pytest.approx(50e-6)}


def test_an_unknown_model_has_no_cost_and_says_so_once(caplog):
    evaluator = PrimaryCostEvaluator(price_table({}))
    pair = make_pair(
        primary_model="acme-llm-9", primary_fields={"prompt_tokens": 10, "completion_tokens": 5}
    )
    with caplog.at_level(logging.WARNING, logger="evaluators.cost"):
        assert evaluator.score([pair, pair]) == [{}, {}]
    [record] = caplog.records
    assert "no price for model 'acme-llm-9'" in record.getMessage()
    assert "evaluators.prices" in record.getMessage()


def test_no_cost_without_token_counts():
    assert one(PrimaryCostEvaluator(price_table({})), make_pair()) == {}


def test_candidate_cost_waits_for_a_measured_capacity():
    evaluator = CandidateCostEvaluator()
    assert one(evaluator, make_pair(deployment=Deployment(hourly_usd=2.49))) == {}
    assert one(evaluator, make_pair()) == {}
    measured = make_pair(deployment=Deployment(hourly_usd=7.2, capacity_rps=4.0))
    assert one(evaluator, measured) == {"cost.candidate_usd": pytest.approx(7.2 / (3600 * 4))}


# --- registry ----------------------------------------------------------------------------------


def test_the_registry_covers_the_metric_catalog():
    config = EvaluatorsConfig(judge={"enabled": True, "base_url": "http://x/v1", "model": "j"})
    evaluators = get_evaluators(config)
    produced = {metric: e.name for e in evaluators for metric in e.metrics}
    assert produced == METRICS


def test_disabled_evaluators_do_not_run_and_unknown_names_are_refused():
    names = {e.name for e in get_evaluators(EvaluatorsConfig(disabled=("judge", "overlap")))}
    assert "overlap" not in names
    assert "judge" not in names
    with pytest.raises(ValueError, match="unknown evaluator"):
        get_evaluators(EvaluatorsConfig(), ("bogus",))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("judge: {enabled: true}", "evaluators.judge: an enabled judge needs `base_url`"),
        ("judge: {rubric: v9}", "evaluators.judge.rubric: unknown rubric (bundled: pairwise-v1)"),
        ("disabled: [overlap, bogus]", "evaluators.disabled: unknown evaluator(s) bogus"),
        ("prices: {m: {input_per_mtok: -1, output_per_mtok: 1}}", "evaluators.prices.m."),
        ("embeding_model: x", "evaluators.embeding_model: Extra inputs are not permitted"),
    ],
)
def test_a_bad_evaluators_section_names_line_and_field(section, message):
    text = (
        "upstreams:\n  api: {base_url: 'http://a/v1'}\n"
        "use_cases:\n  default:\n    primary: {upstream: api, model: m}\n"
        "    candidate: {upstream: api, model: c}\n"
        f"evaluators:\n  {section}\n"
    )
    with pytest.raises(ConfigError) as error:
        parse_config(text, "switchover.yaml")
    assert f"switchover.yaml:8: {message}" in str(error.value)
