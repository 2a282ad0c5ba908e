"""Verdict rules of SPEC §6 on hand-made samples (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from criteria.readiness.engine import CriterionData, decide, evaluate_criterion
from criteria.readiness.schema import Criterion, parse_criteria

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def _criteria(extra: str = "", min_duration: str = "0s") -> str:
    return (
        f"use_case: x\nalpha: 0.05\nmin_duration: {min_duration}\ncriteria:\n"
        "  - {name: quality, metric: quality.rouge_l, stat: mean, op: '>=', threshold: 0.5}\n"
        "  - {name: errors, metric: candidate.error, stat: proportion, op: '<=', threshold: 0.05,"
        " critical: true}\n" + extra
    )


def _good(rng, n=400):
    return {
        "quality": CriterionData(values=rng.beta(8, 2, size=n)),
        "errors": CriterionData(values=np.zeros(n)),
    }


def test_all_pass_and_enough_time_is_go():
    criteria = parse_criteria(_criteria(min_duration="1h"))
    decision = decide(criteria, _good(np.random.default_rng(1)), NOW - timedelta(hours=2), NOW)
    assert decision.verdict == "GO"
    assert [r.verdict for r in decision.criteria] == ["PASS", "PASS"]


def test_all_pass_but_min_duration_not_reached_is_insufficient():
    criteria = parse_criteria(_criteria(min_duration="24h"))
    decision = decide(criteria, _good(np.random.default_rng(1)), NOW - timedelta(hours=2), NOW)
    assert decision.verdict == "INSUFFICIENT_DATA"
    assert "min_duration needs 22.0 h more" in decision.reasons[0]


def test_any_failing_criterion_is_no_go_naming_it():
    criteria = parse_criteria(_criteria())
    data = _good(np.random.default_rng(1))
    data["errors"] = CriterionData(values=(np.arange(400) % 5 == 0).astype(float))  # 20%
    decision = decide(criteria, data, NOW - timedelta(hours=2), NOW)
    assert decision.verdict == "NO_GO"
    assert decision.reasons[0].startswith("critical criterion 'errors' fails")


def test_an_unmeasured_figure_is_no_data_and_never_a_pass():
    criteria = parse_criteria(
        _criteria("  - {name: capacity, metric: capacity.rps_at_slo, op: '>=', threshold: 40}\n")
    )
    data = _good(np.random.default_rng(1)) | {"capacity": CriterionData(figure=None)}
    decision = decide(criteria, data, NOW - timedelta(hours=2), NOW)
    assert decision.verdict == "INSUFFICIENT_DATA"
    assert decision.criteria[2].verdict == "NO_DATA"
    assert any(
        "requests/s within the latency SLO is not measured yet" in r for r in decision.reasons
    )
    data["capacity"] = CriterionData(figure=55.0)
    assert decide(criteria, data, NOW - timedelta(hours=2), NOW).verdict == "GO"
    data["capacity"] = CriterionData(figure=12.0)
    assert decide(criteria, data, NOW - timedelta(hours=2), NOW).verdict == "NO_GO"


def test_too_few_samples_is_no_data_with_the_samples_needed():
    criterion = Criterion(
        name="q", metric="quality.rouge_l", stat="mean", op=">=", threshold=0.5, min_samples=30
    )
    result = evaluate_criterion(criterion, CriterionData(values=np.full(12, 0.9)), 0.05)
    assert result.verdict == "NO_DATA"
    assert result.n == 12
    assert result.needed_n == 30


def test_inconclusive_says_roughly_how_many_samples_are_still_needed():
    rng = np.random.default_rng(3)
    criterion = Criterion(name="q", metric="quality.rouge_l", stat="mean", op=">=", threshold=0.55)
    values = rng.beta(6, 4, size=60)  # mean 0.6: close to the threshold
    result = evaluate_criterion(criterion, CriterionData(values=values), 0.05)
    assert result.verdict == "INCONCLUSIVE"
    assert result.needed_n is not None
    assert result.needed_n > 60
    longer = evaluate_criterion(
        criterion, CriterionData(values=rng.beta(6, 4, size=5 * result.needed_n)), 0.05
    )
    assert longer.verdict == "PASS"


def _noise_adjusted(margin: float = 0.03) -> Criterion:
    return Criterion(
        name="quality vs noise",
        metric="quality.semantic_similarity",
        stat="mean",
        mode="noise_adjusted",
        margin=margin,
    )


def test_noise_adjusted_a_over_a_passes():
    """The candidate is the API itself: its agreement with the API equals the noise floor."""
    rng = np.random.default_rng(11)
    n = 3000
    candidate = np.clip(rng.normal(0.85, 0.06, size=n), -1, 1)
    noise = np.clip(rng.normal(0.85, 0.06, size=n), -1, 1)
    result = evaluate_criterion(_noise_adjusted(), CriterionData(values=candidate - noise), 0.05)
    assert result.verdict == "PASS"
    assert result.threshold == -0.03


def test_noise_adjusted_drop_beyond_the_margin_fails():
    rng = np.random.default_rng(12)
    n = 3000
    candidate = np.clip(rng.normal(0.75, 0.06, size=n), -1, 1)
    noise = np.clip(rng.normal(0.85, 0.06, size=n), -1, 1)
    result = evaluate_criterion(_noise_adjusted(), CriterionData(values=candidate - noise), 0.05)
    assert result.verdict == "FAIL"


def test_relative_latency_compares_with_the_api_request_by_request():
    criterion = Criterion(
        name="not slower",
        metric="candidate.latency_ms",
        stat="quantile",
        q=0.5,
        mode="relative",
        margin=0.2,
    )
    ratios = np.random.default_rng(5).lognormal(np.log(0.9), 0.2, size=500)
    result = evaluate_criterion(criterion, CriterionData(values=ratios), 0.05)
    assert result.verdict == "PASS"
    assert result.threshold == 1.2
