"""One use case: criteria, latency, quality, cost, verdict history and the worst pairs."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.client import ApiError, Connection
from dashboard.data import Api
from dashboard.frames import (
    break_even_frame,
    candidates_of,
    comparison_frame,
    comparison_table,
    cost_frame,
    cost_view,
    criteria_frame,
    distribution_frame,
    distribution_table,
    evidence_sources,
    fmt_hours,
    fmt_number,
    fmt_percent,
    fmt_savings,
    fmt_time,
    fmt_usd,
    history_frame,
    local_times,
    measured,
    only,
    parse_time,
    proportion_frame,
    rollout_frame,
    time_to_decision,
    timeline_frame,
    with_quantiles,
)
from dashboard.pairs import diff_html, pair_view
from dashboard.theme import (
    CRITERION_COLOURS,
    QUALITY_METRICS,
    VERDICT_MEANING,
    WORST_BY,
    candidate_colours,
    metric_label,
    verdict_badge,
)

api = Api(Connection.from_environment())
tz = st.context.timezone  # the viewer's browser's, when it told; else UTC


def panel(title: str, render: Callable[[], None]) -> None:
    """A section whose API failure is shown in place, without hiding the other sections."""
    st.header(title, divider="gray")
    try:
        render()
    except ApiError as exc:
        st.error(f"This part could not be loaded. {exc}")


try:
    use_cases = api.use_cases()
except ApiError as exc:
    st.error(f"The readiness figures could not be loaded. {exc}")
    st.stop()
if not use_cases:
    st.info("No use cases are configured yet.")
    st.stop()

names = [case["name"] for case in use_cases]
asked = st.query_params.get("use_case")
use_case = st.selectbox(
    "Use case", names, index=names.index(asked) if asked in names else 0, key="use_case_choice"
)
st.query_params["use_case"] = use_case
case = use_cases[names.index(use_case)]

try:
    readiness = with_quantiles(api.readiness(use_case), api.criteria(use_case))
except ApiError as exc:
    st.error(f"The verdict of {use_case} could not be loaded. {exc}")
    st.stop()
rivals = candidates_of(readiness)
# With several candidates, the details below are the lead candidate's (the API's default).
lead = readiness.get("candidate") if rivals else None

verdict = readiness["verdict"]
st.markdown(f"# {use_case} &nbsp; {verdict_badge(verdict, '1.4rem')}", unsafe_allow_html=True)
st.markdown(
    f"**{VERDICT_MEANING[verdict].capitalize()}.** API model `{case['primary_model']}`, "
    f"self-hosted model `{case['candidate_model']}`; {case['mode']} mode, "
    f"{case['sample_rate']:.0%} of traffic mirrored."
)
for reason in readiness.get("reasons", []):
    st.markdown(f"- {reason}")
for criterion in readiness.get("criteria", []):
    if criterion.get("warning"):
        st.warning(f"**{criterion['name']}** {criterion['warning']}")

start, end = (parse_time(readiness["window"].get(k)) for k in ("start", "end"))
collected = fmt_hours((end - start).total_seconds() / 3600) if start and end else "no pairs yet"
pairs_count, version_column, window_column, eta_column = st.columns(4)
pairs_count.metric("request pairs", f"{readiness['pairs']:,}")
version = readiness.get("criteria_version")
version_column.metric("criteria version", "none" if version is None else f"v{version}")
window_column.metric(
    "collected over",
    collected,
    help=f"from {fmt_time(start, tz)} to {fmt_time(end, tz)}" if start and end else None,
)
eta = time_to_decision(readiness, tz)
eta_column.metric("time to a decision", eta.short, help=eta.text)
sources = evidence_sources(readiness)
if sources is not None:
    st.caption(sources)


def criteria_section() -> None:
    """Each criterion's interval against its target, and the table of figures."""
    frame = criteria_frame(readiness)
    if frame.empty:
        st.info(
            "No success criteria are defined for this use case yet. The ML team writes them "
            "(in switchover.yaml, or `switchover criteria apply -f FILE`); until then the "
            "verdict stays INSUFFICIENT DATA."
        )
        return
    st.caption(
        "Each bar is the range the true value lies in (a confidence interval, valid however "
        "often it is looked at); the dot is the estimate, the black tick the target."
    )
    st.altair_chart(charts.interval_chart(frame))
    columns = {
        "criterion": "criterion",
        "measures": "measures",
        "result": "verdict",
        "estimate_text": "estimate",
        "interval": "interval",
        "target": "target",
        "n": "samples",
        "needed_text": "samples needed (total)",
    }
    table = frame[list(columns)].rename(columns=columns)
    colours = dict(zip(frame["result"], frame["verdict"].map(CRITERION_COLOURS), strict=True))

    def colour(value: object) -> str:
        return f"color:{colours.get(str(value), 'inherit')};font-weight:600"

    # a static table wraps its words: no column is cut off however narrow the window
    st.table(table.style.map(colour, subset=["verdict"]).hide(axis="index"))


