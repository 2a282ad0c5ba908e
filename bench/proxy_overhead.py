"""What the proxy adds to a request: client → simulator versus client → proxy → simulator.

Starts a zero-delay simulated upstream and proxies in front of it, each a `switchover serve`:
distributed ones that publish to Redis (forwarding only, sampling 25 %, mirroring 100 %; no
worker) and the embedded default (nothing configured: the local queue file, the relay process
that publishes the proxy's jobs to it, and the supervised worker processes) with mirroring
off and at 100 % to a slow candidate (200 ms) whose pairs the embedded worker really calls,
stores and scores. Each is driven with a closed loop of C
concurrent aiohttp clients from a separate process. Direct and proxied runs are
interleaved in the same run (direct, then each proxy, then the reverse order) and pooled, so
drift of the machine cancels out. Prints the added latency at p50/p99 next to the targets,
the embedded mode's mirroring on/off ratios, and writes everything to
bench/results/proxy_overhead.json. Each API path (Chat Completions, Responses, Anthropic
Messages) is measured in the same run, against the same simulator.

    .venv/bin/python bench/proxy_overhead.py [--requests N] [--quick] [--paths chat,messages]

Needs Redis on 127.0.0.1:6379 (the sampled proxy publishes to database 15, to a queue of its own
that is deleted at the end; no worker is started).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, astuple, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from shadow.serving import free_port
from shadow.simulator.prompts import load_prompts

HOST = "127.0.0.1"
BROKER_URL = "redis://127.0.0.1:6379/15"
TARGET_ADDED_P50_MS = 0.5
TARGET_ADDED_P99_MS = 2.0
RESULTS = Path(__file__).resolve().parent / "results" / "proxy_overhead.json"
OVERHEAD_HEADER = "x-switchover-overhead-ms"
# Variant name -> (sample_rate of its proxy's `default` use case, embedded mode).
VARIANTS = {
    "forward": (0.0, False),
    "sample25+publish": (0.25, False),
    "mirror100+redis": (1.0, False),
    "embedded-off": (0.0, True),
    "embedded100": (1.0, True),
}
SLOW_CANDIDATE_MS = 200
# The target: at concurrency 50, mirroring on adds at most this to the p99.
TARGET_MIRROR_P99_MS = 5.0


# The API paths measured, by name: the proxy and the simulator serve each under the same path.
PATHS = {
    "chat": "/v1/chat/completions",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
}


def request_body(path: str, stream: bool) -> bytes:
    """A small request of the path's API built from the first prompt of the bundled set."""
    item = load_prompts()[0]
    messages = [m.model_dump() for m in item.messages]
    if path == "responses":
        return orjson.dumps({"model": "sim-model", "input": messages, "stream": stream})
    if path == "messages":
        system = "".join(m["content"] for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] != "system"]
        body = {"model": "sim-model", "max_tokens": 256, "messages": turns, "stream": stream}
        return orjson.dumps({**body, "system": system} if system else body)
    return orjson.dumps({"model": "sim-model", "messages": messages, "stream": stream})


# ---------------------------------------------------------------- load generator (own process)


@dataclass
class Segment:
    """One measured closed-loop run against one target."""

    latencies_ms: list[float]
    overheads_ms: list[float]
    wall_s: float
    errors: int


async def _closed_loop(
    session: Any, url: str, body: bytes, concurrency: int, requests: int
) -> Segment:
    remaining = requests
    latencies: list[float] = []
    overheads: list[float] = []
    errors = 0
    headers = {"content-type": "application/json"}

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
                overhead = response.headers.get(OVERHEAD_HEADER)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                errors += 1
            if overhead is not None:
                overheads.append(float(overhead))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Segment(latencies, overheads, time.perf_counter() - started, errors)


async def _segment(url: str, body: bytes, concurrency: int, warmup: int, requests: int) -> Segment:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:
        await _closed_loop(session, url, body, concurrency, warmup)
        return await _closed_loop(session, url, body, concurrency, requests)


