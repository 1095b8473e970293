"""Every running experiment's metrics and variants, compared with control and judged.

Input is per-arm sums (the dbt mart `experiment_metric_summaries`: units, sum, sum of squares,
the pre-exposure sums for CUPED and the denominator sums for ratio metrics) and the specs;
output is one row per experiment x metric x treatment variant, computed in one vectorized
pass of `pipelines.stats`, and one verdict per experiment.

Choices an analyst should know (DESIGN section 7):
- Effects are CUPED-adjusted whenever the mart carries pre-exposure sums for the metric
  (the same metric over the 30 days before exposure); `variance_reduction` says what it bought.
- A spec's `analysis` decides which p-value and interval judge it: fixed (Welch), sequential
  (always-valid, tuned to `planned_units`, so looking every day is fine) or bayesian (chance
  to beat control at least 1 - alpha).
- The primary metric is the decision: Holm-Bonferroni across its treatment variants.
  Secondary metrics are exploratory: Benjamini-Hochberg q-values across metrics x variants.
- A guardrail is non-inferior when its one-sided bound is inside the spec's margin; it is
  breached when it is significantly worse than control by more than the margin. Opt-outs are
  rare, so binary guardrails use an exact test for "significantly worse".
- A fixed-horizon experiment is only judged once it reaches its planned units: peeking at a
  fixed test inflates false positives.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines import stats
from pipelines.experiments.spec import METRICS, Spec

PRIMARY, SECONDARY, GUARDRAIL = "primary", "secondary", "guardrail"

SHIP = "ship"
KEEP_RUNNING = "keep running"
STOP_SRM = "stop: sample ratio mismatch"
STOP_GUARDRAIL = "stop: guardrail breached"
STOP_NO_WINNER = "stop: no variant beats control"

SUMMARY_COLUMNS = (
    "n",
    "sum",
    "sum_squares",
    "pre_sum",
    "pre_sum_squares",
    "sum_products",
    "denominator_sum",
    "denominator_sum_squares",
    "sum_numerator_denominator",
)


@dataclass(frozen=True)
class ExperimentVerdict:
    experiment_key: str
    verdict: str  # one of the constants above; "ship <variant>" names the variant
    reason: str
    analysis: str
    units: int  # exposed units in the analysis of the primary metric
    planned_units: int | None
    progress: float | None  # units / planned_units
    srm_p_value: float
    srm_mismatch: bool


def _pairs(summaries: pl.DataFrame, specs: list[Spec]) -> pl.DataFrame:
    """One row per (experiment, metric, treatment variant) with control and treatment sums."""
    rows = []
    for spec in specs:
        control = spec.variants[0].key
        metrics = (
            [(spec.primary_metric, PRIMARY, None)]
            + [(m, SECONDARY, None) for m in spec.secondary_metrics]
            + [(g.metric, GUARDRAIL, g) for g in spec.guardrail_metrics]
        )
        for metric, role, guardrail in metrics:
            for variant in spec.variants[1:]:
                rows.append(
                    {
                        "experiment_key": spec.key,
                        "metric": metric,
                        "role": role,
                        "kind": METRICS[metric].kind,
                        "control_key": control,
                        "variant_key": variant.key,
                        "alpha": spec.alpha,
                        "analysis": spec.analysis,
                        "planned_units": spec.planned_units,
                        "margin": guardrail.margin if guardrail else None,
                        "margin_relative": bool(guardrail and guardrail.margin_type == "relative"),
                        "higher_is_better": (
                            guardrail.direction == "lower_is_worse"
                            if guardrail
                            else METRICS[metric].higher_is_better
                        ),
                    }
                )
    if not rows:
        return pl.DataFrame()
    pairs = pl.DataFrame(rows)
    sums = summaries.select("experiment_key", "variant_key", "metric", *SUMMARY_COLUMNS)
    for side, key in (("c", "control_key"), ("t", "variant_key")):
        renamed = sums.rename({c: f"{c}_{side}" for c in SUMMARY_COLUMNS}).rename(
            {"variant_key": key}
        )
        pairs = pairs.join(renamed, on=["experiment_key", key, "metric"], how="left")
    return pairs.with_columns(pl.col(f"n_{s}").fill_null(0) for s in "ct")


def _arm(frame: pl.DataFrame, side: str) -> tuple[stats.ArmSummary, stats.CupedSums]:
    def col(name: str) -> np.ndarray:
        return frame[f"{name}_{side}"].cast(pl.Float64).fill_null(np.nan).to_numpy()

    n, total, squares = col("n"), col("sum"), col("sum_squares")
    kind = frame["kind"].to_numpy()
    binary = stats.binary_summary(n, total)
    mean = stats.mean_summary(n, total, squares)
    ratio = stats.ratio_summary(
        stats.RatioSums(
            n,
            total,
            squares,
            col("denominator_sum"),
            col("denominator_sum_squares"),
            col("sum_numerator_denominator"),
        )
    )
    summary = stats.ArmSummary(
        *(
            np.select([kind == "binary", kind == "ratio"], [b, r], m)
            for b, m, r in zip(binary, mean, ratio, strict=True)
        )
    )
    cuped = stats.CupedSums(
        n, total, squares, col("pre_sum"), col("pre_sum_squares"), col("sum_products")
    )
    return summary, cuped


def compare_arms(summaries: pl.DataFrame, specs: list[Spec]) -> pl.DataFrame:
    """Effects, intervals, p-values and guardrail tests for every comparison, vectorized."""
    frame = _pairs(summaries, specs)
    if frame.is_empty():
        return frame
    control, cuped_c = _arm(frame, "c")
    treatment, cuped_t = _arm(frame, "t")
    alpha = frame["alpha"].to_numpy()
    absolute = stats.absolute_effect(control, treatment, alpha)
    relative = stats.relative_effect(control, treatment, alpha)

    # CUPED where the mart carries the pre-exposure sums (not for ratios).
    with np.errstate(all="ignore"):
        adjusted = stats.cuped_effect(cuped_c, cuped_t, alpha)
    use_cuped = (
        (frame["kind"].to_numpy() != "ratio")
        & np.isfinite(adjusted.relative.se)
        & np.isfinite(adjusted.absolute.se)
        & (np.nan_to_num(adjusted.variance_reduction) > 0)
    )
    absolute = _where(use_cuped, adjusted.absolute, absolute)
    relative = _where(use_cuped, adjusted.relative, relative)

    n_total = control.n + treatment.n
    planned = frame["planned_units"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    tuning = np.where(np.isfinite(planned) & (planned > 0), planned, np.maximum(n_total, 1))
    sequential = stats.sequential_effect(relative, np.maximum(n_total, 1), tuning, alpha)
    sequential_abs = stats.sequential_effect(absolute, np.maximum(n_total, 1), tuning, alpha)
    is_sequential = frame["analysis"].to_numpy() == "sequential"
    chance = stats.chance_to_win(relative.estimate, relative.se)
    loss = stats.expected_loss(relative.estimate, relative.se)

    result = frame.select(
        "experiment_key",
        "metric",
        "role",
        "kind",
        "control_key",
        "variant_key",
        "analysis",
        "alpha",
        "planned_units",
        "margin",
        "margin_relative",
        "higher_is_better",
    ).with_columns(
        n_control=pl.Series(control.n),
        n_treatment=pl.Series(treatment.n),
        mean_control=pl.Series(control.mean),
        mean_treatment=pl.Series(treatment.mean),
        cuped=pl.Series(use_cuped),
        variance_reduction=pl.Series(np.where(use_cuped, adjusted.variance_reduction, 0.0)),
        effect_absolute=pl.Series(absolute.estimate),
        ci_absolute_low=pl.Series(np.where(is_sequential, sequential_abs.ci_low, absolute.ci_low)),
        ci_absolute_high=pl.Series(
            np.where(is_sequential, sequential_abs.ci_high, absolute.ci_high)
        ),
        p_value_absolute=pl.Series(
            np.where(is_sequential, sequential_abs.p_value, absolute.p_value)
        ),
        lift_relative=pl.Series(relative.estimate),
        ci_relative_low=pl.Series(np.where(is_sequential, sequential.ci_low, relative.ci_low)),
        ci_relative_high=pl.Series(np.where(is_sequential, sequential.ci_high, relative.ci_high)),
        p_value=pl.Series(np.where(is_sequential, sequential.p_value, relative.p_value)),
        chance_to_win=pl.Series(chance),
        expected_loss=pl.Series(loss.treatment),
    )
    result = _with_adjusted_p_values(result)
    return _with_guardrails(result, frame, absolute, relative, alpha)


def _where(mask: np.ndarray, a: stats.Effect, b: stats.Effect) -> stats.Effect:
    return stats.Effect(*(np.where(mask, x, y) for x, y in zip(a, b, strict=True)))


def _nan_to_null(frame: pl.DataFrame) -> pl.DataFrame:
    floats = [c for c, t in frame.schema.items() if t == pl.Float64]
    return frame.with_columns(pl.col(floats).fill_nan(None))


def _with_adjusted_p_values(result: pl.DataFrame) -> pl.DataFrame:
    """Holm across the primary's variants; Benjamini-Hochberg across secondaries x variants."""
    adjusted = np.full(result.height, np.nan)
    p = result["p_value"].to_numpy()
    families = result.with_row_index("i").group_by("experiment_key", "role").agg("i")
    for _, role, idx in families.iter_rows():
        idx = np.asarray(idx)
        finite = idx[np.isfinite(p[idx])]
        if len(finite) == 0 or role == GUARDRAIL:
            continue
        method = stats.holm if role == PRIMARY else stats.benjamini_hochberg
        adjusted[finite] = method(p[finite])
    return result.with_columns(p_value_adjusted=pl.Series(adjusted))


