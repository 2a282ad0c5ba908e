"""What `serve` says at start-up: where it listens, each use case, and what cannot work.

The warnings (a key's env var unset, a candidate that does not answer, a criterion that can
never get data) are logged once at start-up and kept for `/readyz`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import aiohttp
from sqlalchemy.engine import make_url

from criteria.errors import InvalidCriteria
from criteria.readiness.service import parse_for
from criteria.readiness.warnings import criteria_warnings
from criteria.usecases import Catalog
from shadow.config import SwitchoverConfig
from shadow.settings import Settings

log = logging.getLogger("switchover")

PROBE_TIMEOUT_S = 2.0
# Celery's own per-task lines ("received", "succeeded"): two per task, two tasks per pair.
_PER_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")


@dataclass(frozen=True)
class StartupWarning:
    """Something in the configuration or around it that keeps evidence from coming in."""

    reason: str
    message: str
    use_case: str | None = None
    criterion: str | None = None

    def as_json(self) -> dict[str, str | None]:
        """The warning as `/readyz` lists it."""
        return asdict(self)


def configure_logging(level: str) -> None:
    """The service's log format at `level`; Celery's per-task lines only at DEBUG."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r} (debug, info, warning, error)")
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(numeric)
    quiet_per_task_logs(level)


def quiet_per_task_logs(level: str) -> None:
    """Celery's "received" and "succeeded" lines of every task only at DEBUG."""
    debug = logging.getLevelName(level.upper()) == logging.DEBUG
    for name in _PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)


def _database(settings: Settings) -> str:
    url = make_url(settings.database_url.get_secret_value())
    return url.render_as_string(hide_password=True)


def report_lines(settings: Settings, config: SwitchoverConfig, host: str, port: int) -> list[str]:
    """Where the service listens and how, then one line per use case."""
    database = _database(settings)
    if settings.embedded:
        how = (
            f"embedded: database {database}, queue file {settings.local_queue_path}, "
            f"{settings.embedded_worker_processes} supervised worker process(es)"
        )
    else:
        how = f"distributed: broker {_broker(settings)}, database {database}"
    lines = [f"listening on http://{host}:{port}/v1 ({how})"]
    source = settings.config_path() or "the bundled default configuration"
    lines.append(f"{len(config.use_cases)} use case(s) from {source}:")
    for name, use_case in config.use_cases.items():
        shadow = use_case.shadow
        candidates = "; ".join(
            f"{target.model} ({target.upstream}), "
            f"sample rate {use_case.shadow_for(c).sample_rate:.0%}"
            for c, target in use_case.targets.items()
        )
        lines.append(
            f"  {name}: {use_case.primary.model} ({use_case.primary.upstream}) -> "
            f"{candidates}, noise rate {shadow.noise_rate:.0%}, mode {use_case.mode}"
        )
    return lines


def _broker(settings: Settings) -> str:
    assert settings.broker_url is not None
    return make_url(settings.broker_url).render_as_string(hide_password=True)


def static_warnings(config: SwitchoverConfig, catalog: Catalog) -> list[StartupWarning]:
    """What the configuration and the environment alone tell: unset keys, criteria without data."""
    found = []
    for name, upstream in config.upstreams.items():
        if upstream.api_key_env is not None and upstream.api_key() is None:
            found.append(
                StartupWarning(
                    "key_unset",
                    f"upstream {name!r}: {upstream.api_key_env} is not set; its requests carry "
                    "the client's own Authorization, if any",
                )
            )
    judge = config.evaluators.judge
    if judge.enabled and judge.api_key_env is not None:
        from os import environ

        if not environ.get(judge.api_key_env):
            found.append(StartupWarning("key_unset", f"the judge: {judge.api_key_env} is not set"))
    found += _criteria(catalog, {})
    return found


def _criteria(catalog: Catalog, reachable: Mapping[str, bool]) -> list[StartupWarning]:
    found = []
    for name in catalog.names():
        info = catalog.get(name)
        if info.criteria_text is None:
            continue
        try:
            criteria = parse_for(name, info.criteria_text, f"use_cases.{name}.criteria")
        except InvalidCriteria:
            continue  # rejected at start-up already
        for warning in criteria_warnings(info.situation(reachable.get(name)), criteria):
            if reachable and warning.reason != "candidate_unreachable":
                continue  # said already by the static warnings
            found.append(
                StartupWarning(warning.reason, warning.line(), warning.use_case, warning.criterion)
            )
    return found


async def _answers(session: aiohttp.ClientSession, base_url: str, key: str | None) -> str | None:
    """None when the upstream answers anything at all (any status), else why not."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        async with session.get(
            base_url.rstrip("/") + "/models",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S),
        ) as response:
            await response.read()
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT_S:g} s"
    except aiohttp.ClientError as exc:
        return str(exc) or type(exc).__name__
    return None


async def probe_candidates(
    config: SwitchoverConfig,
    catalog: Catalog,
    sessions: Mapping[str, aiohttp.ClientSession],
) -> list[StartupWarning]:
    """Ask each candidate upstream once (`GET /models`, short timeout); warn of silent ones."""
    upstreams = sorted({t.upstream for u in config.use_cases.values() for t in u.targets.values()})
    results = await asyncio.gather(
        *(
            _answers(
                sessions[name], config.upstreams[name].base_url, config.upstreams[name].api_key()
            )
            for name in upstreams
        )
    )
    silent = {name: why for name, why in zip(upstreams, results, strict=True) if why is not None}
    found = [
        StartupWarning(
            "candidate_unreachable",
            f"candidate upstream {name!r} ({config.upstreams[name].base_url}) does not answer: "
            f"{why}",
        )
        for name, why in silent.items()
    ]
    reachable = {
        name: use_case.targets[use_case.lead].upstream not in silent
        for name, use_case in config.use_cases.items()
    }
    return found + _criteria(catalog, reachable)
