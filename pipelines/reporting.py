"""The reporting snapshot: a read-only copy of the warehouse that the dashboards read.

Even a read-only DuckDB connection blocks the one writer of a file, so the dashboards never
open `warehouse.duckdb`. After each successful run the pipeline publishes `reporting.duckdb`:

1. Under the warehouse lock (so no writer is half way through), the tables the dashboards
   read are copied into a new DuckDB file beside the snapshot, through one DuckDB connection
   (`ATTACH` and `CREATE TABLE ... AS SELECT`). Reading through DuckDB sees what is still in
   the warehouse's WAL, which a copy of the file would miss, and phone numbers are masked on
   the way: the snapshot never holds a full number, so no page can show one.
2. The lock is released; the replenishment backtest runs on the copied purchase days
   (reusing the last snapshot's scores for cutoffs whose events have not changed),
   `reports.snapshot_info` records as of when the data is and when it was published, and
   small summaries of the big tables are written (`SUMMARIES`), so that a dashboard page
   reads a few thousand rows rather than scanning millions on every visit.
3. The new file is checkpointed (no WAL is left beside it), synced, and renamed over
   `reporting.duckdb` with `os.replace`: a reader opens either the old snapshot or the new
   one, never half of one. Readers of the old file keep it until they close it.

Publishers take their own lock for the whole of it, so two runs publish in the order they
copied and an older copy never replaces a newer one.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipelines import backtest, cadence
from pipelines.backtest import (
    BASELINES,
    METRICS,
    default_cutoffs,
    score_cutoff_metrics,
    summarize,
)
from pipelines.providers.base import mask_phone, mask_phones_in
from pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "reporting.duckdb"
INFO_TABLE = "reports.snapshot_info"
BACKTEST_TABLE = "reports.replenishment_backtest"
BACKTEST_CUTOFFS_TABLE = "reports.replenishment_backtest_cutoffs"
PURCHASE_DAYS_TABLE = "reports.purchase_days"

# Every table of these schemas (the dbt marts and the experiment analysis) ...
SCHEMAS = ("marts", "analysis")
# ... and these: the sender's record of every message and decision, and the experiment specs.
TABLES = (
    ("ops", "outbox"),
    ("ops", "send_decisions"),
    ("raw", "experiments"),
    ("raw", "experiment_variants"),
)
# The replenishment backtest's input: one row per customer, product and day bought.
PURCHASE_DAYS_SQL = """
    select customer_id, product_id, purchase_date as day, cast(quantity as double) as quantity
    from intermediate.int_purchase_days_aggregated
