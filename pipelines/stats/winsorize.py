"""Capping revenue at a percentile of the NON-ZERO values.

Most recipients of a post-purchase message spend nothing, so a plain 99th percentile of
revenue is often 0 (or a small order) and capping there would erase the very signal under
test. Taking the percentile among units that spent anything caps only the few huge orders.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import floats


def nonzero_cap(values: ArrayLike, quantile: float = 0.99) -> float:
    """The cap: the ``quantile`` of the non-zero values, linearly interpolated.

    0.0 when every value is zero (capping is then a no-op). Compute it in the control and
    treatment arms pooled, so both are capped alike. The same in SQL (DuckDB's
    ``quantile_cont`` interpolates as NumPy's default, and ``least`` ignores a NULL cap)::

        with cap as (
            select quantile_cont(revenue, 0.99) as cap
            from unit_revenue
            where revenue <> 0
        )
        select unit_id, least(revenue, cap.cap) as revenue_capped
        from unit_revenue
        cross join cap
    """
    if not 0 < quantile <= 1:
        raise ValueError("quantile must be in (0, 1], e.g. 0.99")
    values = floats(values).reshape(-1)
    if np.any(np.isnan(values)):
        raise ValueError("values contain NaN: treat missing revenue as 0 or drop it first")
    nonzero = values[values != 0]
    return float(np.quantile(nonzero, quantile)) if nonzero.size else 0.0


def winsorize(values: ArrayLike, cap: float) -> np.ndarray:
    """Values above the cap become the cap (an upper cap only: refunds are left alone)."""
    return np.minimum(floats(values), cap)
