"""Several candidates on one use case: each samples on its own, none delays another or the client."""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import func, select

from shadow.settings import Settings
from storage.db import make_engine, session_scope
from storage.models import RequestPair
from tests.conftest import CapturedJobs, wait_for

pytestmark = pytest.mark.integration


def _config(primary: str, candidates: dict[str, tuple[str, str]], shadow: str) -> str:
    """`candidates`: name -> (base URL, extra fields of the candidate)."""
    lines = ["upstreams:", f"  api: {{base_url: {primary}}}"]
    lines += [f"  {name}-gpu: {{base_url: {url}}}" for name, (url, _) in candidates.items()]
    lines += [
        "use_cases:",
        "  chat:",
        "    primary: {upstream: api, model: gpt-4o-mini}",
        f"    shadow: {{{shadow}}}",
        "    candidates:",
    ]
    for name, (_, extra) in candidates.items():
        lines.append(f"      {name}: {{upstream: {name}-gpu, model: m-{name}{extra}}}")
    return "\n".join(lines) + "\n"


def _ask(url: str, n: int, key: str = "sk-client-own") -> list[httpx.Headers]:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=30)

    def one(i: int) -> Any:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"question {i}"}]
        )
        assert raw.parse().choices[0].message.content
        return raw.headers

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def _within(count: int, n: int, rate: float) -> bool:
    """Inside 4.5 standard deviations of a binomial(n, rate): a false alarm once in 10^5 runs."""
    spread = 4.5 * math.sqrt(n * rate * (1 - rate))
    return n * rate - spread <= count <= n * rate + spread


def test_each_candidate_samples_on_its_own_and_one_re_ask_serves_them_all(simulator, proxy):
    primary = simulator()
    rates = {"all": 1.0, "half": 0.5, "fifth": 0.2}
    candidates = {name: (simulator(), f", sample_rate: {rate}") for name, rate in rates.items()}
    jobs = CapturedJobs()
    shadow = "sample_rate: 0.01, noise_rate: 0.5, max_in_flight: 4, timeout_s: 10"
    url = proxy(_config(primary, candidates, shadow), publish=jobs.publish)
    n = 400
    answered = _ask(url, n)

    assert all(h["x-switchover-served-by"] == "primary" for h in answered)
    mirrored = [h["x-switchover-pair-id"] for h in answered if "x-switchover-pair-id" in h]
    assert len(mirrored) == n  # the candidate sampling everything sampled every request
    wait_for(lambda: sum(job.reask for job in jobs) == len(mirrored), timeout=60)
    per_candidate = Counter(job.candidate_name for job in jobs)
    for name, rate in rates.items():
        assert _within(per_candidate[name], n, rate), (name, per_candidate)
    assert len({job.pair_id for job in jobs}) == len(jobs)
    assert {job.pair_id for job in jobs if job.reask} == set(mirrored)
    # one noise re-ask per request (the client's key: the proxy makes it), on one job only
    by_request = Counter(job.request_body for job in jobs if job.noise is not None)
    assert set(by_request.values()) == {1}
    assert _within(len(by_request), n, 0.5)
    stats = httpx.get(f"{primary.removesuffix('/v1')}/sim/stats").json()
    assert stats["requests"] == n + len(by_request)
    assert all(job.noise is None for job in jobs if not job.reask)


def _stored(url: str) -> Counter[str]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            rows = session.execute(
                select(RequestPair.candidate_name, func.count()).group_by(
                    RequestPair.candidate_name
                )
            ).all()
            return Counter({name: int(count) for name, count in rows})
    finally:
        engine.dispose()


def test_a_hanging_candidate_delays_neither_the_others_nor_the_client(
    simulator, proxy, tmp_path, monkeypatch
):
    """Embedded mode: the stuck candidate holds one call (its cap); the others' pairs go on."""
    database = f"sqlite:///{tmp_path / 'candidates.db'}"
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", database)
    monkeypatch.delenv("SWITCHOVER_BROKER_URL", raising=False)
    primary = simulator()
    stuck = simulator(hang_rate=1.0)
    candidates = {
        "fast": (simulator(), ""),
        "stuck": (stuck, ", max_in_flight: 1, timeout_s: 300"),
        "slow": (simulator(latency_ms=50), ""),
    }
    shadow = "sample_rate: 1, noise_rate: 0, max_in_flight: 4, timeout_s: 30"
    url = proxy(_config(primary, candidates, shadow), Settings(broker_url=None))
    # Each client call has 30 s (the SDK's timeout) while the stuck candidate would take 300 s.
    answered = _ask(url, 24)
    assert all(h["x-switchover-served-by"] == "primary" for h in answered)
    wait_for(lambda: _stored(database)["fast"] == 24 and _stored(database)["slow"] == 24, 120)
    stuck_stats = httpx.get(f"{stuck.removesuffix('/v1')}/sim/stats").json()
    assert stuck_stats["max_in_flight"] == 1
    assert _stored(database)["stuck"] == 0  # its first call is still hanging
