"""The rollout rules (pure) and the evaluation cycle's guard over stored state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from criteria.readiness.schemas import CriterionRead, ReadinessRead, Window
from criteria.rollout import service as rollout_service
from criteria.rollout.rules import (
    FallbackStats,
    ReasonRequired,
    RolloutConfig,
    RolloutRefused,
    mode_of,
    plan_change,
    rollback_reason,
    starting_percent,
)
from criteria.usecases import UseCaseInfo
from storage import repository

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
PLAN = RolloutConfig(steps=(1, 5, 25, 50, 100), min_step_duration="30m")


@pytest.mark.parametrize("verdict", ["NO_GO", "INSUFFICIENT_DATA"])
def test_advance_is_refused_unless_the_verdict_is_go(verdict):
    with pytest.raises(RolloutRefused, match=f"verdict is {verdict}"):
        plan_change(PLAN, "advance", 0, None, verdict, NOW)


def test_advance_moves_one_step_on_go_and_forced_needs_a_reason():
    assert plan_change(PLAN, "advance", 0, None, "GO", NOW).to_percent == 1
    assert plan_change(PLAN, "advance", 5, None, "GO", NOW).to_percent == 25
    # between steps (an initial canary percent): the next step up
    assert plan_change(PLAN, "advance", 10, None, "GO", NOW).to_percent == 25
    with pytest.raises(ReasonRequired):
        plan_change(PLAN, "advance", 5, None, "NO_GO", NOW, force=True, reason=" ")
    forced = plan_change(PLAN, "advance", 5, None, "NO_GO", NOW, force=True, reason="hotfix")
    assert (forced.to_percent, forced.forced) == (25, True)
    with pytest.raises(RolloutRefused, match="complete"):
        plan_change(PLAN, "advance", 100, None, "GO", NOW)


def test_min_step_duration_holds_an_advance_back_unless_forced():
    since = NOW - timedelta(minutes=10)
    with pytest.raises(RolloutRefused, match="allowed from 2026-11-28T12:20:00"):
        plan_change(PLAN, "advance", 5, since, "GO", NOW)
    assert plan_change(PLAN, "advance", 5, since, "GO", NOW + timedelta(minutes=20)).to_percent
    assert plan_change(PLAN, "advance", 5, since, "GO", NOW, force=True, reason="x").to_percent


def test_rollback_goes_to_zero_and_modes_follow_the_percentage():
    assert plan_change(PLAN, "rollback", 50, None, "NO_GO", NOW).to_percent == 0
    with pytest.raises(RolloutRefused, match="shadow"):
        plan_change(PLAN, "rollback", 0, None, "GO", NOW)
    assert [mode_of(p) for p in (0, 1, 99.5, 100)] == ["shadow", "canary", "canary", "candidate"]
    assert starting_percent("canary", PLAN) == 1
    assert starting_percent("canary", RolloutConfig(initial_percent=10)) == 10
    assert starting_percent("candidate", PLAN) == 100
    assert starting_percent("shadow", PLAN) == 0


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ((5, 1, 100), "increase"),
        ((1, 5, 50), "last step must be 100"),
        ((0, 100), "percentages in"),
    ],
)
def test_a_bad_plan_is_rejected(steps, message):
    with pytest.raises(ValidationError, match=message):
        RolloutConfig(steps=steps)


def test_rollback_reasons():
    quiet = FallbackStats({"candidate": 95, "fallback_timeout": 5})
    assert rollback_reason(PLAN, 25, [], quiet) is None  # 5 % is at the limit, not over it
    assert rollback_reason(PLAN, 0, ["reliability"], quiet) is None  # nothing live to roll back
    assert "critical criterion failing: 'reliability'" in (
        rollback_reason(PLAN, 25, ["reliability"], quiet) or ""
    )
    noisy = FallbackStats({"candidate": 80, "fallback_connection": 15, "broken": 5})
    assert noisy.rate == pytest.approx(0.2)
    assert "fallback rate 20.0% (20 of 100)" in (rollback_reason(PLAN, 100, [], noisy) or "")
    few = FallbackStats({"candidate": 5, "fallback_connection": 5})
    assert rollback_reason(PLAN, 100, [], few) is None  # under min_fallback_requests


def _readiness(verdict, critical_fail=False):
    criterion = CriterionRead(
        name="reliability",
        metric="candidate.error",
        label="error rate",
        stat="proportion",
        mode="absolute",
        op="<=",
        critical=True,
        verdict="FAIL" if critical_fail else "PASS",
        estimate=0.5 if critical_fail else 0.0,
        ci_low=0.3 if critical_fail else 0.0,
        ci_high=0.7 if critical_fail else 0.01,
        threshold=0.05,
        n=100,
        needed_n=None,
    )
    return ReadinessRead(
        use_case="chat",
        verdict=verdict,
        evaluated_at=NOW,
        criteria_version=1,
        pairs=100,
        window=Window(start=None, end=None),
        criteria=[criterion],
        reasons=[],
    )


def test_guard_records_verdict_changes_and_rolls_back_a_critical_failure(db_session):
    info = UseCaseInfo(
        name="chat", mode="canary", sample_rate=0.1, primary_model="a", candidate_model="b"
    )
    assert rollout_service.current(db_session, info) == (1.0, None)  # the config's mode
    assert rollout_service.guard(db_session, info, _readiness("GO"), NOW) is None
    assert rollout_service.guard(db_session, info, _readiness("GO"), NOW) is None
    rollback = rollout_service.guard(db_session, info, _readiness("NO_GO", True), NOW)
    assert rollback is not None
    assert (rollback.from_percent, rollback.to_percent, rollback.automatic) == (1.0, 0.0, True)
    assert "'reliability'" in rollback.reason
    status = rollout_service.status(db_session, info, NOW)
    assert (status.mode, status.percent) == ("shadow", 0.0)
    kinds = [(e.kind, e.verdict) for e in status.history]
    assert kinds == [
        ("auto_rollback", "NO_GO"),
        ("verdict_change", "NO_GO"),
        ("verdict_change", "GO"),
    ]
    pending = rollout_service.pending_notifications(db_session, info, NOW)
    assert [p["kind"] for _, p in pending] == ["verdict_change", "verdict_change", "auto_rollback"]


def test_live_counts_from_several_proxies_add_up(db_session):
    minute = NOW.replace(second=0)
    repository.add_live_counts(db_session, {("chat", minute, "candidate"): 3})
    repository.add_live_counts(
        db_session, {("chat", minute, "candidate"): 4, ("chat", minute, "fallback_timeout"): 1}
    )
    assert repository.live_counts(db_session, "chat", NOW - timedelta(minutes=1)) == {
        "candidate": 7,
        "fallback_timeout": 1,
    }
    assert repository.live_counts(db_session, "chat", NOW + timedelta(minutes=1)) == {}
