"""pipelines.stats against SciPy and statsmodels, and calibrated by simulation.

Every simulation is seeded and vectorized: summaries (sums and sums of squares) are drawn in
bulk with NumPy and one engine call analyses thousands of experiments. Monte-Carlo standard
errors are given beside each tolerance. The reference numbers of notes/statistics.md are
checked in tests/test_stats.py (the functions) and tests/test_stats_cli.py (the command).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.power import NormalIndPower, TTestIndPower, zt_ind_solve_power
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from pipelines.stats import (
    ArmSummary,
    CupedSums,
    absolute_effect,
    binary_summary,
    cuped_effect,
    mean_summary,
    plan,
    relative_effect,
    sample_size_per_arm,
    sequential_effect,
    sequential_p_value,
)

# --- against SciPy and statsmodels -------------------------------------------------------------


def _random_samples(rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs (control, treatment) of raw samples of varied sizes, spreads and shapes."""
    draws = [
        lambda n: rng.normal(rng.uniform(-5, 5), rng.uniform(0.1, 20), n),
        lambda n: rng.exponential(rng.uniform(0.5, 50), n),
        lambda n: (rng.random(n) < rng.uniform(0.02, 0.6)).astype(float),
        lambda n: rng.binomial(1, 0.1, n) * rng.lognormal(3, 1, n),  # revenue: mostly zero
    ]
    pairs = []
    for i in range(count):
        draw = draws[i % len(draws)]
        pairs.append(tuple(draw(int(rng.integers(5, 3_000))) for _ in range(2)))
    return pairs


def _summary(samples: list[np.ndarray]) -> ArmSummary:
    """One mean summary per sample, from the sums a warehouse would return, in one array."""
    n = np.array([len(s) for s in samples], dtype=float)
    total = np.array([s.sum() for s in samples])
    squares = np.array([(s**2).sum() for s in samples])
    return mean_summary(n, total, squares)


def test_welch_on_random_samples_matches_scipy_and_statsmodels():
    rng = np.random.default_rng(101)
    pairs = _random_samples(rng, 80)
    alpha = rng.choice([0.01, 0.05, 0.1, 0.2], len(pairs))
    control = _summary([a for a, _ in pairs])
    treatment = _summary([b for _, b in pairs])
    ours = absolute_effect(control, treatment, alpha)  # one vectorized call for all 80

    for i, (a, b) in enumerate(pairs):
        if a.var() == 0 or b.var() == 0:
            continue  # a constant 0/1 sample: nothing to compare
        scipy_result = stats.ttest_ind(b, a, equal_var=False)
        low, high = scipy_result.confidence_interval(confidence_level=1 - alpha[i])
        assert ours.estimate[i] / ours.se[i] == pytest.approx(scipy_result.statistic, rel=1e-8)
        assert ours.p_value[i] == pytest.approx(scipy_result.pvalue, rel=1e-7, abs=1e-300)
        assert ours.df[i] == pytest.approx(scipy_result.df, rel=1e-8)
        assert [ours.ci_low[i], ours.ci_high[i]] == pytest.approx([low, high], rel=1e-8, abs=1e-12)

        means = CompareMeans(DescrStatsW(b), DescrStatsW(a))
        t, p, df = means.ttest_ind(usevar="unequal")
        sm_low, sm_high = means.tconfint_diff(alpha=alpha[i], usevar="unequal")
        assert ours.estimate[i] / ours.se[i] == pytest.approx(t, rel=1e-8)
        assert ours.p_value[i] == pytest.approx(p, rel=1e-7, abs=1e-300)
        assert ours.df[i] == pytest.approx(df, rel=1e-8)
        assert [ours.ci_low[i], ours.ci_high[i]] == pytest.approx(
            [sm_low, sm_high], rel=1e-8, abs=1e-12
        )


