"""Shared fixtures: real PostgreSQL, Redis, SQLite, simulated upstreams, proxy, workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from shadow.app import create_app
from shadow.config import SwitchoverConfig, parse_config
from shadow.jobs import ShadowJob
from shadow.serving import serve_in_thread
from shadow.settings import Settings
from shadow.simulator.server import SimulatorConfig, SimulatorThread
from storage.db import configure_database, make_engine
from storage.migrate import upgrade

PG_ADMIN_URL = os.environ.get(
    "SWITCHOVER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SWITCHOVER_TEST_REDIS", "redis://127.0.0.1:6379/14")
VENV_BIN = Path(sys.executable).parent

pytest_plugins = ["tests.fixtures.services"]


def wait_for(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


# --- databases -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _database_from_environment() -> Iterator[None]:
    """A service a test starts configures its database; the next test reads the environment."""
    yield
    configure_database(None)


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def create_postgres_database() -> Iterator[Callable[[], str]]:
    """Make fresh PostgreSQL databases on the running server; all dropped at the end."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def create() -> str:
        name = f"switchover_test_{uuid.uuid4().hex[:10]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return _pg_url(name)

    yield create
    with admin.connect() as connection:
        for name in made:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_url(create_postgres_database: Callable[[], str]) -> str:
    """A PostgreSQL database built by the migrations, shared by the session."""
    url = create_postgres_database()
    upgrade(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file built by the migrations."""
    url = f"sqlite:///{tmp_path / 'switchover.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on both databases."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def db_session(database_url: str) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            transaction.rollback()
    engine.dispose()


def table_dump(url: str) -> str:
    """Every row of every table as text, to search for things that must not be stored."""
    engine = make_engine(url)
    chunks = []
    with engine.connect() as connection:
        from storage.models import Base

        for table in Base.metadata.sorted_tables:
            for row in connection.execute(table.select()):
                chunks.append(repr(tuple(row)))
    engine.dispose()
    return "\n".join(chunks)


# --- redis -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis database of its own on the running server, emptied at the start."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
    return REDIS_URL


# --- upstreams, proxy, workers -------------------------------------------------------------


@pytest.fixture
def simulator() -> Iterator[Callable[..., str]]:
    """Start simulated OpenAI upstreams: `simulator(latency_ms=…)` returns a base URL."""
    running: list[SimulatorThread] = []

    def start(**options: Any) -> str:
        thread = SimulatorThread(SimulatorConfig(**options))
        running.append(thread)
        return thread.start()

    yield start
    for thread in running:
        thread.stop()


def config_text(
    primary_url: str,
    candidate_url: str,
    *,
    use_case: str = "default",
    primary_model: str = "gpt-4o-mini",
    candidate_model: str = "cand-model",
    primary_key_env: str | None = None,
    candidate_key_env: str | None = None,
    **shadow: Any,
) -> str:
    """A switchover.yaml with one use case between two upstreams."""
    shadow = {"sample_rate": 1.0, "noise_rate": 0.0, "max_in_flight": 8, "timeout_s": 10} | shadow
    primary_key = f", api_key_env: {primary_key_env}" if primary_key_env else ""
    candidate_key = f", api_key_env: {candidate_key_env}" if candidate_key_env else ""
    shadow_text = ", ".join(f"{k}: {v}" for k, v in shadow.items())
    return (
        "upstreams:\n"
        f"  api: {{base_url: {primary_url}{primary_key}}}\n"
        f"  gpu: {{base_url: {candidate_url}{candidate_key}}}\n"
        "use_cases:\n"
        f"  {use_case}:\n"
        f"    primary: {{upstream: api, model: {primary_model}}}\n"
        f"    candidate: {{upstream: gpu, model: {candidate_model}}}\n"
        f"    shadow: {{{shadow_text}}}\n"
    )


class CapturedJobs(list[ShadowJob]):
    """Jobs the proxy handed to its publisher, in order."""

    def publish(self, job: ShadowJob) -> None:
        self.append(job)


@pytest.fixture
def proxy() -> Iterator[Callable[..., str]]:
    """Start the service in a thread: `proxy(config, settings=…, publish=…)` → base URL."""
    with_stack: list[Any] = []

    def start(
        config: SwitchoverConfig | str,
        settings: Settings | None = None,
        publish: Callable[[ShadowJob], None] | None = None,
    ) -> str:
        if isinstance(config, str):
            config = parse_config(config, "<test>")
        app = create_app(settings or Settings(), config, publish)
        context = serve_in_thread(app)
        url = context.__enter__()
        with_stack.append(context)
        return url

    yield start
    for context in reversed(with_stack):
        context.__exit__(None, None, None)


class WorkerProcess:
    """`switchover worker` in a subprocess, with its output kept for failure messages."""

    def __init__(self, env: dict[str, str], concurrency: int, *args: str) -> None:
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [str(VENV_BIN / "switchover"), "worker", "--concurrency", str(concurrency), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(60):
            self.kill()
            pytest.fail("worker did not become ready:\n" + "".join(self.output[-40:]))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if " ready." in line:
                self._ready.set()

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no acknowledgement of what it was doing."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM: warm shutdown, unfinished jobs go back to the broker."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker_env(tmp_path: Path, redis_url: str) -> Callable[..., dict[str, str]]:
    """Environment for a distributed worker: config file, database, Redis broker, own queue."""
    queue = f"test.{uuid.uuid4().hex[:8]}"

    def make(config: str, database_url: str, **extra: str) -> dict[str, str]:
        path = tmp_path / f"switchover-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHOVER_")}
        env |= {
            "SWITCHOVER_CONFIG": str(path),
            "SWITCHOVER_DATABASE_URL": database_url,
            "SWITCHOVER_BROKER_URL": redis_url,
            "SWITCHOVER_QUEUE": queue,
        }
        return env | extra

    return make


@pytest.fixture
def start_worker() -> Iterator[Callable[..., WorkerProcess]]:
    """Start `switchover worker` subprocesses; all stopped after the test."""
    workers: list[WorkerProcess] = []

    def start(env: dict[str, str], concurrency: int = 4, *args: str) -> WorkerProcess:
        worker = WorkerProcess(env, concurrency, *args)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
        # Captured by pytest and shown only when the test failed: what the worker was doing.
        print(f"--- worker {worker.process.pid} output (last 60 lines) ---")
        print("".join(worker.output[-60:]), end="")


class ServeProcess:
    """`switchover serve` in a subprocess (its own session, so a signal reaches all of it)."""

    def __init__(self, env: dict[str, str], port: int, *args: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = Path(env["SWITCHOVER_CONFIG"]).with_name(
            f"serve-{port}-{uuid.uuid4().hex[:4]}.log"
        )
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "switchover"), "serve", "--port", str(port), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self, lines: int = 60) -> str:
        """The end of what the processes printed."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, path: str = "/readyz", timeout: float = 180) -> None:
        """Until `path` answers 200 (the embedded worker too: /readyz checks it)."""
        import httpx

        def answered() -> bool:
            if self.process.poll() is not None:
                pytest.fail(
                    f"switchover serve exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                return httpx.get(self.url + path, timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answered, timeout=timeout, interval=0.2)

    def signal(self, signum: int, timeout: float = 180) -> None:
        """Send `signum` to every process of the service and wait for the supervisor to end."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)
            self.process.wait(timeout)
        # children of a SIGKILLed supervisor die with it (same group); wait until they have
        wait_for(lambda: not _group_alive(self.process.pid), timeout=60)


def group_processes(pgid: int) -> dict[int, str]:
    """Process id -> command line of each running process of group `pgid` (not zombies)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            line = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found[int(stat.parent.name)] = line
    return found


def _group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (zombies waiting to be reaped do not)."""
    return bool(group_processes(pgid))


@pytest.fixture
def start_serve() -> Iterator[Callable[..., ServeProcess]]:
    """Start `switchover serve` subprocesses: `start_serve(env, *args)`; all stopped after."""
    started: list[ServeProcess] = []

    def start(env: dict[str, str], *args: str, port: int | None = None) -> ServeProcess:
        from shadow.serving import free_port

        served = ServeProcess(env, port or free_port(), *args)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.signal(signal.SIGTERM)
        print(f"--- switchover serve {served.port} output (last 60 lines) ---")
        print(served.output())


def distributed_settings(env: dict[str, str]) -> Settings:
    """Proxy settings matching a worker environment (same broker and queue)."""
    return Settings(
        broker_url=env["SWITCHOVER_BROKER_URL"],
        queue=env["SWITCHOVER_QUEUE"],
        config=Path(env["SWITCHOVER_CONFIG"]),
    )
