"""What `serve` says at start-up, and the warnings `/readyz` keeps (issue 20, items 1 and 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from shadow.serving import free_port
from shadow.settings import Settings
from tests.conftest import CapturedJobs, config_text, wait_for

NOISE_CRITERIA = {
    "min_duration": "1s",
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


def _config(primary: str, candidate: str, **shadow: Any) -> str:
    text = config_text(primary, candidate, primary_key_env="SWITCHOVER_TEST_UNSET_KEY", **shadow)
    return text + f"    criteria: {json.dumps(NOISE_CRITERIA)}\n"


@pytest.fixture(autouse=True)
def _unset_key(monkeypatch):
    monkeypatch.delenv("SWITCHOVER_TEST_UNSET_KEY", raising=False)


def test_readyz_lists_the_keyless_noise_floor_and_a_silent_candidate(simulator, proxy, sqlite_url):
    primary = simulator()
    silent = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    url = proxy(
        _config(primary, silent, noise_rate=0.2),
        Settings(database_url=sqlite_url),
        CapturedJobs().publish,
    )

    def warnings():
        body = httpx.get(f"{url}/readyz").json()
        found = body["warnings"]
        return found if any(w["reason"] == "candidate_unreachable" for w in found) else None

    found = wait_for(warnings)
    assert httpx.get(f"{url}/readyz").status_code == 200  # a warning does not make it unready
    by_reason = {}
    for warning in found:
        by_reason.setdefault(warning["reason"], []).append(warning)
    assert "SWITCHOVER_TEST_UNSET_KEY is not set" in by_reason["key_unset"][0]["message"]
    keyless = by_reason["no_primary_key"][0]
    assert keyless["criterion"] == "answer quality"
    assert "SWITCHOVER_TEST_UNSET_KEY is not set" in keyless["message"]
    silent_upstream = [w for w in by_reason["candidate_unreachable"] if w["criterion"] is None]
    assert "'gpu'" in silent_upstream[0]["message"]
    assert "does not answer" in silent_upstream[0]["message"]
    criteria = {w["criterion"] for w in by_reason["candidate_unreachable"] if w["criterion"]}
    # errors are counted even when the candidate never answers; the quality is not
    assert criteria == {"answer quality"}


def test_readyz_and_the_verdict_say_noise_rate_zero_never_decides(simulator, proxy, sqlite_url):
    url = proxy(
        _config(simulator(), simulator(), noise_rate=0),
        Settings(database_url=sqlite_url),
        CapturedJobs().publish,
    )
    found = httpx.get(f"{url}/readyz").json()["warnings"]
    never = [w for w in found if w["reason"] == "noise_rate_zero"]
    assert never[0]["criterion"] == "answer quality"
    assert "can never get data" in never[0]["message"]
    assert "noise_rate is 0" in never[0]["message"]


def _serve(tmp_path: Path, config: str, *args: str) -> subprocess.Popen[str]:
    path = tmp_path / "switchover.yaml"
    path.write_text(config)
    env = {
        **os.environ,
        "SWITCHOVER_CONFIG": str(path),
        "SWITCHOVER_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SWITCHOVER_BROKER_URL", None)
    env.pop("SWITCHOVER_TEST_UNSET_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "shadow.cli", "serve", *args],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def _read_until(process: subprocess.Popen[str], needle: str, timeout_s: float = 120) -> str:
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(process.stderr.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not any(needle in line for line in lines):
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.terminate()
    process.wait(30)
    reader.join(5)
    return "".join(lines)


def test_serve_says_where_it_listens_each_use_case_and_what_cannot_decide(simulator, tmp_path):
    primary, candidate = simulator(), simulator()
    port = free_port()
    process = _serve(
        tmp_path, _config(primary, candidate, noise_rate=0.25, sample_rate=0.5), "--port", str(port)
    )
    output = _read_until(process, "may get no noise floor")
    assert f"listening on http://127.0.0.1:{port}/v1 (embedded: database sqlite:///" in output
    assert "supervised worker process(es))" in output
    assert (
        "default: gpt-4o-mini (api) -> cand-model (gpu), sample rate 50%, noise rate 25%" in output
    )
    warning = next(line for line in output.splitlines() if "may get no noise floor" in line)
    assert " WARNING " in warning
    assert "criterion 'answer quality'" in warning
    assert "SWITCHOVER_TEST_UNSET_KEY is not set" in warning
    assert "Traceback" not in output


def test_serve_refuses_an_unknown_log_level(tmp_path, simulator):
    process = _serve(tmp_path, _config(simulator(), simulator()), "--log-level", "loud")
    output = _read_until(process, "log level", timeout_s=60)
    assert "unknown log level 'loud'" in output
    assert "Traceback" not in output
