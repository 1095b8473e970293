"""What a send run writes before and after the provider call: decisions, outbox rows, links.

Only the run's main thread calls these; the worker threads only talk to the provider. Rows go
in as one Polars frame per statement, not `executemany`: DuckDB runs an executemany as one
statement per row (~0.5 ms each), which at a big brand's hundred thousand texts a day is
minutes of writing; a frame is one statement whatever its length.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import duckdb
import polars as pl

from pipelines.outbox import SENDING, UNKNOWN
from pipelines.sender.compose import Composed
from pipelines.sender.decide import Candidate, Decision
from pipelines.warehouse import with_frame

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted mid-send: not resent"


def recover_interrupted(con: duckdb.DuckDBPyConnection) -> int:
    """Rows a killed run left `sending` become `unknown`; returns how many."""
    count = con.execute("select count(*) from ops.outbox where state = ?", [SENDING]).fetchall()[0][
        0
    ]
    if count:
        con.execute(
            """update ops.outbox set state = ?, last_error = ?, finished_at = now()
               where state = ?""",
            [UNKNOWN, INTERRUPTED, SENDING],
        )
        log.warning("%d outbox row(s) were left mid-send by a killed run: marked unknown", count)
    return count


def record_decisions(
    con: duckdb.DuckDBPyConnection,
    at: dt.datetime,
    decided: list[tuple[Candidate, Decision]],
) -> None:
    if not decided:
        return
    # A deferral repeated unchanged every hour says nothing new: keep only the first. Only
    # this run's keys are looked up, so the cost follows the day, not the history.
    keys = pl.DataFrame({"idempotency_key": [c.idempotency_key for c, _ in decided]})
    previous = dict(
        (key, (action, reason, until))
        for key, action, reason, until in with_frame(
            con,
            keys,
            """select idempotency_key, action, reason, defer_until from ops.send_decisions
               where logical_time < ? and idempotency_key in (select idempotency_key from {frame})
               qualify row_number() over (
                   partition by idempotency_key order by logical_time desc) = 1""",
            [at],
        )
    )
    rows = [
        [
            c.idempotency_key,
            at,
            d.action,
            d.reason,
            d.detail,
            d.until,
            c.flow,
            c.effective_class,
            c.template,
            c.customer_id,
            c.phone_e164,
            c.experiment_key,
            c.variant_key,
        ]
        for c, d in decided
        if previous.get(c.idempotency_key) != (d.action, d.reason, d.until)
    ]
    if rows:
        with_frame(
            con,
            pl.DataFrame(rows, schema=DECISION_COLUMNS, orient="row"),
            "insert or replace into ops.send_decisions by name select *, now() as recorded_at "
            "from {frame}",
        )


_TEXT = pl.String
_TIME = pl.Datetime("us", "UTC")
DECISION_COLUMNS = {
    "idempotency_key": _TEXT,
    "logical_time": _TIME,
    "action": _TEXT,
    "reason": _TEXT,
    "detail": _TEXT,
    "defer_until": _TIME,
    "flow": _TEXT,
    "message_class": _TEXT,
    "template": _TEXT,
    "customer_id": _TEXT,
    "phone_e164": _TEXT,
    "experiment_key": _TEXT,
    "variant_key": _TEXT,
}
# As outbox_row() lays them out; cost travels as text so the Decimal stays exact.
OUTBOX_COLUMNS = {
    **dict.fromkeys(
        (
            "idempotency_key",
            "flow",
            "message_class",
            "customer_id",
            "order_id",
            "phone_e164",
            "experiment_key",
            "variant_key",
            "template",
            "body",
            "encoding",
        ),
        _TEXT,
    ),
    "segments": pl.Int32,
    "cost": _TEXT,
    "state": _TEXT,
    "provider": _TEXT,
    "reason": _TEXT,
    "request_id": _TEXT,
    "decided_at": _TIME,
}
LINK_COLUMNS = dict.fromkeys(("code", "idempotency_key", "customer_id", "target_url"), _TEXT)


def outbox_row(
    c: Candidate,
    state: str,
    at: dt.datetime,
    provider: str,
    composed: Composed | None = None,
    reason: str | None = None,
    request_id: str | None = None,
) -> list[Any]:
    return [
        c.idempotency_key,
        c.flow,
        c.effective_class,
        c.customer_id,
        c.order_id,
        c.phone_e164,
        c.experiment_key,
        c.variant_key,
        c.template,
        composed.text if composed else None,
        composed.encoding if composed else None,
        composed.segments if composed else None,
        str(composed.cost) if composed else None,
        state,
        provider,
        reason,
        request_id,
        at,
    ]


def insert_outbox(con: duckdb.DuckDBPyConnection, rows: list[list[Any]], attempted: bool) -> None:
    if not rows:
        return
    frame = pl.DataFrame(rows, schema=OUTBOX_COLUMNS, orient="row")
    with_frame(
        con,
        frame,
        f"""insert into ops.outbox by name
            select * replace (cast(cost as decimal(12, 5)) as cost), 0 as attempts,
                   {"now()" if attempted else "null::timestamptz"} as attempted_at
            from {{frame}}""",
    )


def insert_links(con: duckdb.DuckDBPyConnection, composed: list[Composed]) -> None:
    rows = [
        [link.code, link.idempotency_key, link.customer_id, link.target_url]
        for message in composed
        for link in message.links
    ]
    if rows:
        with_frame(
            con,
            pl.DataFrame(rows, schema=LINK_COLUMNS, orient="row"),
            """insert into ops.short_links by name select *, now() as created_at from {frame}
               on conflict do nothing""",
        )
