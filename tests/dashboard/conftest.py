"""A running service with seeded evidence for the dashboard to read, and where artifacts go."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from criteria.access.auth import create_token
from shadow.app import create_app
from shadow.config import parse_config
from shadow.serving import serve_in_thread
from shadow.settings import Settings
from shadow.simulator.server import SimulatorConfig, SimulatorThread
from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from tests.conftest import CapturedJobs
from tests.fixtures.evidence import Evidence, seed_pairs

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CRITERIA = {
    "alpha": 0.05,
    "criteria": [
        {
            "name": "answer quality",
            "metric": "quality.rouge_l",
            "stat": "mean",
            "op": ">=",
            "threshold": 0.5,
        },
        {
            "name": "tail latency",
            "metric": "candidate.latency_ms",
            "stat": "quantile",
            "q": 0.95,
            "op": "<=",
            "threshold": 3000,
        },
        {
            "name": "reliability",
            "metric": "candidate.error",
            "stat": "proportion",
            "op": "<=",
            "threshold": 0.05,
            "critical": True,
        },
    ],
}
# use case -> the evidence seeded for it (None: no pairs at all)
USE_CASES: dict[str, Evidence | None] = {
    "support-chat": Evidence(pairs=400),
    "ticket-triage": Evidence(pairs=400, error_rate=0.25),
    "order-extraction": Evidence(pairs=6),
    "agent-tools": None,
}
EXPECTED_VERDICTS = {
    "support-chat": "GO",
    "ticket-triage": "NO_GO",
    "order-extraction": "INSUFFICIENT_DATA",
    "agent-tools": "INSUFFICIENT_DATA",
}


@dataclass(frozen=True)
class Service:
    """The running service and tokens to read it with."""

    url: str
    viewer: str
    admin: str


def _config(primary: str, candidate: str) -> str:
    lines = ["upstreams:", f"  api: {{base_url: {primary}}}", f"  gpu: {{base_url: {candidate}}}"]
    lines.append("use_cases:")
    for name in USE_CASES:
        lines += [
            f"  {name}:",
            f"    primary: {{upstream: api, model: gpt-{name}}}",
            "    candidate: {upstream: gpu, model: llama}",
            "    shadow: {sample_rate: 0.25}",
            f"    criteria: {json.dumps(CRITERIA)}",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def readiness_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service over a SQLite database seeded with pairs and scores, one per test module."""
    database = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'switchover.db'}"
    upgrade(database)
    for seed, (name, evidence) in enumerate(USE_CASES.items()):
        if evidence is not None:
            seed_pairs(database, name, evidence, seed=seed)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SWITCHOVER_DATABASE_URL", database)
        upstreams = [SimulatorThread(SimulatorConfig()) for _ in range(2)]
        primary, candidate = (upstream.start() for upstream in upstreams)
        config = parse_config(_config(primary, candidate), "<test>")
        app = create_app(Settings(broker_url=None), config, CapturedJobs().publish)
        try:
            with serve_in_thread(app) as url:
                engine = make_engine(database)
                with session_scope(engine) as session:
                    viewer = create_token(session, "viewer", "dashboard")
                    admin = create_token(session, "admin", "ml-team")
                engine.dispose()
                yield Service(url, viewer, admin)
        finally:
            for upstream in upstreams:
                upstream.stop()


_saved: list[Path] = []


@pytest.fixture
def artifact() -> Callable[[str], Path]:
    """`artifact(name)` gives a path under test-artifacts/; saved files are listed at the end."""

    def path(name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        target = ARTIFACTS / name
        target.unlink(missing_ok=True)
        _saved.append(target)
        return target

    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the screenshots the browser tests saved, so a reviewer can open them."""
    saved = [path for path in _saved if path.exists()]
    if saved:
        terminalreporter.section("dashboard screenshots")
        for path in saved:
            terminalreporter.write_line(str(path))
