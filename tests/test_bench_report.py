"""BENCHMARKS.md is rendered after every part of `make bench`; a rendering error would lose an
hour's run, so the report is rendered here from measurements of every kind, met and missed."""

from __future__ import annotations

from pathlib import Path

from pipelines.bench import __main__ as bench
from pipelines.bench.callbacks_load import CallbacksBench
from pipelines.bench.dashboard import DashboardBench, PageTiming, Visit
from pipelines.bench.pipeline import DbtNode, Phase, ScaleBench
from pipelines.bench.sender import RateRun, SenderBench


def scale(name: str, customers: int, daily: float, dbt: float, rebuild: float) -> ScaleBench:
    return ScaleBench(
        scale=name,
        customers=customers,
        generate_seconds=10.0,
        landing_rows={"orders": customers * 10},
        rebuild=Phase("rebuild", rebuild, 3 * 2**30, "", [("ingest of 31 days", rebuild / 2)]),
        daily=Phase("daily", daily, 5 * 2**30, "", [("ingest + dbt build", daily * 0.8)]),
        ingest_rows=customers * 45,
        ingest_seconds=rebuild / 2,
        daily_ingest_rows=customers // 10,
        rebuild_models=[DbtNode("int_messages_triggered", dbt / 2, "table")],
        daily_models=[DbtNode("int_messages_triggered", dbt / 3, "table")],
        daily_dbt_seconds=dbt,
        sent={"send": customers // 7, "suppress": customers // 5},
        warehouse_bytes=2**30,
    )


def results(*, fast: bool) -> dict[str, object]:
    visit = Visit(1.0 if fast else 3.0, 0.2, 0.5, 0.3, 0.4)
    return {
        "M": scale("M", 100_000, 30.0, 20.0, 200.0),
        "L": scale(
            "L",
            1_000_000,
            40.0 if fast else 400.0,
            30.0 if fast else 250.0,
            500.0 if fast else 900.0,
        ),
        "sender": SenderBench(
            20.0,
            2.0,
            2.5,
            [RateRun(5.0, 150, 150, 150, 33.0, 2.6, 30.2 if fast else 40.0, 5, 0, 4.0, 0.02)],
        ),
        "callbacks": CallbacksBench(
            10_000,
            {"status": 10_000},
            10_000,
            {},
            64,
            4.0 if fast else 6.0,
            10.0,
            20.0,
            30.0 if fast else 120.0,
            200.0,
            0.4,
            0.07,
            10_000,
            10_000,
            0,
            0,
            -15,
        ),
        "stats": "Traceback: a part that failed is reported, not fatal",
        "dashboard": DashboardBench(
            Path("/tmp"),
            1_000_000,
            10_000_000,
            3,
            (PageTiming("", "Overview", visit, (visit,) * 3, 2, 1),),
            (0.5, 0.7),
            2,
        ),
    }


def test_every_miss_is_explained_with_its_numbers():
    text = bench.render(results(fast=False), bench.dt.datetime(2026, 11, 23), 3000.0)
    why = text.split("## Why the misses")[1].split("## Where")[0]
    for miss in (
        "Daily run on L",
        "L's daily run over M's",
        "Daily run's memory on L",
        "Full rebuild of L",
        "Sender at 5/s",
        "Callbacks",
        "Dashboard",
    ):
        assert miss in why, miss
    assert "400 s, +340 s over 60 s" in why
    assert "**missed**" in text
    assert "a part that failed is reported" in text


def test_a_run_that_meets_every_target_says_so():
    measured = results(fast=True)
    for name in ("M", "L"):
        measured[name].daily.peak_bytes = 2**30
    text = bench.render(measured, bench.dt.datetime(2026, 11, 23), 3000.0)
    assert "Every target measured was met." in text
    assert "**missed**" not in text
