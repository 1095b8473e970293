"""Overview, for a manager: what the texts earn and cost, and whether they earn it at all."""

import datetime as dt

import altair as alt
import polars as pl
import streamlit as st

from dashboards import data, ui
from dashboards.format import (
    count,
    day,
    flow_label,
    formatted,
    missing,
    money,
    money_interval,
    percent,
)

snap = ui.page(
    "Overview",
    "What the texts earn and what they cost over the last 7 and 30 days, and what they add "
    "beyond the sales that would have happened anyway.",
)
currency = data.currency(snap)
span = data.activity_span(snap)
last_send = span[1] if span else snap.as_of_date
# The hourly sender may have sent after the day the models were built for.
latest = max(snap.as_of_date, last_send)
earliest = min(span[0] if span else last_send, latest - dt.timedelta(days=89))

# --- filters ------------------------------------------------------------------------------------

left, right = st.columns([2, 3])
picked = left.date_input(
    "Dates",
    value=(max(earliest, last_send - dt.timedelta(days=29)), last_send),
    min_value=earliest,
    max_value=latest,
    help="The charts cover these days; the 7- and 30-day totals end on the last of them.",
)
flow_names = data.flows(snap)
chosen = right.multiselect(
    "Flows", flow_names, default=[], placeholder="All flows", format_func=flow_label
)
if not isinstance(picked, tuple | list) or len(picked) != 2:
    st.info("Pick the last day of the range too.")
    st.stop()
start, end = picked
flows = tuple(chosen) or None
if span and end > last_send:
    st.caption(
        f"No texts were sent after {day(last_send)} (the sender was paused); the data runs "
        f"to {day(snap.as_of_date)}."
    )
elif end == last_send and last_send < snap.as_of_date:
    st.caption(
        f"The periods end on {day(last_send)}, the last day texts were sent; the data runs to "
        f"{day(snap.as_of_date)}. Move the end date to see later days."
    )

# --- 7 and 30 days ------------------------------------------------------------------------------

month = data.daily_totals(
    data.daily(snap, end - dt.timedelta(days=29), end, flows), end - dt.timedelta(days=29), end
)


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def change(now: float | None, before: float | None, formatter) -> str | None:
    if missing(now) or missing(before):
        return None
    difference = now - before
    if difference == 0:
        return None
    return ("+" if difference > 0 else "-") + formatter(abs(difference))


def points(value: float) -> str:
    return f"{100 * value:.2f} pts"


KPIS = [
    # label, value from totals, formatter, daily series, higher is better, help
    (
        "Attributed revenue",
        lambda t: t["revenue"],
        lambda v: money(v, currency),
        lambda d: d["revenue"],
        True,
        "Orders credited to a text: the last one clicked within 5 days, else the last one "
        "delivered within 24 hours before the order. A reporting convention: some of these "
        "orders would have come anyway (see incremental revenue below).",
    ),
    (
        "Texts sent",
        lambda t: t["sent"],
        count,
        lambda d: d["sent"],
        True,
        "Texts handed to the provider (held-out and suppressed messages are not sent).",
    ),
    (
        "Cost",
        lambda t: t["cost"],
        lambda v: money(v, currency, 2),
        lambda d: d["cost"],
        False,
        "What the provider charges for the segments sent.",
    ),
    (
        "Revenue per text",
        lambda t: ratio(t["revenue"], t["sent"]),
        lambda v: money(v, currency, 2),
        lambda d: (d["revenue"] / d["sent"]).fill_nan(0).fill_null(0),
        True,
        "Attributed revenue divided by texts sent.",
    ),
    (
        "Revenue per customer texted",
        lambda t: ratio(t["revenue"], t["customers"]),
        lambda v: money(v, currency, 2),
        lambda d: (d["revenue"] / d["customers"]).fill_nan(0).fill_null(0),
        True,
        "Attributed revenue divided by the unique customers who got a text.",
    ),
    (
        "Opt-out rate",
        lambda t: ratio(t["opted_out"], t["delivered"]),
        lambda v: percent(v, 2),
        lambda d: (d["opted_out"] / d["delivered"]).fill_nan(0).fill_null(0),
        False,
        "Delivered texts answered with STOP (or a plain-language opt-out).",
    ),
]

for days in (7, 30):
    window_start = end - dt.timedelta(days=days - 1)
    now = data.window_totals(snap, window_start, end, flows)
    before = data.window_totals(
        snap, window_start - dt.timedelta(days=days), window_start - dt.timedelta(days=1), flows
    )
    st.subheader(f"Last {days} days")
    st.caption(
        f"{day(window_start)} to {day(end)}, compared with the {days} days before."
        + (f" {now['orders']:,} orders attributed." if now["orders"] else "")
    )
    series = month.tail(days)
    columns = [column for _ in range(2) for column in st.columns(3)]
    for column, (label, value, formatter, trend, good_up, help_text) in zip(
        columns, KPIS, strict=True
    ):
        current, previous = value(now), value(before)
        delta_format = points if label == "Opt-out rate" else formatter
        column.metric(
            label,
            formatter(current),
            delta=change(current, previous, delta_format),
            delta_color="normal" if good_up else "inverse",
            help=help_text,
            border=True,
            chart_data=trend(series).to_list(),
            chart_type="bar" if label in ("Texts sent", "Cost") else "area",
        )

# --- incremental revenue ------------------------------------------------------------------------

st.subheader("Incremental revenue against holdouts")
st.caption(
    "Each marketing flow keeps a random few customers out of its texts. What the customers "
    "who got the texts spent, minus what the held-out customers spent, per customer, times "
    "the customers texted: the revenue the flow adds, not merely the revenue it touches. "
    "Counted over customers whose window after their first text has passed."
)
incremental = data.incremental(snap)
history = data.incremental_history(snap)
if flows and incremental.height:
    incremental = incremental.filter(pl.col("flow").is_in(flows))
