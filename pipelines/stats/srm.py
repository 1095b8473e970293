"""Sample-ratio mismatch: are units split across arms as the spec's weights say?"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ._arrays import floats, unwrap_all

SRM_THRESHOLD = 0.001


class SRMResult(NamedTuple):
    statistic: np.ndarray  # Pearson chi-square
    df: np.ndarray
    p_value: np.ndarray
    mismatch: np.ndarray  # p below the threshold: the assignment or exposure is broken


def sample_ratio_mismatch(
    units: ArrayLike, weights: ArrayLike, threshold: float = SRM_THRESHOLD
) -> SRMResult:
    """Pearson chi-square goodness of fit of units per arm (last axis) against the weights.

    Weights need not sum to one. The strict threshold is deliberate: the check runs on every
    experiment at every look, and a mismatch means the data cannot be trusted at all, so a
    false alarm is costly.
    """
    units, weights = floats(units), floats(weights)
    if units.ndim == 0 or units.shape[-1] < 2:
        raise ValueError("units must have at least two arms on the last axis")
    if np.any(weights <= 0):
        raise ValueError("weights must be positive")
    units, weights = np.broadcast_arrays(units, weights)
    expected = units.sum(axis=-1, keepdims=True) * weights / weights.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = ((units - expected) ** 2 / expected).sum(axis=-1)
    df = np.full(statistic.shape, units.shape[-1] - 1)
    p_value = stats.chi2.sf(statistic, df)
    return unwrap_all(SRMResult(statistic, df, p_value, p_value < threshold))
