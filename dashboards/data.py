"""Everything the dashboards read, from the published snapshot only (never the warehouse).

A read-only connection to `warehouse.duckdb` would block the pipeline's writer, so the pages
read `reporting.duckdb`, which the pipeline replaces atomically after each successful run
(`pipelines/reporting.py`). A snapshot is known by its file's inode, time and size: a new
publish is a new version, which opens a new connection and misses every query cache, while
sessions still reading the old version keep their open file until they are done.

Queries are cached per (snapshot version, SQL, parameters), a bounded number of them. Each
query runs on its own cursor: Streamlit serves every session from its own thread. Where the
snapshot holds a summary of a big table (`pipelines/reporting.py`, SUMMARIES), the pages read
it; on a snapshot published before it existed they fall back to the big table, slower.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import streamlit as st

from pipelines.flows import FLOWS
from pipelines.settings import get_settings

QUERY_TTL = dt.timedelta(minutes=30)
MAX_QUERIES = 512
# Names in pipelines/reporting.py, spelled out here: importing that module would import the
# backtest and scipy with it, seconds on a page's first visit (tests check they agree).
INFO_TABLE = "reports.snapshot_info"
BACKTEST_TABLE = "reports.replenishment_backtest"
DAILY_ATTRIBUTED = "reports.daily_attributed"
DAILY_SENT = "reports.daily_sent"
DAILY_ENGAGEMENT = "reports.daily_engagement"
CURRENCIES = "reports.order_currencies"
FUNNEL = "reports.flow_funnel"
NOT_SENT_REASONS = "reports.not_sent_reasons"
DELIVERY_OUTCOMES = "reports.delivery_outcomes"
DAILY_OPT_OUTS = "reports.daily_opt_outs"
PRODUCT_CADENCE = "reports.product_cadence"
RUNOUT_DATES = "reports.runout_dates"
DAILY_FIRST_TEXTS = "reports.daily_first_texts"
SUMMARIES = frozenset(
    {
        DAILY_ATTRIBUTED,
        DAILY_SENT,
        DAILY_ENGAGEMENT,
        CURRENCIES,
        FUNNEL,
        NOT_SENT_REASONS,
        DELIVERY_OUTCOMES,
        DAILY_OPT_OUTS,
        PRODUCT_CADENCE,
        RUNOUT_DATES,
        DAILY_FIRST_TEXTS,
    }
)
# The reminders listed on the Replenishment page; the rest are counted and downloadable.
REMINDERS_SHOWN = 500


class SnapshotUnreadable(Exception):
    """The snapshot file exists but is not a snapshot DuckDB can read."""


@dataclass(frozen=True)
class Snapshot:
    path: str
    version: tuple[int, int, int]  # inode, mtime (ns), size
    as_of: dt.datetime | None  # the logical time the warehouse was built for
    published_at: dt.datetime

    @property
    def as_of_date(self) -> dt.date:
        """The last whole day in the data (as_of is the end of a day, midnight UTC)."""
        if self.as_of is None:
            return self.published_at.date()
        return (self.as_of - dt.timedelta(microseconds=1)).date()


def snapshot_path() -> Path:
    return get_settings().reporting_path


def snapshot() -> Snapshot | None:
    """The published snapshot, or None before the first publish."""
    path = snapshot_path()
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    try:
        info = _query(str(path), version, f"select as_of, published_at from {INFO_TABLE}", ())
    except duckdb.Error as exc:
        raise SnapshotUnreadable(f"{path}: {exc}") from exc
    if info.is_empty():
        raise SnapshotUnreadable(f"{path}: no snapshot information in it")
    row = info.row(0, named=True)
    return Snapshot(str(path), version, row["as_of"], row["published_at"])


@st.cache_resource(max_entries=2, show_spinner=False)
def _database(path: str, version: tuple[int, int, int]) -> duckdb.DuckDBPyConnection:
    """One read-only handle per snapshot version; the older is dropped when a newer comes.

    Attached to an in-memory database rather than opened by path: DuckDB shares one instance
    per path within a process, which would keep serving the replaced file.
    """
    con = duckdb.connect(":memory:")
    con.execute(f"attach '{_quoted(path)}' as snapshot (read_only)")
    con.execute("set TimeZone = 'UTC'")
    return con


@st.cache_data(ttl=QUERY_TTL, max_entries=MAX_QUERIES, show_spinner=False)
def _query(path: str, version: tuple[int, int, int], sql: str, params: tuple) -> pl.DataFrame:
    cursor = _database(path, version).cursor()
    try:
        cursor.execute("use snapshot")
        cursor.execute("set TimeZone = 'UTC'")
        return cursor.sql(sql, params=list(params) or None).pl()
    finally:
        cursor.close()


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def query(snap: Snapshot, sql: str, *params: object) -> pl.DataFrame:
    return _query(snap.path, snap.version, sql, tuple(params))


def tables(snap: Snapshot) -> frozenset[str]:
    """The snapshot's tables, but an outbox the sender never wrote to: created before the
    sender's first run added its columns (cost, ...), it holds no text and cannot be read as
    one that does."""
    found = query(
        snap,
        """select t.table_schema || '.' || t.table_name as name,
                  list(c.column_name) as columns
           from information_schema.tables t
           join information_schema.columns c using (table_catalog, table_schema, table_name)
           where t.table_catalog = 'snapshot' group by all""",
    )
    return frozenset(
        name for name, columns in found.iter_rows() if name != "ops.outbox" or "cost" in columns
    )


def has(snap: Snapshot, *names: str) -> bool:
    present = tables(snap)
    return all(name in present for name in names)


def _flows_clause(column: str, flows: tuple[str, ...] | None) -> tuple[str, tuple]:
    if not flows:
        return "true", ()
    return f"{column} in (select unnest(?))", (list(flows),)


def _days(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end] as UTC instants [start 00:00, the day after end 00:00): compared with a
    timestamp column as is, DuckDB skips the row groups outside (a cast to date it cannot)."""
    return (
        dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC),
    )


