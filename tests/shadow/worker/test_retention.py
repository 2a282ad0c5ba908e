"""The retention period, on SQLite and PostgreSQL: old pairs go with their scores, new ones stay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from shadow.cli import app as cli
from shadow.config import parse_config
from shadow.settings import Settings, get_settings
from shadow.worker.retention import purge_expired
from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from storage.models import NoiseReask, RequestPair, Score
from storage.repository import insert_pair
from storage.schemas import AnswerFields, PairCreate
from tests.conftest import CapturedJobs, wait_for

NOW = datetime.now(UTC).replace(microsecond=0)


def _config(use_cases: dict[str, str | None], top: str | None = None) -> str:
    lines = ["upstreams:", "  a: {base_url: http://127.0.0.1:1/v1}"]
    if top:
        lines.append(f"privacy: {top}")
    lines.append("use_cases:")
    for name, privacy in use_cases.items():
        lines += [
            f"  {name}:",
            f"    primary: {{upstream: a, model: m-{name}}}",
            "    candidate: {upstream: a, model: n}",
        ]
        if privacy:
            lines.append(f"    privacy: {privacy}")
    return "\n".join(lines) + "\n"


def _store(url: str, use_case: str, ages_days: list[float]) -> list[str]:
    ids = []
    engine = make_engine(url)
    with session_scope(engine) as session:
        for age in ages_days:
            pair_id = str(uuid.uuid4())
            insert_pair(
                session,
                PairCreate(
                    id=pair_id,
                    use_case=use_case,
                    endpoint="chat.completions",
                    stream=False,
                    created_at=NOW - timedelta(days=age),
                    request_body='{"model": "m", "messages": []}',
                    request_sha256="0" * 64,
                    primary_model="m",
                    primary_request_id=None,
                    primary=AnswerFields(status_code=200, text="a", latency_ms=1),
                    candidate_model="n",
                    candidate=AnswerFields(status_code=200, text="b", latency_ms=2),
                    noise=AnswerFields(status_code=200, text="c", latency_ms=1),
                ),
            )
            session.add(Score(pair_id=pair_id, metric="candidate.latency_ms", value=2.0))
            session.add(Score(pair_id=pair_id, metric="quality.rouge_l", value=0.5))
            ids.append(pair_id)
    engine.dispose()
    return ids


def _remaining(url: str, model, column, ids: list[str]) -> int:
    engine = make_engine(url)
    with session_scope(engine) as session:
        count = session.scalar(select(func.count()).select_from(model).where(column.in_(ids)))
    engine.dispose()
    return int(count or 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, create_postgres_database):
    """A database of this test's own: a purge covers every use case stored in it."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    url = create_postgres_database()
    upgrade(url)
    return url


@pytest.fixture
def stored(database_url):
    suffix = uuid.uuid4().hex[:6]
    kept, purged, other = f"kept-{suffix}", f"purged-{suffix}", f"other-{suffix}"
    ages = [400, 90, 31, 29, 1, 0]
    ids = {name: _store(database_url, name, ages) for name in (kept, purged, other)}
    return database_url, (kept, purged, other), ids


def test_pairs_past_the_period_go_with_their_scores_and_reasks(stored):
    url, (kept, purged, other), ids = stored
    # The top-level period covers `other` (and use cases no longer configured); `kept` opts out.
    config = parse_config(
        _config(
            {kept: "{retention_days: null}", purged: "{retention_days: 30}", other: None},
            top="{retention_days: 100}",
        )
    )
    assert config.privacy_for(kept).retention_days is None

    engine = make_engine(url)
    report = {p.use_case: p for p in purge_expired(config, now=NOW, chunk=2, engine=engine)}
    engine.dispose()

    assert kept not in report
    assert (report[purged].pairs, report[purged].scores, report[purged].noise_reasks) == (3, 6, 3)
    assert report[other].pairs == 1
    old, new = ids[purged][:3], ids[purged][3:]
    assert _remaining(url, RequestPair, RequestPair.id, old) == 0
    assert _remaining(url, Score, Score.pair_id, old) == 0
    assert _remaining(url, NoiseReask, NoiseReask.pair_id, old) == 0
    assert _remaining(url, RequestPair, RequestPair.id, new) == 3
    assert _remaining(url, Score, Score.pair_id, new) == 6
    assert _remaining(url, NoiseReask, NoiseReask.pair_id, new) == 3
    assert _remaining(url, RequestPair, RequestPair.id, ids[kept]) == 6
    assert _remaining(url, RequestPair, RequestPair.id, ids[other]) == 5


def test_a_dry_run_counts_and_deletes_nothing(stored):
    url, (kept, purged, other), ids = stored
    engine = make_engine(url)
    config = parse_config(_config({kept: None, purged: "{retention_days: 30}", other: None}))
    report = purge_expired(config, now=NOW, dry_run=True, engine=engine)
    engine.dispose()
    assert [(p.use_case, p.pairs, p.scores, p.noise_reasks) for p in report] == [(purged, 3, 6, 3)]
    assert _remaining(url, RequestPair, RequestPair.id, ids[purged]) == 6


@pytest.fixture
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_db_purge_command(stored, monkeypatch, tmp_path, fresh_settings):
    url, (kept, purged, other), ids = stored
    path = tmp_path / "switchover.yaml"
    path.write_text(_config({kept: None, purged: "{retention_days: 2}", other: None}))
    monkeypatch.setenv("SWITCHOVER_CONFIG", str(path))
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", url)

    dry = CliRunner().invoke(cli, ["db", "purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"{purged}: would purge 4 pairs, 8 scores, 4 noise re-asks" in dry.output
    assert _remaining(url, RequestPair, RequestPair.id, ids[purged]) == 6

    done = CliRunner().invoke(cli, ["db", "purge"])
    assert done.exit_code == 0, done.output
    assert f"{purged}: purged 4 pairs, 8 scores, 4 noise re-asks" in done.output
    assert _remaining(url, RequestPair, RequestPair.id, ids[purged]) == 2
    assert _remaining(url, RequestPair, RequestPair.id, ids[kept]) == 6


def test_the_embedded_server_purges_on_its_own(proxy, sqlite_url, monkeypatch):
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", sqlite_url)
    old, new = _store(sqlite_url, "default", [400]), _store(sqlite_url, "default", [1])
    config = _config({"default": None}, top="{retention_days: 30}")
    proxy(config, Settings(broker_url=None, purge_every_s=0.2), CapturedJobs().publish)
    wait_for(lambda: _remaining(sqlite_url, RequestPair, RequestPair.id, old) == 0, timeout=30)
    assert _remaining(sqlite_url, Score, Score.pair_id, old) == 0
    assert _remaining(sqlite_url, RequestPair, RequestPair.id, new) == 1
