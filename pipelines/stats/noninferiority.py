"""Non-inferiority for guardrail metrics: is the treatment no worse than control by more than
a margin? A guardrail passes on evidence of safety, not on absence of evidence of harm, so
the null hypothesis is "worse by at least the margin"."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ._arrays import check_alpha, floats, unwrap_all
from .effects import Effect, absolute_effect, relative_effect
from .summaries import ArmSummary


class NonInferiority(NamedTuple):
    p_value: np.ndarray  # one-sided
    bound: np.ndarray  # one-sided confidence bound on the worrying side
    non_inferior: np.ndarray  # bound inside the margin, equivalently p < alpha


def non_inferiority_test(
    effect: Effect,
    margin: ArrayLike,
    higher_is_better: ArrayLike = True,
    alpha: ArrayLike = 0.05,
) -> NonInferiority:
    """One-sided t test on the effect's own scale; ``margin`` is positive, on that scale.

    Higher is better (revenue): H0 effect <= -margin, bound = estimate - t(1-alpha) se.
    Higher is bad (opt-out rate): H0 effect >= +margin, bound = estimate + t(1-alpha) se.
    ``alpha`` is one-sided; 0.025 matches the lower end of a two-sided 95% interval.
    """
    estimate, se, df = floats(effect.estimate), floats(effect.se), floats(effect.df)
    margin, alpha = floats(margin), check_alpha(alpha)
    if np.any(margin < 0):
        raise ValueError("margin must be non-negative (the direction comes from higher_is_better)")
    sign = np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)
    # Flip bad-when-higher metrics so that "worse" is always negative.
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = stats.t.sf((sign * estimate + margin) / se, df)
    bound = estimate - sign * stats.t.ppf(1 - alpha, df) * se
    return unwrap_all(NonInferiority(p_value, bound, p_value < alpha))


def non_inferiority(
    control: ArmSummary,
    treatment: ArmSummary,
    margin: ArrayLike,
    *,
    relative: bool = False,
    higher_is_better: ArrayLike = True,
    alpha: ArrayLike = 0.05,
) -> NonInferiority:
    """Guardrail check from arm summaries; ``relative`` says the margin is a share of control
    (0.1 = "no more than 10% worse"), otherwise it is in the metric's units."""
    effect = (relative_effect if relative else absolute_effect)(control, treatment)
    return non_inferiority_test(effect, margin, higher_is_better, alpha)
