"""One send run: the candidates due at a logical time, decided, rendered and dispatched.

Delivery semantics (DESIGN section 6, "exactly once, or else at most once"):
- the outbox's primary key is the candidate's idempotency key, and a candidate with any
  outbox row is never read again;
- a message's row is committed in state `sending` before the provider is called, and the
  result is written after; only the main thread writes (workers just call the provider);
- a run that starts while rows are still `sending` knows their run died (the writer lock
  means no other sender is alive) and marks them `unknown`, "interrupted mid-send: not
  resent": the provider may have queued them, so resending could text someone twice.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipelines.callbacks.journal import record_outgoing
from pipelines.flows import MARKETING
from pipelines.messaging.frequency import Caps
from pipelines.messaging.rate_limit import InFlightLimit, TokenBucket, Unpaced
from pipelines.messaging.render import RenderError
from pipelines.outbox import (
    FAILED,
    HELD_OUT,
    SENDING,
    SENT,
    SUPPRESSED,
    UNKNOWN,
    ensure_sender_tables,
)
from pipelines.providers.base import Provider
from pipelines.sender.compose import Branding, Composed, compose
from pipelines.sender.decide import (
    DEFER,
    HOLD_OUT,
    SEND,
    SUPPRESS,
    Candidate,
    Decision,
    decide,
    within_experiment,
)
from pipelines.sender.dispatch import (
    Delivery,
    Outgoing,
    RetryPolicy,
    assign_uuids,
    batches,
    deliver,
)
from pipelines.sender.reads import (
    load_due,
    load_marketing_experiments,
    load_marketing_history,
    load_recipients,
    load_suppressions,
    load_variant_params,
)
from pipelines.sender.records import (
    insert_links,
    insert_outbox,
    outbox_row,
    record_decisions,
    recover_interrupted,
)
from pipelines.settings import SenderSettings
from pipelines.warehouse import Warehouse, with_frame


@dataclass(frozen=True)
class SendConfig:
    rate_per_second: float = 5.0
    max_in_flight: int = 100
    caps: Caps = field(default_factory=Caps.of)
    branding: Branding = field(
        default_factory=lambda: Branding(
            "Acme Goods",
            "help@acme.example",
            "https://go.example.com",
            "https://shop.example.com",
            Decimal("0.0055"),
        )
    )
    callback_url: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    events_dir: Path | None = None  # where the callback service appends suppressions.jsonl

    @classmethod
    def from_settings(cls, s: SenderSettings, events_dir: Path | None = None) -> SendConfig:
        return cls(
            rate_per_second=s.rate_per_second,
            max_in_flight=s.max_in_flight,
            caps=Caps.of(s.marketing_cap_per_24h, s.marketing_cap_per_7d),
            branding=Branding(
                s.brand_name,
                s.support_contact,
                s.short_link_domain,
                s.shop_url,
                Decimal(s.cost_per_segment),
            ),
            callback_url=s.status_callback_url,
            retry=RetryPolicy(s.max_attempts, s.retry_base_seconds, s.retry_cap_seconds),
            events_dir=events_dir,
        )

    def window(self, rate_per_second: float) -> int:
        """Requests committed as `sending` ahead of their answers.

        About two seconds of sending at the rate limit: more would only wait on the bucket,
        and every one of them becomes `unknown` if the run is killed.
        """
        return min(self.max_in_flight, max(4, math.ceil(2 * rate_per_second)))


_COUNTS = ("candidates", "sent", "held_out", "failed", "unknown", "recovered")


@dataclass
class SendReport:
    logical_time: dt.datetime
    provider: str
    candidates: int = 0
    sent: int = 0
    deferred: Counter = field(default_factory=Counter)
    suppressed: Counter = field(default_factory=Counter)
    held_out: int = 0
    failed: int = 0
    unknown: int = 0
    recovered: int = 0  # rows left `sending` by a killed run, now `unknown`
    requests: int = 0
    attempts: int = 0
    segments: int = 0
    cost: Decimal = Decimal(0)

    def add(self, other: SendReport) -> None:
        """Fold another run's counts into this one (the demo's hours into its days)."""
        for name in (*_COUNTS, "requests", "attempts", "segments", "cost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.deferred.update(other.deferred)
        self.suppressed.update(other.suppressed)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "logical_time": self.logical_time.isoformat(),
            "provider": self.provider,
            "candidates": self.candidates,
            "sent": self.sent,
            "deferred": sum(self.deferred.values()),
            "suppressed": sum(self.suppressed.values()),
            "held_out": self.held_out,
            "failed": self.failed,
            "unknown": self.unknown,
            "recovered_unknown": self.recovered,
            "requests": self.requests,
            "attempts": self.attempts,
            "segments": self.segments,
            "cost": str(self.cost),
            "deferred_by_reason": dict(self.deferred),
            "suppressed_by_reason": dict(self.suppressed),
        }


Progress = Callable[[int, int], None]


def _delivery_rows(
    delivery: Delivery,
    at: dt.datetime,
    report: SendReport,
    costs: dict[str, tuple[int, Decimal]],
) -> list[list[Any]]:
    """The outbox updates one finished request calls for, counted into the report."""
    report.requests += 1
    report.attempts += delivery.attempts
    updates: list[list[Any]] = []
    if delivery.result is not None:
        uuids = assign_uuids(delivery.batch, delivery.result)
        invalid = set(delivery.result.invalid_numbers)
        for message in delivery.batch.messages:
            uuid = uuids[message.idempotency_key]
            if uuid is not None:
                updates.append([message.idempotency_key, SENT, uuid, None, at])
            elif message.phone_e164 in invalid:
                updates.append(
                    [message.idempotency_key, FAILED, None, "provider rejected the number", None]
                )
            else:
                # Accepted but not matched to a uuid: it may be on its way.
                updates.append(
                    [message.idempotency_key, UNKNOWN, None, "no message uuid returned", None]
                )
    else:
        state = UNKNOWN if delivery.outcome == "ambiguous" else FAILED
        error = delivery.error
        if delivery.outcome == "retryable":
            error = f"gave up after {delivery.attempts} attempts: {error}"
        updates = [[m.idempotency_key, state, None, error, None] for m in delivery.batch.messages]
    for key, state, *_ in updates:
        if state == SENT:
            report.sent += 1
            segments, cost = costs[key]
            report.segments += segments
            report.cost += cost
        report.failed += state == FAILED
        report.unknown += state == UNKNOWN
    return [[*u, delivery.attempts] for u in updates]


_UPDATE_COLUMNS = {
    "idempotency_key": pl.String,
    "state": pl.String,
    "provider_message_uuid": pl.String,
    "last_error": pl.String,
    "sent_at": pl.Datetime("us", "UTC"),
    "attempts": pl.Int32,
}


def _write_deliveries(con: duckdb.DuckDBPyConnection, rows: list[list[Any]]) -> None:
    """The results of every request that finished since the last write, in one statement."""
    if not rows:
        return
    con.execute("begin")
    with_frame(
        con,
        pl.DataFrame(rows, schema=_UPDATE_COLUMNS, orient="row"),
        """update ops.outbox set state = u.state,
               provider_message_uuid = u.provider_message_uuid, last_error = u.last_error,
               sent_at = u.sent_at, finished_at = now(), attempts = u.attempts
           from {frame} as u where ops.outbox.idempotency_key = u.idempotency_key""",
    )
    con.execute("commit")


# -- the run -------------------------------------------------------------------------------


def send_due(
    warehouse: Warehouse,
    provider: Provider,
    at: dt.datetime,
    limit: int | None = None,
    config: SendConfig | None = None,
    progress: Progress | None = None,
) -> SendReport:
    """Decide, render and dispatch every candidate due at logical time `at` (aware)."""
    if at.tzinfo is None:
        raise ValueError("the logical time must be timezone-aware")
    at = at.astimezone(dt.UTC)
    config = config or SendConfig()
    report = SendReport(at, provider.name)
    with warehouse.connect() as con:
        ensure_sender_tables(con)
        report.recovered = recover_interrupted(con)
        candidates = load_due(con, at, limit)
        report.candidates = len(candidates)
        recipients = load_recipients(con, {c.customer_id for c in candidates if c.customer_id})
        suppressions = load_suppressions(con, config.events_dir, at)
        history = load_marketing_history(con, at)
        variant_params = load_variant_params(con)
        marketing_experiments = load_marketing_experiments(con)

        decided: list[tuple[Candidate, Decision]] = []
        final_rows: list[list[Any]] = []
        to_send: list[tuple[Candidate, Composed]] = []
        for planned in candidates:
            recipient = recipients.get(planned.customer_id)
            c = within_experiment(planned, recipient, marketing_experiments)
            decision = decide(
                c,
                recipient,
                at,
                history.get(c.phone_e164, []),
                suppressions.get(c.phone_e164, []),
                config.caps,
            )
            if c is not planned and decision.detail is None:
                decision = replace(
                    decision,
                    detail=f"outside {planned.experiment_key}: no marketing consent for "
                    "every variant, so the default text",
                )
            composed = None
            if decision.action in (SEND, HOLD_OUT):
                try:
                    composed = compose(
                        c, config.branding, variant_params.get((c.experiment_key, c.variant_key))
                    )
                except RenderError as exc:
                    decision = Decision(SUPPRESS, f"render_{exc.reason}", detail=str(exc))
            decided.append((c, decision))
            if decision.action == DEFER:
                report.deferred[decision.reason] += 1
            elif decision.action == SUPPRESS:
                report.suppressed[decision.reason] += 1
                reason = (
                    f"{decision.reason}: {decision.detail}" if decision.detail else decision.reason
                )
                final_rows.append(outbox_row(c, SUPPRESSED, at, provider.name, reason=reason))
            else:
                if c.effective_class == MARKETING:
                    # Counts at once, so a second marketing text this run meets the cap.
                    history.setdefault(c.phone_e164, []).append(at)
                if decision.action == HOLD_OUT:
                    report.held_out += 1
                    final_rows.append(
                        outbox_row(c, HELD_OUT, at, provider.name, composed, "holdout")
                    )
                else:
                    to_send.append((c, composed))

        con.execute("begin")
        record_decisions(con, at, decided)
        insert_outbox(con, final_rows, attempted=False)
        con.execute("commit")
        # Links and surveys go to the callback service's journal before any text leaves.
        record_outgoing(config.events_dir, at, to_send, variant_params)
        _dispatch(con, provider, at, to_send, config, report, progress)
    return report


# The window of a provider with no carrier behind it (dry-run): as wide as a real one's could be.
UNPACED_WINDOW_RATE = 1000.0


def _dispatch(
    con: duckdb.DuckDBPyConnection,
    provider: Provider,
    at: dt.datetime,
    to_send: list[tuple[Candidate, Composed]],
    config: SendConfig,
    report: SendReport,
    progress: Progress | None,
) -> None:
    paced = getattr(provider, "paced", True)
    bucket = TokenBucket(config.rate_per_second) if paced else Unpaced()
    window = config.window(config.rate_per_second if paced else UNPACED_WINDOW_RATE)
    in_flight = InFlightLimit(config.max_in_flight)
    by_key = {c.idempotency_key: (c, m) for c, m in to_send}
    costs = {key: (m.segments, m.cost) for key, (_, m) in by_key.items()}
    pending = batches(
        (Outgoing(c.idempotency_key, c.phone_e164, m.text) for c, m in to_send),
        bucket.window_cap,
    )
    total, done = len(to_send), 0
    if progress:
        progress(0, total)
    outstanding: set[Future[Delivery]] = set()
    pending.reverse()  # pop() from the end keeps the priority order
    # Requests start, and results are written, half a window at a time: one statement per
    # request would cost more than the request itself when the provider answers at once.
    half = max(1, window // 2)
    unwritten: list[list[Any]] = []
    with ThreadPoolExecutor(max_workers=window, thread_name_prefix="send") as pool:
        while pending or outstanding:
            if pending and len(outstanding) <= half:
                starting = [
                    pending.pop() for _ in range(min(len(pending), window - len(outstanding)))
                ]
                # The attempt is on disk before the provider hears of it.
                rows, composed = [], []
                for batch in starting:
                    for message in batch.messages:
                        c, m = by_key[message.idempotency_key]
                        rows.append(
                            outbox_row(
                                c, SENDING, at, provider.name, m, request_id=batch.request_id
                            )
                        )
                        composed.append(m)
                con.execute("begin")
                insert_outbox(con, rows, attempted=True)
                insert_links(con, composed)
                con.execute("commit")
                for batch in starting:
                    outstanding.add(
                        pool.submit(
                            deliver,
                            provider,
                            batch,
                            bucket,
                            in_flight,
                            config.retry,
                            config.callback_url,
                        )
                    )
            finished, outstanding = wait(outstanding, return_when=FIRST_COMPLETED)
            for future in finished:
                unwritten.extend(_delivery_rows(future.result(), at, report, costs))
            if len(unwritten) >= half or not outstanding:
                _write_deliveries(con, unwritten)
                done += len(unwritten)
                unwritten = []
                if progress:
                    progress(done, total)
