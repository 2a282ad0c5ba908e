"""Pairs scored per second through the real pipeline against the embedding model's raw rate.

Stores N request pairs (the bundled prompt set's reference and paraphrased answers, each text
made unique so nothing is deduplicated) in a fresh PostgreSQL database and starts a real
`switchover worker --queues scoring` process on a Redis broker. Each round publishes one
scoring job per pair while the worker's scoring consumer is paused, resumes it and times until
every pair has its scores: the worker and the database at work, as in service, where the
proxy's shadow jobs publish from other processes.

The baseline is the same embedding model encoding the same texts, in batches of the same size,
measured *in the worker's process* (one more task, registered only by this script): two
processes running the same model on this machine differ by a few per cent between them, which
would swamp what is measured. Raw runs go before and after each round (texts of the same
cost), so drift of a shared machine cancels out; the raw rate of this script's own process is
printed too. Prints the figures and the ratio (target: the pipeline reaches 90% of the raw
rate) and writes them to bench/results/scoring_throughput.json.

    .venv/bin/python bench/scoring_throughput.py [--pairs N] [--rounds R]

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
from celery import Celery, shared_task
from sqlalchemy import Engine, create_engine, text

from evaluators.config import EvaluatorsConfig
from evaluators.similarity import Encoder, load_model
from evaluators.tasks import BATCH_SIZE, SCORE_PAIRS
from shadow.broker import create_celery
from shadow.cli import app as cli
from shadow.settings import Settings
from shadow.simulator.prompts import load_prompts
from storage import aggregates
from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from storage.repository import insert_pair
from storage.schemas import AnswerFields, PairCreate

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BROKER_URL = "redis://127.0.0.1:6379/15"
RESULTS = Path(__file__).resolve().parent / "results" / "scoring_throughput.json"
TARGET_RATIO = 0.9
RAW_ENCODE = "bench.raw_encode"


def texts_for(n: int, run: str) -> list[tuple[str, str]]:
    """n (primary, candidate) answers from the prompt set, every text unique.

    Every run takes the same items in the same order and only tags them with its own name,
    so the texts of any two runs cost the model the same to encode.
    """
    items = [item for item in load_prompts() if isinstance(item.reference, str)]
    pairs = []
    for i in range(n):
        item = items[i % len(items)]
        tag = f" ({run} {i})"
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


def serve_worker() -> None:
    """`switchover worker --queues scoring`, with the raw encoding as one more task."""

    @shared_task(name=RAW_ENCODE)
    def raw_encode(answers: list[list[str]], batch_size: int, reply_to: str) -> None:
        rate = raw_rate([(primary, candidate) for primary, candidate in answers], batch_size)
        client = redis.Redis.from_url(BROKER_URL)
        client.rpush(reply_to, rate)
        client.close()

    cli(["worker", "--queues", "scoring", "--loglevel", "INFO"])


def raw_in_worker(app: Celery, queue: str, answers: list[tuple[str, str]], batch: int) -> float:
    """The raw encode rate of `answers`, measured in the worker's process."""
    reply_to = f"{queue}.raw.{uuid.uuid4().hex}"
    app.send_task(RAW_ENCODE, args=(answers, batch, reply_to), queue=queue)
    client = redis.Redis.from_url(BROKER_URL)
    deadline = time.monotonic() + 900
    try:
        # short waits: the client gives up on a socket silent for longer than a few seconds
        while (reply := client.blpop([reply_to], timeout=2)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not report its raw encode rate")
    finally:
        client.close()
    return float(reply[1])


class Worker:
    """`switchover worker --queues scoring` (and the raw-encode task) in a subprocess."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-worker"],
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
    """Pairs of a use case that have their scores (every pair gets `candidate.error`).

    Read from the score aggregates, kept in the same transaction as the scores: a lookup of a
    few rows, so the poll takes next to nothing from the two cores being measured.
    """
    with session_scope(engine) as session:
        return aggregates.totals(session, use_case, "candidate.error")[0]


def pipeline_rate(
    app: Celery, url: str, queue: str, pair_ids: list[str], use_case: str, timeout_s: float
) -> float:
    """Pairs per second from the worker taking up its queue to the last score row.

    The jobs are published while the worker's scoring consumer is paused, so what is timed
    is the worker and the database alone.
    """
    engine = make_engine(url)
    if not app.control.cancel_consumer(queue, reply=True, limit=1, timeout=10):
        raise RuntimeError("the worker did not pause its scoring consumer")
    for pair_id in pair_ids:
        app.send_task(SCORE_PAIRS, args=(pair_id,), queue=queue)
    started = time.perf_counter()
    if not app.control.add_consumer(queue, reply=True, limit=1, timeout=10):
        raise RuntimeError("the worker did not resume its scoring consumer")
    while scored(engine, use_case) < len(pair_ids):
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError("the worker did not score every pair in time")
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return len(pair_ids) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=640, help="pairs per pipeline run")
    parser.add_argument("--rounds", type=int, default=3, help="pipeline runs between raw runs")
    parser.add_argument("--serve-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.serve_worker:
        serve_worker()
        return

    database = f"switchover_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    queue = f"bench.{uuid.uuid4().hex[:8]}"
    batch_size = EvaluatorsConfig().embedding_batch_size
    raw: list[float] = []
    here: list[float] = []
    pipeline: list[float] = []
    worker: Worker | None = None
    try:
        upgrade(url)
        # Every round scores pairs of its own (a pair is scored once), with texts never seen.
        answers = [texts_for(args.pairs, f"run {r}") for r in range(args.rounds)]
        pair_ids = [store_pairs(url, a, f"bench-{r}") for r, a in enumerate(answers)]
        warmup = store_pairs(url, texts_for(2 * BATCH_SIZE, "warm-up"), "warmup")

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
        app = create_celery(settings)
        scoring = settings.scoring_queue_name
        worker = Worker(env)
        pipeline_rate(app, url, scoring, warmup, "warmup", timeout_s=300)  # loads the model
        raw_in_worker(app, scoring, texts_for(BATCH_SIZE, "warm-up raw"), batch_size)
        load_model(EvaluatorsConfig().embedding_model)
        raw_rate(texts_for(BATCH_SIZE, "warm-up raw"), batch_size)  # warm-up here
        here.append(raw_rate(answers[0], batch_size))
        # raw, pipeline, raw, pipeline, …, raw, all in the worker's process: each pipeline
        # run is compared with the raw runs on either side of it.
        raw.append(raw_in_worker(app, scoring, answers[0], batch_size))
        for r in range(args.rounds):
            pipeline.append(pipeline_rate(app, url, scoring, pair_ids[r], f"bench-{r}", 1800))
            raw.append(raw_in_worker(app, scoring, answers[r], batch_size))
        here.append(raw_rate(answers[-1], batch_size))
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
    print(f"raw encode, in worker:   {', '.join(f'{v:.1f}' for v in raw)} pairs/s")
    print(f"raw encode, this process:{', '.join(f'{v:.1f}' for v in here)} pairs/s (before, after)")
    print(
        f"pipeline (worker + DB):  {', '.join(f'{v:.1f}' for v in pipeline)} pairs/s, "
        "every metric stored"
    )
    print(f"per run vs raw around:   {', '.join(f'{v:.1%}' for v in ratios)}")
    print(
        f"ratio:                   {ratio:.1%} of raw (runs {min(ratios):.1%} to "
        f"{max(ratios):.1%}; target {TARGET_RATIO:.0%})"
    )
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
        "raw_pairs_per_s_in_worker": raw,
        "raw_pairs_per_s_this_process": here,
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
