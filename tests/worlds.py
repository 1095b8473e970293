"""Small simulated worlds for tests: ingest and dbt in this process, fast and real."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from dbt.cli.main import dbtRunner

from pipelines.experiments.spec import load_experiments
from pipelines.experiments.tables import replace_raw_tables
from pipelines.ingest import ingest_partition
from pipelines.landing import ENTITIES
from pipelines.project import DBT_DIR
from pipelines.settings import get_experiments_dir, get_settings
from pipelines.simulator import simulate
from pipelines.warehouse import Warehouse


class Dbt:
    """dbt in this process, parsed once: each `dbt` command would parse the project again (a
    new `as_of` invalidates partial parsing), which costs more than these builds. Parse-time
    uses of `as_of` (the Python model's config) keep the value it was parsed with; the models
    rebuilt later are SQL, rendered with each call's value."""

    def __init__(self, data: Path, as_of: dt.datetime):
        self.flags = [
            "--project-dir",
            str(DBT_DIR),
            "--profiles-dir",
            str(DBT_DIR),
            "--target-path",
            str(data / "dbt_target"),
            "--log-path",
            str(data / "dbt_logs"),
            "--quiet",
        ]
        parsed = dbtRunner().invoke(["parse", *self.flags, *self._vars(as_of)])
        assert parsed.success, parsed.exception
        self.manifest = parsed.result

    @staticmethod
    def _vars(as_of: dt.datetime) -> list[str]:
        return ["--vars", json.dumps({"as_of": as_of.isoformat()})]

    def __call__(self, *args: str, as_of: dt.datetime) -> None:
        runner = dbtRunner(manifest=self.manifest)
        done = runner.invoke([*args, *self.flags, *self._vars(as_of)])
        assert done.success, done.exception or done.result


def ingest_days(warehouse: Warehouse, days: list[dt.date]) -> None:
    with warehouse.connect() as con:
        for day in days:
            for entity in ENTITIES:
                ingest_partition(con, warehouse.landing_dir, entity, day)


@contextlib.contextmanager
def live_world(
    data: Path,
    *,
    seed: int,
    customers: int,
    start: dt.date,
    first_build: dt.datetime,
    sends: list[dt.datetime],
    as_of: dt.datetime,
    marts: list[str],
    rebuild_daily: bool = False,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A shop simulated up to `as_of`: ingested and built as of `first_build`, texted through
    the simulated world at each of `sends` (it answers with receipts, clicks, replies and
    orders), the rest ingested, and `marts` rebuilt as of `as_of`. Yields a connection.
    `rebuild_daily` also ingests each day and rebuilds the message queue as of the midnight
    before that day's sends, as the daily job does, so new orders get their texts too.

    Without Dagster and without dbt's tests (the daily build and tests/test_pipeline.py run
    those), to stay fast."""
    from pipelines.sender.cli import send_at

    mp = pytest.MonkeyPatch()
    mp.setenv("POSTPURCHASE_DATA_DIR", str(data))
    mp.setenv("SMS_PROVIDER", "simulator")
    mp.setenv("SEND_RATE_PER_SECOND", "50")
    try:
        settings = get_settings()
        warehouse = Warehouse(settings.data_dir)
        days = [start + dt.timedelta(days=i) for i in range((as_of.date() - start).days)]
        simulate(
            settings.landing_dir,
            days=len(days),
            customers=customers,
            seed=seed,
            start=start,
            truth_dir=settings.simulator_dir,
        )
        with warehouse.connect() as con:
            replace_raw_tables(con, load_experiments(get_experiments_dir()))
        ingest_days(warehouse, [d for d in days if d < first_build.date()])
        dbt = Dbt(data, first_build)
        only_models = ["--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]
        dbt("build", *only_models, as_of=first_build)
        built = first_build
        for at in sends:
            midnight = dt.datetime.combine(at.date(), dt.time(), tzinfo=dt.UTC)
            if rebuild_daily and midnight > built:
                ingest_days(warehouse, [d for d in days if built.date() <= d < at.date()])
                dbt("run", "--select", "+message_candidates", as_of=midnight)
                built = midnight
            send_at(at)
        ingest_days(warehouse, [d for d in days if d >= built.date()])
        dbt("run", "--select", *marts, as_of=as_of)
        with warehouse.connect() as con:
            yield con
    finally:
        mp.undo()
