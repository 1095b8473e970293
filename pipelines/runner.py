"""Materialize the daily job in-process, day by day: what a data engineer runs without the UI.

By default the runs use an in-memory Dagster instance: the warehouse is the state that
matters, and recording every event in the UI's SQLite instance costs about ten seconds a day
on an ordinary disk. `record=True` writes them to the instance `make dev` reads instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from pipelines.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


# The progress bar tells the story; Dagster's own step log would bury it.
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


class RunFailed(Exception):
    """A day's run failed; the message names the step and the cause."""


@dataclass
class DayRun:
    day: dt.date  # the last day the run covered
    run_id: str
    built_models: bool
    seconds: float
    days: int = 1  # a catch-up run ingests several days at once


CATCH_UP_DAYS = 31  # days per ingest-only run; the ingest assets' backfill policy allows it


def prepare_environment(settings: Settings, *, record: bool = False) -> dg.DagsterInstance:
    """Point Dagster, dbt and the resources at this data directory, and open an instance."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["POSTPURCHASE_DATA_DIR"] = str(settings.data_dir)
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(ROOT / "dagster_instance.yaml", home / "dagster.yaml")
    from pipelines.project import prepare_manifest

    prepare_manifest()
    return dg.DagsterInstance.get() if record else dg.DagsterInstance.ephemeral()


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    if not failures:
        return "the run failed before any step started"
    event = failures[0]
    error = event.step_failure_data.error
    cause = error.cause.message.strip() if error and error.cause else ""
    message = error.message.strip() if error else "unknown error"
    return f"step {event.step_key}: {cause or message}"


def run_days(
    instance: dg.DagsterInstance,
    days: list[dt.date],
    log_path: Path,
    *,
    build_every_day: bool = False,
    on_day: Callable[[DayRun], None] | None = None,
) -> list[DayRun]:
    """Ingest each day in order; build the dbt models as of the last day (or of every day).

    Building the models only at the end of a catch-up gives the same warehouse as building
    them daily, since every model works as of its logical time from the full history, and it
    saves the dbt start-up (about ten seconds) on every day in between. The days before the
    last are then ingested a month per run, in one upsert per table.
    """
    from pipelines.definitions import defs
    from pipelines.defs.ingest.assets import ingest_asset_key
    from pipelines.landing import ENTITIES

    log_path.parent.mkdir(parents=True, exist_ok=True)
    job = defs.resolve_job_def("daily_ingest_job")
    ingest_only = [ingest_asset_key(e) for e in ENTITIES]
    if build_every_day:
        runs = [[day] for day in days]
    else:
        history = days[:-1]
        runs = [history[i : i + CATCH_UP_DAYS] for i in range(0, len(history), CATCH_UP_DAYS)]
        runs.append(days[-1:])
    done = []
    for i, span in enumerate(runs):
        build = build_every_day or i == len(runs) - 1
        started = time.monotonic()
        if len(span) == 1:
            partition = {"partition_key": span[0].isoformat(), "tags": {}}
        else:
            partition = {
                "tags": {
                    "dagster/asset_partition_range_start": span[0].isoformat(),
                    "dagster/asset_partition_range_end": span[-1].isoformat(),
                }
            }
        # dagster-dbt echoes every dbt event to stdout; keep it in the log, not on the screen.
        # Dagster warns that the job's assets batch days differently (a month of ingest, a
        # day of models); each run here is either ingest-only or a single day, as intended.
        with (
            open(log_path, "a") as log,
            contextlib.redirect_stdout(log),
            warnings.catch_warnings(),
        ):
            warnings.filterwarnings("ignore", message=".*varying BackfillPolicies.*")
            result = job.execute_in_process(
                partition_key=partition.get("partition_key"),
                instance=instance,
                asset_selection=None if build else ingest_only,
                raise_on_error=False,
                run_config=QUIET,
                tags={"postpurchase/source": "cli", **partition["tags"]},
            )
        if not result.success:
            raise RunFailed(
                f"{span[-1]}: {_failure_message(result)} (run {result.run_id}; log: {log_path})"
            )
        run = DayRun(span[-1], result.run_id, build, time.monotonic() - started, len(span))
        done.append(run)
        if on_day:
            on_day(run)
    return done
