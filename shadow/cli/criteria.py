"""`switchover criteria`: store, show and backtest versioned success criteria."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Success criteria, versioned.", no_args_is_help=True)


@app.command("apply")
def criteria_apply(
    file: Annotated[Path, typer.Option("-f", "--file", help="the criteria YAML")],
    author: Annotated[str | None, typer.Option(help="recorded with the version")] = None,
) -> None:
    """Store a criteria file as the new version for its use case."""
    import getpass

    import yaml

    from criteria.errors import InvalidCriteria
    from criteria.readiness.service import apply_criteria
    from storage.db import session_scope

    try:
        text = file.read_text(encoding="utf-8")
        use_case = (yaml.safe_load(text) or {}).get("use_case")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError) as exc:
        typer.echo(f"switchover: {file}: {exc}", err=True)
        raise typer.Exit(2) from None
    if not isinstance(use_case, str):
        typer.echo(f"switchover: {file}:1: use_case: missing", err=True)
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            row = apply_criteria(session, use_case, text, author or getpass.getuser())
            version = row.version
    except InvalidCriteria as exc:
        typer.echo(f"switchover: {str(exc).replace('criteria:', f'{file}:')}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{use_case}: criteria version {version} stored")


@app.command("show")
def criteria_show(use_case: Annotated[str, typer.Argument()]) -> None:
    """Print the criteria in force for a use case, with version, author and time."""
    from storage.db import session_scope
    from storage.repository import latest_criteria

    with session_scope() as session:
        row = latest_criteria(session, use_case)
        if row is None:
            typer.echo(f"switchover: {use_case} has no stored criteria", err=True)
            raise typer.Exit(1)
        when = f"{row.created_at:%Y-%m-%d %H:%M}"
        typer.echo(f"# {use_case} v{row.version} by {row.author} at {when}")
        typer.echo(row.text.rstrip())


@app.command("backtest")
def criteria_backtest(
    criteria_file: Annotated[
        Path, typer.Option("--criteria", metavar="FILE.yaml", help="one use case's criteria")
    ],
    values_file: Annotated[
        Path,
        typer.Option(
            "--values",
            metavar="FILE.csv",
            help="per-pair values: optional `run` and `t` columns, one column per metric",
        ),
    ],
    look_every: Annotated[
        int, typer.Option(metavar="N", help="judge after every N pairs, as often as you like")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Judge recorded per-pair values exactly as the service would, look by look."""
    import json

    from criteria.errors import InvalidCriteria
    from criteria.readiness.backtest import backtest, check_columns, read_values
    from criteria.readiness.schema import CriteriaError, parse_criteria

    try:
        criteria = parse_criteria(criteria_file.read_text(encoding="utf-8"), str(criteria_file))
        runs = read_values(values_file)
        missing = check_columns(criteria, runs)
        outcomes = backtest(criteria, runs, look_every)
    except (CriteriaError, InvalidCriteria) as exc:
        typer.echo(f"switchover: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"switchover: cannot read {exc.filename}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    for metric in missing:
        typer.echo(f"switchover: no row has {metric}: criteria on it cannot decide", err=True)
    if as_json:
        body = {
            "runs": [
                {
                    "run": o.run,
                    "verdict": o.verdict,
                    "pairs": o.pairs,
                    "criteria": [c.__dict__ for c in o.criteria],
                }
                for o in outcomes
            ]
        }
        typer.echo(json.dumps(body, indent=2))
        return
    for outcome in outcomes:
        typer.echo(f"run {outcome.run}: {outcome.verdict} after {outcome.pairs} pairs")
        for c in outcome.criteria:
            first = (
                f"PASS at {c.first_pass_n}"
                if c.first_pass_n
                else f"FAIL at {c.first_fail_n}"
                if c.first_fail_n
                else "undecided"
            )
            typer.echo(f"  {c.name}: {c.verdict} ({first})")
