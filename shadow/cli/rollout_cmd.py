"""`switchover rollout`: the commands; the HTTP calls and rendering are `shadow.cli.rollout`."""

from __future__ import annotations

from typing import Annotated

import typer

from shadow.cli.common import console, group, pick_use_case

app = group("Gradual cut-over: live traffic to the candidate, step by step.")

_RolloutUrl = Annotated[
    str, typer.Option(envvar="SWITCHOVER_URL", metavar="URL", help="the Switchover service")
]
_RolloutToken = Annotated[
    str | None,
    typer.Option(
        envvar="SWITCHOVER_TOKEN", metavar="TOKEN", help="a token (an admin one to change)"
    ),
]
_UseCase = Annotated[
    str | None, typer.Argument(metavar="USE_CASE", help="the use case", show_default=False)
]
_UseCaseOption = Annotated[
    str | None, typer.Option("--use-case", metavar="USE_CASE", help="the use case, as an option")
]


def _rollout(
    use_case: str | None,
    use_case_opt: str | None,
    url: str,
    token: str | None,
    action: str | None,
    force: bool = False,
    reason: str | None = None,
    candidate: str | None = None,
) -> None:
    import shadow.cli.rollout as cutover

    use_case = pick_use_case(use_case, use_case_opt, code=3)
    try:
        if action is None:
            found = cutover.fetch_status(url, use_case, token)
        else:
            found = cutover.change(url, use_case, token, action, force, reason, candidate)
    except cutover.RolloutError as exc:
        typer.echo(f"switchover rollout: {exc}", err=True)
        raise typer.Exit(1 if exc.status in (409, 422) else 3) from None
    cutover.render(console(), found)


@app.command("status")
def rollout_status(
    use_case: _UseCase = None,
    use_case_opt: _UseCaseOption = None,
    url: _RolloutUrl = "http://127.0.0.1:8080",
    token: _RolloutToken = None,
) -> None:
    """Mode, live percentage, steps, fallback rate and the latest events."""
    _rollout(use_case, use_case_opt, url, token, None)


@app.command("advance")
def rollout_advance(
    use_case: _UseCase = None,
    use_case_opt: _UseCaseOption = None,
    url: _RolloutUrl = "http://127.0.0.1:8080",
    token: _RolloutToken = None,
    force: Annotated[
        bool, typer.Option(help="advance without GO or before the step's minimum time")
    ] = False,
    reason: Annotated[
        str | None, typer.Option(metavar="TEXT", help="why (required with --force)")
    ] = None,
    candidate: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="the candidate to move (default: the live one, else the lead one); "
            "another one only from 0 %",
        ),
    ] = None,
) -> None:
    """Move one step up (only on the candidate's GO); exit 1 when refused, 3 on error."""
    _rollout(use_case, use_case_opt, url, token, "advance", force, reason, candidate)


@app.command("rollback")
def rollout_rollback(
    use_case: _UseCase = None,
    use_case_opt: _UseCaseOption = None,
    url: _RolloutUrl = "http://127.0.0.1:8080",
    token: _RolloutToken = None,
    reason: Annotated[
        str | None, typer.Option(metavar="TEXT", help="why, for the audit trail")
    ] = None,
) -> None:
    """Send all live traffic back to the primary (0 %, shadow mode)."""
    _rollout(use_case, use_case_opt, url, token, "rollback", reason=reason)
