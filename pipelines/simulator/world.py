"""Build the simulated shop and write its exports day by day: the one public entry point."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.landing import ENTITIES
from pipelines.simulator import mess
from pipelines.simulator.catalog import make_prices, product_table
from pipelines.simulator.clock import Clock, make_clock
from pipelines.simulator.consents import MARKETING, TRANSACTIONAL, consent_profiles, consent_table
from pipelines.simulator.customers import customer_table
from pipelines.simulator.export import split_by_day, write_day
from pipelines.simulator.geography import ZONES
from pipelines.simulator.legacy_sms import make_legacy_sms
from pipelines.simulator.orders import make_order_exports
from pipelines.simulator.people import MAX_AGE_DAYS, Customers, make_customers
from pipelines.simulator.purchases import Pairs, make_demand
from pipelines.simulator.tables import Spell
from pipelines.simulator.truth import consumption_frame, customer_truth_frame, write_truth

# Independent random streams, so a change in one part of the world leaves the others alone.
STREAMS = (
    "customers",
    "prices",
    "demand",
    "orders",
    "consents",
    "legacy",
    "customer_rows",
    "products",
    "mess",
)
DUPLICATE_SHARE = {
    "customers": 0.005,
    "sms_consents": 0.003,
    "orders": 0.01,  # order_lines follow their order
    "fulfillment_events": 0.005,
}
LOOKAHEAD_DAYS = 60  # deliveries and returns run past the window's end


@dataclass(frozen=True)
class SimulationSummary:
    first_day: dt.date
    last_day: dt.date  # inclusive
    days: int
    customers: int
    rows: dict[str, int]  # rows written per entity, planted mess included
    files: int
    planted: dict
    landing: Path
    truth_dir: Path


def simulate(
    out: Path,
    *,
    days: int = 60,
    customers: int = 2000,
    seed: int = 7,
    start: dt.date = dt.date(2026, 8, 1),
    truth_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationSummary:
    """Simulate ``days`` of a shop with ``customers`` customers and write its daily exports
    under the landing root ``out``; the hidden truth goes to ``truth_dir``
    (default ``out.parent / "simulator"``). Same arguments, byte-identical files.

    Re-running with the same arguments rewrites the same bytes, so it is safe; writing a
    different world into a landing folder that already holds exports is refused, because
    landing files are immutable and two mixed worlds would corrupt each other.
    """
    if days < 1 or customers < 1:
        raise ValueError("days and customers must be at least 1")
    out = Path(out)
    truth_dir = Path(truth_dir) if truth_dir is not None else out.parent / "simulator"
    if truth_dir.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"the truth ({truth_dir}) must live outside the landing root ({out})")
    world = {
        "seed": seed,
        "start": start.isoformat(),
        "end": (start + dt.timedelta(days=days - 1)).isoformat(),
        "days": days,
        "customers": customers,
    }
    _refuse_other_worlds(out, truth_dir, world)

    rngs = {
        name: np.random.default_rng(s)
        for name, s in zip(STREAMS, np.random.SeedSequence(seed).spawn(len(STREAMS)), strict=True)
    }
    clock = make_clock(start, days, ZONES, MAX_AGE_DAYS + 5, LOOKAHEAD_DAYS)
    people = make_customers(clock, rngs["customers"], customers)
    tables, spells, pairs, profile, counts = _make_tables(people, clock, rngs)
    price_changes = int(tables["products"]["_day"].gt(0).sum())
    tables, malformed, duplicates = _plant_mess(tables, days - 1, rngs["mess"])

    # Cutting into days copies nothing; the bookkeeping columns go with the full frames.
    parts = {
        entity: split_by_day(entity, tables.pop(entity), spells.get(entity))
        for entity in list(tables)
    }
    rows = dict.fromkeys(parts, 0)
    files = 0
    for index in range(days):
        day = start + dt.timedelta(days=index)
        for entity, n in write_day(out, day, index, parts).items():
            rows[entity] += n
            files += 1
        if progress is not None:
            progress(index + 1, days)

    stats = counts["orders"]
    invalid = people.ids.filter(pl.Series(~people.phone_valid)).to_list()
    planted = {
        "world": world,
        "rows": rows,
        "malformed": malformed,
        "malformed_total": {e: sum(c.values()) for e, c in malformed.items()},
        "duplicate_rows": duplicates,
        "late_updates": {
            "orders": stats["late_updates"],
            "customers": counts["customer_updates"],
            "products": price_changes,
        },
        "late_order_updates_by_status": {
            s: stats[f"late_updates_{s}"] for s in ("fulfilled", "cancelled", "refunded")
        },
        "cancelled_orders": stats["cancelled_orders"],
        "refunded_orders": stats["refunded_orders"],
        "invalid_phone_numbers": {"customers": len(invalid), "customer_ids": invalid},
        "legacy_sms": {
            "messages": counts["legacy_messages"],
            "unhandled_opt_out_texts": counts["unhandled_opt_outs"],
        },
        "price_changes": price_changes,
        "definitions": DEFINITIONS,
    }
    write_truth(
        truth_dir,
        consumption_frame(pairs, people),
        customer_truth_frame(people, profile, clock),
        planted,
    )
    return SimulationSummary(
        first_day=start,
        last_day=start + dt.timedelta(days=days - 1),
        days=days,
        customers=customers,
        rows=rows,
        files=files,
        planted=planted,
        landing=out,
        truth_dir=truth_dir,
    )


DEFINITIONS = {
    "malformed": "rows with exactly one problem, by reason: a required value empty, a value "
    "of a typed column (timestamp, money, integer, boolean, enum) that does not parse, or a "
    "quantity below 1; each is a copy of a clean row in the same file",
    "duplicate_rows": "exact copies of an earlier row, re-exported in a later day's file",
    "late_updates": "valid rows re-exporting a record already exported on an earlier day, "
    "with a later updated_at (for products: the price changes)",
    "cancelled_orders": "orders whose latest exported status is cancelled (refunded alike)",
    "invalid_phone_numbers": "customers whose phone phonenumbers.is_valid_number rejects "
    "(parsed with region US); kept and flagged, not rejected",
}


def _make_tables(
    people: Customers, clock: Clock, rngs: dict[str, np.random.Generator]
) -> tuple[dict[str, pl.DataFrame], dict[str, Spell], Pairs, np.ndarray, dict]:
    """Every entity's rows (the orders' as numbers, with the spells that make them text), the
    purchase truth, each customer's consent profile and the counts planted.json reports."""
    prices = make_prices(clock, rngs["prices"])
    pairs, orders = make_demand(people, prices, clock, rngs["demand"])
    order_exports = make_order_exports(people, orders, clock, rngs["orders"])
    profile, consented_at = consent_profiles(people, rngs["consents"])
    legacy = make_legacy_sms(
        people,
        orders,
        order_exports.shipments,
        profile >= TRANSACTIONAL,
        profile == MARKETING,
        clock,
        rngs["legacy"],
    )
    customer_rows, customer_updates = customer_table(people, clock, rngs["customer_rows"])
    tables = {
        "customers": customer_rows,
        "sms_consents": consent_table(
            people, profile, consented_at, legacy, clock, rngs["consents"]
        ),
        "products": product_table(prices, clock, rngs["products"]),
        "orders": order_exports.orders,
        "order_lines": order_exports.order_lines,
        "fulfillment_events": order_exports.fulfillment_events,
        "sms_delivery_receipts": legacy.receipts,
        "inbound_messages": legacy.inbound,
        "link_clicks": legacy.clicks,
    }
    counts = {
        "orders": order_exports.stats,
        "customer_updates": customer_updates,
        "legacy_messages": legacy.messages,
        "unhandled_opt_outs": legacy.unhandled_opt_outs,
    }
    return tables, order_exports.spell, pairs, profile, counts


