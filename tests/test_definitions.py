import datetime as dt
import multiprocessing
import time

import dagster as dg
import polars as pl

from pipelines.defs.ingest.assets import ingest_asset_key
from pipelines.defs.ingest.sensors import landing_sensor
from pipelines.defs.resources import WarehouseResource
from pipelines.landing import ENTITIES, write_landing_file
from pipelines.warehouse import Warehouse


def test_definitions_load_with_jobs_schedule_sensor(data_dir):
    from pipelines.definitions import defs

    job = defs.resolve_job_def("daily_ingest_job")
    assert job.partitions_def is not None
    assert {s.name for s in defs.schedules} == {"daily_ingest_schedule", "hourly_send_schedule"}
    assert {s.name for s in defs.sensors} == {"landing_sensor", "callback_events_sensor"}
    keys = defs.resolve_all_asset_keys()
    for entity in ENTITIES:
        assert ingest_asset_key(entity) in keys


def test_ingest_keys_are_the_dbt_source_keys(data_dir):
    """Lineage is one graph: each staging model depends on the asset that ingests its table."""
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    upstream = set()
    for key in graph.get_all_asset_keys():
        if key.path[0] == "staging":
            upstream |= graph.get(key).parent_keys
    assert {ingest_asset_key(e) for e in ENTITIES} <= upstream


def test_every_writing_asset_is_in_the_warehouse_pool(data_dir):
    from pipelines.definitions import defs

    for assets_def in defs.resolve_all_asset_specs():
        if assets_def.group_name in ("ingest", "staging"):
            assert assets_def.key in defs.resolve_asset_graph().get_all_asset_keys()
    for node in defs.resolve_job_def("daily_ingest_job").graph.node_defs:
        assert node.pool == "warehouse", node.name


def test_sensor_requests_new_and_changed_landing_days_once(data_dir):
    landing = data_dir / "landing"
    frame = pl.DataFrame({"customer_id": ["c1"], "created_at": ["2026-08-01"]})
    write_landing_file(frame, landing, "customers", dt.date(2026, 8, 1), "a", "csv")
    write_landing_file(frame, landing, "customers", dt.date(2026, 8, 2), "a", "csv")
    resources = {"warehouse": WarehouseResource(data_dir=str(data_dir))}

    context = dg.build_sensor_context(resources=resources)
    first = list(landing_sensor(context))
    assert sorted(r.partition_key for r in first) == ["2026-08-01", "2026-08-02"]

    context = dg.build_sensor_context(cursor=context.cursor, resources=resources)
    assert list(landing_sensor(context)) == []

    # A new file on an already-seen day is new data.
    write_landing_file(frame, landing, "orders", dt.date(2026, 8, 2), "late", "csv")
    context = dg.build_sensor_context(cursor=context.cursor, resources=resources)
    assert [r.partition_key for r in landing_sensor(context)] == ["2026-08-02"]


def _hold_lock(data_dir, ready, seconds):
    with Warehouse(data_dir).connect():
        ready.set()
        time.sleep(seconds)


def test_second_writer_waits_instead_of_failing(data_dir):
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(data_dir, ready, 1.5))
    holder.start()
    assert ready.wait(30)
    started = time.monotonic()
    with Warehouse(data_dir).connect() as con:
        waited = time.monotonic() - started
        con.execute("create table t as select 1 as x")
    holder.join(30)
    assert holder.exitcode == 0
    assert waited >= 1.0
