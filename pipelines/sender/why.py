""" "Why did this customer get, or not get, that text?" answered from the ops rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from pipelines.phones import normalize_phone


@dataclass(frozen=True)
class WhyRow:
    when: dt.datetime  # logical time of the decision or the send
    source: str  # decision | outbox
    flow: str
    idempotency_key: str
    customer_id: str | None
    phone_e164: str | None
    action: str  # send/defer/suppress/hold_out for decisions, the state for outbox rows
    reason: str | None
    until: dt.datetime | None
    detail: str | None


def explain(con: duckdb.DuckDBPyConnection, who: str) -> list[WhyRow]:
    """Every decision and outbox row for a phone (any format) or a customer id, newest first."""
    phone, valid = normalize_phone(who)
    phone = phone if valid else None
    rows = con.execute(
        """
        select logical_time, 'decision', flow, idempotency_key, customer_id, phone_e164,
               action, reason, defer_until, detail
        from ops.send_decisions
        where customer_id = ? or phone_e164 = ?
        union all
        select coalesce(sent_at, decided_at), 'outbox', flow, idempotency_key, customer_id,
               phone_e164, state, coalesce(last_error, reason), null,
               case when provider_message_uuid is not null
                    then provider || ' ' || provider_message_uuid end
        from ops.outbox
        where customer_id = ? or phone_e164 = ?
        order by 1 desc, 2 desc, 4
        """,
        [who, phone, who, phone],
    ).fetchall()
    return [WhyRow(*row) for row in rows]