def _loadgen_main(conn: Connection) -> None:
    """Serve (url, body, concurrency, warmup, requests) commands until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        while (command := conn.recv()) is not None:
            # A plain tuple: pickled here, the class would be `__mp_main__.Segment`.
            conn.send(astuple(loop.run_until_complete(_segment(*command))))
    finally:
        loop.close()


class LoadGenerator:
    """The client side, in a process of its own so it does not share the GIL with anything."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_loadgen_main, args=(child,), daemon=True)
        self._process.start()
        child.close()

    @property
    def pid(self) -> int:
        """The process id of the load generator."""
        return int(self._process.pid or 0)

    def run(self, url: str, body: bytes, concurrency: int, warmup: int, requests: int) -> Segment:
        """Warm up, then measure `requests` requests with `concurrency` workers."""
        self._conn.send((url, body, concurrency, warmup, requests))
        return Segment(*self._conn.recv())

    def close(self) -> None:
        """Stop the process (politely, then not)."""
        if self._process.is_alive():
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._process.join(2)  # mid-run it only reads the None after its segment
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._conn.close()


# ---------------------------------------------------------------- servers


def _switchover() -> list[str]:
    script = Path(sys.executable).with_name("switchover")
    return [str(script)] if script.exists() else [sys.executable, "-m", "shadow.cli"]


@dataclass
class Child:
    """A server process started by the benchmark, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM to its processes (a serve's children too), then SIGKILL if they linger."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the process's output, for error messages."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _http_get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def _wait_ready(child: Child, url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        try:
            _http_get(url)
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(
        f"{child.name} did not answer {url} in {timeout_s:.0f} s:\n{child.log_tail()}"
    )


def _start(name: str, args: list[str], env: dict[str, str], workdir: Path) -> Child:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _switchover() + args,
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only the benchmark, which stops them
        )
    return Child(name, process, log)


def _config_yaml(upstream_port: int, candidate_port: int, sample_rate: float) -> str:
    return f"""\
upstreams:
  sim: {{base_url: "http://{HOST}:{upstream_port}/v1"}}
  slow: {{base_url: "http://{HOST}:{candidate_port}/v1"}}
use_cases:
  default:
    primary: {{upstream: sim, model: sim-model}}
    candidate: {{upstream: slow, model: sim-model}}
    shadow: {{sample_rate: {sample_rate}, max_in_flight: 8, timeout_s: 60}}
"""


@dataclass
class Stack:
    """The running servers: base URLs of the simulator and of each proxy variant."""

    direct: str
    proxies: dict[str, str]
    queue: str
    pids: dict[str, int]  # "direct" (the simulator) and each variant -> process id


@contextmanager
def running_stack(workdir: Path) -> Iterator[Stack]:
    """Start the simulator and one proxy per variant; stop them all on the way out."""
    queue = f"bench.{secrets.token_hex(6)}"
    children: list[Child] = []
    try:
        sim_port = free_port(HOST)
        sim = _start(
            "simulator",
            ["simulate", "--host", HOST, "--port", str(sim_port), "--seed", "1"],
            dict(os.environ),
            workdir,
        )
        children.append(sim)
        slow_port = free_port(HOST)
        slow = _start(
            "slow-candidate",
            [
                "simulate",
                "--host",
                HOST,
                "--port",
                str(slow_port),
                "--seed",
                "2",
                "--latency-ms",
                str(SLOW_CANDIDATE_MS),
                "--latency-dist",
                "constant",
            ],
            dict(os.environ),
            workdir,
        )
        children.append(slow)
        proxies = {}
        proxy_children = []
        for variant, (sample_rate, embedded) in VARIANTS.items():
            slug = variant.split("+")[0]
            config = workdir / f"switchover-{slug}.yaml"
            config.write_text(_config_yaml(sim_port, slow_port, sample_rate))
            env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHOVER_")}
            env.update(
                SWITCHOVER_CONFIG=str(config),
                SWITCHOVER_DATABASE_URL=f"sqlite:///{workdir / f'{slug}.db'}",
            )
            if not embedded:
                env.update(SWITCHOVER_BROKER_URL=BROKER_URL, SWITCHOVER_QUEUE=f"{queue}.{slug}")
            port = free_port(HOST)
            child = _start(
                f"proxy-{slug}", ["serve", "--host", HOST, "--port", str(port)], env, workdir
            )
            children.append(child)
            proxy_children.append(child)
            proxies[variant] = f"http://{HOST}:{port}"
        _wait_ready(sim, f"http://{HOST}:{sim_port}/v1/models")
        _wait_ready(slow, f"http://{HOST}:{slow_port}/v1/models")
        for child, url in zip(proxy_children, proxies.values(), strict=True):
            # /readyz: the embedded proxies' worker processes are consuming too
            _wait_ready(child, f"{url}/readyz", timeout_s=300)
        pids = {"direct": sim.process.pid}
        pids.update(zip(proxies, (c.process.pid for c in proxy_children), strict=True))
        yield Stack(f"http://{HOST}:{sim_port}", proxies, queue, pids)
    finally:
        for child in reversed(children):
            child.stop()
        _delete_queue(queue)


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2, socket_timeout=5)


def _queued(queue: str) -> int:
    client = _redis()
    try:
        return int(client.llen(queue))
    finally:
        client.close()


def _delete_queue(queue: str) -> None:
    """Remove every Redis key of the benchmark's queue (its lists and kombu's bindings)."""
    try:
        client = _redis()
        keys = list(client.scan_iter(match=f"*{queue}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    except Exception as exc:
        print(f"warning: could not delete the Redis queue {queue}: {exc}", file=sys.stderr)


def _metric(base_url: str, name: str) -> float:
    """Sum of a Prometheus metric over its label sets, read from the proxy's /metrics."""
    total = 0.0
    for line in _http_get(f"{base_url}/metrics", timeout=5).decode().splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def _own_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found += [child, *_descendants(child)]
    return found


