"""CUPED: regression adjustment of a post-exposure metric by its own pre-exposure value."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import floats, unwrap, unwrap_all
from .effects import Effect, t_inference, welch_df


class CupedSums(NamedTuple):
    """Per-arm sums over units; for a 0/1 post metric pass post_sum as post_sum_squares.

    Variances here use n - 1 throughout, also for 0/1 metrics (unlike ``binary_summary``'s
    m(1 - m)); the difference is a factor n / (n - 1), nothing at experiment sizes.
    """

    n: ArrayLike
    post_sum: ArrayLike
    post_sum_squares: ArrayLike
    pre_sum: ArrayLike
    pre_sum_squares: ArrayLike
    sum_products: ArrayLike  # sum of post * pre


class CupedResult(NamedTuple):
    theta: np.ndarray
    adjusted_control: np.ndarray  # adjusted means
    adjusted_treatment: np.ndarray
    variance_reduction: np.ndarray  # 1 - var(adjusted diff) / var(unadjusted diff)
    absolute: Effect
    relative: Effect


class _Moments(NamedTuple):
    n: np.ndarray
    post_mean: np.ndarray
    pre_mean: np.ndarray
    post_var: np.ndarray
    pre_var: np.ndarray
    cov: np.ndarray


def _moments(n, post_sum, post_sq, pre_sum, pre_sq, products) -> _Moments:
    n = floats(n)
    post_sum, pre_sum = floats(post_sum), floats(pre_sum)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _Moments(
            n=n,
            post_mean=post_sum / n,
            pre_mean=pre_sum / n,
            post_var=np.maximum((floats(post_sq) - post_sum**2 / n) / (n - 1), 0.0),
            pre_var=np.maximum((floats(pre_sq) - pre_sum**2 / n) / (n - 1), 0.0),
            cov=(floats(products) - post_sum * pre_sum / n) / (n - 1),
        )


def cuped_theta(control: CupedSums, treatment: CupedSums) -> np.ndarray:
    """theta = cov(post, pre) / var(pre) over both arms' units taken together (as gbstats).

    Randomization makes the arms' pre-exposure means equal in expectation, so pooling the two
    arms as one sample estimates the same slope with twice the data. A constant pre-exposure
    value carries no information: theta = 0 then, which leaves the metric unadjusted.
    """
    pooled = _moments(*(floats(c) + floats(t) for c, t in zip(control, treatment, strict=True)))
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(pooled.pre_var > 0, pooled.cov / pooled.pre_var, 0.0)
    return unwrap(theta)


def cuped_effect(control: CupedSums, treatment: CupedSums, alpha: ArrayLike = 0.05) -> CupedResult:
    """Adjusted absolute and relative effects; the relative lift divides by the UNADJUSTED
    control mean, so it reads as a share of what control users actually did.

    Variance of the relative lift (delta method). Per arm k write Y_k, X_k for the post and pre
    means and D_k = Y_k - theta X_k; the pooled pre mean cancels in the difference, so
        L = (D_b - D_a) / |Y_a|.
    theta is treated as known: its estimation error multiplies X_b - X_a, which is zero in
    expectation, so it only enters at order 1/n. The arms are independent, and within control
    D_a and Y_a are built from the same units, so with s = sign(Y_a):
        dL/dD_b = 1/|Y_a|,  dL/dD_a = -1/|Y_a|,  dL/dY_a = -s L/|Y_a|,
        Var(L) = [Var(D_b) + Var(D_a) + 2 s L Cov(D_a, Y_a) + L^2 Var(Y_a)] / Y_a^2,
    with n_k Var(D_k) = var_post - 2 theta cov + theta^2 var_pre,
         n_a Cov(D_a, Y_a) = var_post - theta cov,  n_a Var(Y_a) = var_post.
    With theta = 0 this is the usual ratio formula. Plugging the adjusted control variance into
    the plain ratio formula instead (as if the denominator were the adjusted mean) replaces
    L^2 Var(Y_a) by L^2 Var(D_a), about L^2 rho^2 var_post / (n_a Y_a^2) too small: the kind of
    understatement our notes record for gbstats 0.8.0. It matters for large lifts on
    well-predicted metrics; tests/test_stats.py checks the coverage by simulation.
    """
    a = _moments(*control)
    b = _moments(*treatment)
    theta = floats(cuped_theta(control, treatment))
    pooled_pre = (floats(control.pre_sum) + floats(treatment.pre_sum)) / (a.n + b.n)

    adjusted_a = a.post_mean - theta * (a.pre_mean - pooled_pre)
    adjusted_b = b.post_mean - theta * (b.pre_mean - pooled_pre)

    # Unit variances of D_k and the control covariance between D_a and Y_a.
    unit_var_a = a.post_var - 2 * theta * a.cov + theta**2 * a.pre_var
    unit_var_b = b.post_var - 2 * theta * b.cov + theta**2 * b.pre_var
    unit_cov_a = a.post_var - theta * a.cov

    with np.errstate(divide="ignore", invalid="ignore"):
        var_da, var_db = unit_var_a / a.n, unit_var_b / b.n
        df = welch_df(var_da, a.n, var_db, b.n)
        diff = adjusted_b - adjusted_a
        absolute = t_inference(diff, np.sqrt(var_da + var_db), df, alpha)

        lift = diff / np.abs(a.post_mean)
        sign = np.sign(a.post_mean)
        var_lift = (
            var_db + var_da + 2 * sign * lift * unit_cov_a / a.n + lift**2 * a.post_var / a.n
        ) / a.post_mean**2
        relative = t_inference(lift, np.sqrt(var_lift), df, alpha)

        unadjusted = a.post_var / a.n + b.post_var / b.n
        reduction = 1 - (var_da + var_db) / unadjusted

    return CupedResult(
        theta=unwrap(theta),
        adjusted_control=unwrap(adjusted_a),
        adjusted_treatment=unwrap(adjusted_b),
        variance_reduction=unwrap(reduction),
        absolute=unwrap_all(absolute),
        relative=unwrap_all(relative),
    )
