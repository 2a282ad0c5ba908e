"""`switchover dashboard` refuses to start without a token (serving is the browser tests')."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import VENV_BIN


def test_dashboard_without_a_token_says_how_to_get_one():
    env = {k: v for k, v in os.environ.items() if k != "SWITCHOVER_TOKEN"}
    result = subprocess.run(
        [str(VENV_BIN / "switchover"), "dashboard", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "needs a viewer token" in result.stderr
    assert "switchover tokens create --role viewer" in result.stderr
