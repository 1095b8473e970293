"""Absolute and relative effects with Welch t intervals and p-values (gbstats definitions)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ._arrays import check_alpha, floats, unwrap_all
from .summaries import ArmSummary


class Effect(NamedTuple):
    """One comparison on one scale (absolute difference or relative lift), element-wise."""

    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray


def welch_df(
    var_mean_a: ArrayLike, n_a: ArrayLike, var_mean_b: ArrayLike, n_b: ArrayLike
) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom from the variances of the two arm means."""
    va, vb, n_a, n_b = floats(var_mean_a), floats(var_mean_b), floats(n_a), floats(n_b)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))


def t_inference(
    estimate: ArrayLike, se: ArrayLike, df: ArrayLike, alpha: ArrayLike = 0.05
) -> Effect:
    """Two-sided interval and p-value from an estimate, its standard error and t df.

    ``df = inf`` gives the normal distribution.
    """
    estimate, se, df, alpha = floats(estimate), floats(se), floats(df), check_alpha(alpha)
    quantile = stats.t.ppf(1 - alpha / 2, df)
    # Degenerate input (a zero baseline makes the relative estimate and se infinite) gives
    # NaN, quietly: callers report it as missing.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # sf rather than 1 - cdf keeps tiny p-values from rounding to zero.
        p_value = 2 * stats.t.sf(np.abs(estimate) / se, df)
        low, high = estimate - quantile * se, estimate + quantile * se
    return unwrap_all(Effect(estimate, se, df, low, high, p_value))


def absolute_effect(control: ArmSummary, treatment: ArmSummary, alpha: ArrayLike = 0.05) -> Effect:
    """m_b - m_a with variance v_b/n_b + v_a/n_a."""
    with np.errstate(divide="ignore", invalid="ignore"):
        var_a = floats(control.variance) / floats(control.n)
        var_b = floats(treatment.variance) / floats(treatment.n)
    df = welch_df(var_a, control.n, var_b, treatment.n)
    estimate = floats(treatment.mean) - floats(control.mean)
    return t_inference(estimate, np.sqrt(var_a + var_b), df, alpha)


def relative_effect(control: ArmSummary, treatment: ArmSummary, alpha: ArrayLike = 0.05) -> Effect:
    """(m_b - m_a) / |m_a| by the delta method; df from the absolute-scale variances.

    Dividing by |m_a| keeps the sign of the lift meaning "treatment is higher" when the baseline
    is negative (gbstats 0.8.0 divided by m_a; its later versions use |m_a|).
    """
    m_a, m_b = floats(control.mean), floats(treatment.mean)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        var_a = floats(control.variance) / floats(control.n)
        var_b = floats(treatment.variance) / floats(treatment.n)
        estimate = (m_b - m_a) / np.abs(m_a)
        variance = var_b / m_a**2 + var_a * m_b**2 / m_a**4
    df = welch_df(var_a, control.n, var_b, treatment.n)
    return t_inference(estimate, np.sqrt(variance), df, alpha)
