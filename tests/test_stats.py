"""Tests of pipelines.stats: the reference numbers in notes/statistics.md, vectorization, and
properties and simulations for what the reference lacks."""

from __future__ import annotations

import json
import math

import duckdb
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.integrate import quad

from pipelines.stats import (
    ArmSummary,
    CupedSums,
    Effect,
    RatioSums,
    absolute_effect,
    benjamini_hochberg,
    binary_summary,
    chance_to_win,
    compare,
    cuped_effect,
    expected_loss,
    half_width,
    holm,
    mean_summary,
    non_inferiority,
    non_inferiority_test,
    nonzero_cap,
    plan,
    rare_event_test,
    ratio_summary,
    relative_effect,
    sample_ratio_mismatch,
    sample_size_per_arm,
    sequential_effect,
    sequential_p_value,
    t_inference,
    winsorize,
)

TOL = 1e-6  # the notes give six significant figures
FAST = settings(max_examples=60, deadline=None)


def approx(value: float) -> object:
    return pytest.approx(value, abs=TOL)


# --- reference cases (gbstats 0.8.0, alpha 0.05) -------------------------------------------

CLICKS_CONTROL = binary_summary(50_000, 1_500)
CLICKS_TREATMENT = binary_summary(50_300, 1_680)


def sums_from_moments(n: int, total: float, variance: float) -> tuple[int, float, float]:
    """The notes give revenue as mean and variance; the warehouse gives sums."""
    return n, total, variance * (n - 1) + total**2 / n


# The treatment mean 1.29006 in the notes is rounded: the reference numbers (lift 0.0531099,
# p 0.510233, chance 0.744884) come from a treatment sum of 64,890 (mean 1.2900596), and the
# rounded mean would move p and the chance to beat control by 2e-6.
REVENUE_CONTROL = mean_summary(*sums_from_moments(50_000, 1.225 * 50_000, 225.0))
REVENUE_TREATMENT = mean_summary(*sums_from_moments(50_300, 64_890.0, 240.0))


def test_clicks_relative_lift_matches_reference():
    lift = relative_effect(CLICKS_CONTROL, CLICKS_TREATMENT)
    assert lift.estimate == approx(0.11332)
    assert lift.se == approx(0.0389188)
    assert lift.ci_low == approx(0.0370396)
    assert lift.ci_high == approx(0.189601)
    assert lift.p_value == approx(0.00359545)


def test_clicks_absolute_effect_matches_reference():
    effect = absolute_effect(CLICKS_CONTROL, CLICKS_TREATMENT)
    assert effect.estimate == approx(0.0033996)
    assert effect.ci_low == approx(0.00123133)
    assert effect.ci_high == approx(0.00556788)
    assert effect.p_value == approx(0.00211951)


def test_clicks_sequential_interval_matches_reference():
    lift = relative_effect(CLICKS_CONTROL, CLICKS_TREATMENT)
    sequential = sequential_effect(lift, 100_300, tuning=100_300)
    assert sequential.ci_low == approx(-0.00480674)
    assert sequential.ci_high == approx(0.231447)
    # The interval contains zero, so the inverted p-value must not be below alpha.
    assert sequential.p_value > 0.05


def test_clicks_chance_to_beat_control_matches_reference():
    lift = relative_effect(CLICKS_CONTROL, CLICKS_TREATMENT)
    assert chance_to_win(lift.estimate, lift.se) == approx(0.998203)


def test_revenue_matches_reference():
    assert REVENUE_TREATMENT.mean == pytest.approx(1.29006, abs=5e-6)
    assert REVENUE_CONTROL.variance == pytest.approx(225.0, rel=1e-12)
    lift = relative_effect(REVENUE_CONTROL, REVENUE_TREATMENT)
    assert lift.estimate == approx(0.0531099)
    assert lift.se == approx(0.0806556)
    assert lift.ci_low == approx(-0.104974)
    assert lift.ci_high == approx(0.211194)
    assert lift.p_value == approx(0.510233)
    assert chance_to_win(lift.estimate, lift.se) == approx(0.744884)


def test_srm_matches_reference():
    result = sample_ratio_mismatch([50_000, 50_300], [0.5, 0.5])
    assert result.statistic == approx(0.897308)
    assert result.p_value == approx(0.343505)
    assert result.df == 1
    assert not result.mismatch


