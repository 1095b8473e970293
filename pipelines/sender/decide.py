"""Whether a due message goes now, waits, or never goes: the sending rules at send time.

The models decided hours ago who is due; this checks again at the moment of sending, because
consent, opt-outs and the clock move on (DESIGN section 6). Pure: every input is an argument.

Checks, in order: expiry, a valid phone, consent for the message's class, an opt-out recorded
after the models' consent state, quiet hours in every possible time zone, and the marketing
frequency cap. A held-out candidate that passes them all is "hold_out": the holdout's "would
have been sent".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pipelines.flows import FLOWS, MARKETING, TRANSACTIONAL
from pipelines.messaging.frequency import DEFAULT_CAPS, Caps, cap_decision, caps_for_state
from pipelines.messaging.quiet_hours import (
    AREA_CODE_PRESUMPTION_STATES,
    NoOpenWindow,
    Window,
    marketing_window,
    send_time,
    state_for_phone,
    state_rules,
    zones_for,
)

SEND, DEFER, SUPPRESS, HOLD_OUT = "send", "defer", "suppress", "hold_out"

# Variants of transactional flows whose text sells something: they are marketing (consent,
# quiet hours, cap and opt-out wording). An explicit list rather than guessing from the text.
MARKETING_TEMPLATES = frozenset({("order_confirmation", "upsell")})


@dataclass(frozen=True)
class Candidate:
    """One row of marts.message_candidates."""

    idempotency_key: str
    flow: str
    message_class: str
    customer_id: str | None
    phone_e164: str | None
    has_valid_phone: bool | None
    earliest_send_at: dt.datetime
    expires_at: dt.datetime
    template: str = "default"
    priority: int = 9
    is_held_out: bool = False
    order_id: str | None = None
    product_id: str | None = None
    experiment_key: str | None = None
    variant_key: str | None = None
    triggered_at: dt.datetime | None = None
    first_name: str | None = None
    order_number: str | None = None
    items_summary: str | None = None
    tracking_url: str | None = None
    product_title: str | None = None
    run_out_date: dt.date | None = None
    setup_url: str | None = None

    @property
    def effective_class(self) -> str:
        return effective_class(self.flow, self.template, self.message_class)


@dataclass(frozen=True)
class Recipient:
    """Consent (marts.consent_state) and whereabouts (int_customers_localized) of a customer."""

    customer_id: str
    can_receive_transactional: bool = False
    can_receive_marketing: bool = False
    consent_changed_at: dt.datetime | None = None
    consent_reason: str | None = None
    timezones: str | None = None  # "America/New_York|America/Chicago"
    state: str | None = None
    quiet_start_hour: int | None = None
    quiet_end_hour: int | None = None
    state_marketing_max_per_24h: int | None = None


@dataclass(frozen=True)
class Suppression:
    """An opt-out recorded after the models ran (ops.suppressions or the callback log)."""

    phone_e164: str
    reason: str
    recorded_at: dt.datetime
    # Recorded as it happened by the live callback service: it exists only once it happened,
    # so it binds every send from then on, even one whose logical time is earlier (the hourly
    # run for 10:00 that starts at 10:05 must honour a STOP of 10:02).
    realtime: bool = False


@dataclass(frozen=True)
class Decision:
    action: str  # send | defer | suppress | hold_out
    reason: str  # a short code, for grouping: quiet_hours, frequency_cap, opted_out, ...
    until: dt.datetime | None = None  # for defer: when to try again
    detail: str | None = None  # for people: the numbers behind the reason


def is_marketing_template(flow: str, template: str | None) -> bool:
    return (flow, template or "default") in MARKETING_TEMPLATES


def effective_class(flow: str, template: str | None, message_class: str | None = None) -> str:
    if is_marketing_template(flow, template):
        return MARKETING
    if message_class in (MARKETING, TRANSACTIONAL):
        return message_class
    return FLOWS[flow].message_class if flow in FLOWS else MARKETING


def within_experiment(
    candidate: Candidate, recipient: Recipient | None, marketing_experiments: frozenset[str]
) -> Candidate:
    """The candidate as sent, when its recipient could not get every variant of its experiment.

    An experiment whose variant sells (an upsell line) makes that variant marketing, which
    needs marketing consent; a transactional flow's text must still reach customers without
    it. So a customer who could not receive every variant gets the flow's default text, and is
    not in the experiment at all, in every arm: both arms then hold the same kind of customer
    (no sample-ratio mismatch, no bias), and no order goes unconfirmed because of a test.
    """
    if (
        candidate.experiment_key in marketing_experiments
        and not candidate.is_held_out
        and FLOWS.get(candidate.flow) is not None
        and FLOWS[candidate.flow].message_class == TRANSACTIONAL
        and not (recipient and recipient.can_receive_marketing)
    ):
        return replace(candidate, template="default", experiment_key=None, variant_key=None)
    return candidate


def window_for(recipient: Recipient | None, phone_e164: str | None) -> Window:
    """The strictest window of the seed's state rule, the model's hours and the area code."""
    window = marketing_window(recipient.state if recipient else None, phone_e164)
    if recipient and recipient.quiet_start_hour is not None and recipient.quiet_end_hour:
        window = window.intersect(Window(recipient.quiet_start_hour, recipient.quiet_end_hour))
    return window


def caps_for(recipient: Recipient | None, phone_e164: str | None, caps: Caps) -> Caps:
    """The configured caps plus any state ceiling (address state, or a presumed one by area)."""
    ceilings = []
    if recipient and recipient.state_marketing_max_per_24h is not None:
        ceilings.append(recipient.state_marketing_max_per_24h)
    phone_state = state_for_phone(phone_e164)
    if phone_state in AREA_CODE_PRESUMPTION_STATES:
        rule = state_rules()[phone_state]
        if rule.marketing_max_per_24h is not None:
            ceilings.append(rule.marketing_max_per_24h)
    return caps_for_state(caps, min(ceilings) if ceilings else None)


def late_opt_out(
    recipient: Recipient | None, suppressed: Sequence[Suppression], at: dt.datetime
) -> Suppression | None:
    """The latest opt-out known at `at` that the models' consent state has not overtaken.

    A later consent change in the models (a START) re-subscribes; an opt-out after it wins.
    """
    changed = recipient.consent_changed_at if recipient else None
    live = [
        s
        for s in suppressed
        if (s.recorded_at <= at or s.realtime) and (changed is None or s.recorded_at > changed)
    ]
    return max(live, key=lambda s: s.recorded_at) if live else None


def decide(
    candidate: Candidate,
    recipient: Recipient | None,
    at: dt.datetime,
    marketing_history: Sequence[dt.datetime],
    suppressed: Sequence[Suppression] = (),
    caps: Caps = DEFAULT_CAPS,
) -> Decision:
    """What to do with `candidate` at logical time `at` (aware, UTC).

    `marketing_history` holds the recipient's marketing send times (this run's included);
    `suppressed` the late opt-outs recorded for the candidate's phone.
    """
    if at >= candidate.expires_at:
        return Decision(SUPPRESS, "expired", detail=f"expired at {candidate.expires_at:%F %H:%M}Z")
    if not candidate.phone_e164 or candidate.has_valid_phone is False:
        return Decision(SUPPRESS, "no_valid_phone")
    klass = candidate.effective_class
    if recipient is None:
        return Decision(SUPPRESS, "no_consent", detail="no consent on record")
    if klass == MARKETING and not recipient.can_receive_marketing:
        return Decision(SUPPRESS, "no_marketing_consent", detail=recipient.consent_reason)
    if klass == TRANSACTIONAL and not recipient.can_receive_transactional:
        return Decision(SUPPRESS, "no_transactional_consent", detail=recipient.consent_reason)
    stop = late_opt_out(recipient, suppressed, at)
    if stop is not None:
        return Decision(
            SUPPRESS, "opted_out", detail=f"{stop.reason} at {stop.recorded_at:%F %H:%M}Z"
        )

    zones = zones_for(recipient.timezones, candidate.phone_e164)
    window = window_for(recipient, candidate.phone_e164)
    try:
        opens = send_time(at, candidate.flow, zones, window, klass)
    except NoOpenWindow:
        return Decision(SUPPRESS, "no_open_window", detail=f"{window} in {'|'.join(zones)}")
    if opens > at:
        return _defer(
            candidate,
            "quiet_hours",
            opens,
            f"{window.start_hour}:00-{window.end_hour}:00 local in {'|'.join(zones)}",
        )

    if klass == MARKETING:
        verdict = cap_decision(
            list(marketing_history), at, caps_for(recipient, candidate.phone_e164, caps)
        )
        if not verdict.allowed:
            return _defer(candidate, "frequency_cap", verdict.retry_at, verdict.reason)

    if candidate.is_held_out:
        return Decision(HOLD_OUT, "holdout", detail=candidate.experiment_key)
    return Decision(SEND, "due")


def _defer(candidate: Candidate, reason: str, until: dt.datetime | None, detail: str | None):
    # Waiting past the expiry would only drop it later; say so now, with the cause.
    if until is None or until >= candidate.expires_at:
        return Decision(SUPPRESS, f"{reason}_until_expiry", detail=detail)
    return Decision(DEFER, reason, until=until, detail=detail)
