"""The reporting snapshot and the Streamlit pages on it (AppTest); the browser test shares the
small world built here (tests/test_dashboards_browser.py)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal
from streamlit.testing.v1 import AppTest

from dashboards import data, planning
from dashboards import format as fmt
from pipelines import reporting, stats
from pipelines.experiments.spec import SpecError, load_experiments
from pipelines.providers.base import mask_phone, mask_phones_in
from pipelines.reporting import (
    INFO_TABLE,
    MASK_PHONE_SQL,
    MASK_PHONES_IN_SQL,
    publish,
    read_info,
    snapshot_path,
)
from pipelines.warehouse import Warehouse

APP = Path(__file__).resolve().parents[1] / "dashboards" / "streamlit_app.py"
PAGES = {
    "app_pages/overview.py": "Overview",
    "app_pages/experiments.py": "Experiments",
    "app_pages/flow_health.py": "Flow health",
    "app_pages/replenishment.py": "Replenishment",
    "app_pages/planner.py": "Experiment planner",
}
# An unmasked phone number anywhere in text: + and 8 or more digits.
FULL_PHONE = re.compile(r"\+\d{8,}")


# --- one small world for every dashboard test ---------------------------------------------------


@dataclass(frozen=True)
class World:
    data_dir: Path
    last_day: dt.date  # the last day the daily job ran for
    phones: frozenset[str]  # every customer's number, E.164


_worlds: dict[Path, World] = {}


def build_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Simulate 5 days x 150 customers, run the daily job, send once through the simulated
    world, then run the next day (its answers ingested, models rebuilt, experiments judged,
    snapshot published): everything the pages read, from the real pipeline. Built once per
    session, shared by this module and the browser test."""
    base = tmp_path_factory.getbasetemp()
    if base in _worlds:
        return _worlds[base]
    from pipelines.runner import days_between, prepare_environment, run_days
    from pipelines.sender.cli import send_at
    from pipelines.settings import get_settings
    from pipelines.simulator import simulate

    data = tmp_path_factory.mktemp("dashboards-world")
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("POSTPURCHASE_DATA_DIR", str(data))
        mp.setenv("DAGSTER_HOME", str(data / "dagster_home"))
        mp.setenv("SMS_PROVIDER", "simulator")
        mp.setenv("SEND_RATE_PER_SECOND", "50")
        settings = get_settings()
        sim = simulate(
            settings.landing_dir, days=5, customers=150, seed=11, truth_dir=settings.simulator_dir
        )
        instance = prepare_environment(settings)
        log = data / "logs" / "run.log"
        run_days(instance, days_between(sim.first_day, sim.last_day), log)
        next_day = sim.last_day + dt.timedelta(days=1)
        send_at(dt.datetime.combine(next_day, dt.time(), tzinfo=dt.UTC))
        run_days(instance, [next_day], log)
        with Warehouse(data).lock(), duckdb.connect(str(settings.warehouse_path), True) as con:
            phones = con.execute(
                "select distinct phone_e164 from marts.consent_state where phone_e164 is not null"
            ).fetchall()
    finally:
        mp.undo()
    world = World(data, next_day, frozenset(p for (p,) in phones))
    _worlds[base] = world
    return world


@pytest.fixture(scope="session")
def dashboard_world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory)


@pytest.fixture
def world(dashboard_world, monkeypatch) -> World:
    monkeypatch.setenv("POSTPURCHASE_DATA_DIR", str(dashboard_world.data_dir))
    return dashboard_world


def run_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def page_text(at: AppTest) -> str:
    """Everything a reader sees as text on the page, tables included."""
    parts = [
        e.value
        for kind in ("title", "header", "subheader", "caption", "markdown")
        for e in getattr(at, kind)
    ]
    parts += [
        str(e.value) for kind in ("info", "success", "warning", "error") for e in getattr(at, kind)
    ]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += [e.value for e in at.code]
    parts += [e.value.to_csv() for e in at.dataframe]
    return "\n".join(parts)


# --- the snapshot -------------------------------------------------------------------------------


