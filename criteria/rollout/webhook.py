"""Slack-compatible webhook notifications of verdict changes and rollout changes.

Sent from the evaluation cycle, never from a request path; a failure is logged, never raised.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger(__name__)

_ICONS = {
    "GO": ":large_green_circle:",
    "NO_GO": ":red_circle:",
    "INSUFFICIENT_DATA": ":large_yellow_circle:",
}


def _percent(value: float) -> str:
    return f"{value:g} %"


def message(event: dict[str, Any]) -> str:
    """The one-line text a chat channel shows for an event."""
    use_case = event["use_case"]
    kind = event["kind"]
    if kind == "verdict_change":
        icon = _ICONS.get(str(event["verdict"]), "")
        return (
            f"{icon} {use_case}: verdict {event['previous_verdict'] or 'none'} → "
            f"{event['verdict']} (live {_percent(event['to_percent'])} on the candidate)"
        ).strip()
    move = f"{_percent(event['from_percent'])} → {_percent(event['to_percent'])}"
    if kind == "auto_rollback":
        return f":rotating_light: {use_case}: automatic rollback {move}: {event['reason']}"
    forced = " (forced)" if event["forced"] else ""
    why = f": {event['reason']}" if event.get("reason") else ""
    verb = "advanced" if kind == "advance" else "rolled back"
    return f"{use_case}: {verb} {move} by {event['actor']}{forced}, verdict {event['verdict']}{why}"


def send(url: str, event: dict[str, Any], timeout_s: float = 5.0) -> bool:
    """POST `{"text": …}` plus the event's fields; True when the receiver took it."""
    try:
        response = httpx.post(url, json={"text": message(event), **event}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        log.warning("webhook for %s not delivered: %s", event.get("use_case"), exc)
        return False
    if response.status_code >= 300:
        log.warning(
            "webhook for %s refused: HTTP %s %s",
            event.get("use_case"),
            response.status_code,
            response.text[:200],
        )
        return False
    return True
