"""`switchover demo --candidate vllm`: the demo loop with the real vLLM as the candidate."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shadow.cli.demo import run_demo
from storage.db import make_engine, session_scope
from storage.models import RequestPair

pytestmark = [pytest.mark.vllm, pytest.mark.integration, pytest.mark.timeout(900)]


def test_demo_with_the_real_candidate(vllm_server, tmp_path, capsys):
    """Every mirrored request gets a real answer from vLLM, tools and JSON mode included."""
    assert run_demo(8, 4, tmp_path, candidate="vllm", vllm_server=vllm_server) == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'switchover.db'}")
    try:
        with session_scope(engine) as session:
            pairs = list(session.scalars(select(RequestPair)).all())
    finally:
        engine.dispose()
    assert len(pairs) == 8
    for pair in pairs:
        assert pair.status == "ok", pair.candidate_error
        assert pair.candidate_model == vllm_server.model
        assert pair.candidate_text or pair.candidate_tool_calls
        assert pair.candidate_completion_tokens
        assert 0 < pair.candidate_completion_tokens <= 64
    assert f"vLLM serving {vllm_server.model}" in capsys.readouterr().out