def test_the_daily_run_publishes_the_snapshot_as_of_its_day(world):
    info = read_info(snapshot_path(world.data_dir))
    assert info["as_of"] == dt.datetime.combine(
        world.last_day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC
    )
    assert dt.datetime.now(dt.UTC) - info["published_at"] < dt.timedelta(hours=1)
    with duckdb.connect(str(snapshot_path(world.data_dir)), read_only=True) as con:
        names = {
            f"{s}.{t}"
            for s, t in con.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
        }
        sent = con.execute("select count(*) from ops.outbox where state = 'sent'").fetchone()[0]
        analysed = con.execute(
            "select count(distinct experiment_key) from analysis.experiment_verdicts"
        ).fetchone()[0]
    assert {
        "marts.order_attributions",
        "marts.message_engagement",
        "analysis.experiment_results",
        "ops.send_decisions",
        "reports.replenishment_backtest",
    } <= names
    # Only what the dashboards read: no raw customer records, no staging views.
    assert not any(n.startswith(("staging.", "intermediate.")) for n in names)
    assert "raw.customers" not in names
    assert sent > 0 and analysed > 0


def test_the_snapshot_holds_no_full_phone_number(world):
    assert world.phones
    with duckdb.connect(str(snapshot_path(world.data_dir)), read_only=True) as con:
        columns = con.execute(
            """select table_schema, table_name, column_name from information_schema.columns
               where data_type = 'VARCHAR'"""
        ).fetchall()
        for schema, table, column in columns:
            found = con.execute(
                f'select "{column}" from "{schema}"."{table}" '
                f"where regexp_matches(\"{column}\", '\\+[0-9]{{8,}}') limit 1"
            ).fetchall()
            assert found == [], f"{schema}.{table}.{column} holds a full number"
        masked = con.execute(
            "select phone_e164 from ops.outbox where phone_e164 is not null limit 5"
        ).fetchall()
        digits = [p[-4:] for p in world.phones]
    assert masked and all(re.fullmatch(r"\+\*+\d{4}", p) for (p,) in masked)
    assert {p[-4:] for (p,) in masked} <= set(digits)


SPELLINGS = [
    "+14155551234",
    "4155551234",
    "+1 (415) 555-1234",
    "12",
    "+12345",
    "",
    "abc",
    "\uff0b\uff11\uff12\uff13\uff14\uff15\uff16",  # full-width
    "call +1 415-555-1234 now",
    "code 123456",
    "x1234567y",
    "tel:+14155551234.",
    "a 12 345 678 b",
    "\u0661\u0662\u0663 \u0664\u0665\u0666\u0667\u0668",  # Arabic-Indic digits
    None,
]


def test_the_snapshots_sql_masks_equal_the_python_ones():
    """The copy masks in SQL where it can; what it writes must be what the functions say."""
    with duckdb.connect() as con:
        con.create_function("mask_phone", mask_phone, ["VARCHAR"], "VARCHAR")
        con.create_function("mask_phones_in", mask_phones_in, ["VARCHAR"], "VARCHAR")
        for value in SPELLINGS:
            got = con.execute(
                f"select {MASK_PHONE_SQL.format(column='v')}, "
                f"{MASK_PHONES_IN_SQL.format(column='v')} from (select ?::varchar as v)",
                [value],
            ).fetchall()[0]
            expected = (None, None) if value is None else (mask_phone(value), mask_phones_in(value))
            assert got == expected, value


