"""What each callback means: plain functions from a Plivo form (or a click) to an event record,
with the side effects a reply demands (suppression, re-subscription, points) and the answer.

The web app (`app.py`) calls these after checking the signature and the body size, then writes
the record to the event log before answering. The simulator calls the very same functions with
the same forms, so the demo exercises them. Nothing here reads the wall clock: the time of
receipt is an argument.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipelines.callbacks import keywords, replies
from pipelines.callbacks.journal import Link, LinkStore, SurveyStore
from pipelines.callbacks.points import Credit, PointsStore
from pipelines.callbacks.replies import ReplyBranding
from pipelines.callbacks.suppressions import RESUBSCRIBE, SUPPRESS, record_consent_change
from pipelines.landing import ENTITIES
from pipelines.phones import normalize_phone
from pipelines.providers.base import mask_phone

log = logging.getLogger(__name__)

RECEIPT_STATUSES = ENTITIES["sms_delivery_receipts"].enums["status"]
# Which of Plivo's time fields says when each status happened.
STATUS_TIME_FIELD = {"queued": "QueuedTime", "sent": "SentTime"}
FINAL_TIME_FIELD = "DeliveryReportTime"
_MESSAGE_UUID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_OFFSET_SPACE = re.compile(r"\s+([+-]\d{2}:?\d{2}|Z)$")  # "... 15:00:01.123 +0000"
_SHORT_CODE = re.compile(r"^[0-9A-Za-z]{1,32}$")
MAX_TEXT = 5000  # longer than any SMS Plivo delivers (1,600 characters)
MAX_FIELD = 200
MAX_USER_AGENT = 512

# What the service did with an inbound text (the `action` column of inbound_messages).
OPT_OUT, OPT_IN, HELP, SCORE, TEXT = "opt_out", "opt_in", "help", "score", "text"


class BadCallback(ValueError):
    """A form the service cannot make an event of; answered 400 and kept in the rejects log."""


def iso(at: dt.datetime) -> str:
    """UTC with milliseconds and a Z: the landing contract's timestamps."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_plivo_time(value: str | None) -> dt.datetime | None:
    """Plivo's "2026-08-05 15:00:01 +0000" (or ISO 8601); naive means UTC; junk is None."""
    if not value or not value.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(_OFFSET_SPACE.sub(r"\1", value.strip()))
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _text(form: Mapping[str, str], name: str, limit: int = MAX_FIELD) -> str | None:
    value = form.get(name)
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    if len(value) > limit:
        raise BadCallback(f"{name} is {len(value)} characters long (limit {limit})")
    return value


def _message_uuid(form: Mapping[str, str]) -> str:
    value = _text(form, "MessageUUID", 64)
    if value is None:
        raise BadCallback("missing MessageUUID")
    if not _MESSAGE_UUID.match(value):
        raise BadCallback(f"MessageUUID {value[:40]!r} is not an id")
    return value


def _integer(form: Mapping[str, str], name: str) -> str | None:
    value = _text(form, name, 20)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise BadCallback(f"{name}={value!r} is not an integer") from None
    if number < 0:
        raise BadCallback(f"{name}={value!r} is negative")
    return str(number)


def _decimal(form: Mapping[str, str], name: str) -> str | None:
    value = _text(form, name, 32)
    if value is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadCallback(f"{name}={value!r} is not a number") from None
    if not number.is_finite():
        raise BadCallback(f"{name}={value!r} is not a finite number")
    return value


def _record(entity: str, row: dict[str, Any], received_at: dt.datetime) -> dict[str, Any]:
    return {"entity": entity, "row": row, "logged_at": iso(received_at)}


# --- delivery receipts ---------------------------------------------------------------------


def status_record(form: Mapping[str, str], received_at: dt.datetime) -> dict[str, Any]:
    """A delivery receipt's event record. Out-of-order and repeated receipts are all kept:
    the models take a message's status from its highest `Sequence`, and a repeat has the same
    key (message, status, time) and collapses in the ingest."""
    message_uuid = _message_uuid(form)
    status = (_text(form, "Status", 20) or "").lower()
    if status not in RECEIPT_STATUSES:
        raise BadCallback(f"Status {status!r} is not one of {', '.join(RECEIPT_STATUSES)}")
    time_field = STATUS_TIME_FIELD.get(status, FINAL_TIME_FIELD)
    occurred = (
        parse_plivo_time(form.get(time_field))
        or parse_plivo_time(form.get("MessageTime"))
        or received_at
    )
    row = {
        "message_uuid": message_uuid,
        "status": status,
        "occurred_at": iso(occurred),
        "sequence": _integer(form, "Sequence"),
        # Plivo sends "000" or nothing for no error; both mean none.
        "error_code": None
        if (code := _text(form, "ErrorCode", 20)) in (None, "0", "000")
        else code,
        "units": _integer(form, "Units"),
        "total_rate": _decimal(form, "TotalRate"),
        "total_amount": _decimal(form, "TotalAmount"),
        "mcc": _text(form, "MCC", 8),
        "mnc": _text(form, "MNC", 8),
    }
    return _record("sms_delivery_receipts", row, received_at)


# --- inbound texts -------------------------------------------------------------------------


