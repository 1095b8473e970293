"""Landing tables in the making: contract columns as text plus a few private bookkeeping ones.

Private columns start with an underscore and never reach a file:
``_t`` the moment the row describes (it decides the export day), ``_k`` a tie-breaker that
keeps row order deterministic, ``_day`` the export day, ``_sub`` 0 for an original row, 1 for a
malformed copy, 2 for a re-exported duplicate.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.landing import ENTITIES
from pipelines.simulator.clock import Clock


def money_text(cents: np.ndarray) -> pl.Series:
    cents = pl.Series(np.asarray(cents, dtype=np.int64))
    return pl.select(
        pl.format(
            "{}.{}",
            (pl.lit(cents) // 100).cast(pl.String),
            (pl.lit(cents) % 100).cast(pl.String).str.zfill(2),
        )
    ).to_series()


def int_text(values: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(values, dtype=np.int64)).cast(pl.String)


def pick(values: tuple[str, ...] | list[str], index: np.ndarray) -> pl.Series:
    """``values[i]`` for each ``i`` in ``index``, as text."""
    return pl.Series(list(values), dtype=pl.String).gather(np.asarray(index, dtype=np.int64))


def table(
    entity: str,
    columns: dict[str, pl.Series | str | None],
    t: np.ndarray,
    tie: np.ndarray | None = None,
) -> pl.DataFrame:
    """A frame with every contract column of ``entity`` as text, in contract order."""
    n = len(t)
    data: dict[str, pl.Series] = {}
    for name in ENTITIES[entity].column_names:
        value = columns.get(name)
        if isinstance(value, pl.Series):
            if len(value) != n:
                raise ValueError(f"{entity}.{name}: {len(value)} values for {n} rows")
            data[name] = value.cast(pl.String).alias(name)
        else:
            data[name] = pl.repeat(value, n, dtype=pl.String, eager=True).alias(name)
    unknown = set(columns) - set(data)
    if unknown:
        raise ValueError(f"{entity}: columns outside the contract: {sorted(unknown)}")
    data["_t"] = pl.Series(np.asarray(t, dtype=np.int64))
    data["_k"] = pl.Series(np.arange(n) if tie is None else np.asarray(tie, dtype=np.int64))
    return pl.DataFrame(data)


def within_window(frame: pl.DataFrame, clock: Clock) -> pl.DataFrame:
    """Rows that happened before the window ended, with their export day, in a fixed order."""
    frame = frame.filter(pl.col("_t") < clock.t_end).sort(["_t", "_k"], maintain_order=True)
    day = clock.export_day(frame["_t"].to_numpy())
    return frame.with_columns(
        _day=pl.Series(day, dtype=pl.Int32),
        _k=pl.int_range(pl.len(), dtype=pl.Int64),
        _sub=pl.lit(0, dtype=pl.Int8),
    )


def latest_per_day(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """A daily export carries each changed record once, in its state at export time."""
    return (
        frame.sort(["_day", "_t", "_k"], maintain_order=True)
        .unique(subset=[key, "_day"], keep="last", maintain_order=True)
        .sort(["_t", "_k"], maintain_order=True)
    )
