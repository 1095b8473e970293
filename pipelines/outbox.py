"""The outbox: one row per message the sender has decided on, keyed by its idempotency key.

It exists from the first ingest so the message queue (dbt) can always exclude what was
already handled; the sender records every attempt here before and after calling a provider.
"""

from __future__ import annotations

import duckdb

OUTBOX_DDL = """
create table if not exists ops.outbox (
    idempotency_key varchar primary key,
    flow varchar not null,
    message_class varchar,
    customer_id varchar,
    order_id varchar,
    phone_e164 varchar,
    experiment_key varchar,
    variant_key varchar,
    body varchar,
    encoding varchar,
    segments integer,
    state varchar not null,
    provider varchar,
    provider_message_uuid varchar,
    attempts integer default 0,
    last_error varchar,
    decided_at timestamptz,
    sent_at timestamptz
)
"""


def ensure_outbox(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists ops")
    con.execute(OUTBOX_DDL)
