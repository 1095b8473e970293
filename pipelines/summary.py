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
    # (action, reason) -> distinct messages deferred or suppressed for that reason at least once
    decisions: dict[tuple[str, str], int] = field(default_factory=dict)
    # The latest day's experiment verdicts, with each primary comparison (analysis schema)
    verdicts: list[dict] = field(default_factory=list)
    incremental: list[dict] = field(default_factory=list)  # per flow, against its holdout


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
        if _exists(con, "ops", "send_decisions"):
            summary.decisions = {
                (action, reason): n
                for action, reason, n in con.execute(
                    """select action, reason, count(distinct idempotency_key)
                       from ops.send_decisions where action in ('defer', 'suppress')
                       group by all order by all"""
                ).fetchall()
            }
        if _exists(con, "analysis", "experiment_verdicts"):
            summary.verdicts = _rows(
                con,
                """select v.experiment_key, v.verdict, v.reason, v.analysis, v.units,
                          v.planned_units, v.progress, v.srm_p_value, r.metric, r.variant_key,
                          r.control_key, r.mean_control, r.mean_treatment, r.lift_relative,
                          r.ci_relative_low, r.ci_relative_high, r.p_value, r.p_value_adjusted,
                          r.chance_to_win, r.cuped
                   from analysis.experiment_verdicts v
                   left join analysis.experiment_results r
                       on r.experiment_key = v.experiment_key and r.as_of = v.as_of
                       and r.role = 'primary'
                   where v.as_of = (select max(as_of) from analysis.experiment_verdicts)
                   order by v.experiment_key, r.variant_key""",
            )
        if _exists(con, "analysis", "holdout_incremental_revenue"):
            summary.incremental = _rows(
                con,
                """select * from analysis.holdout_incremental_revenue
                   where as_of = (select max(as_of) from analysis.holdout_incremental_revenue)
                   order by flow""",
            )
    return summary


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            """select count(*) from information_schema.tables
               where table_schema = ? and table_name = ?""",
            [schema, table],
        ).fetchone()[0]
    )
