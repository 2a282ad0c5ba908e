"""Readiness API responses turned into the frames and words the dashboard shows. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from dashboard.theme import (
    API,
    CRITERION_WORDS,
    METRIC_LABELS,
    OPERATOR_WORDS,
    SELF_HOSTED,
    VERDICT_WORDS,
    metric_label,
)

Json = Mapping[str, Any]
MISSING = "—"  # a figure nothing has measured


def time_format(start: datetime | None, end: datetime | None) -> str:
    """A d3 time format for an axis spanning start..end: seconds for minutes, days for weeks."""
    span = (end - start).total_seconds() if start and end else 0.0
    if span < 600:
        return "%H:%M:%S"
    if span < 86400:
        return "%H:%M"
    return "%d %b %H:%M"


def side_of(metric: str) -> str:
    """Whose answers a metric describes: the API's (incl. its re-asks) or the self-hosted's."""
    return API if metric.startswith(("primary.", "noise.")) else SELF_HOSTED


def parse_time(value: str | None) -> datetime | None:
    """An API timestamp as an aware datetime (naive ones are UTC)."""
    if not value:
        return None
    moment = pd.Timestamp(value)
    if moment.tzinfo is None:
        moment = moment.tz_localize("UTC")
    return moment.to_pydatetime()


def fmt_time(moment: datetime | None, tz: str | None = None, now: datetime | None = None) -> str:
    """A moment in the viewer's time zone (`tz`, an IANA name; UTC when unknown), no offset.

    Today's as `20:03`, another day's as `2 Dec 20:03`.
    """
    if moment is None:
        return MISSING
    zone = _zone(tz)
    local = pd.Timestamp(moment).tz_convert(zone)
    today = pd.Timestamp(now or datetime.now(local.tzinfo)).tz_convert(zone)
    if local.date() == today.date():
        return f"{local:%H:%M}"
    return (
        f"{local.day} {local:%b %H:%M}" if local.year == today.year else f"{local:%Y-%m-%d %H:%M}"
    )


def _zone(tz: str | None) -> str:
    if not tz:
        return "UTC"
    try:
        pd.Timestamp(0, tz=tz)
    except Exception:  # an unknown zone name: UTC
        return "UTC"
    return tz


def local_times(column: pd.Series, tz: str | None) -> pd.Series:
    """Aware timestamps as the viewer's wall-clock times, shown without an offset."""
    times = pd.to_datetime(column, utc=True)
    return times.dt.tz_convert(_zone(tz)).dt.tz_localize(None)


def fmt_number(value: float | None) -> str:
    """A figure for people: thousands separated, three significant digits below 100."""
    if value is None or not math.isfinite(value):
        return MISSING
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if 0 < abs(value) < 0.001:
        return f"{value:.7f}".rstrip("0")
    return f"{value:.3g}"


def fmt_usd(value: float | None) -> str:
    """Dollars: whole above $100, cents below, significant digits below a cent."""
    if value is None or not math.isfinite(value):
        return MISSING
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 0.01:
        return f"${value:,.2f}"
    return f"${value:.2g}"


def fmt_hours(hours: float) -> str:
    """A duration in the words a person would use: 'under a minute', '12 minutes', '3.5 hours'."""
    if hours < 1 / 60:
        return "under a minute"
    if hours < 1:
        minutes = round(hours * 60)
        return f"{minutes} minute{'' if minutes == 1 else 's'}"
    if hours < 48:
        return f"{hours:.1f} hours"
    return f"{hours / 24:.1f} days"


def fmt_wait(hours: float) -> str:
    """How long until something, in words: 'under a minute', 'about 12 minutes'."""
    text = fmt_hours(hours)
    return text if text == "under a minute" else f"about {text}"


def fmt_savings(value: float | None) -> str:
    """Savings a month; a negative figure as what self-hosting costs more."""
    if value is None or not math.isfinite(value):
        return MISSING
    if value < 0:
        return f"costs {fmt_usd(-value)} more a month"
    return fmt_usd(value)


def interval_text(low: float | None, high: float | None, stat: str | None = None) -> str:
    """An interval in words: '0.61 to 0.74', '608 or more', 'at most 0.05'."""
    if low is None and high is None:
        return MISSING
    if high is None:
        return f"{fmt_figure(low, stat)} or more"
    if low is None:
        return f"at most {fmt_figure(high, stat)}"
    return f"{fmt_figure(low, stat)} to {fmt_figure(high, stat)}"


