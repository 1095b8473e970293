"""The mess real exports have, planted on purpose and counted exactly.

Two kinds, kept apart so every count is unambiguous:

- **duplicates**: an exact copy of a row re-exported in a later day's file;
- **malformed rows**: a copy of a clean row, in the same file, with exactly one value broken in
  one of the ways the ingest names (``REASONS``). The clean row stays, so the world behind the
  files is intact and the ingest's rejects can be compared with ``planted.json`` one for one.

A row that is duplicated is never the source of a malformed copy, and no copy is copied again.
A malformed copy names its broken cell by number (``_bad``, see ``bad_cells``); the bad value is
written into it with the rest of its file (``break_cells``), so copies need no text of their own.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl

REASONS = (
    "missing value",
    "invalid timestamp",
    "invalid number",
    "invalid integer",
    "invalid boolean",
    "invalid value",
    "non-positive quantity",
)

BAD_VALUES: dict[str, tuple[str | None, ...]] = {
    "missing value": (None,),
    "invalid timestamp": (
        "2026-13-45T99:00",
        "31/08/2026 25:61",
        "not a date",
        "2026-02-30T10:00:00Z",
    ),
    "invalid number": ("12,3x", "1O.00", "abc"),
    "invalid integer": ("two", "3x", "one"),
    "invalid boolean": ("maybe", "sometimes", "unknown"),
    "non-positive quantity": ("0", "-1"),
}
# An enum value outside the contract, per column.
BAD_ENUMS = {
    "status": ("lost_in_space", "maybe_later", "exploded"),
    "fulfillment_type": ("teleport",),
    "scope": ("promotional",),
}

# Where each entity's malformed rows break: (reason, column).
PLANTS: dict[str, tuple[tuple[str, str], ...]] = {
    "customers": (
        ("missing value", "created_at"),
        ("invalid timestamp", "created_at"),
        ("invalid timestamp", "updated_at"),
    ),
    "sms_consents": (
        ("missing value", "status"),
        ("missing value", "scope"),
        ("invalid timestamp", "occurred_at"),
        ("invalid value", "status"),
        ("invalid value", "scope"),
    ),
    "products": (
        ("missing value", "title"),
        ("invalid number", "price"),
        ("invalid boolean", "is_consumable"),
        ("invalid boolean", "needs_setup"),
        ("invalid integer", "usage_days"),
        ("invalid timestamp", "updated_at"),
    ),
    "orders": (
        ("missing value", "customer_id"),
        ("missing value", "total_amount"),
        ("invalid timestamp", "ordered_at"),
        ("invalid timestamp", "updated_at"),
        ("invalid number", "total_amount"),
        ("invalid value", "fulfillment_type"),
    ),
    "order_lines": (
        ("missing value", "product_id"),
        ("invalid integer", "quantity"),
        ("non-positive quantity", "quantity"),
        ("invalid number", "unit_price"),
    ),
    "fulfillment_events": (
        ("missing value", "order_id"),
        ("invalid timestamp", "occurred_at"),
        ("invalid timestamp", "estimated_delivery_at"),
        ("invalid value", "status"),
    ),
    "sms_delivery_receipts": (
        ("missing value", "status"),
        ("invalid timestamp", "occurred_at"),
        ("invalid value", "status"),
        ("invalid integer", "units"),
        ("invalid number", "total_amount"),
    ),
    "inbound_messages": (
        ("missing value", "from_number"),
        ("invalid timestamp", "received_at"),
    ),
    "link_clicks": (
        ("missing value", "short_code"),
        ("invalid timestamp", "clicked_at"),
    ),
}

MALFORMED_SHARE = 0.005
ORIGINAL, MALFORMED, DUPLICATE = 0, 1, 2


def malformed_count(entity: str, rows: int) -> int:
    """About 0.5% of an entity's rows, but at least one per reason the entity can show, so
    every reject reason appears in even the smallest world."""
    if rows == 0:
        return 0
    reasons = {reason for reason, _ in PLANTS[entity]}
    return max(len(reasons), round(MALFORMED_SHARE * rows))


def bad_cells(entity: str) -> list[tuple[str, str | None]]:
    """Every (column, bad value) a malformed row of ``entity`` can carry; ``_bad`` numbers them."""
    return [
        (column, value)
        for reason, column in PLANTS[entity]
        for value in _bad_values(reason, column)
    ]


def _bad_values(reason: str, column: str) -> tuple[str | None, ...]:
    return BAD_ENUMS[column] if reason == "invalid value" else BAD_VALUES[reason]


def _first_cells(entity: str) -> dict[tuple[str, str], int]:
    """Where each (reason, column) of ``entity`` starts in ``bad_cells``."""
    first, code = {}, 0
    for reason, column in PLANTS[entity]:
        first[reason, column] = code
        code += len(_bad_values(reason, column))
    return first


def break_cells(frame: pl.DataFrame, entity: str) -> pl.DataFrame:
    """Write each malformed row's bad value into its broken cell."""
    if "_bad" not in frame.columns or frame["_bad"].null_count() == frame.height:
        return frame
    broken = frame["_bad"].is_not_null().arg_true()
    code = frame["_bad"].gather(broken).to_numpy()
    cells = bad_cells(entity)
    column_of = np.array([column for column, _ in cells])[code]
    value = pl.Series([v for _, v in cells], dtype=pl.String).gather(code)
    fixed = []
    for column in dict.fromkeys(column_of.tolist()):
        here = column_of == column
        fixed.append(
            frame[column].clone().scatter(broken.filter(pl.Series(here)), value.filter(here))
        )
    return frame.with_columns(fixed)


