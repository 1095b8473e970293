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
now = snap.as_of or snap.published_at
per_day = data.reminders_due_per_day(snap, until, now, snap.as_of_date)
total = int(per_day["reminders"].sum()) if per_day.height else 0
if not total:
    st.caption("No replenishment reminder is due in these days.")
else:
    waiting = int(per_day["waiting"].sum())
    st.caption(
        f"{count(total)} reminders due by {day(until - dt.timedelta(days=1))}, "
        f"{count(waiting)} of them already due and waiting for their recipient's window "
        "(or for the sender to run). Held-out customers are in the flow's holdout: the sender "
        "records what it would have sent and sends nothing. Phone numbers are masked."
    )
    st.altair_chart(
        alt.Chart(per_day)
        .mark_bar()
        .encode(
            x=alt.X(
                "yearmonthdate(day):O",
                title="Due (those already waiting on the first day)",
                axis=alt.Axis(format="%b %d", labelAngle=0),
            ),
            y=alt.Y("reminders:Q", title="Reminders"),
            color=alt.Color("variant:N", title="Variant"),
            tooltip=[
                alt.Tooltip("day:T", title="Day"),
                alt.Tooltip("variant:N", title="Variant"),
                alt.Tooltip("reminders:Q", title="Reminders"),
            ],
        )
        .properties(height=220),
        width="stretch",
    )
    columns = {
        "earliest_send_at": "Due from",
        "expires_at": "Expires",
        "customer_id": "Customer",
        "phone_e164": "Phone",
        "product_title": "Product",
        "run_out_date": "Runs out",
        "variant_key": "Variant",
        "is_held_out": "Held out",
    }

    def listed(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(
            pl.col(c).fill_null(DASH) if c in ("phone_e164", "variant_key") else pl.col(c)
            for c in columns
        ).rename(columns)

    # A queue of hundreds of thousands is no list to read in a browser (nor to send to one):
    # the first due, and the whole queue as a file, fetched only when asked for.
    st.dataframe(
        listed(data.reminders_due(snap, until, data.REMINDERS_SHOWN)),
        hide_index=True,
        column_config={
            "Due from": st.column_config.DatetimeColumn(format="MMM D, HH:mm"),
            "Expires": st.column_config.DatetimeColumn(format="MMM D, HH:mm"),
            "Runs out": st.column_config.DateColumn(format="MMM D, YYYY"),
        },
    )
    if total > data.REMINDERS_SHOWN:
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.caption(
            f"The first {count(data.REMINDERS_SHOWN)} of {count(total)} by due time; the "
            "download has them all."
        )
        right.download_button(
            "Download all (CSV)",
            data=lambda: listed(data.reminders_due(snap, until)).write_csv(),
            file_name=f"reminders-due-by-{(until - dt.timedelta(days=1)):%Y-%m-%d}.csv",
            mime="text/csv",
            on_click="ignore",
            icon=":material/download:",
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
