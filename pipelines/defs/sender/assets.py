import dagster as dg

from pipelines.defs.partitions import WAREHOUSE_POOL
from pipelines.defs.resources import WarehouseResource
from pipelines.settings import get_sender_settings, get_settings

# The sender runs by the hour; history as early as the daily partitions (UCI Online Retail).
hourly_partition = dg.HourlyPartitionsDefinition(start_date="2010-12-01-00:00")

MESSAGE_CANDIDATES = dg.AssetKey(["marts", "message_candidates"])


@dg.asset(
    partitions_def=hourly_partition,
    deps=[MESSAGE_CANDIDATES],
    kinds={"plivo", "duckdb"},
    pool=WAREHOUSE_POOL,
    group_name="sending",
)
def sms_sends(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The messages due by the end of the hour, decided, rendered and sent through SMS_PROVIDER."""
    from pipelines.sender.provider import make_provider
    from pipelines.sender.run import SendConfig, send_due

    sender = get_sender_settings()
    at = context.partition_time_window.end
    provider = make_provider(sender.provider, at)
    config = SendConfig.from_settings(sender, events_dir=get_settings().events_dir)
    try:
        report = send_due(warehouse.get(), provider, at, config=config)
    finally:
        close = getattr(provider, "close", None)
        if callable(close):
            close()
    context.log.info(
        f"as of {at.isoformat()}: {report.sent} sent, {sum(report.deferred.values())} deferred, "
        f"{sum(report.suppressed.values())} suppressed, {report.failed} failed, "
        f"{report.unknown} unknown"
    )
    return dg.MaterializeResult(metadata=report.as_metadata())


hourly_send_job = dg.define_asset_job(
    "hourly_send_job",
    selection=[sms_sends],
    description="Send the messages due in the hour through SMS_PROVIDER.",
)

# A few minutes past the hour, for the hour that just ended.
hourly_send_schedule = dg.build_schedule_from_partitioned_job(
    hourly_send_job, minute_of_hour=5, name="hourly_send_schedule"
)