def test_srm_flags_a_real_mismatch_and_matches_scipy_for_three_arms():
    units = np.array([[50_000, 50_300, 25_100], [50_000, 51_500, 25_000]])
    weights = [0.4, 0.4, 0.2]
    result = sample_ratio_mismatch(units, weights)
    for row, statistic, p_value in zip(units, result.statistic, result.p_value, strict=True):
        expected = stats.chisquare(row, row.sum() * np.array(weights))
        assert statistic == pytest.approx(expected.statistic, rel=1e-12)
        assert p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.df.tolist() == [2, 2]
    assert result.mismatch.tolist() == [False, True]


# --- compare (the CLI payload) ---------------------------------------------------------------


def clicks_payload(**overrides) -> dict:
    payload = {
        "metric_type": "binary",
        "control": {"n": 50_000, "sum": 1_500},
        "treatment": {"n": 50_300, "sum": 1_680},
        "alpha": 0.05,
        "method": "sequential",
        "sequential_tuning": 100_300,
    }
    return payload | overrides


def test_compare_reproduces_the_clicks_reference_as_plain_json():
    result = compare(clicks_payload())
    json.dumps(result, allow_nan=False)  # plain JSON types, no NaN
    assert result["lift_relative"] == approx(0.11332)
    assert result["ci_relative"] == [approx(0.0370396), approx(0.189601)]
    assert result["p_value_relative"] == approx(0.00359545)
    assert result["effect_absolute"] == approx(0.0033996)
    assert result["ci_absolute"] == [approx(0.00123133), approx(0.00556788)]
    assert result["p_value_absolute"] == approx(0.00211951)
    assert result["chance_to_win"] == approx(0.998203)
    assert result["ci_relative_sequential"] == [approx(-0.00480674), approx(0.231447)]
    low, high = result["ci_absolute_sequential"]
    assert low < result["ci_absolute"][0] and high > result["ci_absolute"][1]
    assert result["p_value_sequential"] > 0.05  # the relative sequence contains 0
    assert result["p_value_absolute_sequential"] < 0.05  # the absolute one (just) does not


def test_compare_revenue_from_sums_and_bayesian_loss():
    n_a, sum_a, sq_a = sums_from_moments(50_000, 61_250.0, 225.0)
    n_b, sum_b, sq_b = sums_from_moments(50_300, 64_890.0, 240.0)
    result = compare(
        {
            "metric_type": "mean",
            "control": {"n": n_a, "sum": sum_a, "sum_squares": sq_a},
            "treatment": {"n": n_b, "sum": sum_b, "sum_squares": sq_b},
            "method": "bayesian",
        }
    )
    json.dumps(result, allow_nan=False)
    assert result["p_value_relative"] == approx(0.510233)
    assert result["chance_to_win"] == approx(0.744884)
    loss = result["expected_loss"]
    assert loss["control"] - loss["treatment"] == pytest.approx(result["lift_relative"])
    assert "ci_relative_sequential" not in result


def test_compare_zero_baseline_gives_null_not_nan():
    result = compare(clicks_payload(control={"n": 100, "sum": 0}, method="fixed"))
    json.dumps(result, allow_nan=False)
    assert result["lift_relative"] is None
    assert result["effect_absolute"] == pytest.approx(1_680 / 50_300)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"metric_type": "count"}, "metric_type"),
        ({"method": "frequentist"}, "method"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": "0.05"}, "alpha"),
        ({"control": {"n": 50_000}}, "control.sum"),
        ({"treatment": {"n": True, "sum": 3}}, "treatment.n"),
        ({"treatment": {"n": 10.5, "sum": 3}}, "treatment.n"),
        ({"control": {"n": 100, "sum": 101}}, "control.sum"),
        ({"control": {"n": 100, "sum": 10, "sum_squares": 20}}, "control.sum_squares"),
        ({"control": {"n": 100, "sum": 10, "total": 10}}, "control.total"),
        ({"treatment": [1, 2]}, "treatment"),
        ({"sequential_tuning": 0}, "sequential_tuning"),
        ({"sequential_tuning": None}, "sequential_tuning"),
        ({"sequential_tunning": 100_300}, "sequential_tunning"),
    ],
)
def test_compare_rejects_bad_payloads_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        compare(clicks_payload(**overrides))


