"""The fault matrix: each dependency fails under steady client traffic through the proxy.

For every fault the clients (the `openai` SDK) get all their answers from the primary, the
proxy's own overhead stays small, every shadow job the broker accepted is stored exactly once
and every other one is counted as dropped, and the pipeline recovers by itself (no restart of
the proxy or the worker) once the dependency is back.

Redis and PostgreSQL here are private instances of this session (`tests/fixtures/services.py`),
never the machine's shared ones. The embedded mode runs as users run it: `switchover serve`
with nothing configured but the file and a SQLite database (its queue file and supervised
worker processes).
"""

from __future__ import annotations

import logging
import os
import signal
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from shadow.serving import free_port
from shadow.settings import Settings
from shadow.simulator.prompts import load_prompts
from shadow.simulator.server import SimulatorConfig, SimulatorThread
from storage.db import make_engine, session_scope
from storage.models import RequestPair
from tests.conftest import ServeProcess, config_text, wait_for
from tests.fixtures.services import PrivatePostgres, PrivateRedis
from tests.shadow.test_supervisor import embedded_env

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

# The primary answers with the reference answer and the candidate with the wrong one, so a
# client can tell who answered it. Tool-call prompts have no text to compare.
PROMPTS = [item for item in load_prompts() if item.kind != "tool_call"]
MODEL = "gpt-4o-mini"
# STYLE.md's target is < 0.5 ms of proxy time per request on a quiet machine; that is measured
# by bench/proxy_overhead.py, not here. Here the proxy shares the test process (and its GIL)
# with the client threads, the simulated upstreams and the publisher thread, on two cores
# that other processes may load too (a busy machine pushed the p99 to 22 ms), so the bounds
# only catch a request path that waits on a broker, database or candidate (0.5 s and more).
OVERHEAD_P50_MS = 25.0
OVERHEAD_P99_MS = 250.0
# Nothing on the request path may wait for a dependency's timeout (0.5-2 s).
CLIENT_LATENCY_MAX_S = 1.0
VISIBILITY_TIMEOUT_S = "10"
# retries come back before the broker would hand them to another worker
RETRY_MAX_COUNTDOWN_S = "5"


@pytest.fixture
def redis_url(private_redis: PrivateRedis) -> str:
    """The workers of these tests use the private Redis as their broker."""
    return private_redis.url


@pytest.fixture(autouse=True)
def services_up(private_redis: PrivateRedis, private_postgres: PrivatePostgres) -> None:
    """Each test starts with both private services up, whatever the previous one left."""
    if not private_redis.running:
        private_redis.start()
    if not private_postgres.running:
        private_postgres.start()


# --- steady traffic ------------------------------------------------------------------------


@dataclass
class Answered:
    """One client request and what the client saw."""

    sent_at: float
    latency_s: float
    status: int | None = None
    overhead_ms: float | None = None
    pair_id: str | None = None
    error: str | None = None


