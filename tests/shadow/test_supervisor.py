"""`switchover serve` as users run it: supervisor, proxy processes, embedded worker processes.

Each test starts the real command in a subprocess (it inherits PYTHONPATH, so it runs this
checkout's code) against simulated upstreams, with SQLite and the local queue file in the
test's directory, and signals the whole process group as an operator or a crash would.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.mmap_dict import MmapedDict

from shadow.localqueue import LocalQueue
from tests.conftest import ServeProcess, config_text, group_processes, wait_for

pytestmark = pytest.mark.integration

QUEUE = "switchover.shadow"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}


def embedded_env(tmp_path: Path, config: str, **extra: str) -> dict[str, str]:
    """Nothing but a configuration file and a SQLite database: the embedded default."""
    path = tmp_path / "switchover.yaml"
    path.write_text(config)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SWITCHOVER_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env |= {
        "SWITCHOVER_CONFIG": str(path),
        "SWITCHOVER_DATABASE_URL": f"sqlite:///{tmp_path / 'switchover.db'}",
    }
    return env | extra


def send(url: str, n: int) -> list[str]:
    """`n` chat requests, each on a connection of its own; the pair ids the proxy handed out."""
    ids = []
    for _ in range(n):
        response = httpx.post(f"{url}/v1/chat/completions", json=BODY, timeout=30)
        assert response.status_code == 200, response.text
        ids.append(response.headers["x-switchover-pair-id"])
    return ids


def metric(url: str, name: str, **labels: str) -> float:
    """A metric of /metrics summed over the label sets that match `labels`."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def stored(tmp_path: Path) -> set[str]:
    """Ids of the stored pairs."""
    database = tmp_path / "switchover.db"
    if not database.exists():
        return set()
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("SELECT id FROM request_pairs")}


def queue_rows(tmp_path: Path) -> list[tuple[str, Any]]:
    """(queue, lease owner) of every job in the local queue file."""
    with sqlite3.connect(tmp_path / "switchover-queue.db") as connection:
        return list(connection.execute("SELECT queue, owner FROM messages"))


@pytest.fixture
def slow_setup(simulator, tmp_path) -> Callable[..., dict[str, str]]:
    """A fast primary and a candidate slow enough that jobs are waiting when a signal comes."""

    def build(candidate_latency_ms: float = 1500, **shadow: Any) -> dict[str, str]:
        primary = simulator()
        candidate = simulator(latency_ms=candidate_latency_ms)
        shadow = {"max_in_flight": 2, "timeout_s": 30} | shadow
        return embedded_env(tmp_path, config_text(primary, candidate, **shadow))

    return build


def _accepted(served: ServeProcess, n: int) -> None:
    """Wait until the proxy has handed all `n` jobs to the queue file."""
    wait_for(lambda: metric(served.url, "switchover_shadow_enqueued_total") >= n, timeout=60)


def test_sigkill_with_jobs_waiting_then_restart_stores_every_job(
    slow_setup, start_serve, tmp_path
) -> None:
    env = slow_setup()
    served = start_serve(env)
    served.wait_ready()
    ids = send(served.url, 30)
    _accepted(served, 30)
    assert metric(served.url, "switchover_shadow_dropped_total") == 0
    assert any(queue == QUEUE for queue, _ in queue_rows(tmp_path)), "no job was waiting"
    served.signal(signal.SIGKILL)
    assert len(stored(tmp_path)) < 30
    restarted = start_serve(env)
    restarted.wait_ready()
    wait_for(lambda: stored(tmp_path) >= set(ids), timeout=240, interval=0.5)
    assert stored(tmp_path) == set(ids)


def test_sigterm_keeps_what_it_holds_and_the_restart_stores_it(
    slow_setup, start_serve, tmp_path
) -> None:
    env = slow_setup()
    served = start_serve(env)
    served.wait_ready()
    ids = send(served.url, 30)
    _accepted(served, 30)
    served.signal(signal.SIGTERM)
    assert served.process.returncode == 0, served.output()
    rows = queue_rows(tmp_path)
    waiting = [owner for queue, owner in rows if queue == QUEUE]
    assert waiting, "the stop drained everything: nothing left to check"
    assert all(owner is None for _, owner in rows), "a stopped worker still holds jobs"
    # every job is either stored (finished during the warm stop) or still in the file
    assert len(stored(tmp_path)) + len(waiting) == 30
    restarted = start_serve(env)
    restarted.wait_ready()
    wait_for(lambda: stored(tmp_path) >= set(ids), timeout=240, interval=0.5)


def test_a_full_local_queue_drops_and_counts(simulator, start_serve, tmp_path) -> None:
    primary, candidate = simulator(), simulator(hang_rate=1.0)
    config = config_text(primary, candidate, max_in_flight=2, timeout_s=120)
    env = embedded_env(tmp_path, config, SWITCHOVER_SHADOW_BUFFER_SIZE="5")
    served = start_serve(env)
    served.wait_ready()
    send(served.url, 30)
    wait_for(
        lambda: (
            metric(served.url, "switchover_shadow_enqueued_total")
            + metric(served.url, "switchover_shadow_dropped_total")
            >= 30
        ),
        timeout=60,
    )
    enqueued = metric(served.url, "switchover_shadow_enqueued_total")
    dropped = metric(served.url, "switchover_shadow_dropped_total", reason="queue_full")
    assert 0 < enqueued <= 5
    assert enqueued + dropped == 30
    journal = LocalQueue(tmp_path / "switchover-queue.db")
    # the durable record outlives the process's counters
    wait_for(lambda: journal.dropped().get(("default", "queue_full")) == dropped, timeout=30)
    served.signal(signal.SIGKILL)
    assert journal.dropped() == {("default", "queue_full"): dropped}


