"""The configured use cases as the criteria domains see them (handed down by `shadow`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from criteria.cost.model import Deployment
from criteria.errors import UnknownCandidate, UnknownUseCase
from criteria.readiness.warnings import Situation
from criteria.rollout.rules import RolloutConfig


@dataclass(frozen=True)
class UseCaseInfo:
    """What readiness, rollout and cost know of a configured use case."""

    name: str
    mode: str
    sample_rate: float
    primary_model: str
    candidate_model: str
    criteria_text: str | None = None
    figures: Mapping[str, float] = field(default_factory=dict)
    deployment: Deployment | None = None
    headroom: float = 0.3
    noise_rate: float | None = None  # None: not known (tests, tools); 0: never re-asked
    rollout: RolloutConfig | None = None
    primary_key_missing: str | None = None  # e.g. "OPENAI_API_KEY is not set"; None: has one
    produced_metrics: frozenset[str] | None = None  # None: not known (tests, tools)
    # which candidate the figures above describe; `others` are the use case's other candidates
    # (each a UseCaseInfo of its own), in configuration order after this one
    candidate: str = "default"
    others: tuple[UseCaseInfo, ...] = ()
    candidate_order: tuple[str, ...] = ()  # every candidate's name; empty: only this one

    @property
    def order(self) -> list[str]:
        """The candidates' names in configuration order."""
        return list(self.candidate_order) or [self.candidate]

    @property
    def candidates(self) -> list[UseCaseInfo]:
        """This candidate's info and the others', in configuration order."""
        return sorted([self, *self.others], key=lambda i: self.order.index(i.candidate))

    def for_candidate(self, name: str | None) -> UseCaseInfo:
        """The info of candidate `name` (None: this one), or UnknownCandidate."""
        if name is None or name == self.candidate:
            return self
        for other in self.others:
            if other.candidate == name:
                return replace(other, others=tuple(i for i in self.candidates if i is not other))
        known = ", ".join(self.order)
        raise UnknownCandidate(f"use case {self.name!r} has no candidate {name!r} ({known})")

    def situation(self, candidate_reachable: bool | None = None) -> Situation:
        """What the warnings rule (`criteria.readiness.warnings`) needs of this use case."""
        return Situation(
            use_case=self.name,
            noise_rate=self.noise_rate,
            primary_key_missing=self.primary_key_missing,
            candidate_reachable=candidate_reachable,
            candidate=self.candidate_model,
            produced=self.produced_metrics,
        )


class Catalog:
    """The configured use cases, by name.

    `fresh_for_s` is the evaluation period: a stored verdict younger than that is what a read
    returns; an older one is re-evaluated for the read without being stored.
    """

    def __init__(self, use_cases: Sequence[UseCaseInfo], fresh_for_s: float = 60.0) -> None:
        self._by_name = {info.name: info for info in use_cases}
        self.fresh_for_s = fresh_for_s

    def names(self) -> list[str]:
        """Use case names in configuration order."""
        return list(self._by_name)

    def get(self, name: str) -> UseCaseInfo:
        """A use case, or UnknownUseCase."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownUseCase(f"no use case {name!r} is configured") from None