if flows and history.height:
    history = history.filter(pl.col("flow").is_in(flows))
latest = history.filter(pl.col("as_of") == history["as_of"].max()) if history.height else history
if incremental.is_empty() and latest.is_empty():
    st.info("No holdout comparison yet: it needs texts sent by a marketing flow with a holdout.")
else:
    week = incremental.filter(pl.col("window_days") == 7) if incremental.height else incremental
    week_texted = int(week["exposed_n"].sum()) if week.height else 0
    columns = st.columns(3)
    columns[0].metric(
        "Within 7 days of the first text",
        money(week["incremental_revenue"].drop_nulls().sum() if week.height else None, currency),
        help=f"Summed over {week.height} flows and {week_texted:,} customers texted "
        "(the difference in means, without an interval).",
        border=True,
    )
    if latest.height:
        trend = history.group_by("as_of").agg(pl.col("incremental_revenue").sum()).sort("as_of")
        columns[1].metric(
            "Within 30 days of the first text",
            money(latest["incremental_revenue"].drop_nulls().sum(), currency),
            help=(
                f"Summed over {latest.height} flows and {int(latest['units_treated'].sum()):,} "
                "customers texted, as the experiment analysis estimates it (CUPED where it "
                "narrows the interval); the line is its estimate on each day analysed."
            ),
            border=True,
            chart_data=trend["incremental_revenue"].fill_null(0).to_list()
            if trend.height > 1
            else None,
            chart_type="line",
        )
        adding = latest.filter((pl.col("p_value") < 0.05) & (pl.col("incremental_revenue") > 0))
        columns[2].metric(
            "Flows adding revenue, beyond chance",
            f"{adding.height} of {latest.height}",
            help="Flows whose 30-day incremental revenue is above zero at the 5% level.",
            border=True,
        )
        st.dataframe(
            latest.select(
                formatted("flow", flow_label).alias("Flow"),
                pl.col("units_treated").alias("Texted"),
                pl.col("units_held_out").alias("Held out"),
                formatted("revenue_per_unit_treated", lambda v: money(v, currency, 2)).alias(
                    "Per customer texted"
                ),
                formatted("revenue_per_unit_held_out", lambda v: money(v, currency, 2)).alias(
                    "Per customer held out"
                ),
                formatted("incremental_revenue", lambda v: money(v, currency)).alias(
                    "Incremental, 30 days"
                ),
                formatted(
                    pl.struct("ci_incremental_low", "ci_incremental_high"),
                    lambda r: money_interval(
                        r["ci_incremental_low"], r["ci_incremental_high"], currency
                    ),
                ).alias("95% interval"),
            ),
            hide_index=True,
        )
        charted = latest.drop_nulls(["ci_incremental_low", "ci_incremental_high"]).with_columns(
            pl.col("flow").map_elements(flow_label, return_dtype=pl.String)
        )
        if charted.height:
            base = alt.Chart(charted).encode(
                y=alt.Y("flow:N", title=None, axis=alt.Axis(labelLimit=240))
            )
            st.altair_chart(
                (
                    base.mark_rule(strokeWidth=3).encode(
                        x=alt.X(
                            "ci_incremental_low:Q",
                            title=f"Incremental revenue within 30 days ({currency})",
                        ),
                        x2="ci_incremental_high:Q",
                        color=alt.Color("flow:N", scale=ui.flow_colors(), legend=None),
                    )
                    + base.mark_point(filled=True, size=90, color="black").encode(
                        x="incremental_revenue:Q",
                        tooltip=[
                            alt.Tooltip("flow:N", title="Flow"),
                            alt.Tooltip("incremental_revenue:Q", title="Estimate", format=",.0f"),
                            alt.Tooltip("ci_incremental_low:Q", title="From", format=",.0f"),
                            alt.Tooltip("ci_incremental_high:Q", title="To", format=",.0f"),
                        ],
                    )
                    + ui.zero_rule()
                ).properties(height=45 * charted.height + 50),
                width="stretch",
            )
        st.caption(
            "Bars are 95% intervals. With few held-out customers the interval is wide, or "
            "cannot be computed yet (a dash): the flow may well earn, there is too little "
            "evidence to say."
        )

# --- daily trend --------------------------------------------------------------------------------

st.subheader("Day by day")
frame = data.daily(snap, start, end, flows)
if frame.is_empty():
    st.info("Nothing was sent or attributed in these days.")
else:
    labelled = frame.with_columns(pl.col("flow").map_elements(flow_label, return_dtype=pl.String))
    left, right = st.columns(2)
    for column, field, title, fmt in (
        (left, "revenue", f"Attributed revenue ({currency})", ",.2f"),
        (right, "sent", "Texts sent", ",d"),
    ):
        column.altair_chart(
            alt.Chart(labelled.filter(pl.col(field) > 0))
            .mark_bar()
            .encode(
                x=alt.X(
                    "day:T",
                    title=None,
                    scale=alt.Scale(domain=[start.isoformat(), end.isoformat()]),
                ),
                y=alt.Y(f"sum({field}):Q", title=title),
                color=alt.Color("flow:N", title="Flow", scale=ui.flow_colors()),
                tooltip=[
                    alt.Tooltip("day:T", title="Day"),
                    alt.Tooltip("flow:N", title="Flow"),
                    alt.Tooltip(f"{field}:Q", title=title, format=fmt),
                ],
            )
            .properties(height=300),
            width="stretch",
        )
