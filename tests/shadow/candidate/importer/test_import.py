"""`switchover import` end to end: Batch files in, pairs judged by the criteria, nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from criteria.access.auth import create_token
from shadow.config import parse_config
from shadow.settings import Settings
from storage import aggregates
from storage.db import make_engine, session_scope
from storage.models import Import, RequestPair, Score
from tests.conftest import table_dump, wait_for
from tests.shadow.candidate.importer.batch_files import write_batch

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[4]
CRITERIA = {
    "criteria": [
        {
            "name": "answer overlap",
            "metric": "quality.rouge_l",
            "stat": "mean",
            "op": ">=",
            "threshold": 0.6,
            "critical": True,
        },
        {
            "name": "reliability",
            "metric": "candidate.error",
            "stat": "proportion",
            "op": "<=",
            "threshold": 0.2,
        },
        {
            "name": "tail latency",
            "metric": "candidate.latency_ms",
            "stat": "quantile",
            "q": 0.9,
            "op": "<=",
            "threshold": 5000,
            "source": "import",
        },
    ]
}


def _config(primary: str, candidates: dict[str, str], privacy: dict[str, str] | None = None) -> str:
    lines = ["upstreams:", f"  api: {{base_url: {primary}}}"]
    lines += [f"  {name}-gpu: {{base_url: {url}}}" for name, url in candidates.items()]
    lines += ["privacy: {redact: [email]}", "use_cases:"]
    for name in candidates:
        lines += [
            f"  {name}:",
            "    primary: {upstream: api, model: gpt-4o-mini}",
            f"    candidate: {{upstream: {name}-gpu, model: llama}}",
            "    shadow: {sample_rate: 1, noise_rate: 0, max_in_flight: 8, timeout_s: 20}",
            f"    criteria: {json.dumps(CRITERIA)}",
        ]
        if privacy and name in privacy:
            lines.append(f"    privacy: {privacy[name]}")
    return "\n".join(lines) + "\n"


def _env(tmp_path: Path, config: str, url: str) -> dict[str, str]:
    path = tmp_path / f"switchover-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHOVER_")}
    return env | {
        "SWITCHOVER_CONFIG": str(path),
        "SWITCHOVER_DATABASE_URL": url,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }


def _command(use_case: str, files: tuple[Path, ...], rate: float) -> list[str]:
    return [
        sys.executable, "-m", "shadow.cli", "import", *map(str, files),
        "--use-case", use_case, "--format", "openai-batch", "--rate", str(rate), "--json",
    ]  # fmt: skip


def _import(env, use_case, files, rate=200.0):
    done = subprocess.run(
        _command(use_case, files, rate), env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _count(url: str, model, *where) -> int:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    finally:
        engine.dispose()


def test_a_batch_imports_with_its_counts_and_the_criteria_judge_good_and_bad_candidates(
    simulator, proxy, tmp_path, sqlite_url
):
    primary = simulator()
    candidates = {
        "good": simulator(answer_mix={"reference": 1.0}),
        "bad": simulator(answer_mix={"wrong": 1.0}),
    }
    env = _env(tmp_path, _config(primary, candidates), sqlite_url)
    malformed, errors = (3, 77, 150, 199), (10, 11, 120)
    files = write_batch(tmp_path, 200, malformed=malformed, batch_errors=errors)

    first, stderr = _import(env, "good", files)
    counts = first["import"]
    assert {k: counts[k] for k in ("read", "stored", "skipped", "failed", "mirrored", "scored")} == {
        "read": 200, "stored": 193, "skipped": 7, "failed": 3, "mirrored": 193, "scored": 193,
    }  # fmt: skip
    assert counts["state"] == "complete"
    for i in malformed:
        assert f"skipped {files[0]}:{i + 1}: not JSON" in stderr
    for i in errors:
        assert f"skipped {files[0]}:{i + 1}: the batch failed this request" in stderr
    readiness = first["readiness"]
    assert readiness["verdict"] == "GO", readiness
    assert readiness["sources"] == [
        {"source": "import", "import_id": counts["id"], "pairs": 193, "share": 1.0}
    ]
    tail = next(c for c in readiness["criteria"] if c["name"] == "tail latency")
    assert tail["source"] == "import"
    assert "measured at the import's pace (200 req/s)" in tail["note"]
    # the recorded answers are the primary side, with latency not measured
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        pair = session.scalars(select(RequestPair).where(RequestPair.use_case == "good")).first()
        assert pair.source == "import"
        assert pair.import_id == counts["id"]
        assert pair.primary_latency_ms is None
        assert pair.primary_text
        assert pair.candidate_text == pair.primary_text
        assert aggregates.pair_count(session, "good") == 193
    engine.dispose()

    again, _ = _import(env, "good", files)
    assert again["import"]["id"] == counts["id"]
    assert again["import"]["mirrored"] == 193
    assert _count(sqlite_url, RequestPair, RequestPair.use_case == "good") == 193
    assert _count(sqlite_url, Import) == 1

    (tmp_path / "bad").mkdir()
    bad, _ = _import(env, "bad", write_batch(tmp_path / "bad", 60))
    assert bad["import"]["mirrored"] == 60
    assert bad["readiness"]["verdict"] == "NO_GO", bad["readiness"]
    assert "'answer overlap' fails" in bad["readiness"]["reasons"][0]

    settings = Settings(broker_url=None, database_url=sqlite_url)
    url = proxy(parse_config(env_config(env)), settings)
    with session_scope(make_engine(sqlite_url)) as session:
        token = create_token(session, "viewer", "stakeholder")
    listed = httpx.get(
        f"{url}/api/v1/imports", headers={"authorization": f"Bearer {token}"}, timeout=30
    )
    assert listed.status_code == 200
    by_use_case = {row["use_case"]: row for row in listed.json()}
    assert by_use_case["good"] == counts | {"updated_at": by_use_case["good"]["updated_at"]}
    assert by_use_case["bad"]["stored"] == 60
    assert httpx.get(f"{url}/api/v1/imports", timeout=30).status_code == 401
    gate = httpx.get(
        f"{url}/api/v1/gate/good", headers={"authorization": f"Bearer {token}"}, timeout=60
    )
    assert gate.status_code == 200
    assert gate.json()["sources"][0]["source"] == "import"


def env_config(env: dict[str, str]) -> str:
    return Path(env["SWITCHOVER_CONFIG"]).read_text()


def test_an_import_killed_mid_run_continues_without_duplicates(simulator, tmp_path, sqlite_url):
    candidate = simulator(answer_mix={"reference": 1.0}, latency_ms=20)
    env = _env(tmp_path, _config(simulator(), {"good": candidate}), sqlite_url)
    files = write_batch(tmp_path, 200, malformed=(5,))
    process = subprocess.Popen(
        _command("good", files, 25.0),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: _count(sqlite_url, RequestPair) >= 40, timeout=240, interval=0.2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    partial = _count(sqlite_url, RequestPair)
    assert 40 <= partial < 199
    # every pair written is whole: with its scores
    assert _count(sqlite_url, Score, Score.metric == "quality.rouge_l") == partial

    resumed, _ = _import(env, "good", files)
    assert resumed["import"]["stored"] == 199
    assert resumed["import"]["mirrored"] == 199
    assert resumed["import"]["scored"] == 199
    assert resumed["import"]["state"] == "complete"
    assert _count(sqlite_url, RequestPair) == 199
    assert _count(sqlite_url, Score, Score.metric == "quality.rouge_l") == 199
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        assert aggregates.pair_count(session, "good") == 199
        assert aggregates.totals(session, "good", "quality.rouge_l")[0] == 199
    engine.dispose()


def test_redaction_and_store_text_false_hold_for_imported_pairs(simulator, tmp_path, sqlite_url):
    email = f"ann.{uuid.uuid4().hex[:8]}@example.com"
    primary, candidate = simulator(), simulator()
    config = _config(
        primary,
        {"redacted": candidate, "hashed": candidate},
        privacy={"hashed": "{store_text: false}"},
    )
    env = _env(tmp_path, config, sqlite_url)
    files = write_batch(tmp_path, 12, prompt=f"Mail {email} please")
    for use_case in ("redacted", "hashed"):
        result, _ = _import(env, use_case, files)
        assert result["import"]["mirrored"] == 12
        assert result["import"]["scored"] == 12
    dump = table_dump(sqlite_url)
    assert email not in dump
    assert "[EMAIL]" in dump
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        hashed = session.scalars(select(RequestPair).where(RequestPair.use_case == "hashed")).all()
        assert all(
            not p.text_stored and p.request_body is None and p.primary_text is None for p in hashed
        )
        assert all(p.primary_sha256 for p in hashed)
        redacted = session.scalars(
            select(RequestPair).where(RequestPair.use_case == "redacted")
        ).all()
        assert all("[EMAIL]" in p.request_body and "[EMAIL]" in p.primary_text for p in redacted)
        # the texts went to the scoring only: the quality metrics exist without them
        rouge = session.scalars(
            select(Score.value)
            .join(RequestPair, RequestPair.id == Score.pair_id)
            .where(RequestPair.use_case == "hashed", Score.metric == "quality.rouge_l")
        ).all()
        assert len(rouge) == 12
        assert all(value is not None for value in rouge)
    engine.dispose()


def test_responses_and_messages_records_are_asked_of_a_chat_candidate_translated(
    simulator, tmp_path, sqlite_url
):
    candidate = simulator(answer_mix={"reference": 1.0}, latency_ms=5)
    env = _env(tmp_path, _config(simulator(), {"good": candidate}), sqlite_url)
    responses = {
        "request": {"model": "gpt-4o-mini", "input": "Where is Paris?", "instructions": "Be brief."},
        "response": {
            "id": "resp_1", "object": "response", "status": "completed", "model": "gpt-4o-mini",
            "output": [{"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                        "content": [{"type": "output_text", "text": "In France.", "annotations": []}]}],
            "usage": {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12},
        },
        "latency_ms": 120,
    }  # fmt: skip
    messages = {
        "request": {"model": "gpt-4o-mini", "max_tokens": 64, "system": "Be brief.",
                    "messages": [{"role": "user", "content": "Where is Rome?"}]},
        "response": {
            "id": "msg_2", "type": "message", "role": "assistant", "model": "gpt-4o-mini",
            "content": [{"type": "text", "text": "In Italy."}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 3},
        },
    }  # fmt: skip
    path = tmp_path / "captured.jsonl"
    path.write_text(json.dumps(responses) + "\n" + json.dumps(messages) + "\n")
    command = [
        sys.executable, "-m", "shadow.cli", "import", str(path),
        "--use-case", "good", "--format", "jsonl", "--rate", "50", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])["import"]
    assert (result["read"], result["stored"], result["skipped"]) == (2, 2, 0)
    assert result["scored"] == 2
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        pairs = {p.endpoint: p for p in session.scalars(select(RequestPair))}
    engine.dispose()
    assert set(pairs) == {"responses", "messages"}
    # the recorded answers are the primary side; the chat candidate answered both
    assert pairs["responses"].primary_text == "In France."
    assert pairs["responses"].primary_latency_ms == 120
    assert pairs["messages"].primary_text == "In Italy."
    assert pairs["messages"].primary_latency_ms is None
    for pair in pairs.values():
        assert pair.candidate_error_kind is None
        assert pair.candidate_text