def comparison_section() -> None:
    """Every candidate side by side: rank, verdict, cost, capacity and each criterion."""
    names = [c["candidate"] for c in rivals]
    st.caption(
        f"Each candidate in its own colour, on the same traffic. The details further down are "
        f"the lead candidate's, **{lead}**. Ranked: those that can take over first (the "
        "cheapest first), then the closest, then those that fail."
    )
    colours = candidate_colours(names)
    legend = " ".join(
        f'<span style="color:{colours[n]};font-weight:700">&#9632; {n}</span>' for n in names
    )
    st.markdown(legend, unsafe_allow_html=True)
    for candidate in sorted(rivals, key=lambda c: c["rank"]):
        reason = (candidate.get("reasons") or [""])[0]
        st.markdown(
            f"{verdict_badge(candidate['verdict'])} **{candidate['candidate']}** — {reason}",
            unsafe_allow_html=True,
        )
    frame = comparison_frame(readiness)
    if not frame.empty:
        st.altair_chart(charts.comparison_chart(frame, colours))
    st.dataframe(comparison_table(readiness), hide_index=True, width="stretch")


if rivals:
    panel("Candidates side by side", comparison_section)
panel("Success criteria", criteria_section)


def rollout_section() -> None:
    """Live traffic on the self-hosted model: mode, share, fallback rate and step history."""
    rollout = api.rollout(use_case)
    fallback = rollout["fallback"]
    mode_column, share_column, fallback_column, next_column = st.columns(4)
    mode_column.metric("mode", rollout["mode"])
    share_column.metric(
        "live traffic to the self-hosted model",
        fmt_percent(rollout["percent"]),
        help="The rest is answered by the API model, as before.",
    )
    rate = fallback["rate"]
    fallback_column.metric(
        "fallback rate",
        "—" if rate is None else f"{rate:.1%}",
        help=(
            f"Of {fallback['routed']:,} live requests sent to the self-hosted model since "
            f"{fmt_time(parse_time(fallback['window_start']), tz)}, the share the API "
            f"answered instead (or that broke off mid-stream). Above {fallback['limit']:.1%} "
            "the rollout goes back to 0 % automatically."
        ),
    )
    allowed = parse_time(rollout.get("next_allowed_at"))
    next_column.metric(
        "next step",
        fmt_percent(rollout["next_percent"]),
        help=f"allowed from {fmt_time(allowed, tz)}, on a GO verdict" if allowed else None,
    )
    steps = " → ".join(
        f"**{fmt_percent(s)}**" if s == rollout["percent"] else fmt_percent(s)
        for s in rollout["steps"]
    )
    st.markdown(f"Steps: {steps}")
    frame = rollout_frame(rollout)
    if frame.empty:
        st.info(
            f"{use_case} has not been rolled out yet: every live request is answered by the "
            "API model. An admin advances it one step at a time on a GO verdict "
            f"(`switchover rollout advance {use_case}`)."
        )
        return
    changes = frame[frame["event"] != "verdict changed"]
    if not changes.empty:
        st.altair_chart(charts.rollout_chart(changes), width="stretch")
    table = frame.drop(columns=["to_percent"]).assign(at=local_times(frame["at"], tz))
    st.dataframe(table, hide_index=True, width="stretch")


if readiness["pairs"] == 0:
    st.info(
        f"No request pairs have been captured for {use_case} yet. Once traffic flows through "
        f"the proxy ({case['sample_rate']:.0%} of it is mirrored to the self-hosted model), "
        "latency, quality, the verdict history and the worst pairs appear here."
    )
    st.stop()


def latency_section() -> None:
    """Both sides' latency distributions and the per-request ratio over time."""
    total = api.distributions(use_case, ("primary.latency_ms", "candidate.latency_ms"), True, lead)
    first = api.distributions(use_case, ("primary.ttft_ms", "candidate.ttft_ms"), True, lead)
    if not measured(total) and not measured(first):
        st.info("Latency has not been scored for this use case's pairs yet.")
        return
    left, right = st.columns(2)
    for column, body, title in (
        (left, total, "Time to the full answer (ms)"),
        (right, first, "Time to the first token (ms)"),
    ):
        with column:
            st.subheader(title)
            frame = distribution_frame(body)
            if frame.empty:
                st.info("Not measured yet.")
                continue
            st.altair_chart(charts.histogram_chart(frame, "milliseconds", width=300))
    st.dataframe(
        pd.concat([distribution_table(total), distribution_table(first)], ignore_index=True),
        hide_index=True,
        width="stretch",
    )
    ratio = timeline_frame(api.timeline(use_case, "latency.ratio", lead))
    st.subheader("Self-hosted latency relative to the API, over time")
    if ratio.empty:
        st.info("No pair has both latencies yet.")
        return
    st.caption(
        "Per request: self-hosted time ÷ API time. Solid: the median; dashed: the slowest 10%; "
        "the dotted line is parity (1 = as fast as the API)."
    )
    st.altair_chart(charts.ratio_over_time_chart(ratio), width="stretch")


