"""Redaction, `store_text: false` and secret masking of what a worker stores."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from shadow.config import ConfigError, PrivacySettings, parse_config
from shadow.worker.privacy import Redactor, answer_sha256, protect
from storage.schemas import AnswerFields, PairCreate

ALL = ("email", "phone", "card")
SECRET = "sk-planted-privacy-0123456789"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+tag@example.co.uk today", "write to [EMAIL] today"),
        ("call +44 20 7946 0958 now", "call [PHONE] now"),
        ("call (555) 123-4567 now", "call [PHONE] now"),
        ("call 555-123-4567 now", "call [PHONE] now"),
        ("Tel. 030 1234567.", "Tel. [PHONE]."),
        ("card 4111 1111 1111 1111 expires", "card [CARD] expires"),
        ("card 5500-0000-0000-0004 expires", "card [CARD] expires"),
        ("card 4111111111111111", "card [CARD]"),
    ],
)
def test_built_in_kinds_are_masked(text, expected):
    assert Redactor(ALL, [], []).text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the order of 2024-01-15 cost 1234.50 USD",
        "order number 4111 1111 1111 1112 (not a valid card number)",
        "we have 1 000 000 users and version 3.10.4",
        "at 10:30, room 101, 42 items",
    ],
)
def test_ordinary_numbers_are_left_alone(text):
    assert Redactor(ALL, [], []).text(text) == text


def test_only_the_chosen_kinds_are_masked():
    text = "mail a@b.io or call 555-123-4567"
    assert Redactor(("email",), [], []).text(text) == "mail [EMAIL] or call 555-123-4567"
    assert Redactor((), [], []).text(text) == text


def test_custom_patterns_come_first_and_are_named():
    redactor = Redactor(ALL, [("employee_id", r"EMP-\d{6}")], [])
    assert redactor.text("ask EMP-123456 at x@y.org") == "ask [EMPLOYEE_ID] at [EMAIL]"


def test_secrets_are_masked_even_without_redaction():
    redactor = Redactor((), [], [SECRET, "short"])
    assert redactor.text(f"key was {SECRET}, short") == "key was [SECRET], short"


def _pair(**noise_fields) -> PairCreate:
    request = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You help."},
            {"role": "user", "content": "I am ann@example.com,\ncall +1 415 555 2671"},
        ],
    }
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": json.dumps({"email": "ann@example.com"})},
    }
    return PairCreate(
        id="p1",
        use_case="support",
        endpoint="chat.completions",
        stream=False,
        created_at=datetime(2026, 11, 27, tzinfo=UTC),
        request_body=json.dumps(request),
        request_sha256="0" * 64,
        primary_model="gpt-4o-mini",
        primary_request_id=None,
        primary=AnswerFields(
            status_code=200,
            text="Hi ann@example.com",
            tool_calls=[call],
            latency_ms=10,
            completion_tokens=5,
        ),
        candidate_model="llama",
        candidate=AnswerFields(
            status_code=400,
            latency_ms=5,
            error=f"HTTP 400: bad key {SECRET} for ann@example.com",
            error_kind="http_status",
        ),
        noise=AnswerFields(status_code=200, text="Hello ann@example.com", latency_ms=9),
    )


def test_everything_stored_is_redacted_and_hashed_as_stored():
    protected = protect(_pair(), PrivacySettings(redact=ALL), [SECRET])
    stored = protected.stored
    assert protected.transient is None
    dumped = stored.model_dump_json()
    assert "ann@example.com" not in dumped
    assert "555 2671" not in dumped
    assert SECRET not in dumped
    request = json.loads(stored.request_body)
    assert request["messages"][1]["content"] == "I am [EMAIL],\ncall [PHONE]"
    assert request["messages"][0]["content"] == "You help."
    arguments = json.loads(stored.primary.tool_calls[0]["function"]["arguments"])
    assert arguments == {"email": "[EMAIL]"}
    assert stored.primary.tool_calls[0]["function"]["name"] == "lookup"
    assert stored.primary.text == "Hi [EMAIL]"
    assert stored.noise.text == "Hello [EMAIL]"
    assert stored.candidate.error == "HTTP 400: bad key [SECRET] for [EMAIL]"
    assert stored.request_sha256 == hashlib.sha256(stored.request_body.encode()).hexdigest()
    assert stored.noise.sha256 == hashlib.sha256(b"Hello [EMAIL]").hexdigest()
    assert stored.primary.sha256 == answer_sha256("Hi [EMAIL]", stored.primary.tool_calls)
    assert stored.candidate.sha256 is None
    assert stored.text_stored


def test_an_unredacted_body_is_stored_byte_for_byte():
    pair = _pair()
    stored = protect(pair, PrivacySettings(), []).stored
    assert stored.request_body == pair.request_body
    assert stored.request_sha256 == hashlib.sha256(pair.request_body.encode()).hexdigest()


def test_store_text_false_keeps_metrics_and_hashes_and_hands_texts_to_scoring():
    privacy = PrivacySettings(store_text=False, redact=("email",))
    protected = protect(_pair(), privacy, [SECRET])
    stored = protected.stored
    assert not stored.text_stored
    assert stored.request_body is None
    for answer in (stored.primary, stored.candidate, stored.noise):
        assert answer.text is None
        assert answer.tool_calls is None
    assert stored.candidate.error == "http_status (HTTP 400); text not stored"
    assert stored.primary.completion_tokens == 5
    assert stored.primary.latency_ms == 10
    assert stored.request_sha256 != "0" * 64
    assert stored.noise.sha256 == hashlib.sha256(b"Hello [EMAIL]").hexdigest()
    texts = protected.transient
    assert texts is not None
    assert texts.primary.text == "Hi [EMAIL]"
    assert texts.noise.text == "Hello [EMAIL]"
    assert json.loads(texts.request_body)["messages"][1]["content"].startswith("I am [EMAIL]")
    assert stored.request_sha256 == hashlib.sha256(texts.request_body.encode()).hexdigest()


CONFIG = """\
upstreams:
  a: {base_url: http://127.0.0.1:1/v1}
privacy:
  redact: [email, phone]
  retention_days: 30
use_cases:
  open:
    primary: {upstream: a, model: m}
    candidate: {upstream: a, model: n}
  hashed:
    primary: {upstream: a, model: m2}
    candidate: {upstream: a, model: n}
    privacy: {store_text: false, patterns: {ticket: "T-\\\\d+"}}
"""


def test_a_use_case_overrides_only_the_fields_it_sets():
    config = parse_config(CONFIG, "switchover.yaml")
    assert config.privacy_for("open") == PrivacySettings(
        redact=("email", "phone"), retention_days=30
    )
    hashed = config.privacy_for("hashed")
    assert hashed.store_text is False
    assert hashed.redact == ("email", "phone")
    assert hashed.retention_days == 30
    assert hashed.patterns == {"ticket": r"T-\d+"}
    assert config.privacy_for("gone-from-config").retention_days == 30


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            'patterns: {ticket: "T-(\\\\d+"}',
            "switchover.yaml:13: use_cases.hashed.privacy.patterns.ticket: not a valid regular "
            "expression: missing ), unterminated subpattern at position 2",
        ),
        (
            'patterns: {ticket: "x*"}',
            "switchover.yaml:13: use_cases.hashed.privacy.patterns.ticket: the pattern matches "
            "the empty string",
        ),
        ("redact: [ssn]", "use_cases.hashed.privacy.redact.0: Input should be 'email'"),
        ("retention_days: 0", "use_cases.hashed.privacy.retention_days: Input should be greater"),
    ],
)
def test_bad_privacy_settings_fail_with_line_and_field(section, message):
    text = CONFIG.replace('patterns: {ticket: "T-\\\\d+"}', section)
    with pytest.raises(ConfigError) as failed:
        parse_config(text, "switchover.yaml")
    assert message in str(failed.value)
