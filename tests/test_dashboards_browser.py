"""The dashboards in a real browser: `streamlit run` on 127.0.0.1, every page opened in
headless Chromium (Debian's package, driven by Playwright; `scripts/ensure-chromium` installs
it and `make test` runs that first), including while the pipeline writes and publishes.

Without Chromium these tests fail rather than skip: a skipped browser test would hide a
broken CI.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from pipelines.dashboard_cli import streamlit_argv
from pipelines.reporting import publish, read_info, snapshot_path
from pipelines.warehouse import Warehouse
from tests.test_dashboards import APP, World, dashboard_world  # noqa: F401 (a fixture)

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
# url path -> the page's main heading
PAGES = {
    "": "Overview",
    "experiments": "Experiments",
    "flow-health": "Flow health",
    "replenishment": "Replenishment",
    "planner": "Experiment planner",
}
TIMEOUT_MS = 60_000


@dataclass
class App:
    url: str
    process: subprocess.Popen
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing, so the browser test cannot run. Install Debian's chromium "
            "with scripts/ensure-chromium (`make test` runs it first), or set CHROMIUM to a "
            "Chromium binary.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def app(chromium: Path, dashboard_world: World, tmp_path_factory) -> App:  # noqa: F811
    # Asks for Chromium first: without it, fail at once rather than after building the world.
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = os.environ | {"POSTPURCHASE_DATA_DIR": str(dashboard_world.data_dir)}
    with open(log, "w") as out:
        process = subprocess.Popen(
            # As `make dashboard` serves it (its libraries imported before it answers).
            [*streamlit_argv(port), "--server.fileWatcherType", "none"],
            env=env,
            cwd=APP.parents[1],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"streamlit did not start within 60 s:\n{log.read_text()}")
        time.sleep(0.3)
    yield App(url, process, log)
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser(chromium: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dashboard-screenshots")


def open_page(tab, app: App, path: str) -> str:
    """Open a page, wait for its heading and for the script to finish; the page's text."""
    tab.goto(f"{app.url}/{path}", wait_until="domcontentloaded")
    tab.get_by_role("heading", name=PAGES[path], level=1).wait_for(timeout=TIMEOUT_MS)
    tab.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        timeout=TIMEOUT_MS
    )
    text = tab.inner_text("body")
    exceptions = tab.locator('[data-testid="stException"]').count()
    assert exceptions == 0 and "Traceback" not in text, (
        f"/{path} shows an error:\n{text[:3000]}\n--- server log ---\n{app.log.read_text()}"
    )
    return text


def test_every_page_opens_in_chromium_with_its_heading_and_no_error(app, browser, screenshots):
    tab = browser.new_page(viewport={"width": 1400, "height": 3200})
    try:
        for path, heading in PAGES.items():
            text = open_page(tab, app, path)
            assert "make demo" not in text, f"/{path} found no snapshot"
            # The freshness note, in the sidebar of every page.
            assert "Data as of" in text and "published" in text
            name = path or "overview"
            tab.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
            assert (screenshots / f"{name}.png").stat().st_size > 10_000, heading
    finally:
        tab.close()
    print(f"screenshots in {screenshots}")


def test_pages_keep_working_while_the_pipeline_writes_and_publishes(
    app,
    browser,
    dashboard_world: World,  # noqa: F811
):
    data = dashboard_world.data_dir
    as_of = read_info(snapshot_path(data))["as_of"]
    stop = threading.Event()
    published: list = []
    writer_waits: list[float] = []
    failures: list[BaseException] = []

    def pipeline() -> None:
        # A writer holding the warehouse, then a publish, over and over, as runs would.
        try:
            while not stop.is_set():
                started = time.monotonic()
                with Warehouse(data).connect() as con:
                    writer_waits.append(time.monotonic() - started)
                    con.execute(
                        "create or replace table ops.dashboard_probe as "
                        "select range as i, now() as at from range(10000)"
                    )
                published.append(publish(data, as_of))
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    worker = threading.Thread(target=pipeline)
    tab = browser.new_page(viewport={"width": 1400, "height": 1200})
    worker.start()
    try:
        for path in PAGES:
            open_page(tab, app, path)
    finally:
        stop.set()
        worker.join(60)
    assert not failures, failures
    assert len(published) >= 2, "the pipeline did not publish while the pages were read"
    # Readers never held the writer up: it only ever waited for the publisher's copy.
    assert max(writer_waits) < 30
    # The app read the snapshot, never the warehouse, and shows the newest one after a reload.
    files = {Path(f.path).name for f in psutil.Process(app.process.pid).open_files()}
    assert "warehouse.duckdb" not in files
    last = read_info(snapshot_path(data))["published_at"]
    text = open_page(tab, app, "")
    tab.close()
    assert f"{last:%Y-%m-%d %H:%M} UTC" in text
    with Warehouse(data).connect() as con:
        con.execute("drop table if exists ops.dashboard_probe")
    assert dt.datetime.now(dt.UTC) - last < dt.timedelta(minutes=10)
