"""The experiment planner's arithmetic and the spec it writes: plain functions, no Streamlit.

The numbers come from `pipelines.experiments.cli.plan_result`, the function behind
`postpurchase experiments plan`, so the page and the command line always agree.
"""

from __future__ import annotations

import datetime as dt

import yaml

from pipelines.experiments.buckets import BUCKETS
from pipelines.experiments.cli import plan_result
from pipelines.experiments.spec import METRICS


def weights_for(control_share: float, treatments: int = 1) -> list[float]:
    """Control first, the rest split evenly; each a whole number of buckets, summing to 1."""
    if not 0 < control_share < 1 or treatments < 1:
        raise ValueError("the control share must be between 0 and 1, with 1 or more treatments")
    control = round(control_share * BUCKETS)
    each, extra = divmod(BUCKETS - control, treatments)
    arms = [control] + [each + (1 if i < extra else 0) for i in range(treatments)]
    return [arm / BUCKETS for arm in arms]


def plan(
    *,
    metric: str,
    baseline: float,
    sd: float | None,
    mde: float,
    daily_units: float | None,
    weights: list[float],
    alpha: float = 0.05,
    power: float = 0.8,
) -> dict:
    """The planner's result (see `plan_result`); ValueError when it cannot size the test."""
    binary = METRICS[metric].kind == "binary"
    return plan_result(
        mde=mde,
        baseline_rate=baseline if binary else None,
        baseline_mean=None if binary else baseline,
        baseline_sd=None if binary else sd,
        alpha=alpha,
        power=power,
        daily_units=daily_units,
        weights=weights,
    )


def spec_yaml(
    *,
    key: str,
    flow: str,
    metric: str,
    result: dict,
    start_date: dt.date,
    hypothesis: str = "",
    analysis: str = "fixed",
) -> str:
    """A draft spec for `experiments/<key>.yaml`, sized by `result`."""
    variants = [{"key": "control", "weight": result["weights"][0]}]
    names = ["treatment"] if len(result["weights"]) == 2 else None
    for i, weight in enumerate(result["weights"][1:], start=1):
        variants.append({"key": names[0] if names else f"treatment_{i}", "weight": weight})
    spec = {
        "key": key,
        "hypothesis": hypothesis.strip() or f"Describe the change to {flow} and why it helps.",
        "flow": flow,
        "unit": "customer",
        "status": "draft",
        "start_date": start_date,
        "variants": variants,
        "primary_metric": metric,
        "alpha": result["alpha"],
        "power": result["power"],
        "minimum_detectable_effect": result["mde_relative"],
        "analysis": analysis,
        "planned_units": result["total_units"],
    }
    days = result.get("days")
    pace = (
        f", about {days:,} days at {result['daily_units']:,.1f} customers a day"
        if days is not None
        else ""
    )
    header = [
        f"# Sized with the experiment planner: {result['units_per_arm'][0]:,} customers in "
        f"control, {result['total_units']:,} in all{pace}.",
        "# Before it runs: say what each treatment changes (a template in",
        f"# pipelines/templates/{flow}/ or params; see experiments/README.md), then set",
        "# status: running.",
    ]
    body = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=88)
    return "\n".join(header) + "\n" + body
