"""From traffic to verdict: proxy → worker → scores → criteria → gate, nothing seeded."""

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


def _config(primary: str, candidates: dict[str, str]) -> str:
    lines = ["upstreams:", f"  api: {{base_url: {primary}}}"]
    lines += [f"  {name}-gpu: {{base_url: {url}}}" for name, url in candidates.items()]
    lines.append("use_cases:")
    for name in candidates:
        lines += [
            f"  {name}:",
            f"    primary: {{upstream: api, model: m-{name}}}",
            f"    candidate: {{upstream: {name}-gpu, model: llama}}",
            "    shadow: {sample_rate: 1, noise_rate: 0}",
            f"    criteria: {json.dumps(CRITERIA)}",
        ]
    return "\n".join(lines) + "\n"


def _scored(url: str, use_case: str) -> int:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            query = (
                select(func.count())
                .select_from(Score)
                .join(RequestPair, RequestPair.id == Score.pair_id)
                .where(RequestPair.use_case == use_case, Score.metric == "quality.rouge_l")
            )
            return int(session.scalar(query) or 0)
    finally:
        engine.dispose()


def test_good_bad_and_young_candidates_get_go_no_go_and_insufficient_data(
    simulator, proxy, sqlite_url, monkeypatch
):
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", sqlite_url)
    primary = simulator()
    candidates = {
        "good": simulator(answer_mix={"reference": 1.0}),
        "bad": simulator(answer_mix={"wrong": 1.0}),
        "young": simulator(),
    }
    url = proxy(_config(primary, candidates), Settings(broker_url=None))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0, timeout=30)
    plan = [("good", i) for i in range(60)] + [("bad", i) for i in range(60)]
    plan += [("young", i) for i in range(4)]

    def ask(step):
        use_case, i = step
        item = SUPPORT[i % len(SUPPORT)]
        client.chat.completions.create(
            model=f"m-{use_case}", messages=[m.model_dump() for m in item.messages]
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(ask, plan))
    for use_case, n in (("good", 60), ("bad", 60), ("young", 4)):
        wait_for(lambda u=use_case, n=n: _scored(sqlite_url, u) == n, timeout=180)

    with session_scope(make_engine(sqlite_url)) as session:
        token = create_token(session, "viewer", "release-manager")

    def gate(use_case):
        return httpx.get(
            f"{url}/api/v1/gate/{use_case}",
            headers={"authorization": f"Bearer {token}"},
            timeout=60,
        )

    good = gate("good")
    assert good.status_code == 200, good.json()
    assert good.json()["verdict"] == "GO"
    bad = gate("bad")
    assert bad.status_code == 409
    assert bad.json()["verdict"] == "NO_GO"
    assert "'answer overlap' fails" in bad.json()["reasons"][0]
    young = gate("young")
    assert young.status_code == 425
    body = young.json()
    assert body["verdict"] == "INSUFFICIENT_DATA"
    assert body["pairs"] == 4
    assert {row["needed_n"] for row in body["criteria"]} == {10}
    assert all("samples needed in total" in reason for reason in body["reasons"])

    for use_case, code in (("good", 0), ("bad", 1), ("young", 2)):
        done = subprocess.run(
            [str(VENV_BIN / "switchover"), "gate", use_case, "--url", url, "--token", token],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == code, done.stdout + done.stderr


NOISE_CRITERIA = {
    "criteria": [
        {
            "name": "quality vs the API's own variation",
            "metric": "quality.semantic_similarity",
            "stat": "mean",
            "mode": "noise_adjusted",
            "margin": 0.05,
            "critical": True,
        }
    ]
}


def _similarity_scored(url: str, use_case: str) -> tuple[int, int]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:

            def count(metric: str) -> int:
                query = (
                    select(func.count())
                    .select_from(Score)
                    .join(RequestPair, RequestPair.id == Score.pair_id)
                    .where(RequestPair.use_case == use_case, Score.metric == metric)
                )
                return int(session.scalar(query) or 0)

            return count("quality.semantic_similarity"), count("noise.semantic_similarity")
    finally:
        engine.dispose()


def test_a_over_a_is_go_on_noise_adjusted_quality_and_a_worse_candidate_no_go(
    simulator, proxy, sqlite_url, monkeypatch
):
    """The candidate is the simulated API itself (it rephrases now and then): GO; worse: NO_GO."""
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", sqlite_url)
    primary = simulator(answer_mix="api", seed=1)
    candidates = {
        "same": simulator(answer_mix="api", seed=2),
        "worse": simulator(answer_mix="mediocre"),
    }
    lines = ["upstreams:", f"  api: {{base_url: {primary}}}"]
    lines += [f"  {name}-gpu: {{base_url: {url}}}" for name, url in candidates.items()]
    lines.append("use_cases:")
    for name in candidates:
        lines += [
            f"  {name}:",
            f"    primary: {{upstream: api, model: m-{name}}}",
            f"    candidate: {{upstream: {name}-gpu, model: llama}}",
            "    shadow: {sample_rate: 1, noise_rate: 0.5}",
            f"    criteria: {json.dumps(NOISE_CRITERIA)}",
        ]
    # the client's own key reaches the primary: the proxy makes the re-asks itself
    url = proxy("\n".join(lines) + "\n", Settings(broker_url=None))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-own", max_retries=0, timeout=30)
    plan = [(name, i) for name in candidates for i in range(160)]

    def ask(step):
        use_case, i = step
        item = SUPPORT[i % len(SUPPORT)]
        client.chat.completions.create(
            model=f"m-{use_case}", messages=[m.model_dump() for m in item.messages]
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(ask, plan))
    for use_case in candidates:
        wait_for(lambda u=use_case: _similarity_scored(sqlite_url, u)[0] == 160, timeout=300)
        assert _similarity_scored(sqlite_url, use_case)[1] > 40, "the noise floor was re-asked"
    with session_scope(make_engine(sqlite_url)) as session:
        token = create_token(session, "viewer", "release-manager")
    headers = {"authorization": f"Bearer {token}"}
    same = httpx.get(f"{url}/api/v1/readiness/same", headers=headers, timeout=60).json()
    assert same["verdict"] == "GO", same
    noise_floor = same["criteria"][0]
    assert noise_floor["ci_low"] > -0.05
    worse = httpx.get(f"{url}/api/v1/readiness/worse", headers=headers, timeout=60).json()
    assert worse["verdict"] == "NO_GO", worse
