import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from pipelines.defs.partitions import WAREHOUSE_POOL, daily_partition, one_day_at_a_time
from pipelines.defs.resources import WarehouseResource
from pipelines.project import dbt_project


class Translator(DagsterDbtTranslator):
    """Groups models by layer (staging, intermediate, marts) so the graph reads left to right."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] != "model":
            return None
        return dbt_resource_props["fqn"][1] if len(dbt_resource_props["fqn"]) > 2 else "models"


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    partitions_def=daily_partition,
    backfill_policy=one_day_at_a_time,
    dagster_dbt_translator=Translator(),
    pool=WAREHOUSE_POOL,
)
def warehouse_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
):
    """The dbt project built as of the end of the partition's day, with its data tests.

    dbt's unit tests check the SQL, not the day's data: they run in the test suite, not in
    every daily build, where they would add seconds to each run.
    """
    as_of = context.partition_time_window.end.isoformat()
    args = ["build", "--exclude-resource-type", "unit_test", "--vars", json.dumps({"as_of": as_of})]
    with warehouse.get().lock():
        yield from dbt.cli(args, context=context).stream()
