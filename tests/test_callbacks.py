"""The callback service in-process: signatures, bad input, keywords and replies, clicks, points,
and its event log sealed, landed and ingested. Real server processes: test_callbacks_server.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import sqlite3
import warnings
from pathlib import Path
from urllib.parse import urlencode

import dagster as dg
import duckdb
import plivo.utils
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.callbacks import signatures
from pipelines.callbacks.app import create_app
from pipelines.callbacks.cli import serve_callbacks_command
from pipelines.callbacks.config import CallbackConfigError, CallbackSettings
from pipelines.callbacks.eventlog import EventLog, open_segments, read_segment, sealed_segments
from pipelines.callbacks.journal import LINKS_FILE, append_lines, record_outgoing
from pipelines.callbacks.keywords import HELP, OPT_IN, OPT_OUT, keyword_intent, survey_score
from pipelines.callbacks.loading import land_sealed
from pipelines.callbacks.points import POINTS_FILE
from pipelines.callbacks.rejects import read_rejects
from pipelines.defs.callbacks.sensors import callback_events_sensor
from pipelines.defs.ingest.sensors import landing_sensor
from pipelines.defs.resources import WarehouseResource
from pipelines.ingest import ingest_partition
from pipelines.sender.compose import Composed
from pipelines.sender.decide import Candidate
from pipelines.sender.links import ShortLink
from pipelines.sender.reads import load_suppressions

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 fork for its test client; httpx works the same here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "MAtesttokenabcdefghijklmnopqrstuv"
PUBLIC = "https://hooks.example.com"
NOW = dt.datetime(2026, 8, 5, 15, 30, tzinfo=dt.UTC)
PHONE = "+12126647665"
OURS = "18335550100"
FORM_HEADERS = {"content-type": "application/x-www-form-urlencoded"}

# A dozen ways of saying stop: carrier keywords, any case, punctuation, plain language.
STOP_PHRASINGS = [
    "STOP",
    "stop",
    "Stop.",
    "STOPALL",
    "Unsubscribe",
    "CANCEL",
    "end",
    "QUIT!",
    "revoke",
    "opt out",
    "Stop texting me",
    "no more texts please",
    "No más",
]


def events(tmp_path: Path) -> list[dict]:
    """Every event record in the log, open and sealed segments alike."""
    out = []
    for segment in (*open_segments(tmp_path), *sealed_segments(tmp_path)):
        out += read_segment(segment)[0]
    return out


def cb_settings(events_dir: Path, **kw) -> CallbackSettings:
    values = {
        "events_dir": events_dir,
        "auth_token": TOKEN,
        "public_url": PUBLIC,
        "brand_name": "Acme Goods",
        "support_contact": "help@acme.example",
    }
    values.update(kw)
    return CallbackSettings(**values)


@pytest.fixture
def client(tmp_path: Path):
    ticks = itertools.count()  # a second passes between requests
    clock = lambda: NOW + dt.timedelta(seconds=next(ticks))  # noqa: E731
    with TestClient(create_app(cb_settings(tmp_path), clock=clock)) as c:
        yield c


def signed(path: str, form: dict, nonce: str = "n0nce", url: str | None = None) -> dict:
    headers = signatures.sign_v3_headers(url or PUBLIC + path, form, TOKEN, nonce)
    return {**FORM_HEADERS, **headers}


def post(client: TestClient, path: str, form: dict, **kw):
    return client.post(path, content=urlencode(form), headers=signed(path, form, **kw))


def status_form(uuid: str = "m-1", status: str = "delivered", sequence: int = 3) -> dict:
    return {
        "MessageUUID": uuid,
        "Status": status,
        "Sequence": str(sequence),
        "To": "12126647665",
        "From": OURS,
        "Units": "1",
        "TotalRate": "0.00500",
        "TotalAmount": "0.00500",
        "MCC": "310",
        "MNC": "410",
        "ErrorCode": "000",
        "DeliveryReportTime": "2026-08-05 15:29:58 +0000",
    }


def inbound_form(text: str, uuid: str = "in-1", phone: str = PHONE, **extra) -> dict:
    return {
        "From": phone.lstrip("+"),
        "To": OURS,
        "Text": text,
        "Type": "sms",
        "MessageUUID": uuid,
        **extra,
    }


# --- signatures --------------------------------------------------------------------------


def test_the_published_v2_vector_checks() -> None:
    expected = "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
    assert signatures.v2_signature("https://answer.url", "12345", "my_auth_token") == expected
    headers = {"X-Plivo-Signature-V2": expected, "X-Plivo-Signature-V2-Nonce": "12345"}
    assert signatures.verify("POST", "https://answer.url", {}, headers, "my_auth_token").ok
    wrong = signatures.verify("POST", "https://answer.url", {}, headers, "another_token")
    assert not wrong.ok and wrong.version == "v2"


_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    form=st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,10}", fullmatch=True), _text),
    query=st.dictionaries(
        st.from_regex(r"[a-z]{1,5}", fullmatch=True),
        st.from_regex(r"[a-z0-9]{0,5}", fullmatch=True),
        max_size=2,
    ),
    nonce=st.from_regex(r"[0-9]{1,20}", fullmatch=True),
)
def test_v3_signatures_agree_with_the_plivo_sdk(form: dict, query: dict, nonce: str) -> None:
    url = f"{PUBLIC}/plivo/inbound" + (f"?{urlencode(query)}" if query else "")
    signature = signatures.v3_signature("POST", url, form, nonce, TOKEN)
    assert plivo.utils.validate_v3_signature("POST", url, nonce, TOKEN, signature, dict(form))
    headers = {"X-Plivo-Signature-V3": f"other=,{signature}", "X-Plivo-Signature-V3-Nonce": nonce}
    assert signatures.verify("POST", url, form, headers, TOKEN).ok


def test_signed_callbacks_are_accepted_and_the_rest_refused_and_recorded(
    client: TestClient, tmp_path: Path
) -> None:
    form = status_form()
    assert post(client, "/plivo/status", form).status_code == 200
    path = "/plivo/status"

    tampered = {**form, "Status": "undelivered"}
    unsigned = client.post(path, content=urlencode(form), headers=FORM_HEADERS)
    wrong_url = post(client, path, form, url="http://hooks.example.com/plivo/status")
    other_host = post(client, path, form, url="https://evil.example.com/plivo/status")
    # A captured valid signature replayed with another body.
    replayed = client.post(path, content=urlencode(tampered), headers=signed(path, form))
    v2_only = client.post(
        path,
        content=urlencode(form),
        headers={
            **FORM_HEADERS,
            "X-Plivo-Signature-V2": signatures.v2_signature(PUBLIC + path, "77", TOKEN),
            "X-Plivo-Signature-V2-Nonce": "77",
        },
    )
    forged = client.post(
        path,
        content=urlencode(form),
        headers={**signed(path, form), "X-Plivo-Signature-V3": "A" * 43 + "="},
    )
    half = client.post(
        path,
        content=urlencode(form),
        headers={**FORM_HEADERS, "X-Plivo-Signature-V3-Nonce": "1"},
    )
    codes = [r.status_code for r in (unsigned, wrong_url, other_host, replayed, forged, half)]
    assert codes == [403] * 6
    assert v2_only.status_code == 200  # the fallback

    records = events(tmp_path)
    assert [r["row"]["status"] for r in records] == ["delivered", "delivered"]
    rejects = read_rejects(tmp_path)
    assert [r["status"] for r in rejects] == [403] * 6
    assert rejects[0]["reason"].startswith("unsigned")
    assert {r["reason"] for r in rejects[1:5]} == {"V3 signature does not match"}
    assert rejects[5]["reason"] == "incomplete V3 signature headers"
    assert all(r["body_sha256"] and r["path"] == path for r in rejects)


def test_bad_input_is_refused_without_corrupting_anything(
    client: TestClient, tmp_path: Path
) -> None:
    path = "/plivo/status"
    no_uuid = {k: v for k, v in status_form().items() if k != "MessageUUID"}
    cases = {
        "missing MessageUUID": post(client, path, no_uuid),
        "Status": post(client, path, status_form(status="exploded")),
        "Sequence": post(client, path, {**status_form(), "Sequence": "three"}),
        "Units": post(client, path, {**status_form(), "Units": "-1"}),
        "TotalRate": post(client, path, {**status_form(), "TotalRate": "NaN"}),
        "MessageUUID": post(client, path, status_form(uuid="x" * 65)),
        "inbound From": post(client, "/plivo/inbound", {"MessageUUID": "i1", "Text": "hi"}),
    }
    assert {k: r.status_code for k, r in cases.items()} == dict.fromkeys(cases, 400)
    huge = {**status_form(), "Pad": "x" * 70_000}
    assert post(client, path, huge).status_code == 413
    not_a_form = client.post(
        path, content=json.dumps(status_form()), headers={"content-type": "application/json"}
    )
    assert not_a_form.status_code == 415
    assert client.get(path).status_code == 405

    # An id the sender never used is kept (the marts join only what matches) and answered 200.
    assert post(client, path, status_form(uuid="not-ours")).status_code == 200
    # Out of order and repeated: all kept; the models order them by Sequence.
    for status, sequence in (("delivered", 3), ("queued", 1), ("sent", 2), ("delivered", 3)):
        assert post(client, path, status_form("m-2", status, sequence)).status_code == 200
    rows = [r["row"] for r in events(tmp_path)]
    assert [r["message_uuid"] for r in rows] == ["not-ours"] + ["m-2"] * 4
    assert rows[0]["error_code"] is None and rows[0]["occurred_at"] == "2026-08-05T15:29:58.000Z"
    reasons = [r["reason"] for r in read_rejects(tmp_path)]
    assert len(reasons) == 9 and any("limit" in r for r in reasons)


def test_signatures_can_be_skipped_only_by_the_explicit_setting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(CallbackConfigError, match="PLIVO_AUTH_TOKEN"):
        CallbackSettings(tmp_path, None, PUBLIC)
    with pytest.raises(CallbackConfigError, match="CALLBACK_PUBLIC_URL"):
        CallbackSettings(tmp_path, TOKEN, None)
    insecure = CallbackSettings(tmp_path, None, None, skip_signatures=True)
    with caplog.at_level(logging.WARNING), TestClient(create_app(insecure)) as c:
        r = c.post("/plivo/status", content=urlencode(status_form()), headers=FORM_HEADERS)
        assert r.status_code == 200
        assert c.get("/healthz").json() == {"ok": True, "signatures": False}
    assert "NOT authenticated" in caplog.text


# --- keywords and replies ----------------------------------------------------------------


def test_keywords_read_as_the_models_read_them() -> None:
    assert {keyword_intent(t) for t in STOP_PHRASINGS} == {OPT_OUT}
    assert {keyword_intent(t) for t in ("START", "yes", "Unstop")} == {OPT_IN}
    assert {keyword_intent(t) for t in ("HELP", "info?")} == {HELP}
    # Plivo's own reading counts; and an opt-out anywhere wins over the rest.
    assert keyword_intent("whatever", "optout") == OPT_OUT
    assert keyword_intent("yes but stop texting me") == OPT_OUT
    for text in ("cancel my order", "can you stop by?", "where is my parcel", ""):
        assert keyword_intent(text) is None, text
    assert [survey_score(t) for t in ("7", " 10! ", "8/10", "0")] == [7, 10, 8, 0]
    assert [survey_score(t) for t in ("11", "-1", "7.5", "seven", "")] == [None] * 5


def test_stop_start_help_are_answered_and_recorded_where_the_sender_reads(
    client: TestClient, tmp_path: Path
) -> None:
    stop = post(client, "/plivo/inbound", inbound_form("Stop texting me", "in-1"))
    assert stop.status_code == 200 and stop.headers["content-type"] == "application/xml"
    assert 'dst="12126647665"' in stop.text and f'src="{OURS}"' in stop.text
    assert "Acme Goods" in stop.text and "no more texts" in stop.text
    assert "%" not in stop.text and "off" not in stop.text.lower().split()  # no marketing
    suppressions = load_suppressions(_empty_ops(), tmp_path, NOW - dt.timedelta(hours=1))
    assert [s.reason for s in suppressions[PHONE]] == ["reply: stop texting me"]

    help_ = post(client, "/plivo/inbound", inbound_form("HELP", "in-2"))
    for part in ("Acme Goods", "help@acme.example", "Msg & data rates may apply", "STOP"):
        assert part in help_.text.replace("&amp;", "&")
    start = post(client, "/plivo/inbound", inbound_form("START", "in-3"))
    assert "resubscribed" in start.text
    # The START lifts the STOP for sends from then on.
    assert load_suppressions(_empty_ops(), tmp_path, NOW)[PHONE] == []

    chatter = post(client, "/plivo/inbound", inbound_form("where is my parcel?", "in-4"))
    assert "<Message" not in chatter.text  # kept for the support inbox, not auto-answered
    actions = [r["row"]["action"] for r in events(tmp_path)]
    assert actions == ["opt_out", "help", "opt_in", "text"]


def _empty_ops() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema ops")
    con.execute(
        "create table ops.suppressions "
        "(phone_e164 varchar, reason varchar, recorded_at timestamptz)"
    )
    return con


def test_the_service_s_opt_outs_bind_sends_whatever_their_logical_time(tmp_path: Path) -> None:
    before = NOW - dt.timedelta(hours=1)
    lines = [
        # The live service's STOP binds a run for an earlier hour that starts after it.
        {"phone_e164": "+1", "recorded_at": NOW.isoformat(), "source": "callback"},
        # A replayed (simulated) one binds only from its own time, as do legacy lines.
        {"phone_e164": "+2", "recorded_at": NOW.isoformat(), "source": "simulator"},
        {"phone_e164": "+3", "recorded_at": NOW.isoformat()},
        # STOP, START, STOP again: the last STOP stands.
        {"phone_e164": "+4", "recorded_at": (before - dt.timedelta(hours=2)).isoformat()},
        {
            "phone_e164": "+4",
            "recorded_at": (before - dt.timedelta(hours=1)).isoformat(),
            "action": "resubscribe",
        },
        {"phone_e164": "+4", "recorded_at": before.isoformat(), "reason": "again"},
    ]
    append_lines(tmp_path / "suppressions.jsonl", lines)
    found = load_suppressions(_empty_ops(), tmp_path, before)
    assert [s.realtime for s in found["+1"]] == [True]
    assert found["+2"] == [] and found["+3"] == []
    assert [s.reason for s in found["+4"]] == ["again"]


# --- clicks ------------------------------------------------------------------------------


def test_clicks_redirect_only_to_stored_targets(client: TestClient, tmp_path: Path) -> None:
    append_lines(
        tmp_path / LINKS_FILE,
        [
            {
                "code": "AbC12345",
                "target_url": "https://acme.example/rewards",
                "idempotency_key": "k",
            }
        ],
    )
    found = client.get("/c/AbC12345", follow_redirects=False, headers={"user-agent": "Phone/1.0"})
    assert found.status_code == 302
    assert found.headers["location"] == "https://acme.example/rewards"
    assert found.headers["cache-control"] == "no-store"
    # A link journaled after the service started is found too; a bare /<code> works as well.
    append_lines(
        tmp_path / LINKS_FILE,
        [
            {"code": "Later001", "target_url": "https://acme.example/orders/1"},
            {"code": "Js000001", "target_url": "javascript:alert(1)"},
        ],
    )
    later = client.get("/Later001", follow_redirects=False)
    assert later.headers["location"] == "https://acme.example/orders/1"
    for bad in (
        "/c/Unknown1",
        "/c/Js000001",
        "/c/..%2Fetc",
        "/c/AbC12345?next=https://evil.example",
    ):
        response = client.get(bad, follow_redirects=False)
        if bad.endswith("evil.example"):
            # Query parameters never choose the destination.
            assert response.headers["location"] == "https://acme.example/rewards"
        else:
            assert response.status_code == 404, bad
    clicks = [r["row"] for r in events(tmp_path)]
    assert [c["short_code"] for c in clicks] == ["AbC12345", "Later001", "AbC12345"]
    assert clicks[0]["user_agent"] == "Phone/1.0" and clicks[0]["click_id"] != clicks[2]["click_id"]


# --- surveys and points ------------------------------------------------------------------


def _survey(phone: str, key: str, points: int = 50) -> tuple[Candidate, Composed]:
    candidate = Candidate(
        key,
        "feedback_survey",
        "marketing",
        "c1",
        phone,
        True,
        NOW,
        NOW + dt.timedelta(days=1),
        experiment_key="e",
        variant_key="v",
    )
    composed = Composed(
        "Acme Goods: reply 0-10",
        "GSM-7",
        1,
        0,
        (ShortLink("Lk000001", key, "c1", "https://acme.example/x", "u"),),
    )
    return candidate, composed


def test_a_feedback_score_credits_points_once_even_when_delivered_twice(
    client: TestClient, tmp_path: Path
) -> None:
    sent_at = NOW - dt.timedelta(days=1)
    record_outgoing(
        tmp_path, sent_at, [_survey(PHONE, "feedback_survey:o1")], {("e", "v"): {"points": 75}}
    )
    assert (tmp_path / LINKS_FILE).exists()

    first = post(client, "/plivo/inbound", inbound_form("9", "in-9"))
    again = post(client, "/plivo/inbound", inbound_form("9", "in-9"), nonce="retry")
    assert first.status_code == again.status_code == 200
    assert "earned 75 points" in first.text and "balance is 75 points" in first.text
    assert again.text == first.text  # the same answer for the same message
    second_answer = post(client, "/plivo/inbound", inbound_form("10", "in-10"))
    assert "already have your answer" in second_answer.text and "75 points" in second_answer.text
    # No survey to this number: a bare number is just a text for the support inbox.
    stranger = post(client, "/plivo/inbound", inbound_form("8", "in-8", phone="+12126640001"))
    assert "<Message" not in stranger.text

    with sqlite3.connect(tmp_path / POINTS_FILE) as con:
        credits = con.execute("select inbound_uuid, points, logged from credits").fetchall()
    assert sorted(credits) == [("in-10", 0, 1), ("in-9", 75, 1)]
    rows = [r["row"] for r in events(tmp_path)]
    assert [(r["message_uuid"], r["action"], r["points"]) for r in rows] == [
        ("in-9", "score", "75"),
        ("in-9", "score", "75"),
        ("in-10", "score", "0"),
        ("in-8", "text", None),
    ]
    assert rows[0]["survey_key"] == "feedback_survey:o1"

    # Through the log into the warehouse: one credit, whatever the retries.
    client.app.state.service.events.rotate()
    landing = tmp_path / "landing"
    report = land_sealed(tmp_path, landing)
    assert report.days == [NOW.date()]
    con = duckdb.connect()
    result = ingest_partition(con, landing, "inbound_messages", NOW.date())
    assert result.rejected == 0
    raw = con.execute(
        "select message_uuid, points, score, action from raw.inbound_messages order by 1"
    ).fetchall()
    assert raw == [
        ("in-10", 0, 10, "score"),
        ("in-8", None, None, "text"),
        ("in-9", 75, 9, "score"),
    ]


# --- the log: sealing, landing, the sensor -----------------------------------------------


def test_segments_are_sealed_landed_once_and_ingested(tmp_path: Path) -> None:
    events_dir, landing = tmp_path / "events", tmp_path / "landing"
    log = EventLog(events_dir, "cb")
    day2 = "2026-08-06T00:00:01.000Z"
    rows = [
        {
            "message_uuid": "m1",
            "status": "delivered",
            "occurred_at": "2026-08-05T23:59:59.000Z",
            "sequence": "3",
        },
        {
            "message_uuid": "m1",
            "status": "sent",
            "occurred_at": "2026-08-05T23:59:58.000Z",
            "sequence": "2",
        },
        {"message_uuid": "m2", "status": "queued", "occurred_at": day2, "sequence": "1"},
    ]
    log.write([{"entity": "sms_delivery_receipts", "row": r, "logged_at": day2} for r in rows])
    open_now = log.current
    assert open_now is not None and open_now.parent.name == "open"
    # The live writer's segment is not touched by a lander.
    assert land_sealed(events_dir, landing).segments == []
    assert log.rotate() is not None and log.current is None
    log.close()
    # A torn last line (a writer killed mid-write) is skipped; everything before it lands.
    sealed = sealed_segments(events_dir)[0]
    with open(sealed, "ab") as handle:
        handle.write(b'{"entity": "sms_deliv')

    resources = {"warehouse": WarehouseResource(data_dir=str(tmp_path))}
    skip = callback_events_sensor(dg.build_sensor_context(resources=resources))
    assert "landed 1 segment(s), 3 event(s), into 2 new file(s)" in skip.skip_message
    assert "1 unreadable line" in skip.skip_message
    assert sealed_segments(events_dir) == []
    files = sorted(landing.rglob("*.parquet"))
    assert [f.parent.name for f in files] == ["2026-08-05", "2026-08-06"]
    assert all(f.name.startswith("cb-") for f in files)
    # The landing sensor takes it from there: it asks for both days' ingest.
    requests = list(landing_sensor(dg.build_sensor_context(resources=resources)))
    assert sorted(r.partition_key for r in requests) == ["2026-08-05", "2026-08-06"]

    con = duckdb.connect()
    loaded = ingest_partition(con, landing, "sms_delivery_receipts", dt.date(2026, 8, 5))
    assert (loaded.loaded, loaded.rejected) == (2, 0)
    latest = con.execute(
        "select status from raw.sms_delivery_receipts where message_uuid = 'm1' "
        "order by sequence desc limit 1"
    ).fetchall()
    assert latest == [("delivered",)]


def test_serve_callbacks_refuses_to_start_unauthenticated(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("POSTPURCHASE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PLIVO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("CALLBACK_INSECURE_SKIP_SIGNATURES", raising=False)
    result = CliRunner().invoke(serve_callbacks_command, [])
    assert result.exit_code == 2 and "PLIVO_AUTH_TOKEN is not set" in result.output
    usage = CliRunner().invoke(serve_callbacks_command, ["--help"])
    assert "127.0.0.1" in usage.output and "8787" in usage.output
