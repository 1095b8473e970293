"""Landing tables in the making: contract columns as text plus a few private bookkeeping ones.

Private columns start with an underscore and never reach a file:
``_t`` the moment the row describes (it decides the export day), ``_k`` a tie-breaker that
keeps row order deterministic, ``_day`` the export day, ``_sub`` 0 for an original row, 1 for a
malformed copy, 2 for a re-exported duplicate.

The big entities (orders, their lines, tracking events: tens of millions of rows in a large
world, several gigabytes as text) stay numbers until written: their frames hold the private
columns plus the numbers their text is made from (``numbers_table``), and a ``Spell`` turns rows
into text only as their days' files are written. They choose and order their rows on those
numbers (``window_rows``, ``latest_rows``) just as ``within_window`` and ``latest_per_day`` do
for frames of text.
"""

from __future__ import annotations

from collections.abc import Callable

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


# Turns rows of a numbers_table into the entity's contract columns, row for row.
Spell = Callable[[pl.DataFrame], pl.DataFrame]


def table(
    entity: str,
    columns: dict[str, pl.Series | str | None],
    t: np.ndarray,
    tie: np.ndarray | None = None,
) -> pl.DataFrame:
    """A frame with every contract column of ``entity`` as text, in contract order."""
    return text_frame(entity, columns, len(t)).with_columns(
        _t=pl.Series(np.asarray(t, dtype=np.int64)),
        _k=pl.Series(np.arange(len(t)) if tie is None else np.asarray(tie, dtype=np.int64)),
    )


def text_frame(entity: str, columns: dict[str, pl.Series | str | None], n: int) -> pl.DataFrame:
    """``n`` rows of every contract column of ``entity`` as text, in contract order."""
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


def window_rows(t: np.ndarray, tie: np.ndarray, clock: Clock) -> np.ndarray:
    """The rows ``within_window`` keeps, in its order: indices into ``t`` and ``tie``."""
    t = np.asarray(t, dtype=np.int64)
    inside = np.flatnonzero(t < clock.t_end)
    return inside[np.lexsort((np.asarray(tie)[inside], t[inside]))]


def numbers_table(
    t: np.ndarray, k: np.ndarray, clock: Clock, numbers: dict[str, np.ndarray]
) -> pl.DataFrame:
    """The private columns of rows chosen and put in order by ``window_rows`` (``k`` their
    position in that order, as ``within_window`` numbers them), and the ``numbers`` their text
    will be spelled from, each as a private column ``_<name>``."""
    return pl.DataFrame(
        {f"_{name}": values for name, values in numbers.items()}
        | {
            "_t": pl.Series(np.asarray(t, dtype=np.int64)),
            "_k": pl.Series(np.asarray(k, dtype=np.int64)),
            "_day": pl.Series(clock.export_day(t), dtype=pl.Int32),
            "_sub": pl.repeat(0, len(t), dtype=pl.Int8, eager=True),
        }
    )


def latest_rows(key: np.ndarray, day: np.ndarray) -> np.ndarray:
    """What ``latest_per_day`` keeps of rows in window order, by number: the positions of each
    record's last row of each export day, ascending."""
    order = np.lexsort((np.arange(len(key)), day, key))
    key, day = key[order], day[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (key[1:] != key[:-1]) | (day[1:] != day[:-1])
    return np.sort(order[last])


def latest_per_day(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """A daily export carries each changed record once, in its state at export time."""
    return (
        frame.sort(["_day", "_t", "_k"], maintain_order=True)
        .unique(subset=[key, "_day"], keep="last", maintain_order=True)
        .sort(["_t", "_k"], maintain_order=True)
    )
