"""Experiments: every test's verdict; for one test, each variant against control."""

import datetime as dt
import math

import altair as alt
import polars as pl
import streamlit as st

from dashboards import data, ui
from dashboards.format import (
    BETTER,
    BREACHED,
    DASH,
    EARLY,
    HOLDING,
    NOT_SHOWN,
    UNCLEAR,
    WORSE,
    count,
    day,
    flow_label,
    formatted,
    interval,
    metric_label,
    metric_value,
    p_value,
    percent,
    significance,
)

snap = ui.page(
    "Experiments",
    "Every A/B test with its verdict; pick one to see each variant against control.",
)
currency = data.currency(snap)
listing = data.experiments(snap)
if listing.is_empty():
    st.info(
        "No experiments in the warehouse yet. Write a spec in `experiments/` (see "
        "experiments/README.md, and size it with the Experiment planner page)."
    )
    st.stop()

COLORS = {
    BETTER: "#1a9850",
    WORSE: "#d73027",
    UNCLEAR: "#7f7f7f",
    EARLY: "#bdbdbd",
    HOLDING: "#1a9850",
    BREACHED: "#d73027",
    NOT_SHOWN: "#fdae61",
}
ANALYSES = {
    "fixed": "Fixed-horizon test: judged once, at its planned sample. Reading it earlier "
    "and stopping on a good day inflates false positives.",
    "sequential": "Sequential test: its intervals stay valid however often you look, so it "
    "may be stopped as soon as they exclude zero.",
    "bayesian": "Bayesian test: judged by the chance that a variant beats control.",
}

# --- the list -----------------------------------------------------------------------------------

st.dataframe(
    listing.select(
        pl.col("experiment_key").alias("Experiment"),
        formatted("flow", flow_label).alias("Flow"),
        pl.col("status").alias("Status"),
        pl.col("verdict").fill_null("not analysed yet").alias("Verdict"),
        pl.col("progress").alias("Progress"),
        formatted(
            pl.struct("units", "planned_units"),
            lambda r: (
                f"{r['units'] or 0:,}"
                + (f" of {r['planned_units']:,}" if r["planned_units"] else "")
            ),
        ).alias("Customers"),
        pl.col("reason").fill_null("").alias("Why"),
    ),
    hide_index=True,
    column_config={
        "Progress": st.column_config.ProgressColumn(
            "Progress", min_value=0.0, max_value=1.0, format="percent", width="small"
        ),
        "Why": st.column_config.TextColumn(width="large"),
    },
)

keys = listing["experiment_key"].to_list()
key = st.selectbox("Experiment", keys, index=0)
spec = listing.filter(pl.col("experiment_key") == key).row(0, named=True)
results = data.experiment_results(snap, key)
latest = results.filter(pl.col("as_of") == results["as_of"].max()) if results.height else results

st.header(key.replace("_", " ").capitalize())
st.markdown(
    f"**{flow_label(spec['flow'])}** flow · {spec['status']} since {day(spec['start_date'])}"
    + (f" until {day(spec['end_date'])}" if spec["end_date"] else "")
    + f" · primary metric: **{metric_label(spec['primary_metric'])}**"
    + f" · minimum detectable effect {percent(spec['minimum_detectable_effect'], 0)}"
)
if spec["hypothesis"]:
    st.markdown(f"> {spec['hypothesis'].strip()}")

# --- verdict and banners ------------------------------------------------------------------------

breached = latest.filter(pl.col("breached")) if latest.height else latest
if spec["srm_mismatch"]:
    st.error(
        f"**Sample ratio mismatch** (p = {p_value(spec['srm_p_value'])}): the customers "
        "exposed in each variant do not match the planned split. Something other than chance "
        "decides who gets which text (a bug in sending or in exposure), so no result of this "
        "test can be trusted until the cause is found.",
        icon=":material/error:",
    )
if breached.height:
    names = ", ".join(
        f"{metric_label(r['metric'])} in {r['variant_key']}" for r in breached.iter_rows(named=True)
    )
    st.error(
        f"**Guardrail breached**: {names} is significantly worse than control, beyond the "
        "margin the spec allows. Stop the variant.",
        icon=":material/gpp_bad:",
    )
verdict = spec["verdict"]
if verdict is None:
    st.info(
        "Not analysed yet: the analysis runs every day for running experiments once customers "
        "have been exposed.",
        icon=":material/hourglass_empty:",
    )
elif verdict.startswith("ship"):
    st.success(f"**Verdict: {verdict}.** {spec['reason']}.", icon=":material/rocket_launch:")
elif verdict.startswith("stop"):
    st.warning(f"**Verdict: {verdict}.** {spec['reason']}.", icon=":material/block:")
else:
    st.info(f"**Verdict: {verdict}.** {spec['reason']}.", icon=":material/hourglass_top:")
