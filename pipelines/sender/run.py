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
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from pipelines.callbacks.journal import record_outgoing
from pipelines.flows import FLOWS, MARKETING
from pipelines.messaging.frequency import Caps
from pipelines.messaging.rate_limit import InFlightLimit, TokenBucket
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
    Recipient,
    Suppression,
    decide,
)
from pipelines.sender.dispatch import (
    Batch,
    Delivery,
    Outgoing,
    RetryPolicy,
    assign_uuids,
    batches,
    deliver,
)
from pipelines.settings import SenderSettings
from pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted mid-send: not resent"
# Marketing sends older than the longest cap window cannot matter.
HISTORY_WINDOW = dt.timedelta(days=7)

CANDIDATE_COLUMNS = (
    "idempotency_key, flow, message_class, customer_id, phone_e164, has_valid_phone, "
    "earliest_send_at, expires_at, template, priority, is_held_out, order_id, product_id, "
    "experiment_key, variant_key, triggered_at, first_name, order_number, items_summary, "
    "tracking_url, product_title, run_out_date, setup_url"
)


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

    @property
    def window(self) -> int:
        """Requests committed as `sending` ahead of their answers.

        About two seconds of sending at the rate limit: more would only wait on the bucket,
        and every one of them becomes `unknown` if the run is killed.
        """
        return min(self.max_in_flight, max(4, math.ceil(2 * self.rate_per_second)))


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


# -- reading -------------------------------------------------------------------------------


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def load_due(
    con: duckdb.DuckDBPyConnection, at: dt.datetime, limit: int | None = None
) -> list[Candidate]:
    """Candidates due at `at` that no outbox row has handled, most urgent first.

    Expired ones are read too, so their end is recorded rather than silently dropped.
    """
    if not _table_exists(con, "marts", "message_candidates"):
        raise RuntimeError("marts.message_candidates does not exist: build the dbt models first")
    sql = f"""
        select {CANDIDATE_COLUMNS}
        from marts.message_candidates c
        where c.earliest_send_at <= ?
            and not exists (
                select 1 from ops.outbox o where o.idempotency_key = c.idempotency_key
            )
        order by c.priority, c.earliest_send_at, c.idempotency_key
    """
    params: list[Any] = [at]
    if limit is not None:
        sql += " limit ?"
        params.append(limit)
    names = [n.strip() for n in CANDIDATE_COLUMNS.split(",")]
    return [
        Candidate(**dict(zip(names, row, strict=True)))
        for row in con.execute(sql, params).fetchall()
    ]


def load_recipients(con: duckdb.DuckDBPyConnection, customer_ids: set[str]) -> dict[str, Recipient]:
    """Consent joined to whereabouts; a customer missing from consent_state has none."""
    if not customer_ids:
        return {}
    localized = _table_exists(con, "intermediate", "int_customers_localized")
    where = (
        """l.timezones, l.state, l.quiet_start_hour, l.quiet_end_hour,
           l.state_marketing_max_per_24h"""
        if localized
        else "null, null, null, null, null"
    )
    join = (
        "left join intermediate.int_customers_localized l using (customer_id)" if localized else ""
    )
    con.execute("create or replace temp table _send_customers (customer_id varchar)")
    con.executemany("insert into _send_customers values (?)", [[c] for c in customer_ids])
    rows = con.execute(
        f"""
        select s.customer_id, s.can_receive_transactional, s.can_receive_marketing,
               s.last_changed_at, s.last_change_reason, {where}
        from marts.consent_state s
        {join}
        where s.customer_id in (select customer_id from _send_customers)
        """
    ).fetchall()
    return {row[0]: Recipient(*row) for row in rows}


