"""`switchover demo` read as a newcomer reads it, in an 80-column terminal (issue 20, item 7)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from shadow.cli.demo import next_steps


def test_the_next_steps_name_the_dashboard_a_viewer_token_and_three_commands():
    lines = next_steps("http://127.0.0.1:8080", "swo_abc", "support-chat", "http://127.0.0.1:8501")
    text = "\n".join(lines)
    assert "readiness dashboard: http://127.0.0.1:8501" in text
    assert "viewer token: swo_abc" in text
    assert "switchover gate support-chat --url http://127.0.0.1:8080 --token swo_abc" in text
    assert (
        'curl -H "Authorization: Bearer swo_abc" '
        "http://127.0.0.1:8080/api/v1/readiness/support-chat" in text
    )
    assert "switchover rollout status support-chat --url http://127.0.0.1:8080" in text


@pytest.mark.timeout(900)
def test_the_demo_ends_with_next_steps_and_fits_80_columns(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "shadow.cli", "demo", "--requests", "24", "--no-dashboard",
         "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "80", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # the models are named as what they are
    assert "simulated API model simulated-gpt-4o-mini" in output
    assert "simulated self-hosted model simulated-llama-3.1-8b" in output
    # no model-loading progress bar, no name cut short
    assert "Loading weights" not in output
    cells = [line for line in output.splitlines() if not line.rstrip().endswith("…")]
    assert not [line for line in cells if "…" in line]  # a progress message ends in one
    # one use-case order everywhere: the pairs table, the verdicts
    order = ["support-chat", "ticket-triage", "order-extraction", "agent-tools"]
    table = output.split("Captured request pairs")[1].split("client requests answered")[0]
    assert [u for u in order if u in table] == order
    assert sorted(order, key=table.index) == order
    verdicts = output.split("Verdicts")[1].split("Next steps")[0]
    # a use case with several candidates is headed with its lead one: "support-chat / llama-8b: "
    starts = [re.search(rf"^{u}( / \S+)?: ", verdicts, re.MULTILINE).start() for u in order]
    assert starts == sorted(starts)
    # the next steps, with a token and the three commands, last
    steps = output.split("Next steps")[1]
    token = re.search(r"viewer token: (swo_\S+)", steps)
    assert token is not None
    assert "switchover gate support-chat --url http://127.0.0.1:" in steps
    assert f"--token {token.group(1)}" in steps
    assert f'curl -H "Authorization: Bearer {token.group(1)}" http://127.0.0.1:' in steps
    assert "/api/v1/readiness/support-chat" in steps
    assert "switchover rollout status support-chat" in steps
