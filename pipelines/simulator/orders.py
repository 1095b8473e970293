"""Orders as the shop exports them: one row per changed order per day, plus lines and tracking.

An order is exported on the day it is placed and again on each later day its status changes
(paid -> fulfilled when it ships, cancelled, refunded after a return), so the ingest has to keep
the latest version by ``updated_at``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.simulator.catalog import CATALOG
from pipelines.simulator.clock import DAY, HOUR, Clock, iso_text, styles
from pipelines.simulator.geography import PLACES, ZONES
from pipelines.simulator.people import Customers
from pipelines.simulator.purchases import Orders
from pipelines.simulator.shipping import (
    CARRIERS,
    NEVER,
    STATUSES,
    Shipments,
    make_shipments,
    tracking_urls,
)
from pipelines.simulator.tables import (
    int_text,
    latest_per_day,
    money_text,
    pick,
    table,
    within_window,
)

GIFT_P = 0.04  # shipped to someone else, elsewhere
CANCEL_P = 0.03
REFUND_WITHOUT_RETURN_P = 0.01
FULFILLMENT_BACKFILL_DAYS = 30  # tracking history the shop exports on day 0
NO_TRACKING_URL_P = 0.08

ORDER_STATUSES = ("paid", "fulfilled", "cancelled", "refunded")
PAID, FULFILLED, CANCELLED, REFUNDED = range(4)


@dataclass(frozen=True)
class OrderExports:
    orders: pl.DataFrame
    order_lines: pl.DataFrame
    fulfillment_events: pl.DataFrame
    shipments: Shipments
    ship_zone: np.ndarray
    stats: dict[str, int]


def order_ids(index: np.ndarray) -> pl.Series:
    return pl.select(pl.format("O{}", pl.lit(int_text(np.asarray(index) + 100_001)))).to_series()


def _version_stats(frame: pl.DataFrame) -> dict[str, int]:
    first_day = pl.col("_day").min().over("order_id")
    late = frame.filter(pl.col("_day") > first_day)
    latest = frame.sort(["_t", "_k"]).group_by("order_id", maintain_order=True).last()
    stats = {
        "late_updates": late.height,
        "cancelled_orders": latest.filter(pl.col("status") == "cancelled").height,
        "refunded_orders": latest.filter(pl.col("status") == "refunded").height,
    }
    for status in ORDER_STATUSES:
        stats[f"late_updates_{status}"] = late.filter(pl.col("status") == status).height
    return stats


def make_order_exports(
    customers: Customers, orders: Orders, clock: Clock, rng: np.random.Generator
) -> OrderExports:
    n = orders.n
    weights = np.array([p.weight for p in PLACES])
    zone_of_place = np.array([ZONES.index(p.zone) for p in PLACES])
    gift = rng.random(n) < GIFT_P
    home = customers.place[orders.customer]
    ship_place = np.where(gift, rng.choice(len(PLACES), size=n, p=weights / weights.sum()), home)
    ship_zone = zone_of_place[ship_place]
    # Digital orders have no address: their time zone is the customer's home zone.
    order_zone = np.where(orders.digital, customers.zone[orders.customer], ship_zone)
    # A gift goes to the city's first ZIP; the customer's own orders to their address.
    gift_zip = pick([p.postal_codes[0] for p in PLACES], ship_place)
    home_zip = customers.postal_code.gather(orders.customer)
    postal = pl.select(pl.when(pl.Series(gift)).then(gift_zip).otherwise(home_zip)).to_series()

    physical = ~orders.digital
    cancelled = physical & (rng.random(n) < CANCEL_P)
    cancelled_at = orders.t + rng.integers(1 * HOUR, 30 * HOUR, size=n)
    shipped = np.flatnonzero(physical & ~cancelled)
    shipments = make_shipments(shipped, orders.t[shipped], ship_zone[shipped], clock, rng)
    no_return = shipments.returned_at == NEVER
    refund_only = no_return & (rng.random(len(shipped)) < REFUND_WITHOUT_RETURN_P)
    refund_at = np.where(
        refund_only,
        shipments.delivered_at + rng.integers(2 * DAY, 10 * DAY, size=len(shipped)),
        np.where(
            no_return,
            NEVER,
            shipments.returned_at + rng.integers(1 * DAY, 3 * DAY, size=len(shipped)),
        ),
    )
    refunded = refund_at != NEVER

    digital = np.flatnonzero(orders.digital)
    versions = [
        (np.flatnonzero(physical), PAID, orders.t[physical]),
        (digital, FULFILLED, orders.t[digital] + rng.integers(5, 300, size=len(digital))),
        (np.flatnonzero(cancelled), CANCELLED, cancelled_at[cancelled]),
        (shipped, FULFILLED, shipments.shipped_at),
        (shipped[refunded], REFUNDED, refund_at[refunded]),
    ]
    v_order = np.concatenate([v[0] for v in versions])
    v_status = np.concatenate([np.full(len(v[0]), v[1]) for v in versions])
    v_t = np.concatenate([v[2] for v in versions])

    # A shop's exports mostly carry its customers' local offsets; some tools write UTC.
    style = styles(rng, n, z=0.2, utc=0.1, local=0.7)
    zone = order_zone[v_order]
    ordered = orders.t[v_order]
    ids = order_ids(np.arange(n))
    place = np.where(orders.digital, -1, ship_place)[v_order]
    has_address = place >= 0
    address = np.maximum(place, 0)

    def address_text(values: list[str]) -> pl.Series:
        return pl.select(pl.when(pl.Series(has_address)).then(pick(values, address))).to_series()

    order_frame = table(
        "orders",
        {
            "order_id": ids.gather(v_order),
            "customer_id": customers.ids.gather(orders.customer[v_order]),
            "ordered_at": iso_text(ordered, style[v_order], clock.offset(zone, ordered)),
            "currency": "USD",
            "total_amount": money_text(orders.total_cents[v_order]),
            "fulfillment_type": pick(("physical", "digital"), orders.digital[v_order].astype(int)),
            "shipping_postal_code": pl.select(
                pl.when(pl.Series(has_address)).then(postal.gather(v_order))
            ).to_series(),
            "shipping_region": address_text([p.region for p in PLACES]),
            "shipping_city": address_text([p.city for p in PLACES]),
            "shipping_country": address_text(["US"] * len(PLACES)),
            "status": pick(ORDER_STATUSES, v_status),
            "updated_at": iso_text(v_t, style[v_order], clock.offset(zone, v_t)),
        },
        t=v_t,
        tie=v_order,
    )
    order_frame = latest_per_day(within_window(order_frame, clock), "order_id")

    line_t = orders.t[orders.line_order]
    line_frame = within_window(
        table(
            "order_lines",
            {
                "order_id": ids.gather(orders.line_order),
                "line_id": int_text(orders.line_no),
                "product_id": pick([p.product_id for p in CATALOG], orders.line_product),
                "quantity": int_text(orders.line_quantity),
                "unit_price": money_text(orders.line_unit_cents),
            },
            t=line_t,
        ),
        clock,
    )

    events = _fulfillment_events(shipments, ids, orders, clock, rng)
    return OrderExports(
        orders=order_frame,
        order_lines=line_frame,
        fulfillment_events=events,
        shipments=shipments,
        ship_zone=ship_zone,
        stats=_version_stats(order_frame),
    )


def _fulfillment_events(
    shipments: Shipments,
    ids: pl.Series,
    orders: Orders,
    clock: Clock,
    rng: np.random.Generator,
) -> pl.DataFrame:
    s = shipments.event_shipment
    order = shipments.order[s]
    keep = orders.t[order] >= clock.t0 - FULFILLMENT_BACKFILL_DAYS * DAY
    s, order = s[keep], order[keep]
    t = shipments.event_t[keep]
    estimate = shipments.event_estimate[keep]
    status = shipments.event_status[keep]
    zone = shipments.zone[s]
    n = len(s)
    # Carrier webhooks speak UTC; estimates are promised in local time.
    t_style = styles(rng, n, z=0.6, utc=0.1, local=0.3)
    e_style = styles(rng, n, z=0.4, utc=0.0, local=0.6)
    missing_estimate = estimate == NEVER
    estimate = np.where(missing_estimate, t, estimate)
    number = shipments.tracking_number.gather(s)
    url = tracking_urls(shipments.carrier[s], number)
    url = pl.select(pl.when(pl.Series(rng.random(n) >= NO_TRACKING_URL_P)).then(url)).to_series()
    order_id = ids.gather(order)
    frame = table(
        "fulfillment_events",
        {
            "shipment_id": pl.select(pl.format("SH{}", pl.lit(order_id.str.slice(1)))).to_series(),
            "status": pick(STATUSES, status),
            "occurred_at": iso_text(t, t_style, clock.offset(zone, t)),
            "order_id": order_id,
            "carrier": pick(CARRIERS, shipments.carrier[s]),
            "tracking_number": number,
            "tracking_url": url,
            "estimated_delivery_at": iso_text(
                estimate, e_style, clock.offset(zone, estimate), missing=missing_estimate
            ),
        },
        t=t,
        tie=s * 16 + status,
    )
    return within_window(frame, clock)
