"""The dashboard in a real browser: headless Chromium (Debian's) loads the running pages."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from shadow.serving import free_port
from tests.conftest import VENV_BIN, wait_for

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# The verdict badge: a rounded span inside the heading (dashboard.theme.verdict_badge).
BADGE = "{level} span[style*='border-radius']"


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is not installed; scripts/test.sh installs it")
    return found


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """Headless Chromium with a fresh profile, driven by Playwright (no browser download)."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium_path(),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


def start_dashboard(url: str, token: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`switchover dashboard` as a user runs it; returns the process and its address."""
    port = free_port()
    log = (tmp_path / "dashboard.log").open("wb")
    process = subprocess.Popen(
        [
            str(VENV_BIN / "switchover"),
            "dashboard",
            "--url",
            url,
            "--token",
            token,
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail("switchover dashboard exited:\n" + (tmp_path / "dashboard.log").read_text())
        try:
            return httpx.get(f"{address}/_stcore/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout=120, interval=0.3)
    return process, address


def stop(process: subprocess.Popen[bytes]) -> int:
    os.killpg(process.pid, signal.SIGTERM)
    return process.wait(30)


def rendered(page: Page, *texts: str) -> None:
    """Wait until Streamlit (client-side) has rendered each text and finished running."""
    for text in texts:
        page.get_by_text(text, exact=True).first.wait_for(timeout=90_000)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=90_000)


def screenshot(page: Page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the window to fit it."""
    height = page.evaluate(
        "() => document.querySelector('[data-testid=stMainBlockContainer]').scrollHeight"
    )
    page.set_viewport_size({"width": 1400, "height": int(height) + 80})
    page.wait_for_timeout(500)  # let the charts re-layout to the new size
    page.screenshot(path=path, full_page=True)


def test_overview_and_use_case_pages_render_in_chromium(
    readiness_service, tmp_path, artifact, browser
):
    process, address = start_dashboard(readiness_service.url, readiness_service.viewer, tmp_path)
    try:
        page = browser.new_page()
        page.goto(address)
        rendered(page, "Is the self-hosted model ready?", "Evidence collected")
        text = page.inner_text("body")
        for name in ("support-chat", "ticket-triage", "order-extraction", "agent-tools"):
            assert name in text
        badges = [b.strip() for b in page.locator(BADGE.format(level="h3")).all_inner_texts()]
        assert badges == ["GO", "NO GO", "INSUFFICIENT DATA", "INSUFFICIENT DATA"]
        page.locator(".vega-embed").first.wait_for()
        screenshot(page, artifact("dashboard-overview.png"))

        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(f"{address}/use-case?use_case=support-chat")
        rendered(page, "Success criteria", "Worst pairs")
        assert page.locator(BADGE.format(level="h1")).inner_text().strip() == "GO"
        wait_for(lambda: page.locator(".vega-embed").count() >= 6, timeout=60)
        screenshot(page, artifact("dashboard-use-case.png"))
        assert "Traceback" not in page.inner_text("body")
    finally:
        assert stop(process) in (0, -signal.SIGTERM)


class DemoProcess:
    """`switchover demo` in a subprocess, its output collected line by line."""

    def __init__(self, *args: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(VENV_BIN / "switchover"), "demo", *args],
            stdin=subprocess.DEVNULL,  # as in CI: not a terminal
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def dashboard_address(self) -> str:
        def announced() -> str | None:
            if self.process.poll() is not None:
                pytest.fail(f"the demo ended before serving the dashboard:\n{self.output}")
            found = re.search(r"Readiness dashboard: (http://\S+)", self.output)
            return found.group(1) if found else None

        return str(wait_for(announced, timeout=400, interval=0.5))

    def exit_code(self, within_s: float) -> int:
        """The demo's exit code once it ends; a failure with its output if it has not ended."""
        try:
            return self.process.wait(within_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo still runs after {within_s:g} s; its output:\n{self.output}")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


# The demo (four use cases, three candidates, capacity runs) can take minutes on a busy machine.
@pytest.mark.timeout(900)
def test_demo_serves_the_dashboard_with_its_own_data_until_ctrl_c(tmp_path, artifact, browser):
    port = free_port()
    demo = DemoProcess(
        "--requests",
        "24",
        "--workdir",
        str(tmp_path / "demo"),
        "--dashboard",
        "--dashboard-port",
        str(port),
    )
    try:
        address = demo.dashboard_address()
        assert address == f"http://127.0.0.1:{port}"
        page = browser.new_page()
        page.goto(address)
        rendered(page, "Is the self-hosted model ready?", "Evidence collected")
        badges = page.locator(BADGE.format(level="h3")).all_inner_texts()
        assert len(badges) == 4  # the demo's four use cases, each with its verdict
        assert set(badges) <= {"GO", "NO GO", "INSUFFICIENT DATA"}
        assert "support-chat" in page.inner_text("body")
        screenshot(page, artifact("dashboard-demo-overview.png"))
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(f"{address}/use-case?use_case=support-chat")
        rendered(page, "Latency", "Worst pairs")
        wait_for(lambda: page.locator(".vega-embed").count() >= 3, timeout=60)
        screenshot(page, artifact("dashboard-demo-use-case.png"))

        demo.process.send_signal(signal.SIGINT)  # Ctrl-C
        # stopping the dashboard, the proxy and its workers: a generous deadline, not a timing
        assert demo.exit_code(within_s=400) == 0, demo.output
        with pytest.raises(httpx.ConnectError):
            httpx.get(address, timeout=5)
    finally:
        demo.kill()


@pytest.mark.timeout(900)
def test_demo_without_a_terminal_does_not_serve_the_dashboard(tmp_path):
    demo = DemoProcess("--requests", "8", "--workdir", str(tmp_path / "demo"))
    try:
        assert demo.exit_code(within_s=400) == 0, demo.output
        assert "Readiness dashboard" not in demo.output
    finally:
        demo.kill()
