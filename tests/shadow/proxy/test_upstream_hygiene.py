"""Only what belongs to the client reaches an upstream; errors and readiness tell no secrets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

from shadow.config import parse_config
from shadow.serving import free_port
from shadow.settings import Settings
from shadow.worker.measure import build_runtime
from tests.conftest import CapturedJobs, config_text, wait_for
from tests.fixtures.services import PrivateRedis

ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
CLIENT_HEADERS = {
    "OpenAI-Organization": "org-client-picked",
    "OpenAI-Project": "proj-client-picked",
    "Cookie": "session=abc",
    "Forwarded": "for=10.0.0.1",
    "X-Forwarded-For": "10.0.0.1",
    "X-Forwarded-Host": "internal.example",
    "X-Team": "search",
}
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


class RecordingUpstream:
    """An OpenAI-style upstream that keeps the headers of every request it answers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.bodies: list[bytes] = []
        seen, bodies = self.seen, self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(self.rfile.read(int(self.headers.get("content-length", 0))))
                seen.append({k.lower(): v for k, v in self.headers.items()})
                body = json.dumps(ANSWER).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                # as api.openai.com's edge does: a cookie for whoever made this request
                self.send_header("set-cookie", f"__cf_bm=client-{len(seen)}; Path=/; HttpOnly")
                self.send_header("set-cookie", "_cfuvid=seen; Path=/")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        # by name: aiohttp keeps no cookies of a bare IP address, an upstream has a name
        self.named_url = f"http://localhost:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream()
    yield server
    server.close()


def _ask(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="client-key", max_retries=0)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=CLIENT_HEADERS
    )


def test_client_account_and_network_headers_are_dropped_under_the_proxy_key(
    upstream, proxy, monkeypatch
):
    monkeypatch.setenv("TEST_PRIMARY_KEY", "sk-proxy-own")
    config = config_text(upstream.url, upstream.url, primary_key_env="TEST_PRIMARY_KEY")
    _ask(proxy(config, Settings(), CapturedJobs().publish))
    headers = upstream.seen[-1]
    assert headers["authorization"] == "Bearer sk-proxy-own"
    for name in CLIENT_HEADERS:
        assert name.lower() not in headers, name
    assert headers["content-type"] == "application/json"
    assert any(name.startswith("x-stainless-") for name in headers)


def test_an_upstream_may_allow_more_headers_under_its_key(upstream, proxy, monkeypatch):
    monkeypatch.setenv("TEST_PRIMARY_KEY", "sk-proxy-own")
    config = config_text(upstream.url, upstream.url, primary_key_env="TEST_PRIMARY_KEY")
    config = config.replace("api_key_env: TEST_PRIMARY_KEY}", "api_key_env: TEST_PRIMARY_KEY, "
                            "forward_headers: [x-team, openai-project]}", 1)  # fmt: skip
    _ask(proxy(config, Settings(), CapturedJobs().publish))
    headers = upstream.seen[-1]
    assert headers["x-team"] == "search"
    assert headers["openai-project"] == "proj-client-picked"
    assert "openai-organization" not in headers
    assert "cookie" not in headers


def test_the_clients_own_key_carries_its_own_headers(upstream, proxy):
    _ask(proxy(config_text(upstream.url, upstream.url), Settings(), CapturedJobs().publish))
    headers = upstream.seen[-1]
    assert headers["authorization"] == "Bearer client-key"
    assert headers["openai-organization"] == "org-client-picked"


def test_an_upstream_cookie_is_not_sent_on_another_clients_request(upstream, proxy):
    config = config_text(upstream.named_url, upstream.named_url)
    url = proxy(config, Settings(), CapturedJobs().publish)
    first = httpx.post(
        f"{url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}
    )
    # the client's to keep, every one of them
    cookies = first.headers.get_list("set-cookie")
    assert [c.split(";")[0] for c in cookies] == ["__cf_bm=client-1", "_cfuvid=seen"]
    streamed = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    second = httpx.post(f"{url}/v1/chat/completions", json=streamed)  # by the aiohttp session
    assert len(second.headers.get_list("set-cookie")) == 2
    assert len(upstream.seen) == 2
    assert "cookie" not in upstream.seen[1]


def test_the_workers_calls_keep_no_upstream_cookie(upstream):
    config = parse_config(config_text(upstream.named_url, upstream.named_url), "<test>")
    client = build_runtime(Settings(), config).client
    answers = [
        client.post(f"{upstream.named_url}/chat/completions", json={"messages": MESSAGES})
        for _ in range(2)
    ]
    client.close()
    assert answers[0].headers["set-cookie"].startswith("__cf_bm=client-1")
    assert len(upstream.seen) == 2
    assert "cookie" not in upstream.seen[1]


def test_a_502_names_no_upstream_address(proxy):
    port = free_port()
    dead = f"http://127.0.0.1:{port}/v1"
    url = proxy(config_text(dead, dead), Settings(), CapturedJobs().publish)
    response = httpx.post(
        f"{url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}
    )
    assert response.status_code == 502
    body = response.text
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert str(port) not in body
    assert "127.0.0.1" not in body


def test_readyz_is_not_ready_while_the_broker_is_down(upstream, proxy, private_redis: PrivateRedis):
    settings = Settings(broker_url=private_redis.url, queue="test.readyz")
    url = proxy(config_text(upstream.url, upstream.url), settings, CapturedJobs().publish)
    assert httpx.get(f"{url}/readyz").status_code == 200
    private_redis.stop()
    try:

        def not_ready() -> bool:
            response = httpx.get(f"{url}/readyz", timeout=30)
            return response.status_code == 503 and response.json()["checks"]["broker"] is False

        wait_for(not_ready)
    finally:
        private_redis.start()
    wait_for(lambda: httpx.get(f"{url}/readyz", timeout=30).status_code == 200)


def test_readyz_is_not_ready_while_the_database_is_down(upstream, proxy, redis_url):
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none"
    # distributed: an embedded server would not start without its database
    settings = Settings(database_url=dead, broker_url=redis_url, queue="test.readyz")
    url = proxy(config_text(upstream.url, upstream.url), settings, CapturedJobs().publish)
    response = httpx.get(f"{url}/readyz", timeout=30)
    assert response.status_code == 503
    assert response.json()["checks"]["database"] is False


def _image_request(url: str, image: str) -> httpx.Response:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": image}},
    ]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body)


def _skipped(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("switchover_shadow_skipped_total{") and 'reason="urls"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_parts_with_urls_to_fetch_are_not_mirrored_and_counted(upstream, proxy):
    jobs = CapturedJobs()
    url = proxy(config_text(upstream.url, upstream.url), Settings(), jobs.publish)
    before = _skipped(url)
    answered = _image_request(url, "http://169.254.169.254/latest/meta-data/")
    assert answered.status_code == 200
    assert "x-switchover-pair-id" not in answered.headers
    assert _skipped(url) == before + 1
    inline = _image_request(url, "data:image/png;base64,iVBORw0KGgo=")
    assert inline.headers["x-switchover-pair-id"]
    wait_for(lambda: len(jobs) == 1)
    assert jobs[0].pair_id == inline.headers["x-switchover-pair-id"]


def test_a_use_case_may_forward_urls(upstream, proxy):
    jobs = CapturedJobs()
    config = config_text(upstream.url, upstream.url, forward_urls="true")
    url = proxy(config, Settings(), jobs.publish)
    answered = _image_request(url, "https://images.example/cat.png")
    assert answered.headers["x-switchover-pair-id"]
    wait_for(lambda: len(jobs) == 1)