def needed_text(needed_n: int | None, n: int) -> str:
    """'1,500 in total (1,200 so far)': 'needed' is always the total."""
    if needed_n is None:
        return MISSING
    return f"{needed_n:,} in total ({n:,} so far)"


def fmt_figure(value: float | None, stat: str | None) -> str:
    """A criterion's figure: proportions as percentages, the rest as numbers."""
    if stat == "proportion" and value is not None and math.isfinite(value):
        return f"{value * 100:.3g}%"
    return fmt_number(value)


def target_text(op: str | None, threshold: float | None, stat: str | None = None) -> str:
    """`<= 1500` as 'at most 1,500'."""
    if threshold is None:
        return MISSING
    return f"{OPERATOR_WORDS.get(op or '', op or '')} {fmt_figure(threshold, stat)}".strip()


def _ordinal(q: float) -> str:
    number = round(q * 100, 1)
    text = f"{number:g}"
    if number != int(number):
        return f"{text}th"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(int(number) % 10, "th")
    if 10 <= int(number) % 100 <= 20:
        suffix = "th"
    return f"{text}{suffix}"


def criterion_measure(criterion: Json) -> str:
    """What a criterion measures, in words: statistic, metric label and comparison."""
    label = criterion.get("label") or metric_label(criterion["metric"])
    stat = criterion.get("stat")
    q = criterion.get("q")
    if stat == "quantile":
        text = f"{_ordinal(q)} percentile of {label}" if q is not None else f"percentile of {label}"
    elif stat == "mean":
        text = f"average {label}"
    else:
        text = str(label)
    mode = criterion.get("mode")
    if mode == "noise_adjusted":
        return f"{text}, minus the API's agreement with itself"
    if mode == "relative":
        return f"{text}, relative to the API on the same request"
    return text


def with_quantiles(readiness: Json, document: Json | None) -> dict[str, Any]:
    """The readiness with each quantile criterion's `q`, taken from its criteria document."""
    written = (document or {}).get("criteria") or {}
    q_by_name = {
        c.get("name"): c.get("q")
        for c in written.get("criteria", [])
        if isinstance(c, Mapping) and c.get("q") is not None
    }
    criteria = [
        {**c, "q": q_by_name[c["name"]]} if c["name"] in q_by_name else dict(c)
        for c in readiness.get("criteria", [])
    ]
    return {**readiness, "criteria": criteria}


def _open(readiness: Json) -> list[Json]:
    return [c for c in readiness.get("criteria", []) if c["verdict"] != "PASS"]


def _more(criterion: Json) -> int | None:
    needed = criterion.get("needed_n")
    return None if needed is None else max(int(needed) - int(criterion["n"]), 0)


def _window_hours(readiness: Json) -> float | None:
    window = readiness.get("window") or {}
    start, end = parse_time(window.get("start")), parse_time(window.get("end"))
    if start is None or end is None or end <= start:
        return None
    return (end - start).total_seconds() / 3600


def _bottleneck(readiness: Json) -> Json | None:
    """The open criterion furthest from a decision: unmeasured first, then most samples short."""
    open_ = _open(readiness)
    if not open_:
        return None
    return max(open_, key=lambda c: (_more(c) is None, _more(c) or 0))


def deciding_criterion(readiness: Json) -> str:
    """The criterion that decides the verdict (or holds it up), in one line."""
    verdict = readiness["verdict"]
    criteria = readiness.get("criteria", [])
    if verdict == "GO":
        return f"all {len(criteria)} criteria pass"
    if verdict == "NO_GO":
        failed = [c for c in criteria if c["verdict"] == "FAIL"]
        if not failed:
            return "; ".join(readiness.get("reasons", [])) or "a criterion fails"
        worst = sorted(failed, key=lambda c: not c.get("critical"))[0]
        measure = criterion_measure(worst)
        return (
            f"{worst['name']} fails: {measure} is "
            f"{fmt_figure(worst.get('estimate'), worst.get('stat'))}, "
            f"needs {target_text(worst.get('op'), worst.get('threshold'), worst.get('stat'))}"
        )
    if not criteria:
        return "no success criteria are defined yet"
    if readiness.get("pairs", 0) == 0:
        return "no request pairs captured yet"
    blocker = _bottleneck(readiness)
    if blocker is None:
        return "every criterion passes; the minimum duration has not passed yet"
    more = _more(blocker)
    if more is None:
        if blocker.get("warning"):
            return f"{blocker['name']} {blocker['warning']}"
        if blocker["verdict"] == "NO_DATA":
            return f"{blocker['name']}: {criterion_measure(blocker)} is not measured yet"
        return f"{blocker['name']}: the estimate sits on the threshold"
    return (
        f"{blocker['name']}: {CRITERION_WORDS[blocker['verdict']]}, "
        f"{int(blocker['needed_n']):,} samples needed in total ({int(blocker['n']):,} so far)"
    )