st.caption(ANALYSES.get(spec["analysis"], ""))

# --- progress -----------------------------------------------------------------------------------

planned = spec["planned_units"]
analysed = int(spec["units"] or 0)
exposed = int(spec["units_exposed"] or 0)
if planned:
    progress = analysed / planned
    st.progress(
        min(progress, 1.0),
        text=f"{analysed:,} of {planned:,} planned customers analysed ({progress:.0%})",
    )
    if progress >= 1:
        st.caption("The planned sample is reached.")
    elif exposed and spec["first_exposed_at"] is not None:
        elapsed = (snap.as_of_date - spec["first_exposed_at"].date()).days + 1
        pace = exposed / max(elapsed, 1)
        remaining_days = math.ceil((planned - analysed) / pace)
        pace_text = (
            f"At the pace so far ({pace:,.1f} customers exposed a day since "
            f"{day(spec['first_exposed_at'])})"
        )
        if remaining_days > 730:
            st.caption(
                f"{pace_text}, the planned sample would take more than two years: test a "
                "bigger change, or reach more customers."
            )
        else:
            expected = snap.as_of_date + dt.timedelta(days=remaining_days)
            st.caption(
                f"{pace_text}, the planned sample is reached around **{day(expected)}** "
                f"({remaining_days:,} more days). Customers count once their metric's window "
                "has passed."
            )
    else:
        st.caption("No customer has been exposed yet, so there is no pace to project from.")
else:
    st.caption(f"{analysed:,} customers analysed; the spec plans no sample size.")

if latest.is_empty():
    st.stop()

# --- variants -----------------------------------------------------------------------------------


def words(row: dict) -> tuple[str, str]:
    return significance(
        role=row["role"],
        analysis=row["analysis"],
        alpha=row["alpha"],
        lift=row["lift_relative"],
        p_adjusted=row["p_value_adjusted"],
        p_raw=row["p_value"],
        chance_to_win=row["chance_to_win"],
        higher_is_better=row["higher_is_better"],
        breached=row["breached"],
        non_inferior=row["non_inferior"],
        progress=spec["progress"],
    )


interval_name = "Always-valid interval" if spec["analysis"] == "sequential" else "95% interval"
rows = []
for r in latest.iter_rows(named=True):
    category, sentence = words(r)
    rows.append({**r, "category": category, "words": sentence})
judged = pl.DataFrame(rows)

primary = judged.filter(pl.col("role") == "primary")
st.subheader(f"Variants on {metric_label(spec['primary_metric']).lower()}")
if primary.height:
    first = primary.row(0, named=True)
    table = [
        {
            "Variant": f"{first['control_key']} (control)",
            "What it means": "The baseline each variant is compared with",
            "Customers": count(first["n_control"]),
            "Value": metric_value(first["mean_control"], first["metric"], currency),
            "Lift vs control": DASH,
            interval_name: DASH,
            "p-value": DASH,
            "Chance to beat control": DASH,
        }
    ]
    for r in primary.iter_rows(named=True):
        table.append(
            {
                "Variant": r["variant_key"],
                "What it means": r["words"],
                "Customers": count(r["n_treatment"]),
                "Value": metric_value(r["mean_treatment"], r["metric"], currency),
                "Lift vs control": percent(r["lift_relative"], 1, signed=True),
                interval_name: (
                    f"{percent(r['ci_relative_low'], 1, signed=True)} to "
                    f"{percent(r['ci_relative_high'], 1, signed=True)}"
                    if r["ci_relative_low"] is not None and r["ci_relative_high"] is not None
                    else DASH
                ),
                "p-value": p_value(
                    r["p_value"] if r["p_value_adjusted"] is None else r["p_value_adjusted"]
                ),
                "Chance to beat control": percent(r["chance_to_win"], 0),
            }
        )
    st.dataframe(
        pl.DataFrame(table).rename({"Value": metric_label(first["metric"])}), hide_index=True
    )
    st.caption(
        "Lift is relative to control. The p-value is adjusted for comparing several variants "
        "(Holm); CUPED uses each customer's spending before the test to narrow the interval "
        "where it can."
    )

