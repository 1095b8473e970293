"""When to try a failed send again, and how long to wait first.

Only a failure that certainly did not queue the message is retried (`RetryableError`): a read
timeout or a dropped connection after the request left may have queued it, and resending
would text the customer twice (DESIGN section 6, "exactly once, or else at most once").
Waits are exponential with full jitter, so workers that failed together do not retry together.
"""

from __future__ import annotations

import random
from typing import Literal

from pipelines.providers.errors import PermanentError, RetryableError

Outcome = Literal["retryable", "ambiguous", "permanent"]

DEFAULT_BASE = 1.0  # seconds
DEFAULT_CAP = 60.0
DEFAULT_MAX_ATTEMPTS = 5
# 2.0 ** 1023 is the largest power of two a float holds; beyond it the cap applies anyway.
_MAX_EXPONENT = 1023


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)], attempt counting from 0."""
    if attempt < 0 or base < 0 or cap < 0:
        raise ValueError("attempt, base and cap must be >= 0")
    return rng.uniform(0.0, min(cap, base * 2.0 ** min(attempt, _MAX_EXPONENT)))


def backoff_delays(
    attempts: int,
    base: float = DEFAULT_BASE,
    cap: float = DEFAULT_CAP,
    rng: random.Random | None = None,
) -> list[float]:
    """The waits before each of `attempts` retries."""
    rng = rng or random.Random()
    return [backoff_delay(i, base, cap, rng) for i in range(attempts)]


def classify(exc: BaseException) -> Outcome:
    """What a failed send means for the message. Anything unrecognised counts as ambiguous:
    not knowing whether the provider queued it is exactly the ambiguous case."""
    if isinstance(exc, RetryableError):
        return "retryable"
    if isinstance(exc, PermanentError):
        return "permanent"
    return "ambiguous"  # AmbiguousError, and anything else


def is_safe_to_retry(exc: BaseException) -> bool:
    """True only when the provider certainly did not queue the message."""
    return classify(exc) == "retryable"


def retry_delay(
    exc: BaseException,
    attempt: int,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    base: float = DEFAULT_BASE,
    cap: float = DEFAULT_CAP,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the next try after attempt number `attempt` (from 1) failed with
    `exc`; None when there must be no next try. A provider's Retry-After is a floor."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, got {attempt}")
    if attempt >= max_attempts or not is_safe_to_retry(exc):
        return None
    delay = backoff_delay(attempt - 1, base, cap, rng or random.Random())
    retry_after = getattr(exc, "retry_after", None)
    return max(delay, retry_after) if retry_after is not None else delay
