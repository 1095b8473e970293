"""Planner: from a minimum detectable effect to units per arm and days at current traffic.

The sizes are for the two-sided Welch test that ``effects.absolute_effect`` runs, with each
arm's own variance (unpooled), so a test run at the planned size has the planned power:
    n_control w_t / w_c = n_treatment, se^2 = v_c / n_c + v_t / n_t, se = delta / (z_a + z_b).
The far tail (a significant result in the wrong direction) is ignored, as is usual; it adds a
negligible amount of power at any useful size.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ._arrays import check_alpha, floats, unwrap, unwrap_all


class Plan(NamedTuple):
    units_per_arm: np.ndarray  # last axis follows the weights; rounded up
    total_units: np.ndarray  # the arms' units added up
    days: np.ndarray  # at daily_units, rounded up to whole days


def _variances(
    baseline: np.ndarray, mde_relative: np.ndarray, sd: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit variances of control and treatment and the absolute effect to detect."""
    if np.any(mde_relative == 0):
        raise ValueError("mde_relative must be non-zero")
    treated = baseline * (1 + mde_relative)
    if sd is None:
        if np.any((baseline <= 0) | (baseline >= 1)):
            raise ValueError("a binary baseline rate must be strictly between 0 and 1")
        if np.any((treated <= 0) | (treated >= 1)):
            raise ValueError("baseline * (1 + mde_relative) must stay strictly between 0 and 1")
        return baseline * (1 - baseline), treated * (1 - treated), treated - baseline
    sd = floats(sd)
    if np.any(sd <= 0):
        raise ValueError("sd must be positive")
    if np.any(baseline == 0):
        raise ValueError("a relative MDE needs a non-zero baseline mean")
    # Same spread in both arms: the usual planning assumption for a continuous metric.
    return sd**2, sd**2, treated - baseline


def _z_sum(alpha: ArrayLike, power: ArrayLike) -> np.ndarray:
    alpha, power = check_alpha(alpha), check_alpha(power, "power")
    return stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)


def sample_size_per_arm(
    baseline: ArrayLike,
    mde_relative: ArrayLike,
    *,
    sd: ArrayLike | None = None,
    alpha: ArrayLike = 0.05,
    power: ArrayLike = 0.8,
) -> np.ndarray:
    """Units per arm for a 50/50 two-arm test: (z_a + z_b)^2 (v_c + v_t) / delta^2.

    Binary metric when ``sd`` is None (``baseline`` is the rate); otherwise a mean with
    standard deviation ``sd``. ``mde_relative`` 0.05 means a 5% lift over the baseline.
    """
    baseline, mde = floats(baseline), floats(mde_relative)
    var_c, var_t, delta = _variances(baseline, mde, sd)
    n = _z_sum(alpha, power) ** 2 * (var_c + var_t) / delta**2
    return unwrap(np.ceil(n).astype(np.int64))


def plan(
    baseline: ArrayLike,
    mde_relative: ArrayLike,
    daily_units: ArrayLike,
    *,
    weights: ArrayLike = (0.5, 0.5),
    sd: ArrayLike | None = None,
    alpha: ArrayLike = 0.05,
    power: ArrayLike = 0.8,
) -> Plan:
    """Units and days when ``daily_units`` new units a day are split by ``weights``.

    ``weights[0]`` is control, the rest are treatments, each compared with control; the
    smallest treatment arm decides the duration. Divide alpha by the number of comparisons
    beforehand if the plan should survive a Bonferroni/Holm correction.
    """
    baseline, mde, daily = floats(baseline), floats(mde_relative), floats(daily_units)
    weights = floats(weights)
    if weights.ndim != 1 or weights.size < 2 or np.any(weights <= 0):
        raise ValueError("weights must list at least two positive arm weights, control first")
    if np.any(daily <= 0):
        raise ValueError("daily_units must be positive")
    weights = weights / weights.sum()
    var_c, var_t, delta = _variances(baseline, mde, sd)
    # Total units N with N w_c in control and N w_t in the smallest treatment arm.
    total = _z_sum(alpha, power) ** 2 * (var_c / weights[0] + var_t / weights[1:].min()) / delta**2
    per_arm = np.ceil(total[..., np.newaxis] * weights).astype(np.int64)
    # The total is the arms added up, so a table of the plan adds up; rounding each arm up
    # costs at most one unit per arm over ceil(total).
    total_units = per_arm.sum(axis=-1)
    return unwrap_all(Plan(per_arm, total_units, np.ceil(total_units / daily).astype(np.int64)))