@dataclass
class CallbackContext:
    """What the inbound and click handlers need besides the request: files under events_dir."""

    events_dir: Path
    branding: ReplyBranding
    links: LinkStore
    surveys: SurveyStore
    points: PointsStore
    # Who records the opt-outs: "callback" (live; binds at once) or "simulator" (replayed).
    source: str = "callback"

    @classmethod
    def open(
        cls, events_dir: Path, branding: ReplyBranding, source: str = "callback"
    ) -> CallbackContext:
        events_dir = Path(events_dir)
        events_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            events_dir,
            branding,
            LinkStore(events_dir),
            SurveyStore(events_dir),
            PointsStore(events_dir),
            source,
        )

    def close(self) -> None:
        self.points.close()


@dataclass
class Handled:
    record: dict[str, Any]
    reply: str | None = None  # the text to answer with, from `reply_from` to `reply_to`
    reply_from: str | None = None
    reply_to: str | None = None
    # Called once the record is in the log (the points store marks its credit as logged).
    on_logged: list[Callable[[], None]] = field(default_factory=list)

    def logged(self) -> None:
        for callback in self.on_logged:
            callback()

    @property
    def xml(self) -> str:
        return replies.plivo_xml(self.reply, self.reply_from, self.reply_to)


def _phone(raw: str | None) -> str | None:
    # Plivo writes numbers in E.164 without the "+".
    if raw is None:
        return None
    return normalize_phone("+" + raw if raw.isdigit() else raw)[0]


def handle_inbound(
    form: Mapping[str, str], ctx: CallbackContext, received_at: dt.datetime
) -> Handled:
    """Record an inbound text and act on it: STOP suppresses at once (the sender reads the
    suppression file before every send), START lifts that, HELP is answered, a 0-10 answer to a
    survey sent to this number earns its points once, and anything else is kept for support."""
    message_uuid = _message_uuid(form)
    sender = _text(form, "From", 32)
    if sender is None:
        raise BadCallback("missing From")
    ours = _text(form, "To", 32)
    text = form.get("Text") or ""
    if len(text) > MAX_TEXT:
        raise BadCallback(f"Text is {len(text)} characters long (limit {MAX_TEXT})")
    plivo_intent = _text(form, "MessageIntent", 20)
    phone = _phone(sender)
    row: dict[str, Any] = {
        "message_uuid": message_uuid,
        "from_number": sender,
        "to_number": ours,
        "text": text,
        "received_at": iso(received_at),
        "intent": plivo_intent,
        "action": TEXT,
        "survey_key": None,
        "score": None,
        "points": None,
    }
    b = ctx.branding

    def answer(action: str, reply: str | None) -> Handled:
        row["action"] = action
        return Handled(_record("inbound_messages", row, received_at), reply, ours, sender)

    intent = keywords.keyword_intent(text, plivo_intent)
    if intent == keywords.OPT_OUT:
        if phone:
            record_consent_change(
                ctx.events_dir,
                phone,
                received_at,
                SUPPRESS,
                _reason(text),
                message_uuid,
                ctx.source,
            )
            log.info("opt-out from %s recorded", mask_phone(phone))
        return answer(OPT_OUT, replies.stop_confirmation(b))
    if intent == keywords.OPT_IN:
        if phone:
            record_consent_change(
                ctx.events_dir,
                phone,
                received_at,
                RESUBSCRIBE,
                _reason(text),
                message_uuid,
                ctx.source,
            )
        return answer(OPT_IN, replies.start_confirmation(b))
    if intent == keywords.HELP:
        return answer(HELP, replies.help_answer(b))

    score = keywords.survey_score(text)
    survey = ctx.surveys.answered_by(phone, received_at) if score is not None and phone else None
    if score is None or survey is None:
        return answer(TEXT, None)  # for the support inbox; no automatic answer

    def make_record(credit: Credit) -> dict[str, Any]:
        row.update(
            action=SCORE,
            survey_key=survey.idempotency_key,
            score=str(score),
            points=str(credit.points),
        )
        return _record("inbound_messages", dict(row), received_at)

    credit, record = ctx.points.credit(message_uuid, survey, score, received_at, make_record)
    if credit.points:
        reply = replies.score_thanks(b, score, credit.points, credit.balance)
    else:
        reply = replies.score_already_counted(b, credit.balance)
    handled = Handled(record, reply, ours, sender)
    handled.on_logged.append(lambda: ctx.points.mark_logged(message_uuid))
    return handled


def _reason(text: str) -> str:
    return "reply: " + keywords.normalize(text)[:80]


# --- clicks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Click:
    link: Link
    record: dict[str, Any]


def safe_target(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def handle_click(
    code: str,
    user_agent: str | None,
    ctx: CallbackContext,
    clicked_at: dt.datetime,
    click_id: str | None = None,
) -> Click | None:
    """The click's event record and stored link, or None for a code that is not ours (404).

    Only targets the sender stored are ever redirected to, and only http(s) ones: the service
    is no open redirect."""
    if not _SHORT_CODE.match(code or ""):
        return None
    link = ctx.links.resolve(code)
    if link is None or not safe_target(link.target_url):
        return None
    row = {
        "click_id": click_id or f"clk_{uuid.uuid4().hex}",
        "short_code": code,
        "clicked_at": iso(clicked_at),
        "user_agent": (user_agent or "")[:MAX_USER_AGENT] or None,
    }
    return Click(link, _record("link_clicks", row, clicked_at))
