"""Per-recipient marketing frequency caps over rolling windows (DESIGN section 6).

Only marketing counts: transactional messages neither count against the cap nor are held by
it. The default (1 per 24 h, 4 per 7 days) is stricter than the 3 per 24 h that Florida,
Oklahoma and Maryland set as a legal ceiling; `caps_for_state` adds that ceiling to a
configured cap that would be looser.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from pipelines.flows import FLOWS


@dataclass(frozen=True)
class Limit:
    """At most `max_count` marketing messages in any rolling `window`."""

    window: timedelta
    max_count: int

    def __post_init__(self) -> None:
        if self.window <= timedelta(0) or self.max_count < 1:
            raise ValueError(f"not a limit: {self.max_count} per {self.window}")

    @property
    def label(self) -> str:
        hours = self.window / timedelta(hours=1)
        span = f"{hours / 24:g} days" if hours >= 48 else f"{hours:g}h"
        return f"{self.max_count} per {span}"


@dataclass(frozen=True)
class Caps:
    limits: tuple[Limit, ...]

    @classmethod
    def of(cls, per_24h: int | None = 1, per_7_days: int | None = 4) -> Caps:
        """The usual two limits from settings; None leaves one out."""
        limits = []
        if per_24h is not None:
            limits.append(Limit(timedelta(hours=24), per_24h))
        if per_7_days is not None:
            limits.append(Limit(timedelta(days=7), per_7_days))
        return cls(tuple(limits))


DEFAULT_CAPS = Caps.of()


class CapDecision(NamedTuple):
    allowed: bool
    reason: str | None
    retry_at: datetime | None  # the earliest instant every limit allows one more


def caps_for_state(caps: Caps, legal_max_per_24h: int | None) -> Caps:
    """Add a state's legal ceiling (3 per 24 h in FL, OK, MD) unless a limit already implies it.

    A limit over 24 h or longer with a count at or below the ceiling implies it; a shorter
    window never does (3 per hour still allows 72 a day), so then the ceiling is added.
    """
    if legal_max_per_24h is None:
        return caps
    day = timedelta(hours=24)
    if any(lim.window >= day and lim.max_count <= legal_max_per_24h for lim in caps.limits):
        return caps
    return Caps((*caps.limits, Limit(day, legal_max_per_24h)))


def marketing_sent_times(history: Iterable[tuple[datetime, str]]) -> list[datetime]:
    """Send times of marketing flows from (sent_at, flow) pairs; transactional ones drop out.

    A flow this catalogue does not know (an imported legacy send) counts, to stay on the safe
    side of the cap.
    """
    return [sent_at for sent_at, flow in history if flow not in FLOWS or FLOWS[flow].is_marketing]


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("frequency caps need aware datetimes, got a naive one")


def cap_decision(
    sent_times: list[datetime], at: datetime, caps: Caps = DEFAULT_CAPS
) -> CapDecision:
    """May one more marketing message go at `at`, given the recipient's marketing send times?

    A send at `s` counts while `at - window < s`: it stops counting exactly one window later.
    Sends after `at` (a clock ahead of ours, a scheduled send) count too, to be safe.
    """
    _require_aware(at)
    for sent in sent_times:
        _require_aware(sent)
    reasons: list[str] = []
    retry_at: datetime | None = None
    for limit in caps.limits:
        counted = sorted(s for s in sent_times if s > at - limit.window)
        if len(counted) < limit.max_count:
            continue
        reasons.append(f"frequency cap {limit.label} reached ({len(counted)} sent)")
        # One more fits once all but max_count - 1 of the counted sends have aged out; every
        # limit only loosens as time passes, so the latest of these instants satisfies all.
        frees_at = counted[len(counted) - limit.max_count] + limit.window
        retry_at = frees_at if retry_at is None else max(retry_at, frees_at)
    if reasons:
        return CapDecision(False, "; ".join(reasons), retry_at)
    return CapDecision(True, None, None)
