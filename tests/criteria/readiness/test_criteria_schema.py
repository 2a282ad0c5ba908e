"""Criteria documents: the SPEC example parses; each kind of mistake names its line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from criteria.readiness.schema import CriteriaError, parse_criteria

SPEC_EXAMPLE = """\
use_case: support-chat
alpha: 0.05
min_duration: 24h
criteria:
  - {name: answer quality, metric: quality.semantic_similarity, stat: mean,
     mode: noise_adjusted, margin: 0.03, critical: true}
  - {name: tail latency, metric: candidate.latency_ms, stat: quantile, q: 0.95, op: "<=", threshold: 1500}
  - {name: no slower than API, metric: latency.ratio, stat: quantile, q: 0.5, op: "<=", threshold: 1.2}
  - {name: reliability, metric: candidate.error, stat: proportion, op: "<=", threshold: 0.01, critical: true}
  - {name: valid JSON, metric: quality.json_valid, stat: proportion, op: ">=", threshold: 0.99}
  - {name: monthly cost, metric: cost.monthly_candidate_usd, op: "<=", threshold: 5000}
  - {name: capacity, metric: capacity.rps_at_slo, op: ">=", threshold: 40}
  - {name: ops overhead, metric: ops.hours_per_week, op: "<=", threshold: 8}
"""


def test_the_spec_example_parses():
    parsed = parse_criteria(SPEC_EXAMPLE)
    assert parsed.use_case == "support-chat"
    assert parsed.min_duration == timedelta(hours=24)
    assert [c.name for c in parsed.criteria][:2] == ["answer quality", "tail latency"]
    assert parsed.criteria[0].mode == "noise_adjusted"
    assert parsed.criteria[0].critical is True
    assert parsed.criteria[1].q == 0.95


def _error(text: str) -> str:
    with pytest.raises(CriteriaError) as caught:
        parse_criteria(text, "crit.yaml")
    return str(caught.value)


def test_unknown_metric_names_its_line():
    message = _error(SPEC_EXAMPLE.replace("candidate.error", "candidate.errors"))
    assert "crit.yaml:9: criteria.3.metric: unknown metric 'candidate.errors'" in message


def test_bad_operator_names_its_line():
    message = _error(SPEC_EXAMPLE.replace('op: ">=", threshold: 0.99', 'op: "=>", threshold: 0.99'))
    assert "crit.yaml:10: criteria.4.op:" in message
    assert "'<='" in message


def test_missing_field_names_its_line():
    text = SPEC_EXAMPLE.replace('op: "<=", threshold: 1500', 'op: "<="')
    assert "crit.yaml:7: criteria.1: missing field(s) threshold" in _error(text)
    assert "crit.yaml:2" not in _error("use_case: x\nalpha: 0.05\n")
    assert "criteria: Field required" in _error("use_case: x\nalpha: 0.05\n")


def test_quantile_without_q_is_rejected():
    message = _error(SPEC_EXAMPLE.replace("q: 0.95, ", ""))
    assert "crit.yaml:7: criteria.1: a quantile criterion needs `q`" in message


def test_mean_of_an_unbounded_metric_is_rejected_with_advice():
    text = "use_case: x\ncriteria:\n  - {name: lat, metric: candidate.latency_ms, stat: mean, op: '<=', threshold: 9}\n"
    assert "crit.yaml:3: criteria.0: stat: mean needs a bounded metric" in _error(text)


def test_noise_adjusted_needs_margin_and_a_noise_floor():
    text = "use_case: x\ncriteria:\n  - {name: q, metric: quality.rouge_l, stat: mean, mode: noise_adjusted, margin: 0.1}\n"
    assert "needs a metric with a noise floor" in _error(text)
    text = "use_case: x\ncriteria:\n  - {name: q, metric: quality.semantic_similarity, stat: mean, mode: noise_adjusted}\n"
    assert "needs stat: mean and a `margin`" in _error(text)


def test_bad_yaml_duration_and_duplicates():
    assert "crit.yaml:3: not valid YAML" in _error("use_case: x\ncriteria:\n  - name: a: b\n")
    assert "min_duration" in _error(SPEC_EXAMPLE.replace("24h", "a day"))
    duplicate = SPEC_EXAMPLE.replace("name: capacity", "name: monthly cost")
    assert "criterion names must be unique: monthly cost" in _error(duplicate)


def test_unknown_field_is_rejected():
    text = SPEC_EXAMPLE.replace("critical: true}", "critcal: true}", 1)
    assert "crit.yaml:6: criteria.0.critcal: Extra inputs are not permitted" in _error(text)