def cpu_seconds(pid: int, role: str | None = None) -> float:
    """User + system CPU time a process and its children have used so far (Linux /proc).

    `role="proxy"`: only a `switchover serve`'s proxy processes (not its supervisor or its
    embedded workers), the CPU a request costs on the hot path; `role="relay"`: its relay
    process, which publishes the proxies' shadow jobs (embedded mode).
    """
    pids = [pid, *_descendants(pid)]
    if role == "proxy":
        pids = [p for p in pids if b"shadow.supervisor" in _cmdline(p)]
    elif role == "relay":
        pids = [p for p in pids if b"shadow.proxy.relay" in _cmdline(p)]
    return sum(_own_cpu_seconds(p) for p in pids)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (or stolen by the hypervisor), all cores."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _wait_drained(base_url: str, timeout_s: float = 30.0) -> None:
    """Wait until the proxy's publisher has emptied its buffer, so it costs the next run nothing."""
    deadline = time.monotonic() + timeout_s
    while _metric(base_url, "switchover_shadow_buffered") > 0 and time.monotonic() < deadline:
        time.sleep(0.05)


# ---------------------------------------------------------------- measuring and reporting


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Pool:
    """Segments of one target pooled over the rounds."""

    latencies_ms: list[float] = field(default_factory=list)
    overheads_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: int = 0
    # CPU of the server under test (simulator for direct, else the proxy), warm-up included
    cpu_s: float = 0.0
    relay_cpu_s: float = 0.0
    served: int = 0

    def add(self, segment: Segment, cpu_s: float, served: int, relay_cpu_s: float = 0.0) -> None:
        self.latencies_ms += segment.latencies_ms
        self.overheads_ms += segment.overheads_ms
        self.wall_s += segment.wall_s
        self.errors += segment.errors
        self.cpu_s += cpu_s
        self.relay_cpu_s += relay_cpu_s
        self.served += served

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.wall_s if self.wall_s else math.nan

    @property
    def cpu_us(self) -> float:
        """Server CPU per request, in microseconds."""
        return self.cpu_s / self.served * 1e6 if self.served else math.nan

    @property
    def relay_cpu_us(self) -> float:
        """The relay process's CPU per request (embedded mode), in microseconds."""
        return self.relay_cpu_s / self.served * 1e6 if self.served else math.nan


@dataclass
class Row:
    """One line of the table."""

    concurrency: int
    stream: bool
    variant: str
    path: str
    requests: int
    direct_p50_ms: float
    direct_p99_ms: float
    proxy_p50_ms: float
    proxy_p99_ms: float
    added_p50_ms: float
    added_p99_ms: float
    direct_rps: float
    proxy_rps: float
    rps_ratio: float
    overhead_header_p50_ms: float
    overhead_header_p99_ms: float
    simulator_cpu_us_per_request: float
    proxy_cpu_us_per_request: float
    relay_cpu_us_per_request: float
    other_processes_cpu_pct: float
    errors: int


