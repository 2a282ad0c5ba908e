"""`switchover rollout`: the commands; the HTTP calls and rendering are `shadow.cli.rollout`."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    help="Gradual cut-over: live traffic to the candidate, step by step.", no_args_is_help=True
)

_RolloutUrl = Annotated[str, typer.Option(envvar="SWITCHOVER_URL", help="the Switchover service")]
_RolloutToken = Annotated[
    str | None, typer.Option(envvar="SWITCHOVER_TOKEN", help="a token (admin to change)")
]


def _rollout(
    use_case: str,
    url: str,
    token: str | None,
    action: str | None,
    force: bool = False,
    reason: str | None = None,
) -> None:
    from rich.console import Console

    import shadow.cli.rollout as cutover

    try:
        if action is None:
            found = cutover.fetch_status(url, use_case, token)
        else:
            found = cutover.change(url, use_case, token, action, force, reason)
    except cutover.RolloutError as exc:
        typer.echo(f"switchover rollout: {exc}", err=True)
        raise typer.Exit(1 if exc.status in (409, 422) else 3) from None
    cutover.render(Console(), found)


@app.command("status")
def rollout_status(
    use_case: Annotated[str, typer.Argument(help="the use case")],
    url: _RolloutUrl = "http://127.0.0.1:8080",
    token: _RolloutToken = None,
) -> None:
    """Mode, live percentage, steps, fallback rate and the latest events."""
    _rollout(use_case, url, token, None)


@app.command("advance")
def rollout_advance(
    use_case: Annotated[str, typer.Argument(help="the use case")],
    url: _RolloutUrl = "http://127.0.0.1:8080",
    token: _RolloutToken = None,
    force: Annotated[
        bool, typer.Option(help="advance without GO or before the step's minimum time")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="why (required with --force)")] = None,
) -> None:
    """Move one step up (only on GO); exit 1 when refused, 3 on error."""
    _rollout(use_case, url, token, "advance", force, reason)


@app.command("rollback")
def rollout_rollback(
    use_case: Annotated[str, typer.Argument(help="the use case")],
    url: _RolloutUrl = "http://127.0.0.1:8080",
    token: _RolloutToken = None,
    reason: Annotated[str | None, typer.Option(help="why, for the audit trail")] = None,
) -> None:
    """Send all live traffic back to the primary (0 %, shadow mode)."""
    _rollout(use_case, url, token, "rollback", reason=reason)