# --- shared -----------------------------------------------------------------------------------


def currency(snap: Snapshot) -> str:
    """The shop's main currency (most orders)."""
    if has(snap, CURRENCIES):
        found = query(snap, f"select currency from {CURRENCIES} order by orders desc, 1 limit 1")
    elif has(snap, "marts.order_attributions"):
        found = query(
            snap,
            """select currency from marts.order_attributions where currency is not null
               group by 1 order by count(*) desc, 1 limit 1""",
        )
    else:
        return "USD"
    return found["currency"][0] if found.height else "USD"


def flows(snap: Snapshot) -> list[str]:
    """Every flow in the catalogue, in priority order."""
    return sorted(FLOWS, key=lambda f: (FLOWS[f].priority, f))


def activity_span(snap: Snapshot) -> tuple[dt.date, dt.date] | None:
    """First and last day a text was sent, or None before the first send."""
    if has(snap, DAILY_SENT):
        sql = f"select min(day) as first, max(day) as last from {DAILY_SENT}"
    elif has(snap, "ops.outbox"):
        sql = """select min(sent_at)::date as first, max(sent_at)::date as last
                 from ops.outbox where state = 'sent'"""
    else:
        return None
    row = query(snap, sql).row(0, named=True)
    return None if row["first"] is None else (row["first"], row["last"])


# --- overview ---------------------------------------------------------------------------------


def window_totals(
    snap: Snapshot, start: dt.date, end: dt.date, flows: tuple[str, ...] | None
) -> dict[str, float]:
    """Totals over [start, end] (days, UTC): attributed revenue, texts, cost, customers,
    delivered and opted out."""
    totals = {
        "revenue": 0.0,
        "orders": 0,
        "sent": 0,
        "cost": 0.0,
        "customers": 0,
        "delivered": 0,
        "opted_out": 0,
    }
    for frame in _daily_parts(snap, start, end, flows, window=True):
        row = frame.row(0, named=True)
        totals.update({k: type(totals[k])(v or 0) for k, v in row.items()})
    return totals


