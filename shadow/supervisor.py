"""`switchover serve`'s process model: a supervisor, proxy processes, embedded workers.

The supervisor binds the listening socket once and hands it to N proxy processes
(`python -m shadow.supervisor --fd …`), which the kernel balances; in embedded mode it also
runs the relay (`python -m shadow.proxy.relay`), which publishes the proxies' shadow jobs to
the local queue file, and the worker processes (`python -m shadow.worker.embedded`) that take
the shadow and scoring jobs from it. A child that dies is started again; a worker's
unacknowledged jobs go back to the queue first. SIGTERM or SIGINT stops the proxies first (each
finishes its requests and hands its buffered jobs on), then the relay (it publishes what it
holds), then the workers (running jobs finish, prefetched ones stay in the file). Metrics of
every process are summed through Prometheus' multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, a
fresh directory per start unless set).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from shadow.settings import Settings, get_settings

log = logging.getLogger(__name__)

# What one process serves: the proxy (`/v1`), the readiness API (`/api/v1`), or both.
PROXY, API = "proxy", "api"
ALL_PARTS = frozenset({PROXY, API})
# The exit code of a child that found the configuration invalid: restarting cannot help.
CONFIG_ERROR = 2
_RESTART_DELAY_S = 1.0
_PROXY_STOP_S = 30.0
_RELAY_STOP_S = 60.0
_WORKER_STOP_S = 90.0


@dataclass
class Child:
    """One supervised process and how to start it again."""

    name: str
    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    died_at: float | None = field(default=None)

    def start(self) -> None:
        """Start (or start again) the process; it inherits the environment and output."""
        self.process = subprocess.Popen(self.argv, pass_fds=self.pass_fds)
        self.died_at = None

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.running():
            assert self.process is not None
            self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> None:
        """Wait for the process to end; SIGKILL it when it takes longer than `timeout_s`."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "%s (pid %s) did not stop in %.0f s: killed", self.name, self.pid, timeout_s
            )
            self.process.kill()
            self.process.wait(10)


