"""Incremental score aggregates: what the verdict needs, kept current as scores are written.

Two tables, both keyed by use case, candidate, feature tag ('' when untagged) and series (a
metric, or a per-pair series derived from two metrics, see `DERIVED`):

- `score_aggregates`, per 10 minutes of pair arrival: count, count of non-zero values, sum
  and sum of squares. Proportions need the counts; means need only the count, sum and sum of
  squares at each bucket end (`criteria.readiness.sequences`), which also gives the running
  intersection of the bounds over the bucket ends.
- `score_histograms`, over all time: counts per bin of a grid of 3-significant-digit decimal
  numbers, with a bin of its own for each grid number and one for the open interval up to
  the next (`bin_codes`). Counts of values below and at a threshold are therefore exact for
  any threshold written with up to 3 significant digits (1500, 0.95, 1.2, 2.5e3): a quantile
  criterion's verdict from the histogram is the one the raw values give. Order statistics
  (the interval's ends) are known to their bin, under 1% of the value.

Every write of a score updates them in the same transaction: `add_scores` / `remove_scores`
from the scoring repository (scoring, rescoring) and the retention purge, and a session hook
for score rows added through the ORM. Only rows actually written count, so scoring a pair
twice cannot count it twice. Scores written or deleted by other means (COPY, a cascade from a
hand-made DELETE) are followed by `rebuild`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, delete, event, func, select
from sqlalchemy.orm import Session

from storage.bulk import insert_rows
from storage.models import RequestPair, Score, ScoreAggregate, ScoreHistogram

# series derived per pair from two stored metrics: (operation, first, second)
DERIVED: dict[str, tuple[str, str, str]] = {
    "quality.semantic_similarity-noise.semantic_similarity": (
        "-",
        "quality.semantic_similarity",
        "noise.semantic_similarity",
    ),
    "candidate.latency_ms/primary.latency_ms": ("/", "candidate.latency_ms", "primary.latency_ms"),
    "candidate.ttft_ms/primary.ttft_ms": ("/", "candidate.ttft_ms", "primary.ttft_ms"),
}
# the series counting stored pairs (scored or not), for the readiness body's `pairs`
PAIRS = "pairs"
_COMPONENTS = frozenset(metric for _, a, b in DERIVED.values() for metric in (a, b))
_CHUNK = 500
# Ten minutes: the first block of a mean's confidence sequence, and a month in 4320 rows.
BUCKET_S = 600
_EXPONENT_OFFSET = 400
_POW10 = np.array([float(f"1e{i}") for i in range(400)])

Key = tuple[str, str, str, str, int]  # use case, candidate, feature, series, bucket or bin
PairKey = tuple[str, str, str, int]  # use case, candidate, feature, bucket


def derived_value(operation: str, first: float, second: float) -> float | None:
    """A derived series' value for one pair (None where it is undefined)."""
    if operation == "-":
        return first - second
    return first / second if second > 0 else None