@dataclass(frozen=True)
class Eta:
    """The estimated time to a decision; `hours` is None when it can't be estimated."""

    hours: float | None
    text: str
    decided: bool = False
    headline: str | None = None  # the short form, when it is not "about …" or "unknown"

    @property
    def short(self) -> str:
        """A few words for a headline figure: 'decided', 'about 3.0 hours' or 'unknown'."""
        if self.decided:
            return "decided"
        if self.headline is not None:
            return self.headline
        if self.hours is None:
            return "unknown"
        return fmt_wait(self.hours)


def _rate_per_hour(readiness: Json, criterion: Json) -> float | None:
    """Samples per hour this criterion gets lately (some draw on a subset: re-asks, a segment)."""
    pairs = int(readiness.get("pairs") or 0)
    if not criterion["n"] or not pairs:
        return None
    if "pairs_per_hour" in readiness:  # the service's recent rate (None: traffic stopped)
        recent = readiness.get("pairs_per_hour")
        return float(recent) * int(criterion["n"]) / pairs if recent else None
    hours = _window_hours(readiness)
    return int(criterion["n"]) / hours if hours else None


def time_to_decision(readiness: Json, tz: str | None = None) -> Eta:
    """How long until the verdict is GO or NO_GO, at each open criterion's recent pace."""
    if readiness["verdict"] in ("GO", "NO_GO"):
        return Eta(0.0, "decided", decided=True)
    criteria = readiness.get("criteria", [])
    if not criteria:
        return Eta(None, "unknown: no success criteria")
    if readiness.get("pairs", 0) == 0:
        return Eta(None, "unknown: no request pairs yet")
    open_ = _open(readiness)
    if not open_:
        waiting = [r for r in readiness.get("reasons", []) if "min_duration" in r]
        return Eta(None, waiting[0] if waiting else "waiting for the minimum duration")
    for criterion in open_:
        if _more(criterion) is None and criterion.get("warning"):
            return Eta(
                None,
                f"never as configured: {criterion['name']} {criterion['warning']}",
                headline="never, as configured",
            )
    idle = parse_time(readiness.get("idle_since"))
    if idle is not None:
        stopped = f"no traffic since {fmt_time(idle, tz)}"
        return Eta(None, stopped, headline=stopped)
    longest = 0.0
    for criterion in open_:
        more = _more(criterion)
        if more is None:
            if criterion["verdict"] == "NO_DATA":
                return Eta(None, f"unknown: {criterion['name']} is not measured yet")
            return Eta(None, f"unknown: {criterion['name']} sits on its threshold")
        if more == 0:
            continue
        rate = _rate_per_hour(readiness, criterion)
        if rate is None:
            return Eta(
                None,
                f"unknown: {criterion['name']} needs {int(criterion['needed_n']):,} samples "
                f"in total ({int(criterion['n']):,} so far)",
            )
        longest = max(longest, more / rate)
    if longest == 0:
        return Eta(
            None,
            "any time now: each open criterion has the samples a decision usually takes",
            headline="any time now",
        )
    return Eta(longest, f"{fmt_wait(longest)} at the recent pace")


