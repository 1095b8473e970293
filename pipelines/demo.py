"""The demo's story: a simulated shop with history goes live and texts its customers.

1. The shop's exports for every simulated day are written to landing.
2. The history before going live is caught up: every day ingested, the models built once.
3. Each live day, the sender texts what is due every hour through the simulated world (which
   answers with receipts, clicks, replies and the orders the texts cause, as landing files),
   and at the end of the day the daily job ingests the day, answers included, and rebuilds the
   models as of midnight: exactly what the hourly and daily schedules do in production.
4. Follow-up: the sender pauses while the world keeps answering (a reorder can come weeks
   after a reminder); the days are ingested and the models built once at the end, so the
   experiments' 30-day windows are complete and their verdicts mean something.

Only some days are live because a daily run costs 20-30 s of dbt and Dagster start-up
whatever the shop's size: 60 live days would take half an hour.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from pipelines.runner import DayRun, run_days
from pipelines.sender.run import SendConfig, SendReport, send_due
from pipelines.warehouse import Warehouse


@dataclass
class LiveDay:
    day: dt.date
    sends: SendReport  # the day's hourly runs together
    build: DayRun


def split_days(
    days: list[dt.date], live_days: int, follow_up_days: int
) -> tuple[list[dt.date], list[dt.date], list[dt.date]]:
    """(history, live, follow-up): at least one day of history, then the live days, then the
    days in which the world keeps answering while the sender is paused."""
    if live_days < 1 or follow_up_days < 0:
        raise ValueError("--live-days must be at least 1 and --follow-up-days at least 0")
    history = len(days) - live_days - follow_up_days
    if history < 1:
        raise ValueError(
            f"{len(days)} days cannot hold {live_days} live and {follow_up_days} follow-up "
            "days after at least one day of history (the models are built on it before the "
            "first send)"
        )
    return days[:history], days[history : history + live_days], days[history + live_days :]


def hours_of(day: dt.date) -> list[dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return [start + dt.timedelta(hours=h) for h in range(24)]


def run_live_days(
    instance: dg.DagsterInstance,
    days: list[dt.date],
    warehouse: Warehouse,
    provider_for: Callable[[Callable[[], dt.datetime]], object],
    config: SendConfig,
    log_path: Path,
    on_day: Callable[[LiveDay], None] | None = None,
) -> list[LiveDay]:
    """Send every hour of each day from the models as of its start, then run the daily job.

    One provider serves all the hours (the simulator loads its world once); it is flushed
    before the day's ingest so the world's answers from that day are on disk to be loaded.
    """
    now: list[dt.datetime] = []
    provider = provider_for(lambda: now[-1])
    done = []
    try:
        for day in days:
            sends = SendReport(hours_of(day)[0], provider.name)
            for at in hours_of(day):
                now.append(at)
                sends.add(send_due(warehouse, provider, at, config=config))
            _flush(provider)
            (build,) = run_days(instance, [day], log_path, build_every_day=True)
            live = LiveDay(day, sends, build)
            done.append(live)
            if on_day:
                on_day(live)
    finally:
        _flush(provider)
    return done


def _flush(provider: object) -> None:
    close = getattr(provider, "close", None)
    if callable(close):
        close()
