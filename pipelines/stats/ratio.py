"""Ratio metrics (e.g. revenue per delivered message) by the delta method.

The randomization unit is the recipient, not the message, so messages from one recipient are
correlated; the delta method over per-recipient sums accounts for that, where treating each
message as independent would understate the variance.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import floats, unwrap_all
from .summaries import ArmSummary


class RatioSums(NamedTuple):
    """Per-arm sums over units of a numerator and denominator measured on each unit."""

    n: ArrayLike
    numerator_sum: ArrayLike
    numerator_sum_squares: ArrayLike
    denominator_sum: ArrayLike
    denominator_sum_squares: ArrayLike
    sum_products: ArrayLike  # sum of numerator * denominator


def ratio_summary(sums: RatioSums) -> ArmSummary:
    """Summary whose mean is sum(num) / sum(den) and whose variance is n Var(ratio), so
    ``absolute_effect`` and ``relative_effect`` work on it unchanged.

    Var(ratio) = (v_num - 2 R c + R^2 v_den) / (n m_den^2), with R the ratio, v the sample
    variances and c the sample covariance of numerator and denominator (n - 1 denominators).
    """
    n = floats(sums.n)
    num, den = floats(sums.numerator_sum), floats(sums.denominator_sum)
    with np.errstate(divide="ignore", invalid="ignore"):
        m_den = den / n
        v_num = (floats(sums.numerator_sum_squares) - num**2 / n) / (n - 1)
        v_den = (floats(sums.denominator_sum_squares) - den**2 / n) / (n - 1)
        cov = (floats(sums.sum_products) - num * den / n) / (n - 1)
        ratio = num / den
        unit_variance = (v_num - 2 * ratio * cov + ratio**2 * v_den) / m_den**2
    return unwrap_all(ArmSummary(n, ratio, np.maximum(unit_variance, 0.0)))
