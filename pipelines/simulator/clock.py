"""Simulated time: epoch seconds, local UTC offsets, ISO text and the export day of a moment.

Everything inside the simulator is integer seconds since the epoch (UTC) in numpy arrays; text
is produced once, at the end, so that vectorized arithmetic stays cheap.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

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


def _offset_spelling(offset: np.ndarray) -> dict[int, str]:
    spelled = {}
    for v in np.unique(offset).tolist():
        sign = "-" if v < 0 else "+"
        spelled[v] = f"{sign}{abs(v) // HOUR:02d}:{abs(v) % HOUR // MINUTE:02d}"
    return spelled


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
    frame = pl.DataFrame(
        {
            "wall": t + offset,
            "style": style,
            "offset": offset,
            "missing": np.zeros(len(t), dtype=bool) if missing is None else missing,
        }
    )
    wall = pl.from_epoch("wall", time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S")
    suffix = (
        pl.when(pl.col("style") == STYLE_Z)
        .then(pl.lit("Z"))
        .when(pl.col("style") == STYLE_UTC_OFFSET)
        .then(pl.lit("+00:00"))
        .otherwise(
            pl.col("offset").replace_strict(_offset_spelling(offset), return_dtype=pl.String)
        )
    )
    text = pl.when(~pl.col("missing")).then(pl.concat_str(wall, suffix))
    return frame.select(text.alias("text")).to_series()


def styles(rng: np.random.Generator, n: int, z: float, utc: float, local: float) -> np.ndarray:
    """Draw how each of ``n`` timestamps is spelled, with the given weights."""
    p = np.array([z, utc, local], dtype=float)
    return rng.choice(3, size=n, p=p / p.sum()).astype(np.int8)
