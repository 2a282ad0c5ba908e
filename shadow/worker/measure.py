"""Turning a shadow job into a stored pair: replay to the candidate, re-ask the primary."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from evaluators.pair import Deployment
from evaluators.runtime import configure
from shadow.config import SwitchoverConfig, Target, UseCase
from shadow.jobs import ENDPOINT_PATHS, CandidateCapture, PrimaryCapture, ShadowJob, unit_interval
from shadow.settings import Settings, get_settings
from shadow.worker.caller import answer_fields, call_upstream
from shadow.worker.limiter import Limiter, LocalLimiter, RedisLimiter
from shadow.worker.wire import InvalidAnswer, read_answer
from storage.schemas import AnswerFields, PairCreate

log = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    """What a worker process keeps between jobs: config, pooled HTTP client, limiter."""

    config: SwitchoverConfig
    client: httpx.Client
    limiter: Limiter
    slot_wait_s: float = 600.0


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> WorkerRuntime:
    """The runtime of this worker process, built from the settings on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            settings = get_settings()
            _runtime = build_runtime(settings, settings.load_config())
        return _runtime


def use_runtime(runtime: WorkerRuntime) -> None:
    """Make the in-process worker use `runtime` (embedded mode: the server's own config)."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime


def build_runtime(settings: Settings, config: SwitchoverConfig) -> WorkerRuntime:
    """A runtime for `config` (Redis limiter when a Redis is configured)."""
    redis_url = settings.limiter_redis_url
    limiter: Limiter = RedisLimiter(redis_url) if redis_url else LocalLimiter()
    client = httpx.Client(
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        follow_redirects=False,
    )
    return WorkerRuntime(config=config, client=client, limiter=limiter)


def captured_fields(capture: PrimaryCapture | CandidateCapture, stream: bool) -> AnswerFields:
    """An answer and its timings from what the proxy saw pass (or the failure it saw)."""
    if isinstance(capture, CandidateCapture) and capture.error_kind is not None:
        return AnswerFields(
            status_code=capture.status_code,
            latency_ms=capture.latency_ms,
            error=capture.error,
            error_kind=capture.error_kind,
        )
    status_code = capture.status_code or 200
    raw = capture.body.encode()
    try:
        answer, ttft_ms = read_answer(
            raw, stream=stream, latency_ms=capture.latency_ms, arrivals=capture.arrivals
        )
    except InvalidAnswer as exc:
        return AnswerFields(
            status_code=status_code,
            latency_ms=capture.latency_ms,
            error=str(exc),
            error_kind="invalid_response",
        )
    if ttft_ms is None:
        # no token seen in the stream: its first byte is the closest the proxy saw
        ttft_ms = capture.first_byte_ms
    return answer_fields(answer, status_code, capture.latency_ms, ttft_ms, stream)


def primary_fields(job: ShadowJob) -> AnswerFields:
    """The primary's answer and timings from what the proxy captured."""
    assert job.primary is not None
    return captured_fields(job.primary, job.stream)


def ask_primary(runtime: WorkerRuntime, use_case: UseCase, job: ShadowJob) -> AnswerFields:
    """The reverse shadow: ask the primary what the candidate answered live."""
    upstream = runtime.config.upstreams[use_case.primary.upstream]
    request = orjson.loads(job.request_body)
    body = _request_for(use_case.primary, request, job.stream)
    body["model"] = request.get("model", use_case.primary.model)
    return _call(runtime, use_case.primary, job.endpoint, body, upstream.timeout_s)


def _request_for(target: Target, request: dict[str, Any], stream: bool) -> dict[str, Any]:
    body = dict(request)
    body["model"] = target.model
    if stream:
        # The only addition to the client's request: usage at the end of the stream, so that
        # token counts are the server's own rather than a count of chunks.
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        body["stream_options"] = options
    return body


