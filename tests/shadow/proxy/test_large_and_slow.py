"""Large bodies are scanned off the event loop; slow, leaving and oversized clients are refused."""

from __future__ import annotations

import json
import logging
import random
import socket
import time
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from shadow.proxy.fields import NotAnObject, top_level_fields, with_model
from shadow.proxy.forward import SCAN_OVER_BYTES
from shadow.settings import Settings
from tests.conftest import CapturedJobs, config_text, wait_for
from tests.shadow.proxy.test_upstream_hygiene import RecordingUpstream

NAMES = frozenset({"model", "stream"})


def _value(depth: int = 0) -> object:
    roll = random.random()
    if depth > 4 or roll < 0.3:
        return random.choice([1, -2.5e3, True, None, 'a"b\\', "\\", "]}[{", "é\n", ""])
    if roll < 0.65:
        return [_value(depth + 1) for _ in range(random.randint(0, 3))]
    keys = ["model", "stream", 'k"', "x"]
    return {random.choice(keys): _value(depth + 1) for _ in range(random.randint(0, 3))}


def test_the_scanner_finds_what_a_full_parse_finds() -> None:
    random.seed(17)
    for index in range(2000):
        keys = random.sample(["model", "stream", "a", "b\\", "messages"], random.randint(0, 5))
        document = {key: _value() for key in keys}
        body = orjson.dumps(document, option=orjson.OPT_INDENT_2 if index % 2 else 0)
        fields = top_level_fields(body, NAMES)
        assert {k: f.value for k, f in fields.items()} == {
            k: v for k, v in document.items() if k in NAMES
        }
        model = fields.get("model")
        span = (model.start, model.end) if model is not None else None
        spliced = orjson.loads(with_model(body, span, "cand"))
        assert spliced == document | {"model": "cand"}


@pytest.mark.parametrize(
    "body", [b"[1]", b'{"a":1', b'{"a" 1}', b'{"a":1}x', b'{"a":"x}', b'{"a":[1,2}']
)
def test_the_scanner_refuses_what_is_not_an_object(body: bytes) -> None:
    with pytest.raises(NotAnObject):
        top_level_fields(body, NAMES)


def _large_request(model: str = "gpt-4o-mini") -> bytes:
    text = 'a long document line with \\"quotes\\" and ] brackets }\n' * 8000
    body = {
        "messages": [{"role": "user", "content": text}],
        "model": model,
        "temperature": 0.2,
    }
    encoded = json.dumps(body, indent=1).encode()
    assert len(encoded) > SCAN_OVER_BYTES
    return encoded


@pytest.fixture
def upstream():
    server = RecordingUpstream()
    yield server
    server.close()


def test_a_large_body_is_forwarded_as_it_came_and_mirrored(upstream, proxy) -> None:
    jobs = CapturedJobs()
    url = proxy(config_text(upstream.url, upstream.url), Settings(), jobs.publish)
    body = _large_request()
    response = httpx.post(
        f"{url}/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert upstream.bodies[-1] == body
    wait_for(lambda: len(jobs) == 1)
    assert jobs[0].request_body.encode() == body


def test_a_large_body_for_the_candidate_gets_its_model_only(
    upstream, proxy, sqlite_url, monkeypatch
) -> None:
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", sqlite_url)
    config = config_text(upstream.url, upstream.url) + "    mode: candidate\n"
    url = proxy(config, Settings(broker_url=None), CapturedJobs().publish)
    body = _large_request()
    response = httpx.post(
        f"{url}/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-switchover-served-by"] == "candidate"
    sent = json.loads(upstream.bodies[-1])
    assert sent == json.loads(body) | {"model": "cand-model"}


def test_a_large_body_that_is_not_an_object_is_a_400(upstream, proxy) -> None:
    url = proxy(config_text(upstream.url, upstream.url), Settings(), CapturedJobs().publish)
    body = _large_request()[:-1]
    response = httpx.post(f"{url}/v1/chat/completions", content=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert upstream.bodies == []


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def _head(length: int) -> bytes:
    return (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_client_leaving_mid_body_is_an_info_line_not_an_error(
    upstream, proxy, caplog: pytest.LogCaptureFixture
) -> None:
    url = proxy(config_text(upstream.url, upstream.url), Settings(), CapturedJobs().publish)
    caplog.set_level(logging.INFO)
    with _connect(url) as client:
        client.sendall(_head(100_000) + b'{"model": "gpt-4o-mini", "messages": [')
        time.sleep(0.3)
    wait_for(lambda: any("went away" in r.getMessage() for r in caplog.records))
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert upstream.bodies == []


def test_a_body_that_trickles_in_is_cut_off(upstream, proxy) -> None:
    settings = Settings(body_read_timeout_s=1)
    url = proxy(config_text(upstream.url, upstream.url), settings, CapturedJobs().publish)
    with _connect(url) as client:
        client.sendall(_head(1000) + b'{"model": ')
        answer = client.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"request_timeout" in answer
    assert upstream.bodies == []


def test_oversized_headers_are_refused(upstream, proxy) -> None:
    settings = Settings(max_header_bytes=4096)
    url = proxy(config_text(upstream.url, upstream.url), settings, CapturedJobs().publish)
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": []},
        headers={"x-padding": "p" * 5000},
    )
    assert response.status_code == 431
    assert upstream.bodies == []
