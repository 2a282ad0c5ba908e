"""API responses to frames and words, without Streamlit or a service."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard import charts
from dashboard.frames import (
    break_even_frame,
    cost_frame,
    cost_view,
    criteria_frame,
    deciding_criterion,
    distribution_frame,
    distribution_table,
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
    assert deciding_criterion(verdicts) == "quality: not sure yet, 300 more samples needed"
    eta = time_to_decision(verdicts)
    assert eta.hours == pytest.approx(30)
    assert eta.text == "about 30.0 h at the current pace"


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
    curve = break_even_frame(cost)
    api = curve[curve["side"] == "API"]
    assert api["monthly_usd"].iloc[-1] == pytest.approx(api["requests"].iloc[-1] * 0.001)
    crossing = api[api["monthly_usd"] >= 1200.0]["requests"].min()
    assert crossing == pytest.approx(1_200_000, rel=0.1)
    assert break_even_frame(cost_view({"monthly_candidate_usd": 5.0})).empty


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