def test_welch_on_random_summaries_matches_scipy_from_stats():
    """Thousands of summaries at once, from tiny to SMS-sized arms and lopsided variances."""
    rng = np.random.default_rng(102)
    size = 5_000
    n_a = np.floor(10 ** rng.uniform(0.5, 7, size)) + 2
    n_b = np.floor(10 ** rng.uniform(0.5, 7, size)) + 2
    m_a, m_b = rng.normal(0, 3, size), rng.normal(0, 3, size)
    sd_a, sd_b = 10 ** rng.uniform(-2, 2, size), 10 ** rng.uniform(-2, 2, size)
    ours = absolute_effect(ArmSummary(n_a, m_a, sd_a**2), ArmSummary(n_b, m_b, sd_b**2))
    expected = stats.ttest_ind_from_stats(m_b, sd_b, n_b, m_a, sd_a, n_a, equal_var=False)
    np.testing.assert_allclose(ours.estimate / ours.se, expected.statistic, rtol=1e-10)
    # The p-values agreeing to 1e-8 also checks the Welch df they are computed with.
    np.testing.assert_allclose(ours.p_value, expected.pvalue, rtol=1e-8, atol=1e-300)


def test_two_proportions_match_statsmodels_wald():
    """Binary metrics use unpooled m(1 - m) variances: statsmodels' Wald statistic exactly.

    statsmodels refers it to the normal distribution, we to t with Welch df (as gbstats does);
    with at least 1,000 units an arm the p-values agree to 1e-3, and the intervals differ
    exactly by the ratio of the t and normal quantiles.
    """
    rng = np.random.default_rng(103)
    size = 200
    n_a, n_b = rng.integers(1_000, 1_000_000, (2, size))
    rate_a = 10 ** rng.uniform(-2.5, -0.3, size)
    rate_b = rate_a * rng.uniform(0.8, 1.25, size)
    x_a, x_b = rng.binomial(n_a, rate_a), rng.binomial(n_b, rate_b)
    alpha = 0.05
    ours = absolute_effect(binary_summary(n_a, x_a), binary_summary(n_b, x_b), alpha)
    ratio = stats.t.ppf(1 - alpha / 2, ours.df) / stats.norm.ppf(1 - alpha / 2)

    for i in range(size):
        if x_a[i] == 0 and x_b[i] == 0:
            continue
        test = sm_proportion.test_proportions_2indep(x_b[i], n_b[i], x_a[i], n_a[i], method="wald")
        low, high = sm_proportion.confint_proportions_2indep(
            x_b[i], n_b[i], x_a[i], n_a[i], method="wald"
        )
        assert ours.estimate[i] == pytest.approx(test.diff, rel=1e-12, abs=1e-15)
        assert ours.estimate[i] / ours.se[i] == pytest.approx(test.statistic, rel=1e-9)
        assert ours.p_value[i] == pytest.approx(test.pvalue, abs=1e-3)
        half = (ours.ci_high[i] - ours.ci_low[i]) / 2
        assert half == pytest.approx((high - low) / 2 * ratio[i], rel=1e-8)
        assert (ours.ci_low[i] + ours.ci_high[i]) / 2 == pytest.approx((low + high) / 2, rel=1e-9)
        assert ratio[i] == pytest.approx(1, abs=2e-3)


# --- the planner against statsmodels' power functions ----------------------------------------


def _statsmodels_control_units(var_c, var_t, delta, w_c, w_t, alpha, power) -> float:
    """statsmodels sizes with one standard deviation for both arms and nobs2 = ratio nobs1:
    se^2 = sigma^2 (1 + 1/ratio) / nobs1. The planner's unpooled se^2 = v_c / n_c + v_t / n_t
    is the same with sigma^2 = (v_c + v_t / ratio) / (1 + 1 / ratio)."""
    ratio = w_t / w_c
    sigma = math.sqrt((var_c + var_t / ratio) / (1 + 1 / ratio))
    return NormalIndPower().solve_power(
        effect_size=abs(delta) / sigma, alpha=alpha, power=power, ratio=ratio
    )