def _refuse_other_worlds(out: Path, truth_dir: Path, world: dict) -> None:
    existing = [e for e in ENTITIES if (out / e).is_dir() and any((out / e).iterdir())]
    if not existing:
        return
    planted = truth_dir / "planted.json"
    if planted.is_file() and json.loads(planted.read_text(encoding="utf-8")).get("world") == world:
        return  # the same world again: every file is rewritten with the same bytes
    raise FileExistsError(
        f"{out} already holds exports ({', '.join(existing)}) from another world or source; "
        "simulate into an empty landing folder"
    )


def _plant_mess(
    tables: dict[str, pl.DataFrame], last_day: int, rng: np.random.Generator
) -> tuple[dict[str, pl.DataFrame], dict[str, dict[str, int]], dict[str, int]]:
    sources: dict[str, np.ndarray] = {}
    duplicates = dict.fromkeys(tables, 0)
    for entity in ("customers", "sms_consents", "orders", "fulfillment_events"):
        frame = tables[entity]
        eligible = None
        if entity == "orders":
            # A re-exported order is its first version, sent again with its lines.
            first = frame.select(pl.col("_day") == pl.col("_day").min().over("_order"))
            eligible = first.to_series().to_numpy()
        rows, target = mess.duplicate_sources(
            frame, DUPLICATE_SHARE[entity], last_day, rng, eligible
        )
        sources[entity] = rows
        tables[entity] = mess.add_duplicates(frame, rows, target)
        duplicates[entity] = len(rows)
        if entity == "orders":
            chosen = pl.DataFrame(
                {"_order": frame["_order"].gather(rows), "_target": pl.Series(target)}
            )
            lines = (
                tables["order_lines"]
                .with_row_index("_row")
                .join(chosen, on="_order", how="inner", maintain_order="left")
            )
            line_rows = lines["_row"].to_numpy()
            sources["order_lines"] = line_rows
            tables["order_lines"] = mess.add_duplicates(
                tables["order_lines"], line_rows, lines["_target"].to_numpy()
            )
            duplicates["order_lines"] = len(line_rows)

    malformed: dict[str, dict[str, int]] = {}
    for entity in ENTITIES:
        frame = tables[entity]
        excluded = np.zeros(frame.height, dtype=bool)
        excluded[sources.get(entity, np.zeros(0, dtype=np.int64))] = True
        tables[entity], counts = mess.add_malformed(frame, entity, rng, excluded)
        malformed[entity] = dict(sorted(counts.items()))
    return tables, malformed, duplicates
