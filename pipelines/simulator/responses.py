"""How the demo world answers one text: receipts, clicks, replies and the orders it causes.

`respond` is a pure function of (seed, message, world): every random draw comes from a stream
seeded by the message's uuid (itself derived from seed, number, text and send time), and every
per-person trait from a stream seeded by the customer id. So the same sends give the same
events whatever order, thread or process they arrive in. All events carry times after the
send's logical time; none reads the wall clock.

Receipts, replies and clicks also carry what the callback service would receive for them
(Plivo's form fields, or the clicked URL), so the provider can pass them through the service's
own handlers; orders are the shop's exports and go straight to landing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from pipelines.flows import FLOWS
from pipelines.messaging.encoding import MessageTooLong, segments
from pipelines.simulator import effects
from pipelines.simulator.legacy_sms import (
    CHATTER,
    HELP_WORDS,
    PLAIN_OPT_OUTS,
    PREVIEW_BOT,
    START_WORDS,
    STOP_WORDS,
    USER_AGENT_P,
    USER_AGENTS,
)
from pipelines.simulator.recipients import Product, Recipient, WorldView
from pipelines.simulator.texts import (
    Recognized,
    discount_percent,
    parse_day,
    recognize,
    short_code,
    urls,
)

# Namespace of every id the simulator makes up (message, reply and click ids).
NAMESPACE = uuid.UUID("6f1c2a52-3a0e-5d55-9a57-5c0b7e0d51a7")
ORDER_PREFIX = "SMS-"  # the shop's own order ids start with "O": never a collision
DEFAULT_BRAND_NUMBER = "18335550100"  # as Plivo spells numbers: no "+"
MAX_SEGMENTS_BILLED = 10  # Plivo's own maximum


@dataclass(frozen=True)
class Message:
    uuid: str
    destination: str
    text: str
    sent_at: dt.datetime  # aware, the sender's logical time


@dataclass(frozen=True)
class Event:
    entity: str
    at: dt.datetime
    row: dict[str, str | None]
    # For receipts, replies and clicks: what reaches the callback service (Plivo's form, or
    # the phone's GET of a short link), so they go through the service's own handlers.
    callback: dict[str, str] | None = None

    @property
    def day(self) -> dt.date:
        """The landing day: events land on the UTC day they happen."""
        return self.at.astimezone(dt.UTC).date()


def message_uuid(seed: int, destination: str, text: str, sent_at: dt.datetime, n: int) -> str:
    """The `n`-th identical send (0 first) of `text` to `destination` at `sent_at`."""
    stamp = sent_at.astimezone(dt.UTC).isoformat()
    return str(uuid.uuid5(NAMESPACE, f"{seed}\x00{destination}\x00{text}\x00{stamp}\x00{n}"))


def stream(seed: int, *parts: str) -> random.Random:
    """An independent random stream for one purpose: stable across runs and Python versions."""
    return random.Random(hashlib.sha256("\x00".join([str(seed), *parts]).encode()).digest())


def _uniform(seed: int, *parts: str) -> float:
    digest = hashlib.sha256("\x00".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def plivo_time(at: dt.datetime) -> str:
    """A time as Plivo's callbacks write it ("2026-08-05 15:00:01 +0000"), to the millisecond."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " +0000"


# Plivo's status callback names the status's own time in one of these fields.
_TIME_FIELD = {"queued": "QueuedTime", "sent": "SentTime"}


def _status_form(row: dict[str, str | None], msg: Message, brand: str, at: dt.datetime) -> dict:
    form = {
        "MessageUUID": row["message_uuid"],
        "Status": row["status"],
        "Sequence": row["sequence"],
        "To": msg.destination.lstrip("+"),
        "From": brand,
        "Type": "sms",
        "Units": row["units"],
        "TotalRate": row["total_rate"],
        "TotalAmount": row["total_amount"],
        "MCC": row["mcc"],
        "MNC": row["mnc"],
        "ErrorCode": row["error_code"],
        "MessageTime": plivo_time(msg.sent_at),
        _TIME_FIELD.get(row["status"] or "", "DeliveryReportTime"): plivo_time(at),
    }
    return {k: v for k, v in form.items() if v is not None}


