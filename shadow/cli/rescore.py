"""`switchover rescore`: recompute the scores of stored pairs."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from shadow.cli.common import console, load_config, pick_use_case, use_database
from shadow.settings import get_settings


def _since(value: str | None) -> datetime | None:
    """An ISO date or time (UTC unless given), or an age such as `90m`, `24h`, `7d`."""
    if value is None:
        return None
    age = re.fullmatch(r"(\d+)\s*([smhd])", value.strip())
    if age:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[age.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(age.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        message = "an ISO date/time or an age like 24h"
        raise typer.BadParameter(message, param_hint="--since") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def rescore(
    use_case_arg: Annotated[
        str | None,
        typer.Argument(metavar="USE_CASE", help="whose pairs to score", show_default=False),
    ] = None,
    use_case_opt: Annotated[
        str | None,
        typer.Option("--use-case", metavar="USE_CASE", help="the use case, as an option"),
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="only this metric (repeatable)")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="only pairs received since: ISO date/time or 24h, 7d")
    ] = None,
    unscored: Annotated[
        bool, typer.Option("--unscored", help="only score pairs that have no scores yet")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="pairs per transaction")] = 64,
) -> None:
    """Recompute the scores of stored pairs (after a new evaluator, model or price)."""
    from rich.progress import Progress

    from evaluators.registry import evaluators_for_metrics
    from evaluators.repository import pair_ids_for
    from evaluators.runtime import current
    from evaluators.service import rescore_pairs, score_stored_pairs
    from shadow.worker.measure import configure_evaluators
    from storage.db import session_scope

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    use_case = pick_use_case(use_case_arg, use_case_opt)
    environment = get_settings()
    config = load_config(environment)
    use_database(environment)
    metrics = tuple(metric or ())
    try:
        evaluators_for_metrics(metrics)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--metric") from None
    configure_evaluators(config)
    runtime = current()
    with session_scope() as session:
        pair_ids = pair_ids_for(session, use_case, _since(since), unscored=unscored)
    written = 0
    with Progress(console=console(), transient=False) as progress:
        task = progress.add_task(f"scoring {use_case}", total=len(pair_ids))
        for start in range(0, len(pair_ids), batch_size):
            chunk = pair_ids[start : start + batch_size]
            try:
                with session_scope() as session:
                    if unscored:
                        written += score_stored_pairs(session, chunk, runtime)
                    else:
                        written += rescore_pairs(session, chunk, runtime, metrics or None)
            except ValueError as exc:
                typer.echo(f"switchover: {exc}", err=True)
                raise typer.Exit(2) from None
            progress.advance(task, len(chunk))
    typer.echo(f"{len(pair_ids)} pairs of {use_case} scored, {written} score rows written")
