"""The interface every SMS provider shares (plivo, simulator, dry-run), and log-safe helpers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# Plivo accepts up to 1,000 `<`-joined destinations for one identical text.
MAX_DESTINATIONS = 1000

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
# Anything that looks like a phone number inside free text (provider error messages, URLs).
_PHONE_IN_TEXT = re.compile(r"(?<!\w)\+?\d[\d\- ]{5,}\d(?!\w)")


@dataclass(frozen=True)
class SendRequest:
    """One text to one or more recipients (E.164), with an optional status-callback URL."""

    destinations: tuple[str, ...]
    text: str
    callback_url: str | None = None

    def __post_init__(self) -> None:
        # Accept any iterable but store a tuple, so requests stay hashable and immutable.
        object.__setattr__(self, "destinations", tuple(self.destinations))
        if not self.destinations:
            raise ValueError("a send request needs at least one destination")
        if len(self.destinations) > MAX_DESTINATIONS:
            raise ValueError(
                f"{len(self.destinations)} destinations in one request; the limit is "
                f"{MAX_DESTINATIONS}: split the batch"
            )
        for number in self.destinations:
            # A stray '<' would smuggle extra recipients into Plivo's joined `dst`.
            if not isinstance(number, str) or not _E164.match(number):
                raise ValueError(f"destination is not E.164: {mask_phone(str(number))}")
        if not isinstance(self.text, str) or not self.text:
            raise ValueError("a send request needs a non-empty text")


@dataclass(frozen=True)
class SendResult:
    """What the provider accepted: one uuid per queued destination, and those it rejected."""

    message_uuids: tuple[str, ...]
    invalid_numbers: tuple[str, ...] = ()
    api_id: str | None = None


@runtime_checkable
class Provider(Protocol):
    """Sends texts. `send` raises RetryableError, AmbiguousError or PermanentError."""

    name: str

    def send(self, request: SendRequest) -> SendResult: ...


def mask_phone(number: str) -> str:
    """`+14155551234` -> `+*******1234`: enough to tell numbers apart in a log, no more."""
    digits = sum(ch.isdigit() for ch in number)
    keep = 4 if digits > 4 else 0
    out: list[str] = []
    seen = 0
    for ch in number:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > digits - keep else "*")
        else:
            out.append(ch)
    return "".join(out)


def mask_phones(numbers: Iterable[str], limit: int = 3) -> str:
    """A short, masked list for a log line: the first few numbers and how many more."""
    numbers = list(numbers)
    shown = ", ".join(mask_phone(n) for n in numbers[:limit])
    more = len(numbers) - limit
    return f"{shown} (+{more} more)" if more > 0 else shown


def mask_phones_in(text: str) -> str:
    """Mask every phone-number-like run inside free text, such as a provider's error message."""
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)
