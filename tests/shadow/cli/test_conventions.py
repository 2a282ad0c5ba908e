"""The command line behaves like other command lines: help, version, placeholders, exits."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN

ROOT = Path(__file__).resolve().parents[3]

COMMANDS = [
    ("serve",),
    ("worker",),
    ("gate",),
    ("db", "upgrade"),
    ("tokens", "create"),
    ("tokens", "list"),
    ("tokens", "revoke"),
    ("criteria", "apply"),
    ("criteria", "show"),
    ("rollout", "status"),
    ("replay",),
    ("rescore",),
    ("simulate",),
]


def test_bare_switchover_prints_help_and_exits_0(workdir):
    done = subprocess.run(
        [str(VENV_BIN / "switchover")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: switchover" in done.stdout
    assert "tokens" in done.stdout
    assert "gate" in done.stdout


@pytest.mark.parametrize("group", ["db", "tokens", "criteria", "rollout"])
def test_a_bare_group_prints_its_help_and_exits_0(run, group):
    result = run(group)
    assert result.exit_code == 0
    assert f"switchover {group} [OPTIONS] COMMAND" in result.stdout


def test_version_on_the_program_and_on_every_command(run):
    top = run("--version")
    assert top.exit_code == 0
    assert top.stdout.startswith("switchover ")
    for command in COMMANDS:
        result = run(*command, "--version")
        assert result.exit_code == 0, command
        assert result.stdout == top.stdout, command


@pytest.mark.parametrize("command", COMMANDS)
def test_dash_h_is_help_with_placeholders_not_python_types(run, command):
    result = run(*command, "-h")
    assert result.exit_code == 0
    assert "Usage: switchover " + " ".join(command) in result.stdout
    for python_type in ("<str>", "<int>", "<float>", "<bool>", "<path>", "list["):
        assert python_type not in result.stdout, (command, python_type)


def test_serve_help_shows_host_port_config_and_their_defaults(run):
    text = run("serve", "--help").stdout
    assert "--host" in text
    assert "HOST" in text
    assert "--port" in text
    assert "PORT" in text
    assert "--config" in text
    assert "FILE" in text
    assert "127.0.0.1" in text
    assert "8080" in text
    assert "SWITCHOVER_PORT" in text


def test_the_use_case_is_positional_or_an_option_alike(run):
    as_argument = run("criteria", "show", "support-chat")
    as_option = run("criteria", "show", "--use-case", "support-chat")
    assert as_argument.exit_code == as_option.exit_code
    assert as_argument.stderr == as_option.stderr
    for command in (("gate",), ("rollout", "status"), ("replay",), ("rescore",)):
        text = run(*command, "-h").stdout
        assert "USE_CASE" in text, command
        assert "--use-case" in text, command


def test_gate_without_a_use_case_is_an_error_exit_3_not_a_verdict_code(run):
    result = run("gate")
    assert result.exit_code == 3
    assert "which use case?" in result.stderr


def test_a_table_in_a_pipe_is_not_wrapped_at_80_columns(run, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    from shadow.cli.common import console

    out = console()
    assert out.width >= 200
