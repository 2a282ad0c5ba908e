"""Secrets and privacy through the whole loop: proxy, broker, real worker, database, logs."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import openai
import pytest
from sqlalchemy import select

from shadow.settings import Settings
from storage.db import make_engine, session_scope
from storage.models import NoiseReask, RequestPair, Score
from tests.conftest import distributed_settings, table_dump, wait_for

pytestmark = pytest.mark.integration

CLIENT_KEY = "sk-client-planted-" + uuid.uuid4().hex
PRIMARY_KEY = "sk-primary-planted-" + uuid.uuid4().hex
CANDIDATE_KEY = "sk-candidate-planted-" + uuid.uuid4().hex
HEADER_VALUE = "header-planted-" + uuid.uuid4().hex
SECRETS = (CLIENT_KEY, PRIMARY_KEY, CANDIDATE_KEY, HEADER_VALUE)

# The simulated upstreams answer an unknown prompt with its first 60 characters, so the
# personal data comes back in both answers and in the noise re-ask too.
EMAIL = f"ann.{uuid.uuid4().hex[:8]}@example.com"
PHONE = "+1 415 555 2671"
CARD = "4111 1111 1111 1111"
PROMPTS = (f"Mail {EMAIL} or call {PHONE}", f"My card is {CARD}, TICKET-90210 ok?")
TEXT_METRICS = ("quality.semantic_similarity", "quality.rouge_l", "noise.semantic_similarity")


def _config(primary: str, candidate: str) -> str:
    use_case = (
        "    primary: {{upstream: api, model: gpt-4o-mini}}\n"
        "    candidate: {{upstream: gpu, model: cand-model}}\n"
        "    shadow: {{sample_rate: 1.0, noise_rate: 1.0, timeout_s: 10}}\n"
        "    privacy: {privacy}\n"
    )
    return (
        "upstreams:\n"
        f"  api: {{base_url: {primary}, api_key_env: TEST_PRIMARY_KEY}}\n"
        f"  gpu: {{base_url: {candidate}, api_key_env: TEST_CANDIDATE_KEY}}\n"
        "privacy: {redact: [email, phone, card], patterns: {ticket: 'TICKET-\\d+'}}\n"
        "use_cases:\n"
        "  redacted:\n" + use_case.format(privacy="{}") + "  hashed:\n"
        "" + use_case.format(privacy="{store_text: false}")
    )


def _send(url: str) -> dict[str, list[str]]:
    client = openai.OpenAI(
        base_url=f"{url}/v1",
        api_key=CLIENT_KEY,
        max_retries=0,
        timeout=30,
        default_headers={"X-Planted-Header": HEADER_VALUE},
    )
    sent: dict[str, list[str]] = {"redacted": [], "hashed": []}
    for use_case, ids in sent.items():
        for i, prompt in enumerate(PROMPTS * 2):
            kwargs: dict[str, Any] = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": prompt}],
                "extra_headers": {"X-Switchover-Use-Case": use_case},
            }
            if i % 2:
                with client.chat.completions.with_streaming_response.create(
                    stream=True, **kwargs
                ) as raw:
                    assert list(raw.parse())
                    ids.append(raw.headers["x-switchover-pair-id"])
            else:
                raw = client.chat.completions.with_raw_response.create(**kwargs)
                # The client gets the answer as it was: redaction is for what is stored.
                answer = raw.parse().choices[0].message.content
                assert (EMAIL in answer) == (EMAIL in prompt)
                ids.append(raw.headers["x-switchover-pair-id"])
    return sent


def _stored(url: str, ids: list[str]):
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            pairs = session.scalars(select(RequestPair).where(RequestPair.id.in_(ids))).all()
            noise = session.scalars(select(NoiseReask).where(NoiseReask.pair_id.in_(ids))).all()
            scores = session.execute(
                select(Score.pair_id, Score.metric, Score.value).where(Score.pair_id.in_(ids))
            ).all()
            return list(pairs), list(noise), scores
    finally:
        engine.dispose()


def _all_scored(url: str, ids: list[str]) -> bool:
    _, _, scores = _stored(url, ids)
    done = {(pair_id, metric) for pair_id, metric, value in scores if value is not None}
    return all((pair_id, metric) in done for pair_id in ids for metric in TEXT_METRICS)


def _check_stored(url: str, sent: dict[str, list[str]]) -> None:
    """Redacted text in one use case, none at all in the other; every metric scored in both."""
    everything = sent["redacted"] + sent["hashed"]
    wait_for(lambda: len(_stored(url, everything)[0]) == len(everything), timeout=90)
    wait_for(lambda: _all_scored(url, everything), timeout=240)
    dump = table_dump(url)
    for private in (EMAIL, PHONE, CARD, "4111111111111111", "TICKET-90210"):
        assert private not in dump
    pairs, noise, scores = _stored(url, sent["redacted"])
    assert all(pair.text_stored for pair in pairs)
    texts = "".join(p.request_body + p.primary_text + p.candidate_text for p in pairs)
    for placeholder in ("[EMAIL]", "[PHONE]", "[CARD]", "[TICKET]"):
        assert placeholder in texts
    assert any("[EMAIL]" in p.primary_text and "[EMAIL]" in p.candidate_text for p in pairs)
    assert any("[EMAIL]" in n.text for n in noise)

    pairs, noise, scores = _stored(url, sent["hashed"])
    assert len(pairs) == len(noise) == len(sent["hashed"])
    for pair in pairs:
        assert not pair.text_stored
        assert pair.request_body is None
        assert pair.primary_text is None
        assert pair.candidate_text is None
        assert pair.primary_tool_calls is None
        assert pair.candidate_tool_calls is None
        assert len(pair.request_sha256) == len(pair.primary_sha256) == 64
        assert len(pair.candidate_sha256) == 64
        assert pair.primary_completion_tokens
        assert pair.candidate_latency_ms > 0
    for reask in noise:
        assert reask.text is None
        assert len(reask.sha256) == 64
    similarity = [v for _, m, v in scores if m == "quality.semantic_similarity"]
    assert len(similarity) == len(pairs)
    # Both sides echo the same (redacted) prompt: the texts reached the evaluators.
    assert min(similarity) > 0.99


def test_secrets_are_never_stored_or_logged_and_privacy_holds_on_postgres(
    simulator, proxy, worker_env, start_worker, postgres_url, monkeypatch, caplog, capfd
):
    """Planted keys (client header, upstream keys from the config's env vars) in no table and
    no log line; redaction and `store_text: false` through a real worker on PostgreSQL."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TEST_PRIMARY_KEY", PRIMARY_KEY)
    monkeypatch.setenv("TEST_CANDIDATE_KEY", CANDIDATE_KEY)
    primary = simulator(require_api_key=PRIMARY_KEY, tokens_per_s=500)
    candidate = simulator(require_api_key=CANDIDATE_KEY, tokens_per_s=500)
    config = _config(primary, candidate)
    env = worker_env(
        config, postgres_url, TEST_PRIMARY_KEY=PRIMARY_KEY, TEST_CANDIDATE_KEY=CANDIDATE_KEY
    )
    worker = start_worker(env, 4, "--loglevel", "DEBUG")
    url = proxy(config, distributed_settings(env))
    sent = _send(url)
    _check_stored(url=postgres_url, sent=sent)
    pairs, _, _ = _stored(postgres_url, sent["redacted"] + sent["hashed"])
    assert all(pair.status == "ok" for pair in pairs), "the upstream keys were not used"

    worker.stop()
    logs = "".join(worker.output) + caplog.text + "".join(capfd.readouterr())
    assert "pair" in logs.lower(), "no log line was captured"
    dump = table_dump(postgres_url)
    for secret in SECRETS:
        assert secret not in dump
        assert secret not in logs
    assert EMAIL not in logs, [line for line in logs.splitlines() if EMAIL in line][:3]


def test_privacy_in_embedded_mode_on_sqlite(simulator, proxy, tmp_path, monkeypatch):
    """The same guarantees with the in-process broker and worker on SQLite."""
    database = f"sqlite:///{tmp_path / 'private.db'}"
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", database)
    monkeypatch.delenv("SWITCHOVER_BROKER_URL", raising=False)
    monkeypatch.setenv("TEST_PRIMARY_KEY", PRIMARY_KEY)
    monkeypatch.setenv("TEST_CANDIDATE_KEY", CANDIDATE_KEY)
    primary = simulator(require_api_key=PRIMARY_KEY)
    candidate = simulator(require_api_key=CANDIDATE_KEY)
    url = proxy(_config(primary, candidate), Settings(broker_url=None))
    sent = _send(url)
    _check_stored(url=database, sent=sent)
    dump = table_dump(database)
    for secret in SECRETS:
        assert secret not in dump