def listening_socket(host: str, port: int) -> socket.socket:
    """The server socket all proxy processes accept on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


@contextmanager
def _metrics_directory() -> Iterator[str]:
    """PROMETHEUS_MULTIPROC_DIR for the children: the operator's, or a fresh one."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        yield given
        return
    made = tempfile.mkdtemp(prefix="switchover-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    try:
        yield made
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(made, ignore_errors=True)


class Supervisor:
    """Starts, watches, restarts and stops the processes of one `switchover serve`."""

    def __init__(
        self,
        settings: Settings,
        host: str,
        port: int,
        workers: int,
        parts: frozenset[str],
        log_level: str = "info",
        access_log: bool = False,
    ) -> None:
        self._settings = settings
        self._log_level = log_level
        self._access_log = access_log
        self._host = host
        self._port = port
        self._workers = workers
        self._parts = parts
        self._stop = threading.Event()
        self.exit_code = 0

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT (or a child's configuration error); the exit code."""
        from shadow.localqueue import LocalQueue

        embedded_workers = self._settings.embedded and PROXY in self._parts
        queue = LocalQueue(self._settings.local_queue_path) if embedded_workers else None
        if queue is not None:
            released = queue.release_orphans()
            if released:
                log.warning("%s jobs of a previous run's workers are back in the queue", released)
        sock = listening_socket(self._host, self._port)
        relay_sock, relay_args = None, []
        if queue is not None:
            from shadow.proxy.relay import listening_relay_socket, relay_address

            relay_name = relay_address(os.getpid())
            relay_sock = listening_relay_socket(relay_name)
            relay_args = ["--relay", relay_name]
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        with _metrics_directory() as metrics_dir:
            proxies = [
                Child(
                    f"proxy-{n}",
                    [
                        sys.executable,
                        "-m",
                        "shadow.supervisor",
                        "--fd",
                        str(sock.fileno()),
                        "--host",
                        self._host,
                        "--port",
                        str(self._port),
                        "--parts",
                        ",".join(sorted(self._parts)),
                        "--log-level",
                        self._log_level,
                        *(["--access-log"] if self._access_log else []),
                        *relay_args,
                    ],
                    pass_fds=(sock.fileno(),),
                )
                for n in range(self._workers)
            ]
            workers = [
                Child(
                    f"worker-{n}",
                    [sys.executable, "-m", "shadow.worker.embedded", "--index", str(n)],
                )
                for n in range(self._settings.embedded_worker_processes if queue else 0)
            ]
            relays = []
            if relay_sock is not None:
                fd = relay_sock.fileno()
                relay_argv = [sys.executable, "-m", "shadow.proxy.relay", "--fd", str(fd)]
                relays.append(Child("relay", relay_argv, pass_fds=(fd,)))
            for child in [*workers, *relays, *proxies]:
                child.start()
            try:
                self._watch([*proxies, *relays, *workers], queue, metrics_dir)
            finally:
                self._stop_all(proxies, relays, workers, queue)
                sock.close()
                if relay_sock is not None:
                    relay_sock.close()
        return self.exit_code

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop.set()

    def _watch(self, children: list[Child], queue: Any, metrics_dir: str) -> None:
        from prometheus_client import multiprocess

        while not self._stop.wait(0.2):
            for child in children:
                if child.running():
                    continue
                if child.died_at is None:
                    assert child.process is not None
                    code = child.process.returncode
                    child.died_at = time.monotonic()
                    multiprocess.mark_process_dead(child.pid, metrics_dir)  # type: ignore[no-untyped-call]
                    if queue is not None and child.name.startswith("worker"):
                        queue.release_orphans([child.pid])
                    if code == CONFIG_ERROR:
                        log.error("%s found the configuration invalid; stopping", child.name)
                        self.exit_code = CONFIG_ERROR
                        return
                    log.warning(
                        "%s (pid %s) exited with %s; starting it again", child.name, child.pid, code
                    )
                elif time.monotonic() - child.died_at >= _RESTART_DELAY_S:
                    child.restarts += 1
                    child.start()

    def _stop_all(
        self, proxies: list[Child], relays: list[Child], workers: list[Child], queue: Any
    ) -> None:
        # in the order the jobs flow: each stage hands what it holds to the next before it ends
        for child in proxies:
            child.signal(signal.SIGTERM)
        for child in proxies:
            child.wait(_PROXY_STOP_S)
        for child in relays:
            child.signal(signal.SIGTERM)
            child.wait(_RELAY_STOP_S)
        for child in workers:
            child.signal(signal.SIGTERM)
        for child in workers:
            child.wait(_WORKER_STOP_S)
        if queue is not None:
            queue.release_orphans([child.pid for child in workers])
            queue.close()


def serve_proxy(
    fd: int,
    host: str,
    port: int,
    parts: frozenset[str],
    access_log: bool = False,
    relay: str | None = None,
) -> None:
    """One proxy process: the app on the supervisor's socket, until SIGTERM."""
    import uvicorn

    from shadow.app import create_app
    from shadow.config import ConfigError
    from shadow.serving import uvicorn_config

    settings = get_settings()
    try:
        app = create_app(
            settings, settings.load_config(), parts=parts, embedded_worker=False, relay=relay
        )
    except ConfigError as exc:
        sys.stderr.write(f"switchover: {exc}\n")
        raise SystemExit(CONFIG_ERROR) from None
    sock = socket.socket(fileno=fd)
    server = uvicorn.Server(uvicorn_config(app, host, port, access_log=access_log))
    threading.Thread(
        target=_stop_when_orphaned,
        args=(server, os.getppid()),
        name="switchover-watch",
        daemon=True,
    ).start()
    server.run(sockets=[sock])


def _stop_when_orphaned(server: Any, parent: int) -> None:
    """A proxy whose supervisor died (SIGKILL) shuts down gracefully instead of serving on."""
    while os.getppid() == parent:
        time.sleep(1.0)
    log.warning("the supervising `switchover serve` is gone; stopping")
    server.should_exit = True


def main(argv: list[str] | None = None) -> None:
    """Entry point of a proxy process started by the supervisor."""
    parser = argparse.ArgumentParser(prog="python -m shadow.supervisor")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parts", required=True)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument("--relay", help="the relay process's socket name (embedded mode)")
    args = parser.parse_args(argv)
    from shadow.startup import configure_logging

    configure_logging(args.log_level)
    serve_proxy(
        args.fd,
        args.host,
        args.port,
        frozenset(args.parts.split(",")),
        args.access_log,
        args.relay,
    )


if __name__ == "__main__":
    main()
