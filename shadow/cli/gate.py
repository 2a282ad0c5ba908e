"""`switchover gate`: ask the readiness API for a verdict, for release pipelines."""

from __future__ import annotations

from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

EXIT_CODES = {"GO": 0, "NO_GO": 1, "INSUFFICIENT_DATA": 2}
EXIT_ERROR = 3
_COLOURS = {"GO": "green", "NO_GO": "red", "INSUFFICIENT_DATA": "yellow"}
_CRITERION_COLOURS = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow", "NO_DATA": "dim"}


class GateError(Exception):
    """The verdict could not be obtained."""


def fetch_verdict(
    url: str, use_case: str, token: str | None, timeout_s: float = 30
) -> dict[str, Any]:
    """GET /api/v1/gate/{use_case}; the body for 200, 409 and 425, GateError otherwise."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(
            f"{url.rstrip('/')}/api/v1/gate/{use_case}", headers=headers, timeout=timeout_s
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


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(console: Console, readiness: dict[str, Any]) -> None:
    """A short human summary: the verdict, a table of criteria, the reasons."""
    verdict = readiness["verdict"]
    console.print(
        f"[bold]{readiness['use_case']}[/bold]: [bold {_COLOURS.get(verdict, 'white')}]{verdict}"
        f"[/] ({readiness['pairs']} pairs, criteria v{_fmt(readiness.get('criteria_version'))})"
    )
    if readiness["criteria"]:
        table = Table(show_edge=False)
        for column in ("criterion", "verdict", "estimate", "interval", "target", "n", "needed"):
            table.add_column(
                column, justify="left" if column in ("criterion", "verdict") else "right"
            )
        for row in readiness["criteria"]:
            colour = _CRITERION_COLOURS.get(row["verdict"], "white")
            interval = f"{_fmt(row['ci_low'])} .. {_fmt(row['ci_high'])}"
            table.add_row(
                row["name"],
                f"[{colour}]{row['verdict']}[/]",
                _fmt(row["estimate"]),
                interval,
                f"{row.get('op') or ''} {_fmt(row['threshold'])}",
                str(row["n"]),
                _fmt(row["needed_n"]),
            )
        console.print(table)
    for reason in readiness["reasons"]:
        console.print(f"  - {reason}")