def test_compare_mean_requires_sum_squares_and_sequential_requires_tuning():
    with pytest.raises(ValueError, match=r"control\.sum_squares"):
        compare(clicks_payload(metric_type="mean"))
    payload = clicks_payload()
    del payload["sequential_tuning"]
    with pytest.raises(ValueError, match="sequential_tuning"):
        compare(payload)
    with pytest.raises(ValueError, match=r"treatment\.sum_squares"):
        compare(
            {
                "metric_type": "mean",
                "control": {"n": 10, "sum": 10, "sum_squares": 20},
                "treatment": {"n": 10, "sum": 10, "sum_squares": 5},
            }
        )


# --- vectorization ---------------------------------------------------------------------------

binary_arm = st.integers(2, 1_000_000).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(1, n - 1))
)
binary_pairs = st.lists(st.tuples(binary_arm, binary_arm), min_size=1, max_size=8)


def arrays_of(pairs) -> tuple[ArmSummary, ArmSummary]:
    (n_a, x_a), (n_b, x_b) = (np.array(arm).T for arm in zip(*pairs, strict=True))
    return binary_summary(n_a, x_a), binary_summary(n_b, x_b)


def assert_same(vector, scalars) -> None:
    """A NamedTuple of arrays equals the stacked NamedTuples of scalars, field by field."""
    for name, column in zip(vector._fields, zip(*scalars, strict=True), strict=True):
        actual, expected = getattr(vector, name), np.array(column)
        if isinstance(actual, tuple):
            assert_same(actual, column)
        else:
            np.testing.assert_allclose(actual, expected, rtol=1e-12, err_msg=name)


@FAST
@given(binary_pairs, st.floats(0.001, 0.2))
def test_effects_vectorized_equal_scalar(pairs, alpha):
    control, treatment = arrays_of(pairs)
    scalar_arms = [(binary_summary(*a), binary_summary(*b)) for a, b in pairs]
    for function in (absolute_effect, relative_effect):
        vector = function(control, treatment, alpha)
        assert_same(vector, [function(a, b, alpha) for a, b in scalar_arms])

    lift = relative_effect(control, treatment, alpha)
    n_total = control.n + treatment.n
    scalar_lifts = [relative_effect(a, b, alpha) for a, b in scalar_arms]
    assert_same(
        sequential_effect(lift, n_total, 2 * n_total, alpha),
        [
            sequential_effect(one, a.n + b.n, 2 * (a.n + b.n), alpha)
            for one, (a, b) in zip(scalar_lifts, scalar_arms, strict=True)
        ],
    )
    np.testing.assert_allclose(
        chance_to_win(lift.estimate, lift.se),
        [chance_to_win(one.estimate, one.se) for one in scalar_lifts],
        rtol=1e-12,
    )
    assert_same(
        expected_loss(lift.estimate, lift.se),
        [expected_loss(one.estimate, one.se) for one in scalar_lifts],
    )
    assert_same(
        non_inferiority_test(lift, 0.05, higher_is_better=False, alpha=alpha),
        [non_inferiority_test(one, 0.05, False, alpha) for one in scalar_lifts],
    )


def test_effects_broadcast_over_experiments_metrics_variants():
    rng = np.random.default_rng(7)
    shape = (3, 4, 2)  # experiments x metrics x variants
    n_a = rng.integers(1_000, 100_000, shape)
    n_b = rng.integers(1_000, 100_000, shape)
    control = binary_summary(n_a, rng.binomial(n_a, 0.05))
    treatment = binary_summary(n_b, rng.binomial(n_b, 0.055))
    lift = relative_effect(control, treatment)
    assert lift.p_value.shape == shape
    index = (2, 1, 0)
    one = relative_effect(
        ArmSummary(*(field[index] for field in control)),
        ArmSummary(*(field[index] for field in treatment)),
    )
    assert lift.ci_high[index] == one.ci_high
    assert isinstance(one.p_value, float)  # scalars in, (NumPy) scalars out


def test_cuped_and_ratio_vectorized_equal_scalar():
    rng = np.random.default_rng(11)
    arms = []
    for _ in range(5):
        x = rng.normal(3, 1, (2, 400))
        y = 1 + 0.8 * x + rng.normal(0, 1, (2, 400))
        arms.append([(400, *sums(y[k], x[k])) for k in range(2)])
    stacked = [CupedSums(*np.array([arm[k] for arm in arms]).T) for k in range(2)]
    vector = cuped_effect(*stacked)
    scalars = [cuped_effect(CupedSums(*arm[0]), CupedSums(*arm[1])) for arm in arms]
    assert_same(vector, scalars)
    # The same sums read as a ratio metric (post per unit of pre).
    assert_same(
        ratio_summary(RatioSums(*stacked[0])),
        [ratio_summary(RatioSums(*arm[0])) for arm in arms],
    )


