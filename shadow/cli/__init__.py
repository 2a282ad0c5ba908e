"""The `switchover` command line: the top-level app, with each group's commands registered."""

from __future__ import annotations

from typing import Annotated

import typer

from shadow.cli import (
    candidate,
    criteria,
    dashboard_cmd,
    db,
    demo_cmd,
    gate_cmd,
    import_cmd,
    replay,
    rescore,
    rollout_cmd,
    serve,
    simulate,
    tokens,
)
from shadow.cli.common import group, print_version

app = group("Shadow-test a self-hosted model against the API model on real traffic.")


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=print_version, help="Print the version."),
    ] = False,
) -> None:
    """Shadow-test a self-hosted model against the API model on real traffic."""


app.command()(serve.serve)
app.command()(serve.worker)
app.command()(simulate.simulate)
app.command()(demo_cmd.demo)
app.command()(gate_cmd.gate)
app.command()(dashboard_cmd.dashboard)
app.command()(rescore.rescore)
app.command()(replay.replay)
app.command(name="import")(import_cmd.import_)
app.add_typer(db.app, name="db")
app.add_typer(tokens.app, name="tokens")
app.add_typer(criteria.app, name="criteria")
app.add_typer(candidate.app, name="candidate")
app.add_typer(rollout_cmd.app, name="rollout")
