"""`switchover rollout`: read and move a use case's live rollout through the readiness API."""

from __future__ import annotations

from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

_MODE_COLOURS = {"shadow": "cyan", "canary": "yellow", "candidate": "green"}


class RolloutError(Exception):
    """The API refused the change or could not be reached; `status` is its HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _request(
    method: str,
    url: str,
    use_case: str,
    token: str | None,
    body: dict[str, Any] | None = None,
    timeout_s: float = 60,
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(
            method,
            f"{url.rstrip('/')}/api/v1/use-cases/{use_case}/rollout",
            headers=headers,
            json=body,
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise RolloutError(f"cannot reach {url}: {exc}") from None
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise RolloutError(f"HTTP {response.status_code}: {detail}", response.status_code)
    found: dict[str, Any] = response.json()
    return found


def fetch_status(url: str, use_case: str, token: str | None) -> dict[str, Any]:
    """GET …/rollout: the rollout state, plan, fallback figures and history."""
    return _request("GET", url, use_case, token)


def change(
    url: str,
    use_case: str,
    token: str | None,
    action: str,
    force: bool = False,
    reason: str | None = None,
    candidate: str | None = None,
) -> dict[str, Any]:
    """POST …/rollout: advance or roll back (admin token); RolloutError when refused."""
    body = {"action": action, "force": force, "reason": reason, "candidate": candidate}
    return _request("POST", url, use_case, token, body)


def _whom(candidate: str | None) -> str:
    # a single-candidate use case's one is `default` (`candidate:`): no name to show
    if candidate is None or candidate == "default":
        return "the candidate"
    return candidate


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:g} %"


def render(console: Console, rollout: dict[str, Any], history: int = 10) -> None:
    """The mode and percentage, the steps, the fallback rate and the latest events."""
    mode = rollout["mode"]
    steps = " → ".join(
        f"[bold]{_percent(s)}[/bold]" if s == rollout["percent"] else _percent(s)
        for s in rollout["steps"]
    )
    console.print(
        f"[bold]{rollout['use_case']}[/bold]: [bold {_MODE_COLOURS.get(mode, 'white')}]{mode}[/] "
        f"at {_percent(rollout['percent'])} of live traffic to {_whom(rollout['candidate'])} "
        f"(verdict {rollout['verdict'] or '-'})"
    )
    console.print(f"  steps: {steps}; next: {_percent(rollout['next_percent'])}")
    if rollout.get("next_allowed_at"):
        console.print(f"  next advance allowed from {rollout['next_allowed_at']}")
    fallback = rollout["fallback"]
    rate = fallback["rate"]
    console.print(
        f"  fallback rate since {fallback['window_start']}: "
        f"{'-' if rate is None else f'{rate:.2%}'} of {fallback['routed']} live requests "
        f"(limit {fallback['limit']:.2%})"
    )
    events = rollout["history"][:history]
    if events:
        table = Table(show_edge=False)
        # the candidate column only when a use case has named ones (`candidates:`)
        named = any(_whom(e.get("candidate")) != "the candidate" for e in events)
        columns = ["at", "event", "by", "candidate", "from", "to", "verdict", "reason"]
        for column in columns if named else [c for c in columns if c != "candidate"]:
            table.add_column(column)
        for event in events:
            kind = event["kind"] + (" (forced)" if event["forced"] else "")
            cells = [event["at"], kind, event["actor"], _whom(event.get("candidate"))]
            table.add_row(
                *(cells if named else cells[:3]),
                _percent(event["from_percent"]),
                _percent(event["to_percent"]),
                event["verdict"] or "-",
                event["reason"] or "",
            )
        console.print(table)
