"""``postpurchase stats compare``: one control/treatment comparison from a JSON payload."""

from __future__ import annotations

import math
from typing import Any

from .bayes import chance_to_win, expected_loss
from .effects import Effect, absolute_effect, relative_effect
from .sequential import sequential_effect
from .summaries import ArmSummary, binary_summary, mean_summary

METRIC_TYPES = ("binary", "mean")
METHODS = ("fixed", "sequential", "bayesian")
_KEYS = {"metric_type", "control", "treatment", "alpha", "method", "sequential_tuning"}
_ARM_KEYS = {"n", "sum", "sum_squares"}


def _number(value: Any, field: str) -> float:
    # bool is an int in Python; true/false in JSON is never a count.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range, e.g. 10**400 in the JSON
        raise ValueError(f"{field} must be finite, got an integer too large for a float") from None
    if not math.isfinite(number):
        raise ValueError(f"{field} must be finite, got {value!r}")
    return number


def _arm(payload: dict, name: str, metric_type: str) -> ArmSummary:
    arm = payload.get(name)
    if not isinstance(arm, dict):
        raise ValueError(f"{name} must be an object with n, sum and sum_squares")
    unknown = sorted(set(arm) - _ARM_KEYS)
    if unknown:
        raise ValueError(f"{name}.{unknown[0]} is not a known field (expected n, sum, sum_squares)")
    for key in ("n", "sum") + (("sum_squares",) if metric_type == "mean" else ()):
        if key not in arm:
            raise ValueError(f"{name}.{key} is required")
    n = _number(arm["n"], f"{name}.n")
    if n < 2 or n != int(n):
        raise ValueError(f"{name}.n must be a whole number of at least 2, got {arm['n']!r}")
    total = _number(arm["sum"], f"{name}.sum")
    if metric_type == "binary":
        if not 0 <= total <= n:
            raise ValueError(f"{name}.sum must be between 0 and {name}.n for a binary metric")
        # A 0/1 metric has sum of squares equal to its sum; anything else is not binary.
        if "sum_squares" in arm:
            squares = _number(arm["sum_squares"], f"{name}.sum_squares")
            if not math.isclose(squares, total, rel_tol=1e-9, abs_tol=1e-9):
                raise ValueError(
                    f"{name}.sum_squares must equal {name}.sum for a binary (0/1) metric"
                )
        return binary_summary(n, total)
    squares = _number(arm["sum_squares"], f"{name}.sum_squares")
    if squares < total * total / n * (1 - 1e-12):
        raise ValueError(f"{name}.sum_squares is smaller than sum^2 / n, which is impossible")
    return mean_summary(n, total, squares)


def _json(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _interval(effect: Effect) -> list[float | None]:
    return [_json(effect.ci_low), _json(effect.ci_high)]


def compare(payload: dict) -> dict:
    """Validate the payload and return plain JSON types (NaN, e.g. a zero baseline, as null).

    Fixed-horizon results (with the standard errors and Welch df behind them, for checking by
    hand) are always present. "sequential" adds always-valid intervals on both
    scales and ``p_value_sequential`` (relative scale, pairing with ``ci_relative_sequential``;
    ``p_value_absolute_sequential`` pairs with ``ci_absolute_sequential``). "bayesian" adds
    expected losses on the relative scale. ``chance_to_win`` is on the relative scale, as in
    gbstats. Raises ValueError naming the offending field.
    """
    if not isinstance(payload, dict):
        raise ValueError("payload must be a JSON object")
    unknown = sorted(set(payload) - _KEYS)
    if unknown:
        raise ValueError(f"{unknown[0]} is not a known field (expected {', '.join(sorted(_KEYS))})")
    metric_type = payload.get("metric_type")
    if metric_type not in METRIC_TYPES:
        raise ValueError(f"metric_type must be one of {METRIC_TYPES}, got {metric_type!r}")
    method = payload.get("method", "fixed")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    alpha = _number(payload.get("alpha", 0.05), "alpha")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    control = _arm(payload, "control", metric_type)
    treatment = _arm(payload, "treatment", metric_type)

    absolute = absolute_effect(control, treatment, alpha)
    relative = relative_effect(control, treatment, alpha)
    result: dict[str, Any] = {
        "metric_type": metric_type,
        "method": method,
        "alpha": alpha,
        "effect_absolute": _json(absolute.estimate),
        "se_absolute": _json(absolute.se),
        "ci_absolute": _interval(absolute),
        "p_value_absolute": _json(absolute.p_value),
        "lift_relative": _json(relative.estimate),
        "se_relative": _json(relative.se),
        "ci_relative": _interval(relative),
        "p_value_relative": _json(relative.p_value),
        # Welch-Satterthwaite, from the absolute-scale variances, used on both scales.
        "df": _json(absolute.df),
        "chance_to_win": _json(chance_to_win(relative.estimate, relative.se)),
    }

    if method == "sequential":
        if "sequential_tuning" not in payload:
            raise ValueError(
                "sequential_tuning is required for method 'sequential': the planned total "
                "sample size across both arms (N*)"
            )
        tuning = _number(payload["sequential_tuning"], "sequential_tuning")
        if tuning <= 0:
            raise ValueError(f"sequential_tuning must be positive, got {tuning!r}")
        n_total = control.n + treatment.n
        seq_absolute = sequential_effect(absolute, n_total, tuning, alpha)
        seq_relative = sequential_effect(relative, n_total, tuning, alpha)
        result |= {
            "sequential_tuning": tuning,
            "ci_absolute_sequential": _interval(seq_absolute),
            "ci_relative_sequential": _interval(seq_relative),
            "p_value_sequential": _json(seq_relative.p_value),
            "p_value_absolute_sequential": _json(seq_absolute.p_value),
        }
    elif method == "bayesian":
        loss = expected_loss(relative.estimate, relative.se)
        result["expected_loss"] = {
            "control": _json(loss.control),
            "treatment": _json(loss.treatment),
        }
    return result
