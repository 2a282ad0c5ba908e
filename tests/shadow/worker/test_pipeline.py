"""The shadow loop end to end: proxy → broker → real Celery worker → stored pairs."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import func, select

from shadow.broker import create_celery
from shadow.settings import Settings
from shadow.simulator.prompts import load_prompts
from storage.db import make_engine, session_scope
from storage.models import NoiseReask, RequestPair, Score
from tests.conftest import config_text, distributed_settings, table_dump, wait_for

pytestmark = pytest.mark.integration

PROMPTS = load_prompts()
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
PLANTED_KEY = "sk-planted-0123456789-SECRET"


def _pairs(url: str) -> list[RequestPair]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            return list(session.scalars(select(RequestPair)).all())
    finally:
        engine.dispose()


def _count(url: str, model=RequestPair) -> int:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        engine.dispose()


def _send(client: openai.OpenAI, n: int, stream_every: int = 2, threads: int = 8) -> list[str]:
    """Send n prompts (every `stream_every`-th streamed); returns the mirrored pair ids."""

    def one(i: int) -> str | None:
        item = PROMPTS[i % len(PROMPTS)]
        kwargs: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": [m.model_dump() for m in item.messages],
        }
        if item.tools:
            kwargs["tools"] = list(item.tools)
        if stream_every and i % stream_every == 0:
            with client.chat.completions.with_streaming_response.create(
                stream=True, **kwargs
            ) as raw:
                chunks = list(raw.parse())
                assert chunks
                streamed_id: str | None = raw.headers.get("x-switchover-pair-id")
                return streamed_id
        answered = client.chat.completions.with_raw_response.create(**kwargs)
        assert answered.parse().choices
        pair_id: str | None = answered.headers.get("x-switchover-pair-id")
        return pair_id

    with ThreadPoolExecutor(threads) as pool:
        return [pid for pid in pool.map(one, range(n)) if pid]


def _client(url: str, key: str = PLANTED_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=30)


def _check_pairs(pairs, expected_ids):
    assert sorted(p.id for p in pairs) == sorted(expected_ids)
    for pair in pairs:
        assert pair.status == "ok", pair.candidate_error
        assert pair.candidate_model == "cand-model"
        assert pair.candidate_text or pair.candidate_tool_calls
        assert pair.primary_text or pair.primary_tool_calls
        assert pair.candidate_latency_ms > 0
        assert pair.primary_latency_ms > 0
        assert pair.candidate_completion_tokens
        assert pair.candidate_completion_tokens > 0
        assert pair.candidate_prompt_tokens
        assert pair.candidate_prompt_tokens > 0
        if pair.stream:
            assert 0 < pair.candidate_ttft_ms < pair.candidate_latency_ms
            assert 0 < pair.primary_ttft_ms < pair.primary_latency_ms
            assert pair.candidate_tpot_ms is None or pair.candidate_tpot_ms > 0
        request = json.loads(pair.request_body)
        assert request["model"] == "gpt-4o-mini"


def test_distributed_redis_worker_postgres(
    simulator, proxy, worker_env, start_worker, postgres_url, monkeypatch
):
    """Redis broker, a `switchover worker` process, pairs in PostgreSQL; no key stored."""
    monkeypatch.setenv("TEST_CANDIDATE_KEY", PLANTED_KEY + "-candidate")
    monkeypatch.setenv("TEST_PRIMARY_KEY", PLANTED_KEY + "-primary")
    primary = simulator(tokens_per_s=300, latency_ms=5)
    candidate = simulator(
        tokens_per_s=300,
        latency_ms=10,
        answer_mix={"paraphrase": 1.0},
        require_api_key=PLANTED_KEY + "-candidate",
    )
    config = config_text(
        primary,
        candidate,
        noise_rate=0.5,
        candidate_key_env="TEST_CANDIDATE_KEY",
        primary_key_env="TEST_PRIMARY_KEY",
    )
    env = worker_env(
        config,
        postgres_url,
        TEST_CANDIDATE_KEY=PLANTED_KEY + "-candidate",
        TEST_PRIMARY_KEY=PLANTED_KEY + "-primary",
    )
    start_worker(env)
    url = proxy(config, distributed_settings(env))
    before = _count(postgres_url)
    pair_ids = _send(_client(url), 24)
    assert len(pair_ids) == 24
    wait_for(lambda: _count(postgres_url) - before >= 24, timeout=60)
    pairs = [p for p in _pairs(postgres_url) if p.id in set(pair_ids)]
    _check_pairs(pairs, pair_ids)
    by_prompt = {m.messages[-1].content: m for m in PROMPTS}
    for pair in pairs:
        item = by_prompt[json.loads(pair.request_body)["messages"][-1]["content"]]
        if item.kind != "tool_call":
            assert pair.candidate_text == item.paraphrase
            assert pair.primary_text == item.reference
    noise = _count(postgres_url, NoiseReask)
    assert 0 < noise < 24
    dump = table_dump(postgres_url)
    assert PLANTED_KEY not in dump
    assert "Bearer" not in dump


def test_embedded_mode_on_sqlite(simulator, proxy, tmp_path, monkeypatch):
    """Nothing configured: in-process broker and worker, SQLite, the same pairs stored."""
    database = f"sqlite:///{tmp_path / 'embedded.db'}"
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", database)
    monkeypatch.setenv("TEST_PRIMARY_KEY", PLANTED_KEY)
    monkeypatch.delenv("SWITCHOVER_BROKER_URL", raising=False)
    primary = simulator(tokens_per_s=300, require_api_key=PLANTED_KEY)
    candidate = simulator(tokens_per_s=300, latency_ms=5)
    config = config_text(primary, candidate, noise_rate=1.0, primary_key_env="TEST_PRIMARY_KEY")
    url = proxy(config, Settings(broker_url=None))
    pair_ids = _send(_client(url, key="sk-client-own"), 16)
    wait_for(lambda: _count(database) >= 16, timeout=60)
    _check_pairs(_pairs(database), pair_ids)
    assert _count(database, NoiseReask) == 16
    dump = table_dump(database)
    assert PLANTED_KEY not in dump
    assert "sk-client-own" not in dump


def test_keyless_primary_still_gets_noise_re_asks(simulator, proxy, tmp_path, monkeypatch, caplog):
    """The client's own key reaches the primary: the proxy re-asks it, the key is kept nowhere."""
    database = f"sqlite:///{tmp_path / 'keyless.db'}"
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", database)
    monkeypatch.delenv("SWITCHOVER_BROKER_URL", raising=False)
    client_key = "sk-client-own-KEYLESS-0123456789"
    primary = simulator(tokens_per_s=300, require_api_key=client_key)
    candidate = simulator(tokens_per_s=300, latency_ms=5)
    # no api_key_env on the primary. A re-ask finding `max_in_flight` re-asks running is skipped
    # (the pair goes without one): a cap over the 12 requests keeps a loaded machine from it.
    config = config_text(primary, candidate, noise_rate=1.0, max_in_flight=16)
    url = proxy(config, Settings(broker_url=None))
    with caplog.at_level("DEBUG"):
        pair_ids = _send(_client(url, key=client_key), 12)
        wait_for(lambda: _count(database, NoiseReask) >= 12, timeout=120)
    _check_pairs(_pairs(database), pair_ids)
    dump = table_dump(database)
    assert client_key not in dump
    assert client_key not in caplog.text


