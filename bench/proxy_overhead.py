"""What the proxy adds to a request: client → simulator versus client → proxy → simulator.

Starts a zero-delay simulated upstream and two proxies in front of it (one that only forwards,
one that samples 25% of the requests and publishes them to Redis), then drives each with a
closed loop of C concurrent aiohttp clients from a separate process. Direct and proxied runs are
interleaved in the same run (direct, forward, sampled, then the reverse order) and pooled, so
drift of the machine cancels out. Prints the added latency at p50/p99 next to the targets and
writes everything to bench/results/proxy_overhead.json.

    .venv/bin/python bench/proxy_overhead.py [--requests N] [--quick]

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
# Variant name -> sample_rate of its proxy's `default` use case.
VARIANTS = {"forward": 0.0, "sample25+publish": 0.25}


def chat_body(stream: bool) -> bytes:
    """A small chat request built from the first prompt of the bundled set."""
    item = load_prompts()[0]
    messages = [m.model_dump() for m in item.messages]
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
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
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


def _config_yaml(upstream_port: int, sample_rate: float) -> str:
    return f"""\
upstreams:
  sim: {{base_url: "http://{HOST}:{upstream_port}/v1"}}
use_cases:
  default:
    primary: {{upstream: sim, model: sim-model}}
    candidate: {{upstream: sim, model: sim-model}}
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
        proxies = {}
        for variant, sample_rate in VARIANTS.items():
            slug = variant.split("+")[0]
            config = workdir / f"switchover-{slug}.yaml"
            config.write_text(_config_yaml(sim_port, sample_rate))
            env = dict(os.environ)
            env.update(
                SWITCHOVER_CONFIG=str(config),
                SWITCHOVER_DATABASE_URL=f"sqlite:///{workdir / f'{slug}.db'}",
                SWITCHOVER_BROKER_URL=BROKER_URL,
                SWITCHOVER_QUEUE=queue,
            )
            port = free_port(HOST)
            child = _start(
                f"proxy-{slug}", ["serve", "--host", HOST, "--port", str(port)], env, workdir
            )
            children.append(child)
            proxies[variant] = f"http://{HOST}:{port}"
        _wait_ready(sim, f"http://{HOST}:{sim_port}/v1/models")
        for child, url in zip(children[1:], proxies.values(), strict=True):
            _wait_ready(child, f"{url}/healthz")
        pids = {"direct": sim.process.pid}
        pids.update(zip(proxies, (c.process.pid for c in children[1:]), strict=True))
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    served: int = 0

    def add(self, segment: Segment, cpu_s: float, served: int) -> None:
        self.latencies_ms += segment.latencies_ms
        self.overheads_ms += segment.overheads_ms
        self.wall_s += segment.wall_s
        self.errors += segment.errors
        self.cpu_s += cpu_s
        self.served += served

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.wall_s if self.wall_s else math.nan

    @property
    def cpu_us(self) -> float:
        """Server CPU per request, in microseconds."""
        return self.cpu_s / self.served * 1e6 if self.served else math.nan


@dataclass
class Row:
    """One line of the table."""

    concurrency: int
    stream: bool
    variant: str
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
    other_processes_cpu_pct: float
    errors: int


