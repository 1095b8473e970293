"""Callback service under load: `postpurchase serve-callbacks` taking 10,000 signed callbacks.

The service runs in its own process on 127.0.0.1 with its own data folder, auth token and
CALLBACK_PUBLIC_URL, as an operator starts it. A keep-alive client in this process plays
Plivo: mostly delivery receipts, some inbound replies (free text, STOP, HELP, survey scores)
and some short-link clicks, all in flight at once up to a fixed concurrency. Afterwards the
service is stopped with SIGTERM and its event log is read back with the loader's own reader:
every acknowledged callback must be there, once.

    .venv/bin/python -m pipelines.bench.callbacks_load /tmp/bench-callbacks
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
import psutil

from pipelines.callbacks.eventlog import (
    open_segments,
    read_segment,
    seal_abandoned,
    sealed_segments,
)
from pipelines.callbacks.journal import LINKS_FILE, SURVEYS_FILE, append_lines
from pipelines.callbacks.signatures import sign_v3_headers

COUNT = 10_000
CONCURRENCY = 64
TARGET_PER_SECOND = 2_000
TARGET_P99_MS = 50.0
TOKEN = "bench-callback-token-0123456789"
PUBLIC_URL = "https://hooks.bench.example"  # what Plivo would call; only signed, never dialled
OURS = "18335550100"
FORM = "application/x-www-form-urlencoded"
# Shares of the callbacks: Plivo sends receipts for every message, replies and clicks are rarer.
MIX = {"status": 0.80, "inbound": 0.10, "click": 0.10}
INBOUND_TEXTS = (  # what the inbound share says, with its weight
    ("Thanks, got it!", 6),
    ("9", 2),  # a survey score: credits points in the service's SQLite store
    ("STOP", 1),  # appends (and fsyncs) an opt-out the sender reads
    ("HELP", 1),
)


@dataclass(frozen=True)
class Call:
    """One prepared callback: signed before the clock starts, as Plivo's side would be."""

    kind: str  # status | inbound | click
    event_id: str  # how the event log names it (see `_logged_id`)
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    expected: int  # the status that means "accepted": 200, or 302 for a click


@dataclass(frozen=True)
class CallbacksBench:
    total: int
    by_kind: dict[str, int]
    accepted: int
    other_statuses: dict[str, int]  # status (or transport error) -> count
    concurrency: int
    wall_seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    service_cpu_ms: float  # the service's CPU per callback (user + system)
    client_cpu_ms: float  # this process's, the load generator's
    logged_distinct: int  # accepted callbacks found in the event log
    logged_records: int  # records in the log, repeats included
    missing: int  # accepted but not in the log
    open_segments_left: int  # segments a clean stop should have sealed
    server_exit_code: int | None

    @property
    def per_second(self) -> float:
        return self.total / self.wall_seconds

    @property
    def durable(self) -> bool:
        return self.missing == 0 and self.logged_distinct == self.accepted


def _say(message: str) -> None:
    print(f"[bench callbacks] {message}", file=sys.stderr, flush=True)


