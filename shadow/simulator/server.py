"""Simulated upstream with configurable latency, failures and answer quality.

It speaks OpenAI's Chat Completions, Completions and Responses APIs and Anthropic's Messages
API (`/v1/messages`, errors in Anthropic's shape, `x-api-key`).

Built on aiohttp and orjson so that, at zero delay, it costs the benchmark as little as possible:
no per-request logging, no schema validation beyond the few fields it reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shadow.simulator.prompts import (
    ANSWER_VARIANTS,
    AnswerVariant,
    PromptIndex,
    PromptItem,
    ToolCallAnswer,
    last_user_text,
    load_prompts,
    message_text,
)

HANG_SECONDS = 3600.0
# The request fields of the OpenAI API, for `reject_unknown_fields`.
_COMMON_FIELDS = frozenset(
    {
        "model", "frequency_penalty", "logit_bias", "logprobs", "max_tokens", "n",
        "presence_penalty", "seed", "stop", "stream", "stream_options", "temperature", "top_p",
        "user",
    }
)  # fmt: skip
CHAT_FIELDS = _COMMON_FIELDS | {
    "messages", "audio", "function_call", "functions", "max_completion_tokens", "metadata",
    "modalities", "parallel_tool_calls", "prediction", "prompt_cache_key", "reasoning_effort",
    "response_format", "safety_identifier", "service_tier", "store", "tool_choice", "tools",
    "top_logprobs", "verbosity", "web_search_options",
}  # fmt: skip
COMPLETION_FIELDS = _COMMON_FIELDS | {"prompt", "best_of", "echo", "suffix"}
MAX_TOKENS_LIMIT = 32768
OWNER = "switchover-simulator"

QUALITY_PRESETS: dict[str, dict[AnswerVariant, float]] = {
    "perfect": {"reference": 1.0},
    # an API model as it behaves: asked twice, now and then the same answer in other words
    "api": {"reference": 0.8, "paraphrase": 0.2},
    "good": {"reference": 0.6, "paraphrase": 0.4},
    "mediocre": {"reference": 0.3, "paraphrase": 0.3, "wrong": 0.4},
    "bad": {"wrong": 0.9, "paraphrase": 0.1},
}


def quality_preset(name: str) -> dict[AnswerVariant, float]:
    """The answer mix of a named quality preset: perfect, api, good, mediocre or bad."""
    try:
        return dict(QUALITY_PRESETS[name])
    except KeyError:
        raise ValueError(
            f"unknown quality preset {name!r}; choose from {list(QUALITY_PRESETS)}"
        ) from None


class SimulatorConfig(BaseModel):
    """How the simulated upstream behaves; every field maps to one CLI option."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float = Field(
        default=0.0,
        ge=0,
        description="Mean service time before the first byte (streams: time to first token).",
    )
    latency_dist: Literal["constant", "lognormal", "exponential"] = Field(
        default="constant", description="Distribution of the latency around its mean."
    )
    latency_sigma: float = Field(default=0.5, ge=0, description="Shape of the lognormal latency.")
    tokens_per_s: float = Field(
        default=0.0, ge=0, description="Generation speed; 0 answers the whole text at once."
    )
    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share answered with a 500.")
    hang_rate: float = Field(default=0.0, ge=0, le=1, description="Share never answered.")
    garbage_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share answered with a broken body or stream."
    )
    cut_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share whose connection drops half-way through."
    )
    concurrency_limit: int = Field(
        default=0, ge=0, description="Requests served at once, others queue; 0 = unlimited."
    )
    answer_mix: dict[AnswerVariant, float] = Field(
        default_factory=lambda: quality_preset("perfect"),
        description="Weights of reference/paraphrase/wrong answers, or a quality preset name.",
    )
    require_api_key: str | None = Field(
        default=None, description="Answer 401 unless this bearer key is sent."
    )
    reject_unknown_fields: bool = Field(
        default=False,
        description="Answer 400 to request fields OpenAI does not know, as the OpenAI API does "
        "(vLLM and other servers accept extra fields).",
    )
    seed: int | None = Field(default=None, description="Seed of the random draws.")
    model_name: str = Field(default="sim-model", description="Model listed by /v1/models.")
    prompts_path: Path | None = Field(
        default=None, description="Prompt set (JSON Lines); the bundled one by default."
    )

    @field_validator("answer_mix", mode="before")
    @classmethod
    def _parse_answer_mix(cls, value: object) -> object:
        """Accept a preset name ("good") or "variant=weight,..." as well as a mapping."""
        if not isinstance(value, str):
            return value
        if value in QUALITY_PRESETS:
            return quality_preset(value)
        try:
            return {
                variant.strip(): float(weight)
                for variant, _, weight in (part.partition("=") for part in value.split(","))
            }
        except ValueError:
            raise ValueError(
                f"answer_mix must be a preset {list(QUALITY_PRESETS)} or 'variant=weight,...'"
            ) from None

    @field_validator("answer_mix")
    @classmethod
    def _check_answer_mix(cls, value: dict[AnswerVariant, float]) -> dict[AnswerVariant, float]:
        if any(weight < 0 for weight in value.values()) or sum(value.values()) <= 0:
            raise ValueError("answer_mix weights must be >= 0 with a positive sum")
        return value

    @model_validator(mode="after")
    def _check_rates(self) -> SimulatorConfig:
        if self.error_rate + self.hang_rate + self.garbage_rate + self.cut_rate > 1:
            raise ValueError("error_rate + hang_rate + garbage_rate + cut_rate must not exceed 1")
        return self


