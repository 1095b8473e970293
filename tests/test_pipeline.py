"""The simulated shop through the real daily job: Dagster, the ingest and a real `dbt build`."""

import json

import duckdb
import pytest

from pipelines.landing import ENTITIES
from pipelines.runner import days_between, prepare_environment, run_days
from pipelines.settings import get_settings
from pipelines.simulator import simulate
from pipelines.summary import summarize
from pipelines.warehouse import Warehouse


def raw_snapshot(path):
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [f"raw.{name}" for name in ENTITIES] + ["ops.ingest_rejects", "ops.ingest_files"]
        return {t: con.execute(f"select * from {t} order by all").fetchall() for t in tables}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    mp = pytest.MonkeyPatch()
    mp.setenv("POSTPURCHASE_DATA_DIR", str(data))
    mp.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    settings = get_settings()
    sim = simulate(
        settings.landing_dir, days=5, customers=150, seed=11, truth_dir=settings.simulator_dir
    )
    instance = prepare_environment(settings)
    days = days_between(sim.first_day, sim.last_day)
    runs = run_days(instance, days, data / "logs" / "run.log")
    yield settings, sim, instance, days, runs
    mp.undo()


def test_every_day_ran_and_models_were_built_at_the_end(world):
    _, _, _, days, runs = world
    # The catch-up before the last day is one ingest-only run; the last day builds.
    assert [(r.day, r.days, r.built_models) for r in runs] == [
        (days[-2], len(days) - 1, False),
        (days[-1], 1, True),
    ]


def test_every_entity_is_loaded_and_planted_rejects_are_found(world):
    settings, sim, *_ = world
    summary = summarize(Warehouse(settings.data_dir))
    assert all(summary.raw_rows[e] > 0 for e in ENTITIES), summary.raw_rows
    planted = json.loads((settings.simulator_dir / "planted.json").read_text())["malformed"]
    expected = {(e, r): n for e, reasons in planted.items() for r, n in reasons.items()}
    assert summary.rejects == expected
    assert summary.invalid_phones > 0


def test_counts_add_up_per_file(world):
    settings, *_ = world
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        bad = con.execute(
            "select source_file from ops.ingest_files where rows_in <> loaded + rejected"
        ).fetchall()
        per_file = con.execute(
            """select f.source_file, f.rejected, count(r.source_line)
               from ops.ingest_files f
               left join ops.ingest_rejects r using (source_file)
               group by all having f.rejected <> count(r.source_line)"""
        ).fetchall()
    assert bad == [] and per_file == []


def test_dbt_staging_models_match_raw(world):
    settings, *_ = world
    summary = summarize(Warehouse(settings.data_dir))
    assert summary.models["staging.stg_shop__orders"] == summary.raw_rows["orders"]
    assert summary.models["staging.stg_shop__customers"] == summary.raw_rows["customers"]


def test_running_every_day_again_changes_nothing(world):
    settings, _, instance, days, _ = world
    before = raw_snapshot(settings.warehouse_path)
    run_days(instance, days, settings.data_dir / "logs" / "run.log")
    assert raw_snapshot(settings.warehouse_path) == before


def test_sending_after_the_run_and_why_explains_each_outcome(world, monkeypatch):
    """What `postpurchase run` does after its build, then `postpurchase why` on the result."""
    import datetime as dt

    from click.testing import CliRunner

    from pipelines.cli import main
    from pipelines.sender.cli import send_at

    settings, sim, *_ = world
    monkeypatch.setenv("SMS_PROVIDER", "simulator")
    monkeypatch.setenv("SEND_RATE_PER_SECOND", "50")
    at = dt.datetime.combine(sim.last_day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    report = send_at(at)
    assert report.sent > 0 and report.failed == 0
    # The simulated world answered: receipts land as files for the next day's ingest.
    assert list((settings.landing_dir / "sms_delivery_receipts").glob("*/sim-*.parquet"))

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        examples = dict(
            con.execute(
                """select action, any_value(customer_id) from ops.send_decisions
                   where action in ('send', 'suppress', 'defer') group by 1"""
            ).fetchall()
        )
    assert {"send", "suppress"} <= set(examples)
    for action, customer in examples.items():
        result = CliRunner().invoke(main, ["why", customer])
        assert result.exit_code == 0, result.output
        assert customer in result.output
        assert {"send": "sent", "suppress": "suppress", "defer": "defer"}[action] in result.output


def test_dbt_unit_tests_pass(world, tmp_path):
    """The daily build leaves dbt's unit tests out (they test SQL, not data): they run here."""
    import subprocess

    from pipelines.project import DBT_DIR, DBT_EXECUTABLE

    settings, *_ = world
    with Warehouse(settings.data_dir).lock():
        done = subprocess.run(
            [
                DBT_EXECUTABLE,
                "test",
                "--select",
                "test_type:unit",
                "--project-dir",
                str(DBT_DIR),
                "--profiles-dir",
                str(DBT_DIR),
                "--target-path",
                str(tmp_path / "target"),
            ],
            capture_output=True,
            text=True,
        )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "PASS=" in done.stdout and " ERROR=0 " in done.stdout