class Traffic:
    """Client requests at a steady rate from a few threads: chat, streamed chat, completions."""

    def __init__(self, base_url: str, threads: int = 4, rate_per_thread: float = 12.0) -> None:
        self.results: list[Answered] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._interval = 1 / rate_per_thread
        self._threads = [
            threading.Thread(target=self._run, args=(base_url, n), daemon=True)
            for n in range(threads)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    @property
    def count(self) -> int:
        """Requests answered (or failed) so far."""
        with self._lock:
            return len(self.results)

    def wait(self, more: int, at_least_s: float = 0.0) -> None:
        """Let `more` requests (and at least `at_least_s` seconds) pass."""
        started, target = time.monotonic(), self.count + more
        wait_for(
            lambda: self.count >= target and time.monotonic() - started >= at_least_s,
            timeout=120,
        )

    def _run(self, base_url: str, number: int) -> None:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test", max_retries=0)
        i = number
        next_at = time.monotonic()
        while not self._stop.is_set():
            next_at += self._interval
            result = self._one(client, i)
            with self._lock:
                self.results.append(result)
            i += len(self._threads)
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        client.close()

    @staticmethod
    def _one(client: openai.OpenAI, i: int) -> Answered:
        item = PROMPTS[i % len(PROMPTS)]
        messages: Any = [m.model_dump() for m in item.messages]
        sent_at = time.time()
        started = time.perf_counter()
        answer = Answered(sent_at=sent_at, latency_s=0.0)
        try:
            if i % 3 == 0:
                raw: Any = client.chat.completions.with_raw_response.create(
                    model=MODEL, messages=messages
                )
                text = raw.parse().choices[0].message.content
            elif i % 3 == 1:
                with client.chat.completions.with_streaming_response.create(
                    model=MODEL, messages=messages, stream=True
                ) as raw:
                    text = "".join(
                        chunk.choices[0].delta.content or ""
                        for chunk in raw.parse()
                        if chunk.choices
                    )
            else:
                raw = client.completions.with_raw_response.create(
                    model=MODEL, prompt=item.prompt_text
                )
                text = raw.parse().choices[0].text
        except openai.OpenAIError as exc:
            answer.error = f"{type(exc).__name__}: {exc}"
            answer.latency_s = time.perf_counter() - started
            return answer
        answer.latency_s = time.perf_counter() - started
        answer.status = raw.status_code
        answer.overhead_ms = float(raw.headers["x-switchover-overhead-ms"])
        answer.pair_id = raw.headers.get("x-switchover-pair-id")
        if text != item.reference:
            answer.error = f"not the primary's answer: {text!r}"
        return answer


# --- the pipeline under test ---------------------------------------------------------------


def _metric(url: str, name: str, use_case: str) -> float:
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{") and f'use_case="{use_case}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class Pipeline:
    """Proxy, worker(s) and stores of one test, with the accounting of its shadow jobs."""

    use_case: str
    url: str
    database_url: str
    env: dict[str, str]
    workers: list[Any] = field(default_factory=list)

    def pairs(self) -> list[tuple[str, str, datetime]]:
        """(id, status, received at) of the stored pairs of this use case."""
        engine = make_engine(self.database_url)
        try:
            with session_scope(engine) as session:
                rows = session.execute(
                    select(
                        RequestPair.id, RequestPair.candidate_error_kind, RequestPair.created_at
                    ).where(RequestPair.use_case == self.use_case)
                ).all()
        except Exception:  # the database may be the fault under test
            return []
        finally:
            engine.dispose()
        return [(pair_id, kind or "ok", _utc(created)) for pair_id, kind, created in rows]

    def stored_ok_after(self, moment: float) -> bool:
        """Whether a pair received after `moment` (epoch s) is stored with a good candidate."""
        since = datetime.fromtimestamp(moment, UTC)
        return any(status == "ok" and at > since for _, status, at in self.pairs())

    def counted(self) -> tuple[float, float]:
        """(accepted by the broker, dropped before that) by the proxy's metrics."""
        return (
            _metric(self.url, "switchover_shadow_enqueued_total", self.use_case),
            _metric(self.url, "switchover_shadow_dropped_total", self.use_case),
        )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@pytest.fixture
def pipeline(
    simulator, proxy, worker_env, start_worker, private_postgres
) -> Callable[..., Pipeline]:
    """`pipeline(candidate_url, workers=1, **shadow)`: a primary, the proxy and workers."""

    def build(candidate_url: str, workers: int = 1, **shadow: Any) -> Pipeline:
        use_case = f"fault-{uuid.uuid4().hex[:8]}"
        primary = simulator(latency_ms=2)
        shadow = {"max_in_flight": 16, "timeout_s": 2} | shadow
        config = config_text(primary, candidate_url, use_case=use_case, **shadow)
        env = worker_env(
            config,
            private_postgres.url,
            SWITCHOVER_BROKER_VISIBILITY_TIMEOUT_S=VISIBILITY_TIMEOUT_S,
            SWITCHOVER_RETRY_MAX_COUNTDOWN_S=RETRY_MAX_COUNTDOWN_S,
        )
        started = [start_worker(env, 8, "--queues", "shadow") for _ in range(workers)]
        settings = Settings(
            broker_url=env["SWITCHOVER_BROKER_URL"],
            queue=env["SWITCHOVER_QUEUE"],
            broker_publish_timeout_s=0.5,
        )
        url = proxy(config, settings)
        return Pipeline(use_case, url, private_postgres.url, env, started)

    return build


@pytest.fixture
def embedded_pipeline(simulator, start_serve, tmp_path) -> Callable[..., Pipeline]:
    """`embedded_pipeline(candidate_url, **shadow)`: a primary and `switchover serve`, embedded."""

    def build(candidate_url: str, **shadow: Any) -> Pipeline:
        use_case = f"fault-{uuid.uuid4().hex[:8]}"
        primary = simulator(latency_ms=2)
        shadow = {"max_in_flight": 16, "timeout_s": 2} | shadow
        env = embedded_env(
            tmp_path, config_text(primary, candidate_url, use_case=use_case, **shadow)
        )
        served: ServeProcess = start_serve(env)
        served.wait_ready()
        return Pipeline(use_case, served.url, env["SWITCHOVER_DATABASE_URL"], env)

    return build


def _embedded_workers(pipeline: Pipeline) -> list[int]:
    """Process ids of the embedded worker processes serving `pipeline`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        if b"shadow.worker.embedded" in text:
            try:
                environ = (cmdline.parent / "environ").read_bytes()
            except OSError:
                continue
            if pipeline.env["SWITCHOVER_CONFIG"].encode() in environ:
                found.append(int(cmdline.parent.name))
    return found


class Candidate:
    """The candidate's address, served by a healthy or a faulty simulator, or by nothing."""

    HEALTHY = SimulatorConfig(answer_mix={"wrong": 1.0})

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._server: SimulatorThread | None = None

    def serve(self, config: SimulatorConfig | None) -> None:
        """Replace whatever serves the address by `config` (None: connections are refused)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if config is not None:
            self._server = SimulatorThread(config, port=self.port)
            self._server.start()


@pytest.fixture
def candidate() -> Iterator[Candidate]:
    """A candidate address whose server a test swaps mid-run; healthy to begin with."""
    served = Candidate()
    served.serve(Candidate.HEALTHY)
    yield served
    served.serve(None)


# --- the scenario and its checks -----------------------------------------------------------


@dataclass
class Figures:
    """What one fault run measured; logged, and checked by `_check`."""

    fault: str
    sent: int
    answered: int
    mirrored: int
    stored: int
    enqueued: int
    dropped: int
    duplicates: int
    overhead_p50_ms: float
    overhead_p99_ms: float
    client_max_s: float
    recovery_s: float
    settle_s: float
    statuses: dict[str, int]
    dropped_but_stored: int = 0


def run_fault(
    fault: str,
    pipeline: Pipeline,
    inject: Callable[[], None],
    heal: Callable[[], None],
    *,
    fault_s: float = 2.5,
    caplog: pytest.LogCaptureFixture | None = None,
    rate_per_thread: float = 12.0,
) -> Figures:
    """Steady traffic; the fault is injected, held for `fault_s`, healed; then the books.

    The ids of the jobs the broker refused come from the mirror's log, in `caplog`.
    """
    with Traffic(pipeline.url, rate_per_thread=rate_per_thread) as traffic:
        traffic.wait(80)
        inject()
        traffic.wait(60, at_least_s=fault_s)
        heal()
        healed_at = time.time()
        wait_for(lambda: pipeline.stored_ok_after(healed_at), timeout=90, interval=0.2)
        recovery_s = time.time() - healed_at
        traffic.wait(100)
    results = list(traffic.results)
    mirrored = {r.pair_id for r in results if r.pair_id}
    ended = time.monotonic()

    def dropped_ids() -> set[str]:
        return {
            str(record.args[0])
            for record in (caplog.records if caplog else [])
            if record.name == "shadow.proxy.mirror"
            and isinstance(record.args, tuple)
            and record.args
        }

    def settled() -> bool:
        enqueued, dropped = pipeline.counted()
        stored = {pair_id for pair_id, _, _ in pipeline.pairs()} - dropped_ids()
        return enqueued + dropped == len(mirrored) and len(stored) == enqueued

    # Not `wait_for`: when the books do not balance, the figures below tell by how much.
    while not settled() and time.monotonic() - ended < 120:
        time.sleep(0.5)
    settle_s = time.monotonic() - ended
    enqueued, dropped = pipeline.counted()
    pairs = pipeline.pairs()
    ids = [pair_id for pair_id, _, _ in pairs]
    statuses: dict[str, int] = {}
    for _, status, _ in pairs:
        statuses[status] = statuses.get(status, 0) + 1
    refused = dropped_ids()
    missing = mirrored - set(ids) - refused
    overheads = sorted(r.overhead_ms for r in results if r.overhead_ms is not None)
    figures = Figures(
        fault=fault,
        sent=len(results),
        answered=sum(1 for r in results if r.status == 200 and r.error is None),
        mirrored=len(mirrored),
        stored=len(set(ids)),
        enqueued=int(enqueued),
        dropped=int(dropped),
        duplicates=len(ids) - len(set(ids)),
        overhead_p50_ms=statistics.median(overheads) if overheads else float("nan"),
        overhead_p99_ms=overheads[int(0.99 * (len(overheads) - 1))] if overheads else float("nan"),
        client_max_s=max(r.latency_s for r in results),
        recovery_s=round(recovery_s, 2),
        settle_s=round(settle_s, 2),
        statuses=statuses,
        # The broker took the job but its reply was lost as it stopped: the proxy counted it
        # as dropped, and it was stored once. Neither lost nor duplicated.
        dropped_but_stored=len(set(ids) & refused),
    )
    log.warning("fault matrix: %s", figures)
    if figures.stored != figures.enqueued:
        for worker in pipeline.workers:
            log.warning("worker output:\n%s", "".join(worker.output[-60:]))
    failures = [r for r in results if r.error or r.status != 200]
    assert not failures, f"{len(failures)} client requests failed, e.g. {failures[:3]}"
    assert figures.answered == figures.sent >= 240
    assert set(ids) <= mirrored, "a stored pair the proxy never handed out"
    assert figures.duplicates == 0
    assert figures.enqueued + figures.dropped == figures.mirrored
    stored_of_enqueued = figures.stored - figures.dropped_but_stored
    assert stored_of_enqueued == figures.enqueued, (
        f"a job the broker accepted was not stored: {sorted(missing)[:5]}"
    )
    assert figures.overhead_p50_ms <= OVERHEAD_P50_MS, figures
    assert figures.overhead_p99_ms <= OVERHEAD_P99_MS, figures
    assert figures.client_max_s <= CLIENT_LATENCY_MAX_S, figures
    return figures


# --- the faults ----------------------------------------------------------------------------


CANDIDATE_FAULTS = {
    # fault: (what serves the candidate's address meanwhile, the error kind it leaves)
    "refused": (None, "connection"),
    "hanging": (SimulatorConfig(hang_rate=1.0), "timeout"),
    "http-500": (SimulatorConfig(error_rate=1.0), "http_status"),
    # half of the answers cut off half-way (a `connection` error), half unparseable
    "garbage": (SimulatorConfig(garbage_rate=0.5, cut_rate=0.5), "invalid_response"),
}
# A call in flight when a server is swapped for another has its connection closed.
SWAP = "connection"
# Slow enough that jobs are in the middle of their candidate call when a service goes away.
SLOW_CANDIDATE = SimulatorConfig(answer_mix={"wrong": 1.0}, latency_ms=150)


@pytest.mark.parametrize("fault", list(CANDIDATE_FAULTS))
def test_candidate_fault(fault: str, pipeline, candidate: Candidate) -> None:
    """A broken candidate leaves error pairs, never a lost or delayed client answer."""
    serving, kind = CANDIDATE_FAULTS[fault]
    under_test = pipeline(candidate.url, timeout_s=1)
    figures = run_fault(
        f"candidate {fault}",
        under_test,
        inject=lambda: candidate.serve(serving),
        heal=lambda: candidate.serve(Candidate.HEALTHY),
    )
    assert figures.dropped == 0
    assert figures.statuses.get(kind), "the fault left no trace in the stored pairs"
    assert set(figures.statuses) <= {"ok", kind, SWAP}


def test_redis_stopped_and_restarted(
    pipeline, candidate: Candidate, private_redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker goes away: jobs are dropped and counted, the rest stored once; it comes back.

    Kombu's own Redis transport loses a job taken off the queue in the instant Redis stops
    (BRPOP, then a second command records it); shadow/redisqueue.py moves it into a
    processing list in the same command, so no job may be lost here.
    """
    candidate.serve(SLOW_CANDIDATE)
    under_test = pipeline(candidate.url)
    figures = run_fault(
        "redis restart",
        under_test,
        inject=private_redis.stop,
        heal=private_redis.start,
        caplog=caplog,
    )
    assert figures.dropped > 0, "no job was refused while the broker was down"
    assert figures.statuses == {"ok": figures.stored}


def test_postgres_stopped_and_restarted(pipeline, candidate: Candidate, private_postgres) -> None:
    """The database goes away: measured pairs wait in the broker, then land once."""
    candidate.serve(SLOW_CANDIDATE)
    under_test = pipeline(candidate.url)
    figures = run_fault(
        "postgres restart", under_test, inject=private_postgres.stop, heal=private_postgres.start
    )
    assert figures.dropped == 0
    assert figures.statuses == {"ok": figures.stored}


def test_worker_killed_mid_task(pipeline, candidate: Candidate) -> None:
    """One of two workers is SIGKILLed with jobs in flight: the other one stores them, once.

    A job the victim had taken but not yet recorded as unacknowledged waits in its queue's
    processing list (shadow/redisqueue.py) and goes back after the visibility timeout.
    """
    candidate.serve(SLOW_CANDIDATE)
    under_test = pipeline(candidate.url, workers=2)
    victim = under_test.workers[0]
    figures = run_fault("worker SIGKILL", under_test, inject=victim.kill, heal=lambda: None)
    assert victim.process.poll() is not None
    assert figures.dropped == 0
    assert figures.statuses == {"ok": figures.stored}


# --- the embedded mode -----------------------------------------------------------------------

# The embedded worker also scores every pair (the embedding model, on the same two shared
# cores): a third of the distributed tests' rate, so that the books can balance in time.
EMBEDDED_RATE = 4.0


@pytest.mark.parametrize("fault", list(CANDIDATE_FAULTS))
def test_embedded_candidate_fault(fault: str, embedded_pipeline, candidate: Candidate) -> None:
    """The same candidate faults with the embedded default: error pairs, nothing lost."""
    serving, kind = CANDIDATE_FAULTS[fault]
    under_test = embedded_pipeline(candidate.url, timeout_s=1)
    figures = run_fault(
        f"embedded: candidate {fault}",
        under_test,
        inject=lambda: candidate.serve(serving),
        heal=lambda: candidate.serve(Candidate.HEALTHY),
        rate_per_thread=EMBEDDED_RATE,
    )
    assert figures.dropped == 0
    assert figures.statuses.get(kind), "the fault left no trace in the stored pairs"
    assert set(figures.statuses) <= {"ok", kind, SWAP}


def test_embedded_worker_killed_mid_task(embedded_pipeline, candidate: Candidate) -> None:
    """The embedded worker process is SIGKILLed with jobs in flight: `serve` starts it again
    and gives its jobs back to the queue; every one is stored, once."""
    candidate.serve(SLOW_CANDIDATE)
    under_test = embedded_pipeline(candidate.url)
    (victim,) = _embedded_workers(under_test)
    figures = run_fault(
        "embedded: worker SIGKILL",
        under_test,
        inject=lambda: os.kill(victim, signal.SIGKILL),
        heal=lambda: None,
        rate_per_thread=EMBEDDED_RATE,
    )
    assert figures.dropped == 0
    assert figures.statuses == {"ok": figures.stored}
    assert _embedded_workers(under_test) not in ([], [victim])
