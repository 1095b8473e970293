"""What a send run writes before and after the provider call: decisions, outbox rows, links.

Only the run's main thread calls these; the worker threads only talk to the provider.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import duckdb

from pipelines.outbox import SENDING, UNKNOWN
from pipelines.sender.compose import Composed
from pipelines.sender.decide import Candidate, Decision

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted mid-send: not resent"


def recover_interrupted(con: duckdb.DuckDBPyConnection) -> int:
    """Rows a killed run left `sending` become `unknown`; returns how many."""
    count = con.execute("select count(*) from ops.outbox where state = ?", [SENDING]).fetchone()[0]
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
    # A deferral repeated unchanged every hour says nothing new: keep only the first.
    previous = dict(
        (key, (action, reason, until))
        for key, action, reason, until in con.execute(
            """select idempotency_key, action, reason, defer_until from ops.send_decisions
               where logical_time < ?
               qualify row_number() over (
                   partition by idempotency_key order by logical_time desc) = 1""",
            [at],
        ).fetchall()
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
        con.executemany(
            """insert or replace into ops.send_decisions
               (idempotency_key, logical_time, action, reason, detail, defer_until, flow,
                message_class, template, customer_id, phone_e164, experiment_key, variant_key,
                recorded_at)
               values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())""",
            rows,
        )


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
        composed.cost if composed else None,
        state,
        provider,
        reason,
        request_id,
        at,
    ]


def insert_outbox(con: duckdb.DuckDBPyConnection, rows: list[list[Any]], attempted: bool) -> None:
    if not rows:
        return
    con.executemany(
        f"""insert into ops.outbox
            (idempotency_key, flow, message_class, customer_id, order_id, phone_e164,
             experiment_key, variant_key, template, body, encoding, segments, cost, state,
             provider, reason, request_id, decided_at, attempts, attempted_at)
            values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0,
                    {"now()" if attempted else "null"})""",
        rows,
    )


def insert_links(con: duckdb.DuckDBPyConnection, composed: list[Composed]) -> None:
    rows = [
        [link.code, link.idempotency_key, link.customer_id, link.target_url]
        for message in composed
        for link in message.links
    ]
    if rows:
        con.executemany(
            """insert into ops.short_links (code, idempotency_key, customer_id, target_url,
               created_at) values (?, ?, ?, ?, now()) on conflict do nothing""",
            rows,
        )
