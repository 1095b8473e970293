import dagster as dg

# The day's whole warehouse build: every landing entity ingested, then the dbt models.
daily_ingest_job = dg.define_asset_job(
    "daily_ingest_job",
    selection=dg.AssetSelection.groups("ingest").downstream(),
    description="Ingest one day of landing files into raw, then build the dbt models as of it.",
)

# Yesterday's partition, once the shop's nightly exports have landed.
daily_ingest_schedule = dg.build_schedule_from_partitioned_job(
    daily_ingest_job, hour_of_day=3, name="daily_ingest_schedule"
)
