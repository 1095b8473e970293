import datetime as dt
import hashlib
import json
from pathlib import Path

import dagster as dg

from pipelines.defs.jobs import daily_ingest_job
from pipelines.defs.partitions import daily_partition
from pipelines.defs.resources import WarehouseResource
from pipelines.landing import ENTITIES, landed_days, partition_files


def landing_fingerprints(landing: Path, days: list[dt.date]) -> dict[str, str]:
    """A digest per day of which files exist and how big they are: a change means new data."""
    out = {}
    for day in days:
        files = [p for e in ENTITIES for p in partition_files(landing, e, day)]
        listing = sorted(f"{p.relative_to(landing)}:{p.stat().st_size}" for p in files)
        out[day.isoformat()] = hashlib.sha256("\n".join(listing).encode()).hexdigest()[:16]
    return out


@dg.sensor(job=daily_ingest_job, minimum_interval_seconds=60)
def landing_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """Starts the daily build for a landing partition that is new or has new files."""
    landing = warehouse.get().landing_dir
    valid = set(daily_partition.get_partition_keys())
    days = [d for d in landed_days(landing) if d.isoformat() in valid]
    seen = json.loads(context.cursor) if context.cursor else {}
    current = landing_fingerprints(landing, days)
    for day, digest in sorted(current.items()):
        if seen.get(day) != digest:
            yield dg.RunRequest(partition_key=day, run_key=f"{day}:{digest}")
    context.update_cursor(json.dumps(current))
