"""What a send run reads: the due candidates and everything decided at send time.

Opt-outs recorded after the models ran come from `ops.suppressions` and the callback service's
log, so a STOP counts at once; recipients, recent marketing sends and variant parameters come
from the marts and the outbox.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipelines.flows import FLOWS, MARKETING
from pipelines.outbox import HELD_OUT, SENDING, SENT, UNKNOWN
from pipelines.sender.decide import Candidate, Recipient, Suppression, is_marketing_template
from pipelines.warehouse import with_frame

log = logging.getLogger(__name__)

# Marketing sends older than the longest cap window cannot matter.
HISTORY_WINDOW = dt.timedelta(days=7)

CANDIDATE_COLUMNS = (
    "idempotency_key, flow, message_class, customer_id, phone_e164, has_valid_phone, "
    "earliest_send_at, expires_at, template, priority, is_held_out, order_id, product_id, "
    "experiment_key, variant_key, triggered_at, first_name, order_number, items_summary, "
    "tracking_url, product_title, run_out_date, setup_url"
)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )


def load_due(
    con: duckdb.DuckDBPyConnection, at: dt.datetime, limit: int | None = None
) -> list[Candidate]:
    """Candidates due at `at` that no outbox row has handled, most urgent first.

    Expired ones are read too, so their end is recorded rather than silently dropped.
    """
    if not _table_exists(con, "marts", "message_candidates"):
        raise RuntimeError("marts.message_candidates does not exist: build the dbt models first")
    sql = f"""
        select {CANDIDATE_COLUMNS}
        from marts.message_candidates c
        where c.earliest_send_at <= ?
            and not exists (
                select 1 from ops.outbox o where o.idempotency_key = c.idempotency_key
            )
        order by c.priority, c.earliest_send_at, c.idempotency_key
    """
    params: list[Any] = [at]
    if limit is not None:
        sql += " limit ?"
        params.append(limit)
    names = [n.strip() for n in CANDIDATE_COLUMNS.split(",")]
    return [
        Candidate(**dict(zip(names, row, strict=True)))
        for row in con.execute(sql, params).fetchall()
    ]


def load_recipients(con: duckdb.DuckDBPyConnection, customer_ids: set[str]) -> dict[str, Recipient]:
    """Consent joined to whereabouts; a customer missing from consent_state has none."""
    if not customer_ids:
        return {}
    localized = _table_exists(con, "intermediate", "int_customers_localized")
    where = (
        """l.timezones, l.state, l.quiet_start_hour, l.quiet_end_hour,
           l.state_marketing_max_per_24h"""
        if localized
        else "null, null, null, null, null"
    )
    join = (
        "left join intermediate.int_customers_localized l using (customer_id)" if localized else ""
    )
    rows = with_frame(
        con,
        pl.DataFrame({"customer_id": sorted(customer_ids)}, schema={"customer_id": pl.String}),
        f"""
        select s.customer_id, s.can_receive_transactional, s.can_receive_marketing,
               s.last_changed_at, s.last_change_reason, {where}
        from marts.consent_state s
        {join}
        where s.customer_id in (select customer_id from {{frame}})
        """,
    )
    return {row[0]: Recipient(*row) for row in rows}


def load_suppressions(
    con: duckdb.DuckDBPyConnection, events_dir: Path | None, at: dt.datetime
) -> dict[str, list[Suppression]]:
    """Opt-outs recorded after the models ran: ops.suppressions and the callback service's log.

    Only those recorded by `at` count, so a backfill sees what was known then; except the
    live callback service's (source "callback"), which exist only once they happened and
    so bind every send from then on, whatever its logical time.
    """
    found: dict[str, list[Suppression]] = defaultdict(list)
    rows = con.execute(
        "select phone_e164, reason, recorded_at from ops.suppressions where recorded_at <= ?",
        [at],
    ).fetchall()
    for phone, reason, recorded_at in rows:
        found[phone].append(Suppression(phone, reason or "opt-out", recorded_at))
    # A START in the log (action "resubscribe") lifts the opt-outs recorded for its number up
    # to that moment; an opt-out at the same instant still wins.
    resubscribed: dict[str, dt.datetime] = {}
    log_file = events_dir / "suppressions.jsonl" if events_dir else None
    if log_file and log_file.exists():
        for line_no, line in enumerate(log_file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                recorded_at = dt.datetime.fromisoformat(event["recorded_at"])
                if recorded_at.tzinfo is None:
                    recorded_at = recorded_at.replace(tzinfo=dt.UTC)
                phone = event["phone_e164"]
            except (ValueError, KeyError, TypeError):
                # A torn last line from a writer that died: skip it, never the whole log.
                log.warning("%s line %d is not a suppression event; skipped", log_file, line_no)
                continue
            realtime = event.get("source") == "callback"
            if recorded_at > at and not realtime:
                continue
            if event.get("action") == "resubscribe":
                resubscribed[phone] = max(recorded_at, resubscribed.get(phone, recorded_at))
            else:
                found[phone].append(
                    Suppression(phone, event.get("reason") or "opt-out", recorded_at, realtime)
                )
    for phone, when in resubscribed.items():
        found[phone] = [s for s in found[phone] if s.recorded_at >= when]
    return found


def load_marketing_history(
    con: duckdb.DuckDBPyConnection, at: dt.datetime
) -> dict[str, list[dt.datetime]]:
    """Marketing send times per phone. Unknown and held-out rows count: an unknown may have
    arrived, and a holdout's slot stays taken so its arm differs from the others only in the
    held-out flow."""
    rows = con.execute(
        """
        select phone_e164, coalesce(sent_at, decided_at), flow, message_class
        from ops.outbox
        where state in (?, ?, ?, ?) and phone_e164 is not null
            and coalesce(sent_at, decided_at) > ?
        """,
        [SENT, UNKNOWN, SENDING, HELD_OUT, at - HISTORY_WINDOW],
    ).fetchall()
    history: dict[str, list[dt.datetime]] = defaultdict(list)
    for phone, when, flow, klass in rows:
        marketing = klass == MARKETING if klass else (flow not in FLOWS or FLOWS[flow].is_marketing)
        if marketing and when is not None:
            history[phone].append(when)
    return history


def load_variant_params(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict]:
    """(experiment, variant) -> the flow parameters the variant sets (discount, points)."""
    if not _table_exists(con, "staging", "stg_experiments__variants"):
        return {}
    rows = con.execute(
        "select experiment_key, variant_key, params from staging.stg_experiments__variants"
    ).fetchall()
    return {(e, v): json.loads(p) if p else {} for e, v, p in rows}


def load_marketing_experiments(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """Experiments with a variant that turns its flow's text into marketing (an upsell line)."""
    if not _table_exists(con, "staging", "stg_experiments__variants"):
        return frozenset()
    rows = con.execute(
        """select v.experiment_key, e.flow, v.template
           from staging.stg_experiments__variants v
           join staging.stg_experiments__experiments e using (experiment_key)"""
    ).fetchall()
    return frozenset(key for key, flow, template in rows if is_marketing_template(flow, template))


def latest_logical_time(con: duckdb.DuckDBPyConnection) -> dt.datetime | None:
    """The end of the latest ingested day: the logical time the daily build last ran for."""
    if not _table_exists(con, "ops", "ingest_files"):
        return None
    day = con.execute("select max(partition_date) from ops.ingest_files").fetchall()[0][0]
    if day is None:
        return None
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