def duplicate_sources(
    frame: pl.DataFrame,
    share: float,
    last_day: int,
    rng: np.random.Generator,
    eligible: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows to re-export and the later day each copy lands on."""
    ok = (frame["_sub"].to_numpy() == ORIGINAL) & (frame["_day"].to_numpy() < last_day)
    if eligible is not None:
        ok &= eligible
    candidates = np.flatnonzero(ok)
    chosen = np.sort(candidates[rng.random(len(candidates)) < share])
    lag = rng.choice([1, 1, 1, 2, 3], size=len(chosen))
    target = np.minimum(frame["_day"].to_numpy()[chosen] + lag, last_day)
    return chosen, target.astype(np.int32)


def add_duplicates(frame: pl.DataFrame, rows: np.ndarray, days: np.ndarray) -> pl.DataFrame:
    copies = frame[rows].with_columns(
        _day=pl.Series(days, dtype=pl.Int32), _sub=pl.lit(DUPLICATE, dtype=pl.Int8)
    )
    return pl.concat([frame, copies])


def add_malformed(
    frame: pl.DataFrame,
    entity: str,
    rng: np.random.Generator,
    excluded: np.ndarray,
) -> tuple[pl.DataFrame, Counter[str]]:
    """Append malformed copies of clean, never-duplicated rows, their broken cells named in
    ``_bad``; count them by reason."""
    frame = frame.with_columns(_bad=pl.lit(None, dtype=pl.Int16))
    candidates = np.flatnonzero((frame["_sub"].to_numpy() == ORIGINAL) & ~excluded)
    n = min(malformed_count(entity, frame.height), len(candidates))
    counts: Counter[str] = Counter()
    if n == 0:
        return frame, counts
    chosen = np.sort(rng.choice(candidates, size=n, replace=False))
    reasons = sorted({reason for reason, _ in PLANTS[entity]}, key=REASONS.index)
    # Reasons take turns, so each shows up; the column within a reason is drawn.
    reason_of = rng.permutation(np.arange(n) % len(reasons))
    first_cell = _first_cells(entity)
    copies = []
    for r, reason in enumerate(reasons):
        rows_r = chosen[reason_of == r]
        columns = [column for kind, column in PLANTS[entity] if kind == reason]
        column_of = rng.integers(0, len(columns), size=len(rows_r))
        for c, column in enumerate(columns):
            rows = rows_r[column_of == c]
            if len(rows) == 0:
                continue
            options = _bad_values(reason, column)
            bad = first_cell[reason, column] + rng.integers(0, len(options), size=len(rows))
            copies.append(
                frame[rows].with_columns(
                    _sub=pl.lit(MALFORMED, dtype=pl.Int8), _bad=pl.Series(bad, dtype=pl.Int16)
                )
            )
            counts[reason] += len(rows)
    return pl.concat([frame, *copies]), counts
