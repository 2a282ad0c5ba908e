"""`switchover gate`: ask the readiness API for a verdict, for release pipelines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from rich import box
from rich.console import Console
from rich.table import Table

EXIT_CODES = {"GO": 0, "NO_GO": 1, "INSUFFICIENT_DATA": 2}
EXIT_ERROR = 3
_COLOURS = {"GO": "green", "NO_GO": "red", "INSUFFICIENT_DATA": "yellow"}
_CRITERION_COLOURS = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow", "NO_DATA": "dim"}


class GateError(Exception):
    """The verdict could not be obtained."""


def fetch_verdict(
    url: str,
    use_case: str,
    token: str | None,
    timeout_s: float = 30,
    candidate: str | None = None,
) -> dict[str, Any]:
    """GET /api/v1/gate/{use_case}; the body for 200, 409 and 425, GateError otherwise.

    `candidate` asks about that candidate (default: the use case's lead candidate).
    """
    headers = {"authorization": f"Bearer {token}"} if token else {}
    params = {"candidate": candidate} if candidate is not None else {}
    try:
        response = httpx.get(
            f"{url.rstrip('/')}/api/v1/gate/{use_case}",
            headers=headers,
            params=params,
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise GateError(f"cannot reach {url}: {exc}") from None
    if response.status_code not in (200, 409, 425):
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise GateError(f"HTTP {response.status_code}: {detail}")
    body: dict[str, Any] = response.json()
    return body


def fetch_warnings(url: str, use_case: str, timeout_s: float = 5) -> list[str]:
    """The service's start-up warnings about `use_case` (`/readyz`); none when it can't say."""
    try:
        body = httpx.get(f"{url.rstrip('/')}/readyz", timeout=timeout_s).json()
    except (httpx.HTTPError, ValueError):
        return []
    found = body.get("warnings") if isinstance(body, dict) else None
    return [
        str(w.get("message"))
        for w in found or []
        if isinstance(w, dict) and w.get("use_case") == use_case and w.get("criterion")
    ]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


def _interval(low: Any, high: Any) -> str:
    if low is None and high is None:
        return "-"
    if high is None:
        return f"{_fmt(low)} or more"
    if low is None:
        return f"at most {_fmt(high)}"
    return f"{_fmt(low)} .. {_fmt(high)}"


def render(console: Console, readiness: dict[str, Any], warnings: Sequence[str] = ()) -> None:
    """A short human summary: the verdict, a table of criteria, the reasons, the warnings.

    `needed` is the total samples a criterion is expected to be decided at (not the more).
    """
    verdict = readiness["verdict"]
    others = readiness.get("candidates") or []
    whose = f" / {readiness.get('candidate')}" if len(others) > 1 else ""
    console.print(
        f"[bold]{readiness['use_case']}{whose}[/bold]: "
        f"[bold {_COLOURS.get(verdict, 'white')}]{verdict}"
        f"[/] ({readiness['pairs']} pairs, criteria v{_fmt(readiness.get('criteria_version'))})"
    )
    if readiness["criteria"]:
        # no vertical rules, so that 80 columns hold it: names wrap, nothing ends in "…"
        table = Table(
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            caption="needed: the samples in total a decision is expected at",
            caption_justify="left",
        )
        for column in ("criterion", "verdict", "estimate", "interval", "target", "n", "needed"):
            wraps = column in ("criterion", "interval")
            table.add_column(
                column,
                justify="left" if column in ("criterion", "verdict") else "right",
                no_wrap=not wraps,
                overflow="fold",
                min_width=10 if column == "criterion" else None,
            )
        for row in readiness["criteria"]:
            colour = _CRITERION_COLOURS.get(row["verdict"], "white")
            interval = _interval(row["ci_low"], row["ci_high"])
            needed = "never" if row.get("warning") and row["needed_n"] is None else None
            table.add_row(
                row["name"],
                f"[{colour}]{row['verdict']}[/]",
                _fmt(row["estimate"]),
                interval,
                f"{row.get('op') or ''} {_fmt(row['threshold'])}",
                str(row["n"]),
                needed or _fmt(row["needed_n"]),
            )
        console.print(table)
    for reason in readiness["reasons"]:
        console.print(f"  - {reason}", markup=False, highlight=False)
    said = set()
    for row in readiness["criteria"]:
        if row.get("warning"):
            said.add(row["warning"])
            console.print(
                f"  ! {row['name']} {row['warning']}", style="yellow", markup=False, highlight=False
            )
    for warning in warnings:
        if not any(known in warning for known in said):
            console.print(f"  ! {warning}", style="yellow", markup=False, highlight=False)
    if len(others) > 1:
        render_ranking(console, others)


def render_ranking(console: Console, candidates: list[dict[str, Any]]) -> None:
    """The candidates by rank: verdict, pairs, monthly cost and the ranking's reason."""
    table = Table(title="candidates", show_edge=False)
    for column in ("rank", "candidate", "verdict", "pairs", "$/month", "why"):
        table.add_column(
            column, justify="right" if column in ("rank", "pairs", "$/month") else "left"
        )
    for row in sorted(candidates, key=lambda r: r["rank"]):
        colour = _COLOURS.get(row["verdict"], "white")
        cost = row.get("monthly_cost_usd")
        reasons = row.get("reasons") or [""]
        table.add_row(
            str(row["rank"]),
            row["candidate"],
            f"[{colour}]{row['verdict']}[/]",
            str(row["pairs"]),
            f"{cost:,.0f}" if cost is not None else "-",
            reasons[0].split(": ", 1)[-1],
        )
    console.print(table)