def sums(y: np.ndarray, x: np.ndarray, axis: int | None = None) -> tuple:
    """(sum y, sum y^2, sum x, sum x^2, sum xy): the order of CupedSums and RatioSums."""
    return tuple(v.sum(axis=axis) for v in (y, y * y, x, x * x, x * y))


# --- properties -------------------------------------------------------------------------------


@FAST
@given(binary_pairs, st.floats(0.001, 0.5))
def test_interval_contains_the_estimate(pairs, alpha):
    control, treatment = arrays_of(pairs)
    for effect in (
        absolute_effect(control, treatment, alpha),
        relative_effect(control, treatment, alpha),
    ):
        assert np.all(effect.ci_low <= effect.estimate)
        assert np.all(effect.estimate <= effect.ci_high)
        assert np.all((effect.p_value >= 0) & (effect.p_value <= 1))


big_binary_arm = st.integers(200, 1_000_000).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(1, n - 1))
)


@FAST
@given(big_binary_arm, big_binary_arm, st.floats(0.001, 0.2), st.floats(0.1, 100.0))
def test_sequential_interval_contains_fixed_interval(arm_a, arm_b, alpha, tuning_ratio):
    # -2 ln(alpha) >= z(1 - alpha/2)^2 for every alpha, and the sequence's (width/se)^2 exceeds
    # -2 ln(alpha), so with Welch df >= 199 (both arms of 200+) the t interval sits inside.
    control, treatment = binary_summary(*arm_a), binary_summary(*arm_b)
    n_total = arm_a[0] + arm_b[0]
    for effect in (
        absolute_effect(control, treatment, alpha),
        relative_effect(control, treatment, alpha),
    ):
        sequential = sequential_effect(effect, n_total, tuning_ratio * n_total, alpha)
        assert sequential.ci_low <= effect.ci_low
        assert sequential.ci_high >= effect.ci_high


@FAST
@given(
    st.floats(-50, 50),
    st.floats(1e-4, 10),
    st.integers(10, 10_000_000),
    st.floats(0.01, 100),
    st.floats(1e-4, 0.5),
)
def test_sequential_p_below_alpha_iff_interval_excludes_zero(z, se, n_total, ratio, alpha):
    estimate, tuning = z * se, ratio * n_total
    width = half_width(se, n_total, tuning, alpha)
    # Exactly on the boundary the two sides may round differently.
    assume(abs(abs(estimate) - width) > 1e-9 * width)
    excludes = estimate - width > 0 or estimate + width < 0
    p_value = sequential_p_value(estimate, se, n_total, tuning)
    assert 0 <= p_value <= 1
    assert (p_value < alpha) == excludes


def test_sequential_p_value_is_the_boundary_alpha():
    p_value = sequential_p_value(0.4, 0.1, 20_000, 40_000)
    assert 0 < p_value < 0.05
    # At alpha = p the sequence just touches zero.
    assert half_width(0.1, 20_000, 40_000, p_value) == pytest.approx(0.4, rel=1e-9)
    assert sequential_p_value(0.0, 0.1, 20_000, 40_000) == 1.0


def holm_by_definition(p: np.ndarray) -> np.ndarray:
    m, order = len(p), np.argsort(p, kind="stable")
    adjusted, running = np.empty(m), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


p_families = st.lists(st.floats(0, 1), min_size=1, max_size=30).map(np.array)


@FAST
@given(p_families)
def test_multiple_testing_adjustments(p):
    holm_p, bh_p = holm(p), benjamini_hochberg(p)
    np.testing.assert_allclose(bh_p, stats.false_discovery_control(p, method="bh"), rtol=1e-12)
    np.testing.assert_allclose(holm_p, holm_by_definition(p), rtol=1e-12)
    for adjusted in (holm_p, bh_p):
        assert np.all((adjusted >= p) & (adjusted <= 1))
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(adjusted[order]) >= 0)  # same order as the raw p-values
    assert np.all(holm_p >= bh_p - 1e-15)


