"""Simulated time: epoch seconds, local UTC offsets, ISO text and the export day of a moment.

Everything inside the simulator is integer seconds since the epoch (UTC) in numpy arrays; text
is produced once, at the end, so that vectorized arithmetic stays cheap.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

import numpy as np
import polars as pl

DAY = 86_400
HOUR = 3_600
MINUTE = 60

# How a timestamp is spelled in an export: "Z", "+00:00", or the local offset ("-05:00").
STYLE_Z, STYLE_UTC_OFFSET, STYLE_LOCAL = 0, 1, 2


def epoch(day: dt.date) -> int:
    """Seconds since the epoch at the UTC midnight that starts ``day``."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


@dataclass(frozen=True)
class Clock:
    start: dt.date
    days: int
    zones: tuple[str, ...]
    first_hour: int
    # offsets[zone, hour - first_hour]: seconds east of UTC, so DST is exact to the hour.
    offsets: np.ndarray

    @property
    def t0(self) -> int:
        return epoch(self.start)

    @property
    def t_end(self) -> int:
        """The first second after the simulated window."""
        return self.t0 + self.days * DAY

    def day_index(self, t: np.ndarray) -> np.ndarray:
        """Day of the window (0 = start) a UTC moment falls on; negative before the start."""
        return (np.asarray(t, dtype=np.int64) - self.t0) // DAY

    def export_day(self, t: np.ndarray) -> np.ndarray:
        """The file a record lands in: its UTC day, with everything older in day 0's backfill."""
        return np.maximum(self.day_index(t), 0).astype(np.int32)

    def offset(self, zone: np.ndarray, t: np.ndarray) -> np.ndarray:
        hour = np.asarray(t, dtype=np.int64) // HOUR - self.first_hour
        hour = np.clip(hour, 0, self.offsets.shape[1] - 1)
        return self.offsets[np.asarray(zone), hour]

    def at_local(self, zone: np.ndarray, local_day: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """UTC seconds of ``seconds`` after local midnight of ``local_day`` (days since epoch)."""
        guess = np.asarray(local_day, dtype=np.int64) * DAY + np.asarray(seconds, dtype=np.int64)
        # Two passes so a moment just across a DST change gets the offset in force at it.
        t = guess - self.offset(zone, guess)
        return guess - self.offset(zone, t)

    def local_day(self, zone: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Local calendar day (days since epoch) of a UTC moment."""
        t = np.asarray(t, dtype=np.int64)
        return (t + self.offset(zone, t)) // DAY


def make_clock(
    start: dt.date, days: int, zones: tuple[str, ...], lookback_days: int, lookahead_days: int
) -> Clock:
    t0 = epoch(start)
    first_hour = (t0 - lookback_days * DAY) // HOUR
    last_hour = (t0 + (days + lookahead_days) * DAY) // HOUR
    hours = np.arange(first_hour, last_hour + 1, dtype=np.int64) * HOUR
    utc = pl.from_epoch(pl.Series(hours), time_unit="s")
    offsets = np.empty((len(zones), len(hours)), dtype=np.int64)
    for i, zone in enumerate(zones):
        local = utc.dt.replace_time_zone("UTC").dt.convert_time_zone(zone)
        offsets[i] = (local.dt.replace_time_zone(None) - utc).dt.total_seconds().to_numpy()
    return Clock(start, days, zones, int(first_hour), offsets)


def _offset_spelling(offset: int) -> str:
    sign = "-" if offset < 0 else "+"
    return f"{sign}{abs(offset) // HOUR:02d}:{abs(offset) % HOUR // MINUTE:02d}"


@cache
def _times_of_day() -> pl.Series:
    """Every second of a day as text, 00:00:00 to 23:59:59."""
    return pl.select(
        pl.from_epoch(pl.Series(np.arange(DAY)), time_unit="s").dt.strftime("%H:%M:%S")
    ).to_series()


def iso_text(
    t: np.ndarray,
    style: np.ndarray,
    offset: np.ndarray,
    missing: np.ndarray | None = None,
) -> pl.Series:
    """ISO 8601 text of UTC seconds, each spelled in its style; null where ``missing``."""
    t = np.asarray(t, dtype=np.int64)
    style = np.asarray(style)
    offset = np.where(style == STYLE_LOCAL, np.asarray(offset, dtype=np.int64), 0)
    if len(t) == 0:
        return pl.Series("text", [], dtype=pl.String)
    # Text is looked up by day, second of the day and suffix rather than formatted moment by
    # moment: tens of millions of timestamps in a large world.
    wall = t + offset
    day, second = wall // DAY, wall % DAY
    first, last = int(day.min()), int(day.max())
    if last - first > len(t):  # moments years apart: spell only the days that occur
        days, day = np.unique(day, return_inverse=True)
    else:
        days, day = np.arange(first, last + 1), day - first
    dates = pl.select(
        pl.from_epoch(pl.Series(days * DAY), time_unit="s").dt.strftime("%Y-%m-%dT")
    ).to_series()
    offsets, which = np.unique(offset, return_inverse=True)
    suffixes = pl.Series(["Z", "+00:00", *(_offset_spelling(v) for v in offsets.tolist())])
    suffix = np.where(style == STYLE_Z, 0, np.where(style == STYLE_UTC_OFFSET, 1, 2 + which))
    text = pl.concat_str(
        pl.lit(dates.gather(day)),
        pl.lit(_times_of_day().gather(second)),
        pl.lit(suffixes.gather(suffix)),
    )
    if missing is not None:
        text = pl.when(~pl.lit(pl.Series(missing, dtype=pl.Boolean))).then(text)
    return pl.select(text.alias("text")).to_series()


def styles(rng: np.random.Generator, n: int, z: float, utc: float, local: float) -> np.ndarray:
    """Draw how each of ``n`` timestamps is spelled, with the given weights."""
    p = np.array([z, utc, local], dtype=float)
    return rng.choice(3, size=n, p=p / p.sum()).astype(np.int8)
