"""The HTML views in a real headless Chromium: they load without console errors and their plots render.

Chromium comes from Debian (``apt-get install -y chromium``); the session fixture installs it when it
is missing and the tests run as root (as in CI), and skips with the reason otherwise. The page is
driven through the DevTools protocol over a websocket: console messages, exceptions and log entries
(failed loads included) are collected from before navigation, the plots' SVG boxes are measured in
the laid-out page, and a full-page screenshot is kept under ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest

from harness.decide.report import build_report
from harness.decide.views import leaderboard_html
from harness.records import Leaderboard

pytestmark = pytest.mark.slow  # the first run installs Chromium (a minute or more)

ARTIFACTS = Path(__file__).parent / "artifacts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PLOTS_JS = """Array.from(document.querySelectorAll('figure.plot')).map(f => {
  const svg = f.querySelector('svg'); const box = svg.getBoundingClientRect();
  return {plot: f.dataset.plot, width: box.width, height: box.height, marks: svg.querySelectorAll('path, use, text').length};
})"""


def _find() -> str | None:
    return next(filter(None, map(shutil.which, BROWSERS)), None)


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    found = _find()
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("no headless Chromium here and it cannot be installed (needs root and apt-get); run: apt-get install -y chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "chromium"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:  # a fresh image has no package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"apt-get install -y chromium failed: {done.stderr[-2000:]}"
    return _find()


class DevTools:
    """A headless Chromium and one page, spoken to through the DevTools protocol (JSON over a websocket)."""

    def __init__(self, binary: str, profile: Path):
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "--window-size=1280,1600", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port = self._port(profile / "DevToolsActivePort")
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        from websockets.sync.client import connect

        self.stack = ExitStack()
        self.socket = self.stack.enter_context(connect(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"], max_size=None, open_timeout=10))
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def _port(self, path: Path, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.is_file() and path.read_text().strip():
                return int(path.read_text().split()[0])
            assert self.process.poll() is None, "Chromium exited at start-up"
            time.sleep(0.1)
        raise AssertionError(f"Chromium did not open its DevTools port within {timeout} s")

    def call(self, method: str, **params) -> dict:
        """Send one command; keep the events that arrive before its answer."""
        call_id = next(self.ids)
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == call_id:
                assert "error" not in message, message
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self.socket.recv(timeout=30)))

    def open(self, url: str) -> list[dict]:
        """Load ``url`` (collecting console output from the start); return the measured plots."""
        self.events.clear()
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        return self.call("Runtime.evaluate", expression=PLOTS_JS, returnByValue=True)["result"]["value"]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (failed loads) seen so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                found.append("exception: " + params["exceptionDetails"].get("text", ""))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append("log: " + params["entry"]["text"])
        return found

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        self.stack.close()
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(chromium_binary, tmp_path_factory):
    devtools = DevTools(chromium_binary, tmp_path_factory.mktemp("chromium-profile"))
    yield devtools
    devtools.close()


def check_page(browser: DevTools, page: Path, expected_plots: list[str]) -> None:
    plots = browser.open(page.as_uri())
    assert browser.errors() == []
    assert [p["plot"] for p in plots] == expected_plots
    for plot in plots:
        assert plot["width"] > 200 and plot["height"] > 100 and plot["marks"] > 10, plot
    shot = browser.screenshot(ARTIFACTS / page.with_suffix(".png").name)
    assert shot.stat().st_size > 10_000


def test_leaderboard_page_renders_without_console_errors(browser, views_leaderboard):
    page = ARTIFACTS / "leaderboard.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(leaderboard_html(Leaderboard(views_leaderboard).latest()))
    check_page(browser, page, ["ladder", "latency", "index", "ood"])  # every rung free: the cost plot is a sentence


def test_report_page_renders_without_console_errors(browser, views_leaderboard, tmp_path):
    from harness.ladder.schema import load_ladder

    report = build_report(Leaderboard(views_leaderboard).latest(), load_ladder(tmp_path / "ladder.toml"))
    page = ARTIFACTS / "report.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(report.html())
    check_page(browser, page, ["ladder", "latency", "index", "ood"])  # every rung free: the cost plot is a sentence


def test_the_check_sees_console_errors_and_failed_loads(browser, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text('<!doctype html><html><body><img src="missing.png"><script>console.error("boom"); undefined_name()</script></body></html>')
    browser.open(broken.as_uri())
    errors = "\n".join(browser.errors())
    assert "console: boom" in errors and "exception: Uncaught" in errors and "log: " in errors