def test_multiple_testing_families_along_an_axis():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.1, (4, 3, 5))  # experiments x metrics x variants
    by_experiment = benjamini_hochberg(p.reshape(4, 15), axis=1)
    np.testing.assert_allclose(
        by_experiment, stats.false_discovery_control(p.reshape(4, 15), axis=1), rtol=1e-12
    )
    np.testing.assert_allclose(holm(p.reshape(4, 15), axis=1)[2], holm(p[2]).reshape(-1))
    assert holm(p).shape == p.shape
    with pytest.raises(ValueError, match="p-values"):
        holm([0.1, np.nan])


# --- CUPED ------------------------------------------------------------------------------------


def test_cuped_relative_lift_coverage_by_simulation():
    """A big lift on a well-predicted metric, where the variance of the relative lift must
    include the variance of the unadjusted control mean in the denominator."""
    rng = np.random.default_rng(20240611)
    reps, n, rho, lift = 2_000, 1_000, 0.9, 0.5
    control_mean, noise = 2.0, math.sqrt(1 - rho**2)
    results = []
    for _ in range(4):  # batches keep memory small
        x = rng.normal(5.0, 1.0, (2, reps // 4, n))
        y = rho * (x - 5.0) + noise * rng.normal(size=x.shape)
        y += np.array([control_mean, control_mean * (1 + lift)])[:, None, None]
        arm_sums = [CupedSums(n, *sums(y[k], x[k], axis=1)) for k in range(2)]
        results.append(cuped_effect(*arm_sums))

    estimate = np.concatenate([r.relative.estimate for r in results])
    se = np.concatenate([r.relative.se for r in results])
    low = np.concatenate([r.relative.ci_low for r in results])
    high = np.concatenate([r.relative.ci_high for r in results])
    coverage = np.mean((low <= lift) & (lift <= high))
    assert abs(coverage - 0.95) < 0.015  # Monte-Carlo se is 0.005
    assert np.mean(se**2) == pytest.approx(np.var(estimate), rel=0.1)

    # The plain ratio formula on adjusted variances covers well below 95% here.
    theta = np.concatenate([r.theta for r in results])
    assert np.mean(theta) == pytest.approx(rho, abs=0.01)
    unit_var = 1 - rho**2  # adjusted unit variance, for the truth rather than per replicate
    naive_se = np.sqrt(unit_var / n / control_mean**2 * (1 + (1 + lift) ** 2))
    naive_coverage = np.mean(np.abs(estimate - lift) <= 1.96 * naive_se)
    assert naive_coverage < 0.93


def test_cuped_reduces_variance_and_ignores_a_useless_covariate():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (2, 5_000))
    y = 10 + 2 * x + rng.normal(0, 1, x.shape)
    result = cuped_effect(*(CupedSums(5_000, *sums(y[k], x[k])) for k in range(2)))
    assert result.theta == pytest.approx(2, abs=0.05)
    assert result.variance_reduction == pytest.approx(0.8, abs=0.02)  # 1 - 1/5
    plain = relative_effect(*(mean_summary(5_000, y[k].sum(), (y[k] ** 2).sum()) for k in range(2)))
    assert result.relative.se < plain.se

    constant = np.ones_like(x)
    flat = cuped_effect(*(CupedSums(5_000, *sums(y[k], constant[k])) for k in range(2)))
    assert flat.theta == 0
    assert flat.relative.se == pytest.approx(plain.se, rel=1e-9)
    assert flat.relative.estimate == pytest.approx(plain.estimate, rel=1e-12)


# --- ratio metrics ----------------------------------------------------------------------------


def test_ratio_variance_is_the_linearized_unit_variance():
    rng = np.random.default_rng(13)
    delivered = rng.poisson(3, 2_000).astype(float)
    revenue = delivered * rng.exponential(0.4, 2_000)
    summary = ratio_summary(RatioSums(2_000, *sums(revenue, delivered)))
    ratio = revenue.sum() / delivered.sum()
    assert summary.mean == pytest.approx(ratio)
    linearized = (revenue - ratio * delivered) / delivered.mean()
    assert summary.variance == pytest.approx(np.var(linearized, ddof=1), rel=1e-9)
    # A denominator of one per unit reduces to an ordinary mean.
    ones = np.ones(2_000)
    as_mean = ratio_summary(RatioSums(2_000, *sums(revenue, ones)))
    plain = mean_summary(2_000, revenue.sum(), (revenue**2).sum())
    assert as_mean.variance == pytest.approx(plain.variance, rel=1e-9)


# --- Bayesian loss ----------------------------------------------------------------------------


@pytest.mark.parametrize(("estimate", "se"), [(0.02, 0.01), (-0.03, 0.05), (0.0, 1.0)])
def test_expected_loss_matches_integration(estimate, se):
    loss = expected_loss(estimate, se)
    density = stats.norm(estimate, se).pdf
    gain_if_switching, _ = quad(lambda d: d * density(d), 0, np.inf)
    loss_if_switching, _ = quad(lambda d: -d * density(d), -np.inf, 0)
    assert loss.control == pytest.approx(gain_if_switching, abs=1e-10)
    assert loss.treatment == pytest.approx(loss_if_switching, abs=1e-10)


def test_expected_loss_far_from_zero_does_not_cancel():
    loss = expected_loss(1.0, 0.01)  # 100 standard errors
    assert 0 <= loss.treatment < 1e-12
    assert loss.control == pytest.approx(1.0)


# --- exact test -------------------------------------------------------------------------------


def test_exact_test_uses_boschloo_for_small_tables():
    result = rare_event_test(2, 30, 9, 30)
    assert result.method == "boschloo"
    assert result.p_value == pytest.approx(stats.boschloo_exact([[9, 2], [21, 28]]).pvalue)
    worse = rare_event_test(2, 30, 9, 30, alternative="greater")
    better = rare_event_test(2, 30, 9, 30, alternative="less")
    assert worse.p_value < 0.05 < better.p_value  # "greater": treatment opts out more


def test_exact_test_falls_back_to_fisher_for_large_tables():
    result = rare_event_test([30, 3], [50_000, 40], [55, 9], [50_000, 40])
    assert result.method.tolist() == ["fisher", "boschloo"]
    expected = stats.fisher_exact([[55, 30], [50_000 - 55, 50_000 - 30]]).pvalue
    assert result.p_value[0] == pytest.approx(expected)
    with pytest.raises(ValueError, match="exceed"):
        rare_event_test(5, 4, 1, 10)


# --- non-inferiority --------------------------------------------------------------------------


def test_non_inferiority_for_a_metric_where_higher_is_bad():
    # Opt-out rate 0.20% in control; treatment 0.21% with 200k units per arm.
    control, treatment = binary_summary(200_000, 400), binary_summary(200_000, 420)
    relaxed = non_inferiority(control, treatment, 0.25, relative=True, higher_is_better=False)
    strict = non_inferiority(control, treatment, 0.01, relative=True, higher_is_better=False)
    assert relaxed.non_inferior and relaxed.p_value < 0.05
    assert not strict.non_inferior
    lift = relative_effect(control, treatment)
    assert relaxed.bound > lift.estimate  # upper bound: the worrying side is up
    assert relaxed.bound < 0.25


@FAST
@given(
    st.floats(-1, 1),
    st.floats(1e-3, 1),
    st.floats(0, 1),
    st.booleans(),
    st.floats(0.005, 0.2),
)
def test_non_inferiority_p_value_agrees_with_bound(estimate, se, margin, higher_is_better, alpha):
    effect = Effect(estimate, se, 1_000.0, np.nan, np.nan, np.nan)
    result = non_inferiority_test(effect, margin, higher_is_better, alpha)
    inside = result.bound > -margin if higher_is_better else result.bound < margin
    assume(abs(abs(result.bound) - margin) > 1e-9)
    assert result.non_inferior == inside
    # At alpha / 2 the bound is the worrying end of the two-sided interval.
    two_sided = t_inference(estimate, se, 1_000.0, alpha)
    half = non_inferiority_test(effect, margin, higher_is_better, alpha / 2)
    worrying_end = two_sided.ci_low if higher_is_better else two_sided.ci_high
    assert half.bound == pytest.approx(worrying_end, rel=1e-12, abs=1e-15)


# --- winsorization ----------------------------------------------------------------------------


def test_nonzero_cap_on_mostly_zero_revenue():
    rng = np.random.default_rng(17)
    revenue = np.where(rng.uniform(size=100_000) < 0.005, rng.lognormal(3, 1, 100_000), 0.0)
    assert np.quantile(revenue, 0.99) == 0  # a plain cap would erase all revenue
    cap = nonzero_cap(revenue, 0.99)
    buyers = revenue[revenue > 0]
    assert cap == pytest.approx(np.quantile(buyers, 0.99))
    capped = winsorize(revenue, cap)
    assert np.count_nonzero(capped < revenue) == pytest.approx(0.01 * buyers.size, abs=2)
    assert np.count_nonzero(capped) == buyers.size
    assert nonzero_cap(np.zeros(10)) == 0.0


def test_nonzero_cap_matches_the_documented_sql():
    rng = np.random.default_rng(19)
    revenue = np.where(rng.uniform(size=2_000) < 0.1, rng.lognormal(3, 1, 2_000), 0.0)
    con = duckdb.connect()
    con.execute("create table unit_revenue (unit_id integer, revenue double)")
    con.executemany("insert into unit_revenue values (?, ?)", list(enumerate(revenue.tolist())))
    (sql_cap,) = con.execute(
        "select quantile_cont(revenue, 0.99) from unit_revenue where revenue <> 0"
    ).fetchone()
    assert nonzero_cap(revenue, 0.99) == pytest.approx(sql_cap, rel=1e-12)


# --- planner ----------------------------------------------------------------------------------


def power_at(var_c: float, var_t: float, n_c: float, n_t: float, delta: float) -> float:
    se = math.sqrt(var_c / n_c + var_t / n_t)
    z = stats.norm.ppf(0.975)
    return stats.norm.cdf(abs(delta) / se - z) + stats.norm.cdf(-abs(delta) / se - z)


def test_planner_binary_closed_form():
    n = sample_size_per_arm(0.03, 0.10)
    # Textbook two-proportion size with unpooled variances.
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert n == math.ceil(z**2 * (0.03 * 0.97 + 0.033 * 0.967) / 0.003**2)
    assert power_at(0.03 * 0.97, 0.033 * 0.967, n, n, 0.003) == pytest.approx(0.8, abs=5e-4)
    assert power_at(0.03 * 0.97, 0.033 * 0.967, n - 200, n - 200, 0.003) < 0.8


def test_planner_binary_round_trip_by_simulation():
    n = int(sample_size_per_arm(0.03, 0.10))
    rng = np.random.default_rng(23)
    control = binary_summary(n, rng.binomial(n, 0.03, 20_000))
    treatment = binary_summary(n, rng.binomial(n, 0.033, 20_000))
    power = np.mean(absolute_effect(control, treatment).p_value < 0.05)
    assert power == pytest.approx(0.8, abs=0.015)  # Monte-Carlo se is 0.003


def test_planner_mean_round_trip_by_simulation():
    mean, sd, mde = 1.225, 15.0, 0.1
    n = int(sample_size_per_arm(mean, mde, sd=sd, power=0.9))
    rng = np.random.default_rng(29)

    def arm(true_mean: float) -> ArmSummary:
        # Sums of n normal units, drawn via their sufficient statistics.
        sample_mean = rng.normal(true_mean, sd / math.sqrt(n), 20_000)
        sample_var = sd**2 * rng.chisquare(n - 1, 20_000) / (n - 1)
        total = n * sample_mean
        return mean_summary(n, total, sample_var * (n - 1) + total**2 / n)

    power = np.mean(absolute_effect(arm(mean), arm(mean * (1 + mde))).p_value < 0.05)
    assert power == pytest.approx(0.9, abs=0.012)


def test_plan_with_weights_and_days():
    weights = [0.5, 0.25, 0.25]  # control and two treatments
    result = plan(0.03, 0.10, daily_units=4_000, weights=weights)
    n_c, n_t1, n_t2 = result.units_per_arm
    assert n_t1 == n_t2 and abs(n_c - 2 * n_t1) <= 1
    assert power_at(0.03 * 0.97, 0.033 * 0.967, n_c, n_t1, 0.003) == pytest.approx(0.8, abs=1e-3)
    assert result.days == math.ceil(result.total_units / 4_000)
    even = plan(0.03, 0.10, daily_units=4_000)
    assert even.units_per_arm.tolist() == [sample_size_per_arm(0.03, 0.10)] * 2
    # Vectorized over baselines: one plan per row, arms on the last axis.
    many = plan([0.03, 0.05, 0.10], 0.10, daily_units=4_000, weights=weights)
    assert many.units_per_arm.shape == (3, 3)
    assert np.all(np.diff(many.days) < 0)  # higher base rates need fewer days
    with pytest.raises(ValueError, match="between 0 and 1"):
        sample_size_per_arm(0.95, 0.10)
