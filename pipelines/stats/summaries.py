"""Per-arm summaries (units, mean, unit variance) built from the sums a warehouse returns."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import floats, unwrap_all


class ArmSummary(NamedTuple):
    """One arm of one metric, element-wise over any array shape.

    ``variance`` is the per-unit variance, so the variance of ``mean`` is ``variance / n``; ratio
    and CUPED summaries store the unit-equivalent variance so the same effect code serves them.
    """

    n: np.ndarray
    mean: np.ndarray
    variance: np.ndarray


def binary_summary(n: ArrayLike, successes: ArrayLike) -> ArmSummary:
    """Share of units with the event; v = m(1 - m) without n - 1, as gbstats does."""
    n, successes = floats(n), floats(successes)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = successes / n
    return unwrap_all(ArmSummary(n, mean, mean * (1 - mean)))


def mean_summary(n: ArrayLike, total: ArrayLike, sum_squares: ArrayLike) -> ArmSummary:
    """Mean of a continuous metric; v = (sum x^2 - (sum x)^2 / n) / (n - 1)."""
    n, total, sum_squares = floats(n), floats(total), floats(sum_squares)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        variance = (sum_squares - total * total / n) / (n - 1)
    # Cancellation can leave a constant metric a hair below zero.
    return unwrap_all(ArmSummary(n, mean, np.maximum(variance, 0.0)))
