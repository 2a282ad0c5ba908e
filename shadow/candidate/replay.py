"""`switchover replay`: how much traffic the candidate carries within the latency SLO.

Captured requests of a use case are sent to the candidate again with their real inter-arrival
pattern — bursts and lulls kept, the whole pattern compressed in time to reach a target rate —
at increasing rates: doubling until the SLO breaks, then bisecting between the last rate that
held and the first that did not. `capacity.rps_at_slo` is the highest achieved rate at which
the latency quantile and the error rate stayed within their limits.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

import aiohttp
import numpy as np
import orjson

from shadow.apis.families import OPENAI, Api, auth_headers
from shadow.apis.translate import Untranslatable, for_candidate
from shadow.config import SwitchoverConfig, Upstream
from shadow.jobs import ENDPOINT_PATHS
from shadow.worker.wire import InvalidAnswer, read_answer

# The share of the offered rate the candidate must achieve for a step to count as held.
KEEP_PACE = 0.8
# The longest a rate step may be planned to last when halving for a rate that holds.
MAX_STEP_S = 600.0


class NothingToReplay(ValueError):
    """No captured request can be sent in a form the candidate serves."""


@dataclass(frozen=True)
class Captured:
    """One captured request and when it arrived, in seconds from the first."""

    offset_s: float
    endpoint: str
    stream: bool
    body: dict[str, Any]


@dataclass(frozen=True)
class Slo:
    """What must hold at a rate: the q-quantile of latency and the error rate."""

    quantile: float
    latency_ms: float
    error_limit: float


@dataclass
class StepResult:
    """What one rate step measured."""

    offered_rps: float
    achieved_rps: float
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    slo_latency_ms: float | None
    ttft_p50_ms: float | None
    held: bool
    stopped_early: bool
    send_offsets_s: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The stored form (without the send times)."""
        data = asdict(self)
        data.pop("send_offsets_s")
        return data


def captured_from_rows(rows: Sequence[tuple[datetime, str, bool, str]]) -> list[Captured]:
    """Captured requests from stored pairs (received at, endpoint, stream, body)."""
    if not rows:
        return []
    start = rows[0][0]
    return [
        Captured((at - start).total_seconds(), endpoint, stream, orjson.loads(body))
        for at, endpoint, stream, body in rows
    ]


def schedule(captured: Sequence[Captured], rate: float, count: int) -> list[tuple[float, Captured]]:
    """Send times for `count` requests at mean `rate`, keeping the captured gaps' shape.

    The captured gaps are scaled so their mean is 1/rate and cycled when more requests are
    needed than were captured; identical arrival times (a burst) stay a burst.
    """
    gaps = np.diff([c.offset_s for c in captured]) if len(captured) > 1 else np.array([])
    mean_gap = float(gaps.mean()) if gaps.size else 0.0
    if gaps.size == 0 or mean_gap <= 0:
        gaps = np.ones(max(len(captured) - 1, 1))
        mean_gap = 1.0
    scale = (1.0 / rate) / mean_gap
    times = [0.0]
    for i in range(1, count):
        times.append(times[-1] + float(gaps[(i - 1) % gaps.size]) * scale)
    return [(times[i], captured[i % len(captured)]) for i in range(count)]


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def in_candidate_form(
    captured: Sequence[Captured], forms: Sequence[str] | None
) -> tuple[list[Captured], int]:
    """The captured requests as the candidate serving `forms` gets them, as the worker sends
    them (`shadow.apis.translate.for_candidate`); and how many cannot be translated faithfully
    (left out, as live mirroring leaves them out). `forms` None: every request as it came."""
    if forms is None:
        return list(captured), 0
    ready: list[Captured] = []
    for request in captured:
        try:
            endpoint, body = for_candidate(request.endpoint, request.body, forms)
        except Untranslatable:
            continue
        ready.append(replace(request, endpoint=endpoint, body=body))
    return ready, len(captured) - len(ready)


async def _one(
    session: aiohttp.ClientSession,
    url_base: str,
    model: str,
    request: Captured,
    timeout_s: float,
) -> tuple[float, float | None, bool]:
    """(latency ms, ttft ms, error) of one replayed request."""
    body = dict(request.body)
    body["model"] = model
    started = time.perf_counter()
    first_byte: float | None = None
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(
                url_base + ENDPOINT_PATHS[request.endpoint], data=orjson.dumps(body)
            ) as response:
                raw = bytearray()
                arrivals: list[tuple[int, float]] = []
                async for chunk in response.content.iter_any():
                    now = time.perf_counter() - started
                    first_byte = first_byte if first_byte is not None else now
                    raw += chunk
                    arrivals.append((len(raw), now))
                latency = (time.perf_counter() - started) * 1000
                if response.status >= 400:
                    return latency, None, True
                _, ttft = read_answer(
                    bytes(raw),
                    stream=request.stream,
                    latency_ms=latency,
                    arrivals=arrivals,
                    form=request.endpoint,
                )
                return latency, ttft, False
    except TimeoutError:
        return timeout_s * 1000, None, True
    except (aiohttp.ClientError, InvalidAnswer):
        return (time.perf_counter() - started) * 1000, None, True


