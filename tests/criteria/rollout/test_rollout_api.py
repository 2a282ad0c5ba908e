"""`/api/v1/use-cases/{use_case}/rollout` and `switchover rollout` over seeded evidence."""

from __future__ import annotations

import json
import subprocess

import httpx
import openai
import pytest

from criteria.access.auth import create_token
from shadow.settings import Settings
from storage.db import make_engine, session_scope
from tests.conftest import VENV_BIN, CapturedJobs, wait_for
from tests.fixtures.evidence import Evidence, seed_pairs

pytestmark = pytest.mark.integration

CRITERIA = {
    "criteria": [
        {
            "name": "reliability",
            "metric": "candidate.error",
            "stat": "proportion",
            "op": "<=",
            "threshold": 0.1,
            "critical": True,
        }
    ]
}


def _config(primary: str, candidate: str) -> str:
    lines = ["upstreams:", f"  api: {{base_url: {primary}}}", f"  gpu: {{base_url: {candidate}}}"]
    lines.append("use_cases:")
    for name in ("good", "bad", "young"):
        lines += [
            f"  {name}:",
            f"    primary: {{upstream: api, model: m-{name}}}",
            "    candidate: {upstream: gpu, model: llama}",
            "    rollout: {steps: [10, 50, 100], min_step_duration: 1h}",
            f"    criteria: {json.dumps(CRITERIA)}",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def service(monkeypatch, sqlite_url, simulator, proxy):
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", sqlite_url)
    seed_pairs(sqlite_url, "good", Evidence(pairs=200))
    seed_pairs(sqlite_url, "bad", Evidence(pairs=200, error_rate=0.5))
    seed_pairs(sqlite_url, "young", Evidence(pairs=5))
    url = proxy(
        _config(simulator(), simulator()),
        Settings(broker_url=None, rollout_sync_s=0.2),
        CapturedJobs().publish,
    )
    with session_scope(make_engine(sqlite_url)) as session:
        tokens = {
            "viewer": create_token(session, "viewer", "dashboard"),
            "admin": create_token(session, "admin", "release-manager"),
        }
    return url, tokens


def _post(url, use_case, token, **body):
    return httpx.post(
        f"{url}/api/v1/use-cases/{use_case}/rollout",
        json=body,
        headers={"authorization": f"Bearer {token}"},
        timeout=60,
    )


def _get(url, use_case, token):
    return httpx.get(
        f"{url}/api/v1/use-cases/{use_case}/rollout",
        headers={"authorization": f"Bearer {token}"},
        timeout=60,
    ).json()


def test_advance_follows_the_verdict_and_force_needs_admin_and_a_reason(service):
    url, tokens = service
    admin, viewer = tokens["admin"], tokens["viewer"]
    assert _post(url, "good", viewer, action="advance").status_code == 403
    refused = _post(url, "bad", admin, action="advance")
    assert refused.status_code == 409
    assert "verdict is NO_GO" in refused.json()["detail"]
    young = _post(url, "young", admin, action="advance")
    assert young.status_code == 409
    assert "verdict is INSUFFICIENT_DATA" in young.json()["detail"]

    moved = _post(url, "good", admin, action="advance")
    assert moved.status_code == 200, moved.text
    assert (moved.json()["mode"], moved.json()["percent"]) == ("canary", 10)
    too_soon = _post(url, "good", admin, action="advance")
    assert too_soon.status_code == 409
    assert "allowed from" in too_soon.json()["detail"]

    assert _post(url, "bad", viewer, action="advance", force=True, reason="x").status_code == 403
    assert _post(url, "bad", admin, action="advance", force=True).status_code == 422
    forced = _post(url, "bad", admin, action="advance", force=True, reason="load test tonight")
    assert forced.status_code == 200
    event = forced.json()["history"][0]
    assert event["kind"] == "advance"
    assert event["actor"] == "release-manager"
    assert (event["from_percent"], event["to_percent"]) == (0, 10)
    assert event["verdict"] == "NO_GO"
    assert event["forced"] is True
    assert event["reason"] == "load test tonight"

    back = _post(url, "bad", admin, action="rollback", reason="done")
    assert back.json()["percent"] == 0
    assert _post(url, "bad", admin, action="rollback").status_code == 409
    status = _get(url, "bad", viewer)
    assert [e["kind"] for e in status["history"] if e["kind"] != "verdict_change"] == [
        "rollback",
        "advance",
    ]
    modes = httpx.get(
        f"{url}/api/v1/use-cases", headers={"authorization": f"Bearer {viewer}"}, timeout=30
    ).json()
    assert {m["name"]: m["mode"] for m in modes} == {
        "good": "canary",
        "bad": "shadow",
        "young": "shadow",
    }


def test_the_cli_shows_and_moves_the_rollout(service):
    url, tokens = service

    def run(*args):
        return subprocess.run(
            [str(VENV_BIN / "switchover"), "rollout", *args, "--url", url],
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = run("advance", "bad", "--token", tokens["admin"])
    assert refused.returncode == 1
    assert "NO_GO" in refused.stderr
    done = run("advance", "good", "--token", tokens["admin"])
    assert done.returncode == 0, done.stderr
    assert "canary" in done.stdout
    status = run("status", "good", "--token", tokens["viewer"])
    assert status.returncode == 0
    assert "advance" in status.stdout
    assert "release-manager" in status.stdout
    assert run("rollback", "good", "--token", tokens["viewer"]).returncode == 3  # 403


def test_an_advance_names_the_candidate_that_takes_live_traffic(
    monkeypatch, sqlite_url, simulator, proxy
):
    """Two candidates: the lead one (llama) is NO_GO, qwen is GO. `--candidate qwen` moves
    qwen, whose upstream then answers the live traffic; llama cannot start while qwen is live,
    and keeps being judged."""
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", sqlite_url)
    seed_pairs(sqlite_url, "duo", Evidence(pairs=200, error_rate=0.5), candidate="llama")
    seed_pairs(sqlite_url, "duo", Evidence(pairs=200), seed=2, candidate="qwen")
    api, llama, qwen = simulator(), simulator(), simulator()
    config = "\n".join(
        [
            "upstreams:",
            f"  api: {{base_url: {api}}}",
            f"  llama-gpu: {{base_url: {llama}}}",
            f"  qwen-gpu: {{base_url: {qwen}}}",
            "use_cases:",
            "  duo:",
            "    primary: {upstream: api, model: gpt-4o-mini}",
            "    candidates:",
            "      llama: {upstream: llama-gpu, model: llama-3.1-8b}",
            "      qwen: {upstream: qwen-gpu, model: qwen2.5-7b}",
            "    shadow: {sample_rate: 0}",
            "    rollout: {steps: [100], min_step_duration: 1h}",
            f"    criteria: {json.dumps(CRITERIA)}",
        ]
    )
    url = proxy(
        config + "\n", Settings(broker_url=None, rollout_sync_s=0.2), CapturedJobs().publish
    )
    with session_scope(make_engine(sqlite_url)) as session:
        admin = create_token(session, "admin", "release-manager")

    lead = _post(url, "duo", admin, action="advance")
    assert lead.status_code == 409
    assert "verdict is NO_GO" in lead.json()["detail"]
    unknown = _post(url, "duo", admin, action="advance", candidate="mistral")
    assert unknown.status_code == 404
    assert "no candidate 'mistral'" in unknown.json()["detail"]

    moved = subprocess.run(
        [str(VENV_BIN / "switchover"), "rollout", "advance", "duo", "--candidate", "qwen",
         "--url", url, "--token", admin],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert "100 % of live traffic to qwen" in " ".join(moved.stdout.split())
    status = _get(url, "duo", admin)
    assert (status["candidate"], status["mode"], status["verdict"]) == ("qwen", "candidate", None)
    assert (status["history"][0]["kind"], status["history"][0]["candidate"]) == ("advance", "qwen")

    busy = _post(url, "duo", admin, action="advance", candidate="llama", force=True, reason="x")
    assert busy.status_code == 409
    assert (
        "qwen takes 100 % of live traffic: roll back before moving llama" in (busy.json()["detail"])
    )

    def served(base: str) -> int:
        return int(httpx.get(f"{base.removesuffix('/v1')}/sim/stats").json()["requests"])

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0, timeout=30)
    ask = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    wait_for(lambda: client.chat.completions.with_raw_response.create(**ask).headers.get(
        "x-switchover-served-by") == "candidate", timeout=60)  # fmt: skip
    before = served(api), served(llama), served(qwen)
    for _ in range(5):
        raw = client.chat.completions.with_raw_response.create(**ask)
        assert raw.headers["x-switchover-served-by"] == "candidate"
        assert raw.parse().model == "qwen2.5-7b"
    assert (served(api), served(llama), served(qwen)) == (before[0], before[1], before[2] + 5)

    back = _post(url, "duo", admin, action="rollback", reason="try the other one")
    assert (back.json()["percent"], back.json()["candidate"]) == (0, "qwen")
    again = _post(url, "duo", admin, action="advance", candidate="llama")
    assert again.status_code == 409
    assert "verdict is NO_GO" in again.json()["detail"]  # llama's own verdict decides
