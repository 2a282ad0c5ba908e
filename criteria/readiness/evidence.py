"""A criterion's evidence, from the score aggregates (the default) or from the raw scores.

Both give the same `Evidence` for the same scores: the same cumulative sums at the end of each
10-minute bucket of arrival for a mean or a proportion (a noise-adjusted mean has two series,
on the same bucket ends), and the same counts below and at the threshold for a quantile. A
quantile's interval ends are exact order statistics when read raw and the histogram bin
holding them when aggregated. The raw path stays for the criteria the aggregates cannot serve
(a quantile threshold off the histogram grid), for `--raw` comparisons and for the tests.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from sqlalchemy.orm import Session

from criteria.readiness.engine import (
    Evidence,
    Order,
    Sums,
    effective_threshold,
    quantile_evidence,
)
from criteria.readiness.schema import Criterion
from criteria.readiness.sequences import FloatArray
from evaluators.catalog import NOISE_COUNTERPART, RELATIVE_COUNTERPART
from storage import aggregates

log = logging.getLogger(__name__)


def series_of(criterion: Criterion) -> list[str]:
    """The stored series a criterion is judged on: its metric, then the API's counterpart."""
    if criterion.mode == "noise_adjusted":
        return [criterion.metric, NOISE_COUNTERPART[criterion.metric]]
    if criterion.mode == "relative":
        return [criterion.metric, RELATIVE_COUNTERPART[criterion.metric]]
    return [criterion.metric]


def _aligned(per_series: Sequence[Mapping[int, tuple[float, float, float]]]) -> list[Sums]:
    """Each series' cumulative sums at the end of every bucket any of them has samples in."""
    buckets = sorted(set().union(*per_series))
    found = []
    for rows in per_series:
        sums = np.asarray([rows.get(b, (0.0, 0.0, 0.0)) for b in buckets], dtype=np.float64)
        sums = sums.reshape(len(buckets), 3)
        found.append(Sums.of_buckets(sums[:, 0], sums[:, 1], sums[:, 2]))
    return found


def _sums_evidence(criterion: Criterion, sums: list[Sums]) -> Evidence:
    if criterion.mode == "noise_adjusted":
        return Evidence(n=sums[0].count, sums=sums[0], noise=sums[1])
    return Evidence(n=sums[0].count, sums=sums[0])


def _histogram_order(bins: Sequence[tuple[int, int]]) -> tuple[int, FloatArray, Order]:
    codes = np.asarray([c for c, _ in bins], dtype=np.int64)
    counts = np.asarray([n for _, n in bins], dtype=np.int64)
    cumulative = np.cumsum(counts)

    def order(rank: int) -> tuple[float, float]:
        index = int(np.searchsorted(cumulative, rank))
        return aggregates.bin_range(int(codes[index]))

    return int(counts.sum()), np.stack([codes, counts]).astype(np.float64), order


def aggregated(session: Session, use_case: str, criterion: Criterion) -> Evidence | None:
    """A criterion's evidence from the aggregates; None when they cannot give it exactly."""
    names = series_of(criterion)
    if criterion.stat == "quantile":
        if criterion.mode == "relative":
            n, _, order = _histogram_order(
                aggregates.histogram(session, use_case, names[0], criterion.segment)
            )
            base_n, _, base_order = _histogram_order(
                aggregates.histogram(session, use_case, names[1], criterion.segment)
            )
            return Evidence(n=n, order=order, baseline_n=base_n, baseline_order=base_order)
        _, threshold = effective_threshold(criterion)
        code = aggregates.threshold_code(threshold)
        if code is None:
            log.info(
                "criterion %r: threshold %r has more than 3 significant digits, reading raw",
                criterion.name,
                threshold,
            )
            return None
        bins = aggregates.histogram(session, use_case, names[0], criterion.segment)
        n, table, order = _histogram_order(bins)
        codes, counts = table[0], table[1]
        return Evidence(
            n=n,
            below=int(counts[codes < code].sum()),
            at=int(counts[codes == code].sum()),
            order=order,
        )
    per_series = [
        {
            b: (n, s, sq)
            for b, n, s, sq in aggregates.bucket_sums(session, use_case, name, criterion.segment)
        }
        for name in names
    ]
    return _sums_evidence(criterion, _aligned(per_series))


def raw_evidence(
    criterion: Criterion, series: Mapping[str, tuple[Sequence[int], Sequence[float]]]
) -> Evidence:
    """Evidence from each series' (bucket, value) samples in arrival order."""
    names = series_of(criterion)
    if criterion.stat == "quantile":
        values = np.asarray(series.get(names[0], ((), ()))[1], dtype=np.float64)
        base = series.get(names[1], ((), ()))[1] if len(names) > 1 else None
        return quantile_evidence(criterion, values, np.asarray(base) if base is not None else None)
    per_series = []
    for name in names:
        buckets, samples = series.get(name, ((), ()))
        rows: dict[int, list[float]] = {}
        for bucket, value in zip(buckets, samples, strict=True):
            row = rows.setdefault(bucket, [0.0, 0.0, 0.0])
            row[0] += 1
            row[1] += value
            row[2] += value * value
        per_series.append({b: (r[0], r[1], r[2]) for b, r in rows.items()})
    return _sums_evidence(criterion, _aligned(per_series))


def raw(session: Session, use_case: str, criteria: Sequence[Criterion]) -> dict[str, Evidence]:
    """Evidence of per-pair criteria read from the raw scores, by criterion name."""
    found: dict[str, Evidence] = {}
    wanted = sorted({m for c in criteria for m in series_of(c)})
    by_segment: dict[str | None, dict[str, tuple[list[int], list[float]]]] = {}
    for criterion in criteria:
        if criterion.segment not in by_segment:
            per_metric: dict[str, tuple[list[int], list[float]]] = {}
            rows = aggregates.raw_values(session, use_case, wanted, criterion.segment)
            for _, metric, value, created_at in rows:
                buckets, values = per_metric.setdefault(metric, ([], []))
                buckets.append(aggregates.bucket_of(created_at))
                values.append(value)
            by_segment[criterion.segment] = per_metric
        found[criterion.name] = raw_evidence(
            criterion,
            {k: (v[0], v[1]) for k, v in by_segment[criterion.segment].items()},
        )
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