def _row(
    concurrency: int,
    stream: bool,
    variant: str,
    path: str,
    direct: Pool,
    proxy: Pool,
    other_pct: float,
) -> Row:
    d50, d99 = percentile(direct.latencies_ms, 50), percentile(direct.latencies_ms, 99)
    p50, p99 = percentile(proxy.latencies_ms, 50), percentile(proxy.latencies_ms, 99)
    return Row(
        concurrency=concurrency,
        stream=stream,
        variant=variant,
        path=path,
        requests=len(proxy.latencies_ms),
        direct_p50_ms=d50,
        direct_p99_ms=d99,
        proxy_p50_ms=p50,
        proxy_p99_ms=p99,
        added_p50_ms=p50 - d50,
        added_p99_ms=p99 - d99,
        direct_rps=direct.rps,
        proxy_rps=proxy.rps,
        rps_ratio=proxy.rps / direct.rps,
        overhead_header_p50_ms=percentile(proxy.overheads_ms, 50),
        overhead_header_p99_ms=percentile(proxy.overheads_ms, 99),
        simulator_cpu_us_per_request=direct.cpu_us,
        proxy_cpu_us_per_request=proxy.cpu_us,
        relay_cpu_us_per_request=proxy.relay_cpu_us,
        other_processes_cpu_pct=other_pct,
        errors=direct.errors + proxy.errors,
    )


def measure_cell(
    loadgen: LoadGenerator,
    stack: Stack,
    concurrency: int,
    stream: bool,
    requests: int,
    rounds: int,
    warmup: int,
    path: str = "chat",
) -> list[Row]:
    """Direct and every proxy variant, interleaved over `rounds` (order reversed each round)."""
    body = request_body(path, stream)
    targets = {"direct": stack.direct, **stack.proxies}
    pools = {name: Pool() for name in targets}
    per_round = max(1, requests // rounds)
    order = list(targets)
    ours = [*stack.pids.values(), loadgen.pid, os.getpid()]
    busy_before, wall_before = machine_busy_seconds(), time.monotonic()
    ours_before = sum(cpu_seconds(pid) for pid in ours)
    for round_ in range(rounds):
        for name in order if round_ % 2 == 0 else reversed(order):
            url = targets[name] + PATHS[path]
            role = None if name == "direct" else "proxy"
            cpu_before = cpu_seconds(stack.pids[name], role)
            relay_before = cpu_seconds(stack.pids[name], "relay") if role else 0.0
            segment = loadgen.run(url, body, concurrency, warmup, per_round)
            cpu_s = cpu_seconds(stack.pids[name], role) - cpu_before
            relay_s = cpu_seconds(stack.pids[name], "relay") - relay_before if role else 0.0
            pools[name].add(segment, cpu_s, warmup + per_round, relay_s)
            if name in VARIANTS and VARIANTS[name][0]:
                _wait_drained(targets[name])
    ours_s = sum(cpu_seconds(pid) for pid in ours) - ours_before
    other_s = machine_busy_seconds() - busy_before - ours_s
    other_pct = 100 * other_s / ((time.monotonic() - wall_before) * (os.cpu_count() or 1))
    return [
        _row(concurrency, stream, name, path, pools["direct"], pools[name], max(0.0, other_pct))
        for name in stack.proxies
    ]


def _mark(value: float, target: float) -> str:
    return "ok" if value <= target else "OVER"


NOTES = """
latency: time to the last byte, client side; added: proxy - direct; ratio: proxy rps / direct rps
hdr overhead: the proxy's own x-switchover-overhead-ms header
cpu us/req: CPU time of the simulator (direct runs), of the proxy process and of the relay
process (embedded: it publishes the proxy's shadow jobs) per request
other cpu %: share of the machine used by processes outside the benchmark (skews the figures)
At concurrency 50 and 200 the closed loop saturates the proxy, so the added latency there is
mostly queueing: concurrency / proxy rps - concurrency / direct rps."""


def print_table(rows: list[Row]) -> None:
    """The results, one line per concurrency, stream and variant."""
    print(
        f"\ntargets: added latency ≤ {TARGET_ADDED_P50_MS} ms at p50, "
        f"≤ {TARGET_ADDED_P99_MS} ms at p99 (not asserted)\n"
    )
    groups = (
        f"{'':39}|{'direct ms':^16}|{'proxy ms':^16}|{'added ms':^26}|{'throughput rps':^20}"
        f"|{'hdr overhead ms':^15}|{'cpu us/req':^20}|{'other':^6}|"
    )
    header = (
        f"{'conc':>4} {'path':<9} {'stream':>6} {'variant':<17}"
        f"|{'p50':>7} {'p99':>8}|{'p50':>7} {'p99':>8}"
        f"|{'p50':>7} {'(≤0.5)':<4} {'p99':>8} {'(≤2)':<4}|{'direct':>7} {'proxy':>6} {'ratio':>5}"
        f"|{'p50':>7} {'p99':>7}|{'sim':>6} {'proxy':>6} {'relay':>6}|{'cpu %':>6}| err"
    )
    print(groups)
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.concurrency:>4} {r.path:<9} {'yes' if r.stream else 'no':>6} {r.variant:<17}"
            f"|{r.direct_p50_ms:>7.3f} {r.direct_p99_ms:>8.3f}"
            f"|{r.proxy_p50_ms:>7.3f} {r.proxy_p99_ms:>8.3f}"
            f"|{r.added_p50_ms:>7.3f} {_mark(r.added_p50_ms, TARGET_ADDED_P50_MS):<6}"
            f" {r.added_p99_ms:>8.3f} {_mark(r.added_p99_ms, TARGET_ADDED_P99_MS):<4}"
            f"|{r.direct_rps:>7.0f} {r.proxy_rps:>6.0f} {r.rps_ratio:>5.2f}"
            f"|{r.overhead_header_p50_ms:>7.3f} {r.overhead_header_p99_ms:>7.3f}"
            f"|{r.simulator_cpu_us_per_request:>6.0f} {r.proxy_cpu_us_per_request:>6.0f}"
            f" {r.relay_cpu_us_per_request:>6.0f}"
            f"|{r.other_processes_cpu_pct:>6.1f}"
            f"|{r.errors:>4}"
        )
    print(NOTES)


