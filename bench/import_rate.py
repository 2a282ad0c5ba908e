"""How fast `switchover import` takes records in, and the pairs/s its candidate path reaches.

Writes an OpenAI Batch input/output pair of N chat requests (the bundled prompt set's, each
made unique) and measures, in one run:

- the import rate: records/s of the openai-batch reader (match by custom_id, the worker's
  answer parser, record keys) against the baseline of `orjson.loads` over the same lines;
- the candidate path: pairs/s of `service.mirror` (candidate asked through
  `measure_recorded`, privacy, pairs and scores written per batch, SQLite) against a
  zero-latency simulated candidate, unpaced (`--rate` far above what it reaches), against
  the baselines of the same candidate calls alone (`call_upstream`, same concurrency) and of
  the embedding model encoding both answers of each pair (the scoring's floor).

    .venv/bin/python bench/import_rate.py [--records N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

from evaluators.runtime import current
from evaluators.similarity import load_model
from shadow.candidate.importer import openai_batch, service
from shadow.config import parse_config
from shadow.settings import Settings
from shadow.simulator.prompts import load_prompts
from shadow.simulator.server import SimulatorConfig, SimulatorThread
from shadow.worker.caller import call_upstream
from shadow.worker.measure import build_runtime, configure_evaluators
from storage.db import configure_database, session_scope
from storage.migrate import upgrade


def write_batch(directory: Path, count: int) -> tuple[Path, Path]:
    """A Batch input file and its output file of `count` unique chat requests."""
    prompts = [p for p in load_prompts() if p.kind == "support"]
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for i in range(count):
        item = prompts[i % len(prompts)]
        messages = [m.model_dump() for m in item.messages]
        messages[-1]["content"] += f" (#{i})"
        body = {"model": "gpt-4o-mini", "messages": messages}
        inputs.append(
            {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        )
        answer = {
            "object": "chat.completion",
            "created": 1_761_000_000 + i,
            "choices": [{"message": {"role": "assistant", "content": str(item.reference)}}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 30},
        }
        result = {"status_code": 200, "request_id": f"q{i}", "body": answer}
        outputs.append({"custom_id": f"r{i}", "response": result, "error": None})
    files = directory / "in.jsonl", directory / "out.jsonl"
    for path, lines in zip(files, (inputs, outputs), strict=True):
        path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    return files


def _best(seconds: list[float]) -> float:
    return min(seconds)


def parse_rates(files: tuple[Path, Path], count: int, repeats: int = 5) -> tuple[float, float]:
    """(raw JSON lines/s, reader records/s), best of `repeats` each."""
    raw, reader = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        for path in files:
            for line in path.read_bytes().splitlines():
                orjson.loads(line)
        raw.append(time.perf_counter() - started)
        started = time.perf_counter()
        parsed = openai_batch.read(list(files))
        reader.append(time.perf_counter() - started)
        assert len(parsed.records) == count
    return count / _best(raw), count / _best(reader)


def candidate_rates(
    files: tuple[Path, Path], count: int, concurrency: int, directory: Path
) -> tuple[float, float, float]:
    """(raw candidate calls/s, import pairs/s incl. storing and scoring, raw embedding pairs/s)."""
    simulator = SimulatorThread(SimulatorConfig(answer_mix={"reference": 1.0}))
    url = simulator.start()
    try:
        config = parse_config(
            "upstreams:\n"
            f"  api: {{base_url: {url}}}\n"
            f"  gpu: {{base_url: {url}}}\n"
            "use_cases:\n"
            "  bench:\n"
            "    primary: {upstream: api, model: gpt-4o-mini}\n"
            "    candidate: {upstream: gpu, model: llama}\n"
            f"    shadow: {{sample_rate: 1, max_in_flight: {concurrency}, timeout_s: 30}}\n"
        )
        bodies = [r.request | {"model": "llama"} for r in openai_batch.read(list(files)).records]
        client = httpx.Client(limits=httpx.Limits(max_connections=256))
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(
                pool.map(
                    lambda body: call_upstream(
                        client, f"{url}/chat/completions", body, api_key=None, timeout_s=30
                    ),
                    bodies,
                )
            )
        raw = count / (time.perf_counter() - started)
        database = f"sqlite:///{directory / 'bench.db'}"
        upgrade(database)
        configure_database(database)
        configure_evaluators(config)
        scoring = current()
        runtime = build_runtime(Settings(), config)
        parsed = service.read_files("openai-batch", list(files))
        with session_scope() as session:
            plan = service.begin(session, "bench", "openai-batch", list(files), parsed, 1e6)
        # the embedding model loads on first use: warm it outside the timing
        load_model(scoring.config.embedding_model).encode(["warm up"])
        started = time.perf_counter()
        stored = service.mirror(runtime, scoring, plan, rate=1e6)
        pairs = stored / (time.perf_counter() - started)
        # the scoring's own floor: the embedding model encoding both answers of each pair
        model = load_model(scoring.config.embedding_model)
        texts = [str(r.primary.text) for r in parsed.records]
        started = time.perf_counter()
        for start in range(0, len(texts), 64):
            chunk = texts[start : start + 64]
            model.encode(chunk + chunk, batch_size=128)
        embedding = count / (time.perf_counter() - started)
        return raw, pairs, embedding
    finally:
        simulator.stop()


def main() -> None:
    """Run both measurements and print them with their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=320, help="records sent to the candidate")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        files = write_batch(directory, args.records)
        raw_parse, reader = parse_rates(files, args.records)
        (directory / "c").mkdir()
        few = write_batch(directory / "c", args.pairs)
        raw_calls, pairs, embedding = candidate_rates(few, args.pairs, args.concurrency, directory)
    results = {
        "records": args.records,
        "raw_json_lines_per_s": round(raw_parse),
        "import_records_per_s": round(reader),
        "import_vs_raw_parse": round(reader / raw_parse, 3),
        "pairs": args.pairs,
        "concurrency": args.concurrency,
        "raw_candidate_calls_per_s": round(raw_calls, 1),
        "import_pairs_per_s": round(pairs, 1),
        "pairs_vs_raw_calls": round(pairs / raw_calls, 3),
        "raw_embedding_pairs_per_s": round(embedding, 1),
        "pairs_vs_raw_embedding": round(pairs / embedding, 3),
    }
    print(
        f"import: {reader:,.0f} records/s read vs {raw_parse:,.0f} JSON lines/s parsed "
        f"({reader / raw_parse:.1%})"
    )
    print(
        f"candidate path: {pairs:.1f} pairs/s (asked, stored, scored) vs {raw_calls:.1f} raw "
        f"candidate calls/s at concurrency {args.concurrency} ({pairs / raw_calls:.1%})"
    )
    print(
        f"  the scoring bounds it: the embedding model alone encodes both answers of "
        f"{embedding:.1f} pairs/s ({pairs / embedding:.1%} of that reached)"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