def _row(
    concurrency: int, stream: bool, variant: str, direct: Pool, proxy: Pool, other_pct: float
) -> Row:
    d50, d99 = percentile(direct.latencies_ms, 50), percentile(direct.latencies_ms, 99)
    p50, p99 = percentile(proxy.latencies_ms, 50), percentile(proxy.latencies_ms, 99)
    return Row(
        concurrency=concurrency,
        stream=stream,
        variant=variant,
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
) -> list[Row]:
    """Direct and every proxy variant, interleaved over `rounds` (order reversed each round)."""
    body = chat_body(stream)
    targets = {"direct": stack.direct, **stack.proxies}
    pools = {name: Pool() for name in targets}
    per_round = max(1, requests // rounds)
    order = list(targets)
    ours = [*stack.pids.values(), loadgen.pid, os.getpid()]
    busy_before, wall_before = machine_busy_seconds(), time.monotonic()
    ours_before = sum(cpu_seconds(pid) for pid in ours)
    for round_ in range(rounds):
        for name in order if round_ % 2 == 0 else reversed(order):
            url = f"{targets[name]}/v1/chat/completions"
            cpu_before = cpu_seconds(stack.pids[name])
            segment = loadgen.run(url, body, concurrency, warmup, per_round)
            cpu_s = cpu_seconds(stack.pids[name]) - cpu_before
            pools[name].add(segment, cpu_s, warmup + per_round)
            if VARIANTS.get(name):
                _wait_drained(targets[name])
    ours_s = sum(cpu_seconds(pid) for pid in ours) - ours_before
    other_s = machine_busy_seconds() - busy_before - ours_s
    other_pct = 100 * other_s / ((time.monotonic() - wall_before) * (os.cpu_count() or 1))
    return [
        _row(concurrency, stream, name, pools["direct"], pools[name], max(0.0, other_pct))
        for name in stack.proxies
    ]


def _mark(value: float, target: float) -> str:
    return "ok" if value <= target else "OVER"


NOTES = """
latency: time to the last byte, client side; added: proxy - direct; ratio: proxy rps / direct rps
hdr overhead: the proxy's own x-switchover-overhead-ms header
cpu us/req: CPU time of the simulator (direct runs) and of the proxy process per request
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
        f"{'':29}|{'direct ms':^16}|{'proxy ms':^16}|{'added ms':^26}|{'throughput rps':^20}"
        f"|{'hdr overhead ms':^15}|{'cpu us/req':^13}|{'other':^6}|"
    )
    header = (
        f"{'conc':>4} {'stream':>6} {'variant':<17}|{'p50':>7} {'p99':>8}|{'p50':>7} {'p99':>8}"
        f"|{'p50':>7} {'(≤0.5)':<4} {'p99':>8} {'(≤2)':<4}|{'direct':>7} {'proxy':>6} {'ratio':>5}"
        f"|{'p50':>7} {'p99':>7}|{'sim':>6} {'proxy':>6}|{'cpu %':>6}| err"
    )
    print(groups)
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.concurrency:>4} {'yes' if r.stream else 'no':>6} {r.variant:<17}"
            f"|{r.direct_p50_ms:>7.3f} {r.direct_p99_ms:>8.3f}"
            f"|{r.proxy_p50_ms:>7.3f} {r.proxy_p99_ms:>8.3f}"
            f"|{r.added_p50_ms:>7.3f} {_mark(r.added_p50_ms, TARGET_ADDED_P50_MS):<6}"
            f" {r.added_p99_ms:>8.3f} {_mark(r.added_p99_ms, TARGET_ADDED_P99_MS):<4}"
            f"|{r.direct_rps:>7.0f} {r.proxy_rps:>6.0f} {r.rps_ratio:>5.2f}"
            f"|{r.overhead_header_p50_ms:>7.3f} {r.overhead_header_p99_ms:>7.3f}"
            f"|{r.simulator_cpu_us_per_request:>6.0f} {r.proxy_cpu_us_per_request:>6.0f}"
            f"|{r.other_processes_cpu_pct:>6.1f}"
            f"|{r.errors:>4}"
        )
    print(NOTES)


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
            for stream in (False, True):
                cell = measure_cell(loadgen, servers, concurrency, stream, requests, rounds, warmup)
                rows.extend(cell)
                for r in cell:
                    print(
                        f"  c={concurrency:<3} stream={stream!s:<5} {r.variant:<17}"
                        f" added p50 {r.added_p50_ms:+.3f} ms  p99 {r.added_p99_ms:+.3f} ms"
                        f"  ({time.monotonic() - started:.0f} s)",
                        flush=True,
                    )
        sampled = servers.proxies["sample25+publish"]
        shadow = {
            "enqueued": _metric(sampled, "switchover_shadow_enqueued_total"),
            "dropped": _metric(sampled, "switchover_shadow_dropped_total"),
            "in_redis_queue": _queued(servers.queue),
        }

    print_table(rows)
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
            "upstream": "switchover simulate (zero delay)",
            "broker": BROKER_URL,
        },
        "targets_ms": {"added_p50": TARGET_ADDED_P50_MS, "added_p99": TARGET_ADDED_P99_MS},
        "rows": [asdict(r) for r in rows],
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
