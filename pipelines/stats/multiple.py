"""Adjusted p-values across a family of comparisons (metrics x variants).

``axis=None`` treats the whole array as one family; pass an axis to adjust many families (for
example one per experiment) in one call. Compare adjusted p-values with the unadjusted alpha.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import floats, unwrap


def _sorted_family(p_values: ArrayLike, axis: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    p = floats(p_values)
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must be numbers in [0, 1] (drop missing ones first)")
    p = p.reshape(-1) if axis is None else np.moveaxis(p, axis, -1)
    order = np.argsort(p, axis=-1, kind="stable")
    return np.take_along_axis(p, order, axis=-1), order, p.shape[-1]


def _unsort(adjusted: np.ndarray, order: np.ndarray, shape: tuple, axis: int | None) -> np.ndarray:
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    out = out.reshape(shape) if axis is None else np.moveaxis(out, -1, axis)
    return unwrap(out)


def holm(p_values: ArrayLike, axis: int | None = None) -> np.ndarray:
    """Holm-Bonferroni: controls the family-wise error rate under any dependence.

    For sorted p_(1) <= ... <= p_(m): adjusted_(i) = max over j <= i of min(1, (m - j + 1) p_(j)).
    """
    shape = np.shape(p_values)
    p, order, m = _sorted_family(p_values, axis)
    adjusted = np.minimum(1.0, (m - np.arange(m)) * p)
    return _unsort(np.maximum.accumulate(adjusted, axis=-1), order, shape, axis)


def benjamini_hochberg(p_values: ArrayLike, axis: int | None = None) -> np.ndarray:
    """Benjamini-Hochberg: controls the false discovery rate (independent or positively
    dependent tests, which covers metrics measured on the same units).

    adjusted_(i) = min over j >= i of min(1, m p_(j) / j); matches
    scipy.stats.false_discovery_control(method="bh").
    """
    shape = np.shape(p_values)
    p, order, m = _sorted_family(p_values, axis)
    # m / j first: it is >= 1, so rounding can never push an adjusted value below the raw one.
    adjusted = np.minimum(1.0, (m / np.arange(1, m + 1)) * p)
    adjusted = np.flip(np.minimum.accumulate(np.flip(adjusted, axis=-1), axis=-1), axis=-1)
    return _unsort(adjusted, order, shape, axis)
