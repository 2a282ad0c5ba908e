"""Every accepted job ends stored, or as a dead letter saying why: data errors are no outages."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from celery import Celery
from sqlalchemy import select
from typer.testing import CliRunner

from shadow.broker import create_celery
from shadow.cli import app as cli
from shadow.config import parse_config
from shadow.jobs import MIRROR_PAIR, PrimaryCapture, ShadowJob
from shadow.settings import Settings, get_settings
from shadow.worker.measure import build_runtime, use_runtime
from shadow.worker.tasks import SCORING_NOT_QUEUED, sweep_unscored
from storage.db import configure_database, make_engine, session_scope
from storage.models import DeadLetter, RequestPair
from storage.schemas import AnswerFields, PairCreate
from tests.conftest import config_text
from tests.fixtures.services import PrivateRedis

ANSWER = (
    '{"choices": [{"index": 0, "message": {"role": "assistant", "content": "hello there"},'
    ' "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}'
)


def deep_body(depth: int) -> str:
    """A legal chat request with a value nested `depth` levels (orjson writes at most 255)."""
    nested = "[" * depth + "]" * depth
    return (
        '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],'
        f' "metadata_blob": {nested}}}'
    )


def _job(body: str, feature: str | None = None) -> ShadowJob:
    return ShadowJob(
        pair_id=str(uuid.uuid4()),
        use_case="default",
        endpoint="chat.completions",
        received_at=time.time(),
        request_body=body,
        stream=False,
        client_auth=False,
        primary=PrimaryCapture(status_code=200, body=ANSWER, latency_ms=20, first_byte_ms=20),
        feature=feature,
    )


@pytest.fixture
def worker_app(simulator) -> Iterator[Celery]:
    """The mirror task of a Celery app whose candidate is a simulated upstream."""
    import shadow.worker.tasks  # noqa: F401 - registers the tasks

    candidate = simulator()
    config = parse_config(config_text(candidate, candidate), "<test>")
    settings = Settings(broker_url="memory://localhost/", queue=f"test.{uuid.uuid4().hex[:6]}")
    runtime = build_runtime(Settings(), config)
    use_runtime(runtime)
    app = create_celery(settings)
    app.set_default()
    yield app
    runtime.client.close()


def _run(app: Celery, job: ShadowJob, measured: dict[str, Any] | None = None) -> Any:
    task = app.tasks[MIRROR_PAIR]
    args: tuple[Any, ...] = (job.model_dump(mode="json"),)
    if measured is not None:
        args = (*args, measured)
    return task.apply(args=args, throw=True).result


def _stored(url: str, pair_id: str) -> RequestPair | None:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            return session.get(RequestPair, pair_id)
    finally:
        engine.dispose()


def _dead_letters(url: str, pair_id: str) -> list[DeadLetter]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            query = select(DeadLetter).where(DeadLetter.pair_id == pair_id)
            return list(session.scalars(query))
    finally:
        engine.dispose()


@pytest.mark.parametrize("depth", [254, 300, 1000])
def test_a_deeply_nested_request_is_mirrored_and_stored(worker_app, database_url, depth) -> None:
    configure_database(database_url)
    job = _job(deep_body(depth))
    assert _run(worker_app, job) == "stored"
    pair = _stored(database_url, job.pair_id)
    assert pair is not None
    assert pair.status == "ok", pair.candidate_error
    assert pair.request_body == job.request_body


def test_a_300_character_feature_and_model_are_stored_cut_on_both_databases(
    worker_app, database_url
) -> None:
    configure_database(database_url)
    model = "m" * 300
    job = _job(f'{{"model": "{model}", "messages": [{{"role": "user", "content": "hi"}}]}}')
    job = job.model_copy(update={"feature": "f" * 300})
    assert _run(worker_app, job) == "stored"
    pair = _stored(database_url, job.pair_id)
    assert pair is not None
    assert pair.feature == "f" * 200
    assert pair.primary_model == "m" * 200


def test_values_the_database_refuses_are_a_dead_letter_not_a_retry(
    worker_app, postgres_url
) -> None:
    """A value PostgreSQL refuses (a NUL byte in text) is recorded once with its reason."""
    configure_database(postgres_url)
    job = _job('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}')
    measured = PairCreate(
        id=job.pair_id,
        use_case="default",
        endpoint="chat.completions",
        stream=False,
        created_at=datetime.now(UTC),
        request_body=job.request_body,
        request_sha256=hashlib.sha256(job.request_body.encode()).hexdigest(),
        primary_model="gpt-4o-mini",
        primary_request_id=None,
        primary=AnswerFields(status_code=200, text="fine", latency_ms=10),
        candidate_model="cand-model",
        candidate=AnswerFields(status_code=200, text="nul \x00 byte", latency_ms=10),
    )
    assert _run(worker_app, job, measured.model_dump(mode="json")) == "refused_by_database"
    assert _stored(postgres_url, job.pair_id) is None
    (letter,) = _dead_letters(postgres_url, job.pair_id)
    assert letter.kind == "refused_by_database"
    assert letter.use_case == "default"
    assert "nul" not in (letter.error or "")  # the reason, never the text


def test_an_unexpected_error_after_acceptance_is_a_dead_letter(
    worker_app, sqlite_url, monkeypatch
) -> None:
    configure_database(sqlite_url)

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the measuring")

    monkeypatch.setattr("shadow.worker.tasks.measure_pair", broken)
    job = _job('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}')
    assert _run(worker_app, job) == "unexpected_error"
    (letter,) = _dead_letters(sqlite_url, job.pair_id)
    assert "a bug in the measuring" in (letter.error or "")


def test_pairs_stored_while_the_broker_is_down_get_their_scoring_queued(
    simulator, sqlite_url, private_redis: PrivateRedis
) -> None:
    import shadow.worker.tasks  # noqa: F401 - registers the tasks

    configure_database(sqlite_url)
    candidate = simulator()
    config = parse_config(config_text(candidate, candidate), "<test>")
    runtime = build_runtime(Settings(), config)
    use_runtime(runtime)
    settings = Settings(broker_url=private_redis.url, queue=f"test.{uuid.uuid4().hex[:6]}")
    app = create_celery(settings)
    app.set_default()
    jobs = [_job('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}')]
    jobs.append(_job(deep_body(300)))
    private_redis.stop()
    try:
        for job in jobs:
            assert _run(app, job) == "stored"
    finally:
        private_redis.start()
    for job in jobs:
        assert _stored(sqlite_url, job.pair_id) is not None
        assert [d.kind for d in _dead_letters(sqlite_url, job.pair_id)] == [SCORING_NOT_QUEUED]
    assert sweep_unscored(app) == len(jobs)
    queued = redis.Redis.from_url(private_redis.url).lrange(settings.scoring_queue_name, 0, -1)
    for job in jobs:
        assert any(job.pair_id.encode() in message for message in queued)
        assert _dead_letters(sqlite_url, job.pair_id) == []
    assert sweep_unscored(app) == 0
    runtime.client.close()


def test_a_visibility_timeout_shorter_than_a_retry_countdown_is_refused_at_start_up(
    monkeypatch,
) -> None:
    with pytest.raises(ValueError, match="SWITCHOVER_BROKER_VISIBILITY_TIMEOUT_S=30"):
        Settings(broker_url="redis://127.0.0.1:6379/0", broker_visibility_timeout_s=30)
    monkeypatch.setenv("SWITCHOVER_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("SWITCHOVER_BROKER_VISIBILITY_TIMEOUT_S", "30")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["worker"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "SWITCHOVER_BROKER_VISIBILITY_TIMEOUT_S=30 must be longer" in result.output
    assert Settings(broker_visibility_timeout_s=30, retry_max_countdown_s=20)
