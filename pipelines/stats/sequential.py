"""Always-valid intervals: the asymptotic confidence sequence of Waudby-Smith et al.

The interval may be looked at after every batch of data without inflating the false-positive
rate, at the price of width. ``tuning`` (N*) is the total sample size at which the sequence is
tightest: pass the planned total across both arms. GrowthBook's default of 5,000 is far too
small for SMS volumes and makes late looks needlessly wide.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import check_alpha, floats, unwrap, unwrap_all
from .effects import Effect

_BISECTION_STEPS = 200


def _check_tuning(tuning: np.ndarray) -> None:
    if not np.all(tuning > 0):
        raise ValueError("tuning (N*, the planned total sample size) must be positive")


def half_width(
    se: ArrayLike, n_total: ArrayLike, tuning: ArrayLike, alpha: ArrayLike = 0.05
) -> np.ndarray:
    """Half-width of the confidence sequence, written exactly as in gbstats (eq. 161 of
    arXiv:2103.06476v1): s^2 = se^2 N, rho^2 = (-2 ln a + ln(-2 ln a + 1)) / N*."""
    se, n, tuning, alpha = floats(se), floats(n_total), floats(tuning), check_alpha(alpha)
    _check_tuning(tuning)
    rho2 = (-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = se * np.sqrt(n)
        width = s * np.sqrt(
            2 * (n * rho2 + 1) * np.log(np.sqrt(n * rho2 + 1) / alpha) / (n * n * rho2)
        )
    return unwrap(width)


def _width_over_se_squared(u: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(half-width / se)^2 as a function of u = -2 ln alpha and k = N / N*.

    Substituting r = N rho^2 = k (u + ln(1 + u)) into the half-width gives
    (1 + 1/r)(ln(1 + r) + u). It increases strictly with u (checked numerically for k from
    1e-6 to 1e6), so the interval narrows as alpha grows, and the set of alphas at which it
    excludes zero is an interval (p, 1). As alpha -> 1 it tends to 1 + 1/(2k), not 0: a
    sequence never shrinks to the point estimate.
    """
    r = k * (u + np.log1p(u))
    return (1 + 1 / r) * (np.log1p(r) + u)


def sequential_p_value(
    estimate: ArrayLike, se: ArrayLike, n_total: ArrayLike, tuning: ArrayLike
) -> np.ndarray:
    """Smallest alpha at which the confidence sequence excludes zero (1 if none does).

    Inverting the sequence makes ``p < alpha`` exactly equivalent to "the alpha-level sequence
    excludes 0". The root is found in u = -2 ln alpha by a vectorized bisection on [0, z^2],
    which brackets it because the width ratio is always above u.
    """
    estimate, se, n, tuning = np.broadcast_arrays(
        floats(estimate), floats(se), floats(n_total), floats(tuning)
    )
    _check_tuning(tuning)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z2 = (estimate / se) ** 2
        k = n / tuning
        floor = 1 + 1 / (2 * k)
        lo = np.zeros_like(z2)
        hi = np.where(np.isfinite(z2), z2, 0.0)
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            below = _width_over_se_squared(mid, k) < z2
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        p_value = np.exp(-0.5 * hi)
    p_value = np.where(z2 <= floor, 1.0, p_value)
    p_value = np.where(np.isposinf(z2), 0.0, p_value)
    p_value = np.where(np.isnan(z2) | np.isnan(floor), np.nan, p_value)
    return unwrap(p_value)


def sequential_effect(
    effect: Effect, n_total: ArrayLike, tuning: ArrayLike, alpha: ArrayLike = 0.05
) -> Effect:
    """The same estimate with the always-valid interval and p-value (normal, so df = inf)."""
    width = floats(half_width(effect.se, n_total, tuning, alpha))
    estimate = floats(effect.estimate)
    p_value = sequential_p_value(estimate, effect.se, n_total, tuning)
    with np.errstate(invalid="ignore"):  # an infinite estimate and width (zero baseline)
        low, high = estimate - width, estimate + width
    return unwrap_all(
        Effect(
            estimate, floats(effect.se), np.full_like(estimate, np.inf), low, high, floats(p_value)
        )
    )