async def run_step(
    session: aiohttp.ClientSession,
    url_base: str,
    model: str,
    plan: Sequence[tuple[float, Captured]],
    slo: Slo,
    timeout_s: float,
    on_done: Callable[[], None] | None = None,
) -> StepResult:
    """Send the planned requests on time; stop early once the SLO is clearly broken."""
    results: list[tuple[float, float | None, bool]] = []
    sent: list[float] = []
    broken = asyncio.Event()
    rate = (len(plan) - 1) / plan[-1][0] if len(plan) > 1 and plan[-1][0] > 0 else float(len(plan))

    async def send(request: Captured) -> None:
        outcome = await _one(session, url_base, model, request, timeout_s)
        results.append(outcome)
        if on_done:
            on_done()
        done = len(results)
        if done >= 20:
            latencies = [r[0] for r in results]
            errors = sum(r[2] for r in results) / done
            over = sum(1 for value in latencies if value > 3 * slo.latency_ms) / done
            # "clearly broken": far more than the allowed tail is three times over the SLO
            if over > 3 * (1 - slo.quantile) or errors > max(3 * slo.error_limit, 0.2):
                broken.set()

    started = time.perf_counter()
    tasks = []
    for at, request in plan:
        delay = at - (time.perf_counter() - started)
        if delay > 0:
            try:
                await asyncio.wait_for(broken.wait(), delay)
            except TimeoutError:
                pass
        if broken.is_set():
            break
        sent.append(time.perf_counter() - started)
        tasks.append(asyncio.create_task(send(request)))
    if broken.is_set():
        for task in tasks:
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter() - started
    latencies = [r[0] for r in results]
    errors = sum(1 for r in results if r[2])
    slo_value = _quantile(latencies, slo.quantile)
    achieved = len(results) / elapsed if elapsed > 0 else 0.0
    held = (
        not broken.is_set()
        and bool(results)
        and slo_value is not None
        and slo_value <= slo.latency_ms
        and errors / len(results) <= slo.error_limit
        # A short step can meet the SLO as one burst without sustaining the rate; a rate is
        # held only when the candidate kept pace with it (the last answers' time aside).
        and achieved >= KEEP_PACE * rate
    )
    ttfts = [r[1] for r in results if r[1] is not None]
    return StepResult(
        offered_rps=rate,
        achieved_rps=achieved,
        requests=len(results),
        errors=errors,
        p50_ms=_quantile(latencies, 0.5),
        p95_ms=_quantile(latencies, 0.95),
        p99_ms=_quantile(latencies, 0.99),
        slo_latency_ms=slo_value,
        ttft_p50_ms=_quantile(ttfts, 0.5),
        held=held,
        stopped_early=broken.is_set(),
        send_offsets_s=sent,
    )


@dataclass
class ReplayResult:
    """All steps and the capacity found."""

    steps: list[StepResult]
    rps_at_slo: float | None


async def find_capacity(
    captured: Sequence[Captured],
    url_base: str,
    model: str,
    api_key: str | None,
    slo: Slo,
    *,
    start_rps: float,
    rates: Sequence[float] | None = None,
    requests_per_step: int = 100,
    max_steps: int = 12,
    refine: int = 3,
    timeout_s: float = 60,
    on_step: Callable[[float], Callable[[], None]] | None = None,
    api: Api = OPENAI,
    min_rps: float | None = None,
) -> ReplayResult:
    """Run rate steps (the given ones, or doubling/halving then bisection); report the capacity.

    `captured` is in the form the candidate serves (`in_candidate_form`), `url_base` its API
    root (`Upstream.url("")`), `api` its family (for the key's headers).
    Halving stops below `min_rps` (default: a step's requests in at most 10 minutes), so a
    candidate that holds no rate ends as "not reached" in bounded time.
    """
    headers = {"content-type": "application/json", **auth_headers(api, api_key)}
    floor = min_rps if min_rps is not None else requests_per_step / MAX_STEP_S
    steps: list[StepResult] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def step(rate: float) -> StepResult:
            tick = on_step(rate) if on_step else None
            plan = schedule(captured, rate, requests_per_step)
            result = await run_step(session, url_base, model, plan, slo, timeout_s, tick)
            steps.append(result)
            return result

        if rates:
            for rate in rates:
                await step(rate)
        else:
            low: float | None = None
            high: float | None = None
            rate = start_rps
            # Double while the rate holds; if even the first one breaks, halve until one holds.
            for _ in range(max_steps):
                if (await step(rate)).held:
                    low = rate
                    if high is not None:
                        break
                    rate *= 2
                else:
                    high = rate
                    if low is not None or rate / 2 < floor:
                        break
                    rate /= 2
            if low is not None and high is not None:
                for _ in range(refine):
                    middle = (low + high) / 2
                    if (await step(middle)).held:
                        low = middle
                    else:
                        high = middle
    held = [s.achieved_rps for s in steps if s.held]
    return ReplayResult(steps, max(held) if held else None)