def test_publishing_swaps_the_file_whole_while_readers_keep_reading(world, tmp_path):
    target = snapshot_path(world.data_dir)
    old = duckdb.connect(str(target), read_only=True)
    before = old.execute(f"select published_at from {INFO_TABLE}").fetchall()
    inode = target.stat().st_ino
    seen: list[str] = []
    stop = threading.Event()

    def read_repeatedly() -> None:
        # Every open sees a whole snapshot: its info row and its tables, never half a file.
        # Attached to a fresh in-memory database, as the app does: connecting by path would
        # share the instance `old` holds open, which still reads the file it opened.
        while not stop.is_set():
            with duckdb.connect() as con:
                con.execute(f"attach '{target}' as snap (read_only)")
                n = con.execute(f"select count(*) from snap.{INFO_TABLE}").fetchone()[0]
                con.execute("select count(*) from snap.marts.order_attributions").fetchone()
                seen.append("ok" if n == 1 else f"{n} info rows")

    reader = threading.Thread(target=read_repeatedly)
    reader.start()
    try:
        for _ in range(2):
            published = publish(world.data_dir, dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    finally:
        stop.set()
        reader.join(30)
    # The reader that opened the old file still reads the old snapshot.
    assert old.execute(f"select published_at from {INFO_TABLE}").fetchall() == before
    old.close()
    assert seen and set(seen) == {"ok"}
    assert target.stat().st_ino != inode
    assert read_info(target)["published_at"] == published.published_at
    leftovers = [p.name for p in world.data_dir.iterdir() if ".tmp" in p.name or ".wal" in p.name]
    assert leftovers == []
    # Put the run's own as_of back for the page tests.
    publish(
        world.data_dir,
        dt.datetime.combine(world.last_day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC),
    )


def test_a_reader_of_the_snapshot_never_blocks_the_warehouse_writer(world):
    with duckdb.connect(str(snapshot_path(world.data_dir)), read_only=True) as reader:
        reader.execute("select count(*) from marts.message_candidates").fetchone()
        started = time.monotonic()
        with Warehouse(world.data_dir).connect() as con:
            con.execute("create or replace table ops.dashboard_probe as select 1 as x")
            con.execute("drop table ops.dashboard_probe")
        assert time.monotonic() - started < 10


def test_publishing_without_a_warehouse_fails_and_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no warehouse"):
        publish(tmp_path)
    assert not snapshot_path(tmp_path).exists()


def test_the_reporting_asset_follows_the_analysis_and_the_marts_in_the_daily_job(data_dir):
    from pipelines.definitions import defs
    from pipelines.defs.reporting.assets import SNAPSHOT

    graph = defs.resolve_asset_graph()
    parents = graph.get(SNAPSHOT).parent_keys
    assert dg.AssetKey(["analysis", "experiment_results"]) in parents
    assert dg.AssetKey(["marts", "order_attributions"]) in parents
    job = defs.resolve_job_def("daily_ingest_job")
    assert SNAPSHOT in job.asset_layer.selected_asset_keys


# --- the pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_runs_on_the_world_with_data_and_no_full_phone_number(world, page):
    at = run_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [PAGES[page]]
    assert not at.error, [e.value for e in at.error]
    text = page_text(at)
    assert "make demo" not in text
    assert not FULL_PHONE.search(text)
    if page != "app_pages/planner.py":  # sized from inputs: see the planner's own test
        assert at.dataframe or at.metric, "the page shows no data"


def test_the_experiments_page_states_each_verdict(world):
    at = run_page("app_pages/experiments.py")
    listing = at.dataframe[0].value
    with duckdb.connect(str(snapshot_path(world.data_dir)), read_only=True) as con:
        verdicts = dict(
            con.execute(
                """select experiment_key, verdict from analysis.experiment_verdicts
                   qualify as_of = max(as_of) over (partition by experiment_key)"""
            ).fetchall()
        )
    assert verdicts
    shown = dict(zip(listing["Experiment"], listing["Verdict"], strict=True))
    assert {k: shown[k] for k in verdicts} == verdicts
    assert any(
        f"Verdict: {verdicts[at.selectbox[0].value]}" in i.value
        for i in [*at.info, *at.success, *at.warning]
    )


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_says_run_make_demo_without_a_snapshot(tmp_path, monkeypatch, page):
    monkeypatch.setenv("POSTPURCHASE_DATA_DIR", str(tmp_path))
    at = run_page(page)
    assert not at.exception
    assert [t.value for t in at.title] == [PAGES[page]]
    assert any("make demo" in i.value for i in at.info)


def test_every_page_says_run_make_demo_on_an_empty_snapshot(tmp_path, monkeypatch):
    duckdb.connect(str(tmp_path / "warehouse.duckdb")).close()
    publish(tmp_path)
    monkeypatch.setenv("POSTPURCHASE_DATA_DIR", str(tmp_path))
    for page in PAGES:
        at = run_page(page)
        assert not at.exception, (page, [e.value for e in at.exception])
        assert any("make demo" in i.value for i in at.info), page


def test_the_planner_shows_the_planner_functions_numbers_and_a_valid_spec(world, tmp_path):
    at = run_page("app_pages/planner.py")
    at.number_input(key="baseline-replenishment_reminder-converted_7d").set_value(12.0)
    at.number_input(key="daily-replenishment_reminder").set_value(30.0)
    mde = next(n for n in at.number_input if n.label.startswith("Minimum detectable"))
    mde.set_value(30.0)
    at.run()
    assert not at.exception
    expected = stats.plan(0.12, 0.3, 30.0, weights=(0.5, 0.5), alpha=0.05, power=0.8)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Customers in control"] == f"{int(expected.units_per_arm[0]):,}"
    assert shown["Customers in the treatment"] == f"{int(expected.units_per_arm[1]):,}"
    assert shown["Customers in total"] == f"{int(expected.total_units):,}"
    assert shown["Days"] == f"{int(expected.days):,}"
    # The README's worked example: 1,437 per arm, 2,874 in all, 96 days.
    assert shown["Customers in total"] == "2,874" and shown["Days"] == "96"
    spec_text = at.code[0].value
    (tmp_path / "planned.yaml").write_text(spec_text)
    (spec,) = load_experiments(tmp_path).specs
    assert spec.planned_units == int(expected.total_units)
    assert spec.primary_metric == "converted_7d" and spec.minimum_detectable_effect == 0.3
    assert spec.flow == "replenishment_reminder" and spec.status == "draft"
    assert any("valid spec" in s.value for s in at.success)


def test_the_dashboard_command_serves_the_app_on_localhost(world, monkeypatch):
    from pipelines.dashboard_cli import APP as CLI_APP
    from pipelines.dashboard_cli import SERVE, dashboard_command

    started = []
    monkeypatch.setattr(os, "execv", lambda path, argv: started.append(argv))
    result = CliRunner().invoke(dashboard_command, ["--port", "8765", "--publish"])
    assert result.exit_code == 0, result.output
    (argv,) = started
    assert argv[1:5] == ["-c", SERVE, "run", str(CLI_APP)]
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[argv.index("--server.port") + 1] == "8765"
    assert CLI_APP == APP
    info = read_info(snapshot_path(world.data_dir))
    assert info["as_of"] == dt.datetime.combine(
        world.last_day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC
    )


# --- speed: summaries, a capped list, light imports --------------------------------------------


def without_summaries(monkeypatch) -> None:
    """Read the snapshot as one published before the summaries existed."""
    tables = data.tables
    monkeypatch.setattr(data, "tables", lambda snap: tables(snap) - data.SUMMARIES)


def test_the_pages_spell_the_snapshots_table_names_as_the_publisher_does():
    assert data.INFO_TABLE == reporting.INFO_TABLE
    assert data.BACKTEST_TABLE == reporting.BACKTEST_TABLE
    assert set(reporting.SUMMARIES) == data.SUMMARIES


def test_the_summaries_give_the_pages_what_the_big_tables_give(world, monkeypatch):
    snap = data.snapshot()
    assert data.tables(snap) >= data.SUMMARIES, "the published snapshot lacks a summary"
    span = data.activity_span(snap)
    start, end = span[0] - dt.timedelta(days=1), span[1]
    texted = data.funnel(snap, None).filter(pl.col("sent") > 0)["flow"].to_list()
    assert texted, "nothing was sent in the world: the comparison would prove nothing"
    some = (texted[0],)

    def read() -> dict:
        return {
            "currency": data.currency(snap),
            "span": data.activity_span(snap),
            **{
                f"{name} {flows}": value
                for flows in (None, some)
                for name, value in (
                    ("totals", data.window_totals(snap, start, end, flows)),
                    ("daily", data.daily(snap, start, end, flows)),
                    ("funnel", data.funnel(snap, flows)),
                    ("reasons", data.not_sent_reasons(snap, flows)),
                    ("delivery", data.delivery_outcomes(snap, flows)),
                    ("opt-outs", data.opt_outs_daily(snap, flows)),
                )
            },
            "cadence": data.cadence_by_product(snap),
            "runout": data.runout_dates(snap),
            "new customers": data.daily_new_customers(snap, texted[0]),
        }

    summarized = read()
    without_summaries(monkeypatch)
    unsummarized = read()
    assert summarized.keys() == unsummarized.keys()
    for name, value in summarized.items():
        other = unsummarized[name]
        if isinstance(value, pl.DataFrame):
            # Over every flow, something to compare (one flow may have had no opt-out).
            assert value.height or name.endswith(str(some)), f"{name}: empty, proves nothing"
            assert_frame_equal(value, other, check_dtypes=False, check_exact=False)
        elif isinstance(value, dict):
            assert value == pytest.approx(other), name
        else:
            assert value == other, name
    assert summarized["totals None"]["sent"] > 0 and summarized["totals None"]["customers"] > 0


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_runs_on_a_snapshot_without_the_summaries(world, monkeypatch, page):
    without_summaries(monkeypatch)
    at = run_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [PAGES[page]]
    assert not at.error, [e.value for e in at.error]


def test_the_replenishment_page_lists_the_first_reminders_and_counts_them_all(world, monkeypatch):
    monkeypatch.setattr(data, "REMINDERS_SHOWN", 3)
    at = run_page("app_pages/replenishment.py")
    assert not at.exception, [e.value for e in at.exception]
    days_ahead = next(s for s in at.slider if s.label == "Days ahead").value
    until = dt.datetime.combine(
        world.last_day + dt.timedelta(days=days_ahead + 1), dt.time(), tzinfo=dt.UTC
    )
    with duckdb.connect(str(snapshot_path(world.data_dir)), read_only=True) as con:
        first = con.execute(
            """select customer_id from marts.message_candidates
               where flow = 'replenishment_reminder' and earliest_send_at < ?
               order by earliest_send_at, customer_id""",
            [until],
        ).fetchall()
    assert len(first) > 3, "too few reminders in the world to cap"
    (listing,) = [d.value for d in at.dataframe if "Due from" in d.value.columns]
    assert list(listing["Customer"]) == [c for (c,) in first[:3]]
    captions = [c.value for c in at.caption]
    assert any(c.startswith(f"{len(first):,} reminders due") for c in captions), captions
    assert any(f"The first 3 of {len(first):,}" in c for c in captions), captions


def test_the_dashboards_import_neither_scipy_nor_the_backtest():
    # Imported on a page's first visit: scipy alone took seconds of it.
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, dashboards.ui, dashboards.data, dashboards.planning; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'sklearn'}), "
            "'pipelines.backtest' in sys.modules, 'pipelines.cadence' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=APP.parents[1],
        check=True,
    ).stdout.strip()
    assert found == "[] False False"


