import dagster as dg

from pipelines.callbacks.loading import land_sealed
from pipelines.defs.resources import WarehouseResource
from pipelines.settings import Settings


@dg.sensor(minimum_interval_seconds=30)
def callback_events_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """Lands the callback service's sealed event log segments as landing files.

    Segments a dead service left open are sealed first. Each segment becomes one Parquet file
    per entity and UTC day, named by a hash of its rows, so a repeated tick writes nothing new.
    The landing sensor then sees the new files and starts the ingest of their days: one sensor
    requests runs, so a day is never built twice for one change.
    """
    data_dir = warehouse.get().data_dir
    settings = Settings(data_dir)
    report = land_sealed(settings.events_dir, settings.landing_dir)
    if not report.segments:
        return dg.SkipReason("no sealed event log segments")
    days = ", ".join(d.isoformat() for d in report.days) or "none"
    message = (
        f"landed {len(report.segments)} segment(s), {report.records} event(s), into "
        f"{len(report.files)} new file(s) for {days}; the landing sensor starts the ingest"
    )
    if report.unreadable_lines:
        message += f" ({report.unreadable_lines} unreadable line(s) skipped: torn, never acked)"
    context.log.info(message)
    return dg.SkipReason(message)
