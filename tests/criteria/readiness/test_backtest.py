"""`criteria backtest`: the engine over recorded values, look by look, as the service judges.

The simulations here go through the backtest path (the evidence built as the aggregates hold
it, the interval carried from look to look): seeded, a look after every 50 pairs.
"""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
from sqlalchemy import select

from criteria.readiness import service
from criteria.readiness.backtest import Run, backtest_run, read_values
from criteria.readiness.engine import Decision
from criteria.readiness.schema import parse_criteria
from storage.models import RequestPair, Score
from tests.conftest import VENV_BIN
from tests.criteria.readiness.test_aggregates import START, _info, _seed

ALPHA = 0.05


def _criteria(line: str, min_duration: str = "0s"):
    return parse_criteria(
        f"use_case: x\nalpha: {ALPHA}\nmin_duration: {min_duration}\ncriteria:\n  - {line}\n"
    )


NOISE = (
    "{name: quality, metric: quality.semantic_similarity, stat: mean, mode: noise_adjusted,"
    " margin: 0.03}"
)
ERRORS = "{name: errors, metric: candidate.error, stat: proportion, op: '<=', threshold: 0.01}"
MEAN = "{name: overlap, metric: quality.rouge_l, stat: mean, op: '>=', threshold: 0.7}"


def _noise_run(rng, n: int, drop: float, rate: float = 0.2) -> Run:
    """The API re-asked on `rate` of the pairs; the candidate `drop` below the noise floor."""
    candidate = np.clip(rng.normal(0.85 - drop, 0.06, n), -1, 1)
    noise = np.clip(rng.normal(0.85, 0.05, n), -1, 1)
    noise[rng.random(n) >= rate] = np.nan
    return Run({"quality.semantic_similarity": candidate, "noise.semantic_similarity": noise})


def test_a_over_a_is_go_and_a_drop_beyond_the_margin_is_no_go():
    rng = np.random.default_rng(7)
    criteria = _criteria(NOISE)
    same = backtest_run("a/a", criteria, _noise_run(rng, 2000, 0.0), 50)
    assert same.verdict == "GO"
    assert same.criteria[0].first_pass_n is not None
    assert same.criteria[0].first_pass_n <= 1000
    worse = backtest_run("drop", criteria, _noise_run(rng, 2000, 0.08), 50)
    assert worse.verdict == "NO_GO"
    assert worse.criteria[0].first_fail_n is not None


def _ever_passes(criteria, run: Run) -> bool:
    stop = lambda d: d.criteria[0].verdict == "PASS"  # noqa: E731
    return backtest_run("x", criteria, run, 50, stop=stop).criteria[0].first_pass_n is not None


def test_at_the_threshold_a_pass_is_rare_however_often_one_looks():
    """Looked at after every 50 pairs up to 2,000: a wrong PASS in at most alpha of the runs."""
    runs = 200
    slack = 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    mean = _criteria(MEAN)
    rate = _criteria(ERRORS)
    noise = _criteria(NOISE)
    passes = {"mean": 0, "rate": 0, "noise": 0}
    for i in range(runs):
        rng = np.random.default_rng([11, i])
        passes["mean"] += _ever_passes(mean, Run({"quality.rouge_l": rng.beta(7, 3, 2000)}))
        errors = (rng.random(2000) < 0.01).astype(np.float64)
        passes["rate"] += _ever_passes(rate, Run({"candidate.error": errors}))
        passes["noise"] += _ever_passes(noise, _noise_run(rng, 2000, 0.03, rate=0.5))
    for kind, count in passes.items():
        assert count / runs <= ALPHA + slack, f"{kind}: {count} of {runs} runs passed"


def test_a_recorded_stream_that_passes_never_shows_inconclusive_later():
    rng = np.random.default_rng(3)
    criteria = _criteria(ERRORS)
    for _ in range(20):
        run = Run({"candidate.error": (rng.random(4000) < 0.004).astype(np.float64)})
        verdicts: list[str] = []

        def watch(decision: Decision, seen: list[str] = verdicts) -> bool:
            seen.append(decision.criteria[0].verdict)
            return False

        backtest_run("x", criteria, run, 50, stop=watch)
        if "PASS" in verdicts:
            first = verdicts.index("PASS")
            assert set(verdicts[first:]) == {"PASS"}, verdicts


