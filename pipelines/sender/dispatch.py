"""Provider calls from worker threads: rate-limited, concurrency-capped, retried when safe.

Workers never touch the warehouse (a DuckDB connection is not shared across threads): each
returns a `Delivery` and the main thread writes it. Only failures that certainly did not queue
the message are retried (connection refused, 429, 5xx), with exponential backoff and full
jitter; an ambiguous failure (read timeout) is returned as such, never retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pipelines.messaging.rate_limit import InFlightLimit, TokenBucket, Unpaced
from pipelines.messaging.retry import classify, retry_delay
from pipelines.providers.base import (
    MAX_DESTINATIONS,
    Provider,
    SendRequest,
    SendResult,
    mask_phones_in,
)


@dataclass(frozen=True)
class Outgoing:
    """One rendered message to one recipient, ready for the provider."""

    idempotency_key: str
    phone_e164: str
    text: str


@dataclass(frozen=True)
class Batch:
    """The messages of one provider request: one text to distinct destinations."""

    request_id: str
    messages: tuple[Outgoing, ...]

    @property
    def request(self) -> SendRequest:
        return SendRequest(tuple(m.phone_e164 for m in self.messages), self.messages[0].text)


@dataclass(frozen=True)
class Delivery:
    batch: Batch
    attempts: int
    result: SendResult | None = None
    outcome: str = "sent"  # sent | retryable (gave up) | ambiguous | permanent
    error: str | None = None  # masked: provider messages may echo numbers


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 60.0


def batches(messages: Iterable[Outgoing], max_destinations: int) -> list[Batch]:
    """Identical texts share a request (up to `max_destinations`, each number once per
    request); personalized texts, the usual case, go one per request. Order is kept."""
    size = max(1, min(max_destinations, MAX_DESTINATIONS))
    by_text: dict[str, list[list[Outgoing]]] = {}
    order: list[list[Outgoing]] = []
    for message in messages:
        groups = by_text.setdefault(message.text, [])
        group = next(
            (
                g
                for g in groups
                if len(g) < size and all(m.phone_e164 != message.phone_e164 for m in g)
            ),
            None,
        )
        if group is None:
            group = []
            groups.append(group)
            order.append(group)
        group.append(message)
    # The first key names the request, so a rerun after a crash names it the same.
    return [Batch(group[0].idempotency_key, tuple(group)) for group in order]


def deliver(
    provider: Provider,
    batch: Batch,
    bucket: TokenBucket | Unpaced,
    in_flight: InFlightLimit,
    policy: RetryPolicy,
    callback_url: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send one batch, retrying what is safe to retry; never raises for provider errors."""
    request = batch.request
    if callback_url:
        request = SendRequest(request.destinations, request.text, callback_url)
    rng = random.Random()
    prepare = getattr(provider, "prepare", None)
    if prepare is not None:
        prepare()  # whatever a request needs that is not the request, before the token
    attempt = 0
    while True:
        attempt += 1
        bucket.acquire(len(request.destinations))
        try:
            with in_flight:
                result = provider.send(request)
        except Exception as exc:  # noqa: BLE001 - sorted by classify(); unknown means ambiguous
            delay = retry_delay(
                exc,
                attempt,
                max_attempts=policy.max_attempts,
                base=policy.base_seconds,
                cap=policy.cap_seconds,
                rng=rng,
            )
            if delay is None:
                return Delivery(batch, attempt, None, classify(exc), mask_phones_in(str(exc)))
            sleep(delay)
            continue
        return Delivery(batch, attempt, result)


def assign_uuids(batch: Batch, result: SendResult) -> dict[str, str | None]:
    """Message uuid per idempotency key; None for a destination the provider rejected.

    Plivo lists uuids for the accepted destinations in request order, so they are matched by
    position after the rejected numbers are taken out.
    """
    invalid = set(result.invalid_numbers)
    accepted: Sequence[Outgoing] = [m for m in batch.messages if m.phone_e164 not in invalid]
    uuids = dict.fromkeys((m.idempotency_key for m in batch.messages), None)
    for message, uuid in zip(accepted, result.message_uuids, strict=False):
        uuids[message.idempotency_key] = uuid
    return uuids