"""

# Columns holding a phone number, masked as a whole, and free text that may quote one.
PHONE_COLUMNS = frozenset(
    {"phone", "phone_e164", "from_number", "from_number_e164", "to_number", "to_number_e164"}
)
FREE_TEXT_COLUMNS = frozenset({"text", "body", "detail", "last_error"})
# The masks in SQL where it is simple, so a million rows do not each call into Python: an
# E.164 number keeps its last four digits; other spellings go to mask_phone itself. Free text
# goes to mask_phones_in only when it holds a digit run its pattern could match (a superset
# of the pattern, which RE2 cannot spell with its look-arounds).
MASK_PHONE_SQL = """case when regexp_full_match({column}, '[+]?[0-9]{{5,}}')
    then regexp_replace(left({column}, length({column}) - 4), '[0-9]', '*', 'g')
        || right({column}, 4)
    else mask_phone({column}) end"""
MASK_PHONES_IN_SQL = """case when regexp_matches({column}, '\\p{{Nd}}[\\p{{Nd}} -]{{5,}}\\p{{Nd}}')
    then mask_phones_in({column}) else {column} end"""


@dataclass(frozen=True)
class Published:
    path: Path
    as_of: dt.datetime | None
    published_at: dt.datetime
    tables: dict[str, int]  # schema.table -> rows
    backtest_cutoffs: int
    seconds: float


def snapshot_path(data_dir: Path) -> Path:
    return Path(data_dir) / SNAPSHOT_FILE


def publish(data_dir: Path, as_of: dt.datetime | None = None) -> Published:
    """Copy what the dashboards read into a new snapshot and swap it in atomically.

    `as_of` is the logical time the warehouse was built for (the run's partition end).
    """
    started = time.monotonic()
    warehouse = Warehouse(Path(data_dir))
    if not warehouse.path.exists():
        raise FileNotFoundError(f"no warehouse at {warehouse.path}: nothing to publish")
    target = snapshot_path(warehouse.data_dir)
    with _publisher_lock(warehouse.data_dir):
        _remove_leftovers(target)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            with warehouse.connect() as con:
                tables, events = _copy(con, temp)
            summary, per_cutoff = replenishment_backtest(events, known=_known_cutoffs(target))
            published_at = dt.datetime.now(dt.UTC)
            with duckdb.connect(str(temp)) as snap:
                _write_reporting(snap, as_of, published_at, summary, per_cutoff)
                tables |= write_summaries(snap)
                snap.execute("checkpoint")
            wal = Path(f"{temp}.wal")
            if wal.exists():
                raise RuntimeError(f"{wal} was left after the checkpoint; not publishing")
            _fsync(temp)
            os.replace(temp, target)
            _fsync(target.parent)
        finally:
            for leftover in (temp, Path(f"{temp}.wal")):
                leftover.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    cutoffs = summary["cutoff_count"][0] if summary.height else 0
    log.info("published %s (%d tables) in %.1f s", target, len(tables), seconds)
    return Published(target, as_of, published_at, tables, int(cutoffs), seconds)


def _copy(con: duckdb.DuckDBPyConnection, temp: Path) -> tuple[dict[str, int], pl.DataFrame | None]:
    """Copy the reporting tables into `temp`, masking phone numbers; return the row counts and
    the purchase days (None when the warehouse has no models yet)."""
    con.create_function("mask_phone", mask_phone, ["VARCHAR"], "VARCHAR")
    con.create_function("mask_phones_in", mask_phones_in, ["VARCHAR"], "VARCHAR")
    con.execute(f"attach {_literal(temp)} as snapshot")
    try:
        tables = _tables(con)
        counts = {}
        for schema in sorted({schema for schema, _ in tables} | {"reports"}):
            con.execute(f"create schema snapshot.{_ident(schema)}")
        for schema, table in tables:
            name = f"{_ident(schema)}.{_ident(table)}"
            con.execute(
                f"create table snapshot.{name} as select {_columns(con, schema, table)} from {name}"
            )
            counts[f"{schema}.{table}"] = con.execute(
                f"select count(*) from snapshot.{name}"
            ).fetchone()[0]
        events = None
        if _exists(con, "intermediate", "int_purchase_days_aggregated"):
            con.execute(f"create table snapshot.{PURCHASE_DAYS_TABLE} as {PURCHASE_DAYS_SQL}")
            events = con.sql(f"select * from snapshot.{PURCHASE_DAYS_TABLE}").pl()
            counts[PURCHASE_DAYS_TABLE] = events.height
        con.execute("checkpoint snapshot")
    finally:
        con.execute("detach snapshot")
        con.remove_function("mask_phone")
        con.remove_function("mask_phones_in")
    return counts, events


def _tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    found = con.execute(
        """select table_schema, table_name from information_schema.tables
           where table_catalog = current_database() and table_type = 'BASE TABLE'
           order by 1, 2"""
    ).fetchall()
    return [(s, t) for s, t in found if s in SCHEMAS or (s, t) in TABLES]


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> str:
    columns = con.execute(
        """select column_name, data_type from information_schema.columns
           where table_catalog = current_database() and table_schema = ? and table_name = ?
           order by ordinal_position""",
        [schema, table],
    ).fetchall()
    selected = []
    for name, data_type in columns:
        column = _ident(name)
        if data_type == "VARCHAR" and name in PHONE_COLUMNS:
            selected.append(f"{MASK_PHONE_SQL.format(column=column)} as {column}")
        elif data_type == "VARCHAR" and name in FREE_TEXT_COLUMNS:
            selected.append(f"{MASK_PHONES_IN_SQL.format(column=column)} as {column}")
        else:
            selected.append(column)
    return ", ".join(selected)


def replenishment_backtest(
    events: pl.DataFrame | None, window_days: int = 7, known: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The `postpurchase backtest` protocol on the warehouse's purchase days: one row per
    scorer (the model first), with the cutoffs, candidates and base rate it was judged on;
    and the per-cutoff scores it averaged (BACKTEST_CUTOFFS_TABLE).

    A cutoff's scores in ``known`` (the last snapshot's) are reused when the events up to
    the end of its window are unchanged, counted and summed, and so is the code: scoring a
    cutoff fits the model on all the history before it, minutes a day for a big shop, and
    the cutoffs move only once a fortnight. Empty when there is not enough history for one
    cutoff with a full window after it.
    """
    if events is None or events.is_empty():
        return pl.DataFrame(schema=BACKTEST_SCHEMA), pl.DataFrame(schema=CUTOFF_SCHEMA)
    fingerprints = {
        cutoff: _fingerprint(events, cutoff, window_days)
        for cutoff in default_cutoffs(events, window_days)
    }
    reusable = _known_scores(known, window_days)
    per_cutoff = []
    for cutoff, fingerprint in fingerprints.items():
        score = reusable.get((cutoff, fingerprint))
        if score is None:
            score = score_cutoff_metrics(events, cutoff, window_days)
        if score is not None:
            per_cutoff.append({**score, "fingerprint": fingerprint})
    result = summarize(per_cutoff, window_days)
    cutoffs = [dt.date.fromisoformat(c) for c in result["cutoffs"]]
    if not cutoffs or not result["candidates"]:
        return pl.DataFrame(schema=BACKTEST_SCHEMA), pl.DataFrame(schema=CUTOFF_SCHEMA)
    scorers = [("model", result["model"])] + [(b, result["baselines"][b]) for b in BASELINES]
    summary = pl.DataFrame(
        [
            {
                "scorer": name,
                **metrics,
                "window_days": window_days,
                "cutoff_count": len(cutoffs),
                "first_cutoff": cutoffs[0],
                "last_cutoff": cutoffs[-1],
                "candidates": result["candidates"],
                "base_rate": result["base_rate"],
            }
            for name, metrics in scorers
        ],
        schema=BACKTEST_SCHEMA,
    )
    rows = [
        {
            "cutoff": score["cutoff"],
            "window_days": window_days,
            "events_seen": score["fingerprint"][0],
            "quantity_seen": score["fingerprint"][1],
            "code_version": score["fingerprint"][2],
            "candidates": score["candidates"],
            "positives": score["positives"],
            "scorer": name,
            **metrics,
        }
        for score in per_cutoff
        for name, metrics in score["scores"].items()
    ]
    return summary, pl.DataFrame(rows, schema=CUTOFF_SCHEMA)


BACKTEST_SCHEMA = {
    "scorer": pl.String,
    **{metric: pl.Float64 for metric in METRICS},
    "window_days": pl.Int64,
    "cutoff_count": pl.Int64,
    "first_cutoff": pl.Date,
    "last_cutoff": pl.Date,
    "candidates": pl.Int64,
    "base_rate": pl.Float64,
}
CUTOFF_SCHEMA = {
    "cutoff": pl.Date,
    "window_days": pl.Int64,
    "events_seen": pl.Int64,
    "quantity_seen": pl.Float64,
    "code_version": pl.String,
    "candidates": pl.Int64,
    "positives": pl.Int64,
    "scorer": pl.String,
    **{metric: pl.Float64 for metric in METRICS},
}


def _code_version() -> str:
    """Scores from other scoring code are not reused."""
    digest = hashlib.sha1()
    for module in (cadence, backtest):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:12]