def user_env(work_dir: Path) -> dict[str, str]:
    """This environment as an installed CLI sees it: with its compiled bytecode cached
    (our sandbox sets PYTHONDONTWRITEBYTECODE); the cache goes under `work_dir`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(work_dir).resolve() / "pycache")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _signed_post(kind: str, event_id: str, path: str, form: dict[str, str]) -> Call:
    headers = sign_v3_headers(PUBLIC_URL + path, form, TOKEN, f"{random.getrandbits(64):x}")
    headers["Content-Type"] = FORM
    return Call(kind, event_id, "POST", path, urlencode(form).encode(), headers, 200)


def prepare(events_dir: Path, count: int, seed: int = 7) -> list[Call]:
    """The callbacks, shuffled; the links and surveys they refer to go to the sender's journal
    first, as the sender writes them before any text leaves."""
    rng = random.Random(seed)
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    counts = Counter(kinds)
    now = dt.datetime.now(dt.UTC)
    calls: list[Call] = []

    # Receipts come in pairs per message (sent, then delivered or undelivered).
    for i in range(counts["status"]):
        uuid = f"bench-msg-{i // 2:06d}"
        final = "delivered" if (i // 2) % 20 else "undelivered"
        status, sequence = ("sent", 2) if i % 2 == 0 else (final, 3)
        form = {
            "MessageUUID": uuid,
            "Status": status,
            "Sequence": str(sequence),
            "To": f"1212664{i // 2 % 10_000:04d}",
            "From": OURS,
            "Type": "sms",
            "Units": "1",
            "TotalRate": "0.00500",
            "TotalAmount": "0.00500",
            "MCC": "310",
            "MNC": "410",
            "ErrorCode": "000" if status != "undelivered" else "30",
            "MessageTime": f"{now:%Y-%m-%d %H:%M:%S} +0000",
            "SentTime": f"{now:%Y-%m-%d %H:%M:%S} +0000",
            "DeliveryReportTime": f"{now:%Y-%m-%d %H:%M:%S} +0000",
        }
        calls.append(_signed_post("status", f"{uuid}/{status}", "/plivo/status", form))

    texts = [t for t, _ in INBOUND_TEXTS]
    weights = [w for _, w in INBOUND_TEXTS]
    surveys = []
    for i in range(counts["inbound"]):
        phone = f"1212665{i:04d}"
        text = rng.choices(texts, weights=weights)[0]
        if text == "9":
            surveys.append(
                {
                    "idempotency_key": f"feedback_survey:bench-{i}",
                    "customer_id": f"c{i}",
                    "phone_e164": f"+{phone}",
                    "sent_at": (now - dt.timedelta(days=1)).isoformat(),
                    "points": 50,
                }
            )
        uuid = f"bench-in-{i:06d}"
        form = {
            "From": phone,
            "To": OURS,
            "Text": text,
            "Type": "sms",
            "MessageUUID": uuid,
            "Units": "1",
            "TotalRate": "0.00000",
            "TotalAmount": "0.00000",
        }
        calls.append(_signed_post("inbound", uuid, "/plivo/inbound", form))

    links = []
    for i in range(counts["click"]):
        code = f"bench{i:06d}"
        links.append(
            {
                "code": code,
                "target_url": f"https://shop.example.com/reorder/p{i % 50}",
                "idempotency_key": f"replenishment_reminder:bench-{i}",
                "customer_id": f"c{i}",
            }
        )
        headers = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"}
        calls.append(Call("click", code, "GET", f"/c/{code}", b"", headers, 302))

    append_lines(events_dir / LINKS_FILE, links)
    append_lines(events_dir / SURVEYS_FILE, surveys)
    rng.shuffle(calls)
    return calls


def _wire(call: Call, host: str) -> bytes:
    """The request as bytes on the wire, built before the clock starts."""
    head = [f"{call.method} {call.path} HTTP/1.1", f"Host: {host}"]
    head += [f"{name}: {value}" for name, value in call.headers.items()]
    if call.method == "POST":
        head.append(f"Content-Length: {len(call.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + call.body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
    """One request and its whole response on a kept-alive connection; returns the status."""
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def _blast(port: int, calls: list[Call], concurrency: int) -> tuple[list, float]:
    """Send every call with `concurrency` keep-alive connections, each with one request in
    flight. Returns (status or error name, latency in seconds) per call, and the wall time.

    A bare HTTP/1.1 client rather than httpx: one httpx AsyncClient pooling 64 connections
    spent about 10 ms of CPU per request here, several times what the service spends, so the
    figures would have measured the client.
    """
    host = f"127.0.0.1:{port}"
    wire = [_wire(call, host) for call in calls]
    results: list = [None] * len(calls)
    queue = iter(range(len(calls)))  # shared: each connection takes the next call

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in queue:
                started = time.perf_counter()
                try:
                    outcome: int | str = await _exchange(reader, writer, wire[i])
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    outcome = type(exc).__name__
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                results[i] = (outcome, time.perf_counter() - started)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return results, time.perf_counter() - started


def _logged_id(record: dict) -> str | None:
    row = record["row"]
    entity = record["entity"]
    if entity == "sms_delivery_receipts":
        return f"{row['message_uuid']}/{row['status']}"
    if entity == "inbound_messages":
        return row["message_uuid"]
    if entity == "link_clicks":
        return row["short_code"]
    return None


def read_log(events_dir: Path) -> tuple[list[str], int]:
    """Event ids in the log, read as `loading.land_sealed` reads it; and open segments left."""
    left_open = len(open_segments(events_dir))
    seal_abandoned(events_dir)  # the loader's first step; a clean stop leaves nothing to seal
    ids = []
    for segment in sealed_segments(events_dir):
        records, _ = read_segment(segment)
        ids += [i for i in map(_logged_id, records) if i is not None]
    return ids, left_open


def _start(data_dir: Path, port: int) -> subprocess.Popen:
    env = {
        **user_env(data_dir.parent),
        "POSTPURCHASE_DATA_DIR": str(data_dir),
        "PLIVO_AUTH_TOKEN": TOKEN,
        "CALLBACK_PUBLIC_URL": PUBLIC_URL,
    }
    env.pop("CALLBACK_INSECURE_SKIP_SIGNATURES", None)
    command = [
        str(Path(sys.executable).parent / "postpurchase"),
        "serve-callbacks",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log = open(data_dir / "service.log", "wb")  # noqa: SIM115 - the child holds it open
    try:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def _wait_healthy(base: str, proc: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the callback service did not start:\n{log_path.read_text()}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> int | None:
    """SIGTERM, as systemd or Ctrl-C would: uvicorn drains, the log seals its segment."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def run_callbacks_bench(
    work_dir: Path, count: int = COUNT, concurrency: int = CONCURRENCY
) -> CallbacksBench:
    work_dir = Path(work_dir)
    data_dir = work_dir / "data"
    events_dir = data_dir / "events"
    events_dir.mkdir(parents=True, exist_ok=True)
    if any(events_dir.iterdir()):
        raise RuntimeError(f"{events_dir} is not empty: give the bench a fresh work_dir")
    calls = prepare(events_dir, count)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(data_dir, port)
    try:
        _wait_healthy(base, proc, data_dir / "service.log")
        _say(f"service up on {base}; sending {count:,} callbacks, {concurrency} in flight")
        service = psutil.Process(proc.pid)
        service_cpu, client_cpu = sum(service.cpu_times()[:2]), time.process_time()
        results, wall = asyncio.run(_blast(port, calls, concurrency))
        service_cpu = sum(service.cpu_times()[:2]) - service_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        exit_code = _stop(proc)
    _say(f"done in {wall:.1f} s; service stopped with exit code {exit_code}")

    outcomes = [(call, outcome) for call, (outcome, _) in zip(calls, results, strict=True)]
    accepted = {call.event_id for call, outcome in outcomes if outcome == call.expected}
    others = Counter(str(outcome) for call, outcome in outcomes if outcome != call.expected)
    latencies_ms = np.array([latency for _, latency in results]) * 1000
    logged, left_open = read_log(events_dir)
    logged_set = set(logged)
    return CallbacksBench(
        total=len(calls),
        by_kind=dict(Counter(c.kind for c in calls)),
        accepted=len(accepted),
        other_statuses=dict(others),
        concurrency=concurrency,
        wall_seconds=wall,
        p50_ms=float(np.percentile(latencies_ms, 50)),
        p95_ms=float(np.percentile(latencies_ms, 95)),
        p99_ms=float(np.percentile(latencies_ms, 99)),
        max_ms=float(latencies_ms.max()),
        service_cpu_ms=service_cpu * 1000 / len(calls),
        client_cpu_ms=client_cpu * 1000 / len(calls),
        logged_distinct=len(logged_set & accepted),
        logged_records=len(logged),
        missing=len(accepted - logged_set),
        open_segments_left=left_open,
        server_exit_code=exit_code,
    )