def quality_section() -> None:
    """Quality scores, with the API's agreement with itself beside the self-hosted model's."""
    similarity = api.distributions(
        use_case, ("quality.semantic_similarity", "noise.semantic_similarity"), True, lead
    )
    others = api.distributions(use_case, QUALITY_METRICS, False, lead)
    if not measured(similarity) and not measured(others):
        st.info("Answer quality has not been scored for this use case's pairs yet.")
        return
    if measured(similarity):
        st.subheader("How close the self-hosted answers are to the API's")
        st.caption(
            "Purple: similarity of the self-hosted answer to the API's answer. Blue: the API "
            "asked the same question again, compared with its own first answer; the noise "
            "floor no model can beat."
        )
        st.altair_chart(
            charts.histogram_chart(
                distribution_frame(similarity), "similarity (1 = same meaning)", width=760
            )
        )
        if "noise.semantic_similarity" not in measured(similarity):
            st.info("The noise floor is not measured yet: no re-asked requests were scored.")
    spread = only(others, measured(others, binary=False))
    if spread["metrics"]:
        st.subheader("Other quality measures")
        st.altair_chart(charts.small_multiples(distribution_frame(spread)))
    shares = proportion_frame(others)
    if not shares.empty:
        st.subheader("Share of pairs")
        st.altair_chart(charts.proportion_chart(shares), width="stretch")
    st.dataframe(
        pd.concat([distribution_table(similarity), distribution_table(spread)], ignore_index=True),
        hide_index=True,
        width="stretch",
    )


def cost_section() -> None:
    """Monthly cost of each side, savings and break-even, or why it is not measured yet."""
    cost = cost_view(api.cost(use_case, lead))
    if cost is None or not cost.measured:
        missing = ", ".join(cost.missing) if cost and cost.missing else ""
        st.info(
            "Cost is not measured yet: the monthly projection needs the API's token prices and "
            "the self-hosted deployment's measured capacity (`switchover replay`)."
            + (f" Missing: {missing}." if missing else "")
        )
        return
    api_bill, own_bill, savings, break_even = st.columns(4)
    api_bill.metric("API per month", fmt_usd(cost.monthly_primary_usd))
    own_bill.metric("self-hosted per month", fmt_usd(cost.monthly_candidate_usd))
    savings.metric("savings per month", fmt_savings(cost.monthly_savings_usd))
    break_even.metric(
        "break-even traffic",
        "—"
        if cost.break_even_requests_per_month is None
        else f"{fmt_number(cost.break_even_requests_per_month)} requests/month",
    )
    st.altair_chart(charts.cost_chart(cost_frame(cost)), width="stretch")
    curve = break_even_frame(cost)
    if not curve.empty:
        st.caption(
            "Monthly cost as traffic grows: the API bills per request; the self-hosted line "
            "steps up with each replica the traffic needs. They cross at the break-even "
            "traffic (the dashed rule)."
        )
        st.altair_chart(
            charts.break_even_chart(curve, cost.break_even_requests_per_month), width="stretch"
        )


def history_section() -> None:
    """Every stored verdict over time."""
    frame = history_frame(api.history(use_case, lead))
    if frame.empty:
        st.info("No verdict has been stored yet.")
        return
    st.altair_chart(charts.history_chart(frame), width="stretch")


def worst_pairs_section() -> None:
    """The worst pairs by a chosen score: request, both answers with a word diff, scores."""
    options: list[str | None] = [None, *WORST_BY]
    worst_by = st.selectbox(
        "Worst first by",
        options,
        format_func=lambda m: "newest first" if m is None else metric_label(m),
        key="worst_by",
    )
    limit = st.slider("How many pairs", 1, 50, 5, key="worst_limit")
    found = api.pairs(use_case, worst_by, limit, lead)
    if not found:
        st.info(
            "No pair has this score yet."
            if worst_by
            else "No request pairs captured for this use case yet."
        )
        return
    for index, raw in enumerate(found):
        pair = pair_view(raw)
        score = raw.get("scores", {}).get(worst_by) if worst_by else None
        heading = pair.request[:90] or pair.id
        if worst_by:
            heading += f" — {metric_label(worst_by)} {fmt_number(score)}"
        with st.expander(heading, expanded=index == 0):
            st.markdown("**Request**")
            st.text(pair.request)
            left, right = st.columns(2)
            old, new = diff_html(pair.api_answer, pair.self_hosted_answer)
            left.markdown("**API answer** (words the self-hosted model left out struck through)")
            left.html(f"<div>{old}</div>")
            right.markdown("**Self-hosted answer** (its own words highlighted)")
            right.html(f"<div>{new}</div>")
            scores = pd.DataFrame(
                [(label, fmt_number(value)) for label, value in pair.scores],
                columns=["score", "value"],
            )
            st.dataframe(scores, hide_index=True, width="stretch", height="content")


for title, section in (
    ("Rollout", rollout_section),
    ("Latency", latency_section),
    ("Answer quality", quality_section),
    ("Cost", cost_section),
    ("Verdict history", history_section),
    ("Worst pairs", worst_pairs_section),
):
    panel(title, section)