def _fingerprint(events: pl.DataFrame, cutoff: dt.date, window_days: int) -> tuple:
    """What a cutoff's scores depend on: the events before the end of its window."""
    seen = events.filter(pl.col("day") < cutoff + dt.timedelta(days=window_days))
    quantity = seen["quantity"].sum() if seen.height else 0.0
    return (seen.height, round(float(quantity), 6), _code_version())


def _known_scores(known: pl.DataFrame | None, window_days: int) -> dict[tuple, dict]:
    """The last snapshot's per-cutoff scores by (cutoff, fingerprint)."""
    if known is None or known.is_empty() or set(known.columns) != set(CUTOFF_SCHEMA):
        return {}
    found: dict[tuple, dict] = {}
    for row in known.filter(pl.col("window_days") == window_days).iter_rows(named=True):
        fingerprint = (row["events_seen"], round(row["quantity_seen"], 6), row["code_version"])
        score = found.setdefault(
            (row["cutoff"], fingerprint),
            {
                "cutoff": row["cutoff"],
                "candidates": row["candidates"],
                "positives": row["positives"],
                "scores": {},
            },
        )
        score["scores"][row["scorer"]] = {m: row[m] for m in METRICS}
    expected = {"model", *BASELINES}
    return {key: s for key, s in found.items() if set(s["scores"]) == expected}


