"""Backtest of the replenishment model against simple baselines on any order history.

Protocol. Purchase events are the distinct (customer, product, day) with quantity > 0 from
orders that were not cancelled, quantities summed per day. At each cutoff the candidates are
the customer-product pairs bought in the 365 days before it; the label is 1 when the pair is
bought again in [cutoff, cutoff + window). Every score is computed from the events before the
cutoff only (the model's own training labels come from windows that end by the cutoff). Each
metric is computed per cutoff and then averaged over cutoffs, so a busy period does not
outweigh a quiet one.

Metrics. ROC AUC with tied scores given their average rank (the Mann-Whitney statistic);
average precision as scikit-learn defines it (the step-wise area under the precision-recall
curve, ties forming one step); precision among the top 1% of candidates, where a tie at the
boundary counts at its expected value under a random order (so the result does not depend on
row order); the Brier score for the model only. Baselines are rankings, not probabilities, so
their Brier score is None rather than a number from an arbitrary mapping.

Baselines (higher score = more likely):
  frequency               number of purchase days of the pair
  recency                 minus the days since the pair's last purchase
  frequency_over_recency  purchase days / days since the last purchase
  due_product_median      minus the distance in days between last purchase + the product's
                          median gap and the window (0 when the due date falls inside it)
  due_customer_mean       the same with the pair's own mean gap; a pair bought once uses its
                          product's median gap, and a product never rebought the shop's
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import math
from pathlib import Path

import click
import numpy as np
import polars as pl
from scipy.stats import rankdata

from pipelines import cadence
from pipelines.ingest import parse_timestamp

PAIR = ["customer_id", "product_id"]
LOOKBACK_DAYS = 365
CANCELLED = ("cancelled", "canceled")
READABLE = (".csv", ".parquet", ".jsonl", ".ndjson")
BASELINES = (
    "frequency",
    "recency",
    "frequency_over_recency",
    "due_product_median",
    "due_customer_mean",
)
METRICS = ("auc", "average_precision", "precision_at_1pct", "brier")
TOP_FRACTION = 0.01
# Default cutoffs: every CUTOFF_STEP_DAYS over the last DEFAULT_SPAN_DAYS with a full window.
CUTOFF_STEP_DAYS = 14
DEFAULT_SPAN_DAYS = 84
CUTOFF_GRID_START = dt.date(2000, 1, 3)  # a Monday; cutoffs fall every 14 days from it


# Metrics -----------------------------------------------------------------------------------


def roc_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """P(score of a positive > score of a negative), ties counting one half; None if one class."""
    y = np.asarray(y, dtype=bool)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(score)
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(y: np.ndarray, score: np.ndarray) -> float | None:
    """sum over thresholds of (recall_k - recall_{k-1}) * precision_k; None without positives."""
    y = np.asarray(y, dtype=np.float64)
    total = y.sum()
    if total == 0:
        return None
    order = np.argsort(-np.asarray(score), kind="stable")
    s, hits = np.asarray(score)[order], y[order]
    # One threshold per distinct score: the last position of each run of equal scores.
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(hits)[ends]
    precision = tp / (ends + 1)
    recall = tp / total
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def precision_at(y: np.ndarray, score: np.ndarray, fraction: float = TOP_FRACTION) -> float | None:
    """Share of positives among the top ceil(fraction * n) scores; ties at the cut averaged."""
    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if len(y) == 0:
        return None
    k = max(1, math.ceil(fraction * len(y)))
    threshold = np.sort(score)[::-1][k - 1]
    above = score > threshold
    tied = score == threshold
    # The k - above slots left go to tied rows; in expectation they hold the tied hit rate.
    hits = y[above].sum() + (k - above.sum()) * y[tied].mean()
    return float(hits / k)


def brier(y: np.ndarray, probability: np.ndarray) -> float | None:
    """Mean squared error of a probability; None for an empty set."""
    if len(y) == 0:
        return None
    return float(np.mean((np.asarray(probability) - np.asarray(y)) ** 2))


def evaluate(y: np.ndarray, score: np.ndarray, is_probability: bool) -> dict[str, float | None]:
    return {
        "auc": roc_auc(y, score),
        "average_precision": average_precision(y, score),
        "precision_at_1pct": precision_at(y, score),
        "brier": brier(y, score) if is_probability else None,
    }


# Reading the landing format ----------------------------------------------------------------


def _files(path: str | Path) -> list[Path]:
    """The readable files a path names: a file, a directory (recursively) or a glob."""
    matches = [Path(p) for p in glob.glob(str(path), recursive=True)] or [Path(path)]
    files: list[Path] = []
    for match in matches:
        candidates = sorted(match.rglob("*")) if match.is_dir() else [match]
        files.extend(
            f
            for f in candidates
            # Hidden files are writers' temporaries (see landing.write_landing_file).
            if f.is_file() and f.suffix.lower() in READABLE and not f.name.startswith(".")
        )
    if not files:
        raise FileNotFoundError(f"no CSV, Parquet or JSONL files at {path}")
    return sorted(set(files))


def read_entity(path: str | Path) -> pl.DataFrame:
    """Every file under ``path`` as text columns, stacked (columns may differ between files)."""
    frames = []
    for f in _files(path):
        suffix = f.suffix.lower()
        if suffix == ".csv":
            frame = pl.read_csv(f, infer_schema=False)
        elif suffix == ".parquet":
            frame = pl.read_parquet(f)
        else:
            frame = pl.read_ndjson(f)
        # Text first, like the ingest: one parser below, whatever each file's types were.
        frames.append(frame.select(pl.all().cast(pl.String)))
    return pl.concat(frames, how="diagonal_relaxed")


def purchase_events(orders: pl.DataFrame, order_lines: pl.DataFrame) -> pl.DataFrame:
    """Distinct (customer, product, day) purchases with their summed quantity.

    The day is the calendar date written in ``ordered_at`` (the shop's local day), not
    shifted to UTC: a reminder cadence is about the customer's days.
    """
    orders = orders.with_columns(
        pl.col(c).cast(pl.String) for c in ("order_id", "customer_id", "ordered_at")
    )
    if "status" not in orders.columns:
        orders = orders.with_columns(pl.lit(None, pl.String).alias("status"))
    # Orders are versioned by updated_at (latest wins). Parsed, not sorted as text: exports mix
    # offsets ("Z", "-05:00"), and text order is not time order across them.
    if "updated_at" in orders.columns:
        orders = orders.sort(
            parse_timestamp(pl.col("updated_at").cast(pl.String)), nulls_last=False
        )
    orders = orders.unique("order_id", keep="last", maintain_order=True)
    if "line_id" in order_lines.columns:
        order_lines = order_lines.unique(["order_id", "line_id"], keep="last", maintain_order=True)
    return (
        order_lines.select(
            pl.col("order_id").cast(pl.String),
            pl.col("product_id").cast(pl.String),
            pl.col("quantity").cast(pl.Float64, strict=False),
        )
        .join(
            orders.filter(
                ~pl.col("status")
                .cast(pl.String)
                .str.strip_chars()
                .str.to_lowercase()
                .is_in(CANCELLED)
                | pl.col("status").is_null()
            ).select(
                "order_id",
                "customer_id",
                pl.col("ordered_at")
                .str.strip_chars()
                .str.slice(0, 10)
                .str.to_date("%Y-%m-%d", strict=False)
                .alias("day"),
            ),
            on="order_id",
        )
        .filter(
            (pl.col("quantity") > 0)
            & pl.col("day").is_not_null()
            & pl.col("customer_id").is_not_null()
            & pl.col("product_id").is_not_null()
        )
        .group_by(*PAIR, "day")
        .agg(pl.col("quantity").sum())
        .sort(*PAIR, "day")
    )


# The protocol ------------------------------------------------------------------------------


def default_cutoffs(events: pl.DataFrame, window_days: int = 7) -> list[dt.date]:
    """Every 14 days back over 12 weeks from the last cutoff whose window is fully observed.

    The cutoffs lie on a fixed two-week grid, so they stay the same from one day to the next
    and a daily report scores a new cutoff once a fortnight instead of six every day. The
    last day of an export is usually partial, so the last window ends the day before it.
    """
    last_day = events["day"].max()
    first_day = events["day"].min()
    if last_day is None:
        return []
    latest = last_day - dt.timedelta(days=window_days)
    latest -= dt.timedelta(days=(latest - CUTOFF_GRID_START).days % CUTOFF_STEP_DAYS)
    cutoffs = [
        latest - dt.timedelta(days=step) for step in range(0, DEFAULT_SPAN_DAYS, CUTOFF_STEP_DAYS)
    ]
    return sorted(c for c in cutoffs if c > first_day)


def _due_distance(due: pl.Expr, cutoff: dt.date, window_days: int) -> pl.Expr:
    """Days between a due date and the window [cutoff, cutoff + window); 0 inside it."""
    start = pl.lit(cutoff)
    end = pl.lit(cutoff + dt.timedelta(days=window_days - 1))
    return (
        pl.when(due < start)
        .then((start - due).dt.total_days())
        .when(due > end)
        .then((due - end).dt.total_days())
        .otherwise(0)
    )


def score_cutoff(events: pl.DataFrame, cutoff: dt.date, window_days: int = 7) -> pl.DataFrame:
    """Candidates at one cutoff with their label, the model's probability and every baseline.

    Scores see ``events`` before the cutoff only; the label is the one thing read after it.
    """
    past = events.filter(pl.col("day") < cutoff).sort(*PAIR, "day")
    same_pair = (pl.col("customer_id") == pl.col("customer_id").shift(1)) & (
        pl.col("product_id") == pl.col("product_id").shift(1)
    )
    gaps = past.with_columns(pl.col("day").diff().dt.total_days().alias("gap")).filter(same_pair)
    product_median = gaps.group_by("product_id").agg(pl.col("gap").median().alias("product_gap"))
    shop_median = gaps["gap"].median()
    shop_median = float(shop_median) if shop_median is not None else 30.0
    pair_mean = gaps.group_by(PAIR).agg(pl.col("gap").mean().alias("pair_gap"))

    start = cutoff - dt.timedelta(days=LOOKBACK_DAYS)
    candidates = (
        past.group_by(PAIR)
        .agg(pl.len().alias("purchase_days"), pl.col("day").max().alias("last"))
        .filter(pl.col("last") >= start)
    )
    bought = (
        events.filter(
            (pl.col("day") >= cutoff) & (pl.col("day") < cutoff + dt.timedelta(days=window_days))
        )
        .select(PAIR)
        .unique()
        .with_columns(pl.lit(1).alias("label"))
    )
    model = cadence.predict(past, None, cutoff, window_days=window_days).select(
        *PAIR, pl.col("probability_next_window").alias("model")
    )
    recency = (pl.lit(cutoff) - pl.col("last")).dt.total_days()
    product_gap = pl.col("product_gap").fill_null(shop_median)
    return (
        candidates.join(bought, on=PAIR, how="left")
        .join(model, on=PAIR, how="left")
        .join(product_median, on="product_id", how="left")
        .join(pair_mean, on=PAIR, how="left")
        .with_columns(
            pl.col("label").fill_null(0),
            pl.col("purchase_days").cast(pl.Float64).alias("frequency"),
            (-recency).cast(pl.Float64).alias("recency"),
            (pl.col("purchase_days") / recency).alias("frequency_over_recency"),
            (
                -_due_distance(
                    pl.col("last") + pl.duration(days=product_gap.round()), cutoff, window_days
                )
            )
            .cast(pl.Float64)
            .alias("due_product_median"),
            (
                -_due_distance(
                    pl.col("last")
                    + pl.duration(days=pl.col("pair_gap").fill_null(product_gap).round()),
                    cutoff,
                    window_days,
                )
            )
            .cast(pl.Float64)
            .alias("due_customer_mean"),
        )
        .select(*PAIR, "label", "model", *BASELINES)
        .sort(PAIR)
    )


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def backtest_events(
    events: pl.DataFrame, cutoffs: list[dt.date] | None = None, window_days: int = 7
) -> dict:
    """The protocol over purchase events (customer_id, product_id, day, quantity)."""
    cutoffs = sorted(cutoffs) if cutoffs else default_cutoffs(events, window_days)
    scores = [score_cutoff_metrics(events, cutoff, window_days) for cutoff in cutoffs]
    return summarize([s for s in scores if s is not None], window_days)


def score_cutoff_metrics(
    events: pl.DataFrame, cutoff: dt.date, window_days: int = 7
) -> dict | None:
    """One cutoff's metrics for the model and each baseline; None without candidates."""
    scored = score_cutoff(events, cutoff, window_days)
    if scored.is_empty():
        return None
    y = scored["label"].to_numpy()
    return {
        "cutoff": cutoff,
        "candidates": len(y),
        "positives": int(y.sum()),
        "scores": {
            "model": evaluate(y, scored["model"].to_numpy(), is_probability=True),
            **{
                name: evaluate(y, scored[name].to_numpy(), is_probability=False)
                for name in BASELINES
            },
        },
    }


def summarize(per_cutoff: list[dict], window_days: int) -> dict:
    """Metrics averaged over cutoffs (each cutoff counts the same), as backtest_events gives."""
    per_cutoff = sorted(per_cutoff, key=lambda s: s["cutoff"])
    candidates = sum(s["candidates"] for s in per_cutoff)
    positives = sum(s["positives"] for s in per_cutoff)

    def averaged(name: str) -> dict[str, float | None]:
        return {m: _mean([s["scores"][name][m] for s in per_cutoff]) for m in METRICS}

    return {
        "cutoffs": [s["cutoff"].isoformat() for s in per_cutoff],
        "window_days": window_days,
        "candidates": candidates,
        "base_rate": positives / candidates if candidates else None,
        "model": averaged("model"),
        "baselines": {name: averaged(name) for name in BASELINES},
    }


def run_backtest(
    orders_path: str | Path,
    order_lines_path: str | Path,
    cutoffs: list[dt.date] | None = None,
    window_days: int = 7,
) -> dict:
    """Read orders and order lines in the landing format and run the protocol."""
    events = purchase_events(read_entity(orders_path), read_entity(order_lines_path))
    if events.is_empty():
        # Usually ordered_at is not ISO 8601 or no order id matches a line: say so, loudly.
        raise ValueError(
            "no purchase events: check that ordered_at starts with YYYY-MM-DD, that order "
            "lines share order_id with orders, and that quantities are positive"
        )
    return backtest_events(events, cutoffs, window_days)


def format_table(result: dict) -> str:
    """The result as a fixed-width table for the terminal."""

    def cell(v: float | None) -> str:
        return f"{v:>9.4f}" if v is not None else f"{'-':>9}"

    base_rate = result["base_rate"]
    rate = f"{base_rate:.4f}" if base_rate is not None else "-"
    lines = [
        f"cutoffs: {', '.join(result['cutoffs'])}",
        f"window: {result['window_days']} days   candidates: {result['candidates']:,}   "
        f"base rate: {rate}",
        "",
        f"{'scorer':<24}{'AUC':>9}{'AP':>9}{'P@1%':>9}{'Brier':>9}",
    ]
    rows = [("model", result["model"]), *result["baselines"].items()]
    for name, metrics in rows:
        lines.append(f"{name:<24}" + "".join(cell(metrics[m]) for m in METRICS))
    return "\n".join(lines)


def _parse_cutoffs(value: str | None) -> list[dt.date] | None:
    if not value:
        return None
    return [dt.date.fromisoformat(part.strip()) for part in value.split(",") if part.strip()]


@click.command("backtest")
@click.option("--orders", "orders_path", required=True, help="Orders: file, directory or glob.")
@click.option(
    "--order-lines", "order_lines_path", required=True, help="Order lines: file, dir or glob."
)
@click.option("--cutoffs", default=None, help="Comma-separated dates (default: last 12 weeks).")
@click.option("--window-days", default=7, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "json_path", default=None, type=click.Path(), help="Write JSON here.")
def backtest_command(
    orders_path: str,
    order_lines_path: str,
    cutoffs: str | None,
    window_days: int,
    json_path: str | None,
) -> None:
    """Backtest the replenishment model against baselines on an order history."""
    result = run_backtest(orders_path, order_lines_path, _parse_cutoffs(cutoffs), window_days)
    click.echo(format_table(result))
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
