"""Hand-made pairs and the real embedding model, loaded once per session."""

from __future__ import annotations

from typing import Any

import pytest

from evaluators.pair import Answer, Deployment, PairView
from evaluators.similarity import Encoder, load_model


def make_pair(
    primary: str | None = "The answer is 42.",
    candidate: str | None = "The answer is 42.",
    *,
    pair_id: str = "pair-1",
    request: dict[str, Any] | None = None,
    primary_model: str = "gpt-4o-mini",
    noise: str | None = None,
    deployment: Deployment | None = None,
    primary_fields: dict[str, Any] | None = None,
    candidate_fields: dict[str, Any] | None = None,
) -> PairView:
    """A pair view as the scoring would build it from the database."""
    request = request or {"model": primary_model, "messages": [{"role": "user", "content": "?"}]}
    primary_answer = {"text": primary, "latency_ms": 100.0, "ttft_ms": 100.0} | (
        primary_fields or {}
    )
    candidate_answer = {"text": candidate, "latency_ms": 150.0, "ttft_ms": 150.0} | (
        candidate_fields or {}
    )
    return PairView(
        id=pair_id,
        use_case="test",
        endpoint="chat.completions",
        request=request,
        primary_model=primary_model,
        candidate_model="cand-model",
        primary=Answer(**primary_answer),
        candidate=Answer(**candidate_answer),
        noise=None if noise is None else Answer(text=noise, latency_ms=90.0),
        deployment=deployment,
    )


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The bundled all-MiniLM-L6-v2, loaded once for the whole test session."""
    load_model("sentence-transformers/all-MiniLM-L6-v2")
    return Encoder("sentence-transformers/all-MiniLM-L6-v2")