def test_two_proxy_processes_serve_and_their_metrics_add_up(
    simulator, start_serve, tmp_path
) -> None:
    metrics_dir = tmp_path / "metrics"
    config = config_text(simulator(), simulator())
    env = embedded_env(tmp_path, config, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    served = start_serve(env, "--workers", "2")
    served.wait_ready()
    ids = send(served.url, 40)
    wait_for(lambda: stored(tmp_path) >= set(ids), timeout=120)
    requests = metric(served.url, "switchover_requests_total", status="200")
    assert requests == 40
    assert metric(served.url, "switchover_shadow_enqueued_total") == 40
    # each proxy process wrote its own counts; /metrics is their sum
    per_process: dict[str, dict[str, float]] = {}
    for path in metrics_dir.glob("counter_*.db"):
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            name = orjson.loads(key)[1]  # the sample name
            counts = per_process.setdefault(path.name.removeprefix("counter_"), {})
            counts[name] = counts.get(name, 0) + value
    answered = {
        pid: c["switchover_requests_total"]
        for pid, c in per_process.items()
        if c.get("switchover_requests_total")
    }
    assert len(answered) == 2, per_process
    assert sum(answered.values()) == 40
    processes = group_processes(served.process.pid)
    workers = [pid for pid, line in processes.items() if "shadow.worker.embedded" in line]
    relays = [pid for pid, line in processes.items() if "shadow.proxy.relay" in line]
    proxies = [pid for pid, line in processes.items() if "shadow.supervisor --fd" in line]
    assert len(workers) == 1, processes
    assert len(relays) == 1, processes
    assert len(proxies) == 2, processes
    # the relay, not a proxy, put the jobs into the queue file and counted them
    assert per_process[f"{relays[0]}.db"]["switchover_shadow_enqueued_total"] == 40
    # every thread of the worker and relay processes runs below the proxies: niced, SCHED_IDLE
    for pid in (*workers, *relays):
        for tid in map(int, os.listdir(f"/proc/{pid}/task")):
            assert os.sched_getscheduler(tid) == os.SCHED_IDLE
            assert os.getpriority(os.PRIO_PROCESS, tid) >= 10
    for pid in proxies:
        assert os.sched_getscheduler(pid) == os.SCHED_OTHER
        assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0)


def test_api_only_serves_the_api_and_proxy_only_the_proxy(simulator, start_serve, tmp_path) -> None:
    env = embedded_env(tmp_path, config_text(simulator(), simulator()))
    api = start_serve(env, "--api-only")
    api.wait_ready()
    proxy = start_serve(env, "--proxy-only")
    proxy.wait_ready()
    chat = "/v1/chat/completions"
    # the API asks for a token (401), the proxy-only process does not know the route (404)
    assert httpx.get(f"{api.url}/api/v1/use-cases", timeout=10).status_code == 401
    assert httpx.get(f"{proxy.url}/api/v1/use-cases", timeout=10).status_code == 404
    assert httpx.post(f"{api.url}{chat}", json=BODY, timeout=10).status_code == 404
    assert httpx.post(f"{proxy.url}{chat}", json=BODY, timeout=10).status_code == 200
    # the API process runs no mirror; it is ready while its database answers
    assert httpx.get(f"{api.url}/readyz", timeout=10).json()["checks"] == {"database": True}


def test_a_killed_relay_is_started_again_and_no_job_is_lost(
    simulator, start_serve, tmp_path
) -> None:
    env = embedded_env(tmp_path, config_text(simulator(), simulator()))
    served = start_serve(env)
    served.wait_ready()
    first = send(served.url, 10)
    _accepted(served, 10)  # the relay holds nothing now: every job is in the queue file
    relays = [p for p, line in group_processes(served.process.pid).items() if "proxy.relay" in line]
    assert len(relays) == 1
    os.kill(relays[0], signal.SIGKILL)
    # until the supervisor has reaped it, so its sockets are closed: a zombie leader's other
    # threads may still hold them, and a job written in the instant of the kill is lost (README)
    wait_for(lambda: not Path(f"/proc/{relays[0]}").exists(), timeout=60)
    # sent while the relay is down and while it starts again: they wait in the socket's backlog
    later = send(served.url, 20)
    wait_for(lambda: stored(tmp_path) >= set(first + later), timeout=180, interval=0.5)
    assert metric(served.url, "switchover_shadow_enqueued_total") == 30
    assert metric(served.url, "switchover_shadow_dropped_total") == 0
    restarted = [
        p for p, line in group_processes(served.process.pid).items() if "proxy.relay" in line
    ]
    assert len(restarted) == 1
    assert restarted != relays
