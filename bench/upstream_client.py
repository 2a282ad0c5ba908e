"""The hot path's upstream client against the aiohttp session it replaced, in one run.

Both call the same zero-delay simulated upstream (`switchover simulate`, its own process) from
this process's uvloop event loop with the proxy's settings: the lean client of
`shadow/proxy/upstream.py`, and an aiohttp `ClientSession` configured as `shadow/app.py`
configures its sessions (the client the primary's non-streamed calls used before). Rounds
alternate the order of the two, and the segments are pooled, so drift of the machine falls on
both alike. Prints, per concurrency, the latency of a call (p50 / p99) and this process's CPU
per call for each client, and the ratios lean / aiohttp; writes
bench/results/upstream_client.json.

    .venv/bin/python bench/upstream_client.py [--calls N] [--rounds R] [--concurrency 1,50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson
import uvloop

from shadow.proxy.upstream import UpstreamPool
from shadow.serving import free_port
from shadow.simulator.prompts import load_prompts

HOST = "127.0.0.1"
RESULTS = Path(__file__).resolve().parent / "results" / "upstream_client.json"
HEADERS = {"accept-encoding": "identity", "content-type": "application/json"}

Call = Callable[[], Awaitable[bytes]]


def _body() -> bytes:
    item = load_prompts()[0]
    messages = [m.model_dump() for m in item.messages]
    return orjson.dumps({"model": "sim-model", "messages": messages, "stream": False})


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _segment(call: Call, calls: int, concurrency: int) -> tuple[list[float], float]:
    """`calls` calls from `concurrency` closed loops: each call's latency (ms), CPU s used."""
    remaining = calls
    latencies: list[float] = []

    async def loop() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            body = await call()
            latencies.append((time.perf_counter() - started) * 1000)
            assert body.startswith(b"{"), body[:100]

    cpu = time.process_time()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies, time.process_time() - cpu


async def _measure(url: str, calls: int, rounds: int, levels: list[int]) -> list[dict[str, float]]:
    body = _body()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    pool = UpstreamPool(url.rsplit("/v1", 1)[0] + "/v1", 10.0, 600.0, keepalive_s=60.0)

    async def via_aiohttp() -> bytes:
        async with session.post(url, data=body, headers=HEADERS) as response:
            return await response.read()

    async def via_lean() -> bytes:
        return await (await pool.post(url, body, HEADERS)).read()

    clients: dict[str, Call] = {"aiohttp": via_aiohttp, "lean": via_lean}
    rows = []
    try:
        for concurrency in levels:
            for call in clients.values():  # warm: connections open, code paths hot
                await _segment(call, 200, concurrency)
            latencies: dict[str, list[float]] = {name: [] for name in clients}
            cpu: dict[str, float] = dict.fromkeys(clients, 0.0)
            for number in range(rounds):
                order = list(clients) if number % 2 == 0 else list(reversed(clients))
                for name in order:
                    measured, used = await _segment(clients[name], calls, concurrency)
                    latencies[name] += measured
                    cpu[name] += used
            row: dict[str, float] = {"concurrency": concurrency, "calls": calls * rounds}
            for name in clients:
                row[f"{name}_p50_ms"] = _quantile(latencies[name], 0.5)
                row[f"{name}_p99_ms"] = _quantile(latencies[name], 0.99)
                row[f"{name}_cpu_us_per_call"] = cpu[name] / (calls * rounds) * 1e6
            for key in ("p50_ms", "p99_ms", "cpu_us_per_call"):
                row[f"ratio_{key}"] = row[f"lean_{key}"] / row[f"aiohttp_{key}"]
            rows.append(row)
    finally:
        await session.close()
        await pool.close()
    return rows


def _switchover() -> list[str]:
    script = Path(sys.executable).with_name("switchover")
    return [str(script)] if script.exists() else [sys.executable, "-m", "shadow.cli"]


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the simulator exited ({process.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"the simulator did not answer {url} in {timeout_s:g} s") from None
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per client and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", default="1,50")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]
    port = free_port(HOST)
    with tempfile.TemporaryDirectory() as workdir, open(Path(workdir) / "sim.log", "wb") as log:
        simulator = subprocess.Popen(
            [*_switchover(), "simulate", "--host", HOST, "--port", str(port), "--seed", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        try:
            _wait_ready(f"http://{HOST}:{port}/v1/models", simulator)
            load_before = os.getloadavg()[0]
            started = time.monotonic()
            url = f"http://{HOST}:{port}/v1/chat/completions"
            rows = uvloop.run(_measure(url, args.calls, args.rounds, levels))
            elapsed = time.monotonic() - started
        finally:
            simulator.terminate()
            simulator.wait(30)
    print(f"lean upstream client vs aiohttp, same simulator, same loop ({elapsed:.0f} s; "
          f"1-minute load average {load_before:.2f} before)")  # fmt: skip
    print("conc |   aiohttp p50/p99 ms |      lean p50/p99 ms | CPU µs/call aiohttp  lean | "
          "lean/aiohttp p50  p99  CPU")  # fmt: skip
    for row in rows:
        print(
            f"{row['concurrency']:4.0f} "
            f"| {row['aiohttp_p50_ms']:9.3f} {row['aiohttp_p99_ms']:9.3f} "
            f"| {row['lean_p50_ms']:9.3f} {row['lean_p99_ms']:9.3f} "
            f"| {row['aiohttp_cpu_us_per_call']:18.0f} {row['lean_cpu_us_per_call']:5.0f} "
            f"| {row['ratio_p50_ms']:16.2f} {row['ratio_p99_ms']:4.2f} "
            f"{row['ratio_cpu_us_per_call']:4.2f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "upstream_client",
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "load_average_before": load_before,
                "settings": {"calls": args.calls, "rounds": args.rounds, "concurrency": levels},
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
