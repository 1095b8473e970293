"""Requests the service refused (bad signature, malformed form, too big): kept, never as events.

`<events_dir>/rejected.jsonl`, one JSON object a line. The body itself is not kept (it may be
huge or hostile); its size and SHA-256 are, so an operator can match it to Plivo's logs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from pipelines.callbacks.journal import append_lines

REJECTS_FILE = "rejected.jsonl"


def record_reject(
    events_dir: Path,
    at: dt.datetime,
    path: str,
    status: int,
    reason: str,
    *,
    body: bytes | None = None,
    client: str | None = None,
    signature: str | None = None,
) -> None:
    append_lines(
        Path(events_dir) / REJECTS_FILE,
        [
            {
                "rejected_at": at.astimezone(dt.UTC).isoformat(),
                "path": path,
                "status": status,
                "reason": reason,
                "client": client,
                "signature": signature,
                "body_bytes": None if body is None else len(body),
                "body_sha256": None if body is None else hashlib.sha256(body).hexdigest(),
            }
        ],
    )


def read_rejects(events_dir: Path) -> list[dict]:
    path = Path(events_dir) / REJECTS_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
