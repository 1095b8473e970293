import dagster as dg

from pipelines.defs.partitions import WAREHOUSE_POOL, daily_partition, one_day_at_a_time
from pipelines.defs.resources import WarehouseResource
from pipelines.experiments.spec import SpecError, load_experiments
from pipelines.experiments.tables import TABLES, replace_raw_tables
from pipelines.settings import get_experiments_dir

DESCRIPTIONS = {
    "experiments": "One row per experiment spec in experiments/*.yaml.",
    "experiment_variants": "Each experiment's variants, weights, templates and parameters.",
    "experiment_guardrails": "Each experiment's guardrail metrics and non-inferiority margins.",
    "experiment_holdouts": "Per marketing flow, the share of customers held out of it.",
}


def experiments_asset_key(table: str) -> dg.AssetKey:
    # Equal to the dbt source key, so the specs join the one lineage graph.
    return dg.AssetKey(["experiments", table])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            experiments_asset_key(table),
            description=DESCRIPTIONS[table],
            kinds={"yaml", "duckdb"},
            group_name="ingest",
        )
        for table in TABLES
    ],
    partitions_def=daily_partition,
    backfill_policy=one_day_at_a_time,
    pool=WAREHOUSE_POOL,
)
def experiment_specs(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Validate the experiment specs and replace the raw experiment tables with them."""
    folder = get_experiments_dir()
    try:
        catalog = load_experiments(folder)
    except SpecError as exc:
        # Every problem at once, each naming its file and field.
        raise dg.Failure(
            description=str(exc),
            metadata={"folder": str(folder), "problems": dg.MetadataValue.json(exc.errors)},
        ) from exc
    with warehouse.get().connect() as con:
        counts = replace_raw_tables(con, catalog)
    context.log.info(
        f"{len(catalog.specs)} experiments and {len(catalog.holdouts)} holdouts from {folder}"
    )
    for table in TABLES:
        yield dg.MaterializeResult(
            asset_key=experiments_asset_key(table),
            metadata={"rows": counts[table], "folder": str(folder)},
        )
