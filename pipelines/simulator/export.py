"""Write the day files: one file per entity per day, in a format that changes week by week.

Shops change export tools; the ingest must not care. Each entity starts in its own format and
moves to the next one every week, so a few weeks exercise every format for every entity.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.landing import ENTITIES, FORMATS, write_landing_file
from pipelines.simulator.mess import break_cells
from pipelines.simulator.tables import Spell

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


class DayParts:
    """An entity's rows cut into export days. Rows are copied out (and, for an entity kept as
    numbers, spelled) only a few days' worth at a time, as the files are written in day order,
    so a large world never holds a second, sorted copy of its biggest entities."""

    BATCH_ROWS = 200_000  # rows made ready at once: fewer, larger steps than day by day

    def __init__(
        self,
        entity: str,
        frame: pl.DataFrame,
        order: np.ndarray,
        bounds: np.ndarray,
        spell: Spell | None = None,
    ) -> None:
        self.entity = entity
        self.frame = frame  # rows in any order: text, or numbers for ``spell``
        self.order = order  # row numbers in file order
        self.bounds = bounds  # day d's rows are order[bounds[d] : bounds[d + 1]]
        self.spell = spell
        self._batch: tuple[int, int, pl.DataFrame | None] = (0, 0, None)

    @property
    def days(self) -> int:
        return len(self.bounds) - 1

    def get(self, day: int) -> pl.DataFrame | None:
        """The day's rows as they go into its file, or None."""
        if not 0 <= day < self.days or self.bounds[day] == self.bounds[day + 1]:
            return None
        first, end, ready = self._batch
        if not first <= day < end or ready is None:
            first = day
            end = int(np.searchsorted(self.bounds, self.bounds[day] + self.BATCH_ROWS, "right"))
            end = min(max(end - 1, day + 1), self.days)
            ready = self._ready(self.order[self.bounds[first] : self.bounds[end]])
            self._batch = (first, end, ready)
        start = self.bounds[day] - self.bounds[first]
        return ready.slice(start, self.bounds[day + 1] - self.bounds[day])

    def _ready(self, rows: np.ndarray) -> pl.DataFrame:
        part = self.frame[rows]
        if self.spell is not None:
            part = self.spell(part).with_columns(part.select(pl.col("^_bad$")))
        return break_cells(part, self.entity).select(ENTITIES[self.entity].column_names)


def split_by_day(entity: str, frame: pl.DataFrame, spell: Spell | None = None) -> DayParts:
    """Each day's rows in file order: the day's rows by time, each malformed copy right after
    its clean row, re-exported duplicates where their original sat."""
    day, k, sub = (frame[c].to_numpy() for c in ("_day", "_k", "_sub"))
    order = np.lexsort((sub, k, day))
    days = int(day.max()) + 1 if len(day) else 0
    bounds = np.searchsorted(day[order], np.arange(days + 1))
    # Keep what the files are made of: the text (or the numbers to spell) and the broken cells.
    keep = [c for c in frame.columns if c not in ("_k", "_day", "_sub")]
    if spell is None:
        keep = [c for c in keep if c != "_t"]
    return DayParts(entity, frame.select(keep), order, bounds, spell)


def write_day(
    landing: Path, day: dt.date, index: int, parts: dict[str, DayParts]
) -> dict[str, int]:
    """Write every entity's file for one day; returns rows written per entity."""
    written: dict[str, int] = {}
    for entity, by_day in parts.items():
        frame = by_day.get(index)
        if frame is None:
            continue
        name = f"{entity}-{day.isoformat()}"
        write_landing_file(frame, landing, entity, day, name, format_for(entity, index))
        written[entity] = frame.height
    return written
