"""The hot path: forward to the primary, answer the client, hand a sample to the mirror.

Nothing here touches the database or a model. The body is treated as bytes plus the few
fields the proxy needs (model, stream flag). Connections to each upstream are pooled: the
primary's non-streamed answers come through the lean client of `shadow.proxy.upstream`, every
other call through the upstream's aiohttp session, and streamed chunks go to the client as
they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from criteria.rollout.rules import BROKEN, CANDIDATE, FALLBACK_PREFIX
from shadow.apis.families import ANTHROPIC, Api, auth_headers, error_body, family, request_id
from shadow.bodies import dumps_body, has_fetchable_url
from shadow.config import DEFAULT_CANDIDATE, SwitchoverConfig, Upstream, UseCase
from shadow.jobs import ENDPOINT_PATHS, CandidateCapture, PrimaryCapture, ShadowJob, unit_interval
from shadow.metrics import OVERHEAD, REQUESTS, SHADOW_SKIPPED
from shadow.proxy.fields import NotAnObject, top_level_fields, with_model
from shadow.proxy.headers import FEATURE_HEADER, USE_CASE_HEADER, HeaderPolicy
from shadow.proxy.live import LiveTraffic
from shadow.proxy.mirror import Mirror
from shadow.proxy.upstream import Answer, UpstreamPool

log = logging.getLogger(__name__)

SERVED_BY_HEADER = "x-switchover-served-by"
FALLBACK_HEADER = "x-switchover-fallback"
_DROP_RESPONSE = frozenset(
    {
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-encoding",
        "date",
        "server",
    }
)


def openai_error(
    status: int, message: str, error_type: str, code: str | None = None, param: str | None = None
) -> Response:
    """An error in the body shape the OpenAI SDKs parse."""
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def api_error(
    endpoint: str,
    status: int,
    message: str,
    error_type: str,
    code: str | None = None,
    param: str | None = None,
) -> Response:
    """An error in the shape of the endpoint's API family (OpenAI's or Anthropic's)."""
    body = error_body(family(endpoint), status, message, error_type, code, param)
    return Response(body, status_code=status, media_type="application/json")


# The fields the proxy reads itself; the upstream validates everything else.
_READ_FIELDS = (("model", str, "a string"), ("stream", bool, "a boolean"))
_READ_NAMES = frozenset(name for name, _, _ in _READ_FIELDS)
# Larger bodies are not parsed whole, nor on the event loop: their fields are scanned for in
# a thread (`shadow.proxy.fields`).
SCAN_OVER_BYTES = 256 * 1024


def _wrong_type(payload: dict[str, Any], endpoint: str) -> Response | None:
    """A 400 when a field the proxy reads has the wrong type (null is allowed)."""
    for name, kind, expected in _READ_FIELDS:
        value = payload.get(name)
        if value is not None and not isinstance(value, kind):
            return api_error(
                endpoint,
                400,
                f"Invalid type for '{name}': expected {expected}, got {type(value).__name__}.",
                "invalid_request_error",
                "invalid_type",
                name,
            )
    return None


# What an upstream's answer is read from: aiohttp's response (streams, and every call but the
# primary's non-streamed one) or the lean client's complete `Answer`.
Upstreamed = aiohttp.ClientResponse | Answer


@dataclass
class _Route:
    use_case_name: str
    use_case: UseCase
    upstream: Upstream
    session: aiohttp.ClientSession
    # the lean client for the primary's non-streamed answers (shadow/proxy/upstream.py)
    pool: UpstreamPool
    # (candidate, sample rate) of each candidate; each samples a request on its own
    sample_rates: tuple[tuple[str, float], ...] = ()


@dataclass
class _CandidateRoute:
    """Where a use case's live candidate answers come from (canary and candidate modes)."""

    model: str
    api_key: str | None
    session: aiohttp.ClientSession
    upstream: Upstream
    first_byte_timeout_s: float
    reverse_sample_rate: float
    name: str = DEFAULT_CANDIDATE

    @property
    def api(self) -> Api:
        """The API family the candidate's upstream speaks."""
        return self.upstream.api

    @property
    def forms(self) -> tuple[str, ...]:
        """The endpoints the candidate's upstream serves."""
        return self.upstream.forms

    def url(self, path: str) -> str:
        """An API path on the candidate's upstream."""
        return self.upstream.url(path)


