"""Numbers and statistics in words a manager reads: plain functions, no Streamlit."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable, Sequence

import polars as pl

from pipelines.experiments.spec import METRICS

DASH = "–"
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$"}

# Plivo's delivery error codes (the ErrorCode of a status callback) that a reader will meet.
PLIVO_ERRORS = {
    "10": "invalid message",
    "20": "network error (transient)",
    "30": "blocked by the carrier's spam filter",
    "40": "invalid source number",
    "50": "invalid destination number",
    "60": "loop detected",
    "70": "destination permanently unavailable",
    "80": "destination temporarily unavailable",
    "90": "no route available",
    "100": "prohibited by the carrier",
    "110": "message too long",
    "200": "recipient opted out (STOP) at the carrier",
    "300": "failed to dispatch",
    "420": "expired in Plivo's queue",
    "900": "insufficient credit",
    "1000": "unknown error",
}

_BASE_LABELS = {
    "delivered": "Delivered",
    "clicked": "Clicked",
    "replied": "Replied",
    "opted_out": "Opted out",
    "converted": "Ordered",
    "revenue": "Revenue per customer",
    "revenue_per_delivered": "Revenue per delivered text",
}


def missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def money(value: float | None, currency: str = "USD", decimals: int | None = None) -> str:
    """`$1,234` for large amounts, `$12.34` for small ones; other currencies by code."""
    if missing(value):
        return DASH
    places = decimals if decimals is not None else (0 if abs(value) >= 1000 else 2)
    sign = "-" if value < 0 and round(abs(value), places) > 0 else ""
    body = f"{abs(value):,.{places}f}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{sign}{symbol}{body}" if symbol else f"{sign}{body} {currency}"


def percent(value: float | None, decimals: int = 1, signed: bool = False) -> str:
    """0.1234 -> `12.3%` (`+12.3%` when signed)."""
    if missing(value):
        return DASH
    return f"{value:+.{decimals}%}" if signed else f"{value:.{decimals}%}"


def count(value: float | None) -> str:
    return DASH if missing(value) else f"{round(value):,}"


def p_value(value: float | None) -> str:
    if missing(value):
        return DASH
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def interval(low: float | None, high: float | None, formatter=percent, **kwargs) -> str:
    if missing(low) or missing(high):
        return DASH
    return f"{formatter(low, **kwargs)} to {formatter(high, **kwargs)}"


def formatted(column: str | pl.Expr, formatter: Callable[[object], str]) -> pl.Expr:
    """A column as display text, a dash where it is null."""
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.map_elements(formatter, return_dtype=pl.String).fill_null(DASH)


def money_interval(low: float | None, high: float | None, currency: str = "USD") -> str:
    return interval(low, high, money, currency=currency)


def flow_label(flow: str | None) -> str:
    """`replenishment_reminder` -> `Replenishment reminder`."""
    return DASH if not flow else flow.replace("_", " ").capitalize()


def metric_label(metric: str) -> str:
    """`converted_7d` -> `Ordered within 7 days`."""
    spec = METRICS.get(metric)
    if spec is None:
        return metric
    days = "1 day" if spec.window_days == 1 else f"{spec.window_days} days"
    return f"{_BASE_LABELS.get(spec.base, spec.base)} within {days}"


def metric_value(value: float | None, metric: str, currency: str = "USD") -> str:
    """A rate as a percentage, revenue as money."""
    spec = METRICS.get(metric)
    if spec is not None and spec.kind == "binary":
        return percent(value, 2)
    return money(value, currency, decimals=2)


def ago(then: dt.datetime, now: dt.datetime) -> str:
    seconds = (now - then).total_seconds()
    if seconds < 90:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size * 1.5 or unit == "minute":
            n = round(seconds / size)
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


def day(value: dt.date | dt.datetime | None) -> str:
    """`Sep 10, 2026`."""
    if value is None:
        return DASH
    return f"{value:%b} {value.day}, {value.year}"


# --- significance in words ---------------------------------------------------------------------

BETTER, WORSE, UNCLEAR, EARLY = "better", "worse", "unclear", "too early"
BREACHED, HOLDING, NOT_SHOWN = "breached", "within margin", "not yet shown"


def significance(
    *,
    role: str,
    analysis: str,
    alpha: float,
    lift: float | None,
    p_adjusted: float | None,
    p_raw: float | None,
    chance_to_win: float | None,
    higher_is_better: bool,
    breached: bool = False,
    non_inferior: bool = False,
    progress: float | None = None,
) -> tuple[str, str]:
    """(category, sentence) for one comparison with control, in a manager's words."""
    if role == "guardrail":
        if breached:
            return BREACHED, "Breached: worse than control beyond the margin"
        if non_inferior:
            return HOLDING, "Holding: no worse than the margin allows"
        return NOT_SHOWN, "Not yet shown within the margin"
    if analysis == "fixed" and progress is not None and progress < 1:
        return EARLY, f"Too early: a fixed test is read at its planned sample ({progress:.0%})"
    good = None if missing(lift) else (lift > 0) == higher_is_better
    if analysis == "bayesian":
        if missing(chance_to_win):
            return UNCLEAR, "Not enough data yet"
        chance = chance_to_win if higher_is_better else 1 - chance_to_win
        if chance >= 1 - alpha:
            return BETTER, f"Very likely better ({chance:.0%} chance)"
        if chance <= alpha:
            return WORSE, f"Very likely worse ({1 - chance:.0%} chance)"
        return UNCLEAR, f"Unclear: {chance:.0%} chance of beating control"
    p = p_raw if missing(p_adjusted) else p_adjusted
    if missing(p) or good is None:
        return UNCLEAR, "Not enough data yet"
    if p < alpha:
        if good:
            return BETTER, f"Better than control, beyond chance (p {p_value(p)})"
        return WORSE, f"Worse than control, beyond chance (p {p_value(p)})"
    return UNCLEAR, "No clear difference yet"


# --- opt-out spikes ---------------------------------------------------------------------------


def spikes(
    counts: Sequence[float],
    window: int = 14,
    sigmas: float = 3.0,
    minimum: int = 3,
    history: int = 5,
) -> list[bool]:
    """Which days stand out: at least `minimum`, and more than `sigmas` Poisson standard
    deviations above the median of the `window` days before it. A day with fewer than
    `history` days before it has nothing to stand out from, so it is never a spike."""
    flags = []
    for i, value in enumerate(counts):
        before = list(counts[max(0, i - window) : i])
        if len(before) < history:
            flags.append(False)
            continue
        baseline = statistics.median(before)
        threshold = baseline + sigmas * math.sqrt(max(baseline, 1.0))
        flags.append(value >= minimum and value > threshold)
    return flags
