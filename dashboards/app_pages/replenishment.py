"""Replenishment: how often each product is rebought, who runs out when, and how well the
model predicts it."""

import datetime as dt

import altair as alt
import polars as pl
import streamlit as st

from dashboards import data, ui
from dashboards.format import DASH, count, day, formatted, percent

snap = ui.page(
    "Replenishment",
    "How often each product is bought again, when customers will run out, the reminders "
    "about to go, and how well the model predicts a reorder.",
)

# --- cadence per product ------------------------------------------------------------------------

st.subheader("Cadence per product")
cadence = data.cadence_by_product(snap)
if cadence.is_empty():
    st.info("No predictions yet: they need a first build of the models.")
else:
    consumables_only = st.toggle("Consumables only", value=True)
    shown = cadence.filter(pl.col("is_consumable")) if consumables_only else cadence
    shown = shown.sort("customers", descending=True).head(25)
    if shown.height:
        base = alt.Chart(shown).encode(
            y=alt.Y("title:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320))
        )
        st.altair_chart(
            (
                base.mark_rule(strokeWidth=2, color="#9ecae1").encode(
                    x=alt.X("gap_days_p25:Q", title="Days between purchases"),
                    x2="gap_days_p75:Q",
                )
                + base.mark_point(filled=True, size=70).encode(
                    x="median_gap_days:Q",
                    tooltip=[
                        alt.Tooltip("title:N", title="Product"),
                        alt.Tooltip("median_gap_days:Q", title="Median gap (days)", format=".0f"),
                        alt.Tooltip("usage_days:Q", title="Usage days (catalogue)"),
                        alt.Tooltip("customers:Q", title="Customers", format=","),
                        alt.Tooltip("repeat_customers:Q", title="Bought it twice or more"),
                    ],
                )
                + base.mark_tick(color="#d73027", thickness=2).encode(x="usage_days:Q")
            ).properties(height=22 * shown.height + 40),
            width="stretch",
        )
        st.caption(
            "Dots: each product's median predicted gap between purchases over its customers, "
            "with the middle half of them as a bar; red ticks: the catalogue's usage days, "
            "which the model falls back to when a product has no repeat history."
        )
        st.dataframe(
            shown.select(
                pl.col("title").alias("Product"),
                pl.col("category").alias("Category"),
                pl.col("customers").alias("Customers"),
                pl.col("repeat_customers").alias("Bought twice or more"),
                pl.col("median_gap_days").round(0).alias("Median gap (days)"),
                pl.col("usage_days").alias("Usage days"),
                formatted("mean_probability_7d", lambda v: percent(v, 1)).alias(
                    "Reorder chance, next 7 days"
                ),
            ),
            hide_index=True,
        )

# --- run-out dates ------------------------------------------------------------------------------

st.subheader("When customers will run out")
runout = data.runout_dates(snap)
if runout.is_empty():
    st.caption("No consumable purchases to predict from yet.")
else:
    horizon = snap.as_of_date + dt.timedelta(days=120)
    near = runout.filter(pl.col("day") <= horizon)
    later = runout.filter(pl.col("day") > horizon)["customers"].sum()
    st.altair_chart(
        (
            alt.Chart(near)
            .mark_bar()
            .encode(
                x=alt.X("day:T", title="Predicted run-out date"),
                y=alt.Y("customers:Q", title="Customer x product pairs"),
                tooltip=[
                    alt.Tooltip("day:T", title="Day"),
                    alt.Tooltip("customers:Q", title="Pairs", format=","),
                ],
            )
            + alt.Chart(pl.DataFrame({"as_of": [snap.as_of_date]}))
            .mark_rule(color="#d73027", strokeDash=[4, 4])
            .encode(x="as_of:T")
        ).properties(height=240),
        width="stretch",
    )
    st.caption(
        f"Consumables only, the next 120 days from {day(snap.as_of_date)} (dashed line)"
        + (f"; {later:,} more run out later." if later else ".")
        + " Overdue pairs are predicted from today: a customer who has not reordered yet is "
        "expected to soon."
    )

# --- reminders due ------------------------------------------------------------------------------

st.subheader("Reminders due")
days_ahead = st.slider("Days ahead", min_value=1, max_value=30, value=7)
until = dt.datetime.combine(snap.as_of_date, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
    days=days_ahead + 1
)
due = data.reminders_due(snap, until)
if due.is_empty():
    st.caption("No replenishment reminder is due in these days.")
else:
    waiting = due.filter(pl.col("earliest_send_at") < (snap.as_of or snap.published_at))
    st.caption(
        f"{count(due.height)} reminders due by {day(until - dt.timedelta(days=1))}, "
        f"{count(waiting.height)} of them already due and waiting for their recipient's window "
        "(or for the sender to run). Held-out customers are in the flow's holdout: the sender "
        "records what it would have sent and sends nothing. Phone numbers are masked."
    )
    per_day = due.with_columns(
        pl.max_horizontal(pl.col("earliest_send_at").dt.date(), pl.lit(snap.as_of_date)).alias(
            "day"
        ),
        pl.coalesce(pl.col("variant_key"), pl.lit("default")).alias("variant"),
    )
    st.altair_chart(
        alt.Chart(per_day.group_by("day", "variant").len())
        .mark_bar()
        .encode(
            x=alt.X(
                "yearmonthdate(day):O",
                title="Due (those already waiting on the first day)",
                axis=alt.Axis(format="%b %d", labelAngle=0),
            ),
            y=alt.Y("len:Q", title="Reminders"),
            color=alt.Color("variant:N", title="Variant"),
            tooltip=[
                alt.Tooltip("day:T", title="Day"),
                alt.Tooltip("variant:N", title="Variant"),
                alt.Tooltip("len:Q", title="Reminders"),
            ],
        )
        .properties(height=220),
        width="stretch",
    )
    st.dataframe(
        due.select(
            pl.col("earliest_send_at").alias("Due from"),
            pl.col("expires_at").alias("Expires"),
            pl.col("customer_id").alias("Customer"),
            pl.col("phone_e164").fill_null(DASH).alias("Phone"),
            pl.col("product_title").alias("Product"),
            pl.col("run_out_date").alias("Runs out"),
            pl.col("variant_key").fill_null(DASH).alias("Variant"),
            pl.col("is_held_out").alias("Held out"),
        ),
        hide_index=True,
        column_config={
            "Due from": st.column_config.DatetimeColumn(format="MMM D, HH:mm"),
            "Expires": st.column_config.DatetimeColumn(format="MMM D, HH:mm"),
            "Runs out": st.column_config.DateColumn(format="MMM D, YYYY"),
        },
    )

# --- backtest -----------------------------------------------------------------------------------

st.subheader("How well the model predicts a reorder")
backtest = data.backtest(snap)
if backtest.is_empty():
    st.info(
        "Not enough history for a backtest yet: it needs purchases before a cutoff and a full "
        "7 days after it."
    )
else:
    info = backtest.row(0, named=True)
    model = backtest.filter(pl.col("scorer") == "model").row(0, named=True)
    best = backtest.filter(pl.col("scorer") != "model").sort("auc", descending=True).row(0)
    columns = st.columns(4)
    columns[0].metric(
        "ROC AUC",
        f"{model['auc']:.3f}",
        border=True,
        help=(
            "The chance that a customer who reorders within 7 days is ranked above one who does "
            "not (0.5 is a coin toss)."
        ),
    )
    columns[1].metric(
        "Average precision",
        f"{model['average_precision']:.3f}",
        border=True,
        help=f"Against a base rate of {percent(info['base_rate'], 1)} of pairs reordering.",
    )
    columns[2].metric(
        "Precision in the top 1%",
        percent(model["precision_at_1pct"], 1),
        border=True,
        help="Of the 1% of pairs the model ranks highest, the share that reordered.",
    )
    columns[3].metric(
        "Brier score",
        f"{model['brier']:.4f}" if model["brier"] is not None else DASH,
        border=True,
        help="Mean squared error of the predicted probability (lower is better).",
    )
    names = {
        "model": "The model",
        "frequency": "Frequency (purchase days)",
        "recency": "Recency (days since last)",
        "frequency_over_recency": "Frequency over recency",
        "due_product_median": "Due by the product's median gap",
        "due_customer_mean": "Due by the customer's own mean gap",
    }
    st.dataframe(
        backtest.select(
            pl.col("scorer").replace(names).alias("Scorer"),
            pl.col("auc").round(3).alias("ROC AUC"),
            pl.col("average_precision").round(3).alias("Average precision"),
            pl.col("precision_at_1pct").round(3).alias("Precision, top 1%"),
            pl.col("brier").round(4).alias("Brier"),
        ),
        hide_index=True,
    )
    st.caption(
        f"Computed when this snapshot was published, with the protocol of `postpurchase "
        f"backtest` on the warehouse's purchase days: at {info['cutoff_count']} cutoffs from "
        f"{day(info['first_cutoff'])} to {day(info['last_cutoff'])}, predict which of "
        f"{info['candidates']:,} customer x product pairs bought in the year before are bought "
        f"again in the next {info['window_days']} days, seeing only what came before; "
        f"metrics averaged over cutoffs. Best baseline: {names.get(best[0], best[0])}. "
        "Baselines rank; they give no probability, hence no Brier score."
    )
