"""Commands run as a user runs them: in an empty directory, settings from the environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shadow.cli import app
from shadow.settings import get_settings

CONFIG = """\
upstreams:
  api: {base_url: http://127.0.0.1:9/v1}
  gpu: {base_url: http://127.0.0.1:9/v1}
use_cases:
  support-chat:
    primary: {upstream: api, model: gpt-4o-mini}
    candidate: {upstream: gpu, model: llama}
  ticket-triage:
    primary: {upstream: api, model: gpt-4o}
    candidate: {upstream: gpu, model: llama}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty directory with a switchover.yaml; no SWITCHOVER_ variable but the database."""
    for name in ("SWITCHOVER_CONFIG", "SWITCHOVER_PORT", "SWITCHOVER_MAX_BODY_BYTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SWITCHOVER_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "switchover.yaml").write_text(CONFIG, encoding="utf-8")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def run(workdir: Path):
    """`switchover ARGS...` through typer's runner; the result has exit_code, stdout, stderr."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None):
        get_settings.cache_clear()
        return runner.invoke(app, list(args), env=env, prog_name="switchover")

    return invoke