@dataclass
class _Call:
    """One client request on its way to an upstream."""

    route: _Route
    endpoint: str
    body: bytes
    payload: dict[str, Any]
    headers: dict[str, str]
    client_auth: bool
    feature: str | None
    stream: bool
    started: float
    received_at: float
    # where `model` lies in a body too large to parse whole (the payload holds only the fields
    # the proxy reads, so the candidate's body is spliced, not re-written)
    scanned: bool = False
    model_span: tuple[int, int] | None = None


@dataclass
class _StreamState:
    chunks: list[bytes] = field(default_factory=list)
    arrivals: list[tuple[int, float]] = field(default_factory=list)
    complete: bool = False
    client_gone: bool = False


@dataclass(frozen=True)
class _Sample:
    """What a mirrored request needs once its answer is complete."""

    pair_id: str
    use_case: str
    endpoint: str
    received_at: float
    body: bytes
    stream: bool
    client_auth: bool
    feature: str | None
    status: int
    request_id: str | None
    first_byte_s: float
    candidate: CandidateCapture | None = None  # the candidate failed, the primary answered
    served_by_candidate: bool = False  # the candidate answered; the worker asks the primary
    # the noise re-ask the proxy makes itself: only the client's own key reaches the primary,
    # and it stays in this process's memory for the re-ask's lifetime, never in the job
    reask: tuple[str, dict[str, str]] | None = None
    # the candidates that sampled the request; the first gets `pair_id` and the noise re-ask
    candidates: tuple[str, ...] = (DEFAULT_CANDIDATE,)

    @classmethod
    def of(
        cls,
        call: _Call,
        pair_id: str,
        response: Upstreamed,
        first_byte_s: float,
        candidate: CandidateCapture | None = None,
        served_by_candidate: bool = False,
        candidates: tuple[str, ...] = (DEFAULT_CANDIDATE,),
    ) -> _Sample:
        """The sample of a request whose answer has begun to arrive."""
        return cls(
            pair_id=pair_id,
            use_case=call.route.use_case_name,
            endpoint=call.endpoint,
            received_at=call.received_at,
            body=call.body,
            stream=call.stream,
            client_auth=call.client_auth,
            feature=call.feature,
            status=response.status,
            request_id=request_id(response.headers),
            first_byte_s=first_byte_s,
            candidate=candidate,
            served_by_candidate=served_by_candidate,
            candidates=candidates,
        )


