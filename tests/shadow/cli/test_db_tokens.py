"""`switchover db` and `switchover tokens` as a new user meets them: sentences, not tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from criteria.access.auth import Viewer
from storage.db import configure_database
from tests.conftest import VENV_BIN

ROOT = Path(__file__).resolve().parents[3]


def test_tokens_create_before_db_upgrade_says_so_and_leaves_no_file(run, workdir):
    result = run("tokens", "create", "--role", "admin")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "switchover: no schema at sqlite:///switchover.db: run `switchover db upgrade`"
    )
    assert "Traceback" not in result.output
    assert not any(workdir.glob("switchover.db*")), "an empty database file was left behind"


@pytest.mark.parametrize(
    "command", [("tokens", "list"), ("tokens", "revoke", "1"), ("criteria", "show", "support-chat")]
)
def test_every_database_command_before_db_upgrade_says_so(run, workdir, command):
    result = run(*command)
    assert result.exit_code == 2
    assert "no schema at sqlite:///switchover.db: run `switchover db upgrade`" in result.stderr
    assert not any(workdir.glob("switchover.db*"))


def test_db_upgrade_says_from_which_revision_to_which_and_where(run, workdir):
    first = run("db", "upgrade")
    assert first.exit_code == 0
    assert first.stdout.strip().startswith("sqlite:///switchover.db: upgraded from no schema to")
    again = run("db", "upgrade")
    assert "already at revision" in again.stdout
    assert first.stdout.split()[-1] in again.stdout


def test_db_upgrade_masks_the_password(run, create_postgres_database):
    url = create_postgres_database().replace("postgres@", "postgres:not-shown@")
    result = run("db", "upgrade", env={"SWITCHOVER_DATABASE_URL": url})
    assert "not-shown" not in result.output
    assert result.exit_code == 0, result.output
    assert "postgres:***@" in result.stdout
    assert "upgraded from no schema to revision" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("SWITCHOVER_PORT", "abc", "valid integer"),
        ("SWITCHOVER_MAX_BODY_BYTES", "200", "greater than or equal to 1024"),
    ],
)
def test_a_bad_setting_names_the_variable_the_value_and_the_rule(run, variable, value, rule):
    result = run("tokens", "list", env={variable: value})
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert message.startswith(f"switchover: {variable}='{value}' is not accepted: ")
    assert rule in message
    assert "Traceback" not in result.output


def test_serve_with_a_bad_port_is_one_sentence_from_a_real_process(workdir):
    done = subprocess.run(
        [str(VENV_BIN / "switchover"), "serve"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SWITCHOVER_PORT": "abc"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "SWITCHOVER_PORT='abc' is not accepted: it must be a valid integer" in done.stderr


def test_tokens_list_and_revoke(run, workdir):
    assert run("db", "upgrade").exit_code == 0
    created = run("tokens", "create", "--role", "admin", "--name", "release pipeline")
    assert "created an admin token for 'release pipeline'" in created.stderr
    viewer = run("tokens", "create", "--role", "viewer", "--name", "dashboard")
    assert "created a viewer token" in viewer.stderr
    token = viewer.stdout.strip().splitlines()[-1]

    listed = json.loads(run("tokens", "list", "--json").stdout)
    assert [(t["name"], t["role"]) for t in listed] == [
        ("release pipeline", "admin"),
        ("dashboard", "viewer"),
    ]
    table = run("tokens", "list").stdout
    assert "release pipeline" in table
    assert "dashboard" in table
    assert token not in table, "a token is shown once, never listed"

    def probe(name: Viewer) -> str:
        return name

    app = FastAPI()
    app.add_api_route("/probe", probe)

    configure_database(f"sqlite:///{workdir / 'switchover.db'}")
    with TestClient(app) as client:
        assert client.get("/probe", headers={"authorization": f"Bearer {token}"}).json() == (
            "dashboard"
        )
        revoked = run("tokens", "revoke", str(listed[1]["id"]))
        assert revoked.exit_code == 0
        assert revoked.stdout.strip() == f"revoked a viewer token {listed[1]['id']} ('dashboard')"
        refused = client.get("/probe", headers={"authorization": f"Bearer {token}"})
        assert refused.status_code == 401

    assert [t["name"] for t in json.loads(run("tokens", "list", "--json").stdout)] == [
        "release pipeline"
    ]
    again = run("tokens", "revoke", str(listed[1]["id"]))
    assert again.exit_code == 1
    assert "no token" in again.stderr
    assert "tokens list" in again.stderr


def test_a_token_can_be_revoked_by_itself(run):
    assert run("db", "upgrade").exit_code == 0
    token = run("tokens", "create", "--role", "viewer").stdout.strip().splitlines()[-1]
    assert run("tokens", "revoke", token).exit_code == 0
    assert json.loads(run("tokens", "list", "--json").stdout) == []


def test_tokens_list_in_a_pipe_keeps_each_row_on_one_line(run, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert run("db", "upgrade").exit_code == 0
    name = "the nightly release pipeline of the support chat team, staging and production"
    run("tokens", "create", "--role", "viewer", "--name", name)
    lines = run("tokens", "list").stdout.splitlines()
    assert any(name in line for line in lines), lines