def test_candidate_down_and_hanging_are_errors_not_losses(
    simulator, proxy, worker_env, start_worker, postgres_url
):
    """Every client gets the primary's answer; the candidate's failures are stored as errors."""
    primary = simulator()
    hanging = simulator(hang_rate=1.0)
    for candidate, kind in (("http://127.0.0.1:9/v1", "connection"), (hanging, "timeout")):
        config = config_text(primary, candidate, timeout_s=1, use_case=f"case-{kind}")
        env = worker_env(config, postgres_url)
        worker = start_worker(env, concurrency=8)
        url = proxy(config, distributed_settings(env))
        client = _client(url)
        started = time.monotonic()
        pair_ids = _send(client, 8, stream_every=0)
        assert time.monotonic() - started < 5, "the client waited on the candidate"
        assert len(pair_ids) == 8

        def stored(kind=kind):
            return [p for p in _pairs(postgres_url) if p.use_case == f"case-{kind}"]

        wait_for(lambda stored=stored: len(stored()) == 8, timeout=60)
        for pair in stored():
            assert pair.status == kind
            assert pair.candidate_error_kind == kind
            if kind == "timeout":
                assert pair.candidate_latency_ms == 1000
        worker.stop()


def _metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_broker_down_drops_and_counts_but_answers(simulator, proxy, tmp_path):
    """No broker reachable: the client is answered at once and the drop counter moves."""
    primary, candidate = simulator(), simulator()
    settings = Settings(
        broker_url="redis://127.0.0.1:9/0", queue="test.nobroker", broker_publish_timeout_s=0.5
    )
    url = proxy(config_text(primary, candidate, use_case="no-broker"), settings)
    client = _client(url)
    before = _metric(url, "switchover_shadow_dropped_total", use_case="no-broker")
    started = time.monotonic()
    for _ in range(5):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
        assert raw.parse().choices[0].message.content
    assert time.monotonic() - started < 3
    wait_for(
        lambda: _metric(url, "switchover_shadow_dropped_total", use_case="no-broker") >= before + 5,
        timeout=30,
    )