def daily(
    snap: Snapshot, start: dt.date, end: dt.date, flows: tuple[str, ...] | None
) -> pl.DataFrame:
    """Per day and flow over [start, end]: attributed revenue, texts sent, cost, customers
    texted, delivered and opted out (every day present, zeros where nothing happened)."""
    frames = _daily_parts(snap, start, end, flows, window=False)
    columns = {
        "revenue": pl.Float64,
        "sent": pl.Int64,
        "cost": pl.Float64,
        "customers": pl.Int64,
        "delivered": pl.Int64,
        "opted_out": pl.Int64,
    }
    if not frames:
        return pl.DataFrame(schema={"day": pl.Date, "flow": pl.String, **columns})
    combined = pl.concat(
        [
            f.select(
                pl.col("day").cast(pl.Date),
                pl.col("flow").cast(pl.String),
                *(
                    pl.col(c).cast(t) if c in f.columns else pl.lit(0, dtype=t).alias(c)
                    for c, t in columns.items()
                ),
            )
            for f in frames
        ]
    )
    return combined.group_by("day", "flow").agg(pl.col(list(columns)).sum()).sort("day", "flow")


# Each part of `daily` and `window_totals`: (summary, big table, its day column, filter, and
# per measure its sum over the summary and its aggregate over the big table).
_PARTS = (
    (
        DAILY_ATTRIBUTED,
        "marts.order_attributions",
        "ordered_at",
        "is_attributed",
        {
            "revenue": ("sum(revenue)", "sum(attributed_revenue)"),
            "orders": ("sum(orders)", "count(*) filter (where attributed_revenue > 0)"),
        },
    ),
    (
        DAILY_SENT,
        "ops.outbox",
        "sent_at",
        "state = 'sent'",
        {
            "sent": ("sum(sent)", "count(*)"),
            "cost": ("sum(cost)", "coalesce(sum(cost), 0)::double"),
            "customers": ("sum(customers)", "count(distinct customer_id)"),
        },
    ),
    (
        DAILY_ENGAGEMENT,
        "marts.message_engagement",
        "sent_at",
        "true",
        {
            "delivered": ("sum(delivered)", "count(*) filter (where is_delivered)"),
            "opted_out": (
                "sum(opted_out)",
                "count(*) filter (where is_delivered and is_opted_out)",
            ),
        },
    ),
)


def _daily_parts(
    snap: Snapshot,
    start: dt.date,
    end: dt.date,
    flows: tuple[str, ...] | None,
    window: bool,
) -> list[pl.DataFrame]:
    """Per part, its measures per day and flow over [start, end], or over all of it
    (`window`: one row). From the daily summaries where the snapshot has them, but the
    customers texted in a window: distinct over its days, no daily count sums to it."""
    clause, params = _flows_clause("flow", flows)
    group = "" if window else "group by all"
    frames = []
    for summary, table, day, where, measures in _PARTS:
        keys = "" if window else "day, flow, "
        if has(snap, summary) and not (window and summary == DAILY_SENT):
            sums = ", ".join(f"{summed} as {name}" for name, (summed, _) in measures.items())
            sql = f"""select {keys}{sums} from {summary}
                      where day between ? and ? and {clause} {group}"""
            frames.append(query(snap, sql, start, end, *params))
        elif has(snap, table):
            keys = "" if window else f"{day}::date as day, flow, "
            aggregates = ", ".join(f"{agg} as {name}" for name, (_, agg) in measures.items())
            # Compared with the timestamp as is, not cast to a date: DuckDB then skips the
            # row groups outside the days.
            sql = f"""select {keys}{aggregates} from {table}
                      where {where} and {day} >= ? and {day} < ? and {clause} {group}"""
            frames.append(query(snap, sql, *_days(start, end), *params))
    return frames


