"""`switchover candidate serve`: starts vLLM, prints its base_url, stops everything on Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from shadow.serving import free_port
from tests.conftest import VENV_BIN

pytestmark = [pytest.mark.vllm, pytest.mark.integration, pytest.mark.timeout(1500)]


def _stat(pid: str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, …"""
    try:
        return (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _processes() -> dict[int, list[str]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(entry.name)) is not None:
            found[int(entry.name)] = fields
    return found


def _session(sid: int) -> list[int]:
    """Live (not zombie) processes of a session."""
    return [pid for pid, f in _processes().items() if int(f[3]) == sid and f[0] != "Z"]


class _Output:
    """Lines of a child's combined output, collected by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._process = process
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()
            if self._process.poll() is not None:
                self._thread.join(5)
                break
            time.sleep(0.2)
        pytest.fail(f"no {prefix!r} line from the launcher; its output:\n{self.text()[-6000:]}")


def test_candidate_serve_prints_base_url_serves_and_stops_on_ctrl_c() -> None:
    """The launcher runs a real vLLM, prints where it is, and leaves nothing behind on SIGINT."""
    port = free_port()
    cli = subprocess.Popen(
        [
            str(VENV_BIN / "switchover"),
            "candidate",
            "serve",
            "--port",
            str(port),
            "--served-model-name",
            "cli-smollm2",
            "--max-model-len",
            "512",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = _Output(cli)
    sessions: set[int] = set()
    try:
        base_url = output.wait_for("base_url:", timeout=600)
        assert base_url == f"http://127.0.0.1:{port}/v1"
        assert f"{{base_url: {base_url}}}" in output.text()
        assert "model: cli-smollm2}" in output.text()

        # vLLM is the launcher's child, in a session of its own with its engine processes.
        children = [pid for pid, f in _processes().items() if int(f[1]) == cli.pid]
        assert len(children) == 1, children
        sessions.add(children[0])
        assert int(_processes()[children[0]][3]) == children[0]
        assert len(_session(children[0])) >= 3

        models = httpx.get(f"{base_url}/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["cli-smollm2"]
        assert models["data"][0]["max_model_len"] == 512

        cli.send_signal(signal.SIGINT)
        # vLLM's engine processes stop at their pace on a busy machine: a deadline, not a timing
        try:
            assert cli.wait(600) == 0, output.text()[-4000:]
        except subprocess.TimeoutExpired:
            pytest.fail(f"the launcher still runs 600 s after Ctrl-C:\n{output.text()[-6000:]}")
        assert _session(children[0]) == [], "vLLM processes outlived the launcher"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(10)
        for sid in sessions:  # a failed test still leaves no vLLM behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sid, signal.SIGKILL)
