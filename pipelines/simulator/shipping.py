"""Carrier tracking for physical orders: label, pickup, transit, delivery, failures, returns.

Delays are drawn per shipment; out-for-delivery and delivery happen in the recipient's local
daytime, because that is when the flows triggered by them have to respect quiet hours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.simulator.clock import DAY, HOUR, MINUTE, Clock
from pipelines.simulator.tables import pick

NEVER = np.iinfo(np.int64).max

CARRIERS = ("UPS", "USPS", "FedEx")
CARRIER_P = (0.4, 0.35, 0.25)
TRANSIT_DAYS = ((1, 4), (2, 5), (1, 3))  # inclusive, per carrier
TRACKING_URLS = (
    "https://www.ups.com/track?tracknum={}",
    "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    "https://www.fedex.com/fedextrack/?trknbr={}",
)
UPS_SHIPPER = "8V4A29"  # one shop ships from one UPS account, so its numbers share a prefix

FAILED_ATTEMPT_P = 0.04
RETURN_P = 0.025
SECOND_SCAN_P = 0.7  # longer hauls get a second in-transit scan at the destination hub

STATUSES = (
    "label_created",
    "shipped",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "failed_attempt",
    "returned",
)


@dataclass(frozen=True)
class Shipments:
    order: np.ndarray  # order index of each shipment
    zone: np.ndarray
    carrier: np.ndarray
    tracking_number: pl.Series
    shipped_at: np.ndarray
    delivered_at: np.ndarray
    returned_at: np.ndarray  # NEVER unless sent back
    # One row per tracking event: shipment index, status index, moment, promised delivery.
    event_shipment: np.ndarray
    event_status: np.ndarray
    event_t: np.ndarray
    event_estimate: np.ndarray  # NEVER when the carrier gives none


def _between(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return (rng.uniform(low, high, size=n)).astype(np.int64)


def _to_minute(t: np.ndarray) -> np.ndarray:
    """Carriers report to the minute."""
    return np.where(t == NEVER, NEVER, t - t % MINUTE)


def _tracking_numbers(rng: np.random.Generator, carrier: np.ndarray) -> pl.Series:
    n = len(carrier)
    ups = pl.Series(rng.integers(10**7, 10**8, size=n)).cast(pl.String)
    usps_a = pl.Series(rng.integers(10**8, 10**9, size=n)).cast(pl.String)
    usps_b = pl.Series(rng.integers(10**8, 10**9, size=n)).cast(pl.String)
    fedex = pl.Series(rng.integers(10**11, 10**12, size=n)).cast(pl.String)
    frame = pl.DataFrame({"c": carrier, "ups": ups, "a": usps_a, "b": usps_b, "fedex": fedex})
    expr = (
        pl.when(pl.col("c") == 0)
        .then(pl.format("1Z{}03{}", pl.lit(UPS_SHIPPER), pl.col("ups")))
        .when(pl.col("c") == 1)
        .then(pl.format("94001{}{}", pl.col("a"), pl.col("b")))
        .otherwise(pl.col("fedex"))
    )
    return frame.select(expr.alias("tracking_number")).to_series()


def tracking_urls(carrier: np.ndarray, tracking_number: pl.Series) -> pl.Series:
    before, after = zip(*(url.split("{}") for url in TRACKING_URLS), strict=True)
    url = pl.concat_str(
        pl.lit(pick(before, carrier)), pl.lit(tracking_number), pl.lit(pick(after, carrier))
    )
    return pl.select(url.alias("tracking_url")).to_series()


def make_shipments(
    order: np.ndarray,
    placed_at: np.ndarray,
    zone: np.ndarray,
    clock: Clock,
    rng: np.random.Generator,
) -> Shipments:
    n = len(order)
    carrier = rng.choice(len(CARRIERS), size=n, p=CARRIER_P)
    low = np.array([d[0] for d in TRANSIT_DAYS])[carrier]
    high = np.array([d[1] for d in TRANSIT_DAYS])[carrier]
    transit = rng.integers(low, high + 1)

    label = placed_at + _between(rng, 1 * HOUR, 20 * HOUR, n)
    shipped = label + _between(rng, 2 * HOUR, 26 * HOUR, n)
    delivery_day = clock.local_day(zone, shipped) + transit
    out = clock.at_local(zone, delivery_day, _between(rng, 7 * HOUR, 9.5 * HOUR, n))
    scan = shipped + ((out - shipped) * rng.uniform(0.15, 0.5, n)).astype(np.int64)
    hub = shipped + ((out - shipped) * rng.uniform(0.6, 0.9, n)).astype(np.int64)
    has_hub = (transit >= 2) & (rng.random(n) < SECOND_SCAN_P)

    # The carrier promises a day (sometimes optimistic, sometimes padded), by end of day.
    promised_day = clock.local_day(zone, shipped) + transit + rng.choice([-1, 0, 0, 1], size=n)
    promised_day = np.maximum(promised_day, clock.local_day(zone, shipped) + 1)
    estimate = clock.at_local(zone, promised_day, np.full(n, 20 * HOUR))

    failed = rng.random(n) < FAILED_ATTEMPT_P
    failed_at = out + _between(rng, 2 * HOUR, 8 * HOUR, n)
    retry = clock.at_local(zone, delivery_day + 1, _between(rng, 7 * HOUR, 9.5 * HOUR, n))
    retry_estimate = clock.at_local(zone, delivery_day + 1, np.full(n, 20 * HOUR))
    final_out = np.where(failed, retry, out)
    delivered = final_out + _between(rng, 1 * HOUR, 9 * HOUR, n)
    returned = rng.random(n) < RETURN_P
    returned_at = np.where(returned, delivered + _between(rng, 4 * DAY, 21 * DAY, n), NEVER)

    idx = np.arange(n)
    no_estimate = np.full(n, NEVER)
    stages = [
        (idx, 0, label, estimate),
        (idx, 1, shipped, estimate),
        (idx, 2, scan, estimate),
        (idx[has_hub], 2, hub[has_hub], estimate[has_hub]),
        (idx, 3, out, estimate),
        (idx[failed], 5, failed_at[failed], retry_estimate[failed]),
        (idx[failed], 3, retry[failed], retry_estimate[failed]),
        (idx, 4, delivered, np.where(failed, retry_estimate, estimate)),
        (idx[returned], 6, returned_at[returned], no_estimate[returned]),
    ]
    event_shipment = np.concatenate([s[0] for s in stages])
    event_status = np.concatenate([np.full(len(s[0]), s[1], dtype=np.int8) for s in stages])
    event_t = _to_minute(np.concatenate([s[2] for s in stages]))
    event_estimate = np.concatenate([s[3] for s in stages])
    return Shipments(
        order=order,
        zone=zone,
        carrier=carrier,
        tracking_number=_tracking_numbers(rng, carrier),
        shipped_at=_to_minute(shipped),
        delivered_at=_to_minute(delivered),
        returned_at=_to_minute(returned_at),
        event_shipment=event_shipment,
        event_status=event_status,
        event_t=event_t,
        event_estimate=event_estimate,
    )