def _with_guardrails(
    result: pl.DataFrame,
    frame: pl.DataFrame,
    absolute: stats.Effect,
    relative: stats.Effect,
    alpha: np.ndarray,
) -> pl.DataFrame:
    guard = result["role"].to_numpy() == GUARDRAIL
    margin = np.nan_to_num(frame["margin"].cast(pl.Float64).fill_null(0.0).to_numpy())
    higher_is_better = frame["higher_is_better"].to_numpy().astype(bool)
    on_relative = frame["margin_relative"].to_numpy().astype(bool)
    effect = _where(on_relative, relative, absolute)
    with np.errstate(all="ignore"):
        test = stats.non_inferiority_test(effect, margin, higher_is_better, alpha)
    worse_by = np.where(higher_is_better, -effect.estimate, effect.estimate)
    # "Significantly worse": an exact test for the rare binary guardrails (opt-outs), else
    # the two-sided interval entirely on the harmful side.
    harmful_side = np.where(higher_is_better, effect.ci_high < 0, effect.ci_low > 0)
    exact_p = np.full(result.height, np.nan)
    for i in np.flatnonzero(guard & (frame["kind"].to_numpy() == "binary")):
        row = frame.row(i, named=True)
        if not row["n_c"] or not row["n_t"]:
            continue
        worse = "less" if higher_is_better[i] else "greater"
        exact_p[i] = float(
            stats.rare_event_test(
                row["sum_c"], row["n_c"], row["sum_t"], row["n_t"], alternative=worse
            ).p_value
        )
    significant = np.where(np.isfinite(exact_p), exact_p < alpha, harmful_side)
    breached = guard & significant & (worse_by > margin)
    return _nan_to_null(
        result.with_columns(
            guardrail_bound=pl.Series(np.where(guard, test.bound, np.nan)),
            guardrail_p_value=pl.Series(np.where(guard, test.p_value, np.nan)),
            guardrail_exact_p_value=pl.Series(exact_p),
            non_inferior=pl.Series(np.where(guard, test.non_inferior, False)),
            breached=pl.Series(breached),
        )
    )


