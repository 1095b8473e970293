import datetime as dt

import dagster as dg

from pipelines.defs.partitions import WAREHOUSE_POOL, daily_partition, up_to_a_month
from pipelines.defs.resources import WarehouseResource
from pipelines.ingest import ingest_days
from pipelines.landing import ENTITIES

# Ingest keys equal the dbt source keys, so lineage is one graph from file to mart.
SOURCE_OF = {
    "customers": "shop",
    "sms_consents": "shop",
    "products": "shop",
    "orders": "shop",
    "order_lines": "shop",
    "fulfillment_events": "shop",
    "sms_delivery_receipts": "sms",
    "inbound_messages": "sms",
    "link_clicks": "sms",
}


def ingest_asset_key(entity: str) -> dg.AssetKey:
    return dg.AssetKey([SOURCE_OF[entity], entity])


def build_ingest_asset(entity: str) -> dg.AssetsDefinition:
    key = ingest_asset_key(entity)

    @dg.asset(
        key=key,
        description=f"The days' {entity} landing files, typed and upserted into raw.{entity}.",
        partitions_def=daily_partition,
        backfill_policy=up_to_a_month,
        group_name="ingest",
        kinds={"polars", "duckdb"},
        pool=WAREHOUSE_POOL,
        check_specs=[dg.AssetCheckSpec("counts_add_up", asset=key)],
    )
    def _ingest(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        # A catch-up loads up to a month of days in one upsert; a daily run loads its day.
        days = [dt.date.fromisoformat(key) for key in context.partition_keys]
        wh = warehouse.get()
        with wh.connect() as con:
            result = ingest_days(con, wh.landing_dir, entity, days)
        yield dg.MaterializeResult(
            metadata={
                "rows_in": result.rows_in,
                "loaded": result.loaded,
                "rejected": result.rejected,
                "files": len(result.files),
                "reject_reasons": dg.MetadataValue.json(result.reasons),
                "invalid_phones": result.invalid_phones,
            }
        )
        yield dg.AssetCheckResult(
            check_name="counts_add_up",
            passed=result.rows_in == result.loaded + result.rejected,
            metadata={
                "in": result.rows_in,
                "loaded_plus_rejected": result.loaded + result.rejected,
            },
            description="Every row read is either loaded or recorded in ops.ingest_rejects.",
        )

    _ingest.__name__ = f"ingest_{entity}"
    return _ingest


ingest_assets = [build_ingest_asset(name) for name in ENTITIES]