def estimate_tokens(text: str) -> int:
    """Rough token count of one message or answer: 4 tokens per 3 words, plus one."""
    return len(text.split()) * 4 // 3 + 1


_PIECE = re.compile(r"\s*\S+\s*")


@dataclass(frozen=True, slots=True)
class _Answer:
    """An answer ready to send: its text (a tool call's JSON arguments) cut into word pieces."""

    text: str
    pieces: tuple[str, ...]
    tokens: int
    finish_reason: str
    tool_name: str | None = None

    @classmethod
    def of(cls, text: str, tool_name: str | None = None) -> _Answer:
        return cls(
            text=text,
            pieces=tuple(_PIECE.findall(text)),
            tokens=estimate_tokens(text),
            finish_reason="stop" if tool_name is None else "tool_calls",
            tool_name=tool_name,
        )

    def truncated(self, max_tokens: int | None) -> _Answer:
        """This answer cut to at most `max_tokens` estimated tokens."""
        if max_tokens is None or self.tokens <= max_tokens:
            return self
        # The most words w with estimate_tokens() <= max_tokens: w * 4 // 3 + 1 <= max_tokens.
        words = (3 * max_tokens - 1) // 4
        cut = self.of("".join(self.pieces[:words]).rstrip(), self.tool_name)
        return replace(cut, finish_reason="length")


def _render(answer: str | ToolCallAnswer, chat: bool) -> _Answer:
    if isinstance(answer, str):
        return _Answer.of(answer)
    arguments = json.dumps(answer.arguments, ensure_ascii=False)
    if chat:
        return _Answer.of(arguments, tool_name=answer.name)
    # Completions have no tool calls: the call is spelled out as text.
    return _Answer.of(json.dumps({"name": answer.name, "arguments": answer.arguments}))


