"""The daily pipeline at one scale: a full rebuild of a year, then one more day.

Each phase runs as its own `postpurchase` process, as a data engineer would run it, and is
measured from the outside: wall time, and the peak of the memory the process and its children
(dbt) hold together, sampled ten times a second. Generating the shop is not counted.

    .venv/bin/python -m pipelines.bench.pipeline /tmp/bench-s 10000
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psutil

from pipelines.project import DBT_DIR
from pipelines.simulator.world import simulate

DAYS = 366  # a year of history, then the day the daily run adds
START = dt.date(2025, 11, 1)
SEED = 7
# "2025-11-30 ingest of 30 days done in 12.3 s": the CLI's line per run when not a terminal.
RUN_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2}) (.+) done in ([\d.]+) s$")


@dataclass
class Phase:
    name: str
    seconds: float
    peak_bytes: int
    output: str = ""
    run_seconds: list[tuple[str, float]] = field(default_factory=list)  # (what, seconds)


@dataclass
class DbtNode:
    name: str
    seconds: float
    materialized: str


@dataclass
class ScaleBench:
    scale: str
    customers: int
    generate_seconds: float
    landing_rows: dict[str, int]
    rebuild: Phase
    daily: Phase
    ingest_rows: int  # rows read by the rebuild's ingest, rejects included
    ingest_seconds: float
    daily_ingest_rows: int
    rebuild_models: list[DbtNode]
    daily_models: list[DbtNode]
    daily_dbt_seconds: float
    sent: dict[str, int]  # send decisions by action
    warehouse_bytes: int


def daily_as_of() -> dt.datetime:
    """The logical time of the daily run's build and send: the end of the day it adds."""
    last = START + dt.timedelta(days=DAYS - 1)
    return dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def scale_env(data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "POSTPURCHASE_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(data_dir / "dagster_home"),
        "SMS_PROVIDER": "dry-run",
    }
    env.pop("COLUMNS", None)
    return env


def measure(name: str, argv: list[str], env: dict[str, str], log: Path) -> Phase:
    """Run a command to its end; its wall time and the peak memory of its process tree."""
    _say(f"{name}: {' '.join(argv[1:])}")
    started = time.monotonic()
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=out, text=True)
        peak = [0]
        sampler = threading.Thread(target=_sample, args=(process.pid, peak), daemon=True)
        sampler.start()
        output = process.stdout.read()
        code = process.wait()
        seconds = time.monotonic() - started
        sampler.join()
        out.write(output)
    if code != 0:
        raise RuntimeError(f"{name} failed (exit {code}); see {log}")
    runs = [(m[2], float(m[3])) for m in map(RUN_LINE.match, output.splitlines()) if m]
    _say(f"{name}: {seconds:.1f} s, peak {peak[0] / 2**30:.2f} GiB")
    return Phase(name, seconds, peak[0], output, runs)


def _sample(pid: int, peak: list[int]) -> None:
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while root.is_running() and root.status() != psutil.STATUS_ZOMBIE:
        total = 0
        try:
            for process in [root, *root.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
        except psutil.NoSuchProcess:
            break
        peak[0] = max(peak[0], total)
        time.sleep(0.1)


def dbt_nodes(since: float) -> list[DbtNode]:
    """The models of the newest dbt build after ``since``, slowest first."""
    results = [
        p for p in (DBT_DIR / "target").rglob("run_results.json") if p.stat().st_mtime >= since
    ]
    if not results:
        return []
    newest = max(results, key=lambda p: p.stat().st_mtime)
    data = json.loads(newest.read_text())
    manifest = json.loads((newest.parent / "manifest.json").read_text())["nodes"]
    nodes = []
    for r in data["results"]:
        if not r["unique_id"].startswith("model."):
            continue
        node = manifest.get(r["unique_id"], {})
        materialized = node.get("config", {}).get("materialized", "?")
        nodes.append(DbtNode(r["unique_id"].split(".")[-1], r["execution_time"], materialized))
    return sorted(nodes, key=lambda n: -n.seconds)


def dbt_seconds(since: float) -> float:
    results = [
        p for p in (DBT_DIR / "target").rglob("run_results.json") if p.stat().st_mtime >= since
    ]
    if not results:
        return 0.0
    newest = max(results, key=lambda p: p.stat().st_mtime)
    return float(json.loads(newest.read_text())["elapsed_time"])


def _ingested_rows(warehouse: Path, days: list[dt.date] | None = None) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        where = "where partition_date between ? and ?" if days else ""
        params = [days[0], days[-1]] if days else []
        return int(
            con.execute(
                f"select coalesce(sum(rows_in), 0) from ops.ingest_files {where}", params
            ).fetchone()[0]
        )


def _sent(warehouse: Path, day: dt.date) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "select action, count(*) from ops.send_decisions where logical_time >= ? group by 1",
            [dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)],
        ).fetchall()
    return {action: n for action, n in rows}


