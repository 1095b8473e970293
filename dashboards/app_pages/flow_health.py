"""Flow health: per flow, what came due, what stopped it, what got through, what it led to."""

import altair as alt
import polars as pl
import streamlit as st

from dashboards import data, ui
from dashboards.format import (
    DASH,
    PLIVO_ERRORS,
    count,
    flow_label,
    formatted,
    money,
    percent,
    spikes,
)

snap = ui.page(
    "Flow health",
    "Per flow: the messages that came due, what held them back, what was delivered and what "
    "it led to.",
)
currency = data.currency(snap)
ALL = "All flows"
choice = st.selectbox(
    "Flow", [ALL, *data.flows(snap)], format_func=lambda f: f if f == ALL else flow_label(f)
)
flows = None if choice == ALL else (choice,)

funnel = data.funnel(snap, flows)
if funnel.is_empty():
    st.info("The sender has not decided on any message yet for this choice.")
    st.stop()

REASONS = {
    "no_marketing_consent": "no marketing consent",
    "no_transactional_consent": "no consent to texts at all",
    "no_valid_phone": "no valid phone number",
    "opted_out": "opted out",
    "quiet_hours": "quiet hours (waits for morning)",
    "quiet_hours_until_expiry": "quiet hours until it expired",
    "frequency_cap": "frequency cap (waits its turn)",
    "frequency_cap_until_expiry": "frequency cap until it expired",
    "expired": "expired before it could go",
}


def reason_label(reason: str) -> str:
    return REASONS.get(reason, reason.replace("_", " "))


totals = funnel.select(pl.exclude("flow").sum()).row(0, named=True)

# --- the funnel ---------------------------------------------------------------------------------

st.subheader("From due to ordered")
stages = pl.DataFrame(
    {
        "stage": ["Came due", "Sent", "Delivered", "Clicked", "Ordered (attributed)"],
        "messages": [
            totals["came_due"],
            totals["sent"],
            totals["delivered"],
            totals["clicked"],
            totals["converted"],
        ],
    }
).with_columns(
    share=pl.when(pl.lit(totals["came_due"]) > 0)
    .then(pl.col("messages") / totals["came_due"])
    .otherwise(None)
)
bars = alt.Chart(stages).encode(
    y=alt.Y("stage:N", sort=None, title=None, axis=alt.Axis(labelLimit=240)),
    x=alt.X("messages:Q", title="Messages"),
    tooltip=[
        alt.Tooltip("stage:N", title="Stage"),
        alt.Tooltip("messages:Q", title="Messages", format=","),
        alt.Tooltip("share:Q", title="Of those that came due", format=".1%"),
    ],
)
st.altair_chart(
    (
        bars.mark_bar()
        + bars.mark_text(align="left", dx=4).encode(text=alt.Text("messages:Q", format=","))
    ).properties(height=230),
    width="stretch",
)
waiting = totals["waiting"]
st.caption(
    f"Of {count(totals['came_due'])} messages that came due: {count(totals['suppressed'])} "
    f"suppressed, {count(totals['held_out'])} held out (the flow's holdout, to measure what it "
    f"adds), {count(totals['failed'])} failed at the provider and {count(waiting)} still "
    f"waiting (deferred, not yet sent). {count(totals['deferred_once'])} were deferred at "
    "least once on the way. An order counts when the flow's text is the last one clicked "
    "(5 days) or delivered (24 hours) before it."
)