def _after(at: dt.datetime, seconds: float) -> dt.datetime:
    # Whole milliseconds, so a time survives the trip through text unchanged.
    return at + dt.timedelta(milliseconds=round(seconds * 1000))


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


# --- delivery receipts -------------------------------------------------------------------------


def _network(seed: int, destination: str) -> tuple[str, str]:
    u = _uniform(seed, "network", destination)
    for network, p in zip(effects.NETWORKS, effects.NETWORK_P, strict=True):
        if u < p:
            return network
        u -= p
    return effects.NETWORKS[-1]


def _outcome(
    seed: int, msg: Message, known: bool, marketing: bool, rng: random.Random
) -> tuple[str, str | None]:
    """(final status, error code): a fixed number of draws whatever the outcome."""
    network_failure = rng.random() < effects.NETWORK_FAILURE_P
    spam = rng.random() < effects.SPAM_FILTER_P["marketing" if marketing else "transactional"]
    invalid = _uniform(seed, "invalid", msg.destination) < effects.INVALID_DESTINATION_P
    if not known or invalid:
        return "undelivered", "50"
    if network_failure:
        return "failed", "20"
    if spam:
        return "undelivered", "30"
    return "delivered", None


def _receipts(
    seed: int, msg: Message, status: str, code: str | None, rng: random.Random, brand: str
) -> tuple[list[Event], dt.datetime]:
    try:
        units = min(segments(msg.text), MAX_SEGMENTS_BILLED)
    except MessageTooLong:
        units = MAX_SEGMENTS_BILLED
    mcc, mnc = _network(seed, msg.destination)
    queued = _after(msg.sent_at, rng.uniform(0.05, 1.5))
    sent = _after(queued, rng.uniform(1, 5))
    final_delay = rng.uniform(3, 90) if status == "delivered" else rng.uniform(10, 600)
    steps = [("queued", queued, None)]
    if status == "failed":
        # Refused before reaching a carrier: no "sent", nothing billed.
        steps.append(("failed", _after(queued, rng.uniform(1, 4)), code))
    else:
        steps += [("sent", sent, None), (status, _after(sent, final_delay), code)]
    events = []
    for sequence, (state, at, error) in enumerate(steps, start=1):
        billed = units if status != "failed" else 0
        row = {
            "message_uuid": msg.uuid,
            "status": state,
            "occurred_at": iso(at),
            "sequence": str(sequence),
            "error_code": error,
            "units": str(units),
            "total_rate": effects.RATE_PER_SEGMENT,
            "total_amount": f"{billed * effects.RATE_MICRO_DOLLARS / 1_000_000:.5f}",
            # The network is known once the message leaves the queue.
            "mcc": None if state == "queued" else mcc,
            "mnc": None if state == "queued" else mnc,
        }
        events.append(Event("sms_delivery_receipts", at, row, _status_form(row, msg, brand, at)))
    return events, steps[-1][1]


# --- caused orders -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Offer:
    product: Product
    probability: float
    window_days: float
    discount: int
    bulk_p: float


def _offer(
    msg: Message, seen: Recognized | None, person: Recipient, world: WorldView
) -> _Offer | None:
    """What the text offers to sell, and the true chance it sells it."""
    if seen is None:
        return None
    upsell = seen.flow == "order_confirmation" and "product" in seen.values
    if seen.flow != "replenishment_reminder" and not upsell:
        return None
    title = seen.value_from("product", world.titles())
    product = world.product_by_title(title) if title else None
    if product is None:
        return None
    discount = discount_percent(seen.text)
    if upsell:
        p, window, bulk = effects.UPSELL_ORDER_P, effects.UPSELL_WINDOW_DAYS, 0.0
    else:
        local = msg.sent_at.astimezone(ZoneInfo(person.timezone)).date()
        run_out = parse_day(seen.values.get("run_out_date", ""), local)
        lead = (run_out - local).days if run_out else None
        p = effects.reorder_probability(lead)
        window, bulk = effects.REORDER_WINDOW_DAYS, effects.BULK_QUANTITY_P
        dropped = world.dropped_at(person.customer_id, product.product_id)
        if dropped is not None and dropped <= msg.sent_at:
            p *= effects.DROPPED_PRODUCT_FACTOR
    if person.churned_at is not None and person.churned_at <= msg.sent_at:
        p *= effects.CHURNED_FACTOR
    return _Offer(product, min(1.0, p * effects.discount_factor(discount)), window, discount, bulk)