def run_scale(scale: str, customers: int, work: Path, postpurchase: Path) -> ScaleBench:
    data_dir = work / scale
    log = work / f"{scale}.log"
    env = scale_env(data_dir)
    last = START + dt.timedelta(days=DAYS - 1)

    _say(f"{scale}: simulating {customers:,} customers over {DAYS} days (not counted)")
    started = time.monotonic()
    world = simulate(
        data_dir / "landing",
        days=DAYS,
        customers=customers,
        seed=SEED,
        start=START,
        truth_dir=data_dir / "simulator",
    )
    generate_seconds = time.monotonic() - started

    # A full rebuild starts from landing files alone: no warehouse, no outbox, no snapshot.
    for stale in ("warehouse.duckdb", "warehouse.duckdb.wal", "reporting.duckdb"):
        (data_dir / stale).unlink(missing_ok=True)
    since = time.time()
    rebuild = measure(
        f"{scale} full rebuild",
        [
            str(postpurchase),
            "run",
            "--from",
            str(START),
            "--to",
            str(last - dt.timedelta(1)),
            "--no-send",
        ],
        env,
        log,
    )
    rebuild_models = dbt_nodes(since)
    # Every run but the last is a catch-up ingest; the last ingests a day and builds.
    ingest_seconds = sum(s for what, s in rebuild.run_seconds if what.startswith("ingest of"))
    warehouse = data_dir / "warehouse.duckdb"
    ingest_rows = _ingested_rows(warehouse)

    since = time.time()
    daily = measure(
        f"{scale} daily run",
        [str(postpurchase), "run", "--from", str(last), "--to", str(last)],
        env,
        log,
    )
    return ScaleBench(
        scale=scale,
        customers=customers,
        generate_seconds=generate_seconds,
        landing_rows=world.rows,
        rebuild=rebuild,
        daily=daily,
        ingest_rows=ingest_rows,
        ingest_seconds=ingest_seconds,
        daily_ingest_rows=_ingested_rows(warehouse, [last]),
        rebuild_models=rebuild_models,
        daily_models=dbt_nodes(since),
        daily_dbt_seconds=dbt_seconds(since),
        sent=_sent(warehouse, last),
        warehouse_bytes=warehouse.stat().st_size,
    )


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def section(b: ScaleBench) -> str:
    orders = b.landing_rows.get("orders", 0)
    rows_per_s = b.ingest_rows / b.ingest_seconds if b.ingest_seconds else float("nan")
    lines = [
        f"### {b.scale}: {b.customers:,} customers, {orders:,} order rows over a year",
        "",
        "| | wall time | peak memory |",
        "|---|---:|---:|",
        f"| full rebuild (ingest {DAYS - 1} days, `dbt build`, analysis, snapshot) "
        f"| {b.rebuild.seconds:.1f} s | {_gib(b.rebuild.peak_bytes)} |",
        f"| one more daily run (ingest, `dbt build`, analysis, snapshot, dry-run send) "
        f"| {b.daily.seconds:.1f} s | {_gib(b.daily.peak_bytes)} |",
        "",
        f"- Ingest during the rebuild: {b.ingest_rows:,} rows in {b.ingest_seconds:.1f} s, "
        f"**{rows_per_s:,.0f} rows/s** (read, typed, validated, upserted; rejects included).",
        f"- The daily run ingested {b.daily_ingest_rows:,} rows; its `dbt build` took "
        f"{b.daily_dbt_seconds:.1f} s of its {b.daily.seconds:.1f} s.",
        "- The daily send (dry-run provider, unpaced: no carrier behind it): "
        + (", ".join(f"{n:,} {a}" for a, n in sorted(b.sent.items())) or "nothing due")
        + ".",
        f"- Warehouse file: {_gib(b.warehouse_bytes)}. Generating the shop took "
        f"{b.generate_seconds:.0f} s (not counted).",
        "",
        "Slowest dbt models (full rebuild / daily run, seconds):",
        "",
        "| model | materialized | rebuild | daily |",
        "|---|---|---:|---:|",
    ]
    daily = {n.name: n.seconds for n in b.daily_models}
    for node in b.rebuild_models[:8]:
        lines.append(
            f"| {node.name} | {node.materialized} | {node.seconds:.1f} "
            f"| {daily.get(node.name, float('nan')):.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    work = Path(sys.argv[1])
    work.mkdir(parents=True, exist_ok=True)
    result = run_scale("S", int(sys.argv[2]), work, Path(sys.executable).parent / "postpurchase")
    print(section(result))
