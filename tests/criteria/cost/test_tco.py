"""The cost projection against figures worked out by hand."""

from __future__ import annotations

import pytest

from criteria.cost.model import Deployment, TrafficInputs, break_even, project

L4 = Deployment(
    gpu="L4", gpu_count=1, hourly_usd=0.80, replicas=1, ops_hours_per_week=4, engineer_hourly_usd=95
)
# 1,000 mirrored pairs in one hour at a 25% sample: 4,000 requests an hour, 1.111 per second;
# the API cost 2.00 USD for those 1,000, so 0.002 USD a request; the busiest minute mirrored
# 0.5 requests a second, so the real peak is 2 per second.
TRAFFIC = TrafficInputs(
    mirrored_pairs=1000,
    window_seconds=3600,
    sample_rate=0.25,
    primary_cost_usd=2.0,
    priced_pairs=1000,
    peak_mirrored_rps=0.5,
)


def test_monthly_figures_by_hand():
    result = project(L4, TRAFFIC, rps_at_slo=4.0, headroom=0.3)
    # 4,000/h x 730 h = 2,920,000 requests a month
    assert result.monthly_requests == pytest.approx(2_920_000)
    assert result.monthly_primary_usd == pytest.approx(5840.0)
    # 2 rps x 1.3 / 4 rps per replica -> 1 replica; 0.80 x 730 = 584 USD of GPU
    # plus 4 h/week x 52/12 weeks x 95 USD = 1,646.67 USD of people
    assert result.replicas_needed == 1
    assert result.monthly_candidate_usd == pytest.approx(584 + 1646.6667, rel=1e-6)
    assert result.monthly_savings_usd == pytest.approx(5840 - 2230.6667, rel=1e-6)
    # 0.80 USD an hour / (4 rps x 3600 s) per request at capacity
    assert result.candidate_usd_per_request == pytest.approx(0.8 / 14400)
    # 2,230.67 USD / 0.002 USD = 1,115,333 requests a month, within one replica's capacity
    assert result.break_even_requests_per_month == pytest.approx(1_115_333.3, rel=1e-6)
    assert result.missing == []
    assert result.inputs["rps_at_slo"] == 4.0
    assert result.inputs["deployment"]["hourly_usd"] == 0.8


def test_more_peak_traffic_needs_more_replicas():
    busy = TrafficInputs(**{**TRAFFIC.__dict__, "peak_mirrored_rps": 2.5})  # 10 rps real peak
    result = project(L4, busy, rps_at_slo=4.0, headroom=0.3)
    assert result.replicas_needed == 4  # ceil(10 x 1.3 / 4)
    assert result.monthly_candidate_usd == pytest.approx(4 * 584 + 1646.6667, rel=1e-6)


def test_break_even_steps_over_a_replica_boundary():
    # One replica carries 4 rps = 10,512,000 requests a month and costs 584 USD of GPU; the
    # team's 40 h/week cost 16,466.67 USD whatever the traffic. At 0.001 USD a request the API
    # costs as much as one replica only at 17.05M requests - more than one replica carries -
    # and as much as two replicas (17,634.67 USD) at 17.63M, which two replicas do carry.
    heavy_ops = Deployment("L4", 1, 0.80, 1, 40, 95)
    assert break_even(heavy_ops, 4.0, 0.0, 0.001) == pytest.approx(17_634_666.7, rel=1e-6)


def test_no_break_even_when_the_api_is_cheaper_per_request_at_any_scale():
    # 0.80 USD / 14,400 requests = 0.0000556 USD a request at full use: an API charging less
    # than that is never beaten.
    lean = Deployment("L4", 1, 0.80, 1, 0, 0)
    assert break_even(lean, 4.0, 0.0, 0.00001) is None


def test_missing_capacity_is_no_figure_not_zero():
    result = project(L4, TRAFFIC, rps_at_slo=None, headroom=0.3)
    assert result.monthly_primary_usd == pytest.approx(5840.0)
    assert result.monthly_candidate_usd is None
    assert result.monthly_savings_usd is None
    assert result.candidate_usd_per_request is None
    assert any("capacity not measured" in m for m in result.missing)


def test_no_deployment_or_no_prices_is_no_figure():
    assert project(None, TRAFFIC, 4.0, 0.3).monthly_candidate_usd is None
    unpriced = TrafficInputs(**{**TRAFFIC.__dict__, "primary_cost_usd": None, "priced_pairs": 0})
    result = project(L4, unpriced, 4.0, 0.3)
    assert result.monthly_primary_usd is None
    assert result.monthly_candidate_usd is not None
    assert result.monthly_savings_usd is None


def test_the_cost_curve_crosses_where_the_break_even_figure_says():
    # heavy ops: the break-even lies past the first replica step, where a flat line would lie
    heavy_ops = Deployment("L4", 1, 0.80, 1, 40, 95)
    traffic = TrafficInputs(**{**TRAFFIC.__dict__, "primary_cost_usd": 1.0})  # 0.001 USD each
    result = project(heavy_ops, traffic, rps_at_slo=4.0, headroom=0.3)
    assert result.break_even_requests_per_month is not None
    curve = result.curve
    assert curve[0].requests_per_month == 0
    assert all(p.candidate_usd > 0 and p.primary_usd >= 0 for p in curve)
    # the self-hosted line steps up with the replicas the traffic needs
    assert len({round(p.candidate_usd, 6) for p in curve}) > 1
    cheaper = [p.requests_per_month for p in curve if p.primary_usd >= p.candidate_usd]
    assert min(cheaper) == pytest.approx(result.break_even_requests_per_month, rel=1e-9)
    before = [p for p in curve if p.requests_per_month < result.break_even_requests_per_month]
    assert all(p.primary_usd < p.candidate_usd for p in before)
    # at the traffic seen the curve is the self-hosted figure
    now = next(
        p for p in curve if p.requests_per_month >= (result.monthly_requests or 0) * (1 - 1e-9)
    )
    assert result.monthly_requests is not None
    assert p_at(curve, result.monthly_requests) == pytest.approx(result.monthly_candidate_usd)
    assert now.candidate_usd >= result.monthly_candidate_usd


def p_at(curve, requests):
    """The self-hosted bill the curve shows at a traffic (the step it is on)."""
    return [p.candidate_usd for p in curve if p.requests_per_month <= requests][-1]