# --- plain helpers ------------------------------------------------------------------------------


def test_numbers_are_formatted_for_people():
    assert fmt.money(1234.5) == "$1,234" and fmt.money(12.345) == "$12.35"
    assert fmt.money(-0.001) == "$0.00" and fmt.money(-5, "GBP") == "-£5.00"
    assert fmt.money(3, "CHF") == "3.00 CHF" and fmt.money(None) == fmt.DASH
    assert fmt.percent(0.1234) == "12.3%" and fmt.percent(0.05, 1, signed=True) == "+5.0%"
    assert fmt.p_value(0.0001) == "< 0.001" and fmt.p_value(float("nan")) == fmt.DASH
    assert fmt.metric_label("converted_7d") == "Ordered within 7 days"
    assert fmt.metric_label("revenue_1d") == "Revenue per customer within 1 day"
    assert fmt.metric_value(0.1, "clicked_1d") == "10.00%"
    assert fmt.metric_value(12.5, "revenue_30d", "EUR") == "€12.50"
    now = dt.datetime(2026, 9, 10, 12, tzinfo=dt.UTC)
    assert fmt.ago(now - dt.timedelta(seconds=30), now) == "just now"
    assert fmt.ago(now - dt.timedelta(minutes=5), now) == "5 minutes ago"
    assert fmt.ago(now - dt.timedelta(hours=3), now) == "3 hours ago"
    assert fmt.ago(now - dt.timedelta(days=2), now) == "2 days ago"


