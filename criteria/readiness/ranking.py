"""Ranking a use case's candidates by their verdicts (README: "Several candidates").

The rule, in order:

1. Candidates that can take over (`GO`) come first, the cheapest per month first; a GO
   whose monthly cost is not known yet comes after the priced ones.
2. Then those still open (`INSUFFICIENT_DATA`: nothing fails), closest first: fewest open
   criteria, then fewest pairs still needed by the most demanding open criterion (an open
   criterion with no forecast counts as needing the most), then the cheaper.
3. Then those that cannot take over (`NO_GO`): fewest critical failures, then fewest
   failures, then fewest open criteria, then the cheaper.

Ties keep the configuration order. Pure: the service hands in each candidate's verdict and
figures, the tests call it directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

_GROUP = {"GO": 0, "INSUFFICIENT_DATA": 1, "NO_GO": 2}


class Judged(Protocol):
    """A criterion's outcome as the ranking reads it."""

    @property
    def name(self) -> str: ...
    @property
    def verdict(self) -> str: ...
    @property
    def critical(self) -> bool: ...
    @property
    def needed_n(self) -> int | None: ...


@dataclass(frozen=True)
class Standing:
    """One candidate's verdict and what the ranking compares."""

    candidate: str
    verdict: str
    criteria: Sequence[Judged]
    monthly_cost_usd: float | None = None


@dataclass(frozen=True)
class Ranked:
    """A candidate's place (1 is the best) and the ranking's reason in words."""

    candidate: str
    rank: int
    summary: str


def _cost(standing: Standing) -> float:
    cost = standing.monthly_cost_usd
    return cost if cost is not None and math.isfinite(cost) else math.inf


def _open(standing: Standing) -> list[Judged]:
    return [c for c in standing.criteria if c.verdict in ("INCONCLUSIVE", "NO_DATA")]


def _key(standing: Standing) -> tuple[float, ...]:
    group = _GROUP.get(standing.verdict, 1)
    opened = _open(standing)
    if group == 0:
        return (group, _cost(standing))
    if group == 1:
        most = max((c.needed_n if c.needed_n is not None else math.inf for c in opened), default=0)
        return (group, len(opened), most, _cost(standing))
    failed = [c for c in standing.criteria if c.verdict == "FAIL"]
    critical = sum(1 for c in failed if c.critical)
    return (group, critical, len(failed), len(opened), _cost(standing))


def _names(criteria: Sequence[Judged]) -> str:
    return ", ".join(repr(c.name) for c in criteria)


def _summary(standing: Standing, place: int, takers: int, cheapest: bool) -> str:
    if standing.verdict == "GO":
        if takers == 1:
            return "can take over (the only candidate that can)"
        if cheapest and standing.monthly_cost_usd is not None:
            return f"can take over, the cheapest of the {takers} that can"
        return f"can take over (#{place} of the {takers} that can, by monthly cost)"
    opened = _open(standing)
    if standing.verdict == "NO_GO":
        failed = [c for c in standing.criteria if c.verdict == "FAIL"]
        return f"cannot take over: fails {_names(failed)}"
    needs = []
    for c in opened:
        more = f"about {c.needed_n} more pairs" if c.needed_n is not None else "more evidence"
        needs.append(f"{c.name!r} ({more})")
    if not needs:
        return "nothing fails; waiting for the minimum duration"
    return "still needs " + ", ".join(needs)


def rank(standings: Sequence[Standing]) -> list[Ranked]:
    """Each candidate's rank and the reason, in the order given (see the module's rule)."""
    order = sorted(range(len(standings)), key=lambda i: (*_key(standings[i]), i))
    takers = [standings[i] for i in order if standings[i].verdict == "GO"]
    places = {index: place for place, index in enumerate(order, start=1)}
    found = []
    for index, standing in enumerate(standings):
        place = places[index]
        cheapest = bool(takers) and takers[0] is standing
        summary = _summary(standing, place, len(takers), cheapest)
        if place == 1 and standing.verdict != "GO" and len(standings) > 1:
            summary = f"closest to taking over; {summary}"
        found.append(Ranked(standing.candidate, place, summary))
    return found
