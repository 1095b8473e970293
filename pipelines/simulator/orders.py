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
from pipelines.simulator.people import Customers, customer_ids
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
    Spell,
    int_text,
    latest_rows,
    money_text,
    numbers_table,
    pick,
    text_frame,
    window_rows,
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
    # Kept as numbers (tens of millions of rows in a large world); ``spell`` makes them text.
    orders: pl.DataFrame
    order_lines: pl.DataFrame
    fulfillment_events: pl.DataFrame
    spell: dict[str, Spell]
    shipments: Shipments
    ship_zone: np.ndarray
    stats: dict[str, int]


def order_ids(index: np.ndarray) -> pl.Series:
    return pl.select(pl.format("O{}", pl.lit(int_text(np.asarray(index) + 100_001)))).to_series()


def _version_stats(order: np.ndarray, day: np.ndarray, status: np.ndarray) -> dict[str, int]:
    """Late updates and final states of the exported order versions, given in file order."""
    n = int(order.max()) + 1 if len(order) else 0
    first_day = np.full(n, np.iinfo(np.int32).max, dtype=np.int64)
    np.minimum.at(first_day, order, day)
    late = day > first_day[order]
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, order, np.arange(len(order)))
    final = status[last[last >= 0]]
    stats = {
        "late_updates": int(late.sum()),
        "cancelled_orders": int((final == CANCELLED).sum()),
        "refunded_orders": int((final == REFUNDED).sum()),
    }
    for code, name in enumerate(ORDER_STATUSES):
        stats[f"late_updates_{name}"] = int((late & (status == code)).sum())
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
    # The versions that reach a file: each order's last state of each day.
    exported = window_rows(v_t, v_order, clock)
    k = latest_rows(v_order[exported], clock.export_day(v_t[exported]))
    v_order, v_status, v_t = v_order[exported[k]], v_status[exported[k]], v_t[exported[k]]
    order_frame = numbers_table(
        v_t, k, clock, {"order": v_order, "status": v_status.astype(np.int8)}
    )
    stats = _version_stats(v_order, order_frame["_day"].to_numpy(), v_status)
    # Digital orders have no address.
    address = np.where(orders.digital, -1, ship_place)
    gift_zip = [p.postal_codes[0] for p in PLACES]

    def spell_orders(rows: pl.DataFrame) -> pl.DataFrame:
        order = rows["_order"].to_numpy()
        t = rows["_t"].to_numpy()
        zone = order_zone[order]
        ordered = orders.t[order]
        place = address[order]
        has_address = pl.Series(place >= 0)
        # A gift goes to the city's first ZIP; the customer's own orders to their address.
        postal = pl.select(
            pl.when(pl.Series(gift[order]))
            .then(pick(gift_zip, ship_place[order]))
            .otherwise(customers.postal_code.gather(orders.customer[order]))
        ).to_series()

        def address_text(values: pl.Series) -> pl.Series:
            return pl.select(pl.when(has_address).then(values)).to_series()

        here = np.maximum(place, 0)
        return text_frame(
            "orders",
            {
                "order_id": order_ids(order),
                "customer_id": customer_ids(orders.customer[order]),
                "ordered_at": iso_text(ordered, style[order], clock.offset(zone, ordered)),
                "currency": "USD",
                "total_amount": money_text(orders.total_cents[order]),
                "fulfillment_type": pick(
                    ("physical", "digital"), orders.digital[order].astype(int)
                ),
                "shipping_postal_code": address_text(postal),
                "shipping_region": address_text(pick([p.region for p in PLACES], here)),
                "shipping_city": address_text(pick([p.city for p in PLACES], here)),
                "shipping_country": address_text(pick(["US"] * len(PLACES), here)),
                "status": pick(ORDER_STATUSES, rows["_status"].to_numpy()),
                "updated_at": iso_text(t, style[order], clock.offset(zone, t)),
            },
            rows.height,
        )

    line_t = orders.t[orders.line_order]
    lines = window_rows(line_t, np.arange(len(line_t)), clock)
    line_frame = numbers_table(
        line_t[lines],
        np.arange(len(lines)),
        clock,
        {"order": orders.line_order[lines], "line": lines},
    )

    def spell_lines(rows: pl.DataFrame) -> pl.DataFrame:
        line = rows["_line"].to_numpy()
        return text_frame(
            "order_lines",
            {
                "order_id": order_ids(orders.line_order[line]),
                "line_id": int_text(orders.line_no[line]),
                "product_id": pick([p.product_id for p in CATALOG], orders.line_product[line]),
                "quantity": int_text(orders.line_quantity[line]),
                "unit_price": money_text(orders.line_unit_cents[line]),
            },
            rows.height,
        )

    events, spell_events = _fulfillment_events(shipments, orders, clock, rng)
    return OrderExports(
        orders=order_frame,
        order_lines=line_frame,
        fulfillment_events=events,
        spell={
            "orders": spell_orders,
            "order_lines": spell_lines,
            "fulfillment_events": spell_events,
        },
        shipments=shipments,
        ship_zone=ship_zone,
        stats=stats,
    )


