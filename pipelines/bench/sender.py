"""Sender throughput: `postpurchase send --provider plivo` against the Plivo test server.

For each configured rate a DuckDB warehouse is filled with due transactional messages and the
real command runs in its own process, as an operator would run it: it reads the queue,
decides, renders, writes the outbox and sends through the plivo SDK, the token bucket and its
worker threads. The Plivo-compatible test server (in this process, 127.0.0.1) answers every
request after 20 ms and records when each one arrived, which is what Plivo's limit counts.

    .venv/bin/python -m pipelines.bench.sender /tmp/bench-sender
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipelines.flows import FLOWS
from pipelines.outbox import ensure_outbox
from pipelines.settings import MAX_RATE_PER_SECOND, SenderSettings
from pipelines.testing.plivo_server import PlivoTestServer
from pipelines.warehouse import Warehouse

LATENCY_MS = 20.0
TARGET_SHARE = 0.98  # of the configured rate, while sending (the target)
RUN_SECONDS = 30.0  # each rate gets about this many seconds of messages
DEFAULT_RATE = SenderSettings().rate_per_second  # 5/s, Plivo's default account limit
# The highest rate the settings accept (pipelines/settings.py): 10x the default, and what
# Plivo's API allows (about 300 requests per 5 s, notes/plivo.md).
HIGH_RATE = MAX_RATE_PER_SECOND
AT = dt.datetime(2026, 8, 3, 15, 0, tzinfo=dt.UTC)  # 11:00 in New York: no quiet hours
SRC = "+15550001111"
# Transactional flows only: no marketing consent, caps or quiet hours hold anything back, so
# every queued message is sent, and each text is personalized (one API request per message).
BENCH_FLOWS = ("order_confirmation", "shipping_update", "out_for_delivery", "delivered")

# The three tables the sender reads, shaped as the dbt models build them.
TABLES = {
    "marts.message_candidates": """
        idempotency_key varchar, flow varchar, message_class varchar, customer_id varchar,
        order_id varchar, product_id varchar, phone_e164 varchar, has_valid_phone boolean,
        experiment_key varchar, variant_key varchar, template varchar,
        triggered_at timestamptz, earliest_send_at timestamptz, expires_at timestamptz,
        priority integer, is_held_out boolean, first_name varchar, order_number varchar,
        items_summary varchar, tracking_url varchar, product_title varchar, run_out_date date,
        setup_url varchar""",
    "marts.consent_state": """
        customer_id varchar, phone_e164 varchar, can_receive_transactional boolean,
        can_receive_marketing boolean, last_changed_at timestamptz, last_change_reason varchar""",
    "intermediate.int_customers_localized": """
        customer_id varchar, timezones varchar, state varchar, quiet_start_hour integer,
        quiet_end_hour integer, state_marketing_max_per_24h integer""",
}


@dataclass(frozen=True)
class RateRun:
    configured_rate: float
    queued: int
    sent: int  # outbox rows in state `sent` afterwards
    arrivals: int  # messages the server recorded
    wall_seconds: float  # the whole command, from exec to exit
    first_message_seconds: float  # from exec to the first arrival at the server
    send_seconds: float  # first to last arrival at the server
    busiest_second: int  # most arrivals within any one-second window
    duplicates: int  # arrivals to a number that had one already
    cpu_seconds: float  # the command's own user + system CPU
    cpu_per_message: float  # beyond what the same command costs on an empty queue

    @property
    def achieved_rate(self) -> float:
        """Messages per second while sending: n arrivals span n - 1 intervals."""
        return (self.arrivals - 1) / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def end_to_end_rate(self) -> float:
        return self.sent / self.wall_seconds

    @property
    def share_of_configured(self) -> float:
        return self.achieved_rate / self.configured_rate


@dataclass(frozen=True)
class SenderBench:
    latency_ms: float
    empty_wall_seconds: float  # the command on an empty queue: start-up and reads
    empty_cpu_seconds: float
    runs: list[RateRun]


def _say(message: str) -> None:
    print(f"[bench sender] {message}", file=sys.stderr, flush=True)


def build_queue(data_dir: Path, n: int) -> None:
    """A warehouse with `n` due transactional messages to distinct, consenting customers."""
    rows = []
    for i in range(n):
        flow = BENCH_FLOWS[i % len(BENCH_FLOWS)]
        rows.append(
            {
                "idempotency_key": f"{flow}:bench-{i}",
                "flow": flow,
                "message_class": FLOWS[flow].message_class,
                "customer_id": f"c{i}",
                "order_id": f"o{i}",
                "product_id": "p1",
                "phone_e164": f"+1212664{i:04d}",
                "has_valid_phone": True,
                "experiment_key": None,
                "variant_key": None,
                "template": "default",
                "triggered_at": AT - dt.timedelta(minutes=30),
                "earliest_send_at": AT - dt.timedelta(minutes=30),
                "expires_at": AT + dt.timedelta(days=2),
                "priority": FLOWS[flow].priority,
                "is_held_out": False,
                "first_name": "Ann",
                "order_number": str(10_000 + i),
                "items_summary": "Night Serum x1",
                "tracking_url": f"https://track.example/1Z{i:08d}",
                "product_title": "Night Serum",
                "run_out_date": dt.date(2026, 8, 20),
                "setup_url": None,
            }
        )
    candidates = pl.DataFrame(
        rows,
        schema_overrides={
            "experiment_key": pl.String,
            "variant_key": pl.String,
            "setup_url": pl.String,
        },
    )
    changed = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    consent = pl.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "phone_e164": [f"+1212664{i:04d}" for i in range(n)],
            "can_receive_transactional": [True] * n,
            "can_receive_marketing": [True] * n,
            "last_changed_at": [changed] * n,
            "last_change_reason": ["consent form"] * n,
        }
    )
    localized = pl.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "timezones": ["America/New_York"] * n,
            "state": ["NY"] * n,
            "quiet_start_hour": [8] * n,
            "quiet_end_hour": [21] * n,
            "state_marketing_max_per_24h": [None] * n,
        },
        schema_overrides={"state_marketing_max_per_24h": pl.Int32},
    )
    frames = dict(zip(TABLES, (candidates, consent, localized), strict=True))
    with Warehouse(data_dir).connect() as con:
        for table, columns in TABLES.items():
            con.execute(f"create schema if not exists {table.split('.')[0]}")
            con.execute(f"create or replace table {table} ({columns})")
            frame = frames[table]  # noqa: F841 - DuckDB reads the frame by its name
            if n:
                con.execute(f"insert into {table} by name select * from frame")
        ensure_outbox(con)


def user_env(work_dir: Path) -> dict[str, str]:
    """This environment as an installed CLI sees it: with its compiled bytecode cached.

    Our sandbox sets PYTHONDONTWRITEBYTECODE, which makes every start compile the imports
    from source (about 10 s); the cache goes under `work_dir`, not into the repo or venv.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(work_dir).resolve() / "pycache")
    return env


