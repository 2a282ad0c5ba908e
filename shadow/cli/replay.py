"""`switchover replay`: load-test the candidate with the captured traffic pattern."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from shadow.cli.common import console, fail, load_config, pick_use_case, use_database
from shadow.settings import get_settings


def replay(
    use_case_arg: Annotated[
        str | None,
        typer.Argument(
            metavar="USE_CASE", help="whose captured traffic to replay", show_default=False
        ),
    ] = None,
    use_case_opt: Annotated[
        str | None,
        typer.Option("--use-case", metavar="USE_CASE", help="the use case, as an option"),
    ] = None,
    rates: Annotated[
        str | None, typer.Option(help="comma-separated req/s steps; default: doubling")
    ] = None,
    slo_p95_ms: Annotated[
        float | None, typer.Option(help="latency SLO (p95) when the criteria name none")
    ] = None,
    error_limit: Annotated[float, typer.Option(help="error rate allowed when no criterion")] = 0.01,
    requests_per_step: Annotated[int, typer.Option(help="requests sent at each rate")] = 100,
    captured: Annotated[int, typer.Option(help="captured requests to draw on")] = 1000,
    timeout_s: Annotated[float, typer.Option(help="per-request timeout")] = 60,
    candidate: Annotated[
        str | None, typer.Option(help="which candidate to load-test; default the lead one")
    ] = None,
) -> None:
    """Load-test the candidate with the captured traffic pattern; store capacity.rps_at_slo."""
    from rich.progress import Progress
    from rich.table import Table

    from shadow.candidate.replay import (
        NothingToReplay,
        Slo,
        load_captured,
        replay_use_case,
        slo_from_criteria,
    )
    from shadow.catalog import catalog_for

    use_case = pick_use_case(use_case_arg, use_case_opt)
    current = get_settings()
    config = load_config(current)
    if use_case not in config.use_cases:
        configured = ", ".join(config.use_cases)
        raise fail(f"no use case {use_case!r} in the configuration (configured: {configured})")
    targets = config.use_cases[use_case].targets
    if candidate is not None and candidate not in targets:
        known = ", ".join(targets)
        raise fail(f"{use_case} has no candidate {candidate!r} ({known})")
    use_database(current)
    info = catalog_for(config, current.config_dir()).get(use_case).for_candidate(candidate)
    slo = slo_from_criteria(info.criteria_text)
    if slo_p95_ms is not None or slo is None:
        if slo_p95_ms is None:
            typer.echo("switchover: the criteria name no latency SLO; pass --slo-p95-ms", err=True)
            raise typer.Exit(2)
        slo = Slo(0.95, slo_p95_ms, slo.error_limit if slo else error_limit)
    requests = load_captured(use_case, captured)
    if not requests:
        typer.echo(f"switchover: {use_case} has no captured requests yet", err=True)
        raise typer.Exit(2)
    model = targets[info.candidate].model
    out = console()
    with Progress(console=out) as progress:

        def on_step(rate: float) -> Callable[[], None]:
            task = progress.add_task(f"{rate:8.2f} req/s", total=requests_per_step)
            return lambda: progress.advance(task)

        try:
            result, run_id = replay_use_case(
                config,
                use_case,
                slo,
                requests,
                info.sample_rate,
                rates=[float(r) for r in rates.split(",")] if rates else None,
                requests_per_step=requests_per_step,
                timeout_s=timeout_s,
                on_step=on_step,
                candidate=info.candidate,
            )
        except NothingToReplay as exc:
            raise fail(str(exc)) from None
    table = Table(title=f"{use_case}: replay to {model} (run {run_id})")
    for column in ("offered/s", "achieved/s", "requests", "errors", "p50 ms", "p95 ms", "held"):
        table.add_column(column, justify="right")
    for step in result.steps:
        table.add_row(
            f"{step.offered_rps:.2f}",
            f"{step.achieved_rps:.2f}",
            str(step.requests),
            str(step.errors),
            f"{step.p50_ms or 0:.0f}",
            f"{step.p95_ms or 0:.0f}",
            "yes" if step.held else ("no (stopped)" if step.stopped_early else "no"),
        )
    out.print(table)
    found = f"{result.rps_at_slo:.2f} req/s" if result.rps_at_slo else "not reached"
    out.print(
        f"capacity.rps_at_slo = {found} (p{slo.quantile * 100:g} <= {slo.latency_ms:g} ms, "
        f"errors <= {slo.error_limit:.1%})"
    )
