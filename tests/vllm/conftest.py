"""The real vLLM server, started once per test session for the `vllm` tests.

Package scope: it starts when the first test here needs it and stops when the `vllm` tests are
done, so the rest of the suite does not carry its ~3.5 GiB.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shadow.candidate.launcher import CandidateError, CandidateSpec, VllmServer


@pytest.fixture(scope="package")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """vLLM serving SmolLM2-135M-Instruct (the CPU build here); its failure fails the tests."""
    log_path = tmp_path_factory.mktemp("vllm") / "vllm.log"
    server = VllmServer(
        CandidateSpec(port=0, tool_call_parser="hermes"),
        log_path=log_path,
        startup_timeout_s=600,
    )
    try:
        server.start()
    except CandidateError as exc:
        pytest.fail(f"the vLLM server did not start: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="package")
def vllm_max_model_len(vllm_server: VllmServer) -> int:
    """The context length the server enforces, as it reports it."""
    models = httpx.get(f"{vllm_server.base_url}/models", timeout=10).json()["data"]
    return int(models[0]["max_model_len"])


def vllm_counter(server: VllmServer, name: str) -> float:
    """A counter from vLLM's own Prometheus metrics, summed over its labels."""
    text = httpx.get(server.base_url.removesuffix("/v1") + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
    )
