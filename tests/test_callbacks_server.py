"""The callback service as a real process on 127.0.0.1 (uvicorn): concurrency, SIGKILL, and a
STOP that a separate sender process honours on its next run."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import duckdb
import httpx

from pipelines.callbacks import signatures
from pipelines.callbacks.eventlog import open_segments, read_segment, sealed_segments
from pipelines.callbacks.journal import LINKS_FILE, append_lines
from pipelines.callbacks.loading import land_sealed
from pipelines.ingest import ingest_partition
from tests.test_callbacks import PUBLIC, STOP_PHRASINGS, TOKEN, inbound_form, status_form
from tests.test_sender import build, cand, person, query

FORM = {"content-type": "application/x-www-form-urlencoded"}
SERVE = "from pipelines.callbacks.cli import serve_callbacks_command as c; c()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def service(data_dir: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`postpurchase serve-callbacks` in its own process; yields its base URL."""
    port = free_port()
    environment = {
        **os.environ,
        "POSTPURCHASE_DATA_DIR": str(data_dir),
        "PLIVO_AUTH_TOKEN": TOKEN,
        "CALLBACK_PUBLIC_URL": PUBLIC,
        **env,
    }
    log_path = data_dir / "service.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text())
            time.sleep(0.1)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


def signed_post(base: str, path: str, form: dict, nonce: str = "1") -> httpx.Response:
    headers = {**FORM, **signatures.sign_v3_headers(PUBLIC + path, form, TOKEN, nonce)}
    return httpx.post(base + path, content=urlencode(form), headers=headers, timeout=30)


async def _blast(base: str, forms: list[dict]) -> list[int]:
    # Every callback on its own connection at once, as Plivo's workers would send them.
    limits = httpx.Limits(max_connections=len(forms), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def one(i: int, form: dict) -> int:
            headers = signatures.sign_v3_headers(PUBLIC + "/plivo/status", form, TOKEN, str(i))
            r = await client.post(
                "/plivo/status", content=urlencode(form), headers={**FORM, **headers}
            )
            return r.status_code

        return await asyncio.gather(*(one(i, f) for i, f in enumerate(forms)))


def logged_uuids(events_dir: Path) -> list[str]:
    uuids = []
    for segment in (*open_segments(events_dir), *sealed_segments(events_dir)):
        uuids += [r["row"]["message_uuid"] for r in read_segment(segment)[0]]
    return uuids


def test_a_thousand_concurrent_callbacks_are_all_in_the_log(tmp_path: Path) -> None:
    forms = [status_form(f"m-{i:04d}", "delivered", 3) for i in range(1000)]
    with service(tmp_path) as (base, _):
        codes = asyncio.run(_blast(base, forms))
        assert codes == [200] * 1000
    # A clean stop seals the segment; every event is in it once.
    uuids = logged_uuids(tmp_path / "events")
    assert sorted(uuids) == sorted(f["MessageUUID"] for f in forms)
    assert not open_segments(tmp_path / "events")

    landing = tmp_path / "landing"
    land_sealed(tmp_path / "events", landing)
    con = duckdb.connect()
    result = ingest_partition(con, landing, "sms_delivery_receipts", dt.date(2026, 8, 5))
    assert (result.loaded, result.rejected) == (1000, 0)


def test_a_service_killed_right_after_answering_loses_no_acknowledged_event(
    tmp_path: Path,
) -> None:
    forms = [status_form(f"k-{i:03d}", "sent", 2) for i in range(300)]
    # No timed rotation during the test: the killed writer's segment is still open.
    with service(tmp_path, CALLBACK_ROTATE_SECONDS="3600") as (base, proc):
        codes = asyncio.run(_blast(base, forms))
        proc.send_signal(signal.SIGKILL)  # no shutdown, no seal: the log as the disk holds it
        proc.wait(10)
    acknowledged = {f["MessageUUID"] for f, code in zip(forms, codes, strict=True) if code == 200}
    assert len(acknowledged) == 300
    events_dir = tmp_path / "events"
    assert open_segments(events_dir) and not sealed_segments(events_dir)
    assert acknowledged <= set(logged_uuids(events_dir))
    # The dead writer's segment is sealed and landed by the next lander.
    report = land_sealed(events_dir, tmp_path / "landing")
    assert report.abandoned_sealed == 1 and report.records == 300


def test_a_signed_stop_in_a_dozen_phrasings_stops_the_next_send_from_another_process(
    data_dir: Path,
) -> None:
    phones = [f"+1212664{7000 + i:04d}" for i in range(len(STOP_PHRASINGS) + 3)]
    stopped = phones[: len(STOP_PHRASINGS)]
    unsigned, restarted, untouched = phones[len(STOP_PHRASINGS) :]
    # The send runs for an hour that began before the STOPs: they bind it all the same.
    at = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    rows = [
        cand(
            f"order_confirmation:{i}",
            "order_confirmation",
            f"c{i}",
            phone,
            earliest_send_at=at - dt.timedelta(hours=1),
            expires_at=at + dt.timedelta(days=1),
        )
        for i, phone in enumerate(phones)
    ]
    warehouse = build(data_dir, rows, [person(f"c{i}", p) for i, p in enumerate(phones)])

    with service(data_dir) as (base, _):
        for i, (phone, text) in enumerate(zip(stopped, STOP_PHRASINGS, strict=True)):
            r = signed_post(base, "/plivo/inbound", inbound_form(text, f"in-{i}", phone=phone))
            assert r.status_code == 200 and "no more texts" in r.text, text
        r = httpx.post(
            base + "/plivo/inbound",
            content=urlencode(inbound_form("STOP", "in-unsigned", phone=unsigned)),
            headers=FORM,
        )
        assert r.status_code == 403
        for n, text in enumerate(("STOP", "START")):
            form = inbound_form(text, f"in-re-{n}", phone=restarted)
            assert signed_post(base, "/plivo/inbound", form, nonce=str(n)).status_code == 200
            time.sleep(0.01)  # START after STOP, not at the same instant

    sender = subprocess.run(
        [
            str(Path(sys.executable).parent / "postpurchase"),
            "send",
            "--provider",
            "dry-run",
            "--at",
            at.isoformat(),
        ],
        env={**os.environ, "POSTPURCHASE_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sender.returncode == 0, sender.stdout + sender.stderr
    states = dict(query(warehouse, "select phone_e164, state from ops.outbox"))
    assert {p: states[p] for p in stopped} == dict.fromkeys(stopped, "suppressed")
    assert states[unsigned] == "sent" and states[restarted] == "sent"
    assert states[untouched] == "sent"
    reasons = dict(query(warehouse, "select phone_e164, reason from ops.outbox"))
    assert reasons[stopped[-1]].startswith("opted_out: reply: no más")


def test_the_running_service_redirects_only_stored_codes(tmp_path: Path) -> None:
    with service(tmp_path) as (base, _):
        assert httpx.get(base + "/c/Unknown1").status_code == 404
        append_lines(
            tmp_path / "events" / LINKS_FILE,
            [{"code": "Known123", "target_url": "https://acme.example/reorder/p1"}],
        )
        found = httpx.get(base + "/c/Known123", follow_redirects=False)
        assert found.status_code == 302
        assert found.headers["location"] == "https://acme.example/reorder/p1"
