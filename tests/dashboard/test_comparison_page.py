"""The use case page with several candidates: the comparison view, then the lead's details."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from shadow.serving import serve_in_thread
from tests.dashboard.conftest import Service
from tests.dashboard.test_app import start, texts


def _candidate(name: str, verdict: str, rank: int, base: dict[str, object]) -> dict[str, object]:
    return {
        "candidate": name,
        "model": f"m-{name}",
        "verdict": verdict,
        "rank": rank,
        "pairs": base["pairs"],
        "criteria": base["criteria"],
        "reasons": [f"rank {rank}: reason of {name}"],
        "monthly_cost_usd": 1000.0 * rank,
        "monthly_savings_usd": None,
        "capacity_rps": 10.0 * rank,
    }


@pytest.fixture
def three_candidates(readiness_service: Service) -> Iterator[str]:
    """The seeded service behind a pass-through whose support-chat readiness names three
    candidates (their evidence is the verdict's own tests'); other reads pass through, and
    `candidate=` must reach them as the lead's name."""
    app = FastAPI()
    seen: list[str | None] = []

    def forward(path: str, request: Request) -> httpx.Response:
        seen.append(request.query_params.get("candidate"))
        query = "&".join(
            f"{k}={v}" for k, v in request.query_params.multi_items() if k != "candidate"
        )
        return httpx.get(
            f"{readiness_service.url}/{path}?{query}",
            headers={"authorization": request.headers.get("authorization", "")},
            timeout=60,
        )

    @app.get("/api/v1/readiness/support-chat")
    def readiness(request: Request) -> dict[str, object]:
        base: dict[str, object] = forward("api/v1/readiness/support-chat", request).json()
        rivals = [
            _candidate("llama-8b", "GO", 1, base),
            _candidate("mistral-7b", "INSUFFICIENT_DATA", 2, base),
            _candidate("qwen-0.5b", "NO_GO", 3, base),
        ]
        return base | {"candidate": "llama-8b", "candidates": rivals}

    @app.get("/{path:path}")
    def anything(path: str, request: Request) -> Response:
        answer = forward(path, request)
        return Response(answer.content, answer.status_code, media_type="application/json")

    with serve_in_thread(app) as url:
        app.state.seen = seen
        yield url
    assert "llama-8b" in seen, "the details are the lead candidate's"


def test_the_comparison_view_shows_every_candidate_then_the_leads_details(
    three_candidates, readiness_service, monkeypatch
):
    app = start(monkeypatch, three_candidates, readiness_service.viewer, "support-chat")
    shown = texts(app)
    assert "Candidates side by side" in shown
    assert "the lead candidate's, **llama-8b**" in shown
    for name in ("llama-8b", "mistral-7b", "qwen-0.5b"):
        assert f"reason of {name}" in shown
    table = app.dataframe[0].value.set_index("criterion")
    assert list(table.columns) == ["llama-8b", "mistral-7b", "qwen-0.5b"]
    assert table.loc["rank"].tolist() == ["#1", "#2", "#3"]
    assert table.loc["self-hosted per month"].tolist() == ["$1,000", "$2,000", "$3,000"]
    assert "Success criteria" in shown