def _known_cutoffs(target: Path) -> pl.DataFrame | None:
    """The per-cutoff backtest scores of the snapshot in place, if it has them."""
    if not target.exists():
        return None
    try:
        with duckdb.connect() as con:
            con.execute(f"attach {_literal(target)} as snapshot (read_only)")
            return con.sql(f"select * from snapshot.{BACKTEST_CUTOFFS_TABLE}").pl()
    except duckdb.Error:
        return None  # an older snapshot without the table: score every cutoff


def _write_reporting(
    snap: duckdb.DuckDBPyConnection,
    as_of: dt.datetime | None,
    published_at: dt.datetime,
    backtest: pl.DataFrame,
    backtest_cutoffs: pl.DataFrame,
) -> None:
    snap.execute(
        f"create table {INFO_TABLE} (as_of timestamptz, published_at timestamptz not null)"
    )
    snap.execute(f"insert into {INFO_TABLE} values (?, ?)", [as_of, published_at])
    snap.execute(f"create table {BACKTEST_TABLE} as select * from backtest")
    snap.execute(f"create table {BACKTEST_CUTOFFS_TABLE} as select * from backtest_cutoffs")


# What the dashboards would otherwise compute over every order, text and decision on each
# visit: name -> (the copied tables it reads, its query). Each is what a dashboards/data.py
# query returns with no flow chosen, kept per flow (and per day where the pages pick days),
# so a page filters or sums a few thousand rows. The pages fall back to the big tables on a
# snapshot published before a summary existed. Days are UTC days, as the pages count them.
SUMMARIES: dict[str, tuple[tuple[str, ...], str]] = {
    # Per day and flow: attributed revenue and orders (by order day); texts sent, their cost
    # and the customers texted; texts delivered and opted out (by send day).
    "reports.daily_attributed": (
        ("marts.order_attributions",),
        """select ordered_at::date as day, flow, sum(attributed_revenue) as revenue,
                  count(*) filter (where attributed_revenue > 0) as orders
           from marts.order_attributions where is_attributed group by all order by 1, 2""",
    ),
    "reports.daily_sent": (
        ("ops.outbox",),
        """select sent_at::date as day, flow, count(*) as sent,
                  coalesce(sum(cost), 0)::double as cost,
                  count(distinct customer_id) as customers
           from ops.outbox where state = 'sent' group by all order by 1, 2""",
    ),
    "reports.daily_engagement": (
        ("marts.message_engagement",),
        """select sent_at::date as day, flow,
                  count(*) filter (where is_delivered) as delivered,
                  count(*) filter (where is_delivered and is_opted_out) as opted_out
           from marts.message_engagement group by all order by 1, 2""",
    ),
    "reports.order_currencies": (
        ("marts.order_attributions",),
        """select currency, count(*) as orders from marts.order_attributions
           where currency is not null group by 1 order by 2 desc, 1""",
    ),
    "reports.flow_funnel": (
        (
            "ops.send_decisions",
            "ops.outbox",
            "marts.message_engagement",
            "marts.order_attributions",
        ),
        """with decided as (
               select flow, count(distinct idempotency_key) as came_due,
                      count(distinct idempotency_key) filter (where action = 'defer')
                          as deferred_once
               from ops.send_decisions group by 1
           ),
           outcome as (
               select flow,
                      count(*) filter (where state = 'sent') as sent,
                      count(*) filter (where state = 'suppressed') as suppressed,
                      count(*) filter (where state = 'held_out') as held_out,
                      count(*) filter (where state in ('failed', 'unknown')) as failed,
                      count(*) as decided_finally
               from ops.outbox group by 1
           ),
           engaged as (
               select flow, count(*) filter (where is_delivered) as delivered,
                      count(*) filter (where is_delivered and is_clicked) as clicked,
                      count(*) filter (where is_delivered and is_replied) as replied,
                      count(*) filter (where is_delivered and is_opted_out) as opted_out
               from marts.message_engagement group by 1
           ),
           converted as (
               select flow, count(*) as converted, sum(attributed_revenue) as revenue
               from marts.order_attributions
               where is_attributed and attributed_revenue > 0 group by 1
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
           order by came_due desc""",
    ),
    "reports.not_sent_reasons": (
        ("ops.send_decisions",),
        """select flow, action, reason, count(distinct idempotency_key) as messages
           from ops.send_decisions where action in ('suppress', 'defer')
           group by all order by messages desc""",
    ),
    "reports.delivery_outcomes": (
        ("marts.message_engagement",),
        """select flow, delivery_status, error_code, count(*) as messages
           from marts.message_engagement group by all order by messages desc""",
    ),
    "reports.daily_opt_outs": (
        ("marts.inbound_replies",),
        """select received_at::date as day, in_reply_to_flow, count(*) as opt_outs
           from marts.inbound_replies where action = 'opt_out' group by all order by 1""",
    ),
    "reports.product_cadence": (
        ("marts.replenishment_predictions",),
        """select product_id, coalesce(title, product_id) as title, category, is_consumable,
                  usage_days, count(*) as customers,
                  count(*) filter (where purchase_days > 1) as repeat_customers,
                  median(expected_gap_days) as median_gap_days,
                  quantile_cont(expected_gap_days, 0.25) as gap_days_p25,
                  quantile_cont(expected_gap_days, 0.75) as gap_days_p75,
                  avg(probability_next_window) as mean_probability_7d
           from marts.replenishment_predictions
           group by all order by customers desc, title""",
    ),
    "reports.runout_dates": (
        ("marts.replenishment_predictions",),
        """select predicted_next_date as day, count(*) as customers
           from marts.replenishment_predictions
           where is_consumable and predicted_next_date is not null
           group by 1 order by 1""",
    ),
    # Per flow and day: the customers it texted for the first time (the planner's volume).
    "reports.daily_first_texts": (
        ("ops.outbox",),
        """with firsts as (
               select flow, customer_id, min(sent_at)::date as day from ops.outbox
               where state = 'sent' group by all
           )
           select flow, day, count(*) as customers from firsts group by all order by 1, 2""",
    ),
}


