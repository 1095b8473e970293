"""Bayesian read-outs with a flat prior: the posterior of the effect is N(estimate, se^2)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ._arrays import floats, unwrap, unwrap_all


class ExpectedLoss(NamedTuple):
    """Expected shortfall of shipping each arm, in the units of the effect."""

    control: np.ndarray  # E[max(0, treatment - control)]
    treatment: np.ndarray  # E[max(0, control - treatment)]


def chance_to_win(estimate: ArrayLike, se: ArrayLike) -> np.ndarray:
    """P(treatment beats control) = Phi(estimate / se); normal, not t, as gbstats does."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return unwrap(stats.norm.cdf(floats(estimate) / floats(se)))


def expected_loss(estimate: ArrayLike, se: ArrayLike) -> ExpectedLoss:
    """Closed forms for D = treatment - control ~ N(mu, s^2):
    E[max(0, D)] = mu Phi(mu/s) + s phi(mu/s) and E[max(0, -D)] = s phi(mu/s) - mu Phi(-mu/s).

    Each is computed directly rather than as the other minus mu, which would cancel to noise
    when the effect is many standard errors from zero.
    """
    mu, s = np.broadcast_arrays(floats(estimate), floats(se))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = mu / s
        density = s * stats.norm.pdf(z)
        loss_control = mu * stats.norm.cdf(z) + density
        loss_treatment = density - mu * stats.norm.cdf(-z)
    # With no uncertainty the loss is just the known shortfall.
    loss_control = np.where(s == 0, np.maximum(mu, 0.0), np.maximum(loss_control, 0.0))
    loss_treatment = np.where(s == 0, np.maximum(-mu, 0.0), np.maximum(loss_treatment, 0.0))
    return unwrap_all(ExpectedLoss(control=loss_control, treatment=loss_treatment))