class _RequestError(Exception):
    """An error answered with an OpenAI-style error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = headers

    def response(self, form: str = "chat") -> web.Response:
        body: dict[str, Any] = self.body
        if form == "messages":
            kind = _ANTHROPIC_ERRORS.get(self.status, "api_error")
            body = {"type": "error", "error": {"type": kind, "message": str(self)}}
        return web.Response(
            status=self.status,
            body=orjson.dumps(body),
            content_type="application/json",
            headers=self.headers,
        )


_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _forced_error(model: str) -> _RequestError | None:
    """The error a request for model "error-<status>" asks for, for pass-through tests."""
    status_text = model.removeprefix("error-")
    if status_text == model or not status_text.isdigit() or not 400 <= int(status_text) <= 599:
        return None
    status = int(status_text)
    message = f"Simulated error {status} requested by model {model!r}."
    if status == 401:
        return _RequestError(status, message, code="invalid_api_key")
    if status == 404:
        return _RequestError(status, message, code="model_not_found")
    if status == 429:
        return _RequestError(
            status,
            message,
            type_="rate_limit_exceeded",
            code="rate_limit_exceeded",
            headers={"retry-after": "1"},
        )
    if status >= 500:
        return _RequestError(status, message, type_="server_error")
    return _RequestError(status, message)


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _RequestError(400, "max_tokens must be a positive integer.", param="max_tokens")
    if value > MAX_TOKENS_LIMIT:
        raise _RequestError(
            400,
            f"This model's maximum context length is {MAX_TOKENS_LIMIT} tokens. "
            f"However, you requested {value} tokens for the completion.",
            param="max_tokens",
            code="context_length_exceeded",
        )
    return value


@dataclass(slots=True)
class _Stats:
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_path: dict[str, int] = field(default_factory=dict)

    def enter(self, path: str) -> None:
        """A model request (chat, completions, responses, messages, embeddings) arrived."""
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.by_path[path] = self.by_path.get(path, 0) + 1

    def listed(self, path: str) -> None:
        """A `GET /v1/models` (a client's or the proxy's start-up probe): not a model request."""
        self.by_path[path] = self.by_path.get(path, 0) + 1

    def reset(self) -> None:
        self.requests = 0
        self.max_in_flight = self.in_flight
        self.by_path = {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "by_path": dict(self.by_path),
        }


_Outcome = Literal["ok", "error", "hang", "garbage", "cut"]


@dataclass(frozen=True, slots=True)
class _Job:
    """One parsed generation request."""

    chat: bool
    model: str
    answer: _Answer
    prompt_tokens: int
    stream: bool
    include_usage: bool
    form: str = "chat"  # chat, completion, responses or messages


class _Simulator:
    """The request handlers and the state of one simulated upstream."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = _Stats()
        self._rng = random.Random(config.seed)
        items = load_prompts(config.prompts_path)
        self._index = PromptIndex(items)
        self._answers: dict[str, dict[AnswerVariant, _Answer]] = {
            item.id: {v: _render(item.answer(v), chat=True) for v in ANSWER_VARIANTS}
            for item in items
        }
        self._variants = [v for v in ANSWER_VARIANTS if config.answer_mix.get(v, 0) > 0]
        self._cum_weights: list[float] = []
        for variant in self._variants:
            previous = self._cum_weights[-1] if self._cum_weights else 0.0
            self._cum_weights.append(previous + config.answer_mix[variant])
        self._failure_rate = (
            config.error_rate + config.hang_rate + config.garbage_rate + config.cut_rate
        )
        self._auth = None if config.require_api_key is None else f"Bearer {config.require_api_key}"
        self._slot: AbstractAsyncContextManager[Any] = (
            asyncio.Semaphore(config.concurrency_limit)
            if config.concurrency_limit
            else contextlib.nullcontext()
        )
        self._models_body = orjson.dumps(
            {
                "object": "list",
                "data": [
                    {
                        "id": config.model_name,
                        "object": "model",
                        "created": int(time.time()),
                        "owned_by": OWNER,
                    }
                ],
            }
        )

    # Random draws

    def _pick_variant(self) -> AnswerVariant:
        if len(self._variants) == 1:
            return self._variants[0]
        return self._rng.choices(self._variants, cum_weights=self._cum_weights)[0]

    def _outcome(self) -> _Outcome:
        if not self._failure_rate:
            return "ok"
        draw = self._rng.random()
        config = self.config
        if draw < config.error_rate:
            return "error"
        if draw < config.error_rate + config.hang_rate:
            return "hang"
        if draw < config.error_rate + config.hang_rate + config.garbage_rate:
            return "garbage"
        if draw < self._failure_rate:
            return "cut"
        return "ok"

    def _latency(self) -> float:
        mean = self.config.latency_ms / 1000
        if not mean or self.config.latency_dist == "constant":
            return mean
        if self.config.latency_dist == "exponential":
            return self._rng.expovariate(1 / mean)
        sigma = self.config.latency_sigma
        return self._rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)

    # Parsing

    def _check_auth(self, request: web.Request) -> None:
        if self._auth is None or request.headers.get("Authorization") == self._auth:
            return
        if request.headers.get("x-api-key") == self.config.require_api_key:
            return
        raise _RequestError(401, "Incorrect API key provided.", code="invalid_api_key")

    async def _parse(self, request: web.Request, chat: bool, form: str = "chat") -> _Job:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise _RequestError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise _RequestError(400, "The request body must be a JSON object.")
        if self.config.reject_unknown_fields and form in ("chat", "completion"):
            unknown = sorted(body.keys() - (CHAT_FIELDS if chat else COMPLETION_FIELDS))
            if unknown:
                raise _RequestError(
                    400,
                    f"Unknown parameter: '{unknown[0]}'.",
                    param=unknown[0],
                    code="unknown_parameter",
                )
        model = body.get("model", self.config.model_name)
        if not isinstance(model, str):
            raise _RequestError(400, "'model' must be a string.", param="model")
        forced = _forced_error(model)
        if forced is not None:
            raise forced
        max_tokens = _max_tokens(body)
        if form == "responses":
            answer, prompt_tokens = self._chat_answer({"messages": _responses_messages(body)})
        elif form == "messages":
            answer, prompt_tokens = self._chat_answer(body)
        elif chat:
            answer, prompt_tokens = self._chat_answer(body)
        else:
            answer, prompt_tokens = self._completion_answer(body)
        stream_options = body.get("stream_options")
        return _Job(
            chat=chat,
            model=model,
            answer=answer.truncated(max_tokens),
            prompt_tokens=prompt_tokens,
            stream=body.get("stream") is True,
            include_usage=isinstance(stream_options, dict)
            and stream_options.get("include_usage") is True,
            form=form,
        )

    def _chat_answer(self, body: dict[str, Any]) -> tuple[_Answer, int]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _RequestError(
                400, "'messages' must be a non-empty array of messages.", param="messages"
            )
        prompt_tokens = sum(
            estimate_tokens(message_text(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        text = last_user_text(messages) or ""
        return self._known_or_generic(text, chat=True), prompt_tokens

    def _completion_answer(self, body: dict[str, Any]) -> tuple[_Answer, int]:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise _RequestError(400, "'prompt' must be a string.", param="prompt")
        return self._known_or_generic(prompt, chat=False), estimate_tokens(prompt)

    def _known_or_generic(self, text: str, chat: bool) -> _Answer:
        item: PromptItem | None = self._index.get(text)
        if item is None:
            return _Answer.of(f"Simulated answer to: {text[:60]}")
        variant = self._pick_variant()
        if chat:
            return self._answers[item.id][variant]
        return _render(item.answer(variant), chat=False)

    # Handlers

    async def generate_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def generate_completion(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def generate_response(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True, form="responses")

    async def generate_message(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True, form="messages")

    async def _generate(
        self, request: web.Request, chat: bool, form: str | None = None
    ) -> web.StreamResponse:
        form = form or ("chat" if chat else "completion")
        self.stats.enter(request.path)
        try:
            self._check_auth(request)
            job = await self._parse(request, chat, form)
            async with self._slot:
                return await self._serve(request, job)
        except _RequestError as exc:
            return exc.response(form)
        finally:
            self.stats.in_flight -= 1

    async def _serve(self, request: web.Request, job: _Job) -> web.StreamResponse:
        outcome = self._outcome()
        if outcome == "hang":
            # Keeps its concurrency slot, as a stuck upstream worker would.
            await asyncio.sleep(HANG_SECONDS)
        delay = self._latency()
        if not job.stream and self.config.tokens_per_s:
            delay += job.answer.tokens / self.config.tokens_per_s
        if delay:
            await asyncio.sleep(delay)
        if outcome == "error":
            raise _RequestError(
                500,
                "The server had an error while processing your request. Sorry about that!",
                type_="server_error",
            )
        created = int(time.time())
        if job.stream:
            return await self._stream(request, job, created, outcome)
        body = orjson.dumps(_BODIES.get(job.form, _completion_body)(job, created))
        if outcome == "cut":
            return await _cut_off(request, web.StreamResponse(), body)
        if outcome == "garbage":
            body = body[: len(body) // 2]
        return web.Response(body=body, content_type="application/json")

    async def _stream(
        self, request: web.Request, job: _Job, created: int, outcome: _Outcome
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        events = _EVENTS.get(job.form, _stream_events)(job, created)
        if outcome == "cut":
            return await _cut_off(request, response, b"".join(events))
        await response.prepare(request)
        if outcome == "garbage":
            events = events[: max(1, len(events) // 2)]
            events.append(b'data: {"id": "chatcmpl-garbage", "choices": [{"delta": {"conte\n\n')
        try:
            if not self.config.tokens_per_s:
                await response.write(b"".join(events))
            else:
                await self._write_paced(response, events, job)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away mid-stream; nothing left to tell it
        return response

    async def _write_paced(
        self, response: web.StreamResponse, events: list[bytes], job: _Job
    ) -> None:
        """Send the opening chunk(s) and first token now, then one token every 1/tokens_per_s."""
        interval = 1 / self.config.tokens_per_s
        first = _opening_events(job)
        end = first + len(job.answer.pieces)
        await response.write(b"".join(events[: first + 1]))
        for event in events[first + 1 : end]:
            await asyncio.sleep(interval)
            await response.write(event)
        if events[end:]:
            await response.write(b"".join(events[end:]))

    async def models(self, request: web.Request) -> web.StreamResponse:
        self.stats.listed(request.path)
        try:
            self._check_auth(request)
            return web.Response(body=self._models_body, content_type="application/json")
        except _RequestError as exc:
            return exc.response()

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        return _RequestError(
            404, f"Invalid URL ({request.method} {request.path})", code="unknown_url"
        ).response()

    async def get_stats(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=orjson.dumps(self.stats.as_dict()), content_type="application/json"
        )

    async def reset_stats(self, request: web.Request) -> web.StreamResponse:
        self.stats.reset()
        return web.Response(
            body=orjson.dumps(self.stats.as_dict()), content_type="application/json"
        )


async def _cut_off(
    request: web.Request, response: web.StreamResponse, body: bytes
) -> web.StreamResponse:
    """Announce the whole body, send half of it, then drop the connection."""
    if response.content_type != "text/event-stream":
        response.content_type = "application/json"
        response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.abort()
    return response


def _usage(job: _Job) -> dict[str, int]:
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.answer.tokens,
        "total_tokens": job.prompt_tokens + job.answer.tokens,
    }


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _completion_body(job: _Job, created: int) -> dict[str, Any]:
    answer = job.answer
    choice: dict[str, Any]
    if not job.chat:
        choice = {"index": 0, "text": answer.text, "logprobs": None}
    elif answer.tool_name is None:
        choice = {"index": 0, "message": {"role": "assistant", "content": answer.text}}
    else:
        tool_call = {
            "id": _new_id("call_"),
            "type": "function",
            "function": {"name": answer.tool_name, "arguments": answer.text},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
        choice = {"index": 0, "message": message}
    choice["finish_reason"] = answer.finish_reason
    return {
        "id": _new_id("chatcmpl-" if job.chat else "cmpl-"),
        "object": "chat.completion" if job.chat else "text_completion",
        "created": created,
        "model": job.model,
        "choices": [choice],
        "usage": _usage(job),
    }


def _opening_events(job: _Job) -> int:
    """How many events precede the first token: the role chunk, and a tool call's header."""
    if job.form == "messages":
        return 3  # message_start, content_block_start, ping
    if job.form == "responses":
        return 2 if job.answer.tool_name is not None else 3
    if not job.chat:
        return 0
    return 1 if job.answer.tool_name is None else 2


def _stream_events(job: _Job, created: int) -> list[bytes]:
    """Every server-sent event of a streamed answer, in order, ready to write."""
    answer = job.answer
    head = orjson.dumps(
        {
            "id": _new_id("chatcmpl-" if job.chat else "cmpl-"),
            "object": "chat.completion.chunk" if job.chat else "text_completion",
            "created": created,
            "model": job.model,
        }
    )
    # Chunks share their envelope: splice each choice into `head` rather than dump a whole dict.
    open_choice = b"data: " + head[:-1] + b',"choices":[{"index":0,'
    close_choice = b',"logprobs":null,"finish_reason":null}]}\n\n'

    def chunk(fields: dict[str, Any]) -> bytes:
        return open_choice + orjson.dumps(fields)[1:-1] + close_choice

    events: list[bytes] = []
    final: dict[str, Any]
    if not job.chat:
        events.extend(chunk({"text": piece}) for piece in answer.pieces)
        final = {"text": ""}
    elif answer.tool_name is None:
        events.append(chunk({"delta": {"role": "assistant", "content": ""}}))
        events.extend(chunk({"delta": {"content": piece}}) for piece in answer.pieces)
        final = {"delta": {}}
    else:
        events.append(chunk({"delta": {"role": "assistant", "content": None}}))
        header = {
            "index": 0,
            "id": _new_id("call_"),
            "type": "function",
            "function": {"name": answer.tool_name, "arguments": ""},
        }
        events.append(chunk({"delta": {"tool_calls": [header]}}))
        events.extend(
            chunk({"delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}})
            for piece in answer.pieces
        )
        final = {"delta": {}}
    events.append(
        open_choice
        + orjson.dumps(final)[1:-1]
        + b',"logprobs":null,"finish_reason":'
        + orjson.dumps(answer.finish_reason)
        + b"}]}\n\n"
    )
    if job.include_usage:
        usage = orjson.dumps({"choices": [], "usage": _usage(job)})
        events.append(b"data: " + head[:-1] + b"," + usage[1:] + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def _responses_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A Responses request's input as chat messages, enough to find the prompt."""
    given = body.get("input")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    if not isinstance(given, list) or not given:
        raise _RequestError(400, "'input' must be a string or a non-empty array.", param="input")
    return [
        {"role": item.get("role"), "content": item.get("content")}
        for item in given
        if isinstance(item, dict) and item.get("role") is not None
    ]


def _tool_input(answer: _Answer) -> Any:
    try:
        return json.loads(answer.text)
    except ValueError:
        return {}


_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _message_body(job: _Job, created: int) -> dict[str, Any]:
    answer = job.answer
    block: dict[str, Any] = {"type": "text", "text": answer.text}
    if answer.tool_name is not None:
        block = {
            "type": "tool_use",
            "id": _new_id("toolu_"),
            "name": answer.tool_name,
            "input": _tool_input(answer),
        }
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": job.model,
        "content": [block],
        "stop_reason": _ANTHROPIC_STOP[answer.finish_reason],
        "stop_sequence": None,
        "usage": {"input_tokens": job.prompt_tokens, "output_tokens": answer.tokens},
    }


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


def _message_events(job: _Job, created: int) -> list[bytes]:
    answer = job.answer
    body = _message_body(job, created)
    start = {
        **body,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": job.prompt_tokens, "output_tokens": 1},
    }
    block = dict(body["content"][0])
    if answer.tool_name is None:
        block["text"] = ""
        deltas = [{"type": "text_delta", "text": piece} for piece in answer.pieces]
    else:
        block["input"] = {}
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in answer.pieces]
    events = [
        _sse("message_start", {"message": start}),
        _sse("content_block_start", {"index": 0, "content_block": block}),
        _sse("ping", {}),
    ]
    events += [_sse("content_block_delta", {"index": 0, "delta": d}) for d in deltas]
    events += [
        _sse("content_block_stop", {"index": 0}),
        _sse(
            "message_delta",
            {
                "delta": {"stop_reason": body["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": answer.tokens},
            },
        ),
        _sse("message_stop", {}),
    ]
    return events


def _response_item(job: _Job) -> dict[str, Any]:
    answer = job.answer
    if answer.tool_name is not None:
        return {
            "id": _new_id("fc_"),
            "type": "function_call",
            "status": "completed",
            "call_id": _new_id("call_"),
            "name": answer.tool_name,
            "arguments": answer.text,
        }
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": answer.text, "annotations": []}],
    }


def _response_body(job: _Job, created: int, item: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = job.answer
    incomplete = answer.finish_reason == "length"
    return {
        "id": _new_id("resp_"),
        "object": "response",
        "created_at": created,
        "status": "incomplete" if incomplete else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "model": job.model,
        "output": [item or _response_item(job)],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": job.prompt_tokens,
            "output_tokens": answer.tokens,
            "total_tokens": job.prompt_tokens + answer.tokens,
        },
    }


def _response_events(job: _Job, created: int) -> list[bytes]:
    answer = job.answer
    item = _response_item(job)
    body = _response_body(job, created, item)
    opening = {**body, "status": "in_progress", "output": [], "usage": None}
    at = {"output_index": 0, "item_id": item["id"]}
    events = [_sse("response.created", {"response": opening})]
    if answer.tool_name is not None:
        events.append(
            _sse(
                "response.output_item.added", {"output_index": 0, "item": {**item, "arguments": ""}}
            )
        )
        events += [
            _sse("response.function_call_arguments.delta", {**at, "delta": piece})
            for piece in answer.pieces
        ]
        events.append(
            _sse("response.function_call_arguments.done", {**at, "arguments": answer.text})
        )
    else:
        part = {"type": "output_text", "text": "", "annotations": []}
        events.append(
            _sse("response.output_item.added", {"output_index": 0, "item": {**item, "content": []}})
        )
        events.append(_sse("response.content_part.added", {**at, "content_index": 0, "part": part}))
        events += [
            _sse("response.output_text.delta", {**at, "content_index": 0, "delta": piece})
            for piece in answer.pieces
        ]
        events.append(
            _sse("response.output_text.done", {**at, "content_index": 0, "text": answer.text})
        )
    events.append(_sse("response.output_item.done", {"output_index": 0, "item": item}))
    end = "response.incomplete" if body["status"] == "incomplete" else "response.completed"
    events.append(_sse(end, {"response": body}))
    return events


_BODIES = {"messages": _message_body, "responses": _response_body}
_EVENTS = {"messages": _message_events, "responses": _response_events}


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    request_id = _new_id("req_")
    response.headers["x-request-id"] = request_id
    response.headers["request-id"] = request_id  # where Anthropic's SDK looks for it


def create_app(config: SimulatorConfig) -> web.Application:
    """The simulator as an aiohttp application."""
    simulator = _Simulator(config)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_response_prepare.append(_add_request_id)
    app.router.add_post("/v1/chat/completions", simulator.generate_chat)
    app.router.add_post("/v1/completions", simulator.generate_completion)
    app.router.add_post("/v1/responses", simulator.generate_response)
    app.router.add_post("/v1/messages", simulator.generate_message)
    app.router.add_get("/v1/models", simulator.models)
    app.router.add_get("/sim/stats", simulator.get_stats)
    app.router.add_post("/sim/reset", simulator.reset_stats)
    app.router.add_route("*", "/{tail:.*}", simulator.not_found)
    return app


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(config: SimulatorConfig, host: str = "127.0.0.1", port: int = 8001) -> None:
    """Serve the simulator until interrupted (blocking), on uvloop when it is installed."""
    web.run_app(
        create_app(config),
        host=host,
        port=port,
        access_log=None,
        handler_cancellation=True,
        loop=_new_event_loop(),
    )


class SimulatorThread:
    """The simulator served on its own event loop in a daemon thread, for tests and benchmarks."""

    def __init__(self, config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL of the running simulator, e.g. http://127.0.0.1:8001/v1."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> str:
        """Start serving and return the base URL once the server listens."""
        if self._thread is not None:
            raise RuntimeError("the simulator thread is already started")
        app = create_app(self.config)  # in the caller's thread, so a bad config raises here
        self._thread = threading.Thread(target=self._main, args=(app,), daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self.base_url

    def stop(self) -> None:
        """Stop serving, cancel what is still in flight, and close the event loop."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _main(self, app: web.Application) -> None:
        loop = self._loop = _new_event_loop()
        try:
            loop.run_until_complete(self._serve(app))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, app: web.Application) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1
        )
        try:
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            await runner.cleanup()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()


@contextlib.contextmanager
def serve_in_thread(
    config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Run the simulator in a background thread; yield its base URL, stop it on exit."""
    with SimulatorThread(config, host, port) as base_url:
        yield base_url
