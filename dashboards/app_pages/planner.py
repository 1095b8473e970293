"""Experiment planner: baseline and volume from the warehouse, an effect in, sample size,
duration and a spec out."""

import datetime as dt
import tempfile
from pathlib import Path

import polars as pl
import streamlit as st

from dashboards import data, planning, ui
from dashboards.format import day, flow_label, metric_label, money, percent
from pipelines.experiments.spec import METRICS, SpecError, load_experiments

snap = ui.page(
    "Experiment planner",
    "Size a test before writing its spec: how many customers, and how many days at today's "
    "traffic, to detect the smallest effect worth having. Same arithmetic as "
    "`postpurchase experiments plan`.",
)
currency = data.currency(snap)

# --- what to test -------------------------------------------------------------------------------

flows = data.flows(snap)
metrics = [name for name, m in METRICS.items() if m.kind != "ratio"]
left, right = st.columns(2)
flow = left.selectbox(
    "Flow",
    flows,
    index=flows.index("replenishment_reminder") if "replenishment_reminder" in flows else 0,
    format_func=flow_label,
)
metric = right.selectbox(
    "Primary metric",
    metrics,
    index=metrics.index("converted_7d"),
    format_func=metric_label,
    help="Ratio metrics (revenue per delivered text) are not sized here: plan on revenue.",
)
binary = METRICS[metric].kind == "binary"
measured = data.metric_baseline(snap, flow, metric)
volume = data.daily_new_customers(snap, flow)

# --- inputs -------------------------------------------------------------------------------------

st.subheader("From the warehouse")
left, right = st.columns(2)
usable = measured is not None and (not binary or 0 < measured["mean"] < 1)
if binary:
    rate_percent = left.number_input(
        "Baseline rate (%)",
        min_value=0.0,
        max_value=100.0,
        value=round(100 * float(measured["mean"]), 2) if usable else None,
        step=0.1,
        format="%.2f",
        key=f"baseline-{flow}-{metric}",
        help="Today's rate in control: the share of customers texted who do it.",
    )
    baseline = None if rate_percent is None else rate_percent / 100
    sd = None
else:
    baseline = left.number_input(
        f"Baseline mean per customer ({currency})",
        min_value=0.0,
        value=float(measured["mean"]) if usable else None,
        step=1.0,
        format="%.2f",
        key=f"baseline-{flow}-{metric}",
    )
    sd = left.number_input(
        f"Standard deviation per customer ({currency})",
        min_value=0.0,
        value=float(measured["sd"]) if usable and measured["sd"] else None,
        step=1.0,
        format="%.2f",
        key=f"sd-{flow}-{metric}",
    )
if measured is None:
    left.caption(
        "Nothing measured for this flow and metric yet (it needs customers texted by it whose "
        "window has passed, in a holdout or an experiment's control): enter an estimate."
    )
else:
    shown = percent(measured["mean"], 2) if binary else money(measured["mean"], currency, 2)
    left.caption(
        f"Measured: {shown} over {measured['n']:,} customers texted by this flow as it runs "
        f"today, {METRICS[metric].window_days}-day window complete"
        + ("." if usable else "; a rate of 0 or 1 cannot be planned on: enter an estimate.")
    )
daily_units = right.number_input(
    "New customers a day (all arms)",
    min_value=0.0,
    value=round(volume["customers"] / volume["days"], 1) if volume else None,
    step=1.0,
    format="%.1f",
    key=f"daily-{flow}",
)
if volume:
    right.caption(
        f"Measured: {volume['customers']:,} customers got their first {flow_label(flow).lower()} "
        f"text over the last {volume['days']} days of sending."
    )
else:
    right.caption("This flow has sent nothing yet: enter an estimate to get a duration.")

st.subheader("What you want to detect")
columns = st.columns(5)
mde_percent = columns[0].number_input(
    "Minimum detectable effect (%)",
    min_value=0.1,
    max_value=500.0,
    value=10.0,
    step=1.0,
    help="The smallest relative lift worth detecting: 10 means 10% more than the baseline.",
)
alpha = columns[1].selectbox("Significance level (alpha)", [0.05, 0.01, 0.1], index=0)
power = columns[2].selectbox("Power", [0.8, 0.9, 0.95], index=0)
control_share = columns[3].slider(
    "Control share", min_value=0.1, max_value=0.9, value=0.5, step=0.05
)
treatments = columns[4].number_input("Treatments", min_value=1, max_value=3, value=1, step=1)

