"""`switchover import`: captured traffic judged before Switchover is in the production path."""

from __future__ import annotations

import json
import logging
import signal
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from shadow.cli.common import load_config
from shadow.settings import get_settings


class Format(StrEnum):
    """The capture formats (see `shadow.candidate.importer`)."""

    openai_batch = "openai-batch"
    jsonl = "jsonl"
    litellm = "litellm"


class Pace(StrEnum):
    """How the candidate is paced."""

    uniform = "uniform"
    recorded = "recorded"


def _counts_table(summary: Any) -> Any:
    from rich.table import Table

    table = Table(title=f"import {summary.id} into {summary.use_case} ({summary.state})")
    for column in ("read", "stored", "skipped", "failed", "duplicates", "mirrored", "scored"):
        table.add_column(column, justify="right")
    table.add_row(
        *(
            str(getattr(summary, name))
            for name in ("read", "stored", "skipped", "failed", "duplicates", "mirrored", "scored")
        )
    )
    return table


def import_(
    files: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="the capture; openai-batch: the input file, then its output (and error) file",
        ),
    ],
    use_case: Annotated[str, typer.Option("--use-case", help="the use case to judge it for")],
    format_name: Annotated[Format, typer.Option("--format", help="the capture's format")],
    rate: Annotated[
        float, typer.Option(min=0.01, help="requests/s sent to the candidate (mean)")
    ] = 5.0,
    pace: Annotated[
        Pace, typer.Option(help="uniform, or the recorded inter-arrival pattern scaled to --rate")
    ] = Pace.uniform,
    as_json: Annotated[bool, typer.Option("--json", help="print the import as JSON")] = False,
) -> None:
    """Store captured requests with their recorded answers; have the candidate answer them.

    Bad records are named by file and line and skipped. Running the same import again
    continues an interrupted one and adds nothing to a finished one.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from criteria.imports.service import get_import
    from criteria.readiness.service import evaluate
    from evaluators.runtime import current
    from shadow.candidate.importer import service
    from shadow.catalog import catalog_for
    from shadow.cli.gate import render
    from shadow.worker.measure import build_runtime, configure_evaluators
    from shadow.worker.privacy import redactor_for
    from storage.db import configure_database, session_scope

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    config = load_config(settings)
    if use_case not in config.use_cases:
        typer.echo(f"switchover: no use case {use_case!r} in the configuration", err=True)
        raise typer.Exit(2)
    configure_database(settings.database_url.get_secret_value())
    if settings.embedded:
        from storage.migrate import upgrade

        upgrade()
    console = Console(stderr=as_json)
    try:
        parsed = service.read_files(format_name.value, files)
    except (OSError, ValueError) as exc:
        typer.echo(f"switchover: {exc}", err=True)
        raise typer.Exit(2) from None
    for problem in parsed.problems:
        typer.echo(f"switchover: skipped {problem}", err=True)
    privacy = config.privacy_for(use_case)
    redactor = redactor_for(
        tuple(privacy.redact), tuple(privacy.patterns.items()), tuple(sorted(config.secrets()))
    )
    with session_scope() as session:
        plan = service.begin(
            session,
            use_case,
            format_name.value,
            files,
            parsed,
            rate,
            redactor.text,
            list(config.use_cases[use_case].targets),
        )
    configure_evaluators(config)
    runtime = build_runtime(settings, config)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=as_json,
        ) as progress:
            task = progress.add_task(f"candidate answering at {rate:g}/s", total=plan.row.stored)
            progress.advance(task, plan.row.stored - len(plan.pending))
            service.mirror(
                runtime,
                current(),
                plan,
                rate=rate,
                pace=pace.value,
                on_pair=lambda: progress.advance(task),
                stop=stop,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
        service.finish(plan.row.id, interrupted=stop.is_set())
    info = catalog_for(config, settings.config_dir()).get(use_case)
    with session_scope() as session:
        summary = get_import(session, plan.row.id)
        readiness = evaluate(session, info)
    assert summary is not None
    if as_json:
        body = {
            "import": summary.model_dump(mode="json"),
            "readiness": readiness.model_dump(mode="json"),
        }
        typer.echo(json.dumps(body))
    else:
        console.print(_counts_table(summary))
        render(console, readiness.model_dump(mode="json"))
    if stop.is_set():
        typer.echo("switchover: interrupted; run the same command again to continue", err=True)
        raise typer.Exit(130)
