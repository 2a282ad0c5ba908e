"""The proxy through the official `openai` SDK, against real simulated upstreams over HTTP."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from shadow.settings import Settings
from shadow.simulator.prompts import load_prompts
from tests.conftest import CapturedJobs, config_text, wait_for

ITEMS = {item.kind: item for item in reversed(load_prompts())}
SUPPORT = ITEMS["support"]
TOOLS = ITEMS["tool_call"]
JSON_ITEM = ITEMS["json_extraction"]


def _messages(item):
    return [m.model_dump() for m in item.messages]


@pytest.fixture
def setup(simulator, proxy):
    """A proxy in front of a simulated primary, capturing the shadow jobs it hands over."""

    def make(sample_rate=1.0, primary_options=None, **config_options):
        primary = simulator(**(primary_options or {}))
        candidate = simulator()
        jobs = CapturedJobs()
        config = config_text(primary, candidate, sample_rate=sample_rate, **config_options)
        url = proxy(config, Settings(), jobs.publish)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="client-key", max_retries=0)
        return client, jobs, url, primary

    return make


def test_non_stream_answer_and_headers_pass_through(setup):
    client, jobs, _, _ = setup()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=_messages(SUPPORT)
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == SUPPORT.reference
    assert completion.usage.completion_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert float(raw.headers["x-switchover-overhead-ms"]) >= 0
    pair_id = raw.headers["x-switchover-pair-id"]
    wait_for(lambda: jobs)
    assert [job.pair_id for job in jobs] == [pair_id]
    job = jobs[0]
    assert job.use_case == "default"
    assert job.endpoint == "chat.completions"
    assert json.loads(job.primary.body)["choices"][0]["message"]["content"] == SUPPORT.reference
    assert job.primary.request_id == raw.headers["x-request-id"]


def test_stream_passes_chunks_and_usage(setup):
    client, jobs, _, _ = setup(primary_options={"tokens_per_s": 500})
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=_messages(SUPPORT),
        stream=True,
        stream_options={"include_usage": True},
    ) as raw:
        chunks = list(raw.parse())
        pair_id = raw.headers["x-switchover-pair-id"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == SUPPORT.reference
    assert chunks[-1].usage is not None
    assert len(chunks) > 3
    wait_for(lambda: jobs)
    assert [job.pair_id for job in jobs] == [pair_id]
    assert jobs[0].stream is True
    assert jobs[0].primary.arrivals
    assert jobs[0].primary.body.rstrip().endswith("data: [DONE]")


def test_tool_calls_and_response_format(setup):
    client, _, _, _ = setup()
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=_messages(TOOLS), tools=list(TOOLS.tools)
    )
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == TOOLS.reference.name
    assert json.loads(call.function.arguments) == TOOLS.reference.arguments

    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=_messages(JSON_ITEM),
        response_format={"type": "json_object"},
    )
    assert json.loads(completion.choices[0].message.content) == json.loads(JSON_ITEM.reference)


def test_completions_and_models(setup):
    client, jobs, _, _ = setup()
    completion = client.completions.create(model="gpt-4o-mini", prompt="Say something")
    assert completion.choices[0].text
    wait_for(lambda: jobs)
    assert jobs[0].endpoint == "completions"
    models = client.models.list()
    assert [m.id for m in models.data] == ["sim-model"]


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
    ],
)
def test_upstream_errors_pass_through_unchanged(setup, status, error_class):
    client, jobs, _, primary = setup()
    body = {"model": f"error-{status}", "messages": _messages(SUPPORT)}
    direct = httpx.post(f"{primary}/chat/completions", json=body)
    with pytest.raises(error_class) as caught:
        client.chat.completions.create(**body)
    error = caught.value
    assert error.status_code == status
    assert error.response.json() == direct.json()
    assert error.response.headers["x-request-id"].startswith("req_")
    if status == 429:
        assert error.response.headers["retry-after"] == direct.headers["retry-after"]
    assert "x-switchover-pair-id" not in error.response.headers
    assert jobs == []


def test_unreachable_primary_is_a_502_in_openai_form(simulator, proxy):
    candidate = simulator()
    url = proxy(config_text("http://127.0.0.1:9/v1", candidate), Settings(), CapturedJobs().publish)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=_messages(SUPPORT))
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_unavailable"
    assert caught.value.body["type"] == "upstream_error"


def test_bad_requests_get_openai_errors(setup):
    _, jobs, url, _ = setup()
    too_big = httpx.post(
        f"{url}/v1/chat/completions",
        content=b"{" + b" " * (11 * 1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "request_too_large"
    not_json = httpx.post(f"{url}/v1/chat/completions", content=b"{nope")
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    not_object = httpx.post(f"{url}/v1/chat/completions", content=b"[1, 2]")
    assert not_object.status_code == 400
    unknown = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "m", "messages": []},
        headers={"x-switchover-use-case": "no-such-use-case"},
    )
    assert unknown.status_code == 404
    assert "no-such-use-case" in unknown.json()["error"]["message"]
    assert jobs == []


def test_use_case_from_header_then_model_then_default(simulator, proxy):
    primary, candidate = simulator(), simulator()
    config = (
        "upstreams:\n"
        f"  api: {{base_url: {primary}}}\n"
        f"  gpu: {{base_url: {candidate}}}\n"
        "use_cases:\n"
        "  default:\n"
        "    primary: {upstream: api, model: gpt-4o}\n"
        "    candidate: {upstream: gpu, model: llama}\n"
        "    shadow: {sample_rate: 1}\n"
        "  summaries:\n"
        "    primary: {upstream: api, model: gpt-4o-mini}\n"
        "    candidate: {upstream: gpu, model: llama}\n"
        "    shadow: {sample_rate: 1}\n"
    )
    jobs = CapturedJobs()
    url = proxy(config, Settings(), jobs.publish)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
    messages = _messages(SUPPORT)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, extra_headers={"X-Switchover-Use-Case": "default"}
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    client.chat.completions.create(model="something-else", messages=messages)
    wait_for(lambda: len(jobs) == 3)
    assert [job.use_case for job in jobs] == ["default", "summaries", "default"]


def test_client_key_is_forwarded_only_when_the_upstream_has_none(simulator, proxy, monkeypatch):
    primary = simulator(require_api_key="sk-client-secret")
    candidate = simulator()
    jobs = CapturedJobs()
    url = proxy(config_text(primary, candidate), Settings(), jobs.publish)
    good = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client-secret", max_retries=0)
    assert good.chat.completions.create(model="gpt-4o-mini", messages=_messages(SUPPORT))
    bad = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4o-mini", messages=_messages(SUPPORT))
    wait_for(lambda: jobs)
    assert jobs[0].client_auth is True
    assert "sk-client-secret" not in jobs[0].model_dump_json()

    monkeypatch.setenv("TEST_PRIMARY_KEY", "sk-configured")
    keyed_primary = simulator(require_api_key="sk-configured")
    url = proxy(
        config_text(keyed_primary, candidate, primary_key_env="TEST_PRIMARY_KEY"),
        Settings(),
        jobs.publish,
    )
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-anything", max_retries=0)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=_messages(SUPPORT))
    wait_for(lambda: len(jobs) == 2)
    assert jobs[-1].client_auth is False


def test_nothing_is_mirrored_at_sample_rate_zero(setup):
    client, jobs, _, _ = setup(sample_rate=0)
    for _ in range(20):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=_messages(SUPPORT)
        )
        assert "x-switchover-pair-id" not in raw.headers
    assert jobs == []


def test_sampled_share_is_within_a_binomial_interval(setup):
    """2,000 requests at sample_rate 0.25: the mirrored count is within the 99.9% interval."""
    client, jobs, _, _ = setup(sample_rate=0.25)
    n, p = 2000, 0.25
    from concurrent.futures import ThreadPoolExecutor

    def ask(_):
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=_messages(SUPPORT)
        ).headers.get("x-switchover-pair-id")

    with ThreadPoolExecutor(16) as pool:
        pair_ids = [pid for pid in pool.map(ask, range(n)) if pid]
    half_width = 3.29 * (n * p * (1 - p)) ** 0.5
    assert abs(len(pair_ids) - n * p) <= half_width
    wait_for(lambda: len(jobs) == len(pair_ids))
    assert sorted(job.pair_id for job in jobs) == sorted(pair_ids)


def test_health_readiness_and_metrics(setup):
    client, _, url, _ = setup()
    client.chat.completions.create(model="gpt-4o-mini", messages=_messages(SUPPORT))
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200
    metrics = httpx.get(f"{url}/metrics").text
    assert (
        'switchover_requests_total{endpoint="chat.completions",status="200",use_case="default"}'
        in metrics
    )
    assert (
        "switchover_shadow_dropped_total" in metrics
        or "switchover_shadow_enqueued_total" in metrics
    )


def test_a_client_leaving_mid_stream_stops_the_primary_and_mirrors_nothing(setup):
    """The API stops generating an answer nobody reads; a cut-off answer is no pair."""
    _, jobs, url, primary = setup(primary_options={"tokens_per_s": 5})
    stats = f"{primary.removesuffix('/v1')}/sim/stats"
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": _messages(SUPPORT), "stream": True},
        timeout=30,
    ) as response:
        chunks = response.iter_raw()  # kept: a dropped iterator closes the connection at once
        assert next(chunks).startswith(b"data:")
        assert httpx.get(stats).json()["in_flight"] == 1
    wait_for(lambda: httpx.get(stats).json()["in_flight"] == 0, timeout=10)
    assert jobs == []