def load_suppressions(
    con: duckdb.DuckDBPyConnection, events_dir: Path | None, at: dt.datetime
) -> dict[str, list[Suppression]]:
    """Opt-outs recorded after the models ran: ops.suppressions and the callback service's log.

    Only those recorded by `at` count, so a backfill sees what was known then; except the
    live callback service's (source "callback"), which exist only once they happened and
    so bind every send from then on, whatever its logical time.
    """
    found: dict[str, list[Suppression]] = defaultdict(list)
    rows = con.execute(
        "select phone_e164, reason, recorded_at from ops.suppressions where recorded_at <= ?",
        [at],
    ).fetchall()
    for phone, reason, recorded_at in rows:
        found[phone].append(Suppression(phone, reason or "opt-out", recorded_at))
    # A START in the log (action "resubscribe") lifts the opt-outs recorded for its number up
    # to that moment; an opt-out at the same instant still wins.
    resubscribed: dict[str, dt.datetime] = {}
    log_file = events_dir / "suppressions.jsonl" if events_dir else None
    if log_file and log_file.exists():
        for line_no, line in enumerate(log_file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                recorded_at = dt.datetime.fromisoformat(event["recorded_at"])
                if recorded_at.tzinfo is None:
                    recorded_at = recorded_at.replace(tzinfo=dt.UTC)
                phone = event["phone_e164"]
            except (ValueError, KeyError, TypeError):
                # A torn last line from a writer that died: skip it, never the whole log.
                log.warning("%s line %d is not a suppression event; skipped", log_file, line_no)
                continue
            realtime = event.get("source") == "callback"
            if recorded_at > at and not realtime:
                continue
            if event.get("action") == "resubscribe":
                resubscribed[phone] = max(recorded_at, resubscribed.get(phone, recorded_at))
            else:
                found[phone].append(
                    Suppression(phone, event.get("reason") or "opt-out", recorded_at, realtime)
                )
    for phone, when in resubscribed.items():
        found[phone] = [s for s in found[phone] if s.recorded_at >= when]
    return found


def load_marketing_history(
    con: duckdb.DuckDBPyConnection, at: dt.datetime
) -> dict[str, list[dt.datetime]]:
    """Marketing send times per phone. Unknown and held-out rows count: an unknown may have
    arrived, and a holdout's slot stays taken so its arm differs from the others only in the
    held-out flow."""
    rows = con.execute(
        """
        select phone_e164, coalesce(sent_at, decided_at), flow, message_class
        from ops.outbox
        where state in (?, ?, ?, ?) and phone_e164 is not null
            and coalesce(sent_at, decided_at) > ?
        """,
        [SENT, UNKNOWN, SENDING, HELD_OUT, at - HISTORY_WINDOW],
    ).fetchall()
    history: dict[str, list[dt.datetime]] = defaultdict(list)
    for phone, when, flow, klass in rows:
        marketing = klass == MARKETING if klass else (flow not in FLOWS or FLOWS[flow].is_marketing)
        if marketing and when is not None:
            history[phone].append(when)
    return history


def load_variant_params(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict]:
    """(experiment, variant) -> the flow parameters the variant sets (discount, points)."""
    if not _table_exists(con, "staging", "stg_experiments__variants"):
        return {}
    rows = con.execute(
        "select experiment_key, variant_key, params from staging.stg_experiments__variants"
    ).fetchall()
    return {(e, v): json.loads(p) if p else {} for e, v, p in rows}


def latest_logical_time(con: duckdb.DuckDBPyConnection) -> dt.datetime | None:
    """The end of the latest ingested day: the logical time the daily build last ran for."""
    if not _table_exists(con, "ops", "ingest_files"):
        return None
    day = con.execute("select max(partition_date) from ops.ingest_files").fetchone()[0]
    if day is None:
        return None
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


# -- writing -------------------------------------------------------------------------------


def recover_interrupted(con: duckdb.DuckDBPyConnection) -> int:
    """Rows a killed run left `sending` become `unknown`; returns how many."""
    count = con.execute("select count(*) from ops.outbox where state = ?", [SENDING]).fetchone()[0]
    if count:
        con.execute(
            """update ops.outbox set state = ?, last_error = ?, finished_at = now()
               where state = ?""",
            [UNKNOWN, INTERRUPTED, SENDING],
        )
        log.warning("%d outbox row(s) were left mid-send by a killed run: marked unknown", count)
    return count


def _record_decisions(
    con: duckdb.DuckDBPyConnection,
    at: dt.datetime,
    decided: list[tuple[Candidate, Decision]],
) -> None:
    # A deferral repeated unchanged every hour says nothing new: keep only the first.
    previous = dict(
        (key, (action, reason, until))
        for key, action, reason, until in con.execute(
            """select idempotency_key, action, reason, defer_until from ops.send_decisions
               where logical_time < ?
               qualify row_number() over (
                   partition by idempotency_key order by logical_time desc) = 1""",
            [at],
        ).fetchall()
    )
    rows = [
        [
            c.idempotency_key,
            at,
            d.action,
            d.reason,
            d.detail,
            d.until,
            c.flow,
            c.effective_class,
            c.template,
            c.customer_id,
            c.phone_e164,
            c.experiment_key,
            c.variant_key,
        ]
        for c, d in decided
        if previous.get(c.idempotency_key) != (d.action, d.reason, d.until)
    ]
    if rows:
        con.executemany(
            """insert or replace into ops.send_decisions
               (idempotency_key, logical_time, action, reason, detail, defer_until, flow,
                message_class, template, customer_id, phone_e164, experiment_key, variant_key,
                recorded_at)
               values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())""",
            rows,
        )


def _outbox_row(
    c: Candidate,
    state: str,
    at: dt.datetime,
    provider: str,
    composed: Composed | None = None,
    reason: str | None = None,
    request_id: str | None = None,
) -> list[Any]:
    return [
        c.idempotency_key,
        c.flow,
        c.effective_class,
        c.customer_id,
        c.order_id,
        c.phone_e164,
        c.experiment_key,
        c.variant_key,
        c.template,
        composed.text if composed else None,
        composed.encoding if composed else None,
        composed.segments if composed else None,
        composed.cost if composed else None,
        state,
        provider,
        reason,
        request_id,
        at,
    ]


def _insert_outbox(con: duckdb.DuckDBPyConnection, rows: list[list[Any]], attempted: bool) -> None:
    if not rows:
        return
    con.executemany(
        f"""insert into ops.outbox
            (idempotency_key, flow, message_class, customer_id, order_id, phone_e164,
             experiment_key, variant_key, template, body, encoding, segments, cost, state,
             provider, reason, request_id, decided_at, attempts, attempted_at)
            values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0,
                    {"now()" if attempted else "null"})""",
        rows,
    )


def _insert_links(con: duckdb.DuckDBPyConnection, composed: list[Composed]) -> None:
    rows = [
        [link.code, link.idempotency_key, link.customer_id, link.target_url]
        for message in composed
        for link in message.links
    ]
    if rows:
        con.executemany(
            """insert into ops.short_links (code, idempotency_key, customer_id, target_url,
               created_at) values (?, ?, ?, ?, now()) on conflict do nothing""",
            rows,
        )


def _write_delivery(
    con: duckdb.DuckDBPyConnection,
    delivery: Delivery,
    at: dt.datetime,
    report: SendReport,
    costs: dict[str, tuple[int, Decimal]],
) -> None:
    report.requests += 1
    report.attempts += delivery.attempts
    keys = [m.idempotency_key for m in delivery.batch.messages]
    updates: list[list[Any]] = []
    if delivery.result is not None:
        uuids = assign_uuids(delivery.batch, delivery.result)
        invalid = set(delivery.result.invalid_numbers)
        for message in delivery.batch.messages:
            uuid = uuids[message.idempotency_key]
            if uuid is not None:
                updates.append([SENT, uuid, None, at, message.idempotency_key])
            elif message.phone_e164 in invalid:
                updates.append(
                    [FAILED, None, "provider rejected the number", None, message.idempotency_key]
                )
            else:
                # Accepted but not matched to a uuid: it may be on its way.
                updates.append(
                    [UNKNOWN, None, "no message uuid returned", None, message.idempotency_key]
                )
    else:
        state = UNKNOWN if delivery.outcome == "ambiguous" else FAILED
        error = delivery.error
        if delivery.outcome == "retryable":
            error = f"gave up after {delivery.attempts} attempts: {error}"
        updates = [[state, None, error, None, key] for key in keys]
    con.execute("begin")
    con.executemany(
        """update ops.outbox set state = ?, provider_message_uuid = ?, last_error = ?,
               sent_at = ?, finished_at = now(), attempts = ?
           where idempotency_key = ?""",
        [[*u[:4], delivery.attempts, u[4]] for u in updates],
    )
    con.execute("commit")
    sent = {u[4] for u in updates if u[0] == SENT}
    report.sent += len(sent)
    report.failed += sum(u[0] == FAILED for u in updates)
    report.unknown += sum(u[0] == UNKNOWN for u in updates)
    for key in sent:
        segments, cost = costs[key]
        report.segments += segments
        report.cost += cost


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

        decided: list[tuple[Candidate, Decision]] = []
        final_rows: list[list[Any]] = []
        to_send: list[tuple[Candidate, Composed]] = []
        for c in candidates:
            decision = decide(
                c,
                recipients.get(c.customer_id),
                at,
                history.get(c.phone_e164, []),
                suppressions.get(c.phone_e164, []),
                config.caps,
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
                final_rows.append(_outbox_row(c, SUPPRESSED, at, provider.name, reason=reason))
            else:
                if c.effective_class == MARKETING:
                    # Counts at once, so a second marketing text this run meets the cap.
                    history.setdefault(c.phone_e164, []).append(at)
                if decision.action == HOLD_OUT:
                    report.held_out += 1
                    final_rows.append(
                        _outbox_row(c, HELD_OUT, at, provider.name, composed, "holdout")
                    )
                else:
                    to_send.append((c, composed))

        con.execute("begin")
        _record_decisions(con, at, decided)
        _insert_outbox(con, final_rows, attempted=False)
        con.execute("commit")
        # Links and surveys go to the callback service's journal before any text leaves.
        record_outgoing(config.events_dir, at, to_send, variant_params)
        _dispatch(con, provider, at, to_send, config, report, progress)
    return report


def _dispatch(
    con: duckdb.DuckDBPyConnection,
    provider: Provider,
    at: dt.datetime,
    to_send: list[tuple[Candidate, Composed]],
    config: SendConfig,
    report: SendReport,
    progress: Progress | None,
) -> None:
    bucket = TokenBucket(config.rate_per_second)
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
    with ThreadPoolExecutor(max_workers=config.window, thread_name_prefix="send") as pool:
        while pending or outstanding:
            starting: list[Batch] = []
            while pending and len(outstanding) + len(starting) < config.window:
                starting.append(pending.pop())
            if starting:
                # The attempt is on disk before the provider hears of it.
                rows, composed = [], []
                for batch in starting:
                    for message in batch.messages:
                        c, m = by_key[message.idempotency_key]
                        rows.append(
                            _outbox_row(
                                c, SENDING, at, provider.name, m, request_id=batch.request_id
                            )
                        )
                        composed.append(m)
                con.execute("begin")
                _insert_outbox(con, rows, attempted=True)
                _insert_links(con, composed)
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
                delivery = future.result()
                _write_delivery(con, delivery, at, report, costs)
                done += len(delivery.batch.messages)
                if progress:
                    progress(done, total)