@pytest.mark.parametrize(
    ("kwargs", "category"),
    [
        ({"lift": 0.2, "p_adjusted": 0.01}, fmt.BETTER),
        ({"lift": -0.2, "p_adjusted": 0.01}, fmt.WORSE),
        ({"lift": -0.2, "p_adjusted": 0.01, "higher_is_better": False}, fmt.BETTER),
        ({"lift": 0.2, "p_adjusted": 0.2}, fmt.UNCLEAR),
        ({"lift": None, "p_adjusted": None}, fmt.UNCLEAR),
        ({"lift": 0.2, "p_adjusted": 0.01, "analysis": "fixed", "progress": 0.4}, fmt.EARLY),
        ({"lift": 0.1, "analysis": "bayesian", "chance_to_win": 0.97}, fmt.BETTER),
        ({"lift": 0.1, "analysis": "bayesian", "chance_to_win": 0.6}, fmt.UNCLEAR),
        ({"role": "guardrail", "breached": True}, fmt.BREACHED),
        ({"role": "guardrail", "non_inferior": True}, fmt.HOLDING),
        ({"role": "guardrail"}, fmt.NOT_SHOWN),
    ],
)
def test_significance_in_words(kwargs, category):
    arguments = {
        "role": "primary",
        "analysis": "sequential",
        "alpha": 0.05,
        "lift": None,
        "p_adjusted": None,
        "p_raw": None,
        "chance_to_win": None,
        "higher_is_better": True,
    } | kwargs
    found, words = fmt.significance(**arguments)
    assert found == category and words


