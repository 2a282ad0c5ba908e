"""The candidates' comparison: candidates as columns, criteria as rows, one colour each."""

from dashboard.frames import candidates_of, comparison_frame, comparison_table
from dashboard.theme import API, SIDE_COLOURS, candidate_colours


def _criterion(name: str, verdict: str, low: float, high: float) -> dict[str, object]:
    return {
        "name": name,
        "metric": "quality.rouge_l",
        "stat": "mean",
        "op": ">=",
        "critical": True,
        "verdict": verdict,
        "estimate": (low + high) / 2,
        "ci_low": low,
        "ci_high": high,
        "threshold": 0.6,
        "n": 60,
        "needed_n": None,
    }


READINESS = {
    "use_case": "support-chat",
    "candidate": "good",
    "candidates": [
        {
            "candidate": "good",
            "verdict": "GO",
            "rank": 1,
            "pairs": 60,
            "criteria": [_criterion("answer overlap", "PASS", 0.7, 0.9)],
            "reasons": ["rank 1: can take over (the only candidate that can)"],
            "monthly_cost_usd": 1500.0,
            "monthly_savings_usd": 2700.0,
            "capacity_rps": 42.0,
        },
        {
            "candidate": "bad",
            "verdict": "NO_GO",
            "rank": 2,
            "pairs": 60,
            "criteria": [_criterion("answer overlap", "FAIL", 0.1, 0.3)],
            "reasons": ["rank 2: cannot take over: fails 'answer overlap'"],
            "monthly_cost_usd": None,
            "monthly_savings_usd": None,
            "capacity_rps": None,
        },
    ],
}


def test_one_candidate_has_no_comparison() -> None:
    single = {"candidate": "default", "candidates": [READINESS["candidates"][0]]}
    assert candidates_of(single) == []
    assert comparison_frame(single).empty


def test_the_table_has_a_column_per_candidate_and_a_row_per_figure() -> None:
    table = comparison_table(READINESS).set_index("criterion")
    assert list(table.columns) == ["good", "bad"]
    assert list(table.loc["rank"]) == ["#1", "#2"]
    assert list(table.loc["verdict"]) == ["GO", "NO GO"]
    assert list(table.loc["self-hosted per month"]) == ["$1,500", "—"]
    assert table.loc["requests/s within the latency target", "good"] == "42"
    assert str(table.loc["answer overlap", "good"]).startswith("passes: 0.7")
    assert str(table.loc["answer overlap", "bad"]).startswith("fails: 0.1")


def test_the_chart_frame_has_each_candidates_interval_against_the_target() -> None:
    frame = comparison_frame(READINESS)
    assert frame["candidate"].tolist() == ["good", "bad"]
    assert frame["bar_low"].tolist() == [0.7, 0.1]
    assert frame["threshold"].tolist() == [0.6, 0.6]


def test_each_candidate_has_its_own_colour_and_none_is_the_apis_blue() -> None:
    colours = candidate_colours(["a", "b", "c", "d"])
    assert len(set(colours.values())) == 4
    assert SIDE_COLOURS[API] not in colours.values()