def caused_order_id(message_uuid: str) -> str:
    """The id of the order a message caused: one per message at most, never a shop order id."""
    return ORDER_PREFIX + hashlib.sha256(message_uuid.encode()).hexdigest()[:12].upper()


def _order(
    msg: Message, offer: _Offer, person: Recipient, at: dt.datetime, bulk: bool
) -> list[Event]:
    order_id = caused_order_id(msg.uuid)
    unit = round(offer.product.price_cents(at) * (100 - offer.discount) / 100)
    quantity = 2 if bulk else 1
    physical = not offer.product.digital
    return [
        Event(
            "orders",
            at,
            {
                "order_id": order_id,
                "customer_id": person.customer_id,
                "ordered_at": iso(at),
                "currency": "USD",
                "total_amount": _money(unit * quantity),
                "fulfillment_type": "physical" if physical else "digital",
                "shipping_postal_code": person.postal_code if physical else None,
                "shipping_region": person.region if physical else None,
                "shipping_city": None,
                "shipping_country": (person.country or "US") if physical else None,
                "status": "paid",
                "updated_at": iso(at),
            },
        ),
        Event(
            "order_lines",
            at,
            {
                "order_id": order_id,
                "line_id": "1",
                "product_id": offer.product.product_id,
                "quantity": str(quantity),
                "unit_price": _money(unit),
            },
        ),
    ]


# --- clicks and replies ------------------------------------------------------------------------


def _link(seen: Recognized | None, text: str) -> str | None:
    """The text's own short link; a carrier's tracking URL is not ours to count."""
    if seen is not None:
        return seen.values.get("link")
    found = urls(text)
    return found[0] if found else None


def _click(msg: Message, link: str, code: str, n: int, at: dt.datetime, agent: str) -> Event:
    click_id = "clk_" + hashlib.sha256(f"{msg.uuid}\x00{n}".encode()).hexdigest()[:16]
    return Event(
        "link_clicks",
        at,
        {"click_id": click_id, "short_code": code, "clicked_at": iso(at), "user_agent": agent},
        {"url": link, "code": code, "user_agent": agent, "click_id": click_id},
    )


def _inbound(
    msg: Message, n: int, at: dt.datetime, text: str, intent: str | None, brand: str
) -> Event:
    row = {
        "message_uuid": str(uuid.uuid5(NAMESPACE, f"{msg.uuid}\x00reply\x00{n}")),
        "from_number": msg.destination.lstrip("+"),  # Plivo drops the "+"
        "to_number": brand,
        "text": text,
        "received_at": iso(at),
        "intent": intent,
    }
    form = {
        "MessageUUID": row["message_uuid"],
        "From": row["from_number"],
        "To": brand,
        "Text": text,
        "Type": "sms",
        "Units": "1",
        **({"MessageIntent": intent} if intent else {}),
    }
    return Event("inbound_messages", at, row, form)


def satisfaction(seed: int, customer_id: str) -> float:
    """A customer's mean survey score (0-10): a trait, the same in every survey they get."""
    a, b = effects.SATISFACTION_BETA
    return 10 * stream(seed, "satisfaction", customer_id).betavariate(a, b)


