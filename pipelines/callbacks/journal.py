"""What the sender tells the callback service, through append-only files under `data/events/`.

The service never opens the warehouse (a DuckDB reader would block the writers), so the sender
appends what the service must know before the texts go out:

- `links.jsonl`: every short link (code, stored target, message), so `/c/<code>` redirects
  only to a stored target;
- `surveys.jsonl`: every feedback survey (message, customer, phone, send time, points
  promised), so a "7" from that phone is recognized as the survey's answer.

Lines are whole JSON objects written with one `write` and fsynced; readers tail the files and
skip a torn last line until it is complete.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.flows import FLOWS, POINTS

if TYPE_CHECKING:
    from pipelines.sender.compose import Composed
    from pipelines.sender.decide import Candidate

log = logging.getLogger(__name__)

LINKS_FILE = "links.jsonl"
SURVEYS_FILE = "surveys.jsonl"
SURVEY_FLOW = "feedback_survey"
# A score counts for the latest survey sent to the number within this long before the reply.
SURVEY_REPLY_WINDOW = dt.timedelta(days=30)


def append_lines(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Append whole JSON lines with one write, then fsync: durable before the caller goes on."""
    data = b"".join(
        json.dumps(r, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        for r in records
    )
    if not data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        # Several processes may append (the service, an in-process simulator): one at a time.
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def survey_points(candidate: Candidate, variant_params: Mapping | None) -> int:
    """The points the survey's text promised: the variant's, else the flow's default."""
    params = variant_params or {}
    if POINTS in params:
        return int(params[POINTS])
    return FLOWS[SURVEY_FLOW].params[POINTS].default


def record_outgoing(
    events_dir: Path | None,
    at: dt.datetime,
    messages: Iterable[tuple[Candidate, Composed]],
    variant_params: Mapping[tuple[str | None, str | None], Mapping] | None = None,
) -> None:
    """Journal the links and surveys of messages about to be sent (before the provider call,
    so a recipient can never click a link the service does not know yet)."""
    if events_dir is None:
        return
    params = variant_params or {}
    links, surveys = [], []
    for candidate, composed in messages:
        for link in composed.links:
            links.append(
                {
                    "code": link.code,
                    "target_url": link.target_url,
                    "idempotency_key": link.idempotency_key,
                    "customer_id": link.customer_id,
                }
            )
        if candidate.flow == SURVEY_FLOW and candidate.phone_e164:
            surveys.append(
                {
                    "idempotency_key": candidate.idempotency_key,
                    "customer_id": candidate.customer_id,
                    "phone_e164": candidate.phone_e164,
                    "sent_at": at.astimezone(dt.UTC).isoformat(),
                    "points": survey_points(
                        candidate, params.get((candidate.experiment_key, candidate.variant_key))
                    ),
                }
            )
    append_lines(Path(events_dir) / LINKS_FILE, links)
    append_lines(Path(events_dir) / SURVEYS_FILE, surveys)


class _Tail:
    """Reads the complete lines appended to a file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def new_records(self) -> list[dict[str, Any]]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size <= self._offset:
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read(size - self._offset)
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next call
        self._offset += end
        records = []
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                log.warning("%s: an unreadable line was skipped", self.path)
                continue
            if isinstance(record, dict):
                records.append(record)
        return records


@dataclass(frozen=True)
class Link:
    code: str
    target_url: str
    idempotency_key: str | None = None
    customer_id: str | None = None


class LinkStore:
    """Short codes and their stored targets, from `links.jsonl` (re-read on a miss)."""

    def __init__(self, events_dir: Path) -> None:
        self._tail = _Tail(Path(events_dir) / LINKS_FILE)
        self._links: dict[str, Link] = {}
        self._lock = threading.Lock()

    def _load(self) -> None:
        for r in self._tail.new_records():
            code, target = r.get("code"), r.get("target_url")
            if isinstance(code, str) and isinstance(target, str):
                self._links.setdefault(
                    code, Link(code, target, r.get("idempotency_key"), r.get("customer_id"))
                )

    def resolve(self, code: str) -> Link | None:
        with self._lock:
            if code not in self._links:
                self._load()
            return self._links.get(code)

    def register(self, link: Link) -> None:
        """Know a link without the journal (the simulator's own texts); the journal's wins."""
        with self._lock:
            self._load()
            self._links.setdefault(link.code, link)


@dataclass(frozen=True)
class Survey:
    idempotency_key: str
    customer_id: str | None
    phone_e164: str
    sent_at: dt.datetime
    points: int


class SurveyStore:
    """Feedback surveys sent, by phone, from `surveys.jsonl` (re-read before each lookup)."""

    def __init__(self, events_dir: Path) -> None:
        self._tail = _Tail(Path(events_dir) / SURVEYS_FILE)
        self._by_phone: dict[str, list[Survey]] = defaultdict(list)
        self._lock = threading.Lock()

    def _load(self) -> None:
        for r in self._tail.new_records():
            try:
                sent_at = dt.datetime.fromisoformat(r["sent_at"])
                survey = Survey(
                    str(r["idempotency_key"]),
                    r.get("customer_id"),
                    str(r["phone_e164"]),
                    sent_at if sent_at.tzinfo else sent_at.replace(tzinfo=dt.UTC),
                    int(r.get("points") or 0),
                )
            except (KeyError, TypeError, ValueError):
                log.warning("%s: a survey line without its fields was skipped", self._tail.path)
                continue
            self._by_phone[survey.phone_e164].append(survey)

    def answered_by(self, phone_e164: str, at: dt.datetime) -> Survey | None:
        """The survey a reply from `phone_e164` at `at` answers: the latest sent before it."""
        with self._lock:
            self._load()
            sent = [
                s
                for s in self._by_phone.get(phone_e164, [])
                if s.sent_at <= at < s.sent_at + SURVEY_REPLY_WINDOW
            ]
        return max(sent, key=lambda s: (s.sent_at, s.idempotency_key)) if sent else None