def test_planner_matches_statsmodels_normal_power():
    """Random binary and mean plans, even and uneven splits, within 1%."""
    rng = np.random.default_rng(104)
    for i in range(60):
        alpha = float(rng.choice([0.01, 0.05, 0.1]))
        power = float(rng.choice([0.8, 0.9, 0.95]))
        w_t = float(rng.choice([0.5, 0.2, 0.8, 0.25]))
        weights = (1 - w_t, w_t)
        mde = float(rng.choice([-1, 1]) * rng.uniform(0.02, 0.5))
        if i % 2:  # binary
            baseline = float(10 ** rng.uniform(-2.5, -0.5))
            sd = None
            treated = baseline * (1 + mde)
            var_c, var_t = baseline * (1 - baseline), treated * (1 - treated)
        else:  # mean
            baseline = float(rng.uniform(0.5, 20))
            sd = float(baseline * rng.uniform(2, 10))  # revenue-like spread
            var_c = var_t = sd**2
        result = plan(baseline, mde, 1_000, weights=weights, sd=sd, alpha=alpha, power=power)
        expected = _statsmodels_control_units(
            var_c, var_t, baseline * mde, weights[0], weights[1], alpha, power
        )
        n_control = int(result.units_per_arm[0])
        assert n_control == pytest.approx(expected, rel=0.01)
        # In fact to a unit or so: the planner rounds up, and statsmodels also counts the far
        # tail (significant in the wrong direction), worth a few units per 100,000.
        assert expected <= n_control <= expected * 1.0001 + 1
        # At the planned size statsmodels' own power is at least the target.
        ratio = weights[1] / weights[0]
        sigma = math.sqrt((var_c + var_t / ratio) / (1 + 1 / ratio))
        achieved = NormalIndPower().power(
            effect_size=abs(baseline * mde) / sigma, nobs1=n_control, alpha=alpha, ratio=ratio
        )
        assert achieved >= power


@pytest.mark.parametrize(
    ("baseline", "mde"), [(0.03, 0.1), (0.05, 0.2), (0.12, 0.3), (0.2, 0.1), (0.5, -0.05)]
)
def test_planner_binary_within_1_percent_of_cohens_h(baseline, mde):
    """statsmodels' textbook route for proportions (arcsine effect size) sizes the same test
    within 1% at the rates and lifts SMS experiments have."""
    effect = sm_proportion.proportion_effectsize(baseline * (1 + mde), baseline)
    expected = zt_ind_solve_power(effect_size=effect, alpha=0.05, power=0.8)
    assert sample_size_per_arm(baseline, mde) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(("mean", "sd", "mde"), [(8.0, 25.0, 0.25), (1.225, 15.0, 0.1)])
def test_planner_mean_within_1_percent_of_the_t_test_power(mean, sd, mde):
    """The planner uses normal quantiles; the Welch t test it plans for needs a few units
    more, a negligible share at these sizes."""
    n = sample_size_per_arm(mean, mde, sd=sd)
    expected = TTestIndPower().solve_power(effect_size=mean * mde / sd, alpha=0.05, power=0.8)
    assert n == pytest.approx(expected, rel=0.01)


# --- simulated summaries -------------------------------------------------------------------------


