"""The validated specs as the raw tables dbt's `experiments` source reads."""

from __future__ import annotations

import json

import duckdb

from pipelines.experiments.spec import Catalog
from pipelines.flows import FLOWS

COLUMNS: dict[str, list[tuple[str, str]]] = {
    "experiments": [
        ("experiment_key", "varchar"),
        ("hypothesis", "varchar"),
        ("flow", "varchar"),
        ("message_class", "varchar"),
        ("unit_type", "varchar"),
        ("status", "varchar"),
        ("start_date", "date"),
        ("end_date", "date"),
        ("layer", "varchar"),
        ("salt", "varchar"),
        ("primary_metric", "varchar"),
        ("secondary_metrics", "varchar[]"),
        ("alpha", "double"),
        ("power", "double"),
        ("minimum_detectable_effect", "double"),
        ("analysis", "varchar"),
        ("planned_units", "bigint"),
        ("_source_file", "varchar"),
    ],
    "experiment_variants": [
        ("experiment_key", "varchar"),
        ("variant_index", "integer"),
        ("variant_key", "varchar"),
        ("weight", "double"),
        ("template", "varchar"),
        ("params", "varchar"),  # JSON object of the flow parameters the variant sets
    ],
    "experiment_guardrails": [
        ("experiment_key", "varchar"),
        ("guardrail_index", "integer"),
        ("metric", "varchar"),
        ("margin", "double"),
        ("margin_type", "varchar"),
        ("direction", "varchar"),
    ],
    "experiment_holdouts": [
        ("flow", "varchar"),
        ("share", "double"),
        ("salt", "varchar"),
        ("_source_file", "varchar"),
    ],
}
TABLES = tuple(COLUMNS)


def table_rows(catalog: Catalog) -> dict[str, list[tuple]]:
    rows: dict[str, list[tuple]] = {t: [] for t in TABLES}
    for s in catalog.specs:
        rows["experiments"].append(
            (
                s.key,
                s.hypothesis,
                s.flow,
                FLOWS[s.flow].message_class,
                s.unit,
                s.status,
                s.start_date,
                s.end_date,
                s.layer,
                s.salt,
                s.primary_metric,
                s.secondary_metrics,
                s.alpha,
                s.power,
                s.minimum_detectable_effect,
                s.analysis,
                s.planned_units,
                s.source,
            )
        )
        for i, v in enumerate(s.variants):
            params = json.dumps(v.params, sort_keys=True)
            rows["experiment_variants"].append((s.key, i, v.key, v.weight, v.template, params))
        for i, g in enumerate(s.guardrail_metrics):
            rows["experiment_guardrails"].append(
                (s.key, i, g.metric, g.margin, g.margin_type, g.direction)
            )
    for h in catalog.holdouts:
        rows["experiment_holdouts"].append((h.flow, h.share, h.salt, h.source))
    return rows


def replace_raw_tables(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> dict[str, int]:
    """Replace raw.experiments and its sibling tables in one transaction; rows per table."""
    rows = table_rows(catalog)
    con.execute("create schema if not exists raw")
    con.execute("begin transaction")
    try:
        for table, columns in COLUMNS.items():
            ddl = ", ".join(f"{name} {kind}" for name, kind in columns)
            con.execute(f"create or replace table raw.{table} ({ddl})")
            if rows[table]:
                marks = ", ".join("?" for _ in columns)
                con.executemany(f"insert into raw.{table} values ({marks})", rows[table])
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return {table: len(r) for table, r in rows.items()}
