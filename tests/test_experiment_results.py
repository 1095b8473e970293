"""Experiment verdicts from per-arm sums: ship, keep running, guardrail breached, SRM."""

import dataclasses

import numpy as np
import polars as pl
import pytest

from pipelines import stats
from pipelines.experiments.results import (
    KEEP_RUNNING,
    STOP_GUARDRAIL,
    STOP_NO_WINNER,
    STOP_SRM,
    compare_arms,
    incremental_revenue,
    judge,
    sample_ratio,
)
from pipelines.experiments.spec import load_specs
from pipelines.settings import get_experiments_dir

SPECS = {s.key: s for s in load_specs(get_experiments_dir())}
LEAD = SPECS["replenishment_lead_time"]  # fixed; converted_7d; guardrail opted_out_7d


def arm_rows(rng, experiment, variant, n, rates, revenue_mean=0.0):
    """Per-unit draws summed the way the dbt summary mart sums them."""
    rows = []
    pre = rng.exponential(20.0, n) * (rng.random(n) < 0.3)
    for metric, rate in rates.items():
        if metric.startswith("revenue"):
            y = pre * 0.5 + rng.exponential(revenue_mean, n) * (rng.random(n) < 0.2)
            x = pre
        else:
            y = (rng.random(n) < rate).astype(float)
            x = None
        rows.append(
            {
                "experiment_key": experiment,
                "variant_key": variant,
                "metric": metric,
                "n": n,
                "sum": y.sum(),
                "sum_squares": (y * y).sum(),
                "pre_sum": None if x is None else x.sum(),
                "pre_sum_squares": None if x is None else (x * x).sum(),
                "sum_products": None if x is None else (x * y).sum(),
                "denominator_sum": None,
                "denominator_sum_squares": None,
                "sum_numerator_denominator": None,
            }
        )
    return rows


def summaries(n_control, n_treatment, control_rates, treatment_rates, seed=1):
    rng = np.random.default_rng(seed)
    rows = arm_rows(rng, LEAD.key, "lead_3_days", n_control, control_rates, 30.0)
    rows += arm_rows(rng, LEAD.key, "lead_7_days", n_treatment, treatment_rates, 30.0)
    frame = pl.DataFrame(rows, infer_schema_length=None)
    units = pl.DataFrame(
        {
            "experiment_key": [LEAD.key] * 2,
            "variant_key": ["lead_3_days", "lead_7_days"],
            "units_exposed": [n_control, n_treatment],
        }
    )
    return frame, units


BASE = {"converted_7d": 0.10, "revenue_30d": 0, "clicked_1d": 0.1, "opted_out_7d": 0.01}


def verdict_for(frame, units, spec=LEAD):
    comparisons = compare_arms(frame, [spec])
    (verdict,) = judge(comparisons, sample_ratio(units, [spec]), [spec])
    return comparisons, verdict


def test_a_clear_winner_ships_once_the_planned_sample_is_reached():
    better = BASE | {"converted_7d": 0.16}
    comparisons, verdict = verdict_for(*summaries(2000, 2000, BASE, better))
    assert verdict.verdict == "ship lead_7_days", verdict
    primary = comparisons.filter(pl.col("role") == "primary").row(0, named=True)
    assert primary["lift_relative"] == pytest.approx(
        primary["mean_treatment"] / primary["mean_control"] - 1
    )
    assert primary["ci_relative_low"] > 0 and primary["p_value_adjusted"] < 0.05


def test_a_fixed_test_is_not_judged_before_its_planned_sample():
    better = BASE | {"converted_7d": 0.20}
    _, verdict = verdict_for(*summaries(500, 500, BASE, better))
    assert verdict.verdict == KEEP_RUNNING
    assert verdict.progress == pytest.approx(1000 / LEAD.planned_units)


def test_no_difference_at_the_planned_sample_stops_without_a_winner():
    _, verdict = verdict_for(*summaries(2000, 2000, BASE, BASE, seed=3))
    assert verdict.verdict == STOP_NO_WINNER


