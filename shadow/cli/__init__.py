"""The `switchover` command line: the top-level app, with each group's commands registered."""

from __future__ import annotations

import typer

from shadow.cli import (
    candidate,
    criteria,
    dashboard_cmd,
    db,
    demo_cmd,
    gate_cmd,
    replay,
    rescore,
    rollout_cmd,
    serve,
    simulate,
    tokens,
)

app = typer.Typer(
    help="Shadow-test a self-hosted model against the API model on real traffic.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(serve.serve)
app.command()(serve.worker)
app.command()(simulate.simulate)
app.command()(demo_cmd.demo)
app.command()(gate_cmd.gate)
app.command()(dashboard_cmd.dashboard)
app.command()(rescore.rescore)
app.command()(replay.replay)
app.add_typer(db.app, name="db")
app.add_typer(tokens.app, name="tokens")
app.add_typer(criteria.app, name="criteria")
app.add_typer(candidate.app, name="candidate")
app.add_typer(rollout_cmd.app, name="rollout")