reasons = data.not_sent_reasons(snap, flows)
if reasons.height:
    st.subheader("Why messages were not sent, or not at once")
    by_reason = (
        reasons.group_by("action", "reason")
        .agg(pl.col("messages").sum())
        .with_columns(
            pl.col("reason").map_elements(reason_label, return_dtype=pl.String).alias("why"),
            pl.col("action")
            .replace({"suppress": "suppressed (never sent)", "defer": "deferred (sent later)"})
            .alias("outcome"),
        )
        .sort("messages", descending=True)
    )
    st.altair_chart(
        alt.Chart(by_reason)
        .mark_bar()
        .encode(
            y=alt.Y("why:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320)),
            x=alt.X("messages:Q", title="Messages"),
            color=alt.Color(
                "outcome:N",
                title=None,
                scale=alt.Scale(
                    domain=["suppressed (never sent)", "deferred (sent later)"],
                    range=["#d73027", "#fdae61"],
                ),
            ),
            tooltip=[
                alt.Tooltip("outcome:N", title="Outcome"),
                alt.Tooltip("why:N", title="Why"),
                alt.Tooltip("messages:Q", title="Messages", format=","),
            ],
        )
        .properties(height=30 * by_reason.height + 40),
        width="stretch",
    )
    st.caption(
        "A deferred message waits for its recipient's window (quiet hours, the frequency cap) "
        "and is sent later unless it expires first; `postpurchase why CUSTOMER` tells one "
        "customer's story."
    )

# --- engagement per flow ------------------------------------------------------------------------

st.subheader("Per flow")
st.info(
    "**Why there is no open rate:** phones do not tell anyone when a text is read, so an "
    "SMS open rate cannot be measured (email's tracking pixel has no SMS equivalent). What "
    "we can count is shown instead: clicks on each text's own short link, and replies.",
    icon=":material/visibility_off:",
)


def rate(numerator: str, denominator: str) -> pl.Expr:
    return (
        pl.when(pl.col(denominator) > 0)
        .then(pl.col(numerator) / pl.col(denominator))
        .otherwise(None)
        .map_elements(lambda v: percent(v, 1), return_dtype=pl.String)
        .fill_null(DASH)
    )


st.dataframe(
    funnel.select(
        formatted("flow", flow_label).alias("Flow"),
        pl.col("came_due").alias("Came due"),
        pl.col("suppressed").alias("Suppressed"),
        pl.col("held_out").alias("Held out"),
        pl.col("waiting").alias("Waiting"),
        pl.col("sent").alias("Sent"),
        rate("delivered", "sent").alias("Delivered"),
        rate("clicked", "delivered").alias("Clicked"),
        rate("replied", "delivered").alias("Replied"),
        rate("opted_out", "delivered").alias("Opted out"),
        pl.col("converted").alias("Orders"),
        formatted("revenue", lambda v: money(v, currency)).alias("Attributed revenue"),
    ),
    hide_index=True,
)
st.caption(
    "Delivered is a share of texts sent; clicked, replied and opted out are shares of texts "
    "delivered (a text that never arrived cannot be clicked)."
)

# --- delivery -----------------------------------------------------------------------------------

outcomes = data.delivery_outcomes(snap, flows)
if outcomes.height:
    st.subheader("Delivery")
    left, right = st.columns(2)
    per_flow = (
        outcomes.group_by("flow")
        .agg(
            pl.col("messages").sum().alias("sent"),
            pl.col("messages")
            .filter(pl.col("delivery_status") == "delivered")
            .sum()
            .alias("delivered"),
        )
        .with_columns(
            (pl.col("delivered") / pl.col("sent")).alias("delivery_rate"),
            pl.col("flow").map_elements(flow_label, return_dtype=pl.String),
        )
    )
    left.altair_chart(
        alt.Chart(per_flow)
        .mark_bar()
        .encode(
            y=alt.Y("flow:N", sort="x", title=None, axis=alt.Axis(labelLimit=240)),
            x=alt.X(
                "delivery_rate:Q",
                title="Delivery rate",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            tooltip=[
                alt.Tooltip("flow:N", title="Flow"),
                alt.Tooltip("delivery_rate:Q", title="Delivered", format=".1%"),
                alt.Tooltip("sent:Q", title="Sent", format=","),
            ],
        )
        .properties(height=30 * per_flow.height + 40),
        width="stretch",
    )
    failures = (
        outcomes.filter(pl.col("delivery_status") != "delivered")
        .group_by("delivery_status", "error_code")
        .agg(pl.col("messages").sum())
        .sort("messages", descending=True)
    )
    if failures.height:
        right.dataframe(
            failures.select(
                pl.col("delivery_status").alias("Status"),
                pl.col("error_code").fill_null("").alias("Error code"),
                pl.col("error_code")
                .map_elements(
                    lambda c: PLIVO_ERRORS.get(c, "see Plivo's error code list"),
                    return_dtype=pl.String,
                )
                .fill_null("no receipt yet")
                .alias("Meaning"),
                pl.col("messages").alias("Texts"),
            ),
            hide_index=True,
        )
    else:
        right.success("Every text sent was delivered.")

# --- opt-outs -----------------------------------------------------------------------------------

st.subheader("Opt-outs per day")
opt_outs = data.opt_outs_daily(snap, flows)
if opt_outs.is_empty():
    st.caption("No opt-outs." if flows is None else "No opt-outs in reply to this flow.")
else:
    days = pl.DataFrame(
        {
            "day": pl.date_range(
                opt_outs["day"].min(), max(opt_outs["day"].max(), snap.as_of_date), "1d", eager=True
            )
        }
    )
    daily = days.join(opt_outs, on="day", how="left").with_columns(pl.col("opt_outs").fill_null(0))
    daily = daily.with_columns(
        pl.Series("spike", spikes(daily["opt_outs"].to_list())).replace_strict(
            {True: "spike", False: "normal"}
        )
    )
    base = alt.Chart(daily).encode(x=alt.X("day:T", title=None))
    st.altair_chart(
        (
            base.mark_bar().encode(
                y=alt.Y("opt_outs:Q", title="Opt-outs", axis=alt.Axis(tickMinStep=1, format="d")),
                color=alt.Color(
                    "spike:N",
                    title=None,
                    scale=alt.Scale(domain=["normal", "spike"], range=["#7f7f7f", "#d73027"]),
                ),
                tooltip=[
                    alt.Tooltip("day:T", title="Day"),
                    alt.Tooltip("opt_outs:Q", title="Opt-outs"),
                    alt.Tooltip("spike:N", title="Reading"),
                ],
            )
            + base.transform_filter(alt.datum.spike == "spike")
            .mark_text(dy=-8, text="▲", color="#d73027")
            .encode(y="opt_outs:Q")
        ).properties(height=240),
        width="stretch",
    )
    spike_days = daily.filter(pl.col("spike") == "spike")
    st.caption(
        "A spike is a day with at least 3 opt-outs and more than 3 standard deviations above "
        "the median of the 14 days before it (Poisson; from the sixth day shown): worth "
        "reading that day's texts. "
        + (
            f"Spikes: {', '.join(f'{d:%b %d}' for d in spike_days['day'].to_list())}."
            if spike_days.height
            else "No spikes."
        )
    )