def print_mirroring(rows: list[Row]) -> list[dict[str, Any]]:
    """Embedded mode, mirroring at 100 % to a slow candidate against mirroring off."""
    by_key = {(r.concurrency, r.stream, r.variant): r for r in rows}
    print(
        f"\nembedded default, mirroring 100 % (candidate {SLOW_CANDIDATE_MS} ms) vs off;"
        f" target at c=1: added ≤ {TARGET_ADDED_P50_MS}/{TARGET_ADDED_P99_MS} ms p50/p99,"
        f" at c=50: p99 within {TARGET_MIRROR_P99_MS} ms of off"
    )
    print(
        f"{'conc':>4} {'stream':>6} | {'off p50':>8} {'on p50':>8} {'ratio':>6}"
        f" | {'off p99':>8} {'on p99':>8} {'ratio':>6} {'on-off':>8} | rps on/off"
    )
    summary = []
    for (concurrency, stream, variant), on in sorted(by_key.items()):
        off = by_key.get((concurrency, stream, "embedded-off"))
        if variant != "embedded100" or off is None:
            continue
        gap = on.proxy_p99_ms - off.proxy_p99_ms
        mark = ""
        if concurrency == 1:
            ok = on.added_p50_ms <= TARGET_ADDED_P50_MS and on.added_p99_ms <= TARGET_ADDED_P99_MS
            mark = "ok" if ok else "OVER"
        elif concurrency == 50:
            mark = _mark(gap, TARGET_MIRROR_P99_MS)
        print(
            f"{concurrency:>4} {'yes' if stream else 'no':>6}"
            f" | {off.proxy_p50_ms:>8.3f} {on.proxy_p50_ms:>8.3f}"
            f" {on.proxy_p50_ms / off.proxy_p50_ms:>6.2f}"
            f" | {off.proxy_p99_ms:>8.3f} {on.proxy_p99_ms:>8.3f}"
            f" {on.proxy_p99_ms / off.proxy_p99_ms:>6.2f} {gap:>+8.3f}"
            f" | {on.proxy_rps / off.proxy_rps:>5.2f} {mark}"
        )
        summary.append(
            {
                "concurrency": concurrency,
                "stream": stream,
                "off_p50_ms": off.proxy_p50_ms,
                "on_p50_ms": on.proxy_p50_ms,
                "off_p99_ms": off.proxy_p99_ms,
                "on_p99_ms": on.proxy_p99_ms,
                "p99_gap_ms": gap,
                "added_p50_ms": on.added_p50_ms,
                "added_p99_ms": on.added_p99_ms,
                "rps_ratio": on.proxy_rps / off.proxy_rps,
            }
        )
    return summary