def _run_send(data_dir: Path, server: PlivoTestServer, rate: float) -> tuple[float, float, float]:
    """Run `postpurchase send` to completion; returns (start, wall, CPU), start on the
    server's clock (time.time()), wall and CPU in seconds."""
    env = {
        **user_env(data_dir.parent),
        "POSTPURCHASE_DATA_DIR": str(data_dir),
        "SMS_PROVIDER": "plivo",
        "PLIVO_AUTH_ID": server.auth_id,
        "PLIVO_AUTH_TOKEN": server.auth_token,
        "PLIVO_SRC": SRC,
        "PLIVO_POWERPACK_UUID": "",
        "PLIVO_BASE_URL": server.base_url,
        "SEND_RATE_PER_SECOND": f"{rate:g}",
        # Receipts would go here; the test server only passes the URL along.
        "CALLBACK_PUBLIC_URL": "http://127.0.0.1:9",
    }
    command = [str(Path(sys.executable).parent / "postpurchase"), "send", "--at", AT.isoformat()]
    log_path = data_dir / "send.log"
    with open(log_path, "wb") as log:
        epoch, started = time.time(), time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        # wait4 gives this one child's CPU time, whatever else the process has run.
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"postpurchase send failed:\n{log_path.read_text()[-3000:]}")
    return epoch, wall, usage.ru_utime + usage.ru_stime


