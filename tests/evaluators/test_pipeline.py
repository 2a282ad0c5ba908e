"""Scoring end to end: stored pair → broker → real Celery worker → rows in the scores table."""

from __future__ import annotations

import os
import re
import subprocess
import time
from typing import Any

import openai
import pytest
from sqlalchemy import update

from evaluators.tasks import BATCH_SIZE, SCORE_PAIRS
from shadow.broker import create_celery
from shadow.settings import Settings
from shadow.simulator.prompts import load_prompts
from storage.db import make_engine
from storage.models import Score
from tests.conftest import VENV_BIN, config_text, distributed_settings, wait_for
from tests.evaluators.helpers import by_pair, pair_create, prompt_pair, scores, store

pytestmark = pytest.mark.integration

PROMPTS = load_prompts()
TEXT_ITEMS = [item for item in PROMPTS if item.kind == "support"]
ALWAYS = {
    "primary.latency_ms",
    "candidate.latency_ms",
    "primary.ttft_ms",
    "candidate.ttft_ms",
    "candidate.error",
    "latency.ratio",
    "quality.semantic_similarity",
    "quality.rouge_l",
    "quality.bleu",
    "quality.exact_match",
    "quality.refusal",
    "quality.length_ratio",
    "cost.primary_usd",
}


def _send(env, *pair_ids, times=1):
    settings = distributed_settings(env)
    app = create_celery(settings)
    for _ in range(times):
        for pair_id in pair_ids:
            app.send_task(SCORE_PAIRS, args=(pair_id,), queue=settings.scoring_queue_name)


@pytest.mark.parametrize("db", ["postgres_url", "sqlite_url"])
def test_stored_pairs_are_scored_once_by_a_worker(db, request, worker_env, start_worker):
    """Every pair gets one row per applicable metric, even when its job arrives three times."""
    url = request.getfixturevalue(db)
    pairs = [prompt_pair(item, use_case=f"once-{db}") for item in TEXT_ITEMS[:6]]
    pairs.append(pair_create("Same words.", "Same words.", use_case=f"once-{db}", noise="Other"))
    pair_ids = store(url, *pairs)
    env = worker_env(config_text("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"), url)
    _send(env, *pair_ids, times=3)
    start_worker(env, concurrency=2)
    wait_for(lambda: len(by_pair(scores(url, pair_ids))) == len(pair_ids), timeout=120)
    time.sleep(1.5)  # let the duplicate deliveries run too
    rows = scores(url, pair_ids)
    table = by_pair(rows)
    assert len(rows) == sum(len(metrics) for metrics in table.values()), "a metric stored twice"
    for pair_id in pair_ids:
        assert ALWAYS <= set(table[pair_id]), set(table[pair_id]) ^ ALWAYS
        assert all(row.error is None and row.value is not None for row in table[pair_id].values())
        assert "quality.json_valid" not in table[pair_id]
        assert "cost.candidate_usd" not in table[pair_id]
    identical = table[pair_ids[-1]]
    assert identical["quality.exact_match"].value == 1.0
    assert identical["quality.semantic_similarity"].value == pytest.approx(1.0)
    assert identical["noise.semantic_similarity"].value < 0.9
    for pair_id in pair_ids[:-1]:
        assert 0.5 < table[pair_id]["quality.semantic_similarity"].value < 1.0
        assert table[pair_id]["cost.primary_usd"].value == pytest.approx(
            (1000 * 0.15 + 200 * 0.60) / 1e6
        )


def test_under_load_the_worker_scores_full_batches(postgres_url, worker_env, start_worker):
    """A backlog is scored in batches of BATCH_SIZE, not cut by the buffer's flush timer.

    The timer used to flush whatever was buffered while the prefetch room was held by batches
    waiting their turn, which cut every later batch in two (64, 2, 64, 2, … here).
    """
    total = 4 * BATCH_SIZE + 10
    pairs = [
        pair_create(f"Answer number {i}.", f"Reply number {i}.", use_case="backlog")
        for i in range(total)
    ]
    pair_ids = store(postgres_url, *pairs)
    env = worker_env(config_text("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"), postgres_url)
    _send(env, *pair_ids)
    worker = start_worker(env, 2, "--queues", "scoring")
    wait_for(lambda: len(by_pair(scores(postgres_url, pair_ids))) == total, timeout=180)
    sizes = [int(m) for m in re.findall(r"scored (\d+) pairs in", "".join(worker.output))]
    assert sum(sizes) == total
    # all full but the last, and the first if the first messages came slower than the timer
    assert sizes[1:-1] == [BATCH_SIZE] * (len(sizes) - 2), sizes
    assert len(sizes) <= 6, sizes


def test_a_failing_evaluator_does_not_stop_the_others(postgres_url, worker_env, start_worker):
    """A judge that cannot be reached leaves error rows for its metric; the rest is scored."""
    pair_ids = store(
        postgres_url,
        *(prompt_pair(item, use_case="judge-down") for item in TEXT_ITEMS[:3]),
        pair_create("x", None, use_case="judge-down", candidate_error="timeout"),
    )
    config = config_text("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1") + (
        "evaluators:\n"
        "  judge: {enabled: true, base_url: 'http://127.0.0.1:9/v1', model: judge,"
        " timeout_s: 2}\n"
    )
    env = worker_env(config, postgres_url)
    _send(env, *pair_ids)
    start_worker(env, concurrency=2)
    wait_for(lambda: len(by_pair(scores(postgres_url, pair_ids))) == 4, timeout=120)
    table = by_pair(scores(postgres_url, pair_ids))
    for pair_id in pair_ids[:3]:
        judge = table[pair_id]["quality.judge_score"]
        assert judge.value is None
        assert "ConnectError" in judge.error
        assert table[pair_id]["quality.rouge_l"].value > 0
    failed = table[pair_ids[3]]
    assert failed["candidate.error"].value == 1.0
    assert failed["candidate.latency_ms"].value == 180.0
    assert not {m for m in failed if m.startswith("quality.")}, "a failed answer has no quality"


