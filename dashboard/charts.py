"""Altair charts over the frames of `dashboard.frames`; colours from `dashboard.theme`."""

from __future__ import annotations

from typing import TypeAlias

import altair as alt
import pandas as pd

from dashboard.frames import time_format
from dashboard.theme import (
    API,
    CRITERION_COLOURS,
    CRITERION_WORDS,
    SELF_HOSTED,
    SIDE_COLOURS,
    VERDICT_COLOURS,
    VERDICT_WORDS,
)

AnyChart: TypeAlias = alt.Chart | alt.LayerChart | alt.FacetChart


def side_colour(title: str = "whose answers") -> alt.Color:
    """API vs self-hosted, the same two colours on every chart."""
    return alt.Color(
        "side:N",
        title=title,
        scale=alt.Scale(
            domain=[API, SELF_HOSTED], range=[SIDE_COLOURS[API], SIDE_COLOURS[SELF_HOSTED]]
        ),
        legend=alt.Legend(orient="top"),
    )


def _labels(words: dict[str, str]) -> str:
    cases = " : ".join(f"datum.value == '{k}' ? '{v}'" for k, v in words.items())
    return f"{cases} : datum.value"


def _status_colour(title: str, colours: dict[str, str], words: dict[str, str]) -> alt.Color:
    return alt.Color(
        "verdict:N",
        title=title,
        scale=alt.Scale(domain=list(colours), range=list(colours.values())),
        legend=alt.Legend(orient="top", labelExpr=_labels(words)),
    )


def verdict_colour() -> alt.Color:
    """GO green, NO GO red, INSUFFICIENT DATA amber, with the verdicts' words in the legend."""
    return _status_colour("verdict", VERDICT_COLOURS, VERDICT_WORDS)


def criterion_colour() -> alt.Color:
    """A criterion's verdict: passes green, fails red, not sure yet amber, no data grey."""
    return _status_colour("criterion", CRITERION_COLOURS, CRITERION_WORDS)


def overview_chart(frame: pd.DataFrame) -> AnyChart:
    """Pairs collected per use case, coloured by verdict."""
    chart: AnyChart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("use_case:N", title=None, sort=None),
            x=alt.X("pairs:Q", title="request pairs collected"),
            color=verdict_colour(),
            tooltip=[
                alt.Tooltip("use_case:N", title="use case"),
                alt.Tooltip("verdict_text:N", title="verdict"),
                alt.Tooltip("pairs:Q", title="pairs", format=","),
                alt.Tooltip("deciding:N", title="decided by"),
                alt.Tooltip("eta:N", title="time to a decision"),
            ],
        )
        .properties(height=alt.Step(28))
    )
    return chart


def interval_chart(frame: pd.DataFrame) -> AnyChart:
    """Each criterion's interval as a bar, its estimate as a dot, its threshold as a black tick."""
    drawn = frame[frame["bar_low"].notna() | frame["threshold"].notna()]
    colour = criterion_colour()
    tooltip = [
        alt.Tooltip("criterion:N"),
        alt.Tooltip("measures:N", title="measures"),
        alt.Tooltip("result:N", title="verdict"),
        alt.Tooltip("estimate_text:N", title="estimate"),
        alt.Tooltip("interval:N", title="interval"),
        alt.Tooltip("target:N", title="target"),
        alt.Tooltip("n:Q", title="samples", format=","),
    ]
    base = alt.Chart().encode(tooltip=tooltip)
    interval = base.mark_bar(height=14, opacity=0.45, cornerRadius=3).encode(
        x=alt.X("bar_low:Q", title=None, scale=alt.Scale(zero=False, nice=True)),
        x2="bar_high:Q",
        color=colour,
    )
    estimate = base.mark_point(filled=True, size=90).encode(x="estimate:Q", color=colour)
    threshold = base.mark_tick(color="#222222", thickness=3, size=26).encode(x="threshold:Q")
    chart: AnyChart = (
        alt.layer(interval, estimate, threshold, data=drawn)
        .properties(width=560, height=34)
        .facet(
            row=alt.Row(
                "criterion:N",
                sort=list(drawn["criterion"]),
                title=None,
                header=alt.Header(labelAngle=0, labelAlign="left", labelFontSize=13),
            )
        )
        .resolve_scale(x="independent")
    )
    return chart