def busiest_second(times: list[float]) -> int:
    """The most arrivals within any window [t, t + 1 s)."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def _sent(data_dir: Path) -> int:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("select count(*) from ops.outbox where state = 'sent'").fetchone()[0]


def run_sender_bench(
    work_dir: Path,
    messages: int | None = None,
    rates: tuple[float, ...] = (DEFAULT_RATE, HIGH_RATE),
) -> SenderBench:
    """Each rate sends `messages` (default: RUN_SECONDS worth at that rate)."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    with PlivoTestServer(latency_ms=LATENCY_MS) as server:
        # Start-up and reading cost the same whatever the queue holds; measuring them on an
        # empty queue separates them from the per-message cost (and warms the page cache).
        empty_dir = work_dir / "empty"
        build_queue(empty_dir, 0)
        _run_send(empty_dir, server, DEFAULT_RATE)  # fills the bytecode cache
        _, empty_wall, empty_cpu = _run_send(empty_dir, server, DEFAULT_RATE)
        _say(f"empty queue: {empty_wall:.1f} s wall, {empty_cpu:.2f} s CPU")
        runs = []
        for rate in rates:
            n = messages or round(rate * RUN_SECONDS)
            data_dir = work_dir / f"rate-{rate:g}"
            build_queue(data_dir, n)
            server.reset()
            server.set_latency(LATENCY_MS)
            _say(f"{n} messages at {rate:g}/s (about {n / rate:.0f} s)")
            epoch, wall, cpu = _run_send(data_dir, server, rate)
            recorded = server.messages
            arrivals = sorted(m.received_at for m in recorded)
            run = RateRun(
                configured_rate=rate,
                queued=n,
                sent=_sent(data_dir),
                arrivals=len(arrivals),
                wall_seconds=wall,
                first_message_seconds=arrivals[0] - epoch if arrivals else wall,
                send_seconds=arrivals[-1] - arrivals[0] if arrivals else 0.0,
                busiest_second=busiest_second(arrivals),
                duplicates=len(recorded) - len({m.dst for m in recorded}),
                cpu_seconds=cpu,
                cpu_per_message=max(cpu - empty_cpu, 0.0) / max(n, 1),
            )
            _say(
                f"  sent {run.sent} in {wall:.1f} s; {run.achieved_rate:.2f}/s while sending, "
                f"busiest second {run.busiest_second}"
            )
            runs.append(run)
    return SenderBench(LATENCY_MS, empty_wall, empty_cpu, runs)


def section(result: SenderBench) -> str:
    lines = [
        "### Sender throughput",
        "",
        "`postpurchase send --provider plivo` run as its own process over a DuckDB warehouse "
        "of due transactional messages (one personalized text, so one API request, each), "
        "through the plivo SDK, the token bucket, the worker threads and the outbox, to the "
        f"Plivo-compatible test server on 127.0.0.1 answering after {result.latency_ms:g} ms; "
        "arrivals are timed at the server; CPU is the command's own (wait4), per message "
        f"beyond the {result.empty_cpu_seconds:.2f} s CPU ({result.empty_wall_seconds:.1f} s "
        "wall) the same command takes on an empty queue.",
        "",
        "| configured rate (msg/s) | sent | wall (s) | first text after (s) | sending (s) "
        "| achieved (msg/s) | of configured | end to end (msg/s) | busiest 1-s window "
        "| CPU per message (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result.runs:
        lines.append(
            f"| {r.configured_rate:g} | {r.sent:,} / {r.queued:,} | {r.wall_seconds:.1f} "
            f"| {r.first_message_seconds:.1f} | {r.send_seconds:.1f} | {r.achieved_rate:.2f} "
            f"| {r.share_of_configured:.1%} | {r.end_to_end_rate:.2f} | {r.busiest_second} "
            f"| {r.cpu_per_message * 1000:.1f} |"
        )
    lines.append("")
    for r in result.runs:
        over = r.busiest_second - max(1, int(r.configured_rate))
        once = r.sent == r.queued == r.arrivals and r.duplicates == 0
        lines.append(
            f"- {r.configured_rate:g}/s: never more than {r.configured_rate:g} arrivals in any "
            f"one-second window: {'met' if over <= 0 else 'MISSED'} (busiest window "
            f"{r.busiest_second}, {abs(over)} {'over' if over > 0 else 'under'}); every "
            f"queued message sent exactly once: {'met' if once else 'MISSED'}; "
            f"at least {TARGET_SHARE:.0%} of the rate used while sending: "
            f"{'met' if r.share_of_configured >= TARGET_SHARE else 'MISSED'} "
            f"({r.share_of_configured:.1%}, {r.share_of_configured - TARGET_SHARE:+.1%})."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench-work/sender")
    print(section(run_sender_bench(target)))