def section(result: CallbacksBench) -> str:
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(result.by_kind.items()))
    others = ", ".join(f"{n:,} x {s}" for s, n in sorted(result.other_statuses.items())) or "none"
    rate_ok = result.per_second >= TARGET_PER_SECOND
    p99_ok = result.p99_ms < TARGET_P99_MS
    # uvicorn re-raises the SIGTERM it handled, so a graceful stop exits with -15.
    clean = result.server_exit_code in (0, -signal.SIGTERM) and not result.open_segments_left
    lines = [
        "### Callback service under load",
        "",
        "`postpurchase serve-callbacks` (uvicorn, one process) on 127.0.0.1 took "
        f"{result.total:,} Plivo-signed (V3) callbacks ({kinds}) from a keep-alive asyncio "
        f"HTTP/1.1 client in the bench process with {result.concurrency} connections, one "
        "request in flight on each; client and service share the machine's 2 cores, latency "
        "is measured at the client, CPU per callback is each process's own. Afterwards the "
        "service was stopped with SIGTERM and its event log read back with the loader's "
        "reader (`eventlog.read_segment` over the sealed segments).",
        "",
        "| callbacks | accepted (200 / 302) | other statuses | wall (s) | throughput (/s) "
        "| p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | service CPU (ms/callback) "
        "| client CPU (ms/callback) | in the event log |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {result.total:,} | {result.accepted:,} | {others} | {result.wall_seconds:.2f} "
        f"| {result.per_second:,.0f} | {result.p50_ms:.1f} | {result.p95_ms:.1f} "
        f"| {result.p99_ms:.1f} | {result.max_ms:.1f} | {result.service_cpu_ms:.2f} "
        f"| {result.client_cpu_ms:.2f} | {result.logged_distinct:,} of {result.accepted:,} |",
        "",
        f"- Throughput >= {TARGET_PER_SECOND:,}/s: {'met' if rate_ok else 'MISSED'} "
        f"({result.per_second:,.0f}/s, {result.per_second / TARGET_PER_SECOND - 1:+.0%}).",
        f"- p99 < {TARGET_P99_MS:g} ms: {'met' if p99_ok else 'MISSED'} "
        f"({result.p99_ms:.1f} ms, {result.p99_ms - TARGET_P99_MS:+.1f} ms).",
        "- Every acknowledged callback in the durable log: "
        f"{'met' if result.durable else 'MISSED'} "
        f"({result.logged_distinct:,} of {result.accepted:,}, {result.missing:,} missing, "
        f"{result.logged_records - result.logged_distinct:,} extra or repeated records).",
        f"- Clean stop: {'met' if clean else 'MISSED'} (exit status {result.server_exit_code}, "
        f"{result.open_segments_left} segments left unsealed).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench-work/callbacks")
    print(section(run_callbacks_bench(target)))
