"""Write the day files: one file per entity per day, in a format that changes week by week.

Shops change export tools; the ingest must not care. Each entity starts in its own format and
moves to the next one every week, so a few weeks exercise every format for every entity.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from pipelines.landing import ENTITIES, FORMATS, write_landing_file

FIRST_FORMAT = {
    "customers": "csv",
    "sms_consents": "jsonl",
    "products": "csv",
    "orders": "jsonl",
    "order_lines": "parquet",
    "fulfillment_events": "csv",
    "sms_delivery_receipts": "parquet",
    "inbound_messages": "csv",
    "link_clicks": "jsonl",
}
FORMAT_WEEKS = 7


def format_for(entity: str, day: int) -> str:
    first = FORMATS.index(FIRST_FORMAT[entity])
    return FORMATS[(first + day // FORMAT_WEEKS) % len(FORMATS)]


def split_by_day(frame: pl.DataFrame) -> dict[int, pl.DataFrame]:
    """Each day's rows in file order: the day's rows by time, each malformed copy right after
    its clean row, re-exported duplicates where their original sat."""
    ordered = frame.sort(["_day", "_k", "_sub"], maintain_order=True)
    return {
        int(day): part
        for (day,), part in ordered.partition_by("_day", as_dict=True, maintain_order=True).items()
    }


def write_day(
    landing: Path, day: dt.date, index: int, parts: dict[str, dict[int, pl.DataFrame]]
) -> dict[str, int]:
    """Write every entity's file for one day; returns rows written per entity."""
    written: dict[str, int] = {}
    for entity, by_day in parts.items():
        rows = by_day.get(index)
        if rows is None or rows.height == 0:
            continue
        frame = rows.select(ENTITIES[entity].column_names)
        name = f"{entity}-{day.isoformat()}"
        write_landing_file(frame, landing, entity, day, name, format_for(entity, index))
        written[entity] = frame.height
    return written
