"""Opt-outs and opt-ins written where the sender reads them: `<events_dir>/suppressions.jsonl`.

The sender (`pipelines.sender.reads.load_suppressions`) reads this file on every run, so a STOP
suppresses the next send attempt from any process as soon as this line is fsynced, with no
ingest in between. A line is `{"phone_e164", "recorded_at", "reason", "action", ...}`; action
`suppress` (the default when absent) blocks the number from `recorded_at`, `resubscribe` (a
START) lifts the log's earlier suppressions of that number. The live service's lines (source
`callback`) bind as soon as they exist, even a send run whose logical time is earlier. Consent
in the warehouse follows at the next build, from the same inbound message.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipelines.callbacks.journal import append_lines

SUPPRESSIONS_FILE = "suppressions.jsonl"
SUPPRESS, RESUBSCRIBE = "suppress", "resubscribe"


def record_consent_change(
    events_dir: Path,
    phone_e164: str,
    at: dt.datetime,
    action: str,
    reason: str,
    message_uuid: str | None = None,
    source: str = "callback",
) -> None:
    """Append one line, fsynced. `source` "callback" (the live service) binds every send from
    now on; the simulator's lines ("simulator") bind sends from their logical time."""
    if action not in (SUPPRESS, RESUBSCRIBE):
        raise ValueError(f"unknown suppression action {action!r}")
    if at.tzinfo is None:
        raise ValueError("recorded_at must be timezone-aware")
    append_lines(
        Path(events_dir) / SUPPRESSIONS_FILE,
        [
            {
                "phone_e164": phone_e164,
                "recorded_at": at.astimezone(dt.UTC).isoformat(),
                "reason": reason,
                "action": action,
                "source": source,
                "message_uuid": message_uuid,
            }
        ],
    )