def bucket_of(moment: datetime) -> int:
    """The 10-minute bucket of a pair's arrival (since 1970, UTC; naive datetimes are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.floor(moment.timestamp() / BUCKET_S)


def _edges(mantissa: NDArray[np.int64], exponent: NDArray[np.int64]) -> NDArray[np.float64]:
    """Grid numbers mantissa x 10^(exponent - 2), each correctly rounded like its decimal text.

    A product or quotient of exact integers and an exact power of ten is correctly rounded.
    """
    power = exponent - 2
    up = _POW10[np.clip(power, 0, len(_POW10) - 1)]
    down = _POW10[np.clip(-power, 0, len(_POW10) - 1)]
    edges: NDArray[np.float64] = np.where(power >= 0, mantissa * up, mantissa / down)
    return edges


def bin_codes(values: Iterable[float] | NDArray[np.float64]) -> NDArray[np.int64]:
    """The histogram bin of each value; codes are ordered like the values they hold.

    A positive value's bin is 2 x (exponent, mantissa) of the largest grid number at or below
    it, plus 1 when the value lies strictly above that number; 0 is its own bin; a negative
    value takes the negated code of its absolute value.
    """
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, float)
    codes = np.zeros(len(array), dtype=np.int64)
    magnitude = np.abs(array)
    nonzero = magnitude > 0
    x = magnitude[nonzero]
    exponent = np.floor(np.log10(x)).astype(np.int64)
    mantissa = np.floor(x / _edges(np.ones_like(exponent), exponent)).astype(np.int64)
    for _ in range(4):  # log10 and the division may be one off next to a grid number
        small = mantissa < 100
        mantissa = np.where(small, mantissa * 10 + 9, mantissa)
        exponent = np.where(small, exponent - 1, exponent)
        large = mantissa > 999
        mantissa = np.where(large, mantissa // 10, mantissa)
        exponent = np.where(large, exponent + 1, exponent)
        mantissa = mantissa - (_edges(mantissa, exponent) > x)
        mantissa = mantissa + (_edges(mantissa + 1, exponent) <= x)
    base = (exponent + _EXPONENT_OFFSET) * 1000 + mantissa
    positive = 2 * base + (_edges(mantissa, exponent) != x)
    codes[nonzero] = np.where(array[nonzero] > 0, positive, -positive)
    return codes


def bin_code(value: float) -> int:
    """`bin_codes` of one value."""
    return int(bin_codes(np.array([value]))[0])


def _edge(mantissa: int, exponent: int) -> float:
    return float(_edges(np.array([mantissa]), np.array([exponent]))[0])


def bin_range(code: int) -> tuple[float, float]:
    """The smallest and largest value a bin can hold (open ends reported as the grid number)."""
    if code == 0:
        return 0.0, 0.0
    if code < 0:
        low, high = bin_range(-code)
        return -high, -low
    base, interior = divmod(code, 2)
    exponent, mantissa = divmod(base, 1000)
    exponent -= _EXPONENT_OFFSET
    low = _edge(mantissa, exponent)
    return low, (_edge(mantissa + 1, exponent) if interior else low)


def threshold_code(threshold: float) -> int | None:
    """The bin of a threshold that is a grid number, else None (no exact counts at it)."""
    if not math.isfinite(threshold):
        return None
    code = bin_code(threshold)
    return code if code % 2 == 0 else None


def _plus(stored: Any, excluded: Any) -> Any:
    """ON CONFLICT: add the new row's figure to the stored one."""
    return stored + excluded[stored.name]