def sample_ratio(units: pl.DataFrame, specs: list[Spec]) -> dict[str, stats.SRMResult]:
    """Chi-square of exposed units per variant against the spec's weights, per experiment.

    `units` has experiment_key, variant_key and units_exposed (repeats are ignored).
    """
    found = {}
    for spec in specs:
        counts = dict(
            units.filter(pl.col("experiment_key") == spec.key)
            .select("variant_key", "units_exposed")
            .unique()
            .iter_rows()
        )
        exposed = [counts.get(v.key, 0) or 0 for v in spec.variants]
        if sum(exposed) == 0:
            continue
        found[spec.key] = stats.sample_ratio_mismatch(exposed, [v.weight for v in spec.variants])
    return found


def judge(comparisons: pl.DataFrame, srm: dict[str, stats.SRMResult], specs: list[Spec]):
    """One verdict per experiment, from its comparisons and its sample-ratio check."""
    verdicts = []
    for spec in specs:
        rows = comparisons.filter(pl.col("experiment_key") == spec.key)
        primary = rows.filter(pl.col("role") == PRIMARY)
        units = int((primary["n_control"].max() or 0) + (primary["n_treatment"].sum() or 0))
        planned = spec.planned_units
        progress = units / planned if planned else None
        check = srm.get(spec.key)
        srm_p = float(check.p_value) if check is not None else math.nan
        mismatch = bool(check.mismatch) if check is not None else False
        verdict, reason = _verdict(spec, rows, primary, progress, mismatch, srm_p)
        verdicts.append(
            ExperimentVerdict(
                spec.key, verdict, reason, spec.analysis, units, planned, progress, srm_p, mismatch
            )
        )
    return verdicts


