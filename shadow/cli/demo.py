"""`switchover demo`: the whole shadow loop on this machine, against simulated upstreams.

Two simulated OpenAI servers play the API model and the self-hosted candidate; the embedded
service (SQLite, in-process broker and worker) sits between them and the official `openai`
SDK (and, for part of the traffic, `client.responses` and the `anthropic` SDK), which sends a few
hundred requests from the bundled prompt set. With `--candidate vllm`
a real vLLM server (SmolLM2-135M-Instruct, through `shadow.candidate.launcher`) is the candidate.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anthropic
import openai
import orjson
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shadow.simulator.prompts import PromptItem, load_prompts
from shadow.simulator.server import SimulatorConfig, quality_preset, serve_in_thread

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from shadow.candidate.launcher import VllmServer
    from shadow.config import SwitchoverConfig

USE_CASE_BY_KIND = {
    "support": "support-chat",
    "classification": "ticket-triage",
    "json_extraction": "order-extraction",
    "tool_call": "agent-tools",
}
# Shipped example criteria, one file per demo use case.
EXAMPLE_CRITERIA = Path(__file__).resolve().parents[1] / "examples"
# Both sides are simulated, and their names say so wherever they are shown (tables, the
# dashboard); the API side is priced like the model it stands in for.
PRIMARY_MODEL = "simulated-gpt-4o-mini"
PRIMARY_PRICE = "{input_per_mtok: 0.15, output_per_mtok: 0.60}"  # gpt-4o-mini's
CANDIDATE_MODEL = "simulated-llama-3.1-8b"
# support-chat's other simulated candidates, beside the good one above, on the same traffic:
# name -> (model, quality preset, GPU, hourly price)
RIVALS = {
    "mistral-7b": ("simulated-mistral-7b", "mediocre", "L4", 0.7),
    "qwen-0.5b": ("simulated-qwen2.5-0.5b", "bad", "T4", 0.35),
}
LEAD_CANDIDATE = "llama-8b"


def demo_config(
    primary_url: str,
    candidate_url: str,
    sample_rate: float,
    *,
    candidate_model: str = CANDIDATE_MODEL,
    timeout_s: float = 5,
    max_in_flight: int = 8,
    rivals: dict[str, str] | None = None,
) -> str:
    """The switchover.yaml the demo runs with; `rivals` (name -> base URL) join support-chat."""
    lines = [
        f"evaluators: {{prices: {{{PRIMARY_MODEL}: {PRIMARY_PRICE}}}}}",
        "upstreams:",
        f"  api: {{base_url: {primary_url}, api_key_env: SWITCHOVER_DEMO_API_KEY}}",
        f"  self-hosted: {{base_url: {candidate_url}, deployment: {{gpu: L4, gpu_count: 1,"
        " hourly_usd: 0.8, replicas: 1, ops_hours_per_week: 4, engineer_hourly_usd: 95}}",
    ]
    for name, url in (rivals or {}).items():
        _, _, gpu, hourly = RIVALS[name]
        lines.append(
            f"  {name}: {{base_url: {url}, deployment: {{gpu: {gpu}, hourly_usd: {hourly},"
            " ops_hours_per_week: 4, engineer_hourly_usd: 95}}"
        )
    lines.append("use_cases:")
    for use_case in USE_CASE_BY_KIND.values():
        if use_case == "support-chat" and rivals:
            targets = [
                "    candidates:",
                f"      {LEAD_CANDIDATE}: {{upstream: self-hosted, model: {candidate_model}}}",
                *(f"      {n}: {{upstream: {n}, model: {RIVALS[n][0]}}}" for n in rivals),
            ]
        else:
            targets = [f"    candidate: {{upstream: self-hosted, model: {candidate_model}}}"]
        lines += [
            f"  {use_case}:",
            f"    primary: {{upstream: api, model: {PRIMARY_MODEL}}}",
            *targets,
            f"    shadow: {{sample_rate: {sample_rate}, noise_rate: 0.5,"
            f" max_in_flight: {max_in_flight}, timeout_s: {timeout_s:g}}}",
            f"    criteria: {EXAMPLE_CRITERIA / f'{use_case}.yaml'}",
        ]
    return "\n".join(lines) + "\n"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# Share of the plain-text prompts sent through the Responses API and the Anthropic SDK.
OTHER_APIS = (("responses", 0.2), ("messages", 0.2))


def _api_for(item: PromptItem, draw: float) -> str:
    """Which API a prompt is sent through: tools and JSON prompts stay on chat."""
    if item.tools or item.response_format:
        return "chat"
    for api, share in OTHER_APIS:
        if draw < share:
            return api
        draw -= share
    return "chat"


def _ask_other(
    client: openai.OpenAI | anthropic.Anthropic,
    item: PromptItem,
    stream: bool,
    max_tokens: int,
) -> str | None:
    """One prompt through `client.responses` or the Anthropic SDK's `messages`."""
    headers = {"X-Switchover-Use-Case": USE_CASE_BY_KIND[item.kind]}
    system = "".join(m.content for m in item.messages if m.role == "system")
    turns = [m.model_dump() for m in item.messages if m.role != "system"]
    if isinstance(client, anthropic.Anthropic):
        kwargs: dict[str, Any] = {"model": PRIMARY_MODEL, "max_tokens": max_tokens}
        kwargs |= {"messages": turns, "extra_headers": headers}
        if system:
            kwargs["system"] = system
        if stream:
            with client.messages.with_streaming_response.create(stream=True, **kwargs) as raw:
                for _ in raw.iter_lines():
                    pass
                pair_id: str | None = raw.headers.get("x-switchover-pair-id")
                return pair_id
        answered = client.messages.with_raw_response.create(**kwargs)
        answered.parse()
        return answered.headers.get("x-switchover-pair-id")
    kwargs = {"model": PRIMARY_MODEL, "input": turns, "max_output_tokens": max_tokens}
    kwargs["extra_headers"] = headers
    if system:
        kwargs["instructions"] = system
    if stream:
        with client.responses.with_streaming_response.create(stream=True, **kwargs) as streamed:
            for _ in streamed.iter_lines():
                pass
            streamed_id: str | None = streamed.headers.get("x-switchover-pair-id")
            return streamed_id
    response = client.responses.with_raw_response.create(**kwargs)
    response.parse()
    return response.headers.get("x-switchover-pair-id")


