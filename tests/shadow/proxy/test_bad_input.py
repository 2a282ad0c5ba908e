"""Bad input never gets a 5xx: the OpenAPI schema fuzzed by schemathesis, and the classics.

The proxy answers malformed requests with OpenAI-style 4xx bodies (`{"error": {"message",
"type", "param", "code"}}`) — its own for what it reads itself (size, JSON, UTF-8, `model`,
`stream`), the upstream's passed through for the rest — and the readiness API rejects invalid
criteria with a 422 naming the line.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from criteria.access.auth import create_token
from shadow.app import create_app
from shadow.config import parse_config
from shadow.serving import serve_in_thread
from shadow.settings import Settings
from shadow.simulator.server import SimulatorConfig, SimulatorThread
from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from tests.conftest import CapturedJobs
from tests.fixtures.evidence import Evidence, seed_pairs

pytestmark = pytest.mark.integration

USE_CASE = "default"
MAX_BODY = 64 * 1024
CRITERIA = {
    "alpha": 0.05,
    "criteria": [
        {"name": "quality", "metric": "quality.rouge_l", "stat": "mean", "op": ">=",
         "threshold": 0.5},
        {"name": "latency", "metric": "candidate.latency_ms", "stat": "quantile", "q": 0.9,
         "op": "<=", "threshold": 900},
    ],
}  # fmt: skip
MESSAGES = [{"role": "user", "content": "How do I reset my password?"}]
# Examples per operation: small in the suite (about 20 operations, < 30 s); raise it locally
# for a deeper search.
FUZZ_EXAMPLES = int(os.environ.get("SWITCHOVER_FUZZ_EXAMPLES", "25"))


@dataclass
class Service:
    """The running service and what a test needs to talk to it."""

    url: str
    admin: str
    viewer: str
    jobs: CapturedJobs


def _config(primary_url: str, candidate_url: str) -> str:
    return (
        "upstreams:\n"
        f"  api: {{base_url: {primary_url}}}\n"
        f"  gpu: {{base_url: {candidate_url}}}\n"
        "use_cases:\n"
        f"  {USE_CASE}:\n"
        "    primary: {upstream: api, model: gpt-4o-mini}\n"
        "    candidate: {upstream: gpu, model: cand-model}\n"
        "    shadow: {sample_rate: 1.0}\n"
        f"    criteria: {json.dumps(CRITERIA)}\n"
    )


def _app(config: str, jobs: CapturedJobs) -> FastAPI:
    # A broker URL that is never used (the jobs are captured) keeps the embedded worker out.
    settings = Settings(broker_url="redis://127.0.0.1:9/0", max_body_bytes=MAX_BODY)
    return create_app(settings, parse_config(config, "<bad-input>"), jobs.publish)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Proxy and readiness API on SQLite with seeded pairs, before an OpenAI-strict primary."""
    database = f"sqlite:///{tmp_path_factory.mktemp('bad-input') / 'switchover.db'}"
    upgrade(database)
    seed_pairs(database, USE_CASE, Evidence(pairs=40))
    with session_scope(make_engine(database)) as session:
        admin = create_token(session, "admin", "ml-team")
        viewer = create_token(session, "viewer", "dashboard")
    jobs = CapturedJobs()
    with (
        SimulatorThread(SimulatorConfig(reject_unknown_fields=True)) as primary,
        SimulatorThread(SimulatorConfig()) as candidate,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("SWITCHOVER_DATABASE_URL", database)
        with serve_in_thread(_app(_config(primary, candidate), jobs)) as url:
            yield Service(url, admin, viewer, jobs)


def _openai_error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["type"] == "invalid_request_error"
    return error  # type: ignore[no-any-return]


def _post(service: Service, body: bytes | Mapping[str, object], **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{service.url}/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )


# --- the proxy: what it checks itself ------------------------------------------------------


def test_oversize_body_is_a_413(service: Service) -> None:
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * MAX_BODY}]}
    error = _openai_error(_post(service, big), 413)
    assert error["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no content-length: the limit holds while reading
        yield json.dumps(big).encode()

    streamed = httpx.post(f"{service.url}/v1/chat/completions", content=chunks(), timeout=30)
    assert _openai_error(streamed, 413)["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b'["model", "gpt-4o-mini"]', "invalid_json"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
         "invalid_json"),
        (b"[" * 5000 + b"]" * 5000, "invalid_json"),
        (zlib.compress(b'{"model": "gpt-4o-mini"}'), "invalid_json"),
    ],
    ids=["broken", "empty", "not-an-object", "invalid-utf8", "deeply-nested", "binary"],
)  # fmt: skip
def test_unparseable_body_is_a_400(service: Service, body: bytes, code: str) -> None:
    assert _openai_error(_post(service, body), 400)["code"] == code


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": 42}, "model"),
        ({"model": ["gpt-4o-mini"]}, "model"),
        ({"stream": "yes"}, "stream"),
        ({"stream": 1}, "stream"),
    ],
)
def test_wrong_types_of_the_fields_the_proxy_reads_are_a_400(
    service: Service, fields: dict[str, object], param: str
) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES} | fields
    error = _openai_error(_post(service, body), 400)
    assert error["param"] == param
    assert error["code"] == "invalid_type"