def _verdict(spec, rows, primary, progress, mismatch, srm_p) -> tuple[str, str]:
    if mismatch:
        return STOP_SRM, f"exposed units do not match the weights (p = {srm_p:.2g} < 0.001)"
    breached = rows.filter(pl.col("breached"))
    if breached.height:
        first = breached.row(0, named=True)
        return STOP_GUARDRAIL, (
            f"{first['metric']} is significantly worse in {first['variant_key']} "
            f"by more than the margin {first['margin']:g}"
        )
    guardrails_ok = rows.filter(pl.col("role") == GUARDRAIL)["non_inferior"].all()
    decided = spec.analysis != "fixed" or (progress is not None and progress >= 1)
    if spec.analysis == "bayesian":
        winners = primary.filter(pl.col("chance_to_win") >= 1 - spec.alpha)
        losers = primary.filter(pl.col("chance_to_win") <= spec.alpha)
    else:
        significant = pl.col("p_value_adjusted") < spec.alpha
        winners = primary.filter(significant & (pl.col("lift_relative") > 0))
        losers = primary.filter(significant & (pl.col("lift_relative") < 0))
    if not decided:
        return KEEP_RUNNING, (
            f"fixed-horizon test at {progress or 0:.0%} of its planned units: not judged yet"
        )
    if winners.height and guardrails_ok:
        best = winners.sort("lift_relative", descending=True).row(0, named=True)
        return f"{SHIP} {best['variant_key']}", (
            f"{spec.primary_metric} {best['lift_relative']:+.1%} "
            f"(p = {best['p_value_adjusted']:.2g}), guardrails within their margins"
        )
    if winners.height:
        return KEEP_RUNNING, "a variant wins, but its guardrails are not yet shown within margin"
    if losers.height == primary.height and primary.height:
        return STOP_NO_WINNER, f"every variant is significantly worse on {spec.primary_metric}"
    if spec.analysis == "fixed":
        return STOP_NO_WINNER, "planned sample reached without a significant difference"
    return KEEP_RUNNING, "no significant difference yet"


def verdict_frame(verdicts: list[ExperimentVerdict], as_of: dt.datetime) -> pl.DataFrame:
    return pl.DataFrame(
        [v.__dict__ | {"as_of": as_of} for v in verdicts],
        schema={
            "experiment_key": pl.String,
            "verdict": pl.String,
            "reason": pl.String,
            "analysis": pl.String,
            "units": pl.Int64,
            "planned_units": pl.Int64,
            "progress": pl.Float64,
            "srm_p_value": pl.Float64,
            "srm_mismatch": pl.Boolean,
            "as_of": pl.Datetime("us", "UTC"),
        },
    ).with_columns(pl.col("progress", "srm_p_value").fill_nan(None))


def incremental_revenue(holdouts: pl.DataFrame, alpha: float = 0.05) -> pl.DataFrame:
    """Per flow: revenue per unit of treated against held-out customers, and what it adds up to.

    `holdouts` has one row per (flow, arm) with arm "treated" or "held_out" and the sums of
    the revenue metric (and its pre-exposure sums, for CUPED). The incremental revenue is the
    per-unit difference times the treated units: what the flow's texts added over not sending.
    """
    columns = ("n", "sum", "sum_squares", "pre_sum", "pre_sum_squares", "sum_products")
    treated = holdouts.filter(pl.col("arm") == "treated").select("flow", *columns)
    held = holdouts.filter(pl.col("arm") == "held_out").select("flow", *columns)
    both = treated.join(held, on="flow", suffix="_h").sort("flow")
    if both.is_empty():
        return pl.DataFrame()

    def col(name: str) -> np.ndarray:
        return both[name].cast(pl.Float64).fill_null(np.nan).to_numpy()

    arms = [
        stats.mean_summary(col(f"n{s}"), col(f"sum{s}"), col(f"sum_squares{s}")) for s in ("_h", "")
    ]
    effect = stats.absolute_effect(arms[0], arms[1], alpha)
    with np.errstate(all="ignore"):
        cuped = stats.cuped_effect(
            *(stats.CupedSums(*(col(f"{c}{s}") for c in columns)) for s in ("_h", "")),
            alpha,
        )
    use_cuped = np.isfinite(cuped.absolute.se) & (np.nan_to_num(cuped.variance_reduction) > 0)
    effect = _where(use_cuped, cuped.absolute, effect)
    n_treated = col("n")
    return _nan_to_null(
        pl.DataFrame(
            {
                "flow": both["flow"],
                "units_treated": both["n"],
                "units_held_out": both["n_h"],
                "revenue_per_unit_treated": arms[1].mean,
                "revenue_per_unit_held_out": arms[0].mean,
                "cuped": use_cuped,
                "effect_per_unit": effect.estimate,
                "ci_per_unit_low": effect.ci_low,
                "ci_per_unit_high": effect.ci_high,
                "p_value": effect.p_value,
                "incremental_revenue": effect.estimate * n_treated,
                "ci_incremental_low": effect.ci_low * n_treated,
                "ci_incremental_high": effect.ci_high * n_treated,
            }
        )
    )