def overview_frame(
    use_cases: Sequence[Json], readiness: Sequence[Json], tz: str | None = None
) -> pd.DataFrame:
    """One row per use case: verdict, pairs, deciding criterion, time to a decision."""
    verdicts = {r["use_case"]: r for r in readiness}
    rows = []
    for case in use_cases:
        found = verdicts.get(case["name"])
        eta = time_to_decision(found, tz) if found else Eta(None, "unknown")
        rows.append(
            {
                "use_case": case["name"],
                "verdict": found["verdict"] if found else "INSUFFICIENT_DATA",
                "verdict_text": VERDICT_WORDS[found["verdict"]] if found else MISSING,
                "pairs": int(case.get("pairs", 0)),
                "models": f"{case.get('primary_model')} → {case.get('candidate_model')}",
                "mode": case.get("mode", ""),
                "sample_rate": case.get("sample_rate"),
                "deciding": deciding_criterion(found) if found else "no verdict yet",
                "eta_hours": eta.hours,
                "eta": eta.text,
            }
        )
    columns = [
        "use_case",
        "verdict",
        "verdict_text",
        "pairs",
        "models",
        "mode",
        "sample_rate",
        "deciding",
        "eta_hours",
        "eta",
    ]
    return pd.DataFrame(rows, columns=columns)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def criteria_frame(readiness: Json) -> pd.DataFrame:
    """One row per criterion, with words for people and the numbers the interval chart needs."""
    rows = []
    for c in readiness.get("criteria", []):
        estimate, low, high = (_finite(c.get(k)) for k in ("estimate", "ci_low", "ci_high"))
        threshold = _finite(c.get("threshold"))
        known = [v for v in (estimate, threshold) if v is not None]
        more = _more(c)
        stat = c.get("stat")
        rows.append(
            {
                "criterion": c["name"],
                "measures": criterion_measure(c),
                "metric": c["metric"],
                "verdict": c["verdict"],
                "result": CRITERION_WORDS.get(c["verdict"], c["verdict"]),
                "critical": bool(c.get("critical")),
                "estimate": estimate,
                "ci_low": low,
                "ci_high": high,
                "estimate_text": fmt_figure(estimate, stat),
                "interval": interval_text(low, high, stat) if estimate is not None else MISSING,
                "target": target_text(c.get("op"), threshold, stat),
                "threshold": threshold,
                "n": int(c["n"]),
                "needed_n": c.get("needed_n"),
                "more_needed": more,
                "needed_text": needed_text(c.get("needed_n"), int(c["n"])),
                "note": c.get("note") or "",
                "warning": c.get("warning") or "",
                # What the chart draws: an open end stops at the estimate or the threshold.
                "bar_low": low if low is not None else (min(known) if known else None),
                "bar_high": high if high is not None else (max(known) if known else None),
            }
        )
    columns = [
        "criterion",
        "measures",
        "metric",
        "verdict",
        "result",
        "critical",
        "estimate",
        "estimate_text",
        "ci_low",
        "ci_high",
        "interval",
        "target",
        "threshold",
        "n",
        "needed_n",
        "more_needed",
        "needed_text",
        "note",
        "warning",
        "bar_low",
        "bar_high",
    ]
    return pd.DataFrame(rows, columns=columns)


def distribution_frame(body: Json) -> pd.DataFrame:
    """Histogram bars, long form: a row per metric and bin, with its share of the pairs."""
    rows = []
    for m in body.get("metrics", []):
        n = int(m["n"])
        if not n:
            continue
        edges = m["edges"]
        for i, count in enumerate(m["counts"]):
            rows.append(
                {
                    "metric": m["metric"],
                    "label": m["label"],
                    "side": side_of(m["metric"]),
                    "start": float(edges[i]),
                    "end": float(edges[i + 1]),
                    "count": int(count),
                    "share": count / n,
                }
            )
    columns = ["metric", "label", "side", "start", "end", "count", "share"]
    return pd.DataFrame(rows, columns=columns)


def distribution_table(body: Json) -> pd.DataFrame:
    """The figures under a distribution chart: pairs, average, median, tail."""
    rows = [
        {
            "measure": m["label"],
            "whose answers": side_of(m["metric"]),
            "pairs": int(m["n"]),
            "average": fmt_number(m.get("mean")),
            "median": fmt_number(m.get("p50")),
            "95th percentile": fmt_number(m.get("p95")),
            "99th percentile": fmt_number(m.get("p99")),
            "beyond the chart": int(m.get("overflow", 0)),
        }
        for m in body.get("metrics", [])
        if m["n"]
    ]
    columns = [
        "measure",
        "whose answers",
        "pairs",
        "average",
        "median",
        "95th percentile",
        "99th percentile",
        "beyond the chart",
    ]
    return pd.DataFrame(rows, columns=columns)


def proportion_frame(body: Json) -> pd.DataFrame:
    """0/1 scores as the share of pairs where they hold (valid JSON, exact match, refusals)."""
    rows = [
        {"metric": m["metric"], "label": m["label"], "share": m["mean"], "pairs": int(m["n"])}
        for m in body.get("metrics", [])
        if m.get("binary") and m["n"]
    ]
    return pd.DataFrame(rows, columns=["metric", "label", "share", "pairs"])


def measured(body: Json, binary: bool | None = None) -> list[str]:
    """The metrics of a distributions response that have scores (optionally only 0/1 ones)."""
    return [
        m["metric"]
        for m in body.get("metrics", [])
        if m["n"] and (binary is None or bool(m.get("binary")) == binary)
    ]


