"""The launcher's own logic, with a stand-in for vLLM's interpreter (fast, no model)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

from shadow.candidate.launcher import (
    BUNDLED_MODEL,
    BUNDLED_MODEL_HUB_ID,
    CandidateError,
    CandidateSpec,
    VllmInstall,
    VllmServer,
    config_snippet,
    plan_launch,
)
from shadow.config import parse_config

# Started as `<python> -m vllm.entrypoints.openai.api_server … --port N`: serves /health on N
# and keeps a child that ignores SIGTERM, like a stuck engine process.
FAKE_VLLM = """\
#!/bin/sh
while [ $# -gt 0 ]; do
  [ "$1" = --port ] && port=$2
  shift
done
(trap '' TERM; sleep 300) &
exec {python} -c '
import http.server, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
' "$port"
"""
# Fails like vLLM does: the reason first, then a long traceback of the API server.
BROKEN_VLLM = """\
#!/bin/sh
echo "(EngineCore pid=1) ERROR [core.py:1] ValueError: no such model: $4" >&2
seq 1 200
exit 3
"""


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def test_cpu_plan_serves_the_bundled_model_with_the_cpu_settings(tmp_path, monkeypatch):
    """The default model on the CPU build: the converted SmolLM2, bf16, eager, 2048, offline."""
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    install = VllmInstall(tmp_path / "python", "cpu", bundled_model_dir=tmp_path)
    plan = plan_launch(CandidateSpec(port=8123), install)
    command = " ".join(plan.command)
    assert plan.command[:3] == [str(install.python), "-m", "vllm.entrypoints.openai.api_server"]
    assert f"--model {tmp_path} " in command
    assert f"--served-model-name {BUNDLED_MODEL} " in command
    assert "--port 8123 " in command
    assert "--dtype bfloat16 --enforce-eager --max-model-len 2048" in command
    assert plan.env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert plan.env["HF_HUB_OFFLINE"] == "1"


def test_official_plan_passes_a_hub_model_through(tmp_path, monkeypatch):
    """On a GPU host a named model goes to vLLM as is, without the CPU-only flags."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    install = VllmInstall(tmp_path / "python", "official")
    model = "meta-llama/Llama-3.1-8B-Instruct"
    plan = plan_launch(CandidateSpec(model=model, tool_call_parser="hermes"), install)
    assert plan.served_model_name == model
    assert plan.command[plan.command.index("--model") + 1] == model
    assert "--enforce-eager" not in plan.command
    assert "--max-model-len" not in plan.command
    assert plan.command[-3:] == ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    assert "HF_HUB_OFFLINE" not in plan.env
    bundled = plan_launch(CandidateSpec(), install)
    assert bundled.command[bundled.command.index("--model") + 1] == BUNDLED_MODEL_HUB_ID


def test_a_vllm_that_exits_fails_the_start_with_its_log(tmp_path):
    """vLLM dies at start-up: CandidateError with its own last words, not a silent wait."""
    python = _script(tmp_path / "python", BROKEN_VLLM)
    server = VllmServer(
        CandidateSpec(port=0, model="no-such-model"),
        install=VllmInstall(python, "official"),
        log_path=tmp_path / "vllm.log",
        startup_timeout_s=30,
    )
    with pytest.raises(CandidateError, match="exited with status 3") as failure:
        server.start()
    message = str(failure.value)
    assert "ValueError: no such model: no-such-model" in message
    assert message.rstrip().endswith("200")
    assert server.pid is None


def test_stop_ends_the_whole_process_group_even_a_child_ignoring_sigterm(tmp_path):
    """Healthy start, base URL and snippet; stopping leaves no process of the group behind."""
    python = _script(tmp_path / "python", FAKE_VLLM.format(python=sys.executable))
    server = VllmServer(
        CandidateSpec(port=0, model=str(tmp_path)),
        install=VllmInstall(python, "official"),
        log_path=tmp_path / "vllm.log",
        startup_timeout_s=30,
        stop_grace_s=1,
    )
    with server:
        pgid = server.pid
        assert pgid is not None
        assert os.getpgid(pgid) == pgid != os.getpgrp()
        assert httpx.get(server.base_url.removesuffix("/v1") + "/health").status_code == 200
        assert server.model == tmp_path.name
        config = parse_config(
            config_snippet(server) + "    primary: {upstream: self-hosted, model: x}\n",
            "<snippet>",
        )
        assert config.upstreams["self-hosted"].base_url == server.base_url
    assert not _group_alive(pgid)


def test_a_busy_port_is_refused_before_starting(tmp_path):
    """Another server on the port would answer /health for us: refuse instead."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = VllmServer(
            CandidateSpec(port=port),
            install=VllmInstall(_script(tmp_path / "python", BROKEN_VLLM), "official"),
        )
        with pytest.raises(CandidateError, match="already in use"):
            server.start()
