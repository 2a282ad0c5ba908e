"""Bulk-load scored request pairs into PostgreSQL with COPY, then rebuild their aggregates.

Pairs arrive one every `--step-s` seconds (default: 1M pairs over 30 days) and each gets the
scores the pipeline writes for a chat use case (latencies, TTFT, ratio, error, ROUGE-L,
similarity, valid JSON, cost; a noise re-ask's similarity for 5%), drawn from a candidate that
is good enough for a GO. Appending: a second run continues after the pairs already there.

    .venv/bin/python bench/seed_pairs.py --url postgresql+psycopg://postgres@127.0.0.1/db \\
        --pairs 1000000 [--use-case bench]

Prints the load rate (pairs and score rows per second) and the aggregate rebuild time.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import Engine, text

from storage import aggregates
from storage.db import make_engine, session_scope

START = datetime(2026, 10, 1, tzinfo=UTC)
STEP_S = 30 * 86400 / 1_000_000
CHUNK = 50_000
PAIR_COLUMNS = (
    "id, use_case, endpoint, stream, status, created_at, completed_at, request_sha256, "
    "primary_model, primary_status_code, primary_latency_ms, candidate_model, "
    "candidate_latency_ms"
)


@dataclass
class Loaded:
    """What one load wrote and how long it took."""

    pairs: int = 0
    scores: int = 0
    load_s: float = 0.0
    rebuild_s: float = 0.0


def _stamp(moment: datetime) -> str:
    return moment.isoformat()


def _chunk_rows(
    rng: np.random.Generator, use_case: str, first: int, count: int, step_s: float
) -> tuple[str, str]:
    """COPY text for `count` pairs numbered from `first`, and for their scores."""
    index = np.arange(first, first + count)
    primary = rng.lognormal(np.log(420), 0.35, count)
    candidate = rng.lognormal(np.log(380), 0.4, count)
    failed = rng.random(count) < 0.004
    rouge = rng.beta(9, 2, count)
    similarity = np.minimum(1.0, rng.beta(40, 2, count) + 0.02)
    valid = (rng.random(count) < 0.997).astype(float)
    noisy = rng.random(count) < 0.05
    noise = np.minimum(1.0, rng.beta(40, 2, count) + 0.02)
    cost = rng.gamma(4, 0.0002, count)
    pair_lines = []
    score_lines = []
    for j, i in enumerate(index.tolist()):
        at = _stamp(START + timedelta(seconds=i * step_s))
        pair_id = f"{use_case}-{i:08d}"
        p, c = float(primary[j]), float(candidate[j])
        pair_lines.append(
            f"{pair_id}\t{use_case}\tchat.completions\tf\tdone\t{at}\t{at}\t{'0' * 64}\t"
            f"gpt-4o-mini\t200\t{p!r}\tllama\t{c!r}\n"
        )
        values = {
            "primary.latency_ms": p,
            "candidate.latency_ms": c,
            "primary.ttft_ms": p * 0.3,
            "candidate.ttft_ms": c * 0.25,
            "latency.ratio": c / p,
            "candidate.error": 1.0 if failed[j] else 0.0,
            "quality.rouge_l": float(rouge[j]),
            "quality.semantic_similarity": float(similarity[j]),
            "quality.json_valid": float(valid[j]),
            "cost.primary_usd": float(cost[j]),
        }
        if noisy[j]:
            values["noise.semantic_similarity"] = float(noise[j])
        score_lines += [
            f"{pair_id}\t{metric}\t{value!r}\t{at}\n" for metric, value in values.items()
        ]
    return "".join(pair_lines), "".join(score_lines)


def load(engine: Engine, use_case: str, pairs: int, step_s: float = STEP_S) -> Loaded:
    """Append pairs up to `pairs` in total for `use_case`, then rebuild its aggregates."""
    loaded = Loaded()
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO use_cases (name, created_at) VALUES (:n, now()) ON CONFLICT DO NOTHING"
            ),
            {"n": use_case},
        )
        have = int(
            connection.scalar(
                text("SELECT count(*) FROM request_pairs WHERE use_case = :n"), {"n": use_case}
            )
            or 0
        )
    rng = np.random.default_rng(have)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for first in range(have, pairs, CHUNK):
            count = min(CHUNK, pairs - first)
            pair_text, score_text = _chunk_rows(rng, use_case, first, count, step_s)
            copy = f"COPY request_pairs ({PAIR_COLUMNS}) FROM STDIN"
            with cursor.copy(copy) as sink:
                sink.write(pair_text)
            copy = "COPY scores (pair_id, metric, value, created_at) FROM STDIN"
            with cursor.copy(copy) as sink:
                sink.write(score_text)
            raw.commit()
            loaded.pairs += count
            loaded.scores += score_text.count("\n")
    finally:
        raw.close()
    loaded.load_s = time.perf_counter() - started
    started = time.perf_counter()
    with session_scope(engine) as session:
        aggregates.rebuild(session, use_case)
    loaded.rebuild_s = time.perf_counter() - started
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="PostgreSQL URL, schema already migrated")
    parser.add_argument("--pairs", type=int, default=1_000_000, help="pairs in total afterwards")
    parser.add_argument("--use-case", default="bench")
    parser.add_argument("--step-s", type=float, default=STEP_S, help="seconds between pairs")
    args = parser.parse_args()
    engine = make_engine(args.url)
    done = load(engine, args.use_case, args.pairs, args.step_s)
    rate = done.pairs / done.load_s if done.load_s else 0.0
    print(
        f"loaded {done.pairs} pairs and {done.scores} score rows in {done.load_s:.1f} s "
        f"({rate:,.0f} pairs/s, {done.scores / max(done.load_s, 1e-9):,.0f} scores/s); "
        f"aggregates rebuilt in {done.rebuild_s:.1f} s"
    )


if __name__ == "__main__":
    main()
