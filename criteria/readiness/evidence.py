"""A criterion's evidence, from the score aggregates (the default) or from the raw scores.

Both give the same `Evidence` for the same scores: the same blocks for a mean (the doubling
blocks of `storage.aggregates.block_starts` over 10-minute periods of arrival), the same
counts for a proportion, and the same counts below and at the threshold for a quantile. A quantile's
interval ends are exact order statistics when read raw and the histogram bin holding them
when aggregated. The raw path stays for the criteria the aggregates cannot serve (a
quantile threshold off the histogram grid), for `--raw` comparisons and for the tests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session

from criteria.readiness.engine import Evidence, effective_threshold
from criteria.readiness.schema import Criterion
from criteria.readiness.stats import Blocks, FloatArray
from evaluators.catalog import NOISE_COUNTERPART, RELATIVE_COUNTERPART
from storage import aggregates

log = logging.getLogger(__name__)


def series_of(criterion: Criterion) -> str:
    """The aggregated series a criterion is judged on."""
    if criterion.mode == "noise_adjusted":
        return f"{criterion.metric}-{NOISE_COUNTERPART[criterion.metric]}"
    if criterion.mode == "relative":
        return f"{criterion.metric}/{RELATIVE_COUNTERPART[criterion.metric]}"
    return criterion.metric


def components(criterion: Criterion) -> list[str]:
    """The stored metrics a criterion's series is made of."""
    series = series_of(criterion)
    if series in aggregates.DERIVED:
        _, first, second = aggregates.DERIVED[series]
        return [first, second]
    return [series]


def _blocks(rows: Sequence[tuple[int, int, float, float]]) -> Blocks:
    if not rows:
        return Blocks(np.empty(0), np.empty(0), np.empty(0))
    n, _, total, total_sq = (
        np.asarray(column, dtype=np.float64) for column in zip(*rows, strict=True)
    )
    return Blocks(n, total, total_sq)


def aggregated(session: Session, use_case: str, criterion: Criterion) -> Evidence | None:
    """A criterion's evidence from the aggregates; None when they cannot give it exactly."""
    series = series_of(criterion)
    if criterion.mode != "absolute" and series not in aggregates.DERIVED:
        log.info("criterion %r: series %s is not aggregated, reading raw", criterion.name, series)
        return None
    if criterion.stat == "quantile":
        _, threshold = effective_threshold(criterion)
        code = aggregates.threshold_code(threshold)
        if code is None:
            log.info(
                "criterion %r: threshold %r has more than 3 significant digits, reading raw",
                criterion.name,
                threshold,
            )
            return None
        bins = aggregates.histogram(session, use_case, series, criterion.segment)
        codes = np.asarray([c for c, _ in bins], dtype=np.int64)
        counts = np.asarray([n for _, n in bins], dtype=np.int64)
        cumulative = np.cumsum(counts)

        def order(rank: int) -> tuple[float, float]:
            index = int(np.searchsorted(cumulative, rank))
            return aggregates.bin_range(int(codes[index]))

        return Evidence(
            n=int(counts.sum()),
            below=int(counts[codes < code].sum()),
            at=int(counts[codes == code].sum()),
            order=order,
        )
    if criterion.stat == "proportion":
        n, nonzero = aggregates.totals(session, use_case, series, criterion.segment)
        return Evidence(n=n, nonzero=nonzero)
    rows = aggregates.block_sums(session, use_case, series, criterion.segment)
    return Evidence(
        n=sum(row[0] for row in rows), nonzero=sum(row[1] for row in rows), blocks=_blocks(rows)
    )


def _raw_series(
    criterion: Criterion, per_pair: dict[str, tuple[datetime, dict[str, float]]]
) -> tuple[list[int], list[float]]:
    """Arrival buckets and values of a criterion's series, in arrival order."""
    series = series_of(criterion)
    buckets: list[int] = []
    values: list[float] = []
    derived = aggregates.DERIVED.get(series)
    for created_at, row in per_pair.values():
        if derived is None:
            if series not in row:
                continue
            value = row[series]
        else:
            operation, first, second = derived
            if first not in row or second not in row:
                continue
            derived_one = aggregates.derived_value(operation, row[first], row[second])
            if derived_one is None:
                continue
            value = derived_one
        buckets.append(aggregates.bucket_of(created_at))
        values.append(value)
    return buckets, values


def _raw_evidence(criterion: Criterion, buckets: list[int], values: list[float]) -> Evidence:
    array = np.asarray(values, dtype=np.float64)
    n = len(array)
    if criterion.stat == "quantile":
        _, threshold = effective_threshold(criterion)
        ordered = np.sort(array)

        def order(rank: int) -> tuple[float, float]:
            value = float(ordered[rank - 1])
            return value, value

        return Evidence(
            n=n,
            below=int(np.count_nonzero(array < threshold)),
            at=int(np.count_nonzero(array == threshold)),
            order=order,
        )
    if n == 0:
        return Evidence(n=0, blocks=_blocks([]))
    periods = np.asarray(buckets, dtype=np.int64)
    starts = np.asarray(aggregates.block_starts(int(periods.min()), int(periods.max())))
    block = np.searchsorted(starts, periods, side="right") - 1
    size = len(starts)
    counts: FloatArray = np.bincount(block, minlength=size).astype(np.float64)
    keep = counts > 0
    blocks = Blocks(
        counts[keep],
        np.bincount(block, weights=array, minlength=size)[keep].astype(np.float64),
        np.bincount(block, weights=array * array, minlength=size)[keep].astype(np.float64),
    )
    return Evidence(n=n, nonzero=int(np.count_nonzero(array)), blocks=blocks)


def raw(session: Session, use_case: str, criteria: Sequence[Criterion]) -> dict[str, Evidence]:
    """Evidence of per-pair criteria read from the raw scores, by criterion name."""
    found: dict[str, Evidence] = {}
    by_segment: dict[str | None, dict[str, tuple[datetime, dict[str, float]]]] = {}
    wanted = sorted({m for c in criteria for m in components(c)})
    for criterion in criteria:
        if criterion.segment not in by_segment:
            per_pair: dict[str, tuple[datetime, dict[str, float]]] = {}
            rows = aggregates.raw_values(session, use_case, wanted, criterion.segment)
            for pair_id, metric, value, created_at in rows:
                per_pair.setdefault(pair_id, (created_at, {}))[1][metric] = value
            by_segment[criterion.segment] = per_pair
        buckets, values = _raw_series(criterion, by_segment[criterion.segment])
        found[criterion.name] = _raw_evidence(criterion, buckets, values)
    return found


def load(
    session: Session, use_case: str, criteria: Sequence[Criterion], read_raw: bool = False
) -> dict[str, Evidence]:
    """Evidence of per-pair criteria, aggregated where the aggregates serve them exactly."""
    found: dict[str, Evidence] = {}
    fallback: list[Criterion] = list(criteria) if read_raw else []
    if not read_raw:
        for criterion in criteria:
            evidence = aggregated(session, use_case, criterion)
            if evidence is None:
                fallback.append(criterion)
            else:
                found[criterion.name] = evidence
    if fallback:
        found |= raw(session, use_case, fallback)
    return found