def test_database_down_loses_nothing_and_does_not_ask_twice(
    simulator, proxy, worker_env, start_worker, postgres_url
):
    """The worker cannot store; the measured pair waits in the broker, then lands once."""
    primary, candidate = simulator(), simulator()
    config = config_text(primary, candidate, use_case="db-down")
    down_env = worker_env(config, "postgresql+psycopg://postgres@127.0.0.1:9/none")
    broken = start_worker(down_env)
    url = proxy(config, distributed_settings(down_env))
    pair_ids = _send(_client(url), 6, stream_every=3)
    assert len(pair_ids) == 6
    stats = f"{candidate.removesuffix('/v1')}/sim/stats"
    wait_for(lambda: httpx.get(stats).json()["requests"] >= 6, timeout=30)
    time.sleep(1)
    broken.stop()
    assert not [p for p in _pairs(postgres_url) if p.use_case == "db-down"]

    start_worker(
        worker_env(config, postgres_url) | {"SWITCHOVER_QUEUE": down_env["SWITCHOVER_QUEUE"]}
    )
    wait_for(
        lambda: len([p for p in _pairs(postgres_url) if p.use_case == "db-down"]) == 6, timeout=120
    )
    assert httpx.get(stats).json()["requests"] == 6, "the candidate was asked again"


def test_worker_killed_mid_task_loses_nothing_and_stores_once(
    simulator, proxy, worker_env, start_worker, postgres_url
):
    """SIGKILL while the candidate call is in flight: another worker redoes it, one row."""
    primary = simulator()
    candidate = simulator(latency_ms=3000)
    config = config_text(primary, candidate, use_case="killed", timeout_s=20)
    env = worker_env(
        config,
        postgres_url,
        SWITCHOVER_BROKER_VISIBILITY_TIMEOUT_S="4",
        SWITCHOVER_RETRY_MAX_COUNTDOWN_S="2",
    )
    victim = start_worker(env)
    url = proxy(config, distributed_settings(env))
    pair_ids = _send(_client(url), 1, stream_every=0)
    stats = f"{candidate.removesuffix('/v1')}/sim/stats"
    wait_for(lambda: httpx.get(stats).json()["in_flight"] == 1, timeout=30)
    victim.kill()
    start_worker(env)
    wait_for(lambda: [p for p in _pairs(postgres_url) if p.use_case == "killed"], timeout=90)
    time.sleep(5)
    stored = [p for p in _pairs(postgres_url) if p.use_case == "killed"]
    assert [p.id for p in stored] == pair_ids
    assert stored[0].status == "ok"


def test_redelivered_job_is_stored_once(simulator, worker_env, start_worker, postgres_url, proxy):
    """The same job delivered twice (acks late) yields one pair and one candidate call."""
    from shadow.broker import create_celery
    from shadow.jobs import MIRROR_PAIR
    from tests.conftest import CapturedJobs

    primary, candidate = simulator(), simulator()
    config = config_text(primary, candidate, use_case="twice")
    env = worker_env(config, postgres_url)
    jobs = CapturedJobs()
    url = proxy(config, Settings(), jobs.publish)
    _send(_client(url), 1, stream_every=0)
    wait_for(lambda: jobs)
    settings = distributed_settings(env)
    app = create_celery(settings)
    payload = jobs[0].model_dump(mode="json")
    app.send_task(MIRROR_PAIR, args=(payload,), queue=settings.queue)
    app.send_task(MIRROR_PAIR, args=(payload,), queue=settings.queue)
    start_worker(env, concurrency=1)
    wait_for(lambda: [p for p in _pairs(postgres_url) if p.use_case == "twice"], timeout=30)
    time.sleep(2)
    assert len([p for p in _pairs(postgres_url) if p.use_case == "twice"]) == 1
    stats = httpx.get(f"{candidate.removesuffix('/v1')}/sim/stats").json()
    assert stats["requests"] == 1


