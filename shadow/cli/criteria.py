"""`switchover criteria`: store, show and backtest versioned success criteria."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shadow.cli.common import fail, group, load_config, pick_use_case, use_database
from shadow.settings import get_settings

app = group("Success criteria, versioned.")


_UseCaseArgument = Annotated[
    str | None, typer.Argument(metavar="USE_CASE", help="the use case", show_default=False)
]
_UseCaseOption = Annotated[
    str | None,
    typer.Option("--use-case", metavar="USE_CASE", help="the use case, as an option"),
]


@app.command("apply")
def criteria_apply(
    file: Annotated[Path, typer.Option("-f", "--file", metavar="FILE", help="the criteria YAML")],
    use_case_arg: _UseCaseArgument = None,
    use_case_opt: _UseCaseOption = None,
    author: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="recorded with the version [default: your login]"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="store it even for a use case not in the config")
    ] = False,
) -> None:
    """Store a criteria file as the new version for its use case (`use_case:` in the file)."""
    import getpass

    from criteria.errors import InvalidCriteria
    from criteria.readiness.schema import CriteriaError, parse_criteria
    from criteria.readiness.service import apply_criteria
    from storage.db import session_scope

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise fail(f"{file}:1: not UTF-8 text") from None
    try:
        use_case = parse_criteria(text, str(file)).use_case
    except CriteriaError as exc:
        raise fail(str(exc)) from None
    asked = use_case_arg or use_case_opt
    if asked is not None and pick_use_case(use_case_arg, use_case_opt) != use_case:
        raise fail(f"{file}:1: use_case: the file is for {use_case!r}, not {asked!r}")
    current = get_settings()
    configured = [] if force else list(load_config(current).use_cases)
    if use_case not in configured and not force:
        raise fail(
            f"{file}:1: use_case: {use_case!r} is not configured "
            f"(configured: {', '.join(configured) or 'none'}); --force stores it anyway"
        )
    use_database(current)
    try:
        with session_scope() as session:
            row = apply_criteria(session, use_case, text, author or getpass.getuser())
            version = row.version
    except InvalidCriteria as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{use_case}: criteria version {version} stored")


@app.command("show")
def criteria_show(
    use_case_arg: _UseCaseArgument = None, use_case_opt: _UseCaseOption = None
) -> None:
    """Print the criteria in force for a use case, with version, author and time."""
    from storage.db import session_scope
    from storage.repository import latest_criteria

    use_case = pick_use_case(use_case_arg, use_case_opt)
    use_database(get_settings())
    with session_scope() as session:
        row = latest_criteria(session, use_case)
        if row is None:
            raise fail(f"{use_case} has no stored criteria", code=1)
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
