"""Requests from one API form to another: Messages <-> Chat Completions, Responses -> Chat.

A candidate gets a request in a form its upstream serves. Everything that changes what a model
answers is carried over or the request is refused with `Untranslatable` (never mirrored in a
different sense); fields that only concern the provider's bookkeeping (metadata, storage,
service tier) are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

CHAT = "chat.completions"
MESSAGES = "messages"
RESPONSES = "responses"
# Anthropic requires max_tokens; a chat request without one gets this many.
DEFAULT_MAX_TOKENS = 4096


class Untranslatable(ValueError):
    """The request uses something the target form cannot express faithfully."""


def for_candidate(
    endpoint: str, request: dict[str, Any], forms: Iterable[str]
) -> tuple[str, dict[str, Any]]:
    """The form a candidate serving `forms` gets the request in, and the request in it."""
    served = set(forms)
    if endpoint in served:
        return endpoint, request
    if endpoint in (MESSAGES, RESPONSES) and CHAT in served:
        return CHAT, to_chat(endpoint, request)
    if endpoint in (CHAT, RESPONSES) and MESSAGES in served:
        chat = request if endpoint == CHAT else responses_to_chat(request)
        return MESSAGES, chat_to_messages(chat)
    raise Untranslatable(f"the candidate serves {sorted(served)}, not {endpoint}")


def to_chat(endpoint: str, request: dict[str, Any]) -> dict[str, Any]:
    """A Messages or Responses request as a Chat Completions request."""
    return messages_to_chat(request) if endpoint == MESSAGES else responses_to_chat(request)


def _unknown(request: dict[str, Any], known: Iterable[str], what: str) -> None:
    extra = sorted(set(request) - set(known))
    if extra:
        raise Untranslatable(f"{what} field {extra[0]!r} has no faithful translation")


def _text_of(content: Any, what: str) -> str:
    """The text of a string or of a list of text blocks (any other block is refused)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise Untranslatable(f"{what} content is neither text nor blocks")
    parts = []
    for block in content:
        if not isinstance(block, dict) or block.get("type") not in (
            "text",
            "input_text",
            "output_text",
        ):
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise Untranslatable(f"{what} block {kind!r} is not text")
        parts.append(str(block.get("text", "")))
    return "".join(parts)


# --- Anthropic Messages -> Chat Completions ------------------------------------------------

# Besides the generation fields: prompt caching and where or for whom it runs, which do not
# change the answer (the newer SDK's `cache_control`, `inference_geo`, `workspace_id`, ...).
_MESSAGES_FIELDS = (
    "model",
    "messages",
    "system",
    "max_tokens",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "metadata",
    "service_tier",
    "cache_control",
    "inference_geo",
    "workspace_id",
    "user_profile_id",
    "diagnostics",
)


def _image_part(source: Any) -> dict[str, Any]:
    if isinstance(source, dict) and source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif isinstance(source, dict) and source.get("type") == "url":
        url = str(source.get("url"))
    else:
        raise Untranslatable("an image source other than base64 or url")
    return {"type": "image_url", "image_url": {"url": url}}


def _messages_tool_choice(choice: Any, chat: dict[str, Any]) -> None:
    if not isinstance(choice, dict):
        raise Untranslatable("tool_choice is not an object")
    kind = str(choice.get("type"))
    mapped = {"auto": "auto", "any": "required", "none": "none"}.get(kind)
    if kind == "tool":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif mapped is not None:
        chat["tool_choice"] = mapped
    else:
        raise Untranslatable(f"tool_choice {kind!r}")
    if choice.get("disable_parallel_tool_use"):
        chat["parallel_tool_calls"] = False