if baseline is None or (not binary and sd is None):
    st.info("Enter a baseline (and, for a mean, its standard deviation) to size the test.")
    st.stop()

weights = planning.weights_for(control_share, int(treatments))
try:
    result = planning.plan(
        metric=metric,
        baseline=baseline,
        sd=sd,
        mde=mde_percent / 100,
        daily_units=daily_units or None,
        weights=weights,
        alpha=alpha,
        power=power,
    )
except ValueError as exc:
    st.warning(f"The planner cannot size this: {exc}.")
    st.stop()

# --- the plan -----------------------------------------------------------------------------------

st.subheader("The plan")
start = st.date_input("Start date", value=snap.as_of_date + dt.timedelta(days=1))
columns = st.columns(4)
columns[0].metric("Customers in control", f"{result['units_per_arm'][0]:,}", border=True)
columns[1].metric(
    "Customers per treatment" if treatments > 1 else "Customers in the treatment",
    f"{max(result['units_per_arm'][1:]):,}",
    border=True,
)
columns[2].metric("Customers in total", f"{result['total_units']:,}", border=True)
if result["days"] is not None:
    end = start + dt.timedelta(days=result["days"] - 1)
    columns[3].metric(
        "Days", f"{result['days']:,}", border=True, help=f"Running {day(start)} to {day(end)}."
    )
    weeks = f" (about {result['days'] / 7:.1f} weeks)" if result["days"] > 13 else ""
    st.caption(
        f"At {result['daily_units']:,.1f} customers a day the test runs {result['days']:,} days"
        f"{weeks}, to about {day(end)}. Detecting {percent(result['mde_relative'], 1, True)} "
        f"on a baseline of "
        + (percent(baseline, 2) if binary else money(baseline, currency, 2))
        + f" at alpha {alpha:g} with power {power:.0%}, two-sided Welch test."
    )
else:
    columns[3].metric("Days", "–", border=True, help="Enter the customers a day.")
if treatments > 1:
    st.caption(
        "Each treatment is compared with control; to keep the plan under a Holm correction, "
        f"divide alpha by {int(treatments)} above."
    )
st.dataframe(
    pl.DataFrame(
        {
            "Arm": ["control"]
            + (
                ["treatment"]
                if treatments == 1
                else [f"treatment_{i}" for i in range(1, int(treatments) + 1)]
            ),
            "Share": [percent(w, 2) for w in result["weights"]],
            "Customers": [f"{n:,}" for n in result["units_per_arm"]],
        }
    ),
    hide_index=True,
)

# --- the spec -----------------------------------------------------------------------------------

st.subheader("The spec")
left, right = st.columns([1, 2])
key = left.text_input("Key", value=f"{flow}_{metric}_test", max_chars=60)
analysis = left.selectbox("Analysis", ["fixed", "sequential", "bayesian"])
hypothesis = right.text_area(
    "Hypothesis", placeholder="What you expect to change, and why.", height=110
)
spec_text = planning.spec_yaml(
    key=key,
    flow=flow,
    metric=metric,
    result=result,
    start_date=start,
    hypothesis=hypothesis,
    analysis=analysis,
)
st.code(spec_text, language="yaml")
with tempfile.TemporaryDirectory() as folder:
    (Path(folder) / f"{key or 'spec'}.yaml").write_text(spec_text)
    try:
        load_experiments(Path(folder))
        problems = []
    except SpecError as exc:
        problems = exc.errors
if problems:
    st.error("This spec would be refused:\n\n" + "\n".join(f"- {p}" for p in problems))
else:
    st.success(
        f"A valid spec: save it as `experiments/{key}.yaml`, say what the treatment changes, "
        "and check the folder with `postpurchase experiments validate`.",
        icon=":material/check_circle:",
    )
st.download_button(
    "Download the spec", spec_text, file_name=f"{key or 'experiment'}.yaml", mime="text/yaml"
)
