"""Quiet hours: when a message may reach a recipient, in every time zone they might be in.

Rules (notes/sms-compliance.md): marketing only 8:00-21:00 local time; Florida, Oklahoma and
Maryland 8:00-20:00, Connecticut 9:00-20:00 (the `us_states` seed holds the windows). A phone
with an area code of FL, OK or MD is presumed to belong to a resident, so those windows apply
even when the shipping address says otherwise; the strictest applicable window wins. The time
zone comes from the shipping address, else the phone number, and when several are possible
the window must be open in all of them. Outside the window a message is deferred, never dropped.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import geocoder
from phonenumbers import timezone as phone_timezone

from pipelines.flows import FLOWS, MARKETING

US_STATES_SEED = Path(__file__).resolve().parents[2] / "dbt" / "seeds" / "us_states.csv"

# Only these states' laws presume residency from the area code (notes/sms-compliance.md).
AREA_CODE_PRESUMPTION_STATES = frozenset({"FL", "OK", "MD"})
# Transactional flows that still wait for waking hours (DESIGN section 5).
WAKING_HOURS_FLOWS = frozenset({"setup_onboarding"})
# Nothing known about where the recipient is: require the window to be open across the US, so
# an unknown recipient is never woken anywhere we deliver.
FALLBACK_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
)
SEARCH_HORIZON = timedelta(days=7)
# Every current UTC offset is a multiple of 15 minutes and every transition happens on a
# quarter hour of UTC, so each zone's local hour is constant within a UTC quarter hour. That
# makes a quarter-hour scan exact, DST days included, without modelling transitions.
_STEP = timedelta(minutes=15)


class NoOpenWindow(ValueError):
    """The zones' windows do not overlap anywhere within the search horizon."""


@dataclass(frozen=True)
class Window:
    """Local hours when sending is allowed: start_hour:00 inclusive to end_hour:00 exclusive."""

    start_hour: int
    end_hour: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_hour < self.end_hour <= 24:
            raise ValueError(f"not a window: {self.start_hour}-{self.end_hour}")

    def contains(self, local: datetime) -> bool:
        return self.start_hour <= local.hour < self.end_hour

    def intersect(self, other: Window) -> Window:
        """The stricter of two windows: both must allow a send."""
        return Window(max(self.start_hour, other.start_hour), min(self.end_hour, other.end_hour))


FEDERAL_WINDOW = Window(8, 21)


@dataclass(frozen=True)
class StateRule:
    state: str
    name: str
    timezones: tuple[str, ...]
    window: Window
    marketing_max_per_24h: int | None


@cache
def state_rules() -> dict[str, StateRule]:
    """The `us_states` seed by state code; dbt and the sender read the same file."""
    with US_STATES_SEED.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {
        row["state"]: StateRule(
            state=row["state"],
            name=row["state_name"],
            timezones=tuple(z for z in row["timezones"].split("|") if z),
            window=Window(int(row["quiet_start_hour"]), int(row["quiet_end_hour"])),
            marketing_max_per_24h=int(row["marketing_max_per_24h"])
            if row["marketing_max_per_24h"]
            else None,
        )
        for row in rows
    }


def state_code(state: str | None) -> str | None:
    """A seed state code from a code or a full name ("fl", "Florida"); None when unknown."""
    if not state or not state.strip():
        return None
    key = state.strip()
    if key.upper() in state_rules():
        return key.upper()
    return _codes_by_name().get(key.casefold())


@cache
def _codes_by_name() -> dict[str, str]:
    return {rule.name.casefold(): code for code, rule in state_rules().items()}


def window_for_state(state: str | None) -> Window:
    """The state's marketing window; the federal 8-21 for an unknown or missing state."""
    code = state_code(state)
    return state_rules()[code].window if code else FEDERAL_WINDOW


def _parse_us(phone_e164: str | None) -> phonenumbers.PhoneNumber | None:
    if not phone_e164:
        return None
    try:
        return phonenumbers.parse(phone_e164, "US")
    except phonenumbers.NumberParseException:
        return None