def test_max_in_flight_holds_across_worker_processes(
    simulator, proxy, worker_env, start_worker, postgres_url
):
    """Two workers with 8 threads each never have more than max_in_flight candidate calls."""
    primary = simulator()
    candidate = simulator(latency_ms=300)
    config = config_text(primary, candidate, use_case="capped", max_in_flight=3)
    env = worker_env(config, postgres_url)
    start_worker(env, concurrency=8)
    start_worker(env, concurrency=8)
    url = proxy(config, distributed_settings(env))
    pair_ids = _send(_client(url), 30, stream_every=0, threads=16)
    wait_for(
        lambda: len([p for p in _pairs(postgres_url) if p.use_case == "capped"]) == len(pair_ids),
        timeout=60,
    )
    stats = httpx.get(f"{candidate.removesuffix('/v1')}/sim/stats").json()
    assert stats["max_in_flight"] == 3


def test_rabbitmq_broker(simulator, proxy, worker_env, start_worker, postgres_url):
    """The distributed mode with RabbitMQ as the broker instead of Redis."""
    primary, candidate = simulator(), simulator()
    config = config_text(primary, candidate, use_case="rabbit")
    env = worker_env(config, postgres_url, SWITCHOVER_BROKER_URL=RABBITMQ_URL)
    worker = start_worker(env)
    url = proxy(config, distributed_settings(env))
    pair_ids = _send(_client(url), 8, stream_every=2)
    assert len(pair_ids) == 8
    wait_for(
        lambda: (
            sorted(p.id for p in _pairs(postgres_url) if p.use_case == "rabbit") == sorted(pair_ids)
        ),
        timeout=60,
    )
    # the scoring queue goes through RabbitMQ too: every pair gets its scores
    engine = make_engine(postgres_url)
    try:

        def scored() -> int:
            with session_scope(engine) as session:
                query = select(func.count(func.distinct(Score.pair_id))).where(
                    Score.pair_id.in_(pair_ids)
                )
                return int(session.scalar(query) or 0)

        wait_for(lambda: scored() == len(pair_ids), timeout=180)
    finally:
        engine.dispose()
        worker.stop()
        # RabbitMQ keeps its queues after the test: remove this test's two.
        settings = distributed_settings(env)
        with create_celery(settings).connection_for_write() as connection:
            for queue in (settings.queue, settings.scoring_queue_name):
                connection.default_channel.queue_delete(queue)


def test_candidate_errors_are_counted_in_metrics_with_one_info_line_per_pair_at_most(
    simulator, proxy, tmp_path, monkeypatch, caplog
):
    """`switchover_candidate_errors_total{use_case,candidate,kind}`; Celery's own per-task
    lines (two per task, two tasks per pair) stay out of the INFO log."""
    from shadow.startup import quiet_per_task_logs

    database = f"sqlite:///{tmp_path / 'errors.db'}"
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", database)
    monkeypatch.delenv("SWITCHOVER_BROKER_URL", raising=False)
    quiet_per_task_logs("info")
    primary = simulator(tokens_per_s=300)
    config = config_text(primary, "http://127.0.0.1:9/v1", timeout_s=1, use_case="down")
    url = proxy(config, Settings(broker_url=None))
    before = _metric(url, "switchover_candidate_errors_total", use_case="down")
    with caplog.at_level("INFO"):
        pair_ids = _send(_client(url), 6, stream_every=0)
        wait_for(lambda: _count(database) >= 6, timeout=60)
        wait_for(
            lambda: (
                _metric(url, "switchover_candidate_errors_total", use_case="down") >= before + 6
            ),
            timeout=60,
        )
    assert len(pair_ids) == 6
    counted = _metric(
        url, "switchover_candidate_errors_total", use_case="down", candidate="cand-model",
        kind="connection",
    )  # fmt: skip
    assert counted >= 6
    info = [r for r in caplog.records if r.levelname == "INFO" and r.name.startswith("celery")]
    assert info == []
    service = ("shadow", "evaluators", "criteria", "storage", "celery", "kombu")
    per_pair = [r for r in caplog.records if r.levelname == "INFO" and r.name.startswith(service)]
    assert len(per_pair) <= len(pair_ids)  # the test's own client logs its requests too
