"""The readiness API and the CLI gate against a running service with seeded evidence."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from criteria.access.auth import create_token
from criteria.readiness.tasks import evaluate_all
from shadow.catalog import catalog_for
from shadow.config import parse_config
from shadow.settings import Settings
from storage.db import make_engine, session_scope
from storage.models import Decision, Score
from storage.repository import insert_pair
from storage.schemas import AnswerFields, PairCreate
from tests.conftest import VENV_BIN, CapturedJobs

CRITERIA = {
    "alpha": 0.05,
    "criteria": [
        {
            "name": "quality",
            "metric": "quality.rouge_l",
            "stat": "mean",
            "op": ">=",
            "threshold": 0.5,
        },
        {
            "name": "reliability",
            "metric": "candidate.error",
            "stat": "proportion",
            "op": "<=",
            "threshold": 0.05,
            "critical": True,
        },
    ],
}


def _config(primary: str, candidate: str) -> str:
    lines = [
        "upstreams:",
        f"  api: {{base_url: {primary}}}",
        f"  gpu: {{base_url: {candidate}}}",
        "use_cases:",
    ]
    for name in ("good", "bad", "young", "empty"):
        lines += [
            f"  {name}:",
            f"    primary: {{upstream: api, model: m-{name}}}",
            "    candidate: {upstream: gpu, model: llama}",
            f"    criteria: {json.dumps(CRITERIA)}",
        ]
    return "\n".join(lines) + "\n"


def seed(url: str, use_case: str, quality: np.ndarray, errors: np.ndarray) -> None:
    """Store pairs with rouge-L and error scores, one minute apart."""
    start = datetime(2026, 11, 20, tzinfo=UTC)
    engine = make_engine(url)
    with session_scope(engine) as session:
        for i, (q, e) in enumerate(zip(quality, errors, strict=True)):
            pair_id = f"{use_case}-{i}"
            insert_pair(
                session,
                PairCreate(
                    id=pair_id,
                    use_case=use_case,
                    endpoint="chat.completions",
                    stream=False,
                    created_at=start + timedelta(minutes=i),
                    request_body='{"model": "m", "messages": [{"role": "user", "content": "hi"}]}',
                    request_sha256="0" * 64,
                    primary_model="m",
                    primary_request_id=None,
                    primary=AnswerFields(status_code=200, text="hello there", latency_ms=100),
                    candidate_model="llama",
                    candidate=AnswerFields(status_code=200, text=f"answer {i}", latency_ms=90),
                ),
            )
            session.add(Score(pair_id=pair_id, metric="quality.rouge_l", value=float(q)))
            session.add(Score(pair_id=pair_id, metric="candidate.error", value=float(e)))
    engine.dispose()


@pytest.fixture
def service(simulator, proxy, sqlite_url, monkeypatch):
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", sqlite_url)
    rng = np.random.default_rng(1)
    seed(sqlite_url, "good", rng.beta(8, 2, size=400), np.zeros(400))
    seed(sqlite_url, "bad", rng.beta(8, 2, size=400), (np.arange(400) % 4 == 0).astype(float))
    seed(sqlite_url, "young", rng.beta(8, 2, size=5), np.zeros(5))
    url = proxy(
        _config(simulator(), simulator()), Settings(broker_url=None), CapturedJobs().publish
    )
    with session_scope(make_engine(sqlite_url)) as session:
        tokens = {
            "viewer": create_token(session, "viewer", "dashboard"),
            "admin": create_token(session, "admin", "ml-team"),
        }
    return url, tokens


def _get(url, path, token=None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url + path, headers=headers, timeout=30)


def test_reads_need_a_token(service):
    url, tokens = service
    assert _get(url, "/api/v1/readiness").status_code == 401
    assert _get(url, "/api/v1/readiness", "swo_not-a-token").status_code == 401
    assert _get(url, "/api/v1/readiness", tokens["viewer"]).status_code == 200


def test_readiness_body_has_the_contract_fields(service):
    url, tokens = service
    body = _get(url, "/api/v1/readiness/good", tokens["viewer"]).json()
    assert set(body) >= {
        "use_case",
        "verdict",
        "evaluated_at",
        "criteria_version",
        "pairs",
        "window",
        "criteria",
        "reasons",
    }
    assert body["verdict"] == "GO"
    assert body["pairs"] == 400
    assert body["criteria_version"] == 1
    assert set(body["window"]) == {"start", "end"}
    row = body["criteria"][0]
    assert set(row) >= {
        "name",
        "metric",
        "stat",
        "verdict",
        "estimate",
        "ci_low",
        "ci_high",
        "threshold",
        "n",
        "needed_n",
    }
    assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
    assert row["n"] == 400


def test_gate_status_codes_follow_the_verdict(service):
    url, tokens = service
    assert _get(url, "/api/v1/gate/good", tokens["viewer"]).status_code == 200
    bad = _get(url, "/api/v1/gate/bad", tokens["viewer"])
    assert bad.status_code == 409
    assert bad.json()["verdict"] == "NO_GO"
    assert "reliability" in bad.json()["reasons"][0]
    young = _get(url, "/api/v1/gate/young", tokens["viewer"])
    assert young.status_code == 425
    assert young.json()["criteria"][0]["needed_n"] == 10
    assert _get(url, "/api/v1/gate/nope", tokens["viewer"]).status_code == 404


def test_cli_gate_exit_codes(service):
    url, tokens = service

    def gate(*args):
        return subprocess.run(
            [
                str(VENV_BIN / "switchover"),
                "gate",
                *args,
                "--url",
                url,
                "--token",
                tokens["viewer"],
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    good = gate("good")
    assert good.returncode == 0
    assert "GO" in good.stdout
    assert "quality" in good.stdout
    assert gate("bad").returncode == 1
    young = gate("young", "--json")
    assert young.returncode == 2
    assert json.loads(young.stdout)["verdict"] == "INSUFFICIENT_DATA"
    assert gate("nope").returncode == 3
    unreachable = subprocess.run(
        [str(VENV_BIN / "switchover"), "gate", "good", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 3


def test_criteria_put_needs_admin_and_creates_a_version(service):
    url, tokens = service
    current = _get(url, "/api/v1/use-cases/good/criteria", tokens["viewer"]).json()
    assert current["version"] == 1
    assert current["author"] == "config"
    document = "use_case: good\ncriteria:\n  - {name: quality, metric: quality.rouge_l, stat: mean, op: '>=', threshold: 0.9}\n"

    def put(token, body, content_type="application/yaml"):
        return httpx.put(
            f"{url}/api/v1/use-cases/good/criteria",
            content=body,
            headers={"authorization": f"Bearer {token}", "content-type": content_type},
        )

    assert put(tokens["viewer"], document).status_code == 403
    stored = put(tokens["admin"], document)
    assert stored.status_code == 200
    assert stored.json()["version"] == 2
    assert stored.json()["author"] == "ml-team"
    assert _get(url, "/api/v1/readiness/good", tokens["viewer"]).json()["verdict"] == "NO_GO"
    as_json = put(tokens["admin"], json.dumps({"use_case": "good", **CRITERIA}), "application/json")
    assert as_json.json()["version"] == 3
    invalid = put(tokens["admin"], document.replace("quality.rouge_l", "quality.rouge"))
    assert invalid.status_code == 422
    assert "3: criteria.0.metric: unknown metric 'quality.rouge'" in invalid.json()["detail"]
    assert _get(url, "/api/v1/use-cases/good/criteria", tokens["viewer"]).json()["version"] == 3


def test_history_use_cases_and_worst_pairs(service):
    url, tokens = service
    viewer = tokens["viewer"]
    catalog = _catalog()
    evaluate_all(catalog)
    evaluate_all(catalog)
    history = _get(url, "/api/v1/readiness/bad/history", viewer).json()
    assert len(history) == 2
    assert history[0]["verdict"] == "NO_GO"
    cases = {c["name"]: c for c in _get(url, "/api/v1/use-cases", viewer).json()}
    assert cases["good"]["pairs"] == 400
    assert cases["empty"]["pairs"] == 0
    worst = _get(url, "/api/v1/pairs?use_case=good&worst_by=quality.rouge_l&limit=5", viewer).json()
    values = [p["scores"]["quality.rouge_l"] for p in worst]
    assert values == sorted(values)
    assert len(worst) == 5
    assert worst[0]["candidate"]["text"].startswith("answer")
    empty = _get(url, "/api/v1/readiness/empty", viewer).json()
    assert empty["verdict"] == "INSUFFICIENT_DATA"
    assert empty["pairs"] == 0


def test_openapi_schema_lists_every_contract_path(service):
    url, _ = service
    schema = httpx.get(f"{url}/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/api/v1/use-cases",
        "/api/v1/readiness",
        "/api/v1/readiness/{use_case}",
        "/api/v1/readiness/{use_case}/history",
        "/api/v1/gate/{use_case}",
        "/api/v1/use-cases/{use_case}/criteria",
        "/api/v1/pairs",
    ):
        assert path in paths, path
    assert set(paths["/api/v1/gate/{use_case}"]["get"]["responses"]) >= {"200", "409", "425", "401"}
    assert "put" in paths["/api/v1/use-cases/{use_case}/criteria"]


def test_capacity_and_cost_endpoints_say_what_is_missing(service):
    url, tokens = service
    assert _get(url, "/api/v1/use-cases/good/capacity", tokens["viewer"]).json() == []
    cost = _get(url, "/api/v1/use-cases/good/cost", tokens["viewer"]).json()
    assert cost["monthly_candidate_usd"] is None
    assert cost["monthly_savings_usd"] is None
    assert any("no `deployment`" in m for m in cost["missing"])
    assert cost["inputs"]["traffic"]["mirrored_pairs"] == 400
    assert _get(url, "/api/v1/use-cases/good/cost").status_code == 401


def _catalog():
    """The service's use cases, for running its periodic evaluation from the test."""
    config = parse_config(_config("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"), "<test>")
    return catalog_for(config, None, evaluate_every_s=3600)


def _decisions(url: str) -> int:
    engine = make_engine(url)
    with session_scope(engine) as session:
        count = session.scalar(select(func.count()).select_from(Decision))
    engine.dispose()
    return int(count or 0)


def test_reads_never_store_a_verdict(service, sqlite_url):
    """Polling (Argo every 30 s, the dashboard) adds no rows; the periodic evaluation does."""
    url, tokens = service
    for _ in range(5):
        assert _get(url, "/api/v1/readiness/good", tokens["viewer"]).status_code == 200
    assert _decisions(sqlite_url) == 0, "a read without a stored verdict evaluates, not stores"

    verdicts = evaluate_all(_catalog())
    assert verdicts["good"] == "GO"
    stored = _decisions(sqlite_url)
    assert stored == 4
    for _ in range(20):
        body = _get(url, "/api/v1/readiness/good", tokens["viewer"]).json()
        assert body["verdict"] == "GO"
        assert _get(url, "/api/v1/gate/bad", tokens["viewer"]).status_code == 409
    assert _get(url, "/api/v1/readiness", tokens["viewer"]).status_code == 200
    assert _decisions(sqlite_url) == stored
    history = _get(url, "/api/v1/readiness/good/history", tokens["viewer"]).json()
    assert len(history) == 1