def _replies(
    seed: int,
    msg: Message,
    seen: Recognized | None,
    person: Recipient,
    delivered_at: dt.datetime,
    rng: random.Random,
    brand: str,
) -> list[Event]:
    upsell = seen is not None and seen.flow == "order_confirmation" and "product" in seen.values
    shares = effects.reply_shares(seen.flow if seen else None, upsell)
    u, pick, delay, restart, restart_days = (rng.random() for _ in range(5))
    at = _after(delivered_at, 20 + rng.lognormvariate(5.5, 1.2))  # median about 4 minutes
    kinds = (
        ("stop", shares.stop),
        ("plain_opt_out", shares.plain_opt_out),
        ("help", shares.help),
        ("chatter", shares.chatter),
        ("score", shares.score),
    )
    kind = None
    for name, p in kinds:
        if u < p:
            kind = name
            break
        u -= p
    if kind is None:
        return []
    if kind == "score":
        mean = satisfaction(seed, person.customer_id)
        score = max(0, min(10, round(rng.gauss(mean, effects.SCORE_SD))))
        # People answer a survey when they get to it, not at once.
        at = _after(delivered_at, 60 + delay * 6 * 3600)
        return [_inbound(msg, 0, at, str(score), None, brand)]
    words = {"stop": STOP_WORDS, "plain_opt_out": PLAIN_OPT_OUTS, "help": HELP_WORDS}
    text = words.get(kind, CHATTER)
    intent = {"stop": "optout", "help": "help"}.get(kind)
    events = [_inbound(msg, 0, at, text[int(pick * len(text))].strip(), intent, brand)]
    if kind == "stop" and restart < effects.RESTART_P:
        back = _after(at, 86_400 * (1 + 19 * restart_days))
        word = START_WORDS[int(pick * len(START_WORDS))]
        events.append(_inbound(msg, 1, back, word, "optin", brand))
    return events


# --- the whole answer --------------------------------------------------------------------------


def respond(
    msg: Message, world: WorldView, seed: int, brand_number: str = DEFAULT_BRAND_NUMBER
) -> list[Event]:
    """Every event the world produces in answer to one sent text."""
    rng = stream(seed, "message", msg.uuid)
    seen = recognize(msg.text)
    person = world.recipient(msg.destination)
    upsell = seen is not None and seen.flow == "order_confirmation" and "product" in seen.values
    marketing = upsell or (seen is not None and FLOWS[seen.flow].is_marketing)
    status, code = _outcome(seed, msg, person is not None, marketing, rng)
    events, final_at = _receipts(seed, msg, status, code, rng, brand_number)
    if status != "delivered" or person is None:
        return events

    churned = person.churned_at is not None and person.churned_at <= msg.sent_at
    offer = _offer(msg, seen, person, world)
    converts = offer is not None and rng.random() < offer.probability
    same_day, spread, bulk_u = rng.random(), rng.random(), rng.random()

    link = _link(seen, msg.text)
    code_ = short_code(link) if link else None
    click_u, again_u, bot_u = rng.random(), rng.random(), rng.random()
    first_click = _after(final_at, 10 + rng.lognormvariate(7.1, 1.3))  # median about 20 min
    second_click = _after(first_click, 60 + rng.lognormvariate(10.0, 1.0))
    agents = rng.choices(USER_AGENTS, weights=USER_AGENT_P, k=2)

    if converts and offer is not None:
        if same_day < effects.SAME_DAY_SHARE:
            delay = 120 + spread * 10 * 3600
        else:
            delay = 86_400 * (1 + spread * (offer.window_days - 1.05))
        order_at = _after(final_at, delay)
        clicked = code_ is not None and click_u < effects.CONVERTER_CLICK_P
        if clicked:
            # The tap comes first: the order follows the click, never the other way round.
            first_click = min(first_click, _after(order_at, -90))
            order_at = max(order_at, _after(first_click, 90))
        events += _order(msg, offer, person, order_at, bulk_u < offer.bulk_p)
    else:
        click_p = effects.CLICK_P.get(seen.flow, 0.0) if seen else effects.OTHER_CLICK_P
        clicked = code_ is not None and click_u < click_p * (0.5 if churned else 1.0)

    if code_ is not None:
        if bot_u < effects.PREVIEW_BOT_P:
            bot_at = _after(final_at, 1 + 2 * bot_u)
            events.append(_click(msg, link, code_, 0, bot_at, PREVIEW_BOT))
        if clicked:
            events.append(_click(msg, link, code_, 1, first_click, agents[0]))
            if again_u < effects.SECOND_CLICK_P:
                events.append(_click(msg, link, code_, 2, second_click, agents[1]))

    events += _replies(seed, msg, seen, person, final_at, rng, brand_number)
    return events
