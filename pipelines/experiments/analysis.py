"""Read the metric summaries from the warehouse, judge every running experiment, write it back.

Results are kept per logical day (`as_of`) in the `analysis` schema, so the effect can be
followed over time (the dashboards draw the cumulative effect with its sequential band) and a
rerun of one day replaces only that day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import polars as pl

from pipelines.experiments.results import (
    compare_arms,
    incremental_revenue,
    judge,
    sample_ratio,
    verdict_frame,
)
from pipelines.experiments.spec import Spec

SUMMARIES = "marts.experiment_metric_summaries"
HOLDOUT_METRIC = "revenue_30d"
TABLES = ("experiment_results", "experiment_verdicts", "holdout_incremental_revenue")


@dataclass
class Analysis:
    results: pl.DataFrame  # experiment x metric x treatment variant
    verdicts: pl.DataFrame  # one per experiment
    incremental: pl.DataFrame  # one per flow with a holdout


def running(specs: list[Spec], as_of: dt.datetime) -> list[Spec]:
    day = as_of.date()
    return [
        s
        for s in specs
        if s.status == "running"
        and s.start_date <= day
        and (s.end_date is None or day <= s.end_date)
    ]


def analyze(con: duckdb.DuckDBPyConnection, specs: list[Spec], as_of: dt.datetime) -> Analysis:
    specs = running(specs, as_of)
    summaries = con.sql(f"select * from {SUMMARIES}").pl()
    experiments = summaries.filter(~pl.col("is_holdout_layer"))
    results = compare_arms(experiments, specs)
    verdicts = verdict_frame(judge(results, sample_ratio(experiments, specs), specs), as_of)
    # A flow's holdout layer has two arms: "holdout" (never texted) and "exposed".
    holdouts = summaries.filter(
        pl.col("is_holdout_layer") & (pl.col("metric") == HOLDOUT_METRIC)
    ).with_columns(arm=pl.col("variant_key").replace({"exposed": "treated", "holdout": "held_out"}))
    incremental = incremental_revenue(holdouts)
    return Analysis(results, verdicts, incremental)


def write(con: duckdb.DuckDBPyConnection, analysis: Analysis, as_of: dt.datetime) -> dict[str, int]:
    """Replace this day's rows of each table (created on first use) in one transaction."""
    con.execute("create schema if not exists analysis")
    counts = {}
    con.execute("begin")
    try:
        for table, frame in zip(
            TABLES, (analysis.results, analysis.verdicts, analysis.incremental), strict=True
        ):
            frame = frame.with_columns(as_of=pl.lit(as_of).cast(pl.Datetime("us", "UTC")))
            exists = con.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = 'analysis' and table_name = ?",
                [table],
            ).fetchone()[0]
            if not exists:
                con.execute(f"create table analysis.{table} as select * from frame limit 0")
            con.execute(f"delete from analysis.{table} where as_of = ?", [as_of])
            if frame.height:
                con.execute(f"insert into analysis.{table} by name select * from frame")
            counts[table] = frame.height
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return counts
