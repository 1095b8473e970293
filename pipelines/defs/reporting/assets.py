import dagster as dg

from pipelines.defs.experiments.results import RESULTS
from pipelines.defs.partitions import WAREHOUSE_POOL, daily_partition, one_day_at_a_time
from pipelines.defs.resources import WarehouseResource
from pipelines.defs.warehouse.assets import warehouse_models
from pipelines.reporting import publish

SNAPSHOT = dg.AssetKey(["reporting", "snapshot"])
# The dashboards read the marts and the experiment analysis; the snapshot waits for all of them.
MARTS = sorted((key for key in warehouse_models.keys if key.path[0] == "marts"), key=str)


@dg.asset(
    key=SNAPSHOT,
    deps=[RESULTS, *MARTS],
    partitions_def=daily_partition,
    backfill_policy=one_day_at_a_time,
    # It only reads the warehouse, but under the writers' lock: it queues with them.
    pool=WAREHOUSE_POOL,
    group_name="reporting",
    kinds={"duckdb", "streamlit"},
)
def reporting_snapshot(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The dashboards' read-only copy of the warehouse, swapped in atomically after each run."""
    as_of = context.partition_time_window.end
    published = publish(warehouse.get().data_dir, as_of)
    context.log.info(f"published {published.path} as of {as_of.isoformat()}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(published.path)),
            "as_of": as_of.isoformat(),
            "published_at": published.published_at.isoformat(),
            "tables": len(published.tables),
            "rows": dg.MetadataValue.json(published.tables),
            "backtest_cutoffs": published.backtest_cutoffs,
            "seconds": round(published.seconds, 2),
        }
    )
