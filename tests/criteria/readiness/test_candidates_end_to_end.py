"""Three candidates on the same traffic, one run: a verdict and a rank for each, selectable."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from sqlalchemy import func, select

from criteria.access.auth import create_token
from shadow.settings import Settings
from shadow.simulator.prompts import load_prompts
from storage.db import make_engine, session_scope
from storage.models import RequestPair, Score
from tests.conftest import VENV_BIN, wait_for

pytestmark = pytest.mark.integration

SUPPORT = [p for p in load_prompts() if p.kind == "support"]
CRITERIA = {
    "criteria": [
        {
            "name": "answer overlap",
            "metric": "quality.rouge_l",
            "stat": "mean",
            "op": ">=",
            "threshold": 0.6,
            "critical": True,
        },
        {
            "name": "reliability",
            "metric": "candidate.error",
            "stat": "proportion",
            "op": "<=",
            "threshold": 0.2,
        },
    ]
}
N = 60


def _scored(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            rows = session.execute(
                select(RequestPair.candidate_name, func.count())
                .join(Score, Score.pair_id == RequestPair.id)
                .where(Score.metric == "quality.rouge_l")
                .group_by(RequestPair.candidate_name)
            ).all()
            return {name: int(count) for name, count in rows}
    finally:
        engine.dispose()


def test_good_mediocre_and_bad_candidates_side_by_side(simulator, proxy, sqlite_url, monkeypatch):
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", sqlite_url)
    primary = simulator()
    presets = {"good": {"reference": 1.0}, "mediocre": "mediocre", "bad": {"wrong": 1.0}}
    urls = {name: simulator(answer_mix=mix, seed=3) for name, mix in presets.items()}
    lines = ["upstreams:", f"  api: {{base_url: {primary}}}"]
    lines += [f"  {name}-gpu: {{base_url: {url}}}" for name, url in urls.items()]
    lines += [
        "use_cases:",
        "  support-chat:",
        "    primary: {upstream: api, model: gpt-4o-mini}",
        "    shadow: {sample_rate: 1, noise_rate: 0}",
        "    candidates:",
        *(f"      {name}: {{upstream: {name}-gpu, model: m-{name}}}" for name in urls),
        f"    criteria: {json.dumps(CRITERIA)}",
    ]
    url = proxy("\n".join(lines) + "\n", Settings(broker_url=None))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0, timeout=30)

    def ask(i: int) -> None:
        item = SUPPORT[i % len(SUPPORT)]
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[m.model_dump() for m in item.messages]
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(ask, range(N)))
    wait_for(lambda: _scored(sqlite_url) == dict.fromkeys(urls, N), timeout=240)
    with session_scope(make_engine(sqlite_url)) as session:
        token = create_token(session, "viewer", "release-manager")
    headers = {"authorization": f"Bearer {token}"}

    def get(path: str, **params: str) -> httpx.Response:
        return httpx.get(f"{url}/api/v1/{path}", headers=headers, params=params, timeout=60)

    lead = get("readiness/support-chat").json()
    assert lead["candidate"] == "good"  # the first listed
    assert lead["verdict"] == "GO", lead
    assert lead["pairs"] == N
    ranked = {row["candidate"]: row for row in lead["candidates"]}
    assert list(ranked) == ["good", "mediocre", "bad"]
    assert ranked["good"]["verdict"] == "GO"
    assert ranked["bad"]["verdict"] == "NO_GO"
    assert ranked["mediocre"]["verdict"] in ("INSUFFICIENT_DATA", "NO_GO")
    assert [ranked[n]["rank"] for n in ("good", "mediocre", "bad")] == [1, 2, 3]
    assert ranked["good"]["reasons"][0].startswith("rank 1: can take over")
    assert all(row["pairs"] == N and row["criteria"] for row in ranked.values())

    bad = get("readiness/support-chat", candidate="bad").json()
    assert (bad["candidate"], bad["verdict"]) == ("bad", "NO_GO")
    assert bad["criteria"] == ranked["bad"]["criteria"]
    assert bad["candidates"] == lead["candidates"]
    assert get("gate/support-chat").status_code == 200
    assert get("gate/support-chat", candidate="bad").status_code == 409
    assert get("gate/support-chat", candidate="mistral").status_code == 404
    pairs = get("pairs", use_case="support-chat", candidate="bad", limit="100").json()
    assert len(pairs) == N
    assert {p["candidate_name"] for p in pairs} == {"bad"}
    quality = get(
        "use-cases/support-chat/distributions", metric="quality.rouge_l", candidate="good"
    ).json()
    assert quality["candidate"] == "good"
    assert quality["metrics"][0]["n"] == N
    assert get("use-cases/support-chat/cost", candidate="bad").json()["candidate"] == "bad"
    (summary,) = get("use-cases").json()
    assert (summary["candidate"], summary["candidates"]) == ("good", ["good", "mediocre", "bad"])
    assert summary["candidate_model"] == "m-good"

    def gate_cli(*extra: str) -> int:
        done = subprocess.run(
            [
                str(VENV_BIN / "switchover"),
                "gate",
                "support-chat",
                "--url",
                url,
                "--token",
                token,
                *list(extra),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.returncode

    assert gate_cli() == 0
    assert gate_cli("--candidate", "bad") == 1
    assert gate_cli("--candidate", "mediocre") in (1, 2)
    assert gate_cli("--candidate", "mistral") == 3
