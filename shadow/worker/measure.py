"""Turning a shadow job into a stored pair: replay to the candidate, re-ask the primary."""

from __future__ import annotations

import hashlib
import http.cookiejar
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from evaluators.pair import Deployment
from evaluators.runtime import configure, deployment_key
from shadow.bodies import has_fetchable_url
from shadow.config import DEFAULT_CANDIDATE, SwitchoverConfig, Target, UseCase
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
    # how long a job waits for its candidate's slot before going back to the queue (tasks.py)
    slot_wait_s: float = 2.0


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
        # one client calls for every pair: a cookie set on one pair's call is kept for none
        cookies=http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
    )
    return WorkerRuntime(config=config, client=client, limiter=limiter)


def captured_fields(
    capture: PrimaryCapture | CandidateCapture, stream: bool, form: str = "chat.completions"
) -> AnswerFields:
    """An answer (of the endpoint `form`) and its timings from what the proxy saw pass."""
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
            raw, stream=stream, latency_ms=capture.latency_ms, arrivals=capture.arrivals, form=form
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
    return captured_fields(job.primary, job.stream, job.endpoint)


def ask_primary(runtime: WorkerRuntime, use_case: UseCase, job: ShadowJob) -> AnswerFields:
    """The reverse shadow: ask the primary what the candidate answered live."""
    upstream = runtime.config.upstreams[use_case.primary.upstream]
    request = orjson.loads(job.request_body)
    body = _request_for(use_case.primary, request, job.stream, job.endpoint)
    body["model"] = request.get("model", use_case.primary.model)
    return _call(runtime, use_case.primary, job.endpoint, body, upstream.timeout_s)


def _request_for(
    target: Target, request: dict[str, Any], stream: bool, endpoint: str
) -> dict[str, Any]:
    body = dict(request)
    body["model"] = target.model
    if stream and endpoint in ("chat.completions", "completions"):
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
    return call_upstream(
        runtime.client,
        upstream.url(ENDPOINT_PATHS[endpoint]),
        body,
        api_key=upstream.api_key(),
        timeout_s=timeout_s,
        api=upstream.api,
        form=endpoint,
    )


def limiter_key(use_case: str, candidate: str) -> str:
    """The limiter's key of a candidate: each has its own `max_in_flight`."""
    return use_case if candidate == DEFAULT_CANDIDATE else f"{use_case}/{candidate}"


def call_candidate(runtime: WorkerRuntime, use_case_name: str, job: ShadowJob) -> AnswerFields:
    """Replay the request to the job's candidate within its `max_in_flight` and timeout.

    The candidate gets the request in the form the proxy readied for its upstream, when
    that differs from the client's (`candidate_endpoint`, `candidate_request`).
    """
    use_case = runtime.config.use_cases[use_case_name]
    shadow = use_case.shadow_for(job.candidate_name)
    target = use_case.targets[job.candidate_name]
    endpoint = job.candidate_endpoint or job.endpoint
    request = orjson.loads(job.candidate_request or job.request_body)
    body = _request_for(target, request, job.stream, endpoint)
    lease_s = shadow.timeout_s + 30
    key = limiter_key(use_case_name, job.candidate_name)
    with runtime.limiter.slot(key, shadow.max_in_flight, lease_s, runtime.slot_wait_s):
        return _call(runtime, target, endpoint, body, shadow.timeout_s)


def reask_primary(runtime: WorkerRuntime, use_case: UseCase, job: ShadowJob) -> AnswerFields | None:
    """Ask the primary again for the noise floor, when the configuration allows it.

    A request that reached the primary with the client's own key is re-asked by the proxy
    itself, which alone ever holds that key (`job.noise`); the worker never can.
    """
    if job.noise is not None:
        return captured_fields(job.noise, job.stream, job.endpoint)
    if not job.reask:
        return None
    if unit_interval(job.pair_id, "noise") >= use_case.shadow.noise_rate:
        return None
    upstream = runtime.config.upstreams[use_case.primary.upstream]
    if job.client_auth and upstream.api_key() is None:
        return None
    request = orjson.loads(job.request_body)
    body = _request_for(use_case.primary, request, job.stream, job.endpoint)
    body["model"] = request.get("model", use_case.primary.model)
    return _call(runtime, use_case.primary, job.endpoint, body, upstream.timeout_s)


# `NotMeasured.kind` of a request not mirrored on purpose (`shadow.forward_urls: false`)
URLS = "urls"


class NotMeasured(Exception):
    """The job cannot become a pair; `kind` says why (a dead letter, not an outage)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def measure_pair(runtime: WorkerRuntime, job: ShadowJob) -> PairCreate:
    """Measure the side the proxy did not see (and maybe the noise re-ask)."""
    use_case = runtime.config.use_cases.get(job.use_case)
    if use_case is None:
        raise NotMeasured("use_case_gone", f"use case {job.use_case!r} is no longer configured")
    if job.candidate_name not in use_case.targets:
        raise NotMeasured(
            "use_case_gone",
            f"candidate {job.candidate_name!r} of {job.use_case!r} is no longer configured",
        )
    if job.candidate is not None:
        candidate = captured_fields(job.candidate, job.stream, job.endpoint)
    else:
        body = job.request_body.encode()
        # the proxy looks for URLs in the bodies it parses whole; here for every one
        if not use_case.shadow.forward_urls and has_fetchable_url(body, orjson.loads(body)):
            raise NotMeasured(URLS, "the request names URLs that the candidate would fetch")
        candidate = call_candidate(runtime, job.use_case, job)
    if job.primary is not None:
        primary = primary_fields(job)
    else:
        primary = ask_primary(runtime, use_case, job)
        if primary.error is not None:
            raise NotMeasured("primary_failed", f"the reverse shadow failed: {primary.error}")
    noise = reask_primary(runtime, use_case, job)
    request_id = job.primary.request_id if job.primary else None
    return _pair(job, use_case, primary, candidate, noise, request_id)


def measure_recorded(
    runtime: WorkerRuntime,
    job: ShadowJob,
    primary: AnswerFields,
    *,
    import_id: str,
    primary_request_id: str | None = None,
) -> PairCreate | None:
    """An imported request: the recorded answer is the primary side, the candidate is asked
    (and the primary re-asked for the noise floor) exactly as for a mirrored one."""
    use_case = runtime.config.use_cases.get(job.use_case)
    if use_case is None:
        return None
    candidate = call_candidate(runtime, job.use_case, job)
    noise = reask_primary(runtime, use_case, job)
    pair = _pair(job, use_case, primary, candidate, noise, primary_request_id)
    return pair.model_copy(update={"source": "import", "import_id": import_id})


def _pair(
    job: ShadowJob,
    use_case: UseCase,
    primary: AnswerFields,
    candidate: AnswerFields,
    noise: AnswerFields | None,
    primary_request_id: str | None,
) -> PairCreate:
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
        primary_request_id=primary_request_id,
        primary=primary,
        candidate_model=use_case.targets[job.candidate_name].model,
        candidate=candidate,
        candidate_name=job.candidate_name,
        noise=noise,
    )


def configure_evaluators(config: SwitchoverConfig) -> None:
    """Hand the `evaluators:` section and the candidates' deployments to the scoring."""
    deployments = {}
    for name, use_case in config.use_cases.items():
        for candidate in use_case.targets:
            deployment = config.deployment_for(name, candidate)
            if deployment is not None:
                # Per replica, like the capacity a replay measures.
                hourly = deployment.hourly_usd * deployment.gpu_count
                deployments[deployment_key(name, candidate)] = Deployment(hourly_usd=hourly)
    configure(config.evaluators, deployments)