def daily_totals(frame: pl.DataFrame, start: dt.date, end: dt.date) -> pl.DataFrame:
    """`daily` summed over flows, one row per day of [start, end] (zeros filled in)."""
    days = pl.DataFrame({"day": pl.date_range(start, end, "1d", eager=True)})
    sums = frame.group_by("day").agg(
        pl.col("revenue", "sent", "cost", "customers", "delivered", "opted_out").sum()
    )
    return days.join(sums, on="day", how="left").fill_null(0).sort("day")


def incremental(snap: Snapshot) -> pl.DataFrame:
    """Per marketing flow and window (7, 30 days after the first text): revenue per customer
    texted and held out, and the incremental revenue (marts.flow_incremental_revenue)."""
    if not has(snap, "marts.flow_incremental_revenue"):
        return pl.DataFrame()
    return query(
        snap,
        """select flow, window_days, exposed_n, holdout_n, exposed_mean, holdout_mean,
                  revenue_difference, incremental_revenue
           from marts.flow_incremental_revenue order by flow, window_days""",
    )


def incremental_history(snap: Snapshot) -> pl.DataFrame:
    """Per day of analysis and flow: incremental revenue within 30 days with its interval."""
    if not has(snap, "analysis.holdout_incremental_revenue"):
        return pl.DataFrame()
    return query(
        snap,
        """select as_of, flow, units_treated, units_held_out, revenue_per_unit_treated,
                  revenue_per_unit_held_out, effect_per_unit, incremental_revenue,
                  ci_incremental_low, ci_incremental_high, p_value
           from analysis.holdout_incremental_revenue order by as_of, flow""",
    )


# --- experiments ------------------------------------------------------------------------------


def experiments(snap: Snapshot) -> pl.DataFrame:
    """One row per experiment: its spec, the latest verdict and exposure so far."""
    if not has(snap, "raw.experiments"):
        return pl.DataFrame()
    latest = (
        """select experiment_key, verdict, reason, units, progress, srm_p_value,
                  srm_mismatch, as_of
           from analysis.experiment_verdicts
           qualify as_of = max(as_of) over (partition by experiment_key)"""
        if has(snap, "analysis.experiment_verdicts")
        else """select null::varchar as experiment_key, null::varchar as verdict,
                       null::varchar as reason, null::bigint as units,
                       null::double as progress, null::double as srm_p_value,
                       null::boolean as srm_mismatch, null::timestamptz as as_of
                where false"""
    )
    exposure = (
        """select experiment_key, sum(units_exposed) as units_exposed,
                  min(first_exposed_at) as first_exposed_at
           from marts.experiment_variant_units where not is_holdout_layer group by 1"""
        if has(snap, "marts.experiment_variant_units")
        else """select null::varchar as experiment_key, null::bigint as units_exposed,
                       null::timestamptz as first_exposed_at
                where false"""
    )
    return query(
        snap,
        f"""with latest as ({latest}), exposure as ({exposure})
            select e.experiment_key, e.flow, e.status, e.start_date, e.end_date, e.hypothesis,
                   e.primary_metric, e.analysis, e.alpha, e.minimum_detectable_effect,
                   e.planned_units, latest.verdict, latest.reason, latest.units,
                   latest.progress, latest.srm_p_value, latest.srm_mismatch,
                   latest.as_of as analysed_as_of, exposure.units_exposed,
                   exposure.first_exposed_at
            from raw.experiments e
            left join latest using (experiment_key)
            left join exposure using (experiment_key)
            order by e.status = 'running' desc, e.start_date desc, e.experiment_key""",
    )