def test_spikes_stand_out_from_the_days_before():
    assert fmt.spikes([0, 1, 0, 0, 1, 0, 9, 1]) == [False] * 6 + [True, False]
    # Steady high counts are not spikes, nor the first days (nothing to compare with); a day
    # below the floor of 3 never is.
    assert not any(fmt.spikes([20, 22, 19, 21, 20, 23, 24]))
    assert not any(fmt.spikes([9, 0, 0, 0]))
    assert not any(fmt.spikes([0, 0, 0, 2]))


@pytest.mark.parametrize(("share", "treatments"), [(0.5, 1), (0.2, 1), (0.5, 3), (0.35, 2)])
def test_planned_weights_are_whole_buckets_summing_to_one(share, treatments):
    weights = planning.weights_for(share, treatments)
    assert len(weights) == treatments + 1 and abs(sum(weights) - 1) < 1e-12
    assert np.allclose(np.array(weights) * 10_000, np.round(np.array(weights) * 10_000))
    assert weights[0] == pytest.approx(share)


@pytest.mark.parametrize(
    ("metric", "baseline", "sd", "treatments"),
    [
        ("converted_7d", 0.12, None, 1),
        ("revenue_30d", 8.0, 25.0, 2),
        ("opted_out_1d", 0.01, None, 3),
    ],
)
def test_the_planned_spec_validates(tmp_path, metric, baseline, sd, treatments):
    result = planning.plan(
        metric=metric,
        baseline=baseline,
        sd=sd,
        mde=0.25,
        daily_units=40.0,
        weights=planning.weights_for(0.5, treatments),
    )
    cli = stats.plan(baseline, 0.25, 40.0, weights=planning.weights_for(0.5, treatments), sd=sd)
    assert result["total_units"] == int(cli.total_units) and result["days"] == int(cli.days)
    text = planning.spec_yaml(
        key="planned_test",
        flow="review_request",
        metric=metric,
        result=result,
        start_date=dt.date(2026, 10, 1),
    )
    (tmp_path / "planned_test.yaml").write_text(text)
    (spec,) = load_experiments(tmp_path).specs
    assert len(spec.variants) == treatments + 1
    assert spec.planned_units == result["total_units"]


def test_a_spec_with_a_bad_key_is_refused(tmp_path):
    result = planning.plan(
        metric="clicked_1d",
        baseline=0.1,
        sd=None,
        mde=0.2,
        daily_units=None,
        weights=[0.5, 0.5],
    )
    text = planning.spec_yaml(
        key="Bad Key",
        flow="review_request",
        metric="clicked_1d",
        result=result,
        start_date=dt.date(2026, 10, 1),
    )
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(SpecError, match="key"):
        load_experiments(tmp_path)
