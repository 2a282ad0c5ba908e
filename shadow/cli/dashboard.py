"""Running the Streamlit readiness dashboard (`dashboard/app.py`) as a child process.

The dashboard reads the service over HTTP only, so `shadow` starts it as a separate program
with the service's URL and a viewer token in its environment, and never imports it.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO

import httpx

DEFAULT_PORT = 8501
HEALTH_PATH = "/_stcore/health"


class DashboardError(Exception):
    """The dashboard could not be started."""


def app_path() -> Path:
    """The dashboard's Streamlit script, wherever the package is installed."""
    spec = importlib.util.find_spec("dashboard")
    if spec is None or spec.origin is None:
        raise DashboardError("the `dashboard` package is not installed next to `shadow`")
    return Path(spec.origin).parent / "app.py"


def streamlit_command(port: int, host: str) -> list[str]:
    """`python -m streamlit run dashboard/app.py`, headless and without telemetry or reloads."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path()),
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={port}",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--theme.base=light",
        "--client.toolbarMode=viewer",
    ]


# What Streamlit and an HTTP client need from the environment; nothing else is passed on, so the
# dashboard never holds the service's database URL, broker URL or upstream API keys.
_PASSED_ON = frozenset(
    {"PATH", "HOME", "USER", "LANG", "TZ", "TMPDIR", "TEMP", "TMP", "VIRTUAL_ENV", "SYSTEMROOT"}
    | {"SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}
)
_PASSED_ON_PREFIXES = ("LC_", "STREAMLIT_", "PYTHON")


def dashboard_environment(url: str, token: str) -> dict[str, str]:
    """A minimal environment for the dashboard: the service URL, its viewer token, locale, paths."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if name in _PASSED_ON or name.startswith(_PASSED_ON_PREFIXES)
    }
    return {**kept, "SWITCHOVER_URL": url.rstrip("/"), "SWITCHOVER_TOKEN": token}


def port_or_free(preferred: int, host: str = "127.0.0.1") -> int:
    """`preferred` when nothing listens on it, else any free port."""
    with socket.socket() as sock:
        try:
            sock.bind((host, preferred))
            return preferred
        except OSError:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])


def run_foreground(url: str, token: str, port: int, host: str) -> int:
    """Serve the dashboard until Ctrl-C or SIGTERM; returns Streamlit's exit code."""
    process = subprocess.Popen(streamlit_command(port, host), env=dashboard_environment(url, token))

    def stop(_signum: int, _frame: FrameType | None) -> None:
        process.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return process.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached Streamlit too (same process group); give it a moment to stop.
        try:
            return process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class DashboardServer:
    """The dashboard in the background, for the demo: started, checked healthy, stopped."""

    def __init__(
        self,
        url: str,
        token: str,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        log: IO[bytes] | None = None,
        startup_timeout_s: float = 90,
    ) -> None:
        self.url, self.token, self.port, self.host = url, token, port, host
        self._log = log
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """Where a browser reaches the dashboard."""
        return f"http://{self.host}:{self.port}"

    def alive(self) -> bool:
        """Streamlit is still running."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start Streamlit and wait until it answers its health check."""
        self._process = subprocess.Popen(
            streamlit_command(self.port, self.host),
            env=dashboard_environment(self.url, self.token),
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise DashboardError(f"Streamlit exited with code {self._process.returncode}")
            try:
                if httpx.get(self.address + HEALTH_PATH, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise DashboardError(f"the dashboard did not answer within {self._startup_timeout_s:.0f} s")

    def stop(self) -> None:
        """Stop Streamlit (its whole process group)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> DashboardServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def wait_until_stopped(server: DashboardServer) -> None:
    """Block until Ctrl-C or SIGTERM (or Streamlit exits on its own)."""
    stopped = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while server.alive() and not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def serve_for_demo(
    service_url: str,
    database_url: str,
    port: int,
    echo: Callable[[str], None],
    token: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard over the demo's service until Ctrl-C, with a viewer token.

    `token` is the viewer token to read with (a new one when None); `announce` gets the
    dashboard's address once it is up, before the wait.
    """
    from criteria.access.auth import create_token
    from storage.db import get_engine, session_scope

    if token is None:
        with session_scope(get_engine(database_url)) as session:
            token = create_token(session, "viewer", "demo dashboard")
    server = DashboardServer(service_url, token, port=port_or_free(port))
    try:
        server.start()
    except DashboardError as exc:
        echo(f"the readiness dashboard could not start: {exc}")
        return
    try:
        if announce is not None:
            announce(server.address)
        echo(f"Readiness dashboard: {server.address}  (Ctrl-C stops the demo)")
        wait_until_stopped(server)
    finally:
        server.stop()
