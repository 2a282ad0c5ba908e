"""Criteria that cannot get data as a use case is configured, and why. Pure.

One rule for every place that says so: the start-up log, `/readyz`, the readiness API's
`criteria[].warning` (read by the gate's table and the dashboard).
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Literal

from criteria.readiness.schema import CriteriaSet, Criterion
from evaluators.catalog import CATALOG, NOISE_COUNTERPART

Reason = Literal["noise_rate_zero", "no_primary_key", "candidate_unreachable", "not_produced"]

# Candidate metrics measured even when the candidate does not answer (errors, timeouts).
_MEASURED_WITHOUT_ANSWER = frozenset({"candidate.error"})


@dataclass(frozen=True)
class CriterionWarning:
    """Why a criterion cannot get data; `never`: not until the configuration changes."""

    use_case: str
    criterion: str
    metric: str
    reason: Reason
    message: str
    never: bool

    def line(self) -> str:
        """The warning as one log line."""
        return f"use case {self.use_case!r}: criterion {self.criterion!r} {self.message}"


@dataclass(frozen=True)
class Situation:
    """What the rule needs to know of a use case; None is 'not known' (no warning from it)."""

    use_case: str
    noise_rate: float | None = None
    primary_key_missing: str | None = None  # e.g. "OPENAI_API_KEY is not set"
    candidate_reachable: bool | None = None
    candidate: str = "the candidate"
    produced: Set[str] | None = None  # the per-pair metrics the configured evaluators produce


def criteria_warnings(situation: Situation, criteria: CriteriaSet) -> list[CriterionWarning]:
    """Each criterion that cannot get data as configured, with the reason in words."""
    found = []
    for criterion in criteria.criteria:
        if CATALOG[criterion.metric].kind == "figure":
            continue
        for reason, message, never in _reasons(situation, criterion):
            found.append(
                CriterionWarning(
                    situation.use_case, criterion.name, criterion.metric, reason, message, never
                )
            )
    return found


def _reasons(situation: Situation, criterion: Criterion) -> list[tuple[Reason, str, bool]]:
    needs = [criterion.metric]
    if criterion.mode == "noise_adjusted":
        needs.append(NOISE_COUNTERPART.get(criterion.metric, criterion.metric))
    produced = situation.produced
    missing = [m for m in needs if produced is not None and m not in produced]
    if missing:
        evaluators = ", ".join(sorted({CATALOG[m].evaluator or m for m in missing}))
        return [
            (
                "not_produced",
                f"can never get data: no configured evaluator produces {', '.join(missing)} "
                f"(evaluator {evaluators} is disabled or off)",
                True,
            )
        ]
    if criterion.mode == "noise_adjusted" and situation.noise_rate == 0:
        return [
            (
                "noise_rate_zero",
                "can never get data: no noise re-asks are made (the use case's noise_rate "
                "is 0); raise shadow.noise_rate to measure the API's agreement with itself",
                True,
            )
        ]
    found: list[tuple[Reason, str, bool]] = []
    if criterion.mode == "noise_adjusted" and situation.primary_key_missing is not None:
        found.append(
            (
                "no_primary_key",
                f"may get no noise floor: the primary has no key "
                f"({situation.primary_key_missing}), so only requests that bring their own "
                "Authorization are re-asked; without them it stays without data",
                False,
            )
        )
    answered = criterion.metric.startswith(("candidate.", "quality.", "latency."))
    if situation.candidate_reachable is False and answered:
        if criterion.metric not in _MEASURED_WITHOUT_ANSWER:
            found.append(
                (
                    "candidate_unreachable",
                    f"gets no data while {situation.candidate} does not answer "
                    "(it did not at start-up)",
                    False,
                )
            )
    return found
