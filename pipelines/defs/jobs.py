import dagster as dg

from pipelines.defs.experiments.results import experiment_results
from pipelines.defs.reporting.assets import reporting_snapshot
from pipelines.defs.warehouse.assets import warehouse_models

# The day's whole warehouse build: every landing entity ingested, then the whole dbt project
# (seeds included), then the experiments judged, then the dashboards' snapshot published. Not
# "everything downstream of ingest": the hourly sender is downstream too, and runs on its own
# schedule.
daily_ingest_job = dg.define_asset_job(
    "daily_ingest_job",
    selection=dg.AssetSelection.groups("ingest")
    | dg.AssetSelection.assets(warehouse_models, experiment_results, reporting_snapshot),
    description=(
        "Ingest one day of landing files into raw, build the dbt models as of it, and judge "
        "the running experiments, then publish the dashboards' snapshot."
    ),
)

# Yesterday's partition, once the shop's nightly exports have landed.
daily_ingest_schedule = dg.build_schedule_from_partitioned_job(
    daily_ingest_job, hour_of_day=3, name="daily_ingest_schedule"
)