def histogram_chart(frame: pd.DataFrame, x_title: str, width: int = 420) -> AnyChart:
    """One histogram per side, stacked on a shared x axis, as shares of each side's pairs."""
    chart: AnyChart = (
        alt.Chart()
        .mark_bar(binSpacing=0)
        .encode(
            x=alt.X("start:Q", title=x_title, bin="binned"),
            x2="end:Q",
            y=alt.Y("share:Q", title="share", axis=alt.Axis(format="%", tickCount=3)),
            color=side_colour(),
            tooltip=[
                alt.Tooltip("label:N", title="measure"),
                alt.Tooltip("start:Q", title="from", format=".4~g"),
                alt.Tooltip("end:Q", title="to", format=".4~g"),
                alt.Tooltip("count:Q", title="pairs", format=","),
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
        .properties(width=width, height=90)
        .facet(
            data=frame,
            row=alt.Row(
                "side:N",
                sort=[API, SELF_HOSTED],
                title=None,
                header=alt.Header(labelAngle=0, labelAlign="left", labelFontSize=13),
            ),
        )
    )
    return chart


def small_multiples(frame: pd.DataFrame) -> AnyChart:
    """One histogram per quality measure, each on its own scale."""
    chart: AnyChart = (
        alt.Chart()
        .mark_bar(binSpacing=0, color=SIDE_COLOURS[SELF_HOSTED])
        .encode(
            x=alt.X("start:Q", title=None, bin="binned"),
            x2="end:Q",
            y=alt.Y("share:Q", title="share of pairs", axis=alt.Axis(format="%")),
            tooltip=[
                alt.Tooltip("start:Q", title="from", format=".3~g"),
                alt.Tooltip("end:Q", title="to", format=".3~g"),
                alt.Tooltip("count:Q", title="pairs", format=","),
            ],
        )
        .properties(width=200, height=130)
        .facet(data=frame, facet=alt.Facet("label:N", title=None), columns=3)
        .resolve_scale(x="independent", y="independent")
    )
    return chart


def proportion_chart(frame: pd.DataFrame) -> AnyChart:
    """Shares of pairs for 0/1 scores (valid JSON, exact match, refusals), labelled."""
    bars = (
        alt.Chart(frame)
        .mark_bar(color=SIDE_COLOURS[SELF_HOSTED])
        .encode(
            y=alt.Y("label:N", title=None, axis=alt.Axis(labelLimit=300)),
            x=alt.X(
                "share:Q",
                title="share of pairs",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            tooltip=[
                alt.Tooltip("label:N", title="measure"),
                alt.Tooltip("share:Q", format=".1%"),
                alt.Tooltip("pairs:Q", format=","),
            ],
        )
    )
    labels = bars.mark_text(align="right", dx=-6, color="#ffffff", fontWeight="bold").encode(
        text=alt.Text("share:Q", format=".1%")
    )
    chart: AnyChart = alt.layer(bars, labels).properties(height=alt.Step(26))
    return chart


def _time_axis(frame: pd.DataFrame, field: str) -> alt.X:
    times = frame[field]
    span_format = time_format(times.min(), times.max()) if len(times) else "%H:%M"
    return alt.X(f"{field}:T", title=None, axis=alt.Axis(format=span_format, labelOverlap=True))


def ratio_over_time_chart(frame: pd.DataFrame) -> AnyChart:
    """The per-pair latency ratio over time: median line, 90th percentile dashed, 1 = parity."""
    colour = SIDE_COLOURS[SELF_HOSTED]
    base = alt.Chart(frame).encode(
        x=_time_axis(frame, "time"),
        tooltip=[
            alt.Tooltip("start:T", title="from", format="%Y-%m-%d %H:%M"),
            alt.Tooltip("end:T", title="to", format="%Y-%m-%d %H:%M"),
            alt.Tooltip("pairs:Q", format=","),
            alt.Tooltip("median:Q", format=".2f"),
            alt.Tooltip("90th percentile:Q", format=".2f"),
        ],
    )
    median = base.mark_line(color=colour, point=alt.OverlayMarkDef(color=colour)).encode(
        y=alt.Y("median:Q", title="self-hosted latency ÷ API latency")
    )
    tail = base.mark_line(color=colour, strokeDash=[5, 4], opacity=0.7).encode(
        y="90th percentile:Q"
    )
    parity = (
        alt.Chart(pd.DataFrame({"y": [1.0]}))
        .mark_rule(color=SIDE_COLOURS[API], strokeDash=[2, 2])
        .encode(y="y:Q")
    )
    chart: AnyChart = alt.layer(tail, median, parity).properties(height=300)
    return chart


def history_chart(frame: pd.DataFrame) -> AnyChart:
    """Each stored verdict over time: pairs collected so far, coloured by verdict."""
    base = alt.Chart(frame).encode(
        x=_time_axis(frame, "evaluated_at"),
        y=alt.Y("pairs:Q", title="pairs at the time"),
    )
    line = base.mark_line(color="#bdbdbd")
    points = base.mark_point(filled=True, size=70).encode(
        color=verdict_colour(),
        tooltip=[
            alt.Tooltip("evaluated_at:T", title="evaluated", format="%Y-%m-%d %H:%M:%S"),
            alt.Tooltip("verdict_text:N", title="verdict"),
            alt.Tooltip("pairs:Q", format=","),
            alt.Tooltip("criteria_version:Q", title="criteria version"),
        ],
    )
    chart: AnyChart = alt.layer(line, points).properties(height=260)
    return chart


def cost_chart(frame: pd.DataFrame) -> AnyChart:
    """The monthly bill of each side."""
    chart: AnyChart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("side:N", title=None, sort=[API, SELF_HOSTED]),
            x=alt.X("monthly_usd:Q", title="USD per month", axis=alt.Axis(format="$,.0f")),
            color=side_colour(),
            tooltip=[alt.Tooltip("side:N"), alt.Tooltip("text:N", title="per month")],
        )
        .properties(height=alt.Step(34))
    )
    return chart


def break_even_chart(frame: pd.DataFrame, break_even: float | None) -> AnyChart:
    """Monthly cost against traffic; the rule marks the break-even traffic (where they cross)."""
    lines = (
        alt.Chart(frame)
        .mark_line()
        .encode(
            x=alt.X("requests:Q", title="requests per month", axis=alt.Axis(format="~s")),
            y=alt.Y(
                "monthly_usd:Q",
                title="USD per month",
                axis=alt.Axis(format="$,.0f"),
                scale=alt.Scale(domainMin=0),
            ),
            color=side_colour(),
            order="order:Q",
        )
    )
    layers: list[alt.Chart] = [lines]
    if break_even is not None:
        layers.append(
            alt.Chart(pd.DataFrame({"requests": [break_even]}))
            .mark_rule(color="#555555", strokeDash=[4, 3])
            .encode(x="requests:Q")
        )
    chart: AnyChart = alt.layer(*layers).properties(height=300)
    return chart


def rollout_chart(frame: pd.DataFrame) -> AnyChart:
    """The live share answered by the self-hosted model over time, one step per change."""
    chart: AnyChart = (
        alt.Chart(frame)
        .mark_line(interpolate="step-after", point=True, color=SIDE_COLOURS[SELF_HOSTED])
        .encode(
            x=_time_axis(frame, "at"),
            y=alt.Y(
                "to_percent:Q",
                title="live traffic to the self-hosted model (%)",
                scale=alt.Scale(domain=[0, 100]),
            ),
            tooltip=[
                alt.Tooltip("at:T", title="when", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip("event:N"),
                alt.Tooltip("by:N"),
                alt.Tooltip("live share:N"),
                alt.Tooltip("reason:N"),
            ],
        )
        .properties(height=220)
    )
    return chart


def comparison_chart(frame: pd.DataFrame, colours: dict[str, str]) -> AnyChart:
    """Criteria as rows, candidates side by side in each: interval bar, estimate, target tick.

    Each candidate in its own colour (`theme.candidate_colours`); the target is the black tick.
    """
    drawn = frame[frame["bar_low"].notna() | frame["threshold"].notna()]
    colour = alt.Color(
        "candidate:N",
        title="candidate",
        scale=alt.Scale(domain=list(colours), range=list(colours.values())),
        legend=alt.Legend(orient="top"),
    )
    tooltip = [
        alt.Tooltip("candidate:N"),
        alt.Tooltip("criterion:N"),
        alt.Tooltip("result:N", title="verdict"),
        alt.Tooltip("estimate_text:N", title="estimate"),
        alt.Tooltip("interval:N", title="interval"),
        alt.Tooltip("target:N", title="target"),
        alt.Tooltip("n:Q", title="samples", format=","),
    ]
    base = alt.Chart().encode(
        y=alt.Y("candidate:N", title=None, sort=list(colours), axis=None), tooltip=tooltip
    )
    interval = base.mark_bar(height=10, opacity=0.5, cornerRadius=3).encode(
        x=alt.X("bar_low:Q", title=None, scale=alt.Scale(zero=False, nice=True)),
        x2="bar_high:Q",
        color=colour,
    )
    estimate = base.mark_point(filled=True, size=70).encode(x="estimate:Q", color=colour)
    threshold = (
        alt.Chart()
        .mark_rule(color="#222222", strokeWidth=2)
        .encode(x="threshold:Q", tooltip=[alt.Tooltip("target:N", title="target")])
    )
    chart: AnyChart = (
        alt.layer(interval, estimate, threshold, data=drawn)
        .properties(width=560, height=alt.Step(16))
        .facet(
            row=alt.Row(
                "criterion:N",
                sort=list(dict.fromkeys(drawn["criterion"])),
                title=None,
                header=alt.Header(labelAngle=0, labelAlign="left", labelFontSize=13),
            )
        )
        .resolve_scale(x="independent")
    )
    return chart
