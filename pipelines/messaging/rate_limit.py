"""Send-rate and concurrency limits for the sender's worker threads.

Plivo accounts default to 5 SMS per second (more is queued by Plivo and expires after 3 h) and
the API allows about 100 concurrent requests (notes/plivo.md), hence the defaults below.

Why the default burst is 1: a token bucket with capacity b refilled at r per second grants
fewer than b + r tokens in any one-second window [t, t + 1) (b saved up at t, plus r*(1 - e)
accrued before t + 1). With b = 1 and a whole-number rate that is at most r, spread evenly
1/r apart, which is also the gentlest pattern for the provider's queue. Two things still break
the bound in practice: floating-point clocks (a grant at 0.9999999 instead of 1.0) and batch
requests (one request to n destinations is n messages at one instant). So every grant also
passes an exact check against the grants of the last second, and "at most max(1, floor(r))
in any one-second window" holds by construction, whatever the burst.

What the provider counts is arrivals, not grants: a request granted at t reaches it at t + d,
and d varies by a few milliseconds between threads. So the exact check looks back over one
second plus `JITTER_MARGIN`: grants that far apart cannot arrive within one second unless
their delays differ by more than the margin. It costs under 2% of the rate.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from pipelines.providers.base import MAX_DESTINATIONS

DEFAULT_RATE_PER_SECOND = 5.0
DEFAULT_MAX_IN_FLIGHT = 100
WINDOW = 1.0  # seconds
JITTER_MARGIN = 0.015  # seconds; see the module docstring
# Refill arithmetic may leave a level of 0.9999999999 where 1 was meant; the exact window check
# is what guarantees the rate, so the bucket may round in the caller's favour.
_LEVEL_TOLERANCE = 1e-9
# Waits computed from floats can come out as zero while the exact check still says no.
_MIN_SLEEP = 1e-6


class TokenBucket:
    """Blocking, thread-safe token bucket; callers are served first come, first served."""

    def __init__(
        self,
        rate_per_second: float = DEFAULT_RATE_PER_SECOND,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = JITTER_MARGIN,
    ) -> None:
        if not rate_per_second > 0:
            raise ValueError(f"rate must be positive, got {rate_per_second}")
        self.rate = float(rate_per_second)
        self.burst = 1.0 if burst is None else float(burst)
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1 token, got {self.burst}")
        # A rate below 1/s still has to let one message through now and then.
        self.window_cap = max(1, math.floor(self.rate))
        if margin < 0:
            raise ValueError(f"margin must not be negative, got {margin}")
        self.window = WINDOW + margin
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._level = self.burst
        self._updated = clock()
        self._recent: deque[tuple[float, int]] = deque()  # (grant time, tokens) of the last 1 s
        self._next_ticket = 0
        self._serving = 0

    def acquire(self, n: int = 1) -> float:
        """Block until `n` tokens are granted together; returns the clock reading of the grant.

        `n` is the number of messages one request carries (a bulk send to n destinations).
        """
        if not 1 <= n <= self.window_cap:
            raise ValueError(
                f"cannot grant {n} tokens at once at {self.rate:g}/s: at most {self.window_cap}"
            )
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            # First come, first served, so a bulk request is not starved by a stream of singles.
            while ticket != self._serving:
                self._cond.wait()
        try:
            while True:
                with self._cond:
                    now = self._clock()
                    wait = self._wait_for(now, n)
                    if wait is None:
                        self._grant(now, n)
                        return now
                # Sleep without the lock; later callers wait for their turn on the condition.
                self._sleep(max(wait, _MIN_SLEEP))
        finally:
            with self._cond:
                self._serving += 1
                self._cond.notify_all()

    def _wait_for(self, now: float, n: int) -> float | None:
        """None when `n` tokens may be granted at `now`, else roughly how long to wait."""
        if now > self._updated:
            self._level = min(self.burst, self._level + (now - self._updated) * self.rate)
            self._updated = now
        while self._recent and now - self._recent[0][0] >= self.window:
            self._recent.popleft()

        waits = []
        # A request larger than the burst waits for a full bucket and leaves it in debt, which
        # later requests pay off; the window check keeps the batch itself within the rate.
        need = min(float(n), self.burst)
        if self._level < need - _LEVEL_TOLERANCE:
            waits.append((need - self._level) / self.rate)
        in_window = sum(tokens for _, tokens in self._recent)
        if in_window + n > self.window_cap:
            excess = in_window + n - self.window_cap
            for granted_at, tokens in self._recent:
                excess -= tokens
                if excess <= 0:
                    waits.append(granted_at + self.window - now)
                    break
        return max(waits) if waits else None

    def _grant(self, now: float, n: int) -> None:
        self._level -= n
        self._recent.append((now, n))


class InFlightLimit:
    """At most `max_in_flight` provider requests at once: `with limit: send(...)`."""

    def __init__(self, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def acquire(self, timeout: float | None = None) -> bool:
        if not self._slots.acquire(timeout=timeout):
            return False
        with self._lock:
            self._in_flight += 1
        return True

    def release(self) -> None:
        self._slots.release()  # first: a release without an acquire raises before counting
        with self._lock:
            self._in_flight -= 1

    def __enter__(self) -> InFlightLimit:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Unpaced:
    """The bucket of a provider with no carrier behind it (dry-run): every grant is immediate.

    Pacing a dry run would only make a big brand's day take hours for nothing.
    """

    window_cap = MAX_DESTINATIONS  # destinations per request, as a real provider allows

    def acquire(self, n: int = 1) -> float:
        return time.monotonic()