st.subheader("Every metric")
st.dataframe(
    judged.select(
        formatted("metric", metric_label).alias("Metric"),
        pl.col("role").alias("Role"),
        pl.col("variant_key").alias("Variant"),
        pl.col("words").alias("What it means"),
        formatted(
            pl.struct("mean_control", "metric"),
            lambda r: metric_value(r["mean_control"], r["metric"], currency),
        ).alias("Control"),
        formatted(
            pl.struct("mean_treatment", "metric"),
            lambda r: metric_value(r["mean_treatment"], r["metric"], currency),
        ).alias("Variant value"),
        formatted("lift_relative", lambda v: percent(v, 1, signed=True)).alias("Lift"),
        formatted(
            pl.struct("ci_relative_low", "ci_relative_high"),
            lambda r: interval(r["ci_relative_low"], r["ci_relative_high"], signed=True),
        ).alias(interval_name),
        formatted(
            pl.struct("p_value_adjusted", "p_value"),
            lambda r: p_value(
                r["p_value"] if r["p_value_adjusted"] is None else r["p_value_adjusted"]
            ),
        ).alias("p-value"),
    ),
    hide_index=True,
)
st.caption(
    "Primary: the metric the decision rests on, adjusted for comparing several variants "
    "(Holm). Secondary: reported, adjusted across metrics (Benjamini-Hochberg). Guardrail: "
    'must not get worse than control by more than the spec\'s margin. "Beyond chance" '
    "means a difference this large would be rare if the variant changed nothing."
)

# --- interval chart -----------------------------------------------------------------------------

charted = judged.filter(
    pl.col("ci_relative_low").is_not_null() & pl.col("ci_relative_high").is_not_null()
).with_columns(
    (
        pl.col("metric").map_elements(metric_label, return_dtype=pl.String)
        + pl.lit(" · ")
        + pl.col("variant_key")
    ).alias("comparison")
)
if charted.height:
    st.subheader("Lift with its interval")
    present = [c for c in COLORS if c in set(charted["category"].to_list())]
    scale = alt.Scale(domain=present, range=[COLORS[c] for c in present])
    base = alt.Chart(charted).encode(
        y=alt.Y("comparison:N", title=None, sort=None, axis=alt.Axis(labelLimit=320))
    )
    st.altair_chart(
        (
            base.mark_rule(strokeWidth=3).encode(
                x=alt.X(
                    "ci_relative_low:Q", title="Lift against control", axis=alt.Axis(format="%")
                ),
                x2="ci_relative_high:Q",
                color=alt.Color("category:N", title="Reading", scale=scale),
            )
            + base.mark_point(filled=True, size=90).encode(
                x="lift_relative:Q",
                color=alt.Color("category:N", scale=scale),
                tooltip=[
                    alt.Tooltip("comparison:N", title="Metric"),
                    alt.Tooltip("lift_relative:Q", title="Lift", format="+.1%"),
                    alt.Tooltip("ci_relative_low:Q", title="From", format="+.1%"),
                    alt.Tooltip("ci_relative_high:Q", title="To", format="+.1%"),
                    alt.Tooltip("words:N", title="Reading"),
                ],
            )
            + ui.zero_rule()
        ).properties(height=40 * charted.height + 60),
        width="stretch",
    )

# --- effect over time ---------------------------------------------------------------------------

st.subheader("Effect over time")
metrics = judged["metric"].unique(maintain_order=True).to_list()
left, right = st.columns(2)
metric = left.selectbox("Metric", metrics, format_func=metric_label)
variants = judged.filter(pl.col("metric") == metric)["variant_key"].unique().sort().to_list()
variant = right.selectbox("Variant", variants) if len(variants) > 1 else variants[0]
over_time = results.filter((pl.col("metric") == metric) & (pl.col("variant_key") == variant))
band = over_time.drop_nulls(["ci_relative_low", "ci_relative_high", "lift_relative"])
if band.is_empty():
    st.info("Not enough customers yet to estimate this effect.")
else:
    base = alt.Chart(band).encode(
        x=alt.X("as_of:T", title="Analysed as of", axis=alt.Axis(format="%b %d"))
    )
    lift_axis = alt.Y("ci_relative_low:Q", title="Lift against control", axis=alt.Axis(format="%"))
    layers = [
        base.mark_area(opacity=0.25).encode(y=lift_axis, y2="ci_relative_high:Q"),
        base.mark_line(point=True).encode(
            y="lift_relative:Q",
            tooltip=[
                alt.Tooltip("as_of:T", title="As of"),
                alt.Tooltip("lift_relative:Q", title="Lift", format="+.1%"),
                alt.Tooltip("ci_relative_low:Q", title="From", format="+.1%"),
                alt.Tooltip("ci_relative_high:Q", title="To", format="+.1%"),
                alt.Tooltip("n_treatment:Q", title="Customers in the variant", format=","),
            ],
        ),
        ui.zero_rule("y"),
    ]
    if band.height == 1:
        layers.append(base.mark_rule(strokeWidth=2).encode(y=lift_axis, y2="ci_relative_high:Q"))
    st.altair_chart(alt.layer(*layers).properties(height=320), width="stretch")
    what = (
        "the always-valid (sequential) band: the effect is established once it leaves zero"
        if spec["analysis"] == "sequential"
        else "the 95% interval of each day's analysis; a fixed test is read once, at its "
        "planned sample, whatever the band does before"
    )
    st.caption(f"The cumulative effect each day it was analysed, with {what}.")