def only(body: Json, metrics: Sequence[str]) -> dict[str, Any]:
    """A distributions response restricted to some metrics."""
    return {**body, "metrics": [m for m in body.get("metrics", []) if m["metric"] in metrics]}


def timeline_frame(body: Json) -> pd.DataFrame:
    """Time buckets with the median and 90th percentile, midpoint for the x axis."""
    rows = []
    for p in body.get("points", []):
        start, end = parse_time(p["start"]), parse_time(p["end"])
        assert start is not None
        assert end is not None
        rows.append(
            {
                "time": start + (end - start) / 2,
                "start": start,
                "end": end,
                "pairs": int(p["n"]),
                "median": float(p["p50"]),
                "90th percentile": float(p["p90"]),
            }
        )
    return pd.DataFrame(
        rows, columns=["time", "start", "end", "pairs", "median", "90th percentile"]
    )


def history_frame(history: Sequence[Json]) -> pd.DataFrame:
    """Stored verdicts, oldest first."""
    rows = [
        {
            "evaluated_at": parse_time(h["evaluated_at"]),
            "verdict": h["verdict"],
            "verdict_text": VERDICT_WORDS.get(h["verdict"], h["verdict"]),
            "pairs": int(h.get("pairs", 0)),
            "criteria_version": h.get("criteria_version"),
        }
        for h in history
    ]
    frame = pd.DataFrame(
        rows, columns=["evaluated_at", "verdict", "verdict_text", "pairs", "criteria_version"]
    )
    return frame.sort_values("evaluated_at", ignore_index=True)


@dataclass(frozen=True)
class CostView:
    """The monthly projection as the cost panel shows it; None figures are not measured yet."""

    monthly_primary_usd: float | None
    monthly_candidate_usd: float | None
    monthly_savings_usd: float | None
    break_even_requests_per_month: float | None
    monthly_requests: float | None
    primary_usd_per_request: float | None
    candidate_usd_per_request: float | None
    missing: tuple[str, ...]
    # (requests a month, API bill, self-hosted bill), the service's cost curve
    curve: tuple[tuple[float, float, float], ...] = ()

    @property
    def measured(self) -> bool:
        """Whether both monthly figures are known, so the comparison can be drawn."""
        return self.monthly_primary_usd is not None and self.monthly_candidate_usd is not None


def cost_view(body: Json | None) -> CostView | None:
    """The cost response as a CostView; None when the service has no projection."""
    if body is None:
        return None

    def figure(name: str) -> float | None:
        return _finite(body.get(name))

    savings = figure("monthly_savings_usd")
    primary, candidate = figure("monthly_primary_usd"), figure("monthly_candidate_usd")
    if savings is None and primary is not None and candidate is not None:
        savings = primary - candidate
    return CostView(
        monthly_primary_usd=primary,
        monthly_candidate_usd=candidate,
        monthly_savings_usd=savings,
        break_even_requests_per_month=figure("break_even_requests_per_month"),
        monthly_requests=figure("monthly_requests"),
        primary_usd_per_request=figure("primary_usd_per_request"),
        candidate_usd_per_request=figure("candidate_usd_per_request"),
        missing=tuple(plain_reason(str(m)) for m in body.get("missing", [])),
        curve=tuple(
            (float(p["requests_per_month"]), float(p["primary_usd"]), float(p["candidate_usd"]))
            for p in body.get("curve") or []
        ),
    )


def plain_reason(reason: str) -> str:
    """'cost.monthly_primary_usd: why' as 'API cost per month: why'."""
    metric, colon, why = reason.partition(":")
    if colon and metric.strip() in METRIC_LABELS:
        return f"{METRIC_LABELS[metric.strip()]}:{why}"
    return reason


def cost_frame(cost: CostView) -> pd.DataFrame:
    """The two monthly bills side by side."""
    rows = [
        {"side": side, "monthly_usd": value, "text": fmt_usd(value)}
        for side, value in (
            (API, cost.monthly_primary_usd),
            (SELF_HOSTED, cost.monthly_candidate_usd),
        )
        if value is not None
    ]
    return pd.DataFrame(rows, columns=["side", "monthly_usd", "text"])


