"""API responses to frames and words, without Streamlit or a service."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from criteria.cost.model import Deployment, TrafficInputs, project
from dashboard import charts
from dashboard.frames import (
    break_even_frame,
    cost_frame,
    cost_view,
    criteria_frame,
    deciding_criterion,
    distribution_frame,
    distribution_table,
    evidence_sources,
    fmt_savings,
    fmt_time,
    history_frame,
    overview_frame,
    proportion_frame,
    time_to_decision,
    timeline_frame,
    with_quantiles,
)
from dashboard.theme import METRIC_LABELS, SIDE_COLOURS, VERDICT_COLOURS
from evaluators.catalog import CATALOG


def criterion(name, verdict, **fields):
    row = {
        "name": name,
        "metric": "quality.rouge_l",
        "label": "ROUGE-L overlap",
        "stat": "mean",
        "mode": "absolute",
        "op": ">=",
        "critical": False,
        "verdict": verdict,
        "estimate": 0.8,
        "ci_low": 0.7,
        "ci_high": 0.9,
        "threshold": 0.5,
        "n": 100,
        "needed_n": None,
        "note": "",
    }
    return row | fields


def readiness(verdict, criteria, pairs=100, start="2026-11-20T00:00:00", end="2026-11-20T10:00:00"):
    return {
        "use_case": "support-chat",
        "verdict": verdict,
        "evaluated_at": "2026-11-20T10:00:00Z",
        "criteria_version": 1,
        "pairs": pairs,
        "window": {"start": start, "end": end},
        "criteria": criteria,
        "reasons": [],
    }


ERRORS = {
    "metric": "candidate.error",
    "label": "self-hosted error rate",
    "stat": "proportion",
    "op": "<=",
    "threshold": 0.05,
    "critical": True,
}


def test_no_go_is_decided_by_the_critical_failure_in_plain_words():
    verdicts = readiness(
        "NO_GO",
        [
            criterion("quality", "FAIL", estimate=0.4, ci_low=0.35, ci_high=0.45),
            criterion("reliability", "FAIL", estimate=0.25, ci_low=0.2, ci_high=0.3, **ERRORS),
        ],
    )
    assert deciding_criterion(verdicts) == (
        "reliability fails: self-hosted error rate is 25%, needs at most 5%"
    )
    assert time_to_decision(verdicts).text == "decided"


def test_insufficient_data_names_the_slowest_criterion_and_its_time():
    # 100 samples over 10 h: 10 per hour; 300 more take 30 h, 50 more take 5 h.
    verdicts = readiness(
        "INSUFFICIENT_DATA",
        [
            criterion("quality", "INCONCLUSIVE", needed_n=400),
            criterion("reliability", "INCONCLUSIVE", needed_n=150, **ERRORS),
            criterion("tail latency", "PASS"),
        ],
    )
    assert deciding_criterion(verdicts) == (
        "quality: not sure yet, 400 samples needed in total (100 so far)"
    )
    eta = time_to_decision(verdicts)
    assert eta.hours == pytest.approx(30)
    assert eta.text == "about 30.0 hours at the recent pace"


def test_an_unmeasured_figure_holds_the_decision_with_no_time_estimate():
    cost = criterion(
        "monthly cost",
        "NO_DATA",
        metric="cost.monthly_candidate_usd",
        label="self-hosted cost per month (USD)",
        stat=None,
        estimate=None,
        ci_low=None,
        ci_high=None,
        n=0,
        needed_n=None,
    )
    verdicts = readiness(
        "INSUFFICIENT_DATA", [criterion("quality", "INCONCLUSIVE", needed_n=120), cost]
    )
    assert deciding_criterion(verdicts) == (
        "monthly cost: self-hosted cost per month (USD) is not measured yet"
    )
    assert time_to_decision(verdicts).hours is None
    assert "not measured yet" in time_to_decision(verdicts).text


def test_empty_evidence_and_missing_criteria_say_so():
    assert deciding_criterion(readiness("INSUFFICIENT_DATA", [])) == (
        "no success criteria are defined yet"
    )
    no_pairs = readiness("INSUFFICIENT_DATA", [criterion("q", "NO_DATA", n=0)], pairs=0)
    assert deciding_criterion(no_pairs) == "no request pairs captured yet"
    assert time_to_decision(no_pairs).text == "unknown: no request pairs yet"


def test_overview_frame_joins_use_cases_with_their_verdicts():
    cases = [
        {
            "name": "support-chat",
            "mode": "shadow",
            "sample_rate": 0.25,
            "pairs": 100,
            "primary_model": "gpt-4o-mini",
            "candidate_model": "llama",
        },
        {
            "name": "new-feature",
            "mode": "shadow",
            "sample_rate": 0.1,
            "pairs": 0,
            "primary_model": "gpt-4o",
            "candidate_model": "qwen",
        },
    ]
    frame = overview_frame(cases, [readiness("GO", [criterion("quality", "PASS")])])
    assert list(frame["use_case"]) == ["support-chat", "new-feature"]
    assert list(frame["verdict_text"]) == ["GO", "—"]
    assert frame.loc[0, "deciding"] == "all 1 criteria pass"
    assert frame.loc[0, "models"] == "gpt-4o-mini → llama"
    assert frame.loc[1, "deciding"] == "no verdict yet"


def test_criteria_frame_words_and_open_ended_intervals():
    document = {"criteria": {"criteria": [{"name": "tail latency", "q": 0.95}]}}
    verdicts = with_quantiles(
        readiness(
            "INSUFFICIENT_DATA",
            [
                criterion(
                    "tail latency",
                    "INCONCLUSIVE",
                    metric="candidate.latency_ms",
                    label="self-hosted latency (ms)",
                    stat="quantile",
                    op="<=",
                    estimate=1400.0,
                    ci_low=1200.0,
                    ci_high=None,  # not bounded yet
                    threshold=1500.0,
                    needed_n=300,
                ),
                criterion("reliability", "PASS", estimate=0.0, ci_low=0.0, ci_high=0.02, **ERRORS),
            ],
        ),
        document,
    )
    frame = criteria_frame(verdicts)
    latency, errors = frame.to_dict("records")
    assert latency["measures"] == "95th percentile of self-hosted latency (ms)"
    assert latency["target"] == "at most 1,500"
    assert latency["result"] == "not sure yet"
    assert latency["more_needed"] == 200
    assert (latency["bar_low"], latency["bar_high"]) == (1200.0, 1500.0)
    assert errors["interval"] == "0% to 2%"
    assert errors["needed_text"] == "—"


def test_noise_adjusted_criteria_are_described_against_the_api():
    row = criterion(
        "answer quality",
        "PASS",
        metric="quality.semantic_similarity",
        label="answer similarity",
        mode="noise_adjusted",
    )
    frame = criteria_frame(readiness("GO", [row]))
    assert (
        frame.loc[0, "measures"]
        == "average answer similarity, minus the API's agreement with itself"
    )


DISTRIBUTIONS = {
    "use_case": "support-chat",
    "metrics": [
        {
            "metric": "primary.latency_ms",
            "label": "API latency (ms)",
            "better": "lower",
            "binary": False,
            "n": 4,
            "mean": 150.0,
            "p50": 150.0,
            "p90": 190.0,
            "p95": 195.0,
            "p99": 199.0,
            "min": 100.0,
            "max": 200.0,
            "edges": [100.0, 150.0, 200.0],
            "counts": [1, 3],
            "overflow": 0,
        },
        {
            "metric": "candidate.latency_ms",
            "label": "self-hosted latency (ms)",
            "better": "lower",
            "binary": False,
            "n": 5,
            "mean": 140.0,
            "p50": 130.0,
            "p90": 180.0,
            "p95": 190.0,
            "p99": 199.0,
            "min": 100.0,
            "max": 900.0,
            "edges": [100.0, 150.0, 200.0],
            "counts": [3, 1],
            "overflow": 1,
        },
        {
            "metric": "quality.json_valid",
            "label": "valid JSON",
            "better": "higher",
            "binary": True,
            "n": 10,
            "mean": 0.9,
            "p50": 1.0,
            "p90": 1.0,
            "p95": 1.0,
            "p99": 1.0,
            "min": 0.0,
            "max": 1.0,
            "edges": [0.0, 0.5, 1.0],
            "counts": [1, 9],
            "overflow": 0,
        },
        {
            "metric": "quality.bleu",
            "label": "BLEU overlap",
            "better": "higher",
            "binary": False,
            "n": 0,
            "mean": None,
            "p50": None,
            "p90": None,
            "p95": None,
            "p99": None,
            "min": None,
            "max": None,
            "edges": [],
            "counts": [],
            "overflow": 0,
        },
    ],
}


def test_distribution_frame_is_long_form_with_shares_per_side():
    frame = distribution_frame(DISTRIBUTIONS)
    api = frame[frame["side"] == "API"]
    own = frame[frame["side"] == "self-hosted"]
    assert list(api["share"]) == [0.25, 0.75]
    # shares are of all the side's pairs, the one beyond the chart included
    assert list(own[own["metric"] == "candidate.latency_ms"]["share"]) == [0.6, 0.2]
    assert "quality.bleu" not in set(frame["metric"])  # nothing scored: no bars
    table = distribution_table(DISTRIBUTIONS)
    assert list(table["beyond the chart"])[:2] == [0, 1]
    assert proportion_frame(DISTRIBUTIONS).to_dict("records") == [
        {"metric": "quality.json_valid", "label": "valid JSON", "share": 0.9, "pairs": 10}
    ]


def test_timeline_and_history_frames_are_in_time_order():
    timeline = timeline_frame(
        {
            "points": [
                {
                    "start": "2026-11-20T00:00:00Z",
                    "end": "2026-11-20T01:00:00Z",
                    "n": 3,
                    "mean": 1.0,
                    "p50": 0.9,
                    "p90": 1.4,
                }
            ]
        }
    )
    assert timeline.loc[0, "time"].isoformat() == "2026-11-20T00:30:00+00:00"
    history = history_frame(
        [
            {"verdict": "GO", "evaluated_at": "2026-11-20T02:00:00", "pairs": 20},
            {"verdict": "INSUFFICIENT_DATA", "evaluated_at": "2026-11-20T01:00:00", "pairs": 5},
        ]
    )
    assert list(history["verdict_text"]) == ["INSUFFICIENT DATA", "GO"]


def test_cost_view_reads_the_projection_and_says_what_is_missing():
    assert cost_view(None) is None
    unmeasured = cost_view(
        {
            "monthly_primary_usd": None,
            "monthly_candidate_usd": None,
            "monthly_savings_usd": None,
            "missing": ["cost.monthly_candidate_usd: the candidate upstream has no deployment"],
        }
    )
    assert not unmeasured.measured
    assert unmeasured.missing == (
        "self-hosted cost per month: the candidate upstream has no deployment",
    )
    cost = cost_view(
        {
            "monthly_primary_usd": 3000.0,
            "monthly_candidate_usd": 1200.0,
            "monthly_savings_usd": 1800.0,
            "primary_usd_per_request": 0.001,
            "monthly_requests": 3_000_000,
            "break_even_requests_per_month": 1_200_000,
            "missing": [],
        }
    )
    assert cost.measured
    assert cost_frame(cost).to_dict("records") == [
        {"side": "API", "monthly_usd": 3000.0, "text": "$3,000"},
        {"side": "self-hosted", "monthly_usd": 1200.0, "text": "$1,200"},
    ]
    assert break_even_frame(cost).empty  # no curve from the service: nothing to draw
    assert break_even_frame(cost_view({"monthly_candidate_usd": 5.0})).empty


def _projection(ops_hours_per_week: float, usd_per_request: float) -> dict[str, Any]:
    """The /cost body the service sends for an L4 deployment (criteria.cost.model)."""
    deployment = Deployment("L4", 1, 0.80, 1, ops_hours_per_week, 95)
    traffic = TrafficInputs(1000, 3600, 0.25, 1000 * usd_per_request, 1000, 0.5)
    return project(deployment, traffic, rps_at_slo=4.0, headroom=0.3).model_dump()


def test_the_break_even_chart_crosses_where_the_break_even_figure_says():
    # 40 ops hours a week: self-hosting pays only past the first replica's traffic
    cost = cost_view(_projection(40, 0.001))
    assert cost is not None
    assert cost.break_even_requests_per_month is not None
    curve = break_even_frame(cost)
    api = curve[curve["side"] == "API"].set_index("order")["monthly_usd"]
    own = curve[curve["side"] == "self-hosted"].set_index("order")["monthly_usd"]
    requests = curve[curve["side"] == "API"].set_index("order")["requests"]
    crossing = requests[api >= own].min()
    assert crossing == pytest.approx(cost.break_even_requests_per_month, rel=1e-9)
    assert own.nunique() > 1  # it steps with the replicas
    assert (curve["monthly_usd"] >= 0).all()
    assert curve["requests"].min() == 0
    chart = charts.break_even_chart(curve, cost.break_even_requests_per_month).to_dict()
    assert chart["layer"][0]["encoding"]["y"]["scale"]["domainMin"] == 0


def test_negative_savings_read_as_what_self_hosting_costs_more():
    assert fmt_savings(-1357.2) == "costs $1,357 more a month"
    assert fmt_savings(2700.0) == "$2,700"
    cost = cost_view(_projection(40, 0.0001))  # the API is cheap: self-hosting costs more
    assert cost is not None
    assert cost.monthly_savings_usd is not None
    assert cost.monthly_savings_usd < 0
    assert fmt_savings(cost.monthly_savings_usd).startswith("costs $")


def test_every_catalog_metric_has_a_plain_label():
    assert set(CATALOG) <= set(METRIC_LABELS)


def test_charts_use_one_colour_per_side_and_per_verdict():
    sides = pd.DataFrame(
        {"side": ["API", "self-hosted"], "monthly_usd": [3.0, 1.0], "text": ["$3", "$1"]}
    )
    spec = charts.cost_chart(sides).to_dict()
    scale = spec["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True)) == SIDE_COLOURS
    overview = overview_frame(
        [{"name": "a", "pairs": 3, "mode": "shadow", "sample_rate": 1.0}],
        [readiness("NO_GO", [criterion("q", "FAIL")]) | {"use_case": "a"}],
    )
    scale = charts.overview_chart(overview).to_dict()["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True)) == VERDICT_COLOURS
    latency = charts.histogram_chart(distribution_frame(DISTRIBUTIONS), "ms").to_dict()
    scale = latency["spec"]["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True)) == SIDE_COLOURS


def test_an_open_end_reads_n_or_more_and_needed_is_the_total():
    verdicts = readiness(
        "INSUFFICIENT_DATA",
        [criterion("capacity", "INCONCLUSIVE", estimate=700.0, ci_low=608.0, ci_high=None,
                   needed_n=400, stat="mean")],
    )  # fmt: skip
    row = criteria_frame(verdicts).to_dict("records")[0]
    assert row["interval"] == "608 or more"
    assert row["needed_text"] == "400 in total (100 so far)"
    high_only = criterion("errors", "INCONCLUSIVE", ci_low=None, ci_high=0.05, needed_n=400)
    row = criteria_frame(readiness("INSUFFICIENT_DATA", [high_only])).to_dict("records")[0]
    assert row["interval"] == "at most 0.05"


def test_time_to_a_decision_says_no_traffic_since_once_it_stopped():
    open_ = [criterion("quality", "INCONCLUSIVE", needed_n=400)]
    stopped = readiness("INSUFFICIENT_DATA", open_) | {
        "pairs_per_hour": None,
        "idle_since": "2026-11-20T20:03:00+00:00",
    }
    eta = time_to_decision(stopped, "UTC")
    assert eta.text == "no traffic since 20:03" or eta.text.startswith("no traffic since")
    assert "20:03" in eta.text
    assert eta.short == eta.text
    assert "at the current pace" not in eta.text
    # in the viewer's own zone, without "+00:00"
    assert "21:03" in time_to_decision(stopped, "Europe/Berlin").text
    assert "+00:00" not in time_to_decision(stopped, "Europe/Berlin").text


def test_time_to_a_decision_uses_the_recent_rate():
    # 100 pairs over 10 h (10 an hour) but 50 an hour lately: 300 more take 6 h, not 30 h
    open_ = [criterion("quality", "INCONCLUSIVE", needed_n=400)]
    recent = readiness("INSUFFICIENT_DATA", open_) | {"pairs_per_hour": 50.0, "idle_since": None}
    eta = time_to_decision(recent)
    assert eta.hours == pytest.approx(6)
    assert eta.short == "about 6.0 hours"


def test_short_waits_read_as_words():
    open_ = [criterion("quality", "INCONCLUSIVE", needed_n=101)]
    soon = readiness("INSUFFICIENT_DATA", open_) | {"pairs_per_hour": 3600.0}
    assert time_to_decision(soon).short == "under a minute"
    ready = [criterion("quality", "INCONCLUSIVE", needed_n=100)]
    any_time = readiness("INSUFFICIENT_DATA", ready) | {"pairs_per_hour": 10.0}
    assert time_to_decision(any_time).short == "any time now"
    assert "0 s" not in time_to_decision(any_time).text


def test_a_criterion_that_can_never_decide_says_so_instead_of_a_count():
    never = criterion(
        "answer quality",
        "NO_DATA",
        estimate=None,
        ci_low=None,
        ci_high=None,
        n=0,
        needed_n=None,
        warning="can never get data: no noise re-asks are made (the use case's noise_rate is 0)",
    )
    verdicts = readiness("INSUFFICIENT_DATA", [never])
    eta = time_to_decision(verdicts)
    assert eta.short == "never, as configured"
    assert "noise_rate is 0" in eta.text
    assert "noise_rate is 0" in deciding_criterion(verdicts)


def test_times_are_the_viewers_own():
    from datetime import UTC, datetime

    moment = datetime(2026, 11, 20, 20, 3, tzinfo=UTC)
    assert fmt_time(moment, "UTC", now=moment) == "20:03"
    assert fmt_time(moment, "America/New_York", now=moment) == "15:03"
    assert fmt_time(moment, "Not/AZone", now=moment) == "20:03"
    assert fmt_time(moment, "UTC", now=datetime(2026, 11, 22, tzinfo=UTC)) == "20 Nov 20:03"


def test_the_evidence_sources_say_how_much_is_live_and_how_much_imported():
    readiness = {
        "sources": [
            {"source": "import", "import_id": "imp_1", "pairs": 150, "share": 0.75},
            {"source": "live", "import_id": None, "pairs": 50, "share": 0.25},
        ]
    }
    assert evidence_sources(readiness) == (
        "Evidence: 75% imported traffic, imp_1 (150 pairs); 25% live shadowing (50 pairs)."
    )
    assert evidence_sources({"sources": []}) is None
    assert evidence_sources({}) is None  # a verdict stored before sources existed
