"""Cut-over end to end: shadow → GO → 1 … 100 % candidate → candidate breaks → back to 0 %."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import func, select

from criteria.access.auth import create_token
from criteria.rollout.rules import FALLBACK_PREFIX
from shadow.settings import Settings
from shadow.simulator.prompts import load_prompts
from shadow.simulator.server import SimulatorConfig, SimulatorThread
from storage.db import make_engine, session_scope
from storage.models import RequestPair, RolloutEvent, Score
from storage.repository import live_counts
from tests.conftest import VENV_BIN, wait_for

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

SUPPORT = [p for p in load_prompts() if p.kind == "support" and not p.tools]
CRITERIA = {
    "criteria": [
        {
            "name": "reliability",
            "metric": "candidate.error",
            "stat": "proportion",
            "op": "<=",
            "threshold": 0.2,
            "critical": True,
        }
    ]
}


class WebhookReceiver:
    """A local Slack-style incoming webhook that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def kinds(self) -> list[str]:
        return [body["kind"] for body in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def _config(primary: str, candidate: str) -> str:
    return f"""\
upstreams:
  api: {{base_url: {primary}, api_key_env: TEST_PRIMARY_KEY}}
  gpu: {{base_url: {candidate}}}
use_cases:
  chat:
    primary: {{upstream: api, model: gpt-4o-mini}}
    candidate: {{upstream: gpu, model: llama}}
    shadow: {{sample_rate: 1, noise_rate: 0}}
    rollout:
      steps: [1, 5, 25, 50, 100]
      min_step_duration: 0s
      first_byte_timeout_s: 2
      max_fallback_rate: 0.1
      min_fallback_requests: 5
      webhook_url_env: TEST_WEBHOOK_URL
    criteria: {json.dumps(CRITERIA)}
evaluators:
  disabled: [semantic_similarity, overlap, judge]
"""


def _live_percent(url: str) -> float | None:
    """The proxy's live percentage of `chat`, from its Prometheus gauge."""
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith('switchover_live_percent{use_case="chat"}'):
            return float(line.split()[-1])
    return None


def _fallbacks_stored(url: str) -> int:
    """Live requests of `chat` that fell back to the primary, over all time."""
    engine = make_engine(url)
    with session_scope(engine) as session:
        counts = live_counts(session, "chat", datetime(2000, 1, 1, tzinfo=UTC))
    engine.dispose()
    return sum(n for outcome, n in counts.items() if outcome.startswith(FALLBACK_PREFIX))


def _scored(url: str) -> int:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            query = (
                select(func.count())
                .select_from(Score)
                .join(RequestPair, RequestPair.id == Score.pair_id)
                .where(Score.metric == "candidate.error")
            )
            return int(session.scalar(query) or 0)
    finally:
        engine.dispose()


def test_a_use_case_goes_from_shadow_to_candidate_and_back_under_the_verdict(
    monkeypatch, sqlite_url, webhook, simulator, proxy
):
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TEST_PRIMARY_KEY", "sk-primary")
    monkeypatch.setenv("TEST_WEBHOOK_URL", webhook.url)
    primary = simulator()
    candidate_server = SimulatorThread(SimulatorConfig())
    candidate = candidate_server.start()
    settings = Settings(broker_url=None, evaluate_every_s=1, rollout_sync_s=0.2)
    url = proxy(_config(primary, candidate), settings)
    with session_scope(make_engine(sqlite_url)) as session:
        admin = create_token(session, "admin", "release-manager")
    auth = {"authorization": f"Bearer {admin}"}
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="client", max_retries=0, timeout=30)

    def ask(i):
        item = SUPPORT[i % len(SUPPORT)]
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[m.model_dump() for m in item.messages]
        )
        assert raw.parse().choices[0].message.content == item.reference
        return raw.headers

    def rollout(**body: Any) -> httpx.Response:
        return httpx.post(
            f"{url}/api/v1/use-cases/chat/rollout", json=body, headers=auth, timeout=60
        )

    def status():
        found = httpx.get(f"{url}/api/v1/use-cases/chat/rollout", headers=auth, timeout=60)
        return found.json()

    # Shadow mode: no evidence yet, so no advance.
    early = rollout(action="advance")
    assert early.status_code == 409
    assert "INSUFFICIENT_DATA" in early.json()["detail"]
    assert all(ask(i)["x-switchover-served-by"] == "primary" for i in range(40))
    wait_for(lambda: _scored(sqlite_url) == 40, timeout=120)

    # GO: advance step by step (the CLI for the first step) to all traffic on the candidate.
    done = subprocess.run(
        [
            str(VENV_BIN / "switchover"),
            "rollout",
            "advance",
            "chat",
            "--url",
            url,
            "--token",
            admin,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for step in (5, 25, 50, 100):
        moved = rollout(action="advance")
        assert moved.status_code == 200, moved.text
        assert moved.json()["percent"] == step
    assert status()["mode"] == "candidate"
    # the proxy's in-memory copy follows the database within a sync period (one answer from
    # the candidate proves nothing at the previous step, 50 %)
    wait_for(lambda: _live_percent(url) == 100, timeout=10)
    served = [ask(i)["x-switchover-served-by"] for i in range(20)]
    assert served == ["candidate"] * 20
    # the reverse shadow keeps the evidence flowing: the primary is asked by the worker
    wait_for(lambda: _scored(sqlite_url) >= 60, timeout=60)

    # The candidate breaks: clients still get the primary's answers, then the rollout goes back.
    candidate_server.stop()
    broken_at = time.monotonic()
    for i in range(10):
        headers = ask(i)
        assert headers["x-switchover-served-by"] == "primary"
        assert headers["x-switchover-fallback"] == "connection"
    wait_for(lambda: status()["percent"] == 0, timeout=30)
    rolled_back_s = time.monotonic() - broken_at
    body = status()
    assert body["mode"] == "shadow"
    # every fallback is stored (the status only counts those since the rollback's minute)
    wait_for(lambda: _fallbacks_stored(sqlite_url) >= 10, timeout=10)
    event = body["history"][0]
    assert event["kind"] == "auto_rollback"
    assert (event["from_percent"], event["to_percent"]) == (100, 0)
    assert "fallback rate" in event["reason"]
    advances = [e for e in body["history"] if e["kind"] == "advance"]
    assert [e["to_percent"] for e in advances] == [100, 50, 25, 5, 1]
    assert {(e["actor"], e["verdict"]) for e in advances} == {("release-manager", "GO")}
    wait_for(lambda: "x-switchover-fallback" not in ask(0), timeout=10)
    assert ask(1)["x-switchover-served-by"] == "primary"

    wait_for(lambda: "auto_rollback" in webhook.kinds(), timeout=30)
    alert = next(b for b in webhook.received if b["kind"] == "auto_rollback")
    assert alert["text"].startswith(":rotating_light: chat: automatic rollback 100 % → 0 %")
    assert alert["use_case"] == "chat"
    assert "GO" in [b["verdict"] for b in webhook.received if b["kind"] == "verdict_change"]
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        stored = session.scalars(select(RolloutEvent).where(RolloutEvent.kind == "auto_rollback"))
        assert [e.notified_at is not None for e in stored] == [True]
    engine.dispose()
    log.info(
        "rollback %.1f s after the candidate broke; fallback %d of %d live requests; webhooks: %s",
        rolled_back_s,
        body["fallback"]["fallbacks"],
        body["fallback"]["routed"],
        webhook.kinds(),
    )
