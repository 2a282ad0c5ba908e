"""A criterion's evidence, from the score aggregates (the default) or from the raw scores.

Both give the same `Evidence` for the same scores: the same cumulative sums at the end of each
10-minute bucket of arrival for a mean or a proportion (a noise-adjusted mean has two series,
on the same bucket ends), and the same counts below and at the threshold for a quantile. A
quantile's interval ends are exact order statistics when read raw and the histogram bin
holding them when aggregated. The raw path stays for the criteria the aggregates cannot serve
(a quantile threshold off the histogram grid), for criteria restricted to one `source` (live
or imported pairs: the aggregates do not tell them apart), for `--raw` comparisons and for
the tests.
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


def _whose(criterion: Criterion, position: int, candidate: str | None) -> str | None:
    """Whose pairs a criterion's series is read from: the candidate's, but the noise floor's
    from every candidate's pairs (one re-ask per request serves them all)."""
    return None if position == 1 and criterion.mode == "noise_adjusted" else candidate


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


def aggregated(
    session: Session, use_case: str, criterion: Criterion, candidate: str | None = None
) -> Evidence | None:
    """A criterion's evidence from the aggregates; None when they cannot give it exactly."""
    names = series_of(criterion)
    if criterion.stat == "quantile":
        if criterion.mode == "relative":
            n, _, order = _histogram_order(
                aggregates.histogram(session, use_case, names[0], criterion.segment, candidate)
            )
            base_n, _, base_order = _histogram_order(
                aggregates.histogram(session, use_case, names[1], criterion.segment, candidate)
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
        bins = aggregates.histogram(session, use_case, names[0], criterion.segment, candidate)
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
            for b, n, s, sq in aggregates.bucket_sums(
                session, use_case, name, criterion.segment, _whose(criterion, i, candidate)
            )
        }
        for i, name in enumerate(names)
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


def raw(
    session: Session, use_case: str, criteria: Sequence[Criterion], candidate: str | None = None
) -> dict[str, Evidence]:
    """Evidence of per-pair criteria read from the raw scores, by criterion name."""
    found: dict[str, Evidence] = {}
    Series = dict[str, tuple[list[int], list[float]]]
    read: dict[tuple[str | None, str, str | None, str | None], tuple[list[int], list[float]]] = {}

    def series(
        segment: str | None, metric: str, whose: str | None, source: str | None
    ) -> tuple[list[int], list[float]]:
        key = (segment, metric, whose, source)
        if key not in read:
            buckets: list[int] = []
            values: list[float] = []
            for _, _, value, created_at in aggregates.raw_values(
                session, use_case, [metric], segment, whose, source
            ):
                buckets.append(aggregates.bucket_of(created_at))
                values.append(value)
            read[key] = (buckets, values)
        return read[key]

    for criterion in criteria:
        source = None if criterion.source == "any" else criterion.source
        per_metric: Series = {
            name: series(criterion.segment, name, _whose(criterion, i, candidate), source)
            for i, name in enumerate(series_of(criterion))
        }
        found[criterion.name] = raw_evidence(criterion, per_metric)
    return found


def load(
    session: Session,
    use_case: str,
    criteria: Sequence[Criterion],
    read_raw: bool = False,
    candidate: str | None = None,
) -> dict[str, Evidence]:
    """Evidence of per-pair criteria, aggregated where the aggregates serve them exactly.

    `candidate` restricts it to that candidate's pairs (None: every pair of the use case).
    """
    found: dict[str, Evidence] = {}
    fallback: list[Criterion] = list(criteria) if read_raw else []
    if not read_raw:
        for criterion in criteria:
            if criterion.source != "any":
                # the aggregates do not tell the sources apart
                fallback.append(criterion)
                continue
            evidence = aggregated(session, use_case, criterion, candidate)
            if evidence is None:
                fallback.append(criterion)
            else:
                found[criterion.name] = evidence
    if fallback:
        found |= raw(session, use_case, fallback, candidate)
    return found
