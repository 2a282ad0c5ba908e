"""Pairs scored per second through the real pipeline against the embedding model's raw rate.

Stores N request pairs (the bundled prompt set's reference and paraphrased answers, each text
made unique so nothing is deduplicated) in a fresh PostgreSQL database, starts a real
`switchover worker --queues scoring` process on a Redis broker, warms it up (model loaded),
then publishes one scoring job per pair and times until every pair has its scores. The
baseline is the same embedding model encoding the same texts in this process, in batches of
the same size, measured before and after the pipeline run; the better of the two is used.
Prints the figures and the ratio (target: the pipeline reaches 90% of the raw rate) and writes
them to bench/results/scoring_throughput.json.

    .venv/bin/python bench/scoring_throughput.py [--pairs N]

Needs PostgreSQL (user postgres, trust) and Redis on 127.0.0.1; the database and the queue are
its own and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, create_engine, func, select, text

from evaluators.config import EvaluatorsConfig
from evaluators.similarity import Encoder, load_model
from evaluators.tasks import BATCH_SIZE, SCORE_PAIRS
from shadow.celery_app import create_celery
from shadow.settings import Settings
from shadow.simulator.prompts import load_prompts
from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from storage.models import RequestPair, Score
from storage.repository import insert_pair
from storage.schemas import AnswerFields, PairCreate

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BROKER_URL = "redis://127.0.0.1:6379/15"
RESULTS = Path(__file__).resolve().parent / "results" / "scoring_throughput.json"
TARGET_RATIO = 0.9
VENV_BIN = Path(sys.executable).parent


def texts_for(n: int, offset: int = 0) -> list[tuple[str, str]]:
    """n (primary, candidate) answers from the prompt set, every text unique."""
    items = [item for item in load_prompts() if isinstance(item.reference, str)]
    pairs = []
    for i in range(offset, offset + n):
        item = items[i % len(items)]
        tag = f" (case {i})"
        pairs.append((str(item.reference) + tag, str(item.paraphrase) + tag))
    return pairs


def raw_rate(pairs: list[tuple[str, str]], batch_size: int) -> float:
    """Pairs per second of the embedding model alone: both texts of every pair, in batches."""
    encoder = Encoder(EvaluatorsConfig().embedding_model, batch_size)
    texts = [text for pair in pairs for text in pair]
    started = time.perf_counter()
    for start in range(0, len(texts), 2 * BATCH_SIZE):
        encoder.encode(texts[start : start + 2 * BATCH_SIZE])
    return len(pairs) / (time.perf_counter() - started)


class Worker:
    """`switchover worker --queues scoring` in a subprocess."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [str(VENV_BIN / "switchover"), "worker", "--queues", "scoring", "--loglevel", "INFO"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.ready = threading.Event()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(120):
            self.stop()
            raise RuntimeError("worker did not start:\n" + "".join(self.output[-30:]))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if " ready." in line:
                self.ready.set()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def pair_create(primary: str, candidate: str, use_case: str) -> PairCreate:
    """A stored pair as a shadow job makes it: timings, tokens and both answers."""
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "?"}]})
    return PairCreate(
        id=str(uuid.uuid4()),
        use_case=use_case,
        endpoint="chat.completions",
        stream=False,
        created_at=datetime.now(UTC),
        request_body=body,
        request_sha256="0" * 64,
        primary_model="gpt-4o-mini",
        primary_request_id=None,
        primary=AnswerFields(
            status_code=200, text=primary, latency_ms=300, prompt_tokens=90, completion_tokens=40
        ),
        candidate_model="cand",
        candidate=AnswerFields(
            status_code=200, text=candidate, latency_ms=400, prompt_tokens=90, completion_tokens=44
        ),
    )


def store_pairs(url: str, answers: list[tuple[str, str]], use_case: str) -> list[str]:
    """Store pairs for `answers` (no scores yet); their ids."""
    pairs = [pair_create(primary, candidate, use_case) for primary, candidate in answers]
    engine = make_engine(url)
    with session_scope(engine) as session:
        for pair in pairs:
            insert_pair(session, pair)
    engine.dispose()
    return [pair.id for pair in pairs]


def scored(engine: Engine, use_case: str) -> int:
    """Pairs of a use case that have their scores (every pair gets `candidate.error`)."""
    query = (
        select(func.count())
        .select_from(Score)
        .join(RequestPair, RequestPair.id == Score.pair_id)
        .where(Score.metric == "candidate.error", RequestPair.use_case == use_case)
    )
    with session_scope(engine) as session:
        return int(session.scalar(query) or 0)


