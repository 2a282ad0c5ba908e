"""Request translation between API forms: what carries over, and what is refused."""

from __future__ import annotations

import json

import pytest

from shadow.apis.responses import output_items, self_contained
from shadow.apis.translate import (
    Untranslatable,
    chat_to_messages,
    for_candidate,
    messages_to_chat,
    responses_to_chat,
)

TOOL = {
    "name": "get_order",
    "description": "Look an order up",
    "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
}


def test_messages_with_system_history_and_tool_use_become_chat():
    request = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief."}],
        "stop_sequences": ["END"],
        "tools": [TOOL],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": "Where is order 7?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_order",
                        "input": {"id": "7"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "shipped"},
                    {"type": "text", "text": "And when?"},
                ],
            },
        ],
    }
    chat = messages_to_chat(request)
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is order 7?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "get_order", "arguments": '{"id":"7"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "shipped"},
        {"role": "user", "content": "And when?"},
    ]  # fmt: skip
    assert chat["stop"] == ["END"]
    assert chat["max_tokens"] == 100
    assert chat["tool_choice"] == "required"
    assert chat["parallel_tool_calls"] is False
    assert chat["tools"][0]["function"]["parameters"] == TOOL["input_schema"]


@pytest.mark.parametrize(
    "extra",
    [
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"top_k": 5},
        {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
    ],
)
def test_messages_features_without_a_chat_equivalent_are_refused(extra):
    request = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(Untranslatable):
        messages_to_chat(request | extra)


def test_responses_with_instructions_function_calls_and_json_schema_become_chat():
    request = {
        "model": "gpt-4o-mini",
        "instructions": "Answer in JSON.",
        "max_output_tokens": 50,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Order 7?"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_order",
             "arguments": '{"id": "7"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "shipped"},
        ],
        "tools": [{"type": "function", "name": "get_order", "parameters": {"type": "object"}}],
        "text": {"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}}},
        "store": False,
    }  # fmt: skip
    chat = responses_to_chat(request)
    assert chat["messages"][0] == {"role": "system", "content": "Answer in JSON."}
    assert chat["messages"][1] == {"role": "user", "content": "Order 7?"}
    assert chat["messages"][2]["tool_calls"][0]["function"]["name"] == "get_order"
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": "shipped"}
    assert chat["max_tokens"] == 50
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "o", "schema": {"type": "object"}},
    }
    assert "store" not in chat


def test_responses_built_in_tools_are_refused():
    with pytest.raises(Untranslatable):
        responses_to_chat({"model": "m", "input": "x", "tools": [{"type": "web_search"}]})


def test_chat_to_messages_moves_system_and_tool_results():
    chat = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Order 7?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "get_order", "arguments": '{"id": "7"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
        ],
        "stop": "END",
        "tools": [{"type": "function", "function": {"name": "get_order",
                                                     "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_order"}},
    }  # fmt: skip
    messages = chat_to_messages(chat)
    assert messages["system"] == "Be brief."
    assert messages["max_tokens"] == 4096
    assert messages["stop_sequences"] == ["END"]
    assert messages["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "get_order", "input": {"id": "7"}}
    ]
    assert messages["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "shipped"}],
    }
    assert messages["tool_choice"] == {"type": "tool", "name": "get_order"}
    with pytest.raises(Untranslatable):
        chat_to_messages(chat | {"response_format": {"type": "json_object"}})


def test_the_candidate_gets_the_form_its_upstream_serves():
    request = {"model": "m", "input": "hi"}
    assert for_candidate("responses", request, ["responses"]) == ("responses", request)
    form, body = for_candidate("responses", request, ["chat.completions"])
    assert form == "chat.completions"
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    form, body = for_candidate("responses", request, ["messages"])
    assert form == "messages"
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    with pytest.raises(Untranslatable):
        for_candidate("completions", {"prompt": "x"}, ["messages"])


def test_a_turn_with_history_is_self_contained():
    response = {
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "id": "msg_1", "role": "assistant",
             "content": [{"type": "output_text", "text": "Hello!"}]},
        ]
    }  # fmt: skip
    history = [{"type": "message", "role": "user", "content": "Hi"}, *output_items(response)]
    body = self_contained(
        {"model": "m", "input": "Again", "previous_response_id": "resp_1"}, history
    )
    assert "previous_response_id" not in body
    assert [item["role"] for item in body["input"]] == ["user", "assistant", "user"]
    assert json.dumps(body).count("reasoning") == 0