def revenue_sums(
    rng: np.random.Generator, n: int, buy_rate: float, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sum and sum of squares of n units' revenue in each of ``size`` experiments: most spend
    nothing, buyers spend a lognormal amount (mean exp(3.5), heavy right tail). Only the
    buyers are drawn, then summed per experiment with bincount, in chunks to bound memory."""
    buyers = rng.binomial(n, buy_rate, size)
    total, squares = np.empty(size), np.empty(size)
    for start in range(0, size, 1_000):
        chunk = buyers[start : start + 1_000]
        amounts = rng.lognormal(3.0, 1.0, chunk.sum())
        owner = np.repeat(np.arange(chunk.size), chunk)
        total[start : start + chunk.size] = np.bincount(owner, amounts, chunk.size)
        squares[start : start + chunk.size] = np.bincount(owner, amounts**2, chunk.size)
    return total, squares


REVENUE_PER_BUYER = math.exp(3.0 + 0.5)


def normal_daily_sums(rng, mean, sd, per_day, shape) -> tuple[np.ndarray, np.ndarray]:
    """Each day's sum and sum of squares of per_day normal units, via their sufficient
    statistics: the sample mean and the independent chi-square within-day spread."""
    day_mean = rng.normal(mean, sd / math.sqrt(per_day), shape)
    within = sd**2 * rng.chisquare(per_day - 1, shape)
    return per_day * day_mean, within + per_day * day_mean**2


def rejection_rate(p_values: np.ndarray, alpha: float = 0.05) -> float:
    return float(np.mean(p_values < alpha))


# --- A/A tests reject at alpha --------------------------------------------------------------------

# The issue asks for 2,000 A/A tests within 5% +- 1%. With 2,000, one point is only two
# Monte-Carlo standard errors (0.0049), so about one seed in twenty fails a perfect test; 10,000
# (se 0.0022) cost nothing here and make the same band 4.6 se wide.
AA_TESTS = 10_000


def test_aa_binary_tests_reject_at_alpha():
    rng = np.random.default_rng(201)
    n = 5_000
    clicks = rng.binomial(n, 0.03, (2, AA_TESTS))
    control, treatment = binary_summary(n, clicks[0]), binary_summary(n, clicks[1])
    absolute = rejection_rate(absolute_effect(control, treatment).p_value)
    relative = rejection_rate(relative_effect(control, treatment).p_value)
    assert absolute == pytest.approx(0.05, abs=0.01)
    assert relative == pytest.approx(0.05, abs=0.01)


def test_aa_revenue_tests_reject_at_alpha():
    """Mostly-zero, heavy-tailed revenue (8% buy), unequal arms, SMS-sized: 2,000 to 2,400
    buyers an arm. Smaller arms are fine on the absolute scale, but the relative lift's
    delta-method interval is skewed by the skewed control mean in its denominator: at 3,000
    units an arm it rejects about 5.6% of A/A tests (mostly in the negative tail), at 30,000
    about 5.05% (as gbstats would: same definition)."""
    rng = np.random.default_rng(202)
    tests, n_a, n_b = 5_000, 30_000, 25_000  # se of the rate 0.0031
    sums_a, squares_a = revenue_sums(rng, n_a, 0.08, tests)
    sums_b, squares_b = revenue_sums(rng, n_b, 0.08, tests)
    control = mean_summary(n_a, sums_a, squares_a)
    treatment = mean_summary(n_b, sums_b, squares_b)
    absolute = rejection_rate(absolute_effect(control, treatment).p_value)
    relative = rejection_rate(relative_effect(control, treatment).p_value)
    assert absolute == pytest.approx(0.05, abs=0.01)
    assert relative == pytest.approx(0.05, abs=0.01)


def test_aa_small_revenue_tests_reject_at_alpha_on_the_absolute_scale():
    rng = np.random.default_rng(204)
    n_a, n_b = 3_000, 2_500
    sums_a, squares_a = revenue_sums(rng, n_a, 0.08, AA_TESTS)
    sums_b, squares_b = revenue_sums(rng, n_b, 0.08, AA_TESTS)
    control = mean_summary(n_a, sums_a, squares_a)
    treatment = mean_summary(n_b, sums_b, squares_b)
    assert rejection_rate(absolute_effect(control, treatment).p_value) == pytest.approx(
        0.05, abs=0.01
    )


@pytest.mark.parametrize("alpha", [0.01, 0.1])
def test_aa_rejection_follows_alpha(alpha):
    rng = np.random.default_rng(203)
    n = 20_000
    clicks = rng.binomial(n, 0.1, (2, AA_TESTS))
    effect = absolute_effect(binary_summary(n, clicks[0]), binary_summary(n, clicks[1]), alpha)
    excludes_zero = (effect.ci_low > 0) | (effect.ci_high < 0)
    np.testing.assert_array_equal(excludes_zero, effect.p_value < alpha)
    se = math.sqrt(alpha * (1 - alpha) / AA_TESTS)
    assert rejection_rate(effect.p_value, alpha) == pytest.approx(alpha, abs=4 * se)


# --- sequential intervals under daily peeking ---------------------------------------------------

LOOKS = 30
PEEKING_TESTS = 2_000


def _cumulative(daily: np.ndarray) -> np.ndarray:
    return np.cumsum(daily, axis=-1)


def _peeking_binary(rng, rates, per_day):
    """Cumulative units and clicks per arm after each of 30 days: shape (arm, test, look)."""
    clicks = rng.binomial(per_day, np.asarray(rates)[:, None, None], (2, PEEKING_TESTS, LOOKS))
    units = per_day * np.arange(1, LOOKS + 1)
    return units, _cumulative(clicks)


def test_sequential_intervals_keep_false_positives_under_daily_peeking():
    """A/A tests looked at every day for 30 days; "significant" at any look is a false
    positive. Fixed-horizon intervals, peeked at like this, are wrong far more often."""
    rng = np.random.default_rng(301)
    per_day = 1_000  # per arm
    units, clicks = _peeking_binary(rng, [0.04, 0.04], per_day)
    control, treatment = binary_summary(units, clicks[0]), binary_summary(units, clicks[1])
    planned = 2 * per_day * LOOKS  # N*: the planned total across both arms
    n_total = 2 * units

    for scale in (absolute_effect, relative_effect):
        fixed = scale(control, treatment)
        sequential = sequential_effect(fixed, n_total, planned)
        ever = np.any((sequential.ci_low > 0) | (sequential.ci_high < 0), axis=-1)
        assert ever.mean() <= 0.05, scale.__name__
        # p < alpha exactly when the interval excludes zero, look by look.
        np.testing.assert_array_equal(
            (sequential.ci_low > 0) | (sequential.ci_high < 0), sequential.p_value < 0.05
        )
        naive = np.any(fixed.p_value < 0.05, axis=-1).mean()
        assert naive > 0.15, scale.__name__  # about 0.2 with 30 looks: the problem solved
        assert fixed.p_value[:, -1].mean() == pytest.approx(0.5, abs=0.03)


def test_sequential_peeking_on_a_mean_metric_and_a_badly_tuned_sequence():
    """Normal unit values; N* at the plan and at GrowthBook's default of 5,000 (far too
    small here, so wide, but still valid)."""
    rng = np.random.default_rng(302)
    per_day = 500
    sums, squares = (
        _cumulative(x)
        for x in normal_daily_sums(rng, 1.2, 15.0, per_day, (2, PEEKING_TESTS, LOOKS))
    )
    units = per_day * np.arange(1, LOOKS + 1)
    control = mean_summary(units, sums[0], squares[0])
    treatment = mean_summary(units, sums[1], squares[1])
    effect = absolute_effect(control, treatment)
    for tuning in (2 * per_day * LOOKS, 5_000):
        p_values = sequential_p_value(effect.estimate, effect.se, 2 * units, tuning)
        assert np.any(p_values < 0.05, axis=-1).mean() <= 0.05, tuning


def test_sequential_intervals_cover_a_true_lift_at_every_look_at_once():
    """Always valid: the interval covers the truth at all 30 looks together at least 95% of
    the time (the fixed interval covers 95% at each look but far less at all of them)."""
    rng = np.random.default_rng(303)
    per_day, rates = 1_000, (0.04, 0.05)
    units, clicks = _peeking_binary(rng, rates, per_day)
    control, treatment = binary_summary(units, clicks[0]), binary_summary(units, clicks[1])
    truth = rates[1] / rates[0] - 1
    lift = relative_effect(control, treatment)
    sequential = sequential_effect(lift, 2 * units, 2 * per_day * LOOKS)
    always = np.all((sequential.ci_low <= truth) & (truth <= sequential.ci_high), axis=-1)
    assert always.mean() >= 0.95
    fixed_always = np.all((lift.ci_low <= truth) & (truth <= lift.ci_high), axis=-1)
    assert fixed_always.mean() < 0.9


# --- coverage of a known true effect -------------------------------------------------------------

COVERAGE_TESTS = 4_000  # Monte-Carlo se of 95% coverage: 0.0034; the tolerance 0.015 is 4.4


def covered(effect, truth: float) -> float:
    return float(np.mean((effect.ci_low <= truth) & (truth <= effect.ci_high)))


def test_binary_intervals_cover_the_true_effect():
    rng = np.random.default_rng(401)
    n_a, n_b, rate_a, rate_b = 20_000, 18_000, 0.03, 0.036
    control = binary_summary(n_a, rng.binomial(n_a, rate_a, COVERAGE_TESTS))
    treatment = binary_summary(n_b, rng.binomial(n_b, rate_b, COVERAGE_TESTS))
    assert covered(absolute_effect(control, treatment), rate_b - rate_a) == pytest.approx(
        0.95, abs=0.015
    )
    assert covered(relative_effect(control, treatment), rate_b / rate_a - 1) == pytest.approx(
        0.95, abs=0.015
    )


def test_revenue_intervals_cover_the_true_effect():
    """Mostly-zero heavy-tailed revenue; the treatment makes 15% more customers buy."""
    rng = np.random.default_rng(402)
    n, rate_a, rate_b = 5_000, 0.08, 0.092
    sums_a, squares_a = revenue_sums(rng, n, rate_a, COVERAGE_TESTS)
    sums_b, squares_b = revenue_sums(rng, n, rate_b, COVERAGE_TESTS)
    control, treatment = mean_summary(n, sums_a, squares_a), mean_summary(n, sums_b, squares_b)
    truth_absolute = (rate_b - rate_a) * REVENUE_PER_BUYER
    assert covered(absolute_effect(control, treatment), truth_absolute) == pytest.approx(
        0.95, abs=0.015
    )
    assert covered(relative_effect(control, treatment), rate_b / rate_a - 1) == pytest.approx(
        0.95, abs=0.015
    )


@pytest.mark.parametrize("alpha", [0.01, 0.2])
def test_coverage_follows_alpha(alpha):
    rng = np.random.default_rng(403)
    n, rate_a, rate_b = 10_000, 0.05, 0.055
    control = binary_summary(n, rng.binomial(n, rate_a, COVERAGE_TESTS))
    treatment = binary_summary(n, rng.binomial(n, rate_b, COVERAGE_TESTS))
    se = math.sqrt(alpha * (1 - alpha) / COVERAGE_TESTS)
    effect = relative_effect(control, treatment, alpha)
    assert covered(effect, rate_b / rate_a - 1) == pytest.approx(1 - alpha, abs=3.5 * se)


# --- CUPED ---------------------------------------------------------------------------------------

CUPED_TESTS = 2_000


def _cuped_arm(pre: np.ndarray, post: np.ndarray) -> CupedSums:
    """Per-experiment sums over the unit axis (the last)."""
    return CupedSums(
        pre.shape[-1],
        post.sum(-1),
        (post**2).sum(-1),
        pre.sum(-1),
        (pre**2).sum(-1),
        (post * pre).sum(-1),
    )


def _shoppers(rng, n: int, lift: float) -> tuple[CupedSums, CupedSums]:
    """Revenue-like units: each customer's order rate lam ~ Gamma(0.25, 2) (mean 0.5, most
    near 0) drives the orders of both the 30 days before exposure and the 30 after; orders
    are worth 40. The treatment raises the post-period rate by ``lift``. Truth: absolute
    40 E[lam] lift = 20 lift, relative ``lift``; pre and post correlate at
    Var(lam) / (Var(lam) + E[lam]) = 2 / 3."""
    arms = []
    for arm_lift in (0.0, lift):
        lam = rng.gamma(0.25, 2.0, (CUPED_TESTS, n))
        pre = 40.0 * rng.poisson(lam)
        post = 40.0 * rng.poisson(lam * (1 + arm_lift))
        arms.append(_cuped_arm(pre, post))
    return arms[0], arms[1]


def _unadjusted(sums: CupedSums) -> ArmSummary:
    return mean_summary(sums.n, sums.post_sum, sums.post_sum_squares)


def _unbiased(estimates: np.ndarray, truth: float, allowance: float = 0.0) -> None:
    """The mean estimate is within four Monte-Carlo standard errors (plus ``allowance``) of
    the truth."""
    mc_se = estimates.std(ddof=1) / math.sqrt(estimates.size)
    error = abs(estimates.mean() - truth)
    assert error < 4 * mc_se + allowance, (estimates.mean(), truth, mc_se, allowance)


def _ratio_bias_bound(control: CupedSums, lift: float) -> float:
    """Any relative lift, plain or CUPED, divides by the control mean and so carries the
    O(1/n) bias of a ratio: to second order at most (1 + lift) CV^2 of the control mean.
    Not something CUPED adds; the plain lift has it too."""
    plain = _unadjusted(control)
    return float(np.mean((1 + lift) * plain.variance / (plain.n * plain.mean**2)))


def test_cuped_narrows_the_interval_and_does_not_bias_it_on_revenue():
    rng = np.random.default_rng(501)
    lift = 0.1
    control, treatment = _shoppers(rng, 1_000, lift)
    cuped = cuped_effect(control, treatment)
    plain_absolute = absolute_effect(_unadjusted(control), _unadjusted(treatment))
    plain_relative = relative_effect(_unadjusted(control), _unadjusted(treatment))
    truth_absolute = 40 * 0.5 * lift

    rho2 = (2 / 3) ** 2
    assert cuped.variance_reduction.mean() == pytest.approx(rho2, abs=0.02)
    # Narrower in every replicate, by about sqrt(1 - rho^2), and truly less variable.
    assert np.all(cuped.absolute.se < plain_absolute.se)
    assert np.all(cuped.relative.se < plain_relative.se)
    assert np.median(cuped.absolute.se / plain_absolute.se) == pytest.approx(
        math.sqrt(1 - rho2), abs=0.02
    )
    spread = cuped.absolute.estimate.std() / plain_absolute.estimate.std()
    assert spread == pytest.approx(math.sqrt(1 - rho2), abs=0.03)
    assert cuped.absolute.estimate.var() == pytest.approx(np.mean(cuped.absolute.se**2), rel=0.1)
    # Unbiased, and its intervals cover (over seeds, 95.2% absolute and 95.0% relative here,
    # against the plain intervals' 94.9% and 94.7%; Monte-Carlo se 0.005, hence 0.02).
    _unbiased(cuped.absolute.estimate, truth_absolute)
    _unbiased(cuped.relative.estimate, lift, _ratio_bias_bound(control, lift))
    assert covered(cuped.absolute, truth_absolute) == pytest.approx(0.95, abs=0.02)
    assert covered(cuped.relative, lift) == pytest.approx(0.95, abs=0.02)


def normal_cuped_sums(rng, n: int, post_mean: float, rho: float, size: int) -> CupedSums:
    """CupedSums of n units with (pre, post) bivariate normal, unit variances, correlation
    rho, drawn via the sufficient statistics: the mean vector ~ N(mu, Sigma / n) and,
    independent of it, the scatter matrix about the mean ~ Wishart(n - 1, Sigma). Exact, and
    a few milliseconds for thousands of experiments of any size."""
    sigma = np.array([[1.0, rho], [rho, 1.0]])  # (pre, post)
    means = rng.multivariate_normal([0.0, post_mean], sigma / n, size)
    scatter = stats.wishart(df=n - 1, scale=sigma).rvs(size, random_state=rng)
    pre, post = means[:, 0], means[:, 1]
    return CupedSums(
        n,
        n * post,
        scatter[:, 1, 1] + n * post**2,
        n * pre,
        scatter[:, 0, 0] + n * pre**2,
        scatter[:, 0, 1] + n * pre * post,
    )


CUPED_NORMAL_TESTS = 4_000


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.8])
def test_cuped_on_normal_units_narrows_by_rho_and_never_biases(rho):
    """With correlation rho the interval narrows by sqrt(1 - rho^2); with none it is as wide
    as the plain one (theta estimates 0), and neither case moves the estimate on average."""
    rng = np.random.default_rng(502)
    n, effect, control_mean = 1_000, 0.1, 3.0
    lift = effect / control_mean
    control = normal_cuped_sums(rng, n, control_mean, rho, CUPED_NORMAL_TESTS)
    treatment = normal_cuped_sums(rng, n, control_mean + effect, rho, CUPED_NORMAL_TESTS)
    cuped = cuped_effect(control, treatment)
    plain = absolute_effect(_unadjusted(control), _unadjusted(treatment))

    ratio = cuped.absolute.se / plain.se
    assert np.median(ratio) == pytest.approx(math.sqrt(1 - rho**2), abs=0.01)
    assert ratio.max() < 1.005  # never meaningfully wider, even when the covariate is noise
    spread = cuped.absolute.estimate.std() / plain.estimate.std()
    assert spread == pytest.approx(math.sqrt(1 - rho**2), abs=0.03)
    assert np.mean(cuped.theta) == pytest.approx(rho, abs=0.005)
    _unbiased(cuped.absolute.estimate, effect)
    _unbiased(cuped.relative.estimate, lift, _ratio_bias_bound(control, lift))
    assert covered(cuped.absolute, effect) == pytest.approx(0.95, abs=0.015)
    assert covered(cuped.relative, lift) == pytest.approx(0.95, abs=0.015)
    # A chance imbalance in the pre-period moves the plain estimate; CUPED removes it.
    imbalance = (treatment.pre_sum - control.pre_sum) / n
    if rho:
        assert np.corrcoef(imbalance, plain.estimate)[0, 1] == pytest.approx(rho, abs=0.05)
    assert abs(np.corrcoef(imbalance, cuped.absolute.estimate)[0, 1]) < 0.1