def experiment_results(snap: Snapshot, key: str) -> pl.DataFrame:
    """Every comparison with control for one experiment, for every day it was analysed."""
    if not has(snap, "analysis.experiment_results"):
        return pl.DataFrame()
    return query(
        snap,
        """select * from analysis.experiment_results where experiment_key = ?
           order by as_of, role = 'primary' desc, role = 'secondary' desc, metric,
                    variant_key""",
        key,
    )


def experiment_variants(snap: Snapshot, key: str) -> pl.DataFrame:
    """Each variant's weight, template and parameters, with customers assigned and exposed."""
    if not has(snap, "raw.experiment_variants"):
        return pl.DataFrame()
    units = has(snap, "marts.experiment_variant_units")
    join = (
        """left join marts.experiment_variant_units u
               on u.experiment_key = v.experiment_key and u.variant_key = v.variant_key
               and not u.is_holdout_layer"""
        if units
        else ""
    )
    counts = (
        "u.units_assigned, u.units_exposed"
        if units
        else "null::bigint as units_assigned, null::bigint as units_exposed"
    )
    return query(
        snap,
        f"""select v.variant_index, v.variant_key, v.weight, v.template, v.params, {counts}
            from raw.experiment_variants v {join}
            where v.experiment_key = ? order by v.variant_index""",
        key,
    )


# --- flow health ------------------------------------------------------------------------------


def funnel(snap: Snapshot, flows: tuple[str, ...] | None) -> pl.DataFrame:
    """Per flow: messages that came due, what happened to them, and what they led to."""
    clause, params = _flows_clause("flow", flows)
    if has(snap, FUNNEL):
        return query(
            snap, f"select * from {FUNNEL} where {clause} order by came_due desc, flow", *params
        )
    if not has(snap, "ops.send_decisions", "ops.outbox"):
        return pl.DataFrame()
    engagement = has(snap, "marts.message_engagement")
    attributions = has(snap, "marts.order_attributions")
    return query(
        snap,
        f"""with decided as (
                select flow, count(distinct idempotency_key) as came_due,
                       count(distinct idempotency_key) filter (where action = 'defer')
                           as deferred_once
                from ops.send_decisions where {clause} group by 1
            ),
            outcome as (
                select flow,
                       count(*) filter (where state = 'sent') as sent,
                       count(*) filter (where state = 'suppressed') as suppressed,
                       count(*) filter (where state = 'held_out') as held_out,
                       count(*) filter (where state in ('failed', 'unknown')) as failed,
                       count(*) as decided_finally
                from ops.outbox where {clause} group by 1
            ),
            engaged as (
                {
            "select flow, count(*) filter (where is_delivered) as delivered, "
            "count(*) filter (where is_delivered and is_clicked) as clicked, "
            "count(*) filter (where is_delivered and is_replied) as replied, "
            "count(*) filter (where is_delivered and is_opted_out) as opted_out "
            f"from marts.message_engagement where {clause} group by 1"
            if engagement
            else "select null::varchar as flow, 0 as delivered, 0 as clicked, "
            "0 as replied, 0 as opted_out where false"
        }
            ),
            converted as (
                {
            "select flow, count(*) as converted, sum(attributed_revenue) as revenue "
            "from marts.order_attributions "
            f"where is_attributed and attributed_revenue > 0 and {clause} group by 1"
            if attributions
            else "select null::varchar as flow, 0 as converted, 0.0 as revenue where false"
        }
            )
            select decided.flow, came_due, deferred_once,
                   coalesce(suppressed, 0) as suppressed, coalesce(held_out, 0) as held_out,
                   greatest(came_due - coalesce(decided_finally, 0), 0) as waiting,
                   coalesce(sent, 0) as sent, coalesce(failed, 0) as failed,
                   coalesce(delivered, 0) as delivered, coalesce(clicked, 0) as clicked,
                   coalesce(replied, 0) as replied, coalesce(opted_out, 0) as opted_out,
                   coalesce(converted, 0) as converted, coalesce(revenue, 0) as revenue
            from decided
            left join outcome using (flow)
            left join engaged using (flow)
            left join converted using (flow)
            order by came_due desc, flow""",
        *(params * (2 + engagement + attributions)),
    )


