"""`switchover demo`: the whole shadow loop on this machine, against simulated upstreams.

Two simulated OpenAI servers play the API model and the self-hosted candidate; the embedded
service (SQLite, in-process broker and worker) sits between them and the official `openai`
SDK, which sends a few hundred requests from the bundled prompt set.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import openai
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shadow.simulator.prompts import PromptItem, load_prompts
from shadow.simulator.server import SimulatorConfig, quality_preset, serve_in_thread

USE_CASE_BY_KIND = {
    "support": "support-chat",
    "classification": "ticket-triage",
    "json_extraction": "order-extraction",
    "tool_call": "agent-tools",
}
PRIMARY_MODEL = "gpt-4o-mini"
CANDIDATE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def demo_config(primary_url: str, candidate_url: str, sample_rate: float) -> str:
    """The switchover.yaml the demo runs with."""
    lines = [
        "upstreams:",
        f"  api: {{base_url: {primary_url}, api_key_env: SWITCHOVER_DEMO_API_KEY}}",
        f"  self-hosted: {{base_url: {candidate_url}, deployment: {{gpu: L4, gpu_count: 1,"
        " hourly_usd: 0.8, replicas: 1, ops_hours_per_week: 4, engineer_hourly_usd: 95}}",
        "use_cases:",
    ]
    for use_case in USE_CASE_BY_KIND.values():
        lines += [
            f"  {use_case}:",
            f"    primary: {{upstream: api, model: {PRIMARY_MODEL}}}",
            f"    candidate: {{upstream: self-hosted, model: {CANDIDATE_MODEL}}}",
            f"    shadow: {{sample_rate: {sample_rate}, noise_rate: 0.2, max_in_flight: 8,"
            " timeout_s: 5}",
        ]
    return "\n".join(lines) + "\n"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _ask(client: openai.OpenAI, item: PromptItem, stream: bool) -> str | None:
    """Send one prompt as the client would; returns the pair id when it was mirrored."""
    kwargs: dict[str, Any] = {
        "model": PRIMARY_MODEL,
        "messages": [m.model_dump() for m in item.messages],
        "max_tokens": 256,
        "extra_headers": {"X-Switchover-Use-Case": USE_CASE_BY_KIND[item.kind]},
    }
    if item.tools:
        kwargs["tools"] = list(item.tools)
    if item.response_format:
        kwargs["response_format"] = item.response_format
    if stream:
        with client.chat.completions.with_streaming_response.create(stream=True, **kwargs) as raw:
            for _ in raw.parse():
                pass
            streamed_pair_id: str | None = raw.headers.get("x-switchover-pair-id")
            return streamed_pair_id
    raw = client.chat.completions.with_raw_response.create(**kwargs)
    raw.parse()
    return raw.headers.get("x-switchover-pair-id")


@contextmanager
def _environment(workdir: Path) -> Iterator[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "switchover.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{database.resolve()}"
    saved = {k: os.environ.get(k) for k in ("SWITCHOVER_DATABASE_URL", "SWITCHOVER_BROKER_URL")}
    os.environ["SWITCHOVER_DATABASE_URL"] = url
    os.environ.pop("SWITCHOVER_BROKER_URL", None)
    # The demo's "API key", referenced by env-var name in the config like a real one.
    os.environ.setdefault("SWITCHOVER_DEMO_API_KEY", "sk-demo-not-a-real-key")
    try:
        yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_for_pairs(url: str, expected: int, timeout_s: float) -> int:
    from storage.db import get_engine, session_scope
    from storage.repository import count_pairs

    deadline = time.monotonic() + timeout_s
    stored = 0
    while time.monotonic() < deadline:
        with session_scope(get_engine(url)) as session:
            stored = count_pairs(session)
        if stored >= expected:
            break
        time.sleep(0.2)
    return stored


def _summary(console: Console, url: str, answered: int, sent: int) -> None:
    from sqlalchemy import select

    from storage.db import get_engine, session_scope
    from storage.models import NoiseReask, RequestPair

    table = Table(title="Captured request pairs (latency in ms; cand = self-hosted candidate)")
    for column in (
        "use case",
        "pairs",
        "API p50",
        "API p95",
        "cand p50",
        "cand p95",
        "cand errors",
        "re-asks",
    ):
        table.add_column(column, justify="right" if column != "use case" else "left")
    with session_scope(get_engine(url)) as session:
        pairs = session.scalars(select(RequestPair)).all()
        noise = {row.pair_id for row in session.scalars(select(NoiseReask)).all()}
    for use_case in sorted({p.use_case for p in pairs}):
        rows = [p for p in pairs if p.use_case == use_case]
        primary = [p.primary_latency_ms for p in rows]
        candidate = [p.candidate_latency_ms for p in rows]
        errors = sum(1 for p in rows if p.candidate_error_kind)

        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f}"

        table.add_row(
            use_case,
            str(len(rows)),
            fmt(percentile(primary, 0.5)),
            fmt(percentile(primary, 0.95)),
            fmt(percentile(candidate, 0.5)),
            fmt(percentile(candidate, 0.95)),
            f"{errors} ({errors / len(rows):.0%})",
            str(sum(1 for p in rows if p.id in noise)),
        )
    console.print(table)
    console.print(
        f"{answered}/{sent} client requests answered by the API model; "
        f"{len(pairs)} pairs stored in {url}"
    )


def run_demo(requests: int, concurrency: int, workdir: Path, seed: int = 7) -> int:
    """Run the demo; returns the process exit code."""
    from shadow.app import create_app
    from shadow.config import parse_config
    from shadow.serving import serve_in_thread as serve_app
    from shadow.settings import Settings

    console = Console()
    rng = random.Random(seed)
    items = load_prompts()
    primary_sim = SimulatorConfig(
        latency_ms=150,
        latency_dist="lognormal",
        latency_sigma=0.4,
        tokens_per_s=400,
        answer_mix=quality_preset("perfect"),
        seed=seed,
    )
    candidate_sim = SimulatorConfig(
        latency_ms=220,
        latency_dist="lognormal",
        latency_sigma=0.5,
        tokens_per_s=150,
        error_rate=0.02,
        concurrency_limit=8,
        answer_mix=quality_preset("good"),
        seed=seed + 1,
    )
    with ExitStack() as stack:
        url = stack.enter_context(_environment(workdir))
        primary_url = stack.enter_context(serve_in_thread(primary_sim))
        candidate_url = stack.enter_context(serve_in_thread(candidate_sim))
        config = parse_config(demo_config(primary_url, candidate_url, 0.5), "<demo>")
        settings = Settings()
        proxy_url = stack.enter_context(serve_app(create_app(settings, config)))
        console.print(f"Switchover proxy on {proxy_url}/v1 (embedded: SQLite, in-process worker)")
        console.print(
            f"simulated API model on {primary_url}, simulated self-hosted model on {candidate_url}"
        )
        client = openai.OpenAI(base_url=f"{proxy_url}/v1", api_key="demo-client-key", max_retries=0)
        plan = [(rng.choice(items), rng.random() < 0.35) for _ in range(requests)]
        mirrored: list[str] = []
        answered = 0
        with Progress(console=console) as progress, ThreadPoolExecutor(concurrency) as pool:
            task = progress.add_task("requests through the proxy", total=requests)
            for pair_id in pool.map(lambda p: _ask(client, *p), plan):
                answered += 1
                if pair_id:
                    mirrored.append(pair_id)
                progress.advance(task)
        console.print(
            f"{len(mirrored)} of {requests} requests were mirrored; waiting for the worker…"
        )
        stored = _wait_for_pairs(url, len(mirrored), timeout_s=120)
        _summary(console, url, answered, requests)
        return 0 if answered == requests and stored == len(mirrored) else 1
    return 1