class Proxy:
    """Forwards OpenAI requests to the primary of their use case."""

    def __init__(
        self,
        config: SwitchoverConfig,
        sessions: dict[str, aiohttp.ClientSession],
        mirror: Mirror | None,
        max_body_bytes: int,
        rng: random.Random | None = None,
        live: LiveTraffic | None = None,
        body_timeout_s: float = 30.0,
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._mirror = mirror
        self._max_body_bytes = max_body_bytes
        self._body_timeout_s = body_timeout_s
        self._rng = rng or random.Random()
        self._live = live
        # by the upstream object's identity: the routes and `passthrough:` hold the same objects
        self._header_policies = {
            id(upstream): HeaderPolicy(upstream.forward_headers)
            for upstream in config.upstreams.values()
        }
        # as the aiohttp sessions: 10 s to connect, the upstream's timeout between reads
        self._pools = {
            name: UpstreamPool(upstream.base_url, 10.0, upstream.timeout_s, keepalive_s=60.0)
            for name, upstream in config.upstreams.items()
        }
        self._routes = {name: self._route(name) for name in config.use_cases}
        # every candidate's route: an advance may name any of them (`rollout --candidate`)
        self._candidates = {
            (name, candidate): self._candidate(name, candidate)
            for name, use_case in config.use_cases.items()
            for candidate in use_case.targets
        }
        self._by_model: dict[str, str] = {}
        for name, use_case in config.use_cases.items():
            self._by_model.setdefault(use_case.primary.model, name)
        self._default = "default" if "default" in config.use_cases else None
        self._reasks: set[asyncio.Task[None]] = set()
        self._reask_gates: dict[str, asyncio.Semaphore] = {}
        self._passthrough: tuple[Upstream, aiohttp.ClientSession] | None = None
        if config.passthrough is not None:
            self._passthrough = (
                config.upstreams[config.passthrough],
                sessions[config.passthrough],
            )

    def _route(self, name: str) -> _Route:
        use_case = self._config.use_cases[name]
        upstream = self._config.upstreams[use_case.primary.upstream]
        return _Route(
            name,
            use_case,
            upstream,
            self._sessions[use_case.primary.upstream],
            self._pools[use_case.primary.upstream],
            tuple((c, use_case.shadow_for(c).sample_rate) for c in use_case.targets),
        )

    async def aclose(self) -> None:
        """Close the lean client's connections (the aiohttp sessions are the caller's)."""
        for pool in self._pools.values():
            await pool.close()

    def _candidate(self, name: str, candidate: str) -> _CandidateRoute:
        use_case = self._config.use_cases[name]
        target = use_case.targets[candidate]
        upstream = self._config.upstreams[target.upstream]
        plan = use_case.rollout_plan
        reverse = plan.reverse_sample_rate
        return _CandidateRoute(
            model=target.model,
            api_key=upstream.api_key(),
            session=self._sessions[target.upstream],
            upstream=upstream,
            first_byte_timeout_s=plan.first_byte_timeout_s,
            reverse_sample_rate=(
                use_case.shadow_for(candidate).sample_rate if reverse is None else reverse
            ),
            name=candidate,
        )

    def _live_candidate(self, route: _Route) -> _CandidateRoute:
        """The candidate that takes the use case's live share (the lead until one is named)."""
        name = route.use_case_name
        live = self._live.candidate.get(name) if self._live is not None else None
        found = self._candidates.get((name, live or route.use_case.lead))
        return found or self._candidates[(name, route.use_case.lead)]

    def _resolve(self, header: str | None, model: Any) -> _Route | None:
        if header:
            return self._routes.get(header)
        name = self._by_model.get(model) if isinstance(model, str) else None
        name = name or self._default
        return self._routes[name] if name else None

    def _forward_headers(self, request: Request, upstream: Upstream) -> tuple[dict[str, str], bool]:
        """Headers for the upstream, and whether the client's own key was used."""
        key = upstream.api_key()
        headers, client_auth = self._header_policies[id(upstream)].forward(
            request.scope["headers"], key
        )
        if key:
            keyed = auth_headers(upstream.api, key)
            if upstream.api == ANTHROPIC and "anthropic-version" in headers:
                keyed.pop("anthropic-version")  # the client's own version wins
            headers.update(keyed)
        else:
            headers.update(client_auth)
        return headers, key is None and bool(client_auth)

    async def _read_body(
        self, request: Request, endpoint: str = "chat.completions"
    ) -> bytes | Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body_bytes:
            return self._too_large(endpoint)
        body = bytearray()
        try:
            async with asyncio.timeout(self._body_timeout_s):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > self._max_body_bytes:
                        return self._too_large(endpoint)
        except ClientDisconnect:
            # nobody reads an answer now; not an error of the service
            log.info("a client went away while sending its request (%s bytes read)", len(body))
            return Response(status_code=400)
        except TimeoutError:
            log.info("a request body took over %g s to arrive; refused", self._body_timeout_s)
            return api_error(
                endpoint,
                408,
                f"The request body did not arrive within {self._body_timeout_s:g} s.",
                "invalid_request_error",
                "request_timeout",
            )
        return bytes(body)

    def _too_large(self, endpoint: str) -> Response:
        return api_error(
            endpoint,
            413,
            f"Request body exceeds the limit of {self._max_body_bytes} bytes.",
            "invalid_request_error",
            "request_too_large",
        )

    async def models(self, request: Request) -> Response:
        """`GET /v1/models`, answered by the primary upstream of the selected use case."""
        started = time.perf_counter()
        route = self._resolve(request.headers.get(USE_CASE_HEADER), None)
        if route is None:
            models = sorted({uc.primary.model for uc in self._config.use_cases.values()})
            data = [{"id": m, "object": "model", "owned_by": "switchover"} for m in models]
            return Response(
                orjson.dumps({"object": "list", "data": data}), media_type="application/json"
            )
        headers, _ = self._forward_headers(request, route.upstream)
        try:
            upstream_started = time.perf_counter()
            models_url = route.upstream.url("/models")
            async with route.session.get(models_url, headers=headers) as response:
                content = await response.read()
            upstream_s = time.perf_counter() - upstream_started
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._upstream_failed(exc)
        out = self._response_headers(response, started, upstream_s)
        return Response(content, status_code=response.status, headers=out)

    async def completions(
        self, request: Request, endpoint: str, started: float | None = None
    ) -> Response:
        """Forward a chat or text completion and mirror a sample of the answered ones.

        `started` is when the request reached the application (the overhead clock).
        """
        started = started or time.perf_counter()
        received_at = time.time()
        body = await self._read_body(request, endpoint)
        if isinstance(body, Response):
            return body
        fields = None
        try:
            if len(body) > SCAN_OVER_BYTES:
                fields = await asyncio.to_thread(top_level_fields, body, _READ_NAMES)
                payload: Any = {name: field.value for name, field in fields.items()}
            else:
                payload = orjson.loads(body)
        except (orjson.JSONDecodeError, NotAnObject) as exc:
            return api_error(
                endpoint,
                400,
                f"Request body is not valid JSON: {exc}",
                "invalid_request_error",
                "invalid_json",
            )
        if not isinstance(payload, dict):
            return api_error(
                endpoint,
                400,
                "Request body must be a JSON object.",
                "invalid_request_error",
                "invalid_json",
            )
        wrong_type = _wrong_type(payload, endpoint)
        if wrong_type is not None:
            return wrong_type
        header = request.headers.get(USE_CASE_HEADER)
        route = self._resolve(header, payload.get("model"))
        if route is None:
            if not header and self._passthrough is not None:
                return await self.passthrough(request, started, body, payload.get("model"))
            wanted = (
                f"use case {header!r}"
                if header
                else f"a use case for model {payload.get('model')!r}"
            )
            return api_error(
                endpoint,
                404,
                f"Switchover has no {wanted} and no `default` use case. Add a use case whose "
                "primary has this model, a `default` use case, or a top-level `passthrough: "
                "<upstream>` to forward such requests unmirrored.",
                "invalid_request_error",
                "use_case_not_found",
                "model",
            )
        headers, client_auth = self._forward_headers(request, route.upstream)
        call = _Call(
            route=route,
            endpoint=endpoint,
            body=body,
            payload=payload,
            headers=headers,
            client_auth=client_auth,
            feature=request.headers.get(FEATURE_HEADER),
            stream=payload.get("stream") is True,
            started=started,
            received_at=received_at,
            scanned=fields is not None,
            model_span=(fields["model"].start, fields["model"].end)
            if fields and "model" in fields
            else None,
        )
        percent = self._live.percent.get(route.use_case_name, 0.0) if self._live else 0.0
        if percent > 0 and endpoint not in self._live_candidate(route).forms:
            percent = 0.0  # live answers only in the client's own form, never translated
        if percent > 0 and (percent >= 100 or self._rng.random() * 100 < percent):
            return await self._via_candidate(call)
        pair_id = None
        sampled: tuple[str, ...] = ()
        if self._mirror is not None:
            sampled = tuple(c for c, rate in route.sample_rates if self._rng.random() < rate)
            # a scanned body's URLs are looked for by the worker (`measure_pair`)
            shadow = route.use_case.shadow
            if sampled and not (
                shadow.forward_urls or call.scanned or not has_fetchable_url(body, payload)
            ):
                SHADOW_SKIPPED.labels(route.use_case_name, "urls").inc()
                sampled = ()
            if sampled:
                pair_id = str(uuid.uuid4())
        return await self._via_primary(call, pair_id, time.perf_counter(), candidates=sampled)

    async def passthrough(
        self,
        request: Request,
        started: float | None = None,
        body: bytes | None = None,
        model: Any = None,
    ) -> Response:
        """Any other path under `/v1`, forwarded unchanged to a primary and not mirrored.

        The upstream is the use case's (by header, by a JSON body's model, or `default`), else
        the `passthrough:` upstream. A body that is not JSON streams through unread.
        """
        started = started or time.perf_counter()
        header = request.headers.get(USE_CASE_HEADER)
        endpoint = "messages" if request.url.path.startswith("/v1/messages") else "passthrough"
        if body is None and request.headers.get("content-type", "").startswith("application/json"):
            read = await self._read_body(request, endpoint)
            if isinstance(read, Response):
                return read
            body = read
            with contextlib.suppress(orjson.JSONDecodeError):
                parsed = orjson.loads(body)
                model = parsed.get("model") if isinstance(parsed, dict) else None
        route = self._resolve(header, model)
        target = (route.upstream, route.session) if route is not None else None
        if target is None and not header:
            target = self._passthrough
        if target is None:
            wanted = f"use case {header!r}" if header else f"a use case for model {model!r}"
            return api_error(
                endpoint,
                404,
                f"Switchover has no {wanted}, no `default` use case and no `passthrough:` "
                f"upstream for {request.method} {request.url.path}. Set a top-level "
                "`passthrough: <upstream>` to forward such requests unmirrored.",
                "invalid_request_error",
                "use_case_not_found",
            )
        upstream, session = target
        headers, _ = self._forward_headers(request, upstream)
        data: Any = body
        if body is None:
            length = request.headers.get("content-length")
            if length is not None:
                headers["content-length"] = length
            data = request.stream() if length != "0" else None
        url = upstream.url(request.url.path.removeprefix("/v1"))
        if request.url.query:
            url += "?" + request.url.query
        upstream_started = time.perf_counter()
        try:
            response = await session.request(request.method, url, data=data, headers=headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._upstream_failed(exc, route.use_case_name if route else None, endpoint)
        if route is not None:
            REQUESTS.labels(route.use_case_name, "passthrough", str(response.status)).inc()
        out = self._response_headers(response, started, time.perf_counter() - upstream_started)
        return RelayResponse(response, out, started, None)

    async def _via_primary(
        self,
        call: _Call,
        pair_id: str | None,
        upstream_started: float,
        failed: CandidateCapture | None = None,
        candidates: tuple[str, ...] = (DEFAULT_CANDIDATE,),
    ) -> Response:
        """Answer from the primary; `failed` is the candidate's failure this one stands in for.

        `candidates` are those that sampled the request (each gets a pair of its own).
        """
        route, endpoint, started, stream = call.route, call.endpoint, call.started, call.stream
        url = route.upstream.url(ENDPOINT_PATHS[endpoint])
        response: Upstreamed
        try:
            if stream:  # relayed chunk by chunk from aiohttp's stream reader
                response = await route.session.post(url, data=call.body, headers=call.headers)
            else:
                response = await route.pool.post(url, call.body, call.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._upstream_failed(exc, route.use_case_name, endpoint)
        first_byte_s = time.perf_counter() - started
        sample = None
        if pair_id is None and endpoint == "responses" and self._mirror is not None:
            pair_id = ""  # unsampled, yet kept as a turn that later turns may build on
        if pair_id is not None and 200 <= response.status < 300:
            sample = _Sample.of(
                call, pair_id, response, first_byte_s, candidate=failed, candidates=candidates
            )
            noise_rate = route.use_case.shadow.noise_rate
            # the hash only where re-asking is on (it cost 2 % of a mirrored request's CPU)
            if call.client_auth and noise_rate > 0 and unit_interval(pair_id, "noise") < noise_rate:
                sample = replace(sample, reask=(url, call.headers))
        REQUESTS.labels(route.use_case_name, endpoint, str(response.status)).inc()
        served = {SERVED_BY_HEADER: "primary"}
        if failed is not None:
            served[FALLBACK_HEADER] = failed.error_kind or "error"
        if not (stream and response.status == 200 and response.content_type == "text/event-stream"):
            try:
                content = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                return self._upstream_failed(exc, route.use_case_name, endpoint)
            finally:
                response.release()
            out = self._response_headers(
                response, started, time.perf_counter() - upstream_started, sample
            )
            out.update(served)
            background = None
            if sample is not None:
                latency_ms = (time.perf_counter() - started) * 1000
                background = BackgroundTask(self._mirror_answer, sample, content, latency_ms)
            return Response(
                content, status_code=response.status, headers=out, background=background
            )
        out = self._response_headers(
            response, started, time.perf_counter() - upstream_started, sample
        )
        out.update(served)
        on_complete = partial(self._mirror_stream, sample) if sample is not None else None
        assert isinstance(response, aiohttp.ClientResponse)  # only streams get here
        return RelayResponse(response, out, started, on_complete)

    async def _via_candidate(self, call: _Call) -> Response:
        """Answer from the candidate; on its error, or no first byte in time, from the primary.

        Only a failure before anything reached the client can be hidden: a stream that breaks
        after its first chunk reaches the client broken (and is counted as `broken`).
        """
        route = call.route
        candidate = self._live_candidate(route)
        name = route.use_case_name
        pair_id = None
        # The primary can be re-asked only with a key of the configuration, never the client's.
        if (
            self._mirror is not None
            and not call.client_auth
            and self._rng.random() < candidate.reverse_sample_rate
        ):
            pair_id = str(uuid.uuid4())
        if call.scanned:
            body = with_model(call.body, call.model_span, candidate.model)
        else:
            call.payload["model"] = candidate.model
            body = dumps_body(call.payload)
        policy = self._header_policies[id(candidate.upstream)]
        headers = {
            k: v
            for k, v in call.headers.items()
            if k == "accept-encoding" or policy.allowed_under_proxy_key(k)
        }
        headers.update(auth_headers(candidate.api, candidate.api_key))
        url = candidate.url(ENDPOINT_PATHS[call.endpoint])
        upstream_started = time.perf_counter()
        response: aiohttp.ClientResponse | None = None
        first = b""
        relay = False
        try:
            async with asyncio.timeout(candidate.first_byte_timeout_s):
                response = await candidate.session.post(url, data=body, headers=headers)
                relay = (
                    call.stream
                    and response.status == 200
                    and response.content_type == "text/event-stream"
                )
                if relay:
                    first = await response.content.readany()
            first_byte_s = time.perf_counter() - call.started
            if not 200 <= response.status < 300:
                text = (await response.read()).decode("utf-8", "replace")
                response.release()
                failed = self._failure(
                    call, "http_status", f"HTTP {response.status}: {text}", response.status
                )
            elif relay and not first:
                response.release()
                failed = self._failure(call, "invalid_response", "the stream ended empty")
            else:
                failed = None
        except TimeoutError:
            if response is not None:
                response.close()
            failed = self._failure(
                call,
                "timeout",
                f"no first byte within {candidate.first_byte_timeout_s:g} s",
                latency_ms=candidate.first_byte_timeout_s * 1000,
            )
        except aiohttp.ClientError as exc:
            if response is not None:
                response.close()
            failed = self._failure(call, "connection", f"{type(exc).__name__}: {exc}")
        if failed is not None:
            self._count(name, f"{FALLBACK_PREFIX}{failed.error_kind}")
            return await self._via_primary(
                call, pair_id, upstream_started, failed, (candidate.name,)
            )
        assert response is not None
        REQUESTS.labels(name, call.endpoint, str(response.status)).inc()
        sample = None
        if pair_id is not None:
            sample = _Sample.of(
                call,
                pair_id,
                response,
                first_byte_s,
                served_by_candidate=True,
                candidates=(candidate.name,),
            )
        if not relay:
            try:
                content = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                failed = self._failure(call, "connection", f"{type(exc).__name__}: {exc}")
                self._count(name, f"{FALLBACK_PREFIX}{failed.error_kind}")
                return await self._via_primary(
                    call, pair_id, upstream_started, failed, (candidate.name,)
                )
            finally:
                response.release()
            self._count(name, CANDIDATE)
            out = self._response_headers(
                response, call.started, time.perf_counter() - upstream_started, sample
            )
            out[SERVED_BY_HEADER] = "candidate"
            background = None
            if sample is not None:
                latency_ms = (time.perf_counter() - call.started) * 1000
                background = BackgroundTask(self._mirror_answer, sample, content, latency_ms)
            return Response(
                content, status_code=response.status, headers=out, background=background
            )
        out = self._response_headers(
            response, call.started, time.perf_counter() - upstream_started, sample
        )
        out[SERVED_BY_HEADER] = "candidate"

        def complete(state: _StreamState) -> None:
            self._count(name, CANDIDATE)
            if sample is not None:
                self._mirror_stream(sample, state)

        return RelayResponse(
            response,
            out,
            call.started,
            complete,
            first=first,
            first_at=first_byte_s,
            on_broken=partial(self._count, name, BROKEN),
        )

    def _failure(
        self,
        call: _Call,
        kind: str,
        message: str,
        status: int | None = None,
        latency_ms: float | None = None,
    ) -> CandidateCapture:
        """The candidate's failure, measured like a worker's failed call."""
        if latency_ms is None:
            latency_ms = (time.perf_counter() - call.started) * 1000
        return CandidateCapture(
            status_code=status,
            latency_ms=latency_ms,
            error=message[:2000],
            error_kind=kind,
        )

    def _count(self, use_case: str, outcome: str) -> None:
        if self._live is not None:
            self._live.count(use_case, outcome)

    def _response_headers(
        self,
        response: Upstreamed,
        started: float,
        upstream_s: float,
        sample: _Sample | None = None,
    ) -> CIMultiDict[str]:
        # a multidict: each of several `set-cookie` headers reaches the client
        out = CIMultiDict(
            (k, v) for k, v in response.headers.items() if k.lower() not in _DROP_RESPONSE
        )
        overhead_s = time.perf_counter() - started - upstream_s
        OVERHEAD.observe(overhead_s)
        out["x-switchover-overhead-ms"] = f"{overhead_s * 1000:.3f}"
        if sample is not None and sample.pair_id:
            out["x-switchover-pair-id"] = sample.pair_id
        return out

    def _upstream_failed(
        self, exc: BaseException, use_case: str | None = None, endpoint: str = "models"
    ) -> Response:
        if isinstance(exc, TimeoutError):
            status, code, message = 504, "upstream_timeout", "The primary upstream timed out."
        else:
            status, code = 502, "upstream_unavailable"
            # The exception names the upstream's host and port: for the log, not the client.
            log.warning(
                "the primary upstream could not be reached: %s: %s", type(exc).__name__, exc
            )
            message = f"The primary upstream could not be reached ({type(exc).__name__})."
        if use_case is not None:
            REQUESTS.labels(use_case, endpoint, str(status)).inc()
        return api_error(endpoint, status, message, "upstream_error", code)

    async def _mirror_answer(self, sample: _Sample, content: bytes, latency_ms: float) -> None:
        """After a complete non-streamed answer: hand the pair to the mirror (never blocks)."""
        capture = PrimaryCapture(
            status_code=sample.status,
            body=content.decode("utf-8", "replace"),
            latency_ms=latency_ms,
            first_byte_ms=sample.first_byte_s * 1000,
            request_id=sample.request_id,
        )
        self._submit(sample, capture)

    def _mirror_stream(self, sample: _Sample, state: _StreamState) -> None:
        """After a complete stream: the same, with the arrival time of every chunk."""
        capture = PrimaryCapture(
            status_code=sample.status,
            body=b"".join(state.chunks).decode("utf-8", "replace"),
            latency_ms=(state.arrivals[-1][1] if state.arrivals else sample.first_byte_s) * 1000,
            first_byte_ms=sample.first_byte_s * 1000,
            request_id=sample.request_id,
            arrivals=state.arrivals,
        )
        self._submit(sample, capture)

    def _submit(self, sample: _Sample, capture: PrimaryCapture) -> None:
        assert self._mirror is not None
        primary: PrimaryCapture | None = capture
        candidate = sample.candidate
        if sample.served_by_candidate:
            primary, candidate = None, CandidateCapture.model_validate(capture.model_dump())
        job = ShadowJob(
            pair_id=sample.pair_id,
            use_case=sample.use_case,
            endpoint=sample.endpoint,
            received_at=sample.received_at,
            request_body=sample.body.decode("utf-8", "replace"),
            stream=sample.stream,
            client_auth=sample.client_auth,
            primary=primary,
            candidate=candidate,
            feature=sample.feature,
            turn_only=not sample.pair_id,
            candidate_name=sample.candidates[0] if sample.candidates else DEFAULT_CANDIDATE,
        )
        if not job.turn_only:
            # The other candidates' jobs go now, without the re-ask: the first job's serves them.
            for other in sample.candidates[1:]:
                self._mirror.submit(
                    job.model_copy(
                        update={
                            "pair_id": str(uuid.uuid4()),
                            "candidate_name": other,
                            "reask": False,
                        }
                    )
                )
        if sample.reask is None or job.turn_only:
            self._mirror.submit(job)
            return
        task = asyncio.get_running_loop().create_task(self._reask(sample, job, *sample.reask))
        self._reasks.add(task)
        task.add_done_callback(self._reasks.discard)

    async def _reask(
        self, sample: _Sample, job: ShadowJob, url: str, headers: dict[str, str]
    ) -> None:
        """Ask the primary again with the client's own key, then hand the job over.

        Runs after the client has its answer, under the use case's `max_in_flight` and
        `timeout_s`; when the cap is reached the pair goes without a re-ask rather than wait.
        """
        assert self._mirror is not None
        use_case = self._config.use_cases[sample.use_case]
        gate = self._reask_gates.setdefault(
            sample.use_case, asyncio.Semaphore(use_case.shadow.max_in_flight)
        )
        noise = None
        if not gate.locked():
            async with gate:
                noise = await self._primary_again(sample, url, headers, use_case.shadow.timeout_s)
        self._mirror.submit(job.model_copy(update={"noise": noise}) if noise else job)

    async def _primary_again(
        self, sample: _Sample, url: str, headers: dict[str, str], timeout_s: float
    ) -> PrimaryCapture | None:
        session = self._routes[sample.use_case].session
        started = time.perf_counter()
        try:
            async with session.post(
                url,
                data=sample.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                first_byte_ms = (time.perf_counter() - started) * 1000
                content = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("noise re-ask of pair %s failed: %s", sample.pair_id, type(exc).__name__)
            return None
        if not 200 <= status < 300:
            log.info("noise re-ask of pair %s answered %s", sample.pair_id, status)
            return None
        return PrimaryCapture(
            status_code=status,
            body=content.decode("utf-8", "replace"),
            latency_ms=(time.perf_counter() - started) * 1000,
            first_byte_ms=first_byte_ms,
        )


class RelayResponse(Response):
    """Streams an upstream's chunks to the client as they arrive.

    `first` is a chunk already read (the candidate's, read before committing to its answer).
    Lighter than Starlette's StreamingResponse (no task group per response): one watcher task
    notices a client that goes away and closes the upstream stream, so the API stops
    generating an answer nobody reads.
    """

    def __init__(
        self,
        upstream: aiohttp.ClientResponse,
        headers: Mapping[str, str],
        started: float,
        on_complete: Callable[[_StreamState], None] | None,
        first: bytes = b"",
        first_at: float = 0.0,
        on_broken: Callable[[], None] | None = None,
    ) -> None:
        # Deliberately not Response.__init__: there is no body to render, only chunks to relay.
        self.status_code = upstream.status
        self.background = None
        self.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]
        self._upstream = upstream
        self._started = started
        self._on_complete = on_complete
        self._first = first
        self._first_at = first_at
        self._on_broken = on_broken

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = _StreamState()
        upstream = self._upstream

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            state.client_gone = True
            upstream.close()

        watcher = asyncio.create_task(watch_disconnect())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            received = len(self._first)
            if self._first:
                state.chunks.append(self._first)
                state.arrivals.append((received, self._first_at))
                await send({"type": "http.response.body", "body": self._first, "more_body": True})
            async for chunk in upstream.content.iter_any():
                received += len(chunk)
                state.chunks.append(chunk)
                state.arrivals.append((received, time.perf_counter() - self._started))
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            state.complete = not state.client_gone
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if not state.client_gone:
                log.warning("upstream stream broke off: %s", exc)
                if self._on_broken is not None:
                    self._on_broken()
        finally:
            watcher.cancel()
            upstream.release()
        if state.complete and self._on_complete is not None:
            self._on_complete(state)