def break_even_frame(cost: CostView) -> pd.DataFrame:
    """Monthly cost against monthly traffic: the API's grows per request, the self-hosted one
    steps up with the replicas the traffic needs (the service's curve, the one the break-even
    figure comes from). `order` keeps a step's two points in sequence.

    Empty unless the service sent the curve (it needs the API's price and measured capacity).
    """
    rows = []
    for index, (requests, primary, candidate) in enumerate(cost.curve):
        rows.append({"requests": requests, "side": API, "monthly_usd": primary, "order": index})
        rows.append(
            {"requests": requests, "side": SELF_HOSTED, "monthly_usd": candidate, "order": index}
        )
    return pd.DataFrame(rows, columns=["requests", "side", "monthly_usd", "order"])


ROLLOUT_EVENTS = {
    "advance": "advanced",
    "rollback": "rolled back",
    "auto_rollback": "rolled back automatically",
    "verdict_change": "verdict changed",
}


def fmt_percent(value: float | None) -> str:
    """`25 %`, or a dash when there is none."""
    return "—" if value is None else f"{value:g} %"


def rollout_frame(rollout: Json) -> pd.DataFrame:
    """The rollout's events, newest first, as the step history table shows them."""
    rows = [
        {
            "at": parse_time(e["at"]),
            "event": ROLLOUT_EVENTS.get(e["kind"], e["kind"])
            + (" (forced)" if e.get("forced") else ""),
            "by": e["actor"],
            "live share": (
                fmt_percent(e["to_percent"])
                if e["from_percent"] == e["to_percent"]
                else f"{fmt_percent(e['from_percent'])} → {fmt_percent(e['to_percent'])}"
            ),
            "to_percent": float(e["to_percent"]),
            "verdict": VERDICT_WORDS.get(e.get("verdict") or "", e.get("verdict") or "—"),
            "reason": e.get("reason") or "",
        }
        for e in rollout.get("history", [])
    ]
    columns = ["at", "event", "by", "live share", "to_percent", "verdict", "reason"]
    return pd.DataFrame(rows, columns=columns)


def candidates_of(readiness: Json) -> list[Json]:
    """The use case's candidates in configuration order (empty for a one-candidate body)."""
    found: list[Json] = readiness.get("candidates") or []
    return found if len(found) > 1 else []


def comparison_frame(readiness: Json) -> pd.DataFrame:
    """One row per candidate and criterion: its interval against the target, for the chart."""
    frames = []
    for candidate in candidates_of(readiness):
        frame = criteria_frame({"criteria": candidate.get("criteria", [])})
        frame.insert(0, "candidate", candidate["candidate"])
        frames.append(frame)
    if not frames:
        return criteria_frame({}).assign(candidate=pd.Series(dtype=str))
    return pd.concat(frames, ignore_index=True)


def comparison_table(readiness: Json) -> pd.DataFrame:
    """Candidates as columns; rank, verdict, cost, capacity and each criterion as rows."""
    candidates = candidates_of(readiness)
    rows: dict[str, dict[str, str]] = {
        "rank": {},
        "verdict": {},
        "self-hosted per month": {},
        "savings per month": {},
        "requests/s within the latency target": {},
        "pairs": {},
    }
    for candidate in candidates:
        name = candidate["candidate"]
        rows["rank"][name] = f"#{candidate['rank']}"
        rows["verdict"][name] = VERDICT_WORDS.get(str(candidate["verdict"]), "")
        rows["self-hosted per month"][name] = fmt_usd(candidate.get("monthly_cost_usd"))
        rows["savings per month"][name] = fmt_usd(candidate.get("monthly_savings_usd"))
        rows["requests/s within the latency target"][name] = fmt_number(
            candidate.get("capacity_rps")
        )
        rows["pairs"][name] = f"{candidate['pairs']:,}"
        for criterion in criteria_frame({"criteria": candidate.get("criteria", [])}).to_dict(
            "records"
        ):
            rows.setdefault(criterion["criterion"], {})[name] = (
                f"{criterion['result']}: {criterion['interval']} ({criterion['target']})"
            )
    names = [c["candidate"] for c in candidates]
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=names).fillna(MISSING)
    table.index.name = "criterion"
    return table.reset_index()


def evidence_sources(readiness: Json) -> str | None:
    """Where the pairs came from, in words: live shadowing and each import (None: no pairs)."""
    sources = readiness.get("sources") or []
    if not sources:
        return None
    parts = []
    for source in sources:
        share = f"{source['share']:.0%}"
        if source["source"] == "live":
            parts.append(f"{share} live shadowing ({source['pairs']:,} pairs)")
        else:
            parts.append(
                f"{share} imported traffic, {source['import_id']} ({source['pairs']:,} pairs)"
            )
    return "Evidence: " + "; ".join(parts) + "."
