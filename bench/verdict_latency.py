"""Latency of `GET /api/v1/readiness/{use_case}` at 10k, 100k and 1M scored pairs.

Builds a fresh PostgreSQL database with the migrations, bulk-loads pairs with their scores
(`bench/seed_pairs.py`: COPY, then the aggregate rebuild) up to each size in turn, and times
the readiness GET through the real FastAPI app (in-process ASGI client, bearer token, the
verdict stored as always) with the criteria of SPEC §5 that are judged on pairs: noise-adjusted
similarity, p95 latency, relative median latency, error rate, valid JSON, mean ROUGE-L. The
baseline, in the same run, is the same evaluation reading the raw scores (`raw=True`, the
path the engine used before the aggregates) at 10k and 100k pairs.

Prints per size the median and p95 latency, the growth against the smallest size next to the
growth in pairs, and the aggregate path's speed-up over the raw one; writes them to
bench/results/verdict_latency.json. Target: <= 100 ms at 1M, growth well below linear.

    nice .venv/bin/python bench/verdict_latency.py [--sizes 10000,100000,1000000] [--calls 20]

Needs PostgreSQL on 127.0.0.1 (user postgres, trust); the database is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_pairs import load

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RESULTS = Path(__file__).resolve().parent / "results" / "verdict_latency.json"
TARGET_MS = 100.0
RAW_UP_TO = 100_000
USE_CASE = "bench"
CRITERIA = {
    "alpha": 0.05,
    "min_duration": "24h",
    "criteria": [
        {
            "name": "answer quality",
            "metric": "quality.semantic_similarity",
            "stat": "mean",
            "mode": "noise_adjusted",
            "margin": 0.03,
            "critical": True,
        },
        {
            "name": "tail latency",
            "metric": "candidate.latency_ms",
            "stat": "quantile",
            "q": 0.95,
            "op": "<=",
            "threshold": 1500,
        },
        {
            "name": "no slower than API",
            "metric": "candidate.latency_ms",
            "stat": "quantile",
            "q": 0.5,
            "mode": "relative",
            "margin": 0.2,
        },
        {
            "name": "reliability",
            "metric": "candidate.error",
            "stat": "proportion",
            "op": "<=",
            "threshold": 0.01,
            "critical": True,
        },
        {
            "name": "valid JSON",
            "metric": "quality.json_valid",
            "stat": "proportion",
            "op": ">=",
            "threshold": 0.99,
        },
        {
            "name": "overlap",
            "metric": "quality.rouge_l",
            "stat": "mean",
            "op": ">=",
            "threshold": 0.7,
        },
    ],
}


def _config() -> str:
    return (
        "upstreams:\n"
        "  api: {base_url: http://127.0.0.1:9/v1}\n"
        "  gpu: {base_url: http://127.0.0.1:9/v1}\n"
        "use_cases:\n"
        f"  {USE_CASE}:\n"
        "    primary: {upstream: api, model: gpt-4o-mini}\n"
        "    candidate: {upstream: gpu, model: llama}\n"
        "    shadow: {sample_rate: 1.0}\n"
        f"    criteria: {json.dumps(CRITERIA)}\n"
    )


def _timings(call: object, calls: int) -> tuple[float, float, str]:
    """Median and p95 in ms of `calls` calls (after one warm-up), and the last verdict."""
    verdict = call()  # type: ignore[operator]
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        verdict = call()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95, str(verdict)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the database for a look after")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    name = f"switchover_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    os.environ["SWITCHOVER_DATABASE_URL"] = url
    # imported once the database URL is set: the app's sessions read it
    from fastapi.testclient import TestClient

    from criteria.access.auth import create_token
    from criteria.readiness import service
    from shadow.app import create_app
    from shadow.catalog import catalog_for
    from shadow.config import parse_config
    from shadow.settings import Settings
    from storage.db import get_engine, make_engine, session_scope
    from storage.migrate import upgrade

    rows: list[dict[str, Any]] = []
    try:
        upgrade(url)
        engine = make_engine(url)
        config_path = Path(f"/tmp/{name}.yaml")
        config_path.write_text(_config())
        config = parse_config(config_path.read_text(), str(config_path))
        # a broker URL keeps the app out of embedded mode: no worker, no periodic evaluation
        settings = Settings(broker_url="redis://127.0.0.1:6379/11")
        info = catalog_for(config, config_path.parent).get(USE_CASE)
        app = create_app(settings, config)
        with session_scope(get_engine()) as session:
            token = create_token(session, "viewer", "bench")
        headers = {"authorization": f"Bearer {token}"}
        with TestClient(app) as client:

            def api() -> str:
                response = client.get(f"/api/v1/readiness/{USE_CASE}", headers=headers)
                response.raise_for_status()
                return str(response.json()["verdict"])

            def raw() -> str:
                with session_scope(get_engine()) as session:
                    return service.evaluate(session, info, raw=True).verdict

            def aggregated() -> str:
                with session_scope(get_engine()) as session:
                    return service.evaluate(session, info).verdict

            for size in sizes:
                loaded = load(engine, USE_CASE, size)
                median, p95, verdict = _timings(api, args.calls)
                row: dict[str, Any] = {
                    "pairs": size,
                    "load_pairs_per_s": loaded.pairs / loaded.load_s if loaded.load_s else None,
                    "load_scores_per_s": loaded.scores / loaded.load_s if loaded.load_s else None,
                    "rebuild_s": loaded.rebuild_s,
                    "api_median_ms": median,
                    "api_p95_ms": p95,
                    "verdict": verdict,
                }
                service_ms, _, _ = _timings(aggregated, max(5, args.calls // 2))
                row["service_median_ms"] = service_ms
                if size <= RAW_UP_TO:
                    raw_ms, _, raw_verdict = _timings(raw, max(3, args.calls // 4))
                    row["raw_median_ms"] = raw_ms
                    row["raw_verdict"] = raw_verdict
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        get_engine().dispose()
        if args.keep:
            print(f"kept {url}")
        else:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    base = rows[0]
    print(
        f"\n{'pairs':>9} {'median ms':>10} {'p95 ms':>8} {'growth':>7} {'pairs x':>8} "
        f"{'raw ms':>8} {'speed-up':>9} {'verdict':>18} {'load pairs/s':>13}"
    )
    for row in rows:
        growth = row["api_median_ms"] / base["api_median_ms"]
        raw_median = row.get("raw_median_ms")
        speed = f"{raw_median / row['service_median_ms']:.1f}x" if raw_median else "-"
        print(
            f"{row['pairs']:>9,} {row['api_median_ms']:>10.1f} {row['api_p95_ms']:>8.1f} "
            f"{growth:>6.2f}x {row['pairs'] / base['pairs']:>7.0f}x "
            f"{(f'{raw_median:.0f}' if raw_median else '-'):>8} {speed:>9} {row['verdict']:>18} "
            f"{row['load_pairs_per_s']:>13,.0f}"
        )
    largest = rows[-1]
    met = "met" if largest["api_median_ms"] <= TARGET_MS else "NOT met"
    print(
        f"\nat {largest['pairs']:,} pairs: {largest['api_median_ms']:.1f} ms median "
        f"(target <= {TARGET_MS:.0f} ms: {met})"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cpus, "
                f"Python {platform.python_version()}",
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
