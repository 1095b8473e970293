import dagster as dg

# Early enough for real histories such as the UCI Online Retail log (from 2010-12-01).
daily_partition = dg.DailyPartitionsDefinition(start_date="2010-12-01")

# Runs that write the warehouse share this pool; its limit of 1 lives in dagster.yaml.
WAREHOUSE_POOL = "warehouse"

# Each day is built as of its own end, in order, never several days in one run.
one_day_at_a_time = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)

# Loading landing files has no "as of": a month of days in one run and one upsert is the same
# table as a month of daily runs, for a fraction of the cost (a catch-up, a backfill).
up_to_a_month = dg.BackfillPolicy.multi_run(max_partitions_per_run=31)
