"""A provider whose recipients are the simulated shop's customers: the demo world answers.

Every send is accepted at once, and the world's answer to it (delivery receipts, link clicks,
replies, orders the text caused) is buffered until `flush()`. Receipts, replies and clicks then
go through the callback service's own handlers, in time order, exactly as Plivo's callbacks
and the phones' clicks would (in-process, without HTTP or signatures): a STOP is written to the
suppression file the sender reads, a survey answer earns its points, and every event is
appended to the event log in a segment of this provider's own, which is sealed and landed at
once. Orders are the shop's exports and are written to landing directly. Everything lands as
new, immutable files on the UTC day it happens, which is often after the send (a reorder five
days later lands five days later): the landing sensor and `postpurchase run` pick up new files
in past and future day folders alike.

Nothing here reads the wall clock: the send time is the sender's logical time, from `clock`
or `set_time`. What the world does with a message depends only on (seed, number, text, send
time), so reruns and any interleaving of worker threads give the same files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import polars as pl

from pipelines.callbacks.eventlog import EventLog
from pipelines.callbacks.handlers import (
    CallbackContext,
    Handled,
    handle_click,
    handle_inbound,
    status_record,
)
from pipelines.callbacks.journal import Link
from pipelines.callbacks.loading import land_segment
from pipelines.callbacks.replies import ReplyBranding
from pipelines.landing import ENTITIES, write_landing_file
from pipelines.providers.base import SendRequest, SendResult
from pipelines.settings import SenderSettings
from pipelines.simulator.recipients import WorldView
from pipelines.simulator.responses import (
    DEFAULT_BRAND_NUMBER,
    NAMESPACE,
    Event,
    Message,
    message_uuid,
    respond,
)

FILE_PREFIX = "sim-"
LOG_WRITER = "sim"  # its segments land as sim-<hash> files, like the orders
# Events the callback service receives; the rest (orders) are the shop's own exports.
CALLBACK_ENTITIES = frozenset({"sms_delivery_receipts", "inbound_messages", "link_clicks"})
FLUSH_AT_ROWS = 50_000  # buffered rows that trigger a flush, to bound memory on long runs
# Within a file rows are ordered by time, then key: the same rows give the same bytes.
_TIME_COLUMN = {
    "sms_delivery_receipts": "occurred_at",
    "inbound_messages": "received_at",
    "link_clicks": "clicked_at",
    "orders": "ordered_at",
    "order_lines": None,
}


class SimulatorProvider:
    """The demo world behind the `Provider` interface; see the module docstring."""

    name = "simulator"

    def __init__(
        self,
        landing_dir: Path,
        truth_dir: Path,
        *,
        seed: int = 7,
        clock: Callable[[], dt.datetime] | None = None,
        brand_number: str = DEFAULT_BRAND_NUMBER,
        flush_at_rows: int = FLUSH_AT_ROWS,
        events_dir: Path | None = None,
        branding: ReplyBranding | None = None,
    ) -> None:
        self.landing_dir = Path(landing_dir)
        # The callback service's folder: beside landing, as in every data directory.
        self.events_dir = Path(events_dir) if events_dir else self.landing_dir.parent / "events"
        defaults = SenderSettings()
        self.branding = branding or ReplyBranding(defaults.brand_name, defaults.support_contact)
        self._context: CallbackContext | None = None
        self._callbacks: list[Event] = []
        self.unresolved_clicks = 0  # clicks the service would answer 404
        self.truth_dir = Path(truth_dir)
        if self.truth_dir.resolve() == self.landing_dir.resolve() or (
            self.truth_dir.resolve().is_relative_to(self.landing_dir.resolve())
        ):
            raise ValueError(f"the truth ({truth_dir}) must live outside the landing root")
        self.seed = seed
        self.brand_number = brand_number
        self.flush_at_rows = flush_at_rows
        self._clock = clock if clock is not None else self._fixed_time
        self._now: dt.datetime | None = None
        self._world = WorldView(self.truth_dir, self.landing_dir)
        self._lock = threading.Lock()
        self._occurrences: Counter[tuple[str, str, dt.datetime]] = Counter()
        self._buffer: dict[tuple[str, dt.date], list[dict[str, str | None]]] = defaultdict(list)
        self._buffered = 0
        self._written: list[Path] = []

    # --- logical time --------------------------------------------------------------------------

    def set_time(self, at: dt.datetime) -> None:
        """The logical time of the next sends, when no `clock` was given (naive means UTC)."""
        self._now = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)

    def _fixed_time(self) -> dt.datetime:
        if self._now is None:
            raise RuntimeError(
                "SimulatorProvider has no logical time: pass clock= or call set_time() first"
            )
        return self._now

    def _sent_at(self) -> dt.datetime:
        at = self._clock()
        return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)

    # --- sending -------------------------------------------------------------------------------

    def send(self, request: SendRequest) -> SendResult:
        sent_at = self._sent_at()
        uuids = []
        for destination in request.destinations:
            key = (destination, request.text, sent_at)
            with self._lock:
                # Identical sends are interchangeable, so numbering them keeps ids unique
                # without making any of them depend on which thread came first.
                n = self._occurrences[key]
                self._occurrences[key] += 1
            msg_uuid = message_uuid(self.seed, destination, request.text, sent_at, n)
            msg = Message(msg_uuid, destination, request.text, sent_at)
            self._buffer_events(respond(msg, self._world, self.seed, self.brand_number))
            uuids.append(msg_uuid)
        api_id = str(uuid.uuid5(NAMESPACE, "\x00".join(uuids)))
        return SendResult(message_uuids=tuple(uuids), invalid_numbers=(), api_id=api_id)

    def _buffer_events(self, events: list[Event]) -> None:
        with self._lock:
            for event in events:
                if event.entity in CALLBACK_ENTITIES and event.callback is not None:
                    self._callbacks.append(event)
                else:
                    self._buffer[(event.entity, event.day)].append(event.row)
            self._buffered += len(events)
            full = self._buffered >= self.flush_at_rows
        if full:
            self.flush()

    # --- writing -------------------------------------------------------------------------------

    def flush(self) -> list[Path]:
        """Write everything buffered as new landing files (one per entity and day); returns them.

        A file's name is a hash of its content, so rewriting the same events is a no-op and
        two different batches never share a name.
        """
        with self._lock:
            buffer, self._buffer, self._buffered = self._buffer, defaultdict(list), 0
            callbacks, self._callbacks = self._callbacks, []
            written = [
                path
                for (entity, day), rows in sorted(buffer.items())
                if (path := self._write(entity, day, rows)) is not None
            ]
            written += self._through_callbacks(callbacks)
            self._written += written
        return written

    def _through_callbacks(self, events: list[Event]) -> list[Path]:
        """Hand receipts, replies and clicks to the callback handlers, log and land them."""
        if not events:
            return []
        if self._context is None:
            self._context = CallbackContext.open(self.events_dir, self.branding, "simulator")
        ctx = self._context
        # In time order, as they would arrive: the first answer to a survey is the one that
        # earns its points, whichever thread sent the survey first.
        events = sorted(events, key=lambda e: (e.at, e.entity, sorted(e.callback.items())))
        records, credited = [], []
        for event in events:
            form = event.callback
            if event.entity == "sms_delivery_receipts":
                records.append(status_record(form, event.at))
            elif event.entity == "inbound_messages":
                handled: Handled = handle_inbound(form, ctx, event.at)
                records.append(handled.record)
                credited.append(handled)
            else:
                # The phone opens the URL in its text. The sender journals every link it sends;
                # a text sent to the simulator directly (its tests) has a link no journal knows,
                # and the simulator vouches for it rather than lose every click to a 404.
                ctx.links.register(Link(form["code"], form["url"]))
                click = handle_click(
                    form["code"], form["user_agent"], ctx, event.at, click_id=form["click_id"]
                )
                if click is None:
                    self.unresolved_clicks += 1
                else:
                    records.append(click.record)
        log = EventLog(self.events_dir, LOG_WRITER)
        try:
            log.write(records)
            segment = log.rotate()
        finally:
            log.close()
        for handled in credited:
            handled.logged()
        return land_segment(segment, self.landing_dir) if segment else []

    def _write(self, entity: str, day: dt.date, rows: list[dict[str, str | None]]) -> Path | None:
        if not rows:
            return None
        spec = ENTITIES[entity]
        order = [c for c in (_TIME_COLUMN[entity], *spec.key) if c]
        rows = sorted(rows, key=lambda r: tuple(r[c] or "" for c in order))
        frame = pl.DataFrame(
            {c: [r.get(c) for r in rows] for c in spec.column_names},
            schema={c: pl.String for c in spec.column_names},
        )
        digest = hashlib.sha256()
        for row in frame.iter_rows():
            digest.update(repr(row).encode())
        name = f"{FILE_PREFIX}{digest.hexdigest()[:20]}"
        target = self.landing_dir / entity / day.isoformat() / f"{name}.parquet"
        if target.exists():
            return None  # the same events, written before: landing files are immutable
        return write_landing_file(frame, self.landing_dir, entity, day, name, "parquet")

    def close(self) -> None:
        """Flush what is left; the provider may still be used afterwards."""
        self.flush()
        with self._lock:
            if self._context is not None:
                self._context.close()
                self._context = None

    @property
    def written(self) -> list[Path]:
        """Every file this provider has written, in order."""
        with self._lock:
            return list(self._written)

    def __enter__(self) -> SimulatorProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