def _ask(
    client: openai.OpenAI, item: PromptItem, stream: bool, max_tokens: int = 256
) -> str | None:
    """Send one prompt as the client would; returns the pair id when it was mirrored."""
    kwargs: dict[str, Any] = {
        "model": PRIMARY_MODEL,
        "messages": [m.model_dump() for m in item.messages],
        "max_tokens": max_tokens,
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


def _wait_for_pairs(
    url: str, expected: int, timeout_s: float, count: Callable[[Session], int] | None = None
) -> int:
    """Poll until `count` (stored pairs by default) reaches `expected`; the last count."""
    from storage.db import get_engine, session_scope
    from storage.repository import count_pairs

    count = count or count_pairs

    deadline = time.monotonic() + timeout_s
    stored = 0
    while time.monotonic() < deadline:
        with session_scope(get_engine(url)) as session:
            stored = count(session)
        if stored >= expected:
            break
        time.sleep(0.2)
    return stored


def _table(title: str) -> Table:
    """A table that fits 80 columns: no vertical rules, names never cut."""
    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")


def _in_order(found: set[str]) -> list[str]:
    """Use cases in the one order every part of the demo's output uses (the configuration's)."""
    known = [name for name in USE_CASE_BY_KIND.values() if name in found]
    return known + sorted(found - set(known))


def _summary(console: Console, url: str, answered: int, sent: int) -> None:
    from sqlalchemy import select

    from storage.db import get_engine, session_scope
    from storage.models import NoiseReask, RequestPair

    table = _table("Captured request pairs (latency in ms: median/95th percentile)")
    for column in ("use case", "pairs", "API", "candidate", "errors", "re-asks"):
        # no cell wraps or is cut at 80 columns: the longest is "support-chat / mistral-7b"
        table.add_column(column, justify="left" if column == "use case" else "right", no_wrap=True)
    with session_scope(get_engine(url)) as session:
        pairs = session.scalars(select(RequestPair)).all()
        noise = {row.pair_id for row in session.scalars(select(NoiseReask)).all()}
    order = _in_order({p.use_case for p in pairs})
    for use_case, whose in sorted(
        {(p.use_case, p.candidate_name) for p in pairs},
        key=lambda key: (order.index(key[0]), key[1]),
    ):
        rows = [p for p in pairs if (p.use_case, p.candidate_name) == (use_case, whose)]
        primary = [p.primary_latency_ms for p in rows if p.primary_latency_ms is not None]
        candidate = [p.candidate_latency_ms for p in rows]
        errors = sum(1 for p in rows if p.candidate_error_kind)

        def fmt(values: list[float]) -> str:
            low, high = percentile(values, 0.5), percentile(values, 0.95)
            return "-" if low is None or high is None else f"{low:.0f}/{high:.0f}"

        table.add_row(
            use_case if whose == "default" else f"{use_case} / {whose}",
            str(len(rows)),
            fmt(primary),
            fmt(candidate),
            f"{errors} ({errors / len(rows):.0%})",
            str(sum(1 for p in rows if p.id in noise)),
        )
    console.print(table)
    console.print(
        f"{answered}/{sent} client requests answered by the API model; "
        f"{len(pairs)} pairs stored in {url}"
    )


def _wait_for_scores(url: str, expected: int, timeout_s: float) -> int:
    from evaluators.repository import count_scored_pairs

    return _wait_for_pairs(url, expected, timeout_s, count=count_scored_pairs)


QUALITY_METRICS = (
    "quality.semantic_similarity",
    "noise.semantic_similarity",
    "quality.rouge_l",
    "quality.bleu",
    "quality.exact_match",
    "quality.json_valid",
    "quality.json_match",
    "quality.tool_call_match",
    "quality.refusal",
    "quality.length_ratio",
    "quality.judge_score",
)


def _scores_summary(console: Console, url: str, scored: int, stored: int) -> None:
    """Mean / median of each quality metric and the API's cost per 1k requests, by use case."""
    import statistics

    from evaluators.repository import metric_values
    from storage.db import get_engine, session_scope

    with session_scope(get_engine(url)) as session:
        values = metric_values(session, (*QUALITY_METRICS, "cost.primary_usd"))
    use_cases = _in_order(set(values))
    # the metric names and four use-case columns do not fit 80 columns: letters, and a legend
    letters = {name: chr(ord("A") + i) for i, name in enumerate(use_cases)}
    wide = max(map(len, QUALITY_METRICS)) + sum(max(len(u), 9) + 2 for u in use_cases)
    short = wide > console.width
    table = _table("Scores of the self-hosted model against the API model (mean / median)")
    table.add_column("metric", no_wrap=True)
    for use_case in use_cases:
        table.add_column(letters[use_case] if short else use_case, justify="right", no_wrap=True)
    for metric in QUALITY_METRICS:
        cells = []
        for use_case in use_cases:
            found = values[use_case].get(metric)
            cells.append(
                f"{statistics.fmean(found):.2f}/{statistics.median(found):.2f}" if found else "-"
            )
        if any(cell != "-" for cell in cells):
            table.add_row(metric, *cells)
    costs = [values[use_case].get("cost.primary_usd") for use_case in use_cases]
    table.add_row(
        "API cost per 1k requests",
        *(f"${1000 * statistics.fmean(cost):.4f}" if cost else "-" for cost in costs),
    )
    console.print(table)
    if short:
        console.print("  " + ", ".join(f"{letters[u]}: {u}" for u in use_cases))
    console.print(f"{scored} of {stored} stored pairs scored")


@contextmanager
def _real_candidate(console: Console) -> Iterator[VllmServer]:
    """A vLLM server with the bundled SmolLM2-135M-Instruct (the CPU build on this machine)."""
    from shadow.candidate.launcher import CandidateSpec, VllmServer

    console.print("starting vLLM with SmolLM2-135M-Instruct as the self-hosted candidate…")
    # Tool calls enabled, so the agent-tools prompts are answered rather than rejected.
    with VllmServer(CandidateSpec(port=0, tool_call_parser="hermes")) as server:
        console.print(f"vLLM ready in {server.startup_s or 0:.0f} s (its log: {server.log_path})")
        yield server


def _show_answers(console: Console, url: str, limit: int = 3) -> None:
    """A few stored pairs side by side: the real model's words next to the API model's."""
    from sqlalchemy import select

    from storage.db import get_engine, session_scope
    from storage.models import RequestPair

    with session_scope(get_engine(url)) as session:
        pairs = session.scalars(
            select(RequestPair).where(RequestPair.candidate_text.is_not(None)).limit(limit)
        ).all()
        for pair in pairs:
            messages = orjson.loads(pair.request_body or "{}").get("messages") or [{}]
            # Model output is not rich markup: print it as it is.
            console.print(
                f"{pair.use_case}: {messages[-1].get('content', '')}\n"
                f"  API model: {pair.primary_text or pair.primary_tool_calls}\n"
                f"  candidate: {pair.candidate_text}",
                markup=False,
                highlight=False,
            )


def _measure_capacity(console: Console, config: SwitchoverConfig, use_case: str) -> None:
    """A short replay of the captured traffic, so capacity and cost criteria have figures."""
    from shadow.candidate.replay import load_captured, replay_use_case, slo_from_criteria
    from shadow.catalog import catalog_for

    lead = catalog_for(config, None).get(use_case)
    slo = slo_from_criteria(lead.criteria_text)
    captured = load_captured(use_case, 500)
    if slo is None or not captured:
        return
    for info in lead.candidates:
        whose = "the candidate" if info.candidate == "default" else info.candidate
        console.print(f"measuring {whose}'s capacity with {use_case}'s captured traffic…")
        result, _ = replay_use_case(
            config,
            use_case,
            slo,
            captured,
            info.sample_rate,
            requests_per_step=60,
            refine=2,
            timeout_s=30,
            candidate=info.candidate,
        )
        found = f"{result.rps_at_slo:.1f} req/s" if result.rps_at_slo else "not reached"
        console.print(
            f"capacity.rps_at_slo = {found} over {len(result.steps)} rate steps "
            f"(p{slo.quantile * 100:g} <= {slo.latency_ms:g} ms)"
        )


def _verdicts(console: Console, proxy_url: str, url: str, config: SwitchoverConfig) -> str:
    """Ask the readiness API, as a release manager's gate would, for every use case.

    Returns the viewer token it asked with (the next steps and the dashboard use it too).
    """
    from criteria.access.auth import create_token
    from criteria.readiness.tasks import evaluate_all
    from shadow.catalog import catalog_for
    from shadow.cli.gate import GateError, fetch_verdict, fetch_warnings, render, render_ranking
    from storage.db import get_engine, session_scope

    # The periodic evaluation once more, now: reads return the stored verdicts, and the last
    # ones stored may predate the capacity just measured.
    evaluate_all(catalog_for(config, None))
    with session_scope(get_engine(url)) as session:
        token = create_token(session, "viewer", "demo")
    console.rule("Verdicts (GET /api/v1/gate/{use_case})")
    ranked = []
    for use_case in _in_order(set(config.use_cases)):
        try:
            readiness = fetch_verdict(proxy_url, use_case, token)
        except GateError as exc:
            console.print(f"{use_case}: verdict unavailable: {exc}")
        else:
            render(console, readiness, fetch_warnings(proxy_url, use_case))
            if len(readiness.get("candidates") or []) > 1:
                ranked.append(readiness)
        console.print()
    for readiness in ranked:
        console.rule(f"Which of {readiness['use_case']}'s candidates can take over")
        render_ranking(console, readiness["candidates"])
        console.print()
    return token


def next_steps(proxy_url: str, token: str, use_case: str, dashboard_url: str | None) -> list[str]:
    """What to try next, with this run's address and viewer token (shown once, here)."""
    lines = ["Next steps"]
    if dashboard_url is not None:
        lines.append(f"  readiness dashboard: {dashboard_url}")
    else:
        lines.append(
            "  The demo's service stopped with it. Run `switchover demo --dashboard` (the "
            "default in a terminal) to keep it and the readiness dashboard up, then try:"
        )
    lines += [
        f"  viewer token: {token}",
        f"  switchover gate {use_case} --url {proxy_url} --token {token}",
        f'  curl -H "Authorization: Bearer {token}" {proxy_url}/api/v1/readiness/{use_case}',
        f"  switchover rollout status {use_case} --url {proxy_url} --token {token}",
    ]
    return lines


def _print_next_steps(console: Console, lines: list[str]) -> None:
    console.rule(lines[0])
    for line in lines[1:]:
        # commands and the token stay on one line however narrow the terminal (copied whole)
        command = line.startswith(("  switchover ", "  curl ", "  viewer token"))
        console.print(line, markup=False, highlight=False, soft_wrap=command)


def run_demo(
    requests: int,
    concurrency: int,
    workdir: Path,
    seed: int = 7,
    candidate: Literal["sim", "vllm"] = "sim",
    vllm_server: VllmServer | None = None,
    dashboard: bool = False,
    dashboard_port: int = 8501,
) -> int:
    """Run the demo; returns the process exit code.

    `candidate="vllm"` replaces the simulated candidate with a real vLLM: `vllm_server` if one
    is already running, else one started (and stopped) here. `dashboard` then serves the
    readiness dashboard over the demo's service until Ctrl-C.
    """
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
        # re-asks are not word for word the same, so the noise floor is below 1
        answer_mix=quality_preset("api"),
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
        max_tokens, wait_s = 256, 120.0
        if candidate == "vllm":
            server = vllm_server or stack.enter_context(_real_candidate(console))
            candidate_url, candidate_name = server.base_url, f"vLLM serving {server.model}"
            # A small model on CPU makes ~50 tokens/s: short answers, all of them mirrored.
            max_tokens, wait_s = 64, 600.0
            config_text = demo_config(
                primary_url,
                candidate_url,
                1.0,
                candidate_model=server.model,
                timeout_s=120,
                max_in_flight=4,
            )
        else:
            candidate_url = stack.enter_context(serve_in_thread(candidate_sim))
            candidate_name = f"simulated self-hosted model {CANDIDATE_MODEL}"
            rivals = {
                name: stack.enter_context(
                    serve_in_thread(
                        candidate_sim.model_copy(
                            update={"answer_mix": quality_preset(preset), "seed": seed + i}
                        )
                    )
                )
                for i, (name, (_, preset, _, _)) in enumerate(RIVALS.items(), start=2)
            }
            config_text = demo_config(primary_url, candidate_url, 1.0, rivals=rivals)
        config = parse_config(config_text, "<demo>")
        settings = Settings()
        proxy_url = stack.enter_context(serve_app(create_app(settings, config)))
        console.print(f"Switchover proxy on {proxy_url}/v1 (embedded: SQLite, in-process worker)")
        console.print(f"simulated API model {PRIMARY_MODEL} on {primary_url}")
        console.print(f"{candidate_name} on {candidate_url}")
        client = openai.OpenAI(base_url=f"{proxy_url}/v1", api_key="demo-client-key", max_retries=0)
        claude = anthropic.Anthropic(base_url=proxy_url, api_key="demo-client-key", max_retries=0)
        plan = [(rng.choice(items), rng.random() < 0.35, rng.random()) for _ in range(requests)]

        def send(item: PromptItem, stream: bool, draw: float) -> str | None:
            api = _api_for(item, draw)
            if api == "chat":
                return _ask(client, item, stream, max_tokens)
            return _ask_other(claude if api == "messages" else client, item, stream, max_tokens)

        mirrored: list[str] = []
        expected = 0  # pairs: every candidate samples every request (sample_rate 1)
        answered = 0
        with Progress(console=console) as progress, ThreadPoolExecutor(concurrency) as pool:
            task = progress.add_task("requests through the proxy", total=requests)
            for (item, _, _), pair_id in zip(plan, pool.map(lambda p: send(*p), plan), strict=True):
                answered += 1
                if pair_id:
                    mirrored.append(pair_id)
                    expected += len(config.use_cases[USE_CASE_BY_KIND[item.kind]].targets)
                progress.advance(task)
        console.print(
            f"{len(mirrored)} of {requests} requests were mirrored; waiting for the worker…"
        )
        stored = _wait_for_pairs(url, expected, timeout_s=wait_s)
        scored = _wait_for_scores(url, stored, timeout_s=wait_s)
        _summary(console, url, answered, requests)
        _scores_summary(console, url, scored, stored)
        if candidate == "vllm":
            _show_answers(console, url)
        else:
            _measure_capacity(console, config, "support-chat")
        token = _verdicts(console, proxy_url, url, config)
        first = _in_order(set(config.use_cases))[0]
        if dashboard:
            from shadow.cli.dashboard import serve_for_demo

            serve_for_demo(
                proxy_url,
                url,
                dashboard_port,
                console.print,
                token=token,
                announce=lambda address: _print_next_steps(
                    console, next_steps(proxy_url, token, first, address)
                ),
            )
        else:
            _print_next_steps(console, next_steps(proxy_url, token, first, None))
        complete = answered == requests and stored == expected == scored
        return 0 if complete else 1
    return 1
