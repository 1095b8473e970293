"""Dashboard page render time: each page of the Streamlit reports opened in headless Chromium.

The app is started as `make dashboard` starts it (pipelines/dashboard_cli.py's command) on a
free port of 127.0.0.1, with POSTPURCHASE_DATA_DIR set to the data folder; Debian's Chromium is
driven by Playwright with the flags of tests/test_dashboards_browser.py. A page counts as
rendered when its heading is shown, the script has finished, and every chart, sparkline and
table on it is drawn (no loading skeleton left): Streamlit reports the script finished before
the browser has drawn the charts, often by a second or more. The app only reads the snapshot.

    .venv/bin/python -m pipelines.bench.dashboard data/
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psutil

from pipelines.dashboard_cli import APP, streamlit_argv

TARGET_SECONDS = 2.0
TIMEOUT_SECONDS = 300.0  # generous: on a large warehouse a page may take minutes
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# As tests/test_dashboards_browser.py launches Chromium.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
# url path -> the page's main heading, as PAGES in tests/test_dashboards_browser.py.
PAGES = {
    "": "Overview",
    "experiments": "Experiments",
    "flow-health": "Flow health",
    "replenishment": "Replenishment",
    "planner": "Experiment planner",
}
VIEWPORT = {"width": 1400, "height": 1200}

# Marks, in the page, when the script starts running and when it last finished (ms since the
# navigation began). The app's `data-test-script-state` goes "initial", then "running", then
# "notRunning", so a finished run is always the page's own.
MARKS_JS = """(() => {
    const marks = (window.__benchMarks = {});
    new MutationObserver(records => {
        for (const record of records) {
            const state = record.target.getAttribute('data-test-script-state');
            if (state === 'running' && marks.started === undefined)
                marks.started = performance.now();
            if (state === 'notRunning' && marks.started !== undefined)
                marks.finished = performance.now();
        }
    }).observe(document, {
        attributes: true, subtree: true, attributeFilter: ['data-test-script-state']
    });
})();"""
# True once the page is there for the reader: the heading shown, the script finished (what the
# "Running..." status widget shows; the widget itself appears late and fades out, so its absence
# proves nothing), and every chart (Altair's, and st.metric's sparklines: an svg or canvas of
# class "marks" drawn by vega-embed) and table (glide data grid: a canvas) drawn, with no
# loading skeleton left.
RENDERED_JS = """heading => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    const titled = [...document.querySelectorAll('h1')].some(
        h => h.innerText.trim() === heading && h.offsetParent !== null);
    if (!titled || document.querySelector('[data-testid="stSkeleton"]')) return false;
    const charts = document.querySelectorAll(
        '[data-testid="stVegaLiteChart"], [data-testid="stMetricChart"]');
    for (const chart of charts) if (!chart.querySelector('.marks')) return false;
    for (const table of document.querySelectorAll('[data-testid="stDataFrame"]'))
        if (!table.querySelector('canvas')) return false;
    window.__benchMarks.rendered = performance.now();
    return true;
}"""
# What is on the page once rendered: compared again a moment later, to be sure the measure
# did not stop while content was still arriving.
CONTENT_JS = """() => ({
    charts: document.querySelectorAll(
        '[data-testid="stVegaLiteChart"] .marks, [data-testid="stMetricChart"] .marks').length,
    tables: document.querySelectorAll('[data-testid="stDataFrame"]').length,
    elements: document.querySelectorAll('[data-testid="stElementContainer"]').length,
    errors: document.querySelectorAll('[data-testid="stException"]').length,
})"""
SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class Visit:
    """One page view, in seconds from navigation: `seconds` in all, split into the app's
    start (loading the page and its scripts, opening the session), the script's run on the
    server, and the drawing of what it sent after it finished; and the CPU the server used,
    which, unlike the times, other work on the machine hardly changes."""

    seconds: float
    start: float
    script: float
    drawing: float
    server_cpu: float

    def split(self) -> str:
        return f"{self.start:.2f} + {self.script:.2f} + {self.drawing:.2f}"


@dataclass(frozen=True)
class PageTiming:
    path: str
    title: str
    cold: Visit | None  # None: it did not render (see error)
    warm: tuple[Visit, ...]
    charts: int
    tables: int
    error: str | None = None

    @property
    def warm_median(self) -> Visit | None:
        """The warm visit of median time (the upper one of an even number)."""
        ranked = sorted(self.warm, key=lambda v: v.seconds)
        return ranked[len(ranked) // 2] if ranked else None

    @property
    def slowest(self) -> float | None:
        if self.error or self.cold is None or self.warm_median is None:
            return None
        return max(self.cold.seconds, self.warm_median.seconds)

    @property
    def under_target(self) -> bool:
        return self.slowest is not None and self.slowest < TARGET_SECONDS


@dataclass(frozen=True)
class DashboardBench:
    data_dir: Path
    customers: int | None
    orders: int | None
    repeats: int
    pages: tuple[PageTiming, ...]
    load_average: tuple[float, float]  # 1-minute load before and after: a busy machine is slow
    cpus: int

    @property
    def met(self) -> bool:
        return all(p.under_target for p in self.pages)


def run_dashboard_bench(data_dir: Path, repeats: int = 3) -> DashboardBench:
    """Time every page: cold on a freshly started server, then `repeats` warm visits."""
    from playwright.sync_api import sync_playwright

    data_dir = Path(data_dir).resolve()
    snapshot = data_dir / "reporting.duckdb"
    if not snapshot.exists():
        raise FileNotFoundError(f"no snapshot at {snapshot}: publish one first")
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: install it with scripts/ensure-chromium")
    customers, orders = _sizes(snapshot)
    load_before = os.getloadavg()[0]
    timings = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            for path, title in PAGES.items():
                # A new server per page: the cold figure is the page's own first visit, with
                # Streamlit's caches (queries, connection) and Python's imports all empty.
                with _server(data_dir) as (url, server):
                    timings.append(_time_page(browser, url, server, path, title, repeats))
        finally:
            browser.close()
    load = (load_before, os.getloadavg()[0])
    return DashboardBench(
        data_dir, customers, orders, repeats, tuple(timings), load, os.cpu_count() or 1
    )


def _time_page(
    browser, url: str, server: psutil.Process, path: str, title: str, repeats: int
) -> PageTiming:
    # Cold in a new browser context too (no cached scripts): a first visit ever.
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(MARKS_JS)
    cold, warm, content = None, [], {"charts": 0, "tables": 0}
    try:
        cold, content = _visit(context.new_page(), url, server, path, title)
        # Warm: reloads in the same browser, as a reader coming back to the page.
        tab = context.new_page()
        for _ in range(repeats):
            visit, content = _visit(tab, url, server, path, title)
            warm.append(visit)
    except RenderError as exc:
        return PageTiming(path, title, cold, tuple(warm), 0, 0, str(exc))
    finally:
        context.close()
    return PageTiming(path, title, cold, tuple(warm), content["charts"], content["tables"])


class RenderError(Exception):
    """The page showed an error, did not render in time, or changed after it rendered."""


def _visit(tab, url: str, server: psutil.Process, path: str, title: str) -> tuple[Visit, dict]:
    """Time one navigation until the page is rendered; what is on it."""
    from playwright.sync_api import Error as PlaywrightError

    cpu = sum(server.cpu_times()[:2])  # user + system, every thread of the server
    started = time.perf_counter()
    try:
        tab.goto(f"{url}/{path}", wait_until="commit", timeout=TIMEOUT_SECONDS * 1000)
        # Polled at each animation frame, so the end is as close as the browser can tell.
        tab.wait_for_function(RENDERED_JS, arg=title, polling="raf", timeout=TIMEOUT_SECONDS * 1000)
    except PlaywrightError as exc:
        raise RenderError(f"/{path} did not render: {str(exc).splitlines()[0]}") from exc
    seconds = time.perf_counter() - started
    cpu = sum(server.cpu_times()[:2]) - cpu
    marks = tab.evaluate("() => window.__benchMarks")
    content = tab.evaluate(CONTENT_JS)
    time.sleep(SETTLE_SECONDS)
    later = tab.evaluate(CONTENT_JS)
    if content["errors"] or later["errors"]:
        raise RenderError(f"/{path} shows an error: {tab.inner_text('body')[:500]}")
    if later != content:
        raise RenderError(f"/{path} was still changing after it looked rendered: {later}")
    # A run too quick to be seen running counts as no time on the server.
    finished = marks.get("finished", marks["rendered"])
    script = (finished - marks.get("started", finished)) / 1000
    drawing = (marks["rendered"] - finished) / 1000
    return Visit(seconds, seconds - script - drawing, script, drawing, cpu), content


@contextmanager
def _server(data_dir: Path) -> Iterator[tuple[str, psutil.Process]]:
    """`streamlit run` as `make dashboard` runs it; its URL and process while it serves."""
    port = _free_port()
    env = os.environ | {"POSTPURCHASE_DATA_DIR": str(data_dir)}
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            streamlit_argv(port),
            env=env,
            cwd=APP.parents[1],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(process, url, log)
            yield url, psutil.Process(process.pid)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(process: subprocess.Popen, url: str, log) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            log.seek(0)
            raise RuntimeError(f"streamlit did not start within 60 s:\n{log.read()}")
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sizes(snapshot: Path) -> tuple[int | None, int | None]:
    """Customers and orders in the snapshot, to say which warehouse the figures are for."""
    counts = []
    with duckdb.connect(str(snapshot), read_only=True) as con:
        for table in ("marts.customer_segments", "marts.order_attributions"):
            try:
                counts.append(con.execute(f"select count(*) from {table}").fetchone()[0])
            except duckdb.CatalogException:
                counts.append(None)
    return counts[0], counts[1]


def _drawn(p: PageTiming) -> str:
    if p.error:
        return "–"
    return ", ".join(
        f"{n} {what}{'' if n == 1 else 's'}"
        for n, what in ((p.charts, "chart"), (p.tables, "table"))
    )


def section(result: DashboardBench) -> str:
    size = ", ".join(
        f"{n:,} {what}"
        for n, what in ((result.customers, "customers"), (result.orders, "orders"))
        if n is not None
    )
    lines = [
        "### Dashboard page render time",
        "",
        "Each page opened in headless Chromium (Playwright) on `streamlit run` as `make "
        f"dashboard` starts it, over `{result.data_dir / 'reporting.duckdb'}`"
        + (f" ({size})" if size else "")
        + ", timed from navigation until the heading is shown, the script has finished and "
        "every chart and table is drawn; cold is the first visit on a freshly started server "
        f"(empty caches, new browser profile), warm the median of {result.repeats} reloads "
        "after it; each time is split into app start (page, scripts, session) + script run "
        "(server) + drawing after it, and the server's CPU time (all threads) is given beside.",
        "",
        f"| page | cold (s) | cold split (s) | cold server CPU (s) | warm median (s) "
        f"| warm split (s) | warm server CPU (s) | warm runs (s) | drawn | under "
        f"{TARGET_SECONDS:g} s |",
        "|---|---:|---|---:|---:|---|---:|---|---|---|",
    ]
    for p in result.pages:
        cold, warm = p.cold, p.warm_median
        if p.error:
            verdict = f"no: {p.error}"
        elif p.under_target:
            verdict = "yes"
        else:
            slow = [n for n, v in (("cold", cold), ("warm", warm)) if v.seconds >= TARGET_SECONDS]
            verdict = f"no ({' and '.join(slow)})"
        runs = ", ".join(f"{v.seconds:.2f}" for v in p.warm) or "–"
        cells = [
            f"{v.seconds:.2f} | {v.split()} | {v.server_cpu:.2f}" if v else "– | – | –"
            for v in (cold, warm)
        ]
        lines.append(
            f"| {p.title} (`/{p.path}`) | {cells[0]} | {cells[1]} | {runs} "
            f"| {_drawn(p)} | {verdict} |"
        )
    lines.append("")
    timed = [p for p in result.pages if p.slowest is not None]
    failed = [p.title for p in result.pages if p.slowest is None]
    if result.met:
        worst = max(timed, key=lambda p: p.slowest)
        lines.append(
            f"Target met: every page under {TARGET_SECONDS:g} s, cold and warm; the slowest, "
            f"{worst.title} at {worst.slowest:.2f} s, has {TARGET_SECONDS - worst.slowest:.2f} s "
            "to spare."
        )
    else:
        over = sorted((p for p in timed if not p.under_target), key=lambda p: -p.slowest)
        misses = [f"{p.title} by {p.slowest - TARGET_SECONDS:.2f} s" for p in over]
        warm_ok = all(p.warm_median.seconds < TARGET_SECONDS for p in timed)
        lines.append(
            f"Target MISSED: {len(over) + len(failed)} of {len(result.pages)} pages not under "
            f"{TARGET_SECONDS:g} s"
            + (f"; over it (slowest of cold and warm): {', '.join(misses)}" if misses else "")
            + (f"; did not render: {', '.join(failed)}" if failed else "")
            + ("; every warm visit is under it, only first visits miss." if warm_ok else ".")
        )
    before, after = result.load_average
    lines.append(
        f"Machine: {result.cpus} CPUs, 1-minute load average {before:.1f} before and "
        f"{after:.1f} after the run (above {result.cpus} means other work shared the CPUs, "
        "and the times are inflated)."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    folder = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(os.environ.get("POSTPURCHASE_DATA_DIR", "data"))
    )
    print(section(run_dashboard_bench(folder)))