def _call(
    runtime: WorkerRuntime, target: Target, endpoint: str, body: dict[str, Any], timeout_s: float
) -> AnswerFields:
    upstream = runtime.config.upstreams[target.upstream]
    url = upstream.base_url.rstrip("/") + ENDPOINT_PATHS[endpoint]
    return call_upstream(runtime.client, url, body, api_key=upstream.api_key(), timeout_s=timeout_s)


def call_candidate(runtime: WorkerRuntime, use_case_name: str, job: ShadowJob) -> AnswerFields:
    """Replay the request to the candidate within the use case's `max_in_flight` and timeout."""
    use_case = runtime.config.use_cases[use_case_name]
    shadow = use_case.shadow
    request = orjson.loads(job.request_body)
    body = _request_for(use_case.candidate, request, job.stream)
    lease_s = shadow.timeout_s + 30
    with runtime.limiter.slot(use_case_name, shadow.max_in_flight, lease_s, runtime.slot_wait_s):
        return _call(runtime, use_case.candidate, job.endpoint, body, shadow.timeout_s)


def reask_primary(runtime: WorkerRuntime, use_case: UseCase, job: ShadowJob) -> AnswerFields | None:
    """Ask the primary again for the noise floor, when the configuration allows it.

    A request that reached the primary with the client's own key is re-asked by the proxy
    itself, which alone ever holds that key (`job.noise`); the worker never can.
    """
    if job.noise is not None:
        return captured_fields(job.noise, job.stream)
    if unit_interval(job.pair_id, "noise") >= use_case.shadow.noise_rate:
        return None
    upstream = runtime.config.upstreams[use_case.primary.upstream]
    if job.client_auth and upstream.api_key() is None:
        return None
    request = orjson.loads(job.request_body)
    body = _request_for(use_case.primary, request, job.stream)
    body["model"] = request.get("model", use_case.primary.model)
    return _call(runtime, use_case.primary, job.endpoint, body, upstream.timeout_s)


def measure_pair(runtime: WorkerRuntime, job: ShadowJob) -> PairCreate | None:
    """Measure the side the proxy did not see (and maybe the noise re-ask); None to drop it."""
    use_case = runtime.config.use_cases.get(job.use_case)
    if use_case is None:
        log.warning(
            "dropping pair %s: use case %r is no longer configured", job.pair_id, job.use_case
        )
        return None
    if job.candidate is not None:
        candidate = captured_fields(job.candidate, job.stream)
    else:
        candidate = call_candidate(runtime, job.use_case, job)
    if job.primary is not None:
        primary = primary_fields(job)
    else:
        primary = ask_primary(runtime, use_case, job)
        if primary.error is not None:
            log.warning(
                "dropping pair %s: the primary failed the reverse shadow: %s",
                job.pair_id,
                primary.error,
            )
            return None
    noise = reask_primary(runtime, use_case, job)
    request = orjson.loads(job.request_body)
    return PairCreate(
        id=job.pair_id,
        use_case=job.use_case,
        endpoint=job.endpoint,
        feature=job.feature,
        stream=job.stream,
        created_at=datetime.fromtimestamp(job.received_at, UTC),
        request_body=job.request_body,
        request_sha256=hashlib.sha256(job.request_body.encode()).hexdigest(),
        primary_model=str(request.get("model") or use_case.primary.model),
        primary_request_id=job.primary.request_id if job.primary else None,
        primary=primary,
        candidate_model=use_case.candidate.model,
        candidate=candidate,
        noise=noise,
    )


def configure_evaluators(config: SwitchoverConfig) -> None:
    """Hand the `evaluators:` section and the candidates' deployments to the scoring."""
    deployments = {}
    for name, use_case in config.use_cases.items():
        deployment = config.upstreams[use_case.candidate.upstream].deployment
        if deployment is not None:
            # Per replica, like the capacity a replay measures.
            hourly = deployment.hourly_usd * deployment.gpu_count
            deployments[name] = Deployment(hourly_usd=hourly)
    configure(config.evaluators, deployments)