def test_backtest_gives_the_service_s_verdicts_on_the_same_pairs(db_session, tmp_path):
    """The stored pairs exported as CSV with their arrival times: the same verdict and figures."""
    _seed(db_session, "close", 300, 0.8, 1.6, seed=310)
    info = _info("close", rouge=0.78, p95=1000)
    now = START.replace(year=START.year + 1)
    served = service.evaluate(db_session, info, now=now)
    rows = db_session.execute(
        select(RequestPair.created_at, Score.metric, Score.value)
        .join(Score, Score.pair_id == RequestPair.id)
        .where(RequestPair.use_case == "close", Score.value.is_not(None))
        .order_by(RequestPair.created_at)
    ).all()
    feature_free = [c for c in parse_criteria(info.criteria_text or "").criteria if not c.segment]
    metrics = sorted({m for _, m, _ in rows})
    per_pair: dict[float, dict[str, float]] = {}
    for created_at, metric, value in rows:
        per_pair.setdefault(created_at.timestamp(), {})[metric] = value
    csv = tmp_path / "values.csv"
    lines = ["t," + ",".join(metrics)]
    for t, values in per_pair.items():
        lines.append(f"{t}," + ",".join(str(values.get(m, "")) for m in metrics))
    csv.write_text("\n".join(lines) + "\n")
    criteria_file = tmp_path / "criteria.yaml"
    criteria_file.write_text(info.criteria_text or "")
    done = subprocess.run(
        [
            str(VENV_BIN / "switchover"),
            "criteria",
            "backtest",
            "--criteria",
            str(criteria_file),
            "--values",
            str(csv),
            "--look-every",
            str(len(per_pair)),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)["runs"]
    by_name = {c["name"]: c for c in run["criteria"]}
    for criterion in served.criteria:
        if criterion.name in {c.name for c in feature_free}:
            assert by_name[criterion.name]["verdict"] == criterion.verdict, criterion.name
    assert {c.verdict for c in served.criteria} >= {"PASS", "FAIL"}
    assert read_values(csv)["1"].pairs == len(per_pair)


def test_quantile_and_relative_criteria_at_the_threshold_rarely_pass():
    """p95 exactly at T, and a candidate's p95 exactly 1.2x the API's, looked at every 100."""
    runs = 150
    slack = 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    p95 = _criteria(
        "{name: p95, metric: candidate.latency_ms, stat: quantile, q: 0.95, op: '<=',"
        " threshold: 1500}"
    )
    relative = _criteria(
        "{name: ratio, metric: candidate.latency_ms, stat: quantile, q: 0.95, mode: relative,"
        " margin: 0.2}"
    )
    sigma, z95 = 0.5, 1.6448536269514722
    mu = math.log(1500) - sigma * z95  # P(X <= 1500) = 0.95 exactly
    passes = {"p95": 0, "relative": 0}
    for i in range(runs):
        rng = np.random.default_rng([17, i])
        latencies = rng.lognormal(mu, sigma, 2000)
        run = Run({"candidate.latency_ms": latencies})
        stop = lambda d: d.criteria[0].verdict == "PASS"  # noqa: E731
        passes["p95"] += backtest_run("q", p95, run, 100, stop=stop).verdict == "GO"
        api = rng.lognormal(math.log(400), 0.6, 2000)
        slower = rng.lognormal(math.log(400 * 1.2), 0.6, 2000)
        pair = Run({"primary.latency_ms": api, "candidate.latency_ms": slower})
        passes["relative"] += backtest_run("r", relative, pair, 100, stop=stop).verdict == "GO"
    for kind, count in passes.items():
        assert count / runs <= ALPHA + slack, f"{kind}: {count} of {runs} runs passed"