def _fulfillment_events(
    shipments: Shipments, orders: Orders, clock: Clock, rng: np.random.Generator
) -> tuple[pl.DataFrame, Spell]:
    s = shipments.event_shipment
    keep = orders.t[shipments.order[s]] >= clock.t0 - FULFILLMENT_BACKFILL_DAYS * DAY
    s = s[keep]
    t = shipments.event_t[keep]
    status = shipments.event_status[keep]
    n = len(s)
    # Carrier webhooks speak UTC; estimates are promised in local time.
    t_style = styles(rng, n, z=0.6, utc=0.1, local=0.3)
    e_style = styles(rng, n, z=0.4, utc=0.0, local=0.6)
    has_url = rng.random(n) >= NO_TRACKING_URL_P
    exported = window_rows(t, s * 16 + status, clock)
    frame = numbers_table(
        t[exported],
        np.arange(len(exported)),
        clock,
        {
            "shipment": s[exported],
            "status": status[exported],
            "estimate": shipments.event_estimate[keep][exported],
            "t_style": t_style[exported],
            "e_style": e_style[exported],
            "has_url": has_url[exported],
        },
    )
    # What the text needs of the shipments, and no more (their events are in the frame).
    order_of, zone_of, carrier_of = shipments.order, shipments.zone, shipments.carrier
    number_of = shipments.tracking_number

    def spell(rows: pl.DataFrame) -> pl.DataFrame:
        s = rows["_shipment"].to_numpy()
        t = rows["_t"].to_numpy()
        estimate = rows["_estimate"].to_numpy()
        zone = zone_of[s]
        missing_estimate = estimate == NEVER
        estimate = np.where(missing_estimate, t, estimate)
        number = number_of.gather(s)
        url = tracking_urls(carrier_of[s], number)
        order_id = order_ids(order_of[s])
        return text_frame(
            "fulfillment_events",
            {
                "shipment_id": pl.select(
                    pl.format("SH{}", pl.lit(order_id.str.slice(1)))
                ).to_series(),
                "status": pick(STATUSES, rows["_status"].to_numpy()),
                "occurred_at": iso_text(t, rows["_t_style"].to_numpy(), clock.offset(zone, t)),
                "order_id": order_id,
                "carrier": pick(CARRIERS, carrier_of[s]),
                "tracking_number": number,
                "tracking_url": pl.select(pl.when(rows["_has_url"]).then(url)).to_series(),
                "estimated_delivery_at": iso_text(
                    estimate,
                    rows["_e_style"].to_numpy(),
                    clock.offset(zone, estimate),
                    missing=missing_estimate,
                ),
            },
            rows.height,
        )

    return frame, spell