def slo_from_criteria(criteria_text: str | None) -> Slo | None:
    """The latency SLO and error limit written in a use case's criteria, if any."""
    if criteria_text is None:
        return None
    from criteria.readiness.schema import parse_criteria

    parsed = parse_criteria(criteria_text)
    latency = next(
        (
            c
            for c in parsed.criteria
            if c.metric == "candidate.latency_ms" and c.stat == "quantile" and c.mode == "absolute"
        ),
        None,
    )
    errors = next((c for c in parsed.criteria if c.metric == "candidate.error"), None)
    if latency is None or latency.q is None or latency.threshold is None:
        return None
    limit = errors.threshold if errors is not None and errors.threshold is not None else 0.01
    return Slo(latency.q, latency.threshold, limit)


def candidate_target(
    config: SwitchoverConfig, use_case: str, candidate: str | None = None
) -> tuple[Upstream, str]:
    """The upstream and model of a use case's candidate (None: the lead one)."""
    configured = config.use_cases[use_case]
    target = configured.targets[candidate or configured.lead]
    return config.upstreams[target.upstream], target.model


def store_run(
    use_case: str,
    target: str,
    slo: Slo,
    result: ReplayResult,
    started_at: datetime,
    finished_at: datetime,
    candidate: str = "default",
) -> int:
    """Store the run of one candidate; returns its id."""
    from storage.db import session_scope
    from storage.models import CapacityRun
    from storage.repository import add_capacity_run

    with session_scope() as session:
        run = add_capacity_run(
            session,
            CapacityRun(
                use_case=use_case,
                candidate=candidate,
                started_at=started_at,
                finished_at=finished_at,
                target=target,
                slo_quantile=slo.quantile,
                slo_ms=slo.latency_ms,
                error_limit=slo.error_limit,
                rps_at_slo=result.rps_at_slo,
                steps=[step.as_dict() for step in result.steps],
            ),
        )
        return run.id


def load_captured(use_case: str, limit: int) -> list[Captured]:
    """The newest `limit` captured requests of a use case, oldest first."""
    from storage.db import session_scope
    from storage.repository import captured_requests

    with session_scope() as session:
        return captured_from_rows(captured_requests(session, use_case, limit))


def observed_peak_rps(captured: Sequence[Captured], sample_rate: float) -> float:
    """The busiest 10 s of the captured (sampled) traffic, scaled to all traffic."""
    if len(captured) < 2:
        return 1.0
    offsets = np.array([c.offset_s for c in captured])
    window = min(10.0, float(offsets[-1] - offsets[0]) or 1.0)
    counts = np.searchsorted(offsets, offsets + window, side="right") - np.arange(len(offsets))
    return max(float(counts.max()) / window / max(sample_rate, 1e-9), 0.1)


def replay_use_case(
    config: SwitchoverConfig,
    use_case: str,
    slo: Slo,
    captured: Sequence[Captured],
    sample_rate: float,
    *,
    rates: Sequence[float] | None = None,
    requests_per_step: int = 100,
    refine: int = 3,
    timeout_s: float = 60,
    on_step: Callable[[float], Callable[[], None]] | None = None,
    candidate: str | None = None,
) -> tuple[ReplayResult, int]:
    """Replay a use case's captured traffic to a candidate (None: the lead) and store the run."""
    from datetime import UTC, datetime

    name = candidate or config.use_cases[use_case].lead
    upstream, model = candidate_target(config, use_case, name)
    url = upstream.url("")  # its API root: the endpoint paths go under it
    ready, _ = in_candidate_form(captured, upstream.forms)
    if not ready:
        raise NothingToReplay(
            f"none of {use_case}'s {len(captured)} captured requests can be sent to {name} "
            f"in a form it serves ({', '.join(upstream.forms)})"
        )
    started = datetime.now(UTC)
    result = asyncio.run(
        find_capacity(
            ready,
            url,
            model,
            upstream.api_key(),
            slo,
            start_rps=observed_peak_rps(captured, sample_rate),
            rates=rates,
            requests_per_step=requests_per_step,
            refine=refine,
            timeout_s=timeout_s,
            on_step=on_step,
            api=upstream.api,
        )
    )
    run_id = store_run(
        use_case, f"{url} {model}", slo, result, started, datetime.now(UTC), candidate=name
    )
    return result, run_id