def test_a_breached_guardrail_stops_the_experiment():
    harmful = BASE | {"converted_7d": 0.16, "opted_out_7d": 0.05}
    comparisons, verdict = verdict_for(*summaries(2000, 2000, BASE, harmful))
    assert verdict.verdict == STOP_GUARDRAIL
    guard = comparisons.filter(pl.col("role") == "guardrail").row(0, named=True)
    assert guard["breached"] and not guard["non_inferior"]
    assert guard["guardrail_exact_p_value"] < 0.001


def test_sample_ratio_mismatch_overrides_everything():
    better = BASE | {"converted_7d": 0.16}
    _, verdict = verdict_for(*summaries(2000, 2300, BASE, better))
    assert verdict.verdict == STOP_SRM and verdict.srm_mismatch


def test_numbers_equal_the_stats_engine_and_the_compare_command():
    frame, _ = summaries(3000, 3000, BASE, BASE | {"converted_7d": 0.12})
    row = compare_arms(frame, [LEAD]).filter(pl.col("metric") == "converted_7d").row(0, named=True)
    sums = {
        r["variant_key"]: r
        for r in frame.filter(pl.col("metric") == "converted_7d").iter_rows(named=True)
    }
    payload = {
        "metric_type": "binary",
        "control": {"n": sums["lead_3_days"]["n"], "sum": sums["lead_3_days"]["sum"]},
        "treatment": {"n": sums["lead_7_days"]["n"], "sum": sums["lead_7_days"]["sum"]},
    }
    reference = stats.compare(payload)
    assert row["lift_relative"] == pytest.approx(reference["lift_relative"], abs=1e-12)
    assert [row["ci_relative_low"], row["ci_relative_high"]] == pytest.approx(
        reference["ci_relative"], abs=1e-12
    )
    assert row["p_value"] == pytest.approx(reference["p_value_relative"], abs=1e-12)
    assert row["chance_to_win"] == pytest.approx(reference["chance_to_win"], abs=1e-12)


def test_cuped_narrows_revenue_when_the_pre_period_predicts_it():
    frame, _ = summaries(3000, 3000, BASE, BASE)
    row = compare_arms(frame, [LEAD]).filter(pl.col("metric") == "revenue_30d").row(0, named=True)
    assert row["cuped"] and row["variance_reduction"] > 0.1


def test_sequential_experiments_are_judged_at_any_time_with_wider_intervals():
    sequential = dataclasses.replace(LEAD, analysis="sequential")
    frame, units = summaries(600, 600, BASE, BASE | {"converted_7d": 0.30})
    fixed_row = compare_arms(frame, [LEAD]).filter(pl.col("role") == "primary").row(0, named=True)
    comparisons, verdict = verdict_for(frame, units, sequential)
    seq_row = comparisons.filter(pl.col("role") == "primary").row(0, named=True)
    assert seq_row["ci_relative_low"] < fixed_row["ci_relative_low"]
    assert verdict.verdict == "ship lead_7_days"


def test_incremental_revenue_against_the_holdout_recovers_a_known_lift():
    rng = np.random.default_rng(5)
    rows = []
    for arm, n, lift in (("treated", 9000, 2.0), ("held_out", 1000, 0.0)):
        pre = rng.exponential(10.0, n)
        y = 0.6 * pre + rng.normal(5.0 + lift, 4.0, n)
        rows.append(
            {
                "flow": "replenishment_reminder",
                "arm": arm,
                "n": n,
                "sum": y.sum(),
                "sum_squares": (y * y).sum(),
                "pre_sum": pre.sum(),
                "pre_sum_squares": (pre * pre).sum(),
                "sum_products": (pre * y).sum(),
            }
        )
    (row,) = incremental_revenue(pl.DataFrame(rows)).iter_rows(named=True)
    assert row["cuped"]
    assert row["ci_per_unit_low"] < 2.0 < row["ci_per_unit_high"]
    assert row["ci_per_unit_high"] - row["ci_per_unit_low"] < 1.0  # CUPED took out pre's noise
    assert row["incremental_revenue"] == pytest.approx(row["effect_per_unit"] * 9000)