def not_sent_reasons(snap: Snapshot, flows: tuple[str, ...] | None) -> pl.DataFrame:
    """Messages suppressed (final) and deferred (at least once, perhaps sent later), by reason."""
    clause, params = _flows_clause("flow", flows)
    if has(snap, NOT_SENT_REASONS):
        return query(
            snap,
            f"""select flow, action, reason, messages from {NOT_SENT_REASONS}
                where {clause} order by messages desc, flow, action, reason""",
            *params,
        )
    if not has(snap, "ops.send_decisions"):
        return pl.DataFrame()
    return query(
        snap,
        f"""select flow, action, reason, count(distinct idempotency_key) as messages
            from ops.send_decisions
            where action in ('suppress', 'defer') and {clause}
            group by all order by messages desc, flow, action, reason""",
        *params,
    )


def delivery_outcomes(snap: Snapshot, flows: tuple[str, ...] | None) -> pl.DataFrame:
    """Texts sent per flow, final delivery status and error code."""
    clause, params = _flows_clause("flow", flows)
    if has(snap, DELIVERY_OUTCOMES):
        return query(
            snap,
            f"""select flow, delivery_status, error_code, messages from {DELIVERY_OUTCOMES}
                where {clause} order by messages desc, flow, delivery_status, error_code""",
            *params,
        )
    if not has(snap, "marts.message_engagement"):
        return pl.DataFrame()
    return query(
        snap,
        f"""select flow, delivery_status, error_code, count(*) as messages
            from marts.message_engagement where {clause}
            group by all order by messages desc, flow, delivery_status, error_code""",
        *params,
    )


def opt_outs_daily(snap: Snapshot, flows: tuple[str, ...] | None) -> pl.DataFrame:
    """Opt-out replies per day (those answering a flow's text, or any when no flow is chosen)."""
    clause, params = _flows_clause("in_reply_to_flow", flows)
    if has(snap, DAILY_OPT_OUTS):
        return query(
            snap,
            f"""select day, sum(opt_outs)::bigint as opt_outs from {DAILY_OPT_OUTS}
                where {clause} group by 1 order by 1""",
            *params,
        )
    if not has(snap, "marts.inbound_replies"):
        return pl.DataFrame()
    return query(
        snap,
        f"""select received_at::date as day, count(*) as opt_outs
            from marts.inbound_replies where action = 'opt_out' and {clause}
            group by 1 order by 1""",
        *params,
    )


# --- replenishment ----------------------------------------------------------------------------


def cadence_by_product(snap: Snapshot) -> pl.DataFrame:
    """Per product: customers predicted, the typical gap between purchases and its fallback."""
    if has(snap, PRODUCT_CADENCE):
        return query(snap, f"select * from {PRODUCT_CADENCE} order by customers desc, title")
    if not has(snap, "marts.replenishment_predictions"):
        return pl.DataFrame()
    return query(
        snap,
        """select product_id, coalesce(title, product_id) as title, category, is_consumable,
                  usage_days, count(*) as customers,
                  count(*) filter (where purchase_days > 1) as repeat_customers,
                  median(expected_gap_days) as median_gap_days,
                  quantile_cont(expected_gap_days, 0.25) as gap_days_p25,
                  quantile_cont(expected_gap_days, 0.75) as gap_days_p75,
                  avg(probability_next_window) as mean_probability_7d
           from marts.replenishment_predictions
           group by all order by customers desc, title""",
    )


def runout_dates(snap: Snapshot) -> pl.DataFrame:
    """Predicted run-out dates of consumables, counted per day."""
    if has(snap, RUNOUT_DATES):
        return query(snap, f"select day, customers from {RUNOUT_DATES} order by 1")
    if not has(snap, "marts.replenishment_predictions"):
        return pl.DataFrame()
    return query(
        snap,
        """select predicted_next_date as day, count(*) as customers
           from marts.replenishment_predictions
           where is_consumable and predicted_next_date is not null
           group by 1 order by 1""",
    )