def _stored_pairs(database: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(database) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM request_pairs").fetchone()[0])
    except sqlite3.Error:
        return -1


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="measured requests per target and cell, pooled over the rounds (default 10000)",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--concurrency",
        default="1,50,200",
        help="comma-separated concurrency levels (default 1,50,200)",
    )
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help=f"comma-separated API paths to measure (default {','.join(PATHS)})",
    )
    parser.add_argument(
        "--streams", default="no,yes", help="non-streamed and/or streamed requests: no,yes"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    return parser.parse_args()


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    """Run the benchmark, print the table, write the JSON."""
    args = _parse_args()
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    requests = args.requests or (300 if args.quick else 10_000)
    rounds = 1 if args.quick else 2
    levels = [int(c) for c in args.concurrency.split(",")]
    paths = [p for p in args.paths.split(",") if p]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        print(f"unknown path {unknown[0]!r}; choose from {', '.join(PATHS)}", file=sys.stderr)
        return 2
    streams = [value.strip() == "yes" for value in args.streams.split(",")]
    try:
        _redis().ping()
    except Exception as exc:
        print(f"Redis is needed at {BROKER_URL}: {exc}", file=sys.stderr)
        return 2

    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"note: load average {load_before:.2f} before starting; other work skews the figures")
    rows: list[Row] = []
    shadow: dict[str, float] = {}
    started = time.monotonic()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-proxy-")))
        servers = stack.enter_context(running_stack(workdir))
        loadgen = LoadGenerator()
        stack.callback(loadgen.close)
        for concurrency in levels:
            warmup = max(50 if args.quick else 200, 2 * concurrency)
            for path, stream in ((p, s) for p in paths for s in streams):
                cell = measure_cell(
                    loadgen, servers, concurrency, stream, requests, rounds, warmup, path
                )
                rows.extend(cell)
                for r in cell:
                    print(
                        f"  c={concurrency:<3} {path:<9} stream={stream!s:<5} {r.variant:<17}"
                        f" added p50 {r.added_p50_ms:+.3f} ms  p99 {r.added_p99_ms:+.3f} ms"
                        f"  ({time.monotonic() - started:.0f} s)",
                        flush=True,
                    )
        sampled = servers.proxies["sample25+publish"]
        embedded = servers.proxies["embedded100"]
        shadow = {
            "enqueued": _metric(sampled, "switchover_shadow_enqueued_total"),
            "dropped": _metric(sampled, "switchover_shadow_dropped_total"),
            "in_redis_queue": _queued(f"{servers.queue}.sample25"),
            "embedded_enqueued": _metric(embedded, "switchover_shadow_enqueued_total"),
            "embedded_dropped": _metric(embedded, "switchover_shadow_dropped_total"),
            "embedded_stored": _stored_pairs(workdir / "embedded100.db"),
        }

    print_table(rows)
    mirroring = print_mirroring(rows)
    print(
        f"embedded100: {shadow['embedded_enqueued']:.0f} jobs in the local queue,"
        f" {shadow['embedded_dropped']:.0f} dropped (queue full), "
        f"{shadow['embedded_stored']:.0f} pairs stored by its worker during the run"
    )
    print(
        f"\nsample25+publish: {shadow['enqueued']:.0f} jobs published to Redis"
        f" ({shadow['in_redis_queue']} found in the queue), {shadow['dropped']:.0f} dropped"
    )
    elapsed = time.monotonic() - started
    print(f"total {elapsed:.0f} s; 1-minute load average {load_before:.2f} before the run")
    result = {
        "benchmark": "proxy_overhead",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": load_before,
        },
        "settings": {
            "requests_per_target_and_cell": requests,
            "rounds": rounds,
            "concurrency": levels,
            "variants": VARIANTS,
            "paths": paths,
            "upstream": "switchover simulate (zero delay)",
            "broker": BROKER_URL,
        },
        "targets_ms": {"added_p50": TARGET_ADDED_P50_MS, "added_p99": TARGET_ADDED_P99_MS},
        "rows": [asdict(r) for r in rows],
        "embedded_mirroring": mirroring,
        "shadow_jobs": shadow,
        "elapsed_s": round(elapsed, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
