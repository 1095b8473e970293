"""Sealed event log segments into landing files, so the normal ingest loads them.

A segment's records are split by entity and by the UTC day the event happened (a reply days
after the send lands on its own day), and each part is written as one Parquet landing file
whose name is a hash of its rows. Landing the same segment twice therefore writes nothing new,
so a crash between writing the files and moving the segment to `landed/` is harmless.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.callbacks.eventlog import log_root, read_segment, seal_abandoned, sealed_segments
from pipelines.landing import ENTITIES, write_landing_file

log = logging.getLogger(__name__)

# The column that says when each kind of event happened: it picks the landing day.
TIME_COLUMN = {
    "sms_delivery_receipts": "occurred_at",
    "inbound_messages": "received_at",
    "link_clicks": "clicked_at",
}


@dataclass
class LandingReport:
    segments: list[str] = field(default_factory=list)
    abandoned_sealed: int = 0
    records: int = 0
    unreadable_lines: int = 0
    files: list[Path] = field(default_factory=list)

    @property
    def days(self) -> list[dt.date]:
        return sorted({dt.date.fromisoformat(p.parent.name) for p in self.files})


def event_day(entity: str, row: dict[str, Any], fallback: str | None) -> dt.date:
    """The UTC day of the event; an unreadable time lands on the day it was logged, where the
    ingest rejects the row with its reason rather than losing it here."""
    for value in (row.get(TIME_COLUMN.get(entity, "")), fallback):
        if value:
            try:
                moment = dt.datetime.fromisoformat(str(value))
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return moment.astimezone(dt.UTC).date()
    return dt.datetime.now(dt.UTC).date()


def _sort_key(entity: str, row: dict[str, Any]) -> tuple:
    spec = ENTITIES[entity]
    order = [TIME_COLUMN.get(entity), *spec.key]
    # Rows equal on time and key (a callback delivered twice) are ordered by their content, so
    # the same rows in any arrival order give the same file.
    return (*(str(row.get(c) or "") for c in order if c), json.dumps(row, sort_keys=True))


def land_records(
    records: list[dict[str, Any]], landing_dir: Path, prefix: str
) -> tuple[list[Path], int]:
    """Write records as landing files; returns the new files and the records it could not place."""
    parts: dict[tuple[str, dt.date], list[dict[str, Any]]] = defaultdict(list)
    unplaced = 0
    for record in records:
        entity, row = record.get("entity"), record.get("row")
        if entity not in ENTITIES or not isinstance(row, dict):
            unplaced += 1
            log.warning("event record of unknown entity %r skipped", entity)
            continue
        parts[(entity, event_day(entity, row, record.get("logged_at")))].append(row)
    written = []
    for (entity, day), rows in sorted(parts.items()):
        spec = ENTITIES[entity]
        rows = sorted(rows, key=lambda r, e=entity: _sort_key(e, r))
        frame = pl.DataFrame(
            {c: [None if r.get(c) is None else str(r[c]) for r in rows] for c in spec.column_names},
            schema={c: pl.String for c in spec.column_names},
        )
        digest = hashlib.sha256()
        for row in frame.iter_rows():
            digest.update(repr(row).encode())
        name = f"{prefix}{digest.hexdigest()[:20]}"
        target = landing_dir / entity / day.isoformat() / f"{name}.parquet"
        if target.exists():
            continue  # the same rows, landed before: landing files are immutable
        written.append(write_landing_file(frame, landing_dir, entity, day, name, "parquet"))
    return written, unplaced


def segment_prefix(segment: Path) -> str:
    """Landing files are named after the segment's writer: `cb-...` (service), `sim-...`."""
    return segment.name.split("-", 1)[0] + "-"


def land_segment(
    segment: Path, landing_dir: Path, report: LandingReport | None = None
) -> list[Path]:
    """Land one sealed segment, then move it to `landed/`; returns the new landing files."""
    report = report if report is not None else LandingReport()
    records, bad = read_segment(segment)
    written, unplaced = land_records(records, Path(landing_dir), segment_prefix(segment))
    landed = segment.parent.parent / "landed"
    landed.mkdir(parents=True, exist_ok=True)
    # Another lander (the sensor, the simulator) may have moved it first: same files.
    with contextlib.suppress(FileNotFoundError):
        os.rename(segment, landed / segment.name)
    report.segments.append(segment.name)
    report.records += len(records)
    report.unreadable_lines += bad + unplaced
    report.files += written
    return written


def land_sealed(events_dir: Path, landing_dir: Path) -> LandingReport:
    """Seal abandoned segments, then land every sealed one (oldest first)."""
    report = LandingReport()
    if not log_root(events_dir).is_dir():
        return report
    report.abandoned_sealed = len(seal_abandoned(events_dir))
    for segment in sealed_segments(events_dir):
        land_segment(segment, landing_dir, report)
    return report
