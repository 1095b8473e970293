"""The landing contract: the canonical entities a shop (or the simulator) exports.

One definition serves the writers (simulator, importers), the ingest and the dbt sources, so a
column added here is added everywhere. Files live at
``<landing>/<entity>/<YYYY-MM-DD>/<name>.{csv,parquet,jsonl}`` and are immutable once written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

# Column kinds. Every landing column is read as text first and typed by the ingest, so a bad
# value becomes a reject with a reason rather than a reader crash.
TEXT = "text"
TIMESTAMP = "timestamp"  # ISO 8601 with offset, or UTC when naive
MONEY = "money"  # decimal amount; its currency is a sibling column
INTEGER = "integer"
BOOLEAN = "boolean"
PHONE = "phone"  # any format; normalized to E.164 with a validity flag

FORMATS = ("csv", "parquet", "jsonl")


@dataclass(frozen=True)
class Entity:
    name: str
    key: tuple[str, ...]
    columns: dict[str, str]
    required: tuple[str, ...] = ()
    # Values a column may take (after lowercasing); anything else is a reject.
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The column that orders versions of one record (latest wins); None for pure events.
    version_column: str | None = None
    # Numeric columns that must be greater than zero.
    positive: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)


ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in [
        Entity(
            name="customers",
            key=("customer_id",),
            columns={
                "customer_id": TEXT,
                "first_name": TEXT,
                "phone": PHONE,
                "email": TEXT,
                "created_at": TIMESTAMP,
                "postal_code": TEXT,
                "region": TEXT,
                "country": TEXT,
                "timezone": TEXT,
                "updated_at": TIMESTAMP,
            },
            required=("customer_id", "created_at"),
            version_column="updated_at",
        ),
        Entity(
            name="sms_consents",
            key=("customer_id", "occurred_at"),
            columns={
                "customer_id": TEXT,
                "occurred_at": TIMESTAMP,
                "phone": PHONE,
                "status": TEXT,
                "source": TEXT,
                "scope": TEXT,
            },
            required=("customer_id", "occurred_at", "status", "scope"),
            enums={
                "status": ("opted_in", "opted_out"),
                "scope": ("transactional", "marketing"),
            },
        ),
        Entity(
            name="products",
            key=("product_id",),
            columns={
                "product_id": TEXT,
                "title": TEXT,
                "category": TEXT,
                "price": MONEY,
                "currency": TEXT,
                "is_consumable": BOOLEAN,
                "usage_days": INTEGER,
                "needs_setup": BOOLEAN,
                "review_delay_days": INTEGER,
                "setup_url": TEXT,
                "updated_at": TIMESTAMP,
            },
            required=("product_id", "title"),
            version_column="updated_at",
        ),
        Entity(
            name="orders",
            key=("order_id",),
            columns={
                "order_id": TEXT,
                "customer_id": TEXT,
                "ordered_at": TIMESTAMP,
                "currency": TEXT,
                "total_amount": MONEY,
                "fulfillment_type": TEXT,
                "shipping_postal_code": TEXT,
                "shipping_region": TEXT,
                "shipping_city": TEXT,
                "shipping_country": TEXT,
                "status": TEXT,
                "updated_at": TIMESTAMP,
            },
            required=("order_id", "customer_id", "ordered_at", "currency", "total_amount"),
            enums={"fulfillment_type": ("physical", "digital")},
            version_column="updated_at",
        ),
        Entity(
            name="order_lines",
            key=("order_id", "line_id"),
            columns={
                "order_id": TEXT,
                "line_id": TEXT,
                "product_id": TEXT,
                "quantity": INTEGER,
                "unit_price": MONEY,
            },
            required=("order_id", "line_id", "product_id", "quantity"),
            positive=("quantity",),
        ),
        Entity(
            name="fulfillment_events",
            key=("shipment_id", "status", "occurred_at"),
            columns={
                "shipment_id": TEXT,
                "status": TEXT,
                "occurred_at": TIMESTAMP,
                "order_id": TEXT,
                "carrier": TEXT,
                "tracking_number": TEXT,
                "tracking_url": TEXT,
                "estimated_delivery_at": TIMESTAMP,
            },
            required=("shipment_id", "status", "occurred_at", "order_id"),
            enums={
                "status": (
                    "label_created",
                    "shipped",
                    "in_transit",
                    "out_for_delivery",
                    "delivered",
                    "failed_attempt",
                    "returned",
                )
            },
        ),
        Entity(
            name="sms_delivery_receipts",
            key=("message_uuid", "status", "occurred_at"),
            columns={
                "message_uuid": TEXT,
                "status": TEXT,
                "occurred_at": TIMESTAMP,
                "sequence": INTEGER,
                "error_code": TEXT,
                "units": INTEGER,
                "total_rate": MONEY,
                "total_amount": MONEY,
                "mcc": TEXT,
                "mnc": TEXT,
            },
            required=("message_uuid", "status", "occurred_at"),
            enums={"status": ("queued", "sent", "delivered", "undelivered", "failed", "rejected")},
        ),
        Entity(
            name="inbound_messages",
            key=("message_uuid",),
            columns={
                "message_uuid": TEXT,
                "from_number": PHONE,
                "to_number": PHONE,
                "text": TEXT,
                "received_at": TIMESTAMP,
                "intent": TEXT,
                # What the callback service did with it (absent from other sources): action is
                # opt_out, opt_in, help, score or text; a score names the survey it answered
                # and the loyalty points it earned (0 when that survey was already answered).
                "action": TEXT,
                "survey_key": TEXT,
                "score": INTEGER,
                "points": INTEGER,
            },
            required=("message_uuid", "from_number", "received_at"),
            enums={"action": ("opt_out", "opt_in", "help", "score", "text")},
        ),
        Entity(
            name="link_clicks",
            key=("click_id",),
            columns={
                "click_id": TEXT,
                "short_code": TEXT,
                "clicked_at": TIMESTAMP,
                "user_agent": TEXT,
            },
            required=("click_id", "short_code", "clicked_at"),
        ),
    ]
}


def partition_dir(landing: Path, entity: str, day: dt.date) -> Path:
    return Path(landing) / entity / day.isoformat()


def partition_files(landing: Path, entity: str, day: dt.date) -> list[Path]:
    """The readable files of one entity's day, in a stable order."""
    folder = partition_dir(landing, entity, day)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lstrip(".") in FORMATS)


def landed_days(landing: Path) -> list[dt.date]:
    """Every day that has a landing folder for any entity."""
    days: set[dt.date] = set()
    for entity in ENTITIES:
        root = Path(landing) / entity
        if not root.is_dir():
            continue
        for child in root.iterdir():
            try:
                days.add(dt.date.fromisoformat(child.name))
            except ValueError:
                continue
    return sorted(days)


def write_landing_file(
    frame: pl.DataFrame, landing: Path, entity: str, day: dt.date, name: str, fmt: str
) -> Path:
    """Write one landing file atomically (aside, then renamed) so a reader never sees half."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown landing format {fmt!r}; use one of {FORMATS}")
    folder = partition_dir(landing, entity, day)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.{fmt}"
    tmp = folder / f".{name}.{fmt}.tmp"
    if fmt == "csv":
        frame.write_csv(tmp)
    elif fmt == "parquet":
        frame.write_parquet(tmp)
    else:
        frame.write_ndjson(tmp)
    tmp.replace(target)
    return target