# --- the proxy: the upstream's 4xx passes through ------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"messages": "hello"}, "messages", None),
        ({"messages": []}, "messages", None),
        ({"max_tokens": "ten"}, "max_tokens", None),
        ({"max_tokens": -1}, "max_tokens", None),
        ({"max_tokens": 10**9}, "max_tokens", "context_length_exceeded"),
        ({"max_completion_tokens": 2**62}, "max_tokens", "context_length_exceeded"),
        ({"frobnicate": True}, "frobnicate", "unknown_parameter"),
        ({"temperature": 0.2, "reasoning": {"deep": True}}, "reasoning", "unknown_parameter"),
    ],
)
def test_invalid_requests_get_the_upstreams_openai_style_400(
    service: Service, fields: dict[str, object], param: str, code: str | None
) -> None:
    before = len(service.jobs)
    body = {"model": "gpt-4o-mini", "messages": MESSAGES} | fields
    response = _post(service, body)
    error = _openai_error(response, 400)
    assert error["param"] == param
    assert error["code"] == code
    assert "x-switchover-overhead-ms" in response.headers
    assert "x-switchover-pair-id" not in response.headers, "a rejected request is not mirrored"
    assert len(service.jobs) == before


def test_integer_beyond_64_bits_is_a_400(service: Service) -> None:
    messages = json.dumps(MESSAGES).encode()
    body = b'{"model": "gpt-4o-mini", "messages": ' + messages + b', "max_tokens": 1' + b"0" * 40
    assert _openai_error(_post(service, body + b"}"), 400)["param"] == "max_tokens"


def test_a_valid_request_still_goes_through(service: Service) -> None:
    response = _post(service, {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 16})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"]
    assert response.headers["x-switchover-pair-id"]


# --- the readiness API ---------------------------------------------------------------------


def _put_criteria(service: Service, body: bytes, content_type: str) -> httpx.Response:
    return httpx.put(
        f"{service.url}/api/v1/use-cases/{USE_CASE}/criteria",
        content=body,
        headers={"authorization": f"Bearer {service.admin}", "content-type": content_type},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("body", "content_type", "where"),
    [
        (b"use_case: default\ncriteria:\n  - {name: q, metric: [\n", "application/yaml",
         "criteria:4: not valid YAML"),
        (b"use_case: default\ncriteria:\n  - name: q\n    metric: quality.rouge_l\n"
         b"   stat: mean\n", "application/yaml", "criteria:5: not valid YAML"),
        (b"use_case: default\ncriteria:\n  - {name: q, metric: quality.rouge_l, stat: mean,"
         b" op: '=~', threshold: 1}\n", "application/yaml", "criteria:3: criteria.0.op"),
        (b"criteria: 7\n", "application/yaml", "criteria:1: criteria: Input should be a valid list"),
        (b"use_case: default\ncriteria: []\n\xff\n", "application/yaml", "body:1: "),
        (b'{"criteria": [', "application/json", "body:1: not valid JSON"),
        (b"- just\n- a list\n", "application/yaml", "criteria:1: a criteria document is a mapping"),
    ],
    ids=["unclosed", "indentation", "bad-operator", "wrong-type", "invalid-utf8", "json",
         "not-a-mapping"],
)  # fmt: skip
def test_invalid_criteria_are_a_422_with_the_line(
    service: Service, body: bytes, content_type: str, where: str
) -> None:
    response = _put_criteria(service, body, content_type)
    assert response.status_code == 422, response.text
    assert where in response.json()["detail"]


# --- schemathesis over the whole schema ----------------------------------------------------


# The schema is the application's own; building the app does not start it (no lifespan).
schema = schemathesis.openapi.from_dict(
    _app(_config("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"), CapturedJobs()).openapi()
).exclude(path="/metrics")
# This service's broker is a URL nothing listens on: /readyz rightly answers 503 (its own test
# is in test_upstream_hygiene.py), so it is left out of the fuzzing's no-5xx check.
schema = schema.exclude(path="/readyz")


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_input_gets_a_server_error(case: schemathesis.Case[Any], service: Service) -> None:
    """Fuzzed requests (half of them for the configured use case) get no 5xx."""
    if "use_case" in case.path_parameters and zlib.crc32(str(case.path_parameters).encode()) % 2:
        case.path_parameters["use_case"] = USE_CASE
    case.call_and_validate(
        base_url=service.url,
        headers={"authorization": f"Bearer {service.admin}"},
        checks=[schemathesis.checks.not_a_server_error],
        timeout=30,
    )