def _ask(client: openai.OpenAI, item) -> str:
    kwargs: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [m.model_dump() for m in item.messages],
    }
    if item.tools:
        kwargs["tools"] = list(item.tools)
    if item.response_format:
        kwargs["response_format"] = item.response_format
    raw = client.chat.completions.with_raw_response.create(**kwargs)
    assert raw.parse().choices
    return raw.headers["x-switchover-pair-id"]


def test_mirrored_pairs_are_scored_after_they_are_stored(
    simulator, proxy, worker_env, start_worker, postgres_url, monkeypatch
):
    """Proxy → shadow job → stored pair → scoring job → scores, with one worker on both queues."""
    monkeypatch.setenv("TEST_PRIMARY_KEY", "sk-test-primary")
    primary = simulator()
    candidate = simulator(answer_mix={"paraphrase": 1.0})
    config = config_text(
        primary, candidate, use_case="mirrored", noise_rate=1.0, primary_key_env="TEST_PRIMARY_KEY"
    )
    env = worker_env(config, postgres_url, TEST_PRIMARY_KEY="sk-test-primary")
    start_worker(env)
    url = proxy(config, distributed_settings(env))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0)
    kinds = ("support", "classification", "json_extraction", "tool_call")
    items = [next(item for item in PROMPTS if item.kind == kind) for kind in kinds]
    pair_ids = [_ask(client, item) for item in items]
    wait_for(lambda: len(by_pair(scores(postgres_url, pair_ids))) == len(pair_ids), timeout=180)
    table = by_pair(scores(postgres_url, pair_ids))
    support, classification, extraction, tool_call = (table[pair_id] for pair_id in pair_ids)
    for metrics in table.values():
        assert {"candidate.latency_ms", "candidate.error", "latency.ratio"} <= set(metrics)
        assert metrics["candidate.error"].value == 0.0
    assert 0.5 < support["quality.semantic_similarity"].value < 1.0
    assert 0.5 < support["noise.semantic_similarity"].value <= 1.0
    # The simulated candidate's paraphrases: "Positive." for "positive", the same JSON with
    # its keys reordered, the same tool call with its arguments reordered.
    assert classification["quality.exact_match"].value == 1.0
    assert extraction["quality.json_valid"].value == 1.0
    assert extraction["quality.json_match"].value == 1.0
    assert tool_call["quality.tool_call_match"].value == 1.0
    assert "quality.semantic_similarity" not in tool_call


def test_embedded_mode_scores_on_sqlite(simulator, proxy, tmp_path, monkeypatch, encoder):
    """Nothing configured: the in-process worker stores and scores the pairs in SQLite."""
    database = f"sqlite:///{tmp_path / 'embedded.db'}"
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", database)
    monkeypatch.delenv("SWITCHOVER_BROKER_URL", raising=False)
    primary, candidate = simulator(), simulator(answer_mix={"paraphrase": 1.0})
    config = config_text(primary, candidate, use_case="embedded")
    url = proxy(config, Settings(broker_url=None))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0)
    pair_ids = [_ask(client, item) for item in TEXT_ITEMS[:10]]
    wait_for(lambda: len(by_pair(scores(database, pair_ids))) == 10, timeout=120)
    for metrics in by_pair(scores(database, pair_ids)).values():
        assert ALWAYS - {"cost.primary_usd"} <= set(metrics)


def _switchover(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "switchover"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_rescore_command(sqlite_url, tmp_path):
    """`switchover rescore` scores what is missing, then recomputes one metric on request."""
    config = tmp_path / "switchover.yaml"
    config.write_text(config_text("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"))
    pair_ids = store(sqlite_url, *(prompt_pair(item, use_case="re") for item in TEXT_ITEMS[:5]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHOVER_")}
    env |= {"SWITCHOVER_DATABASE_URL": sqlite_url, "SWITCHOVER_CONFIG": str(config)}

    done = _switchover("rescore", "--use-case", "re", "--unscored", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("5 pairs of re scored")
    before = by_pair(scores(sqlite_url, pair_ids))
    assert all(ALWAYS <= set(metrics) for metrics in before.values())

    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(update(Score).values(value=-1.0))
    engine.dispose()
    done = _switchover(
        "rescore", "--use-case", "re", "--metric", "quality.rouge_l", "--since", "1h", env=env
    )
    assert done.returncode == 0, done.stderr
    after = by_pair(scores(sqlite_url, pair_ids))
    for pair_id in pair_ids:
        assert after[pair_id]["quality.rouge_l"].value == before[pair_id]["quality.rouge_l"].value
        assert after[pair_id]["quality.bleu"].value == -1.0

    refused = _switchover("rescore", "--use-case", "re", "--metric", "quality.vibes", env=env)
    assert refused.returncode == 2
    assert "unknown metric(s): quality.vibes" in refused.stderr