def reminders_due(snap: Snapshot, until: dt.datetime, limit: int | None = None) -> pl.DataFrame:
    """Replenishment reminders waiting in the queue that are due before `until`, the first
    `limit` of them by due time (all with None)."""
    if not has(snap, "marts.message_candidates"):
        return pl.DataFrame()
    return query(
        snap,
        """select earliest_send_at, expires_at, customer_id, phone_e164, product_title,
                  run_out_date, experiment_key, variant_key, is_held_out
           from marts.message_candidates
           where flow = 'replenishment_reminder' and earliest_send_at < ?
           order by earliest_send_at, customer_id
           limit ?""",
        until,
        limit,
    )


def reminders_due_per_day(
    snap: Snapshot, until: dt.datetime, now: dt.datetime, first_day: dt.date
) -> pl.DataFrame:
    """`reminders_due` counted per day due (those due before `first_day` on it) and variant
    ("default" outside experiments); `waiting` of them due before `now`."""
    if not has(snap, "marts.message_candidates"):
        return pl.DataFrame()
    return query(
        snap,
        """select greatest(earliest_send_at::date, ?::date) as day,
                  coalesce(variant_key, 'default') as variant, count(*) as reminders,
                  count(*) filter (where earliest_send_at < ?) as waiting
           from marts.message_candidates
           where flow = 'replenishment_reminder' and earliest_send_at < ?
           group by all order by 1, 2""",
        first_day,
        now,
        until,
    )


def backtest(snap: Snapshot) -> pl.DataFrame:
    if not has(snap, BACKTEST_TABLE):
        return pl.DataFrame()
    return query(snap, f"select * from {BACKTEST_TABLE}")


# --- planner ----------------------------------------------------------------------------------


def metric_baseline(snap: Snapshot, flow: str, metric: str) -> dict | None:
    """Mean and standard deviation of `metric` per customer texted by `flow` as it runs today
    (holdout layers' texted arm, experiments' controls), over complete windows."""
    if not has(snap, "marts.experiment_unit_metrics"):
        return None
    from pipelines.experiments.spec import METRICS

    spec = METRICS[metric]
    column = f"{spec.base}_{spec.window_days}d"
    found = query(
        snap,
        f"""with units as (
                select unit_id, any_value("{column}") as value
                from marts.experiment_unit_metrics
                where flow = ? and is_complete_{spec.window_days}d
                  and ((is_holdout_layer and variant_key = 'exposed')
                       or (not is_holdout_layer and is_control))
                group by unit_id
            )
            select count(*) as n, avg(value)::double as mean,
                   stddev_samp(value)::double as sd
            from units""",
        flow,
    ).row(0, named=True)
    return found if found["n"] else None


def daily_new_customers(snap: Snapshot, flow: str, days: int = 28) -> dict | None:
    """Customers texted by `flow` for the first time per day, over its last `days` days of
    sending: the units a new experiment on the flow would gain each day."""
    if has(snap, DAILY_FIRST_TEXTS):
        firsts = f"select day, customers from {DAILY_FIRST_TEXTS} where flow = ?"
    elif has(snap, "ops.outbox"):
        firsts = """select min(sent_at)::date as day, 1 as customers from ops.outbox
                    where flow = ? and state = 'sent' group by customer_id"""
    else:
        return None
    row = query(
        snap,
        f"""with firsts as ({firsts}),
           span as (
               select max(day) as last, max(day) - (? - 1)::integer as start from firsts
           )
           select sum(customers)::bigint as customers,
                  max(last) - greatest(min(day), max(start)) + 1 as days
           from firsts, span where day >= start""",
        flow,
        days,
    ).row(0, named=True)
    if not row["customers"]:
        return None
    return {"customers": row["customers"], "days": row["days"]}
