"""What is in the warehouse now: the numbers the demo and `postpurchase status` print."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.landing import ENTITIES


@dataclass
class WarehouseSummary:
    raw_rows: dict[str, int] = field(default_factory=dict)
    rows_in: dict[str, int] = field(default_factory=dict)
    rejects: dict[tuple[str, str], int] = field(default_factory=dict)
    invalid_phones: int = 0
    models: dict[str, int] = field(default_factory=dict)


def summarize(warehouse_path: Path) -> WarehouseSummary:
    summary = WarehouseSummary()
    if not warehouse_path.exists():
        return summary
    con = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        for name in ENTITIES:
            summary.raw_rows[name] = con.execute(f"select count(*) from raw.{name}").fetchone()[0]
        summary.rows_in = dict(
            con.execute(
                "select entity, sum(rows_in) from ops.ingest_files group by entity"
            ).fetchall()
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
        for schema, table in con.execute(
            """select table_schema, table_name from information_schema.tables
               where table_schema in ('staging', 'intermediate', 'marts')
               order by table_schema, table_name"""
        ).fetchall():
            count = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            summary.models[f"{schema}.{table}"] = count
    finally:
        con.close()
    return summary