def _messages_turn(message: Any, out: list[dict[str, Any]]) -> None:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise Untranslatable("a message whose role is not user or assistant")
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        out.append({"role": role, "content": content})
        return
    if not isinstance(content, list):
        raise Untranslatable("message content is neither text nor blocks")
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image" and role == "user":
            parts.append(_image_part(block.get("source")))
        elif kind == "tool_use" and role == "assistant":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        elif kind == "tool_result" and role == "user":
            if block.get("is_error"):
                raise Untranslatable("a tool_result marked is_error")
            text = _text_of(block.get("content", ""), "tool_result")
            out.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text})
        else:
            raise Untranslatable(f"a {kind!r} block in a {role} message")
    if role == "assistant":
        text = "".join(p["text"] for p in parts)
        turn: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            turn["tool_calls"] = calls
        out.append(turn)
    elif parts:
        only_text = all(p["type"] == "text" for p in parts)
        out.append(
            {"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts}
        )


def messages_to_chat(request: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as a Chat Completions request."""
    _unknown(request, _MESSAGES_FIELDS, "Messages")
    messages: list[dict[str, Any]] = []
    if request.get("system"):
        messages.append({"role": "system", "content": _text_of(request["system"], "system")})
    for message in request.get("messages") or []:
        _messages_turn(message, messages)
    chat: dict[str, Any] = {"model": request.get("model"), "messages": messages}
    for name in ("max_tokens", "temperature", "top_p", "stream"):
        if request.get(name) is not None:
            chat[name] = request[name]
    if request.get("stop_sequences"):
        chat["stop"] = list(request["stop_sequences"])
    if request.get("tools"):
        chat["tools"] = [_chat_tool_from_anthropic(tool) for tool in request["tools"]]
    if request.get("tool_choice") is not None:
        _messages_tool_choice(request["tool_choice"], chat)
    return chat


def _chat_tool_from_anthropic(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise Untranslatable(f"a server tool {kind!r}")
    function: dict[str, Any] = {
        "name": tool.get("name"),
        "parameters": tool.get("input_schema") or {},
    }
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


# --- OpenAI Responses -> Chat Completions --------------------------------------------------

_RESPONSES_FIELDS = (
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "stream",
    "store",
    "metadata",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "service_tier",
    "truncation",
    "include",
    "reasoning",
)


def _responses_part(part: Any) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        return {"type": "image_url", "image_url": {"url": part["image_url"]}}
    raise Untranslatable(f"an input part {kind!r}")


def _responses_items(items: list[Any], out: list[dict[str, Any]]) -> None:
    for item in items:
        if not isinstance(item, dict):
            raise Untranslatable("an input item that is not an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise Untranslatable(f"an input message with role {role!r}")
            content = item.get("content")
            if not isinstance(content, str):
                parts = [_responses_part(p) for p in content or []]
                if role != "user" or all(p["type"] == "text" for p in parts):
                    content = "".join(p.get("text", "") for p in parts if p["type"] == "text")
                    if len(parts) != sum(p["type"] == "text" for p in parts):
                        raise Untranslatable(f"a non-text part in a {role} message")
                else:
                    content = parts
            out.append({"role": "system" if role == "developer" else role, "content": content})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _text_of(output, "function_call_output")
            out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        elif kind == "reasoning":
            continue  # the API model's own reasoning: not part of what a chat model is shown
        else:
            raise Untranslatable(f"an input item {kind!r}")


def _responses_tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise Untranslatable(f"a built-in tool {kind!r}")
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": function}


def _responses_format(text: Any, chat: dict[str, Any]) -> None:
    if not isinstance(text, dict):
        raise Untranslatable("text is not an object")
    _unknown(text, ("format", "verbosity"), "text")
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    fmt = text.get("format") or {"type": "text"}
    kind = fmt.get("type")
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        chat["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif kind != "text":
        raise Untranslatable(f"text format {kind!r}")


def responses_to_chat(request: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI Responses request (self-contained) as a Chat Completions request."""
    _unknown(request, _RESPONSES_FIELDS, "Responses")
    if request.get("truncation") not in (None, "disabled"):
        raise Untranslatable("truncation other than disabled")
    messages: list[dict[str, Any]] = []
    if request.get("instructions"):
        messages.append(
            {"role": "system", "content": _text_of(request["instructions"], "instructions")}
        )
    given = request.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list):
        _responses_items(given, messages)
    else:
        raise Untranslatable("input is neither text nor items")
    chat: dict[str, Any] = {"model": request.get("model"), "messages": messages}
    for name in (
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "stream",
        "user",
        "safety_identifier",
        "prompt_cache_key",
    ):
        if request.get(name) is not None:
            chat[name] = request[name]
    if request.get("max_output_tokens") is not None:
        chat["max_tokens"] = request["max_output_tokens"]
    reasoning = request.get("reasoning") or {}
    if reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    if request.get("tools"):
        chat["tools"] = [_responses_tool(tool) for tool in request["tools"]]
    choice = request.get("tool_choice")
    if isinstance(choice, str):
        chat["tool_choice"] = choice
    elif isinstance(choice, dict):
        if choice.get("type") != "function":
            raise Untranslatable(f"tool_choice {choice.get('type')!r}")
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    if request.get("text") is not None:
        _responses_format(request["text"], chat)
    return chat


# --- Chat Completions -> Anthropic Messages ------------------------------------------------

_CHAT_FIELDS = (
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "seed",
    "n",
    "response_format",
    "metadata",
    "store",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
)


def _anthropic_image(part: dict[str, Any]) -> dict[str, Any]:
    url = str((part.get("image_url") or {}).get("url", ""))
    if url.startswith("data:") and ";base64," in url:
        media_type, data = url[5:].split(";base64,", 1)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _anthropic_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content or []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            blocks.append(_anthropic_image(part))
        else:
            raise Untranslatable(f"a content part {kind!r}")
    return blocks


def chat_to_messages(request: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions request as an Anthropic Messages request."""
    _unknown(request, _CHAT_FIELDS, "Chat Completions")
    if (request.get("n") or 1) != 1:
        raise Untranslatable("n other than 1")
    fmt = request.get("response_format")
    if fmt is not None and fmt.get("type") != "text":
        raise Untranslatable("response_format (Messages has no structured output mode)")
    temperature = request.get("temperature")
    if temperature is not None and temperature > 1:
        raise Untranslatable("a temperature above Anthropic's range")
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in request.get("messages") or []:
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            system.append(_text_of(message.get("content"), role))
        elif role == "user":
            messages.append({"role": "user", "content": _anthropic_blocks(message.get("content"))})
        elif role == "assistant":
            blocks = _anthropic_blocks(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    arguments = orjson.loads(function.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    raise Untranslatable("tool call arguments that are not JSON") from None
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": arguments,
                    }
                )
            messages.append({"role": "assistant", "content": blocks})
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": _text_of(message.get("content"), "tool"),
            }
            last = messages[-1] if messages else None
            if (
                last is not None
                and last["role"] == "user"
                and all(b["type"] == "tool_result" for b in last["content"])
            ):
                last["content"].append(result)
            else:
                messages.append({"role": "user", "content": [result]})
        else:
            raise Untranslatable(f"a message with role {role!r}")
    out: dict[str, Any] = {
        "model": request.get("model"),
        "messages": messages,
        "max_tokens": request.get("max_completion_tokens")
        or request.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p", "stream"):
        if request.get(name) is not None:
            out[name] = request[name]
    stop = request.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if request.get("user"):
        out["metadata"] = {"user_id": request["user"]}
    if request.get("tools"):
        out["tools"] = [_anthropic_tool(tool) for tool in request["tools"]]
    _anthropic_tool_choice(request, out)
    return out


def _anthropic_tool(tool: Any) -> dict[str, Any]:
    function = (
        tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    )
    if not isinstance(function, dict):
        raise Untranslatable("a tool that is not a function")
    out = {
        "name": function.get("name"),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _anthropic_tool_choice(request: dict[str, Any], out: dict[str, Any]) -> None:
    choice = request.get("tool_choice")
    parallel = request.get("parallel_tool_calls")
    if choice is None and parallel is not False:
        return
    if isinstance(choice, dict):
        mapped = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    else:
        kind = {"auto": "auto", "required": "any", "none": "none", None: "auto"}.get(choice)
        if kind is None:
            raise Untranslatable(f"tool_choice {choice!r}")
        mapped = {"type": kind}
    if parallel is False and mapped["type"] != "none":
        mapped["disable_parallel_tool_use"] = True
    out["tool_choice"] = mapped
