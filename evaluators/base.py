"""The evaluator protocol: pairs in, named metric values out.

An evaluator is a small object with a `name`, the `metrics` it can produce, and `score`, which
takes a batch of pairs and returns, for each pair, the values of the metrics that apply to it.
A metric that does not apply to a pair (JSON metrics for a plain-text request, say) is simply
absent: it gets no row, rather than a made-up value. Evaluators hold no database session and
write nothing; the scoring service stores what they return.

Scoring a batch at once lets an evaluator amortise expensive work (one embedding call for the
whole batch). An evaluator that raises is recorded as failed, for its metrics, on the pairs it
was scoring; the other evaluators still run. One that can tell which pairs failed raises
`PartialFailure` with the values it did compute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from evaluators.pair import PairView

Values = dict[str, float]


class Evaluator(Protocol):
    """Turns pairs into metric values."""

    @property
    def name(self) -> str:
        """Stable name, used in the configuration (`evaluators.disabled`) and in logs."""
        ...

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric this evaluator can produce."""
        ...

    def score(self, pairs: Sequence[PairView]) -> list[Values]:
        """One mapping of metric values per pair, in order; only metrics that apply."""
        ...


class PartialFailure(Exception):
    """Some pairs of a batch failed: `values` holds the rest, `errors` the reasons by index."""

    def __init__(self, values: list[Values], errors: dict[int, str]) -> None:
        super().__init__(f"{len(errors)} of {len(values)} pairs failed")
        self.values = values
        self.errors = errors


def each(pairs: Sequence[PairView], score_one: Callable[[PairView], Values]) -> list[Values]:
    """Score pair by pair, for evaluators that gain nothing from batching."""
    return [score_one(pair) for pair in pairs]


def answered(pair: PairView) -> bool:
    """The candidate gave an answer (quality metrics only judge answers; failures are counted
    by `candidate.error`)."""
    return not pair.candidate.failed


def has_text(text: str | None) -> bool:
    """A non-blank text."""
    return bool(text and text.strip())