# A send run asks for each candidate's number, and one customer has several candidates; the
# parse and the geocoder's lookup were a third of a big run's decisions.
@lru_cache(maxsize=1 << 18)
def state_for_phone(phone_e164: str | None) -> str | None:
    """The state of a number's area code, from libphonenumber's geocoder; None if unknown."""
    number = _parse_us(phone_e164)
    if number is None or number.country_code != 1:
        return None
    # The geocoder answers "Florida" for most prefixes and "Homestead, FL" for some.
    description = geocoder.description_for_number(number, "en")
    if ", " in description:
        description = description.rsplit(", ", 1)[1]
    return state_code(description)


def marketing_window(state: str | None, phone_e164: str | None) -> Window:
    """The strictest window that applies: the address's state and a presumed-resident state."""
    window = window_for_state(state)
    phone_state = state_for_phone(phone_e164)
    if phone_state in AREA_CODE_PRESUMPTION_STATES:
        window = window.intersect(window_for_state(phone_state))
    return window


@cache
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _known(names: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for name in names:
        name = name.strip()
        if name and _zone(name) is not None:
            seen.setdefault(name)
    return list(seen)


def zones_for(timezones_field: str | None, phone_e164: str | None) -> list[str]:
    """Candidate IANA zones: the address's ("A|B"), else the phone's, else all of the US."""
    if timezones_field:
        zones = _known(timezones_field.split("|"))
        if zones:
            return zones
    number = _parse_us(phone_e164)
    if number is not None:
        # Unknown prefixes come back as "Etc/Unknown", which `_known` drops on purpose.
        zones = _known([z for z in phone_timezone.time_zones_for_number(number)])
        zones = [z for z in zones if not z.startswith("Etc/")]
        if zones:
            return zones
    return list(FALLBACK_ZONES)


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("quiet hours need an aware datetime (UTC), got a naive one")


def is_open(at: datetime, zones: list[str], window: Window) -> bool:
    """True when `at` falls inside `window` in every one of `zones`."""
    _require_aware(at)
    if not zones:
        raise ValueError("no time zones: use zones_for(), which always returns some")
    tzs = [_zone(z) for z in zones]
    if any(tz is None for tz in tzs):
        raise ValueError(f"unknown time zone in {zones}")
    return all(window.contains(at.astimezone(tz)) for tz in tzs)


def next_open(
    at: datetime, zones: list[str], window: Window, horizon: timedelta = SEARCH_HORIZON
) -> datetime:
    """The earliest UTC instant >= `at` when the window is open in all zones."""
    if is_open(at, zones, window):
        return at.astimezone(UTC)
    at_utc = at.astimezone(UTC)
    # The quarter hour holding `at` is closed throughout (see _STEP), so start at the next one.
    candidate = at_utc.replace(minute=at_utc.minute - at_utc.minute % 15, second=0, microsecond=0)
    candidate += _STEP
    while candidate - at_utc <= horizon:
        if is_open(candidate, zones, window):
            return candidate
        candidate += _STEP
    raise NoOpenWindow(f"{window} never open in all of {zones} within {horizon} of {at}")


def quiet_hours_apply(flow: str, message_class: str | None = None) -> bool:
    """Marketing always waits for its window; transactional goes at once, except the flows
    promised "in waking hours". `message_class` overrides the flow's class (an upsell variant
    of a transactional flow is marketing)."""
    if flow not in FLOWS:
        raise ValueError(f"unknown flow: {flow}")
    effective = message_class or FLOWS[flow].message_class
    return effective == MARKETING or flow in WAKING_HOURS_FLOWS


def send_time(
    at: datetime,
    flow: str,
    zones: list[str],
    window: Window,
    message_class: str | None = None,
) -> datetime:
    """When a message due at `at` may go: `at` itself, or the window's next opening."""
    _require_aware(at)
    if not quiet_hours_apply(flow, message_class):
        return at.astimezone(UTC)
    return next_open(at, zones, window)
