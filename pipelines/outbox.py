"""The outbox: one row per message the sender has decided on, keyed by its idempotency key.

It exists from the first ingest so the message queue (dbt) can always exclude what was
already handled; the sender records every attempt here before and after calling a provider.

States: `sending` (committed before the provider is called) then `sent`, `failed` or
`unknown` (the provider may have queued it: never resent blindly); `held_out` (a holdout's
"would have been sent") and `suppressed` (decided never to send) are final from the start.
Beside it live the sender's other ops tables: every decision, late suppressions and the
per-recipient short links.
"""

from __future__ import annotations

import duckdb

SENDING = "sending"
SENT = "sent"
FAILED = "failed"
UNKNOWN = "unknown"
HELD_OUT = "held_out"
SUPPRESSED = "suppressed"
FINAL_STATES = frozenset({SENT, FAILED, UNKNOWN, HELD_OUT, SUPPRESSED})

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

# Added by the sender; `add column if not exists` upgrades a warehouse made before it.
# decided_at and sent_at are logical times (the hour the sender ran for), which is what the
# frequency cap counts; attempted_at and finished_at are wall-clock times, for operators.
OUTBOX_SENDER_COLUMNS = {
    "template": "varchar",
    "cost": "decimal(12, 5)",
    "reason": "varchar",
    "request_id": "varchar",
    "attempted_at": "timestamptz",
    "finished_at": "timestamptz",
}

SEND_DECISIONS_DDL = """
create table if not exists ops.send_decisions (
    idempotency_key varchar not null,
    logical_time timestamptz not null,
    action varchar not null,  -- send | defer | suppress | hold_out
    reason varchar not null,  -- a short code: quiet_hours, frequency_cap, opted_out, ...
    detail varchar,
    defer_until timestamptz,
    flow varchar,
    message_class varchar,
    template varchar,
    customer_id varchar,
    phone_e164 varchar,  -- E.164; masked only in output
    experiment_key varchar,
    variant_key varchar,
    recorded_at timestamptz,  -- wall clock, for operators
    primary key (idempotency_key, logical_time)
)
"""

SUPPRESSIONS_DDL = """
create table if not exists ops.suppressions (
    phone_e164 varchar not null,
    reason varchar,
    recorded_at timestamptz not null
)
"""

SHORT_LINKS_DDL = """
create table if not exists ops.short_links (
    code varchar primary key,
    idempotency_key varchar not null,
    customer_id varchar,
    target_url varchar not null,
    created_at timestamptz
)
"""


def ensure_outbox(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists ops")
    con.execute(OUTBOX_DDL)


def ensure_sender_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The outbox with the sender's columns, and the decision, suppression and link tables."""
    ensure_outbox(con)
    for column, kind in OUTBOX_SENDER_COLUMNS.items():
        con.execute(f"alter table ops.outbox add column if not exists {column} {kind}")
    con.execute(SEND_DECISIONS_DDL)
    con.execute(SUPPRESSIONS_DDL)
    con.execute(SHORT_LINKS_DDL)