def pipeline_rate(
    url: str, settings: Settings, pair_ids: list[str], use_case: str, timeout_s: float
) -> float:
    """Pairs per second from publishing their scoring jobs to the last score row."""
    app = create_celery(settings)
    engine = make_engine(url)
    started = time.perf_counter()
    for pair_id in pair_ids:
        app.send_task(SCORE_PAIRS, args=(pair_id,), queue=settings.scoring_queue_name)
    # A light poll: the machine's two cores are what is being measured.
    while scored(engine, use_case) < len(pair_ids):
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError("the worker did not score every pair in time")
        time.sleep(0.25)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return len(pair_ids) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=640, help="pairs per pipeline run")
    parser.add_argument("--rounds", type=int, default=2, help="pipeline runs between raw runs")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    database = f"switchover_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    queue = f"bench.{uuid.uuid4().hex[:8]}"
    batch_size = EvaluatorsConfig().embedding_batch_size
    raw: list[float] = []
    pipeline: list[float] = []
    worker: Worker | None = None
    try:
        upgrade(url)
        # Every round scores pairs of its own (a pair is scored once), with texts never seen.
        answers = [texts_for(args.pairs, offset=r * args.pairs) for r in range(args.rounds)]
        pair_ids = [store_pairs(url, a, f"bench-{r}") for r, a in enumerate(answers)]
        warmup = store_pairs(url, texts_for(2 * BATCH_SIZE, offset=-4 * BATCH_SIZE), "warmup")

        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as config:
            config.write(
                "upstreams:\n  api: {base_url: 'http://127.0.0.1:9/v1'}\n"
                "use_cases:\n  bench:\n    primary: {upstream: api, model: gpt-4o-mini}\n"
                "    candidate: {upstream: api, model: cand}\n"
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHOVER_")}
        env |= {
            "SWITCHOVER_CONFIG": config.name,
            "SWITCHOVER_DATABASE_URL": url,
            "SWITCHOVER_BROKER_URL": BROKER_URL,
            "SWITCHOVER_QUEUE": queue,
        }
        settings = Settings(broker_url=BROKER_URL, queue=queue)
        worker = Worker(env)
        pipeline_rate(url, settings, warmup, "warmup", timeout_s=300)  # loads the model there
        load_model(EvaluatorsConfig().embedding_model)
        raw_rate(texts_for(BATCH_SIZE, offset=-2 * BATCH_SIZE), batch_size)  # warm-up here
        # raw, pipeline, raw, pipeline, …, raw: each pipeline run is compared with the raw
        # runs on either side of it, so drift of a shared machine cancels out.
        raw.append(raw_rate(answers[0], batch_size))
        for r in range(args.rounds):
            pipeline.append(pipeline_rate(url, settings, pair_ids[r], f"bench-{r}", 1800))
            raw.append(raw_rate(answers[r], batch_size))
    finally:
        if worker is not None:
            worker.stop()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
        client = redis.Redis.from_url(BROKER_URL)
        client.delete(queue, f"{queue}.scoring")
        client.close()

    ratios = [p / ((raw[r] + raw[r + 1]) / 2) for r, p in enumerate(pipeline)]
    ratio = statistics.fmean(ratios)
    print(f"pairs per run:           {args.pairs} (2 texts each, batches of {BATCH_SIZE} pairs)")
    print(f"raw encode rate:         {', '.join(f'{v:.1f}' for v in raw)} pairs/s")
    print(
        f"pipeline (worker + DB):  {', '.join(f'{v:.1f}' for v in pipeline)} pairs/s, "
        "every metric stored"
    )
    print(f"per run vs raw around:   {', '.join(f'{v:.1%}' for v in ratios)}")
    print(f"ratio:                   {ratio:.1%} of raw (target {TARGET_RATIO:.0%})")
    result: dict[str, Any] = {
        "benchmark": "scoring_throughput",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_after": os.getloadavg()[0],
        },
        "settings": {
            "pairs_per_run": args.pairs,
            "rounds": args.rounds,
            "batch_pairs": BATCH_SIZE,
            "encode_batch": batch_size,
        },
        "raw_pairs_per_s": raw,
        "pipeline_pairs_per_s": pipeline,
        "ratios": ratios,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
