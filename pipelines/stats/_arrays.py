"""Array plumbing shared by the stats modules: floats in, NumPy scalars or arrays out."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike

T = TypeVar("T", bound=tuple)


def floats(value: ArrayLike) -> np.ndarray:
    return np.asarray(value, dtype=float)


def unwrap(value: Any) -> Any:
    """A 0-d array becomes a NumPy scalar, so scalar inputs give scalar outputs."""
    value = np.asarray(value)
    return value[()] if value.ndim == 0 else value


def unwrap_all(result: T) -> T:
    return type(result)(*(unwrap(field) for field in result))


def check_alpha(alpha: ArrayLike, name: str = "alpha") -> np.ndarray:
    alpha = floats(alpha)
    if not np.all((alpha > 0) & (alpha < 1)):
        raise ValueError(f"{name} must be strictly between 0 and 1")
    return alpha
