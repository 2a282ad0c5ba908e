"""Verdict rules of SPEC §6 on hand-made samples (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from criteria.readiness.engine import (
    Bounds,
    CriterionData,
    Evidence,
    Sums,
    decide,
    evaluate_criterion,
)
from criteria.readiness.schema import CriteriaError, Criterion, parse_criteria

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
    criterion = Criterion(name="q", metric="quality.rouge_l", stat="mean", op=">=", threshold=0.58)
    values = rng.beta(6, 4, size=60)  # mean 0.6: close to the threshold
    result = evaluate_criterion(criterion, CriterionData(values=values), 0.05)
    assert result.verdict == "INCONCLUSIVE"
    assert result.needed_n is not None
    assert result.needed_n > 60
    assert result.needed_low is not None
    assert result.needed_low <= result.needed_n
    longer = evaluate_criterion(
        criterion, CriterionData(values=rng.beta(6, 4, size=5 * result.needed_n)), 0.05
    )
    assert longer.verdict == "PASS"


def _two_series(candidate, noise) -> CriterionData:
    """The candidate's score on every pair and the API's re-ask score on the re-asked ones."""
    return CriterionData(
        evidence=Evidence(n=len(candidate), sums=Sums.of(candidate), noise=Sums.of(noise))
    )


def _orders(values, baseline) -> CriterionData:
    a, b = np.sort(values), np.sort(baseline)
    return CriterionData(
        evidence=Evidence(
            n=len(a),
            order=lambda r: (float(a[r - 1]), float(a[r - 1])),
            baseline_n=len(b),
            baseline_order=lambda r: (float(b[r - 1]), float(b[r - 1])),
        )
    )


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
    result = evaluate_criterion(_noise_adjusted(), _two_series(candidate, noise), 0.05)
    assert result.verdict == "PASS"
    assert result.threshold == -0.03


def test_noise_adjusted_drop_beyond_the_margin_fails():
    rng = np.random.default_rng(12)
    n = 3000
    candidate = np.clip(rng.normal(0.75, 0.06, size=n), -1, 1)
    noise = np.clip(rng.normal(0.85, 0.06, size=n), -1, 1)
    result = evaluate_criterion(_noise_adjusted(), _two_series(candidate, noise), 0.05)
    assert result.verdict == "FAIL"


def test_noise_adjusted_uses_every_pair_and_the_few_re_asks():
    """5 % re-asks: the candidate's term from all pairs, the noise floor from the re-asked."""
    rng = np.random.default_rng(13)
    candidate = np.clip(rng.normal(0.85, 0.08, size=2000), -1, 1)
    noise = np.clip(rng.normal(0.85, 0.05, size=100), -1, 1)
    result = evaluate_criterion(_noise_adjusted(), _two_series(candidate, noise), 0.05)
    assert result.verdict == "PASS"
    assert result.n == 2000


def test_noise_adjusted_without_re_asks_says_so():
    candidate = np.full(200, 0.8)
    data = CriterionData(evidence=Evidence(n=200, sums=Sums.of(candidate), noise=None))
    result = evaluate_criterion(_noise_adjusted(), data, 0.05)
    assert result.verdict == "INCONCLUSIVE"
    assert "no noise re-asks" in result.note


def _relative(q: float) -> Criterion:
    return Criterion(
        name="not slower",
        metric="candidate.latency_ms",
        stat="quantile",
        q=q,
        mode="relative",
        margin=0.2,
    )


def test_relative_compares_the_quantiles_not_the_quantile_of_ratios():
    """A candidate identical to the API (lognormal, sigma 0.6) passes p95 <= 1.2 x the API's."""
    rng = np.random.default_rng(5)
    api = rng.lognormal(np.log(400), 0.6, size=3000)
    same = rng.lognormal(np.log(400), 0.6, size=3000)
    result = evaluate_criterion(_relative(0.95), _orders(same, api), 0.05)
    assert result.verdict == "PASS"
    assert result.threshold == 1.2
    slower = rng.lognormal(np.log(600), 0.6, size=3000)
    assert evaluate_criterion(_relative(0.95), _orders(slower, api), 0.05).verdict == "FAIL"


def test_op_and_threshold_are_refused_where_the_mode_ignores_them():
    text = (
        "use_case: x\ncriteria:\n"
        "  - name: q\n    metric: quality.semantic_similarity\n    stat: mean\n"
        "    mode: noise_adjusted\n    margin: 0.03\n    threshold: 0.9\n"
    )
    with pytest.raises(CriteriaError, match=r":8: .*`threshold` is not used"):
        parse_criteria(text)


def test_a_pass_stays_while_the_data_agree():
    """Monotone: once the running interval clears the threshold it does not come back."""
    rng = np.random.default_rng(21)
    criterion = Criterion(name="q", metric="quality.rouge_l", stat="mean", op=">=", threshold=0.6)
    values = rng.beta(7, 3, size=3000)  # mean 0.7
    seen_pass = False
    previous = None
    for n in range(50, 3001, 50):
        result = evaluate_criterion(criterion, CriterionData(values=values[:n]), 0.05, previous)
        verdict = result.verdict
        if result.ci_low is not None and result.ci_high is not None:
            previous = Bounds(result.ci_low, result.ci_high, result.n)
        seen_pass = seen_pass or verdict == "PASS"
        assert not (seen_pass and verdict != "PASS"), f"PASS flipped to {verdict} at {n}"
    assert seen_pass


def test_a_criterion_that_can_never_get_data_says_why():
    data = CriterionData(never="no noise re-asks are made (the use case's noise_rate is 0)")
    criteria = parse_criteria(
        "use_case: x\ncriteria:\n  - {name: quality, metric: quality.semantic_similarity,"
        " stat: mean, mode: noise_adjusted, margin: 0.03}\n"
    )
    decision = decide(criteria, {"quality": data}, NOW - timedelta(hours=1), NOW)
    assert decision.verdict == "INSUFFICIENT_DATA"
    assert "noise_rate is 0" in decision.reasons[0]
    assert "more samples" not in decision.reasons[0]