class _Deltas:
    """Changes to the aggregate and histogram rows, summed before they are written."""

    def __init__(self) -> None:
        self.sums: dict[Key, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
        self.values: list[tuple[str, str, str, str, float, int]] = []

    def add(self, key: PairKey, series: str, value: float, sign: int) -> None:
        use_case, candidate, feature, bucket = key
        row = self.sums[(use_case, candidate, feature, series, bucket)]
        row[0] += sign
        row[1] += sign if value != 0 else 0
        row[2] += sign * value
        row[3] += sign * value * value
        self.values.append((use_case, candidate, feature, series, value, sign))

    def count_pair(self, key: PairKey, sign: int) -> None:
        """One pair stored (or deleted)."""
        use_case, candidate, feature, bucket = key
        self.sums[(use_case, candidate, feature, PAIRS, bucket)][0] += sign

    def add_pair(
        self, key: PairKey, values: dict[str, float], changed: set[str], sign: int
    ) -> None:
        """One pair's `changed` metrics, and the derived series they take part in."""
        for metric in changed:
            self.add(key, metric, values[metric], sign)
        for series, (operation, first, second) in DERIVED.items():
            if (first in changed or second in changed) and first in values and second in values:
                value = derived_value(operation, values[first], values[second])
                if value is not None:
                    self.add(key, series, value, sign)

    def write(self, connection: Connection) -> None:
        """Add the changes to the stored rows (sorted, so concurrent writers lock in order)."""
        sums = [
            {
                "use_case": key[0],
                "candidate": key[1],
                "feature": key[2],
                "series": key[3],
                "bucket": key[4],
                "n": int(row[0]),
                "nonzero": int(row[1]),
                "total": row[2],
                "total_sq": row[3],
            }
            for key, row in sorted(self.sums.items())
            if row[0] or row[2] or row[3]
        ]
        # rows sorted, so concurrent writers lock them in the same order; keys are unique
        insert_rows(
            connection,
            ScoreAggregate,
            sums,
            conflict=["use_case", "candidate", "series", "feature", "bucket"],
            update=dict.fromkeys(("n", "nonzero", "total", "total_sq"), _plus),
        )
        counted: dict[Key, int] = defaultdict(int)
        codes = bin_codes(np.fromiter((v[4] for v in self.values), float, len(self.values)))
        for (use_case, candidate, feature, series, _, sign), code in zip(
            self.values, codes, strict=True
        ):
            counted[(use_case, candidate, feature, series, int(code))] += sign
        bins = [
            {
                "use_case": k[0],
                "candidate": k[1],
                "feature": k[2],
                "series": k[3],
                "bin": k[4],
                "n": n,
            }
            for k, n in sorted(counted.items())
            if n
        ]
        insert_rows(
            connection,
            ScoreHistogram,
            bins,
            conflict=["use_case", "candidate", "series", "feature", "bin"],
            update={"n": _plus},
        )
        if any(row[0] < 0 for row in self.sums.values()):
            # a block emptied by a deletion is dropped, so it matches one never written
            use_cases = sorted({key[0] for key in self.sums})
            connection.execute(
                delete(ScoreAggregate).where(
                    ScoreAggregate.use_case.in_(use_cases), ScoreAggregate.n <= 0
                )
            )
            connection.execute(
                delete(ScoreHistogram).where(
                    ScoreHistogram.use_case.in_(use_cases), ScoreHistogram.n <= 0
                )
            )


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _pair_keys(connection: Connection, pair_ids: Sequence[str]) -> dict[str, PairKey]:
    keys: dict[str, PairKey] = {}
    for chunk in _chunks(pair_ids):
        query = select(
            RequestPair.id,
            RequestPair.use_case,
            RequestPair.candidate_name,
            RequestPair.feature,
            RequestPair.created_at,
        ).where(RequestPair.id.in_(chunk))
        for pair_id, use_case, candidate, feature, created_at in connection.execute(query):
            keys[pair_id] = (use_case, candidate, feature or "", bucket_of(created_at))
    return keys


def _stored_components(
    connection: Connection, pair_ids: Sequence[str]
) -> dict[str, dict[str, float]]:
    """The stored values of metrics that derived series are made of, by pair."""
    found: dict[str, dict[str, float]] = defaultdict(dict)
    for chunk in _chunks(pair_ids):
        query = select(Score.pair_id, Score.metric, Score.value).where(
            Score.pair_id.in_(chunk), Score.metric.in_(_COMPONENTS), Score.value.is_not(None)
        )
        for pair_id, metric, value in connection.execute(query):
            found[pair_id][metric] = value  # type: ignore[assignment]  # NULLs are filtered out
    return found


def _change(
    connection: Connection, rows: Iterable[tuple[str, str, float | None]], sign: int
) -> None:
    changed: dict[str, dict[str, float]] = defaultdict(dict)
    for pair_id, metric, value in rows:
        if value is not None:
            changed[pair_id][metric] = value
    if not changed:
        return
    pair_ids = sorted(changed)
    keys = _pair_keys(connection, pair_ids)
    involved = [p for p in pair_ids if _COMPONENTS & changed[p].keys()]
    stored = _stored_components(connection, involved) if involved else {}
    deltas = _Deltas()
    for pair_id in pair_ids:
        if pair_id not in keys:
            continue
        # after an insert the stored values include the new ones; after a delete they
        # lack the removed ones, which the pair had before
        values = {**stored.get(pair_id, {}), **changed[pair_id]}
        deltas.add_pair(keys[pair_id], values, set(changed[pair_id]), sign)
    deltas.write(connection)


def add_scores(session: Session, rows: Iterable[tuple[str, str, float | None]]) -> None:
    """Fold newly written (pair id, metric, value) score rows into the aggregates."""
    _change(session.connection(), rows, +1)


def remove_scores(session: Session, rows: Sequence[tuple[str, str, float | None]]) -> int:
    """Take deleted (pair id, metric, value) score rows out of the aggregates; how many."""
    _change(session.connection(), rows, -1)
    return len(rows)


PairRow = tuple[str, str, str | None, datetime]  # use case, candidate, feature, arrival


def _count_pairs(connection: Connection, pairs: Iterable[PairRow], sign: int) -> None:
    deltas = _Deltas()
    for use_case, candidate, feature, created_at in pairs:
        deltas.count_pair((use_case, candidate, feature or "", bucket_of(created_at)), sign)
    deltas.write(connection)


def add_pairs(session: Session, pairs: Iterable[PairRow]) -> None:
    """Count newly stored (use case, candidate, feature, arrival) pairs."""
    _count_pairs(session.connection(), pairs, +1)


def remove_pairs(session: Session, pairs: Iterable[PairRow]) -> None:
    """Stop counting deleted (use case, candidate, feature, arrival) pairs."""
    _count_pairs(session.connection(), pairs, -1)


def pair_count(session: Session, use_case: str, candidate: str | None = None) -> int:
    """How many pairs of a use case (of one candidate, or all) are stored."""
    query = select(func.sum(ScoreAggregate.n)).where(
        ScoreAggregate.use_case == use_case, ScoreAggregate.series == PAIRS
    )
    if candidate is not None:
        query = query.where(ScoreAggregate.candidate == candidate)
    return int(session.scalar(query) or 0)


@event.listens_for(Session, "after_flush")
def _written_through_the_orm(session: Session, _context: Any) -> None:
    pairs = [obj for obj in session.new if isinstance(obj, RequestPair)]
    if pairs:
        _count_pairs(
            session.connection(),
            [(p.use_case, p.candidate_name, p.feature, p.created_at) for p in pairs],
            +1,
        )
    added = [obj for obj in session.new if isinstance(obj, Score)]
    if added:
        _change(session.connection(), [(s.pair_id, s.metric, s.value) for s in added], +1)


def rebuild(session: Session, use_case: str) -> None:
    """Recompute a use case's aggregates from its stored scores."""
    _rebuild(session.connection(), use_case)


def rebuild_all(connection: Connection) -> None:
    """Recompute every use case's aggregates (used by the migration that adds them)."""
    for use_case in connection.scalars(select(RequestPair.use_case).distinct()).all():
        _rebuild(connection, use_case)


def _rebuild(connection: Connection, use_case: str, pairs_per_round: int = 20000) -> None:
    connection.execute(delete(ScoreAggregate).where(ScoreAggregate.use_case == use_case))
    connection.execute(delete(ScoreHistogram).where(ScoreHistogram.use_case == use_case))
    last = ""
    while True:
        pairs = connection.execute(
            select(
                RequestPair.id,
                RequestPair.candidate_name,
                RequestPair.feature,
                RequestPair.created_at,
            )
            .where(RequestPair.use_case == use_case, RequestPair.id > last)
            .order_by(RequestPair.id)
            .limit(pairs_per_round)
        ).all()
        if not pairs:
            break
        keys: dict[str, PairKey] = {
            p: (use_case, candidate, feature or "", bucket_of(at))
            for p, candidate, feature, at in pairs
        }
        values: dict[str, dict[str, float]] = defaultdict(dict)
        query = (
            select(Score.pair_id, Score.metric, Score.value)
            .join(RequestPair, RequestPair.id == Score.pair_id)
            .where(
                RequestPair.use_case == use_case,
                RequestPair.id > last,
                RequestPair.id <= pairs[-1][0],
                Score.value.is_not(None),
            )
        )
        for pair_id, metric, value in connection.execute(query):
            values[pair_id][metric] = value  # type: ignore[assignment]  # NULLs are filtered out
        deltas = _Deltas()
        for key in keys.values():
            deltas.count_pair(key, +1)
        for pair_id, metric_values in values.items():
            deltas.add_pair(keys[pair_id], metric_values, set(metric_values), +1)
        deltas.write(connection)
        last = pairs[-1][0]


# --- reading --------------------------------------------------------------------------------


def _filters(
    model: Any, use_case: str, series: str, feature: str | None, candidate: str | None
) -> list[Any]:
    found = [model.use_case == use_case, model.series == series]
    if feature is not None:
        found.append(model.feature == feature)
    if candidate is not None:
        found.append(model.candidate == candidate)
    return found


def bucket_sums(
    session: Session,
    use_case: str,
    series: str,
    feature: str | None = None,
    candidate: str | None = None,
) -> list[tuple[int, int, float, float]]:
    """(bucket, count, sum, sum of squares) of each 10-minute bucket holding samples, in order."""
    rows = session.execute(
        select(
            ScoreAggregate.bucket,
            func.sum(ScoreAggregate.n),
            func.sum(ScoreAggregate.total),
            func.sum(ScoreAggregate.total_sq),
        )
        .where(*_filters(ScoreAggregate, use_case, series, feature, candidate))
        .group_by(ScoreAggregate.bucket)
        .order_by(ScoreAggregate.bucket)
    ).all()
    return [(int(b), int(n), float(s), float(sq)) for b, n, s, sq in rows if n]


def totals(
    session: Session,
    use_case: str,
    series: str,
    feature: str | None = None,
    candidate: str | None = None,
) -> tuple[int, int]:
    """(count, non-zero count) of a series."""
    n, nonzero = session.execute(
        select(func.sum(ScoreAggregate.n), func.sum(ScoreAggregate.nonzero)).where(
            *_filters(ScoreAggregate, use_case, series, feature, candidate)
        )
    ).one()
    return int(n or 0), int(nonzero or 0)


def histogram(
    session: Session,
    use_case: str,
    series: str,
    feature: str | None = None,
    candidate: str | None = None,
) -> list[tuple[int, int]]:
    """(bin code, count) of a series, in the order of the values."""
    rows = session.execute(
        select(ScoreHistogram.bin, func.sum(ScoreHistogram.n))
        .where(*_filters(ScoreHistogram, use_case, series, feature, candidate))
        .group_by(ScoreHistogram.bin)
        .order_by(ScoreHistogram.bin)
    ).all()
    return [(int(code), int(n)) for code, n in rows if n]


def raw_values(
    session: Session,
    use_case: str,
    metrics: Sequence[str],
    feature: str | None = None,
    candidate: str | None = None,
    source: str | None = None,
) -> Sequence[tuple[str, str, float, datetime]]:
    """(pair id, metric, value, arrival) of the scored metrics, in arrival order.

    `source` ("live" or "import") keeps only the pairs of that source.
    """
    query = (
        select(Score.pair_id, Score.metric, Score.value, RequestPair.created_at)
        .join(RequestPair, RequestPair.id == Score.pair_id)
        .where(
            RequestPair.use_case == use_case,
            Score.metric.in_(metrics),
            Score.value.is_not(None),
        )
        .order_by(RequestPair.created_at, RequestPair.id)
    )
    if feature is not None:
        query = query.where(RequestPair.feature == feature)
    if candidate is not None:
        query = query.where(RequestPair.candidate_name == candidate)
    if source is not None:
        query = query.where(RequestPair.source == source)
    return session.execute(query).tuples().all()  # type: ignore[return-value]
