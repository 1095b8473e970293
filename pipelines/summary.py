"""What is in the warehouse now: the numbers the demo and `postpurchase status` print."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from pipelines.landing import ENTITIES
from pipelines.warehouse import Warehouse


@dataclass
class WarehouseSummary:
    raw_rows: dict[str, int] = field(default_factory=dict)
    rows_in: dict[str, int] = field(default_factory=dict)
    rejects: dict[tuple[str, str], int] = field(default_factory=dict)
    invalid_phones: int = 0
    models: dict[str, int] = field(default_factory=dict)
    # (flow, experiment, variant, held out) -> candidates in the message queue
    candidates: dict[tuple[str, str, str, bool], int] = field(default_factory=dict)
    # (flow, experiment, variant, outbox state) -> messages
    outbox: dict[tuple[str, str, str, str], int] = field(default_factory=dict)


def summarize(warehouse: Warehouse) -> WarehouseSummary:
    summary = WarehouseSummary()
    if not warehouse.path.exists():
        return summary
    # Even a read-only DuckDB connection blocks writers, so readers take the lock too.
    with warehouse.lock(), duckdb.connect(str(warehouse.path), read_only=True) as con:
        for name in ENTITIES:
            summary.raw_rows[name] = con.execute(f"select count(*) from raw.{name}").fetchone()[0]
        summary.rows_in = dict(
            con.execute("select entity, sum(rows_in) from ops.ingest_files group by 1").fetchall()
        )
        summary.rejects = {
            (entity, reason): n
            for entity, reason, n in con.execute(
                """select entity, reason, count(*) from ops.ingest_rejects
                   group by all order by entity, reason"""
            ).fetchall()
        }
        summary.invalid_phones = con.execute(
            "select count(*) from raw.customers where phone is not null and not phone_valid"
        ).fetchone()[0]
        tables = con.execute(
            """select table_schema, table_name from information_schema.tables
               where table_schema in ('staging', 'intermediate', 'marts')
               order by table_schema, table_name"""
        ).fetchall()
        for schema, table in tables:
            count = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            summary.models[f"{schema}.{table}"] = count
        if "marts.message_candidates" in summary.models:
            summary.candidates = {
                (flow, experiment or "", variant or "", held_out): n
                for flow, experiment, variant, held_out, n in con.execute(
                    """select flow, experiment_key, variant_key, is_held_out, count(*)
                       from marts.message_candidates group by all order by all"""
                ).fetchall()
            }
        summary.outbox = {
            (flow, experiment or "", variant or "", state): n
            for flow, experiment, variant, state, n in con.execute(
                """select flow, experiment_key, variant_key, state, count(*)
                   from ops.outbox group by all order by all"""
            ).fetchall()
        }
    return summary
