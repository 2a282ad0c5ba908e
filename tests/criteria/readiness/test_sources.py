"""Criteria restricted to live or imported evidence (`source:`), and the share of each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from criteria.readiness import evidence
from criteria.readiness.schema import CriteriaError, parse_criteria
from criteria.readiness.service import evaluate
from criteria.usecases import UseCaseInfo
from storage.models import Import, Score
from storage.repository import add_import, insert_pair
from storage.schemas import AnswerFields, PairCreate

START = datetime(2026, 11, 20, tzinfo=UTC)
CRITERIA = """
use_case: mixed
criteria:
  - {name: quality, metric: quality.rouge_l, stat: mean, op: ">=", threshold: 0.5}
  - {name: live quality, metric: quality.rouge_l, stat: mean, op: ">=", threshold: 0.5, source: live}
  - {name: imported quality, metric: quality.rouge_l, stat: mean, op: ">=", threshold: 0.5,
     source: import}
  - {name: imported latency, metric: candidate.latency_ms, stat: quantile, q: 0.9, op: "<=",
     threshold: 1000, source: import}
  - {name: live latency, metric: candidate.latency_ms, stat: quantile, q: 0.9, op: "<=",
     threshold: 1000, source: live}
"""


def _seed(session, live: int, imported: int) -> None:
    add_import(
        session,
        Import(
            id="imp_test", use_case="mixed", format="openai-batch", files=["in", "out"],
            state="complete", rate=4.0, read=imported, stored=imported, skipped=0, failed=0,
            duplicates=0, errors=[],
        ),
    )  # fmt: skip
    for i in range(live + imported):
        is_import = i >= live
        pair_id = f"mixed-{i}"
        insert_pair(
            session,
            PairCreate(
                id=pair_id,
                use_case="mixed",
                endpoint="chat.completions",
                stream=False,
                created_at=START + timedelta(minutes=i),
                request_body="{}",
                request_sha256="0" * 64,
                primary_model="gpt-4o-mini",
                primary_request_id=None,
                primary=AnswerFields(status_code=200, text="a", latency_ms=None),
                candidate_model="llama",
                candidate=AnswerFields(status_code=200, text="b", latency_ms=300.0),
                source="import" if is_import else "live",
                import_id="imp_test" if is_import else None,
            ),
        )
        # live pairs score 0.9, imported ones 0.1: each restricted criterion sees its own
        value = 0.1 if is_import else 0.9
        session.add(Score(pair_id=pair_id, metric="quality.rouge_l", value=value))
        session.add(Score(pair_id=pair_id, metric="candidate.latency_ms", value=300.0))
    session.flush()


def test_a_criterion_judges_only_the_evidence_of_its_source(db_session):
    _seed(db_session, live=30, imported=20)
    criteria = parse_criteria(CRITERIA).criteria
    found = evidence.load(db_session, "mixed", criteria)
    assert found["quality"].n == 50
    assert found["live quality"].n == 30
    assert found["imported quality"].n == 20
    assert found["live quality"].sums.total[-1] == pytest.approx(30 * 0.9)
    assert found["imported quality"].sums.total[-1] == pytest.approx(20 * 0.1)
    raw = evidence.load(db_session, "mixed", criteria, read_raw=True)
    assert raw["imported quality"].n == 20
    assert raw["quality"].n == 50


def test_the_readiness_body_shows_each_source_and_the_import_pace(db_session):
    _seed(db_session, live=30, imported=20)
    info = UseCaseInfo(
        name="mixed",
        mode="shadow",
        sample_rate=1.0,
        primary_model="gpt-4o-mini",
        candidate_model="llama",
        criteria_text=CRITERIA,
    )
    body = evaluate(db_session, info, now=START + timedelta(days=1))
    assert [(s.source, s.import_id, s.pairs) for s in body.sources] == [
        ("import", "imp_test", 20),
        ("live", None, 30),
    ]
    assert sum(s.share for s in body.sources) == pytest.approx(1.0)
    by_name = {c.name: c for c in body.criteria}
    assert by_name["imported quality"].estimate == pytest.approx(0.1)
    assert by_name["imported quality"].n == 20
    assert by_name["live quality"].estimate == pytest.approx(0.9)
    assert by_name["quality"].n == 50
    assert "measured at the import's pace (4 req/s)" in by_name["imported latency"].note
    assert "import's pace" not in by_name["live latency"].note
    assert "import's pace" not in by_name["quality"].note  # not a latency
    assert by_name["imported latency"].source == "import"


def test_source_defaults_to_any_and_rejects_other_values():
    [criterion] = parse_criteria(
        "use_case: u\ncriteria:\n  - {name: q, metric: quality.rouge_l, stat: mean, op: '>=', threshold: 0.5}\n"
    ).criteria
    assert criterion.source == "any"
    with pytest.raises(CriteriaError, match=r":3:.*source"):
        parse_criteria(
            "use_case: u\ncriteria:\n  - {name: q, metric: quality.rouge_l, stat: mean, op: '>=',"
            " threshold: 0.5, source: shadow}\n"
        )