def write_summaries(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Write `SUMMARIES` into the snapshot `con` has open, those whose tables it holds; their
    row counts. Takes a connection, not a path, so it also runs on a copied snapshot."""
    con.execute("set TimeZone = 'UTC'")
    # An outbox the sender never wrote to lacks its columns (cost, ...): no outbox, as the
    # pages read it (dashboards/data.py, tables).
    present = {
        f"{schema}.{table}"
        for schema, table, columns in con.execute(
            """select table_schema, table_name, list(column_name)
               from information_schema.columns
               where table_catalog = current_database() group by all"""
        ).fetchall()
        if (schema, table) != ("ops", "outbox") or "cost" in columns
    }
    con.execute("create schema if not exists reports")
    counts = {}
    for name, (sources, sql) in SUMMARIES.items():
        if not set(sources) <= present:
            continue
        try:
            con.execute(f"create or replace table {name} as {sql}")
        except duckdb.Error as exc:
            # A table of another shape (an outbox from before a migration, say): the pages
            # read the big tables instead, and a summary never stops a publish.
            log.warning("summary %s not written: %s", name, exc)
            continue
        counts[name] = con.execute(f"select count(*) from {name}").fetchone()[0]
    return counts


def read_info(path: Path) -> dict | None:
    """The snapshot's as_of and published_at, or None when there is no snapshot."""
    if not Path(path).exists():
        return None
    # Attached, not opened by path: DuckDB shares one instance per path within a process, and
    # an instance opened before the last publish still reads the file it opened.
    with duckdb.connect() as con:
        con.execute(f"attach {_literal(Path(path))} as snapshot (read_only)")
        row = con.execute(f"select as_of, published_at from snapshot.{INFO_TABLE}").fetchone()
    return {"as_of": row[0], "published_at": row[1]} if row else None


@contextmanager
def _publisher_lock(data_dir: Path) -> Iterator[None]:
    with open(data_dir / ".reporting.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(target: Path) -> None:
    """Temp files of a publisher that died: safe to remove while we hold the publisher lock."""
    for leftover in target.parent.glob(f".{target.name}.*.tmp*"):
        leftover.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            """select count(*) from information_schema.tables
               where table_catalog = current_database()
                 and table_schema = ? and table_name = ?""",
            [schema, table],
        ).fetchone()[0]
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    # ATTACH takes no parameters; the path is ours (data dir + a random name), quoted anyway.
    return "'" + str(path).replace("'", "''") + "'"
