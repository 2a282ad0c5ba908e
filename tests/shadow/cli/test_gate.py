"""`switchover gate` as a release manager reads it: the table, the reasons, the warnings."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from criteria.access.auth import create_token
from shadow.cli import app
from shadow.settings import Settings
from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from tests.conftest import CapturedJobs, config_text

CRITERIA = {
    "criteria": [
        {
            "name": "answer quality",
            "metric": "quality.semantic_similarity",
            "stat": "mean",
            "mode": "noise_adjusted",
            "margin": 0.05,
        },
        {"name": "reliability", "metric": "candidate.error", "stat": "proportion",
         "op": "<=", "threshold": 0.05},
    ],
}  # fmt: skip


def test_the_gate_table_names_a_criterion_that_can_never_decide(simulator, proxy, sqlite_url):
    upgrade(sqlite_url)
    config = config_text(simulator(), simulator(), noise_rate=0)
    config += f"    criteria: {json.dumps(CRITERIA)}\n"
    url = proxy(config, Settings(database_url=sqlite_url), CapturedJobs().publish)
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        token = create_token(session, "viewer", "release")
    engine.dispose()

    result = CliRunner().invoke(
        app, ["gate", "default", "--url", url, "--token", token], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 2, result.output
    out = result.output
    assert "needed: the samples in total" in out
    assert "! answer quality can never get data" in out
    assert "noise_rate is 0" in out
    assert "…" not in out  # at 80 columns nothing is cut off
    # the JSON carries the same warning, per criterion
    as_json = CliRunner().invoke(app, ["gate", "default", "--url", url, "--token", token, "--json"])
    rows = {c["name"]: c for c in json.loads(as_json.output)["criteria"]}
    assert "noise_rate is 0" in rows["answer quality"]["warning"]
    assert rows["reliability"]["warning"] is None
    assert rows["answer quality"]["verdict"] == "NO_DATA"
