"""The SMS history the brand brings from its previous texting tool, exported once on day 0.

Shipping updates and two campaigns (a promotion with a link, a "reply 0-10" survey) from the
last months before the window, with Plivo-style delivery receipts, the replies they drew (STOP,
HELP, scores, chatter, and opt-outs in plain words the old tool missed) and link clicks,
including the link-preview bots that "click" within seconds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.simulator.clock import DAY, HOUR, MINUTE, Clock, iso_text, styles
from pipelines.simulator.people import Customers
from pipelines.simulator.purchases import Orders
from pipelines.simulator.shipping import Shipments
from pipelines.simulator.tables import int_text, pick, table, within_window

LEGACY_DAYS = 90
BRAND_NUMBER = "18335550100"  # the old tool's toll-free sender, as Plivo spells numbers
CAMPAIGN_DAYS_BEFORE = (63, 21)  # promotion, survey
CAMPAIGN_REACH = 0.4
SHIPPING_UPDATE_P = 0.6  # the old tool texted most, not all, shipments

SHIPPING, PROMOTION, SURVEY = range(3)

RECEIPT_STATUSES = ("queued", "sent", "delivered", "undelivered", "failed")
# Plivo error codes: 20/200 fail at the provider, 30/50 come back from the carrier.
FAILED_CODES = ("20", "200")
UNDELIVERED_CODES = ("30", "50")
NETWORKS = (("310", "260"), ("310", "410"), ("311", "480"), ("311", "580"))
NETWORK_P = (0.35, 0.35, 0.27, 0.03)
RATE_MICRO_DOLLARS = 5_500  # per segment

STOP_WORDS = ("STOP", "Stop", "stop", "STOP ", "UNSUBSCRIBE", "Cancel", "STOPALL", "End")
PLAIN_OPT_OUTS = ("stop texting me", "no more texts please", "please remove me from this list")
HELP_WORDS = ("HELP", "help", "INFO")
START_WORDS = ("START", "Unstop")
CHATTER = (
    "love it!",
    "Thanks!",
    "thank you \U0001f64f",
    "When will my order arrive?",
    "ok",
    "Can I change my address?",
    "\U0001f44d",
    "is this the right number for support?",
)
SCORE_P = np.array([2, 1, 1, 1, 2, 4, 5, 10, 15, 20, 25], dtype=float)  # replies "0".."10"

USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S921U) AppleWebKit/537.36 "
    "(KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 Instagram 340.0.0.22.109",
)
USER_AGENT_P = (0.5, 0.25, 0.17, 0.08)
PREVIEW_BOT = "facebookexternalhit/1.1 Facebot Twitterbot/1.0"  # iMessage link previews
PREVIEW_P = 0.2


@dataclass(frozen=True)
class LegacySms:
    receipts: pl.DataFrame
    inbound: pl.DataFrame
    clicks: pl.DataFrame
    # Opt-outs and re-subscriptions the old tool recorded, for the consent export.
    keyword_customer: np.ndarray
    keyword_t: np.ndarray
    keyword_opt_in: np.ndarray
    unhandled_opt_outs: int
    messages: int


def _uuids(rng: np.random.Generator, n: int) -> pl.Series:
    raw = rng.bytes(16 * n)
    return pl.Series(
        [str(uuid.UUID(bytes=raw[16 * i : 16 * i + 16], version=4)) for i in range(n)],
        dtype=pl.String,
    )


def _tokens(rng: np.random.Generator, n: int, alphabet: str, length: int, prefix: str) -> pl.Series:
    """``n`` distinct random tokens (redrawn in the unlikely case of a clash)."""
    letters = np.array(list(alphabet))
    while True:
        drawn = letters[rng.integers(0, len(letters), size=(n, length))]
        tokens = pl.Series([prefix + "".join(row) for row in drawn.tolist()], dtype=pl.String)
        if tokens.n_unique() == n:
            return tokens


def _messages(
    customers: Customers,
    orders: Orders,
    shipments: Shipments,
    can_text: np.ndarray,
    marketing: np.ndarray,
    clock: Clock,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    begin = clock.t0 - LEGACY_DAYS * DAY
    shipped = shipments.shipped_at
    customer = orders.customer[shipments.order]
    texted = (
        (shipped >= begin)
        & (shipped < clock.t0)
        & can_text[customer]
        & (rng.random(len(shipped)) < SHIPPING_UPDATE_P)
    )
    who = [customer[texted]]
    when = [shipped[texted] + rng.integers(30, 600, size=int(texted.sum()))]
    kind = [np.full(int(texted.sum()), SHIPPING)]
    for campaign, days_before in zip((PROMOTION, SURVEY), CAMPAIGN_DAYS_BEFORE, strict=True):
        # 18:00 UTC is daytime from Honolulu to New York; the blast takes half an hour.
        send = clock.t0 - days_before * DAY + 18 * HOUR
        reached = np.flatnonzero(
            marketing & (customers.created < send) & (rng.random(customers.n) < CAMPAIGN_REACH)
        )
        who.append(reached)
        when.append(send + rng.integers(0, 30 * MINUTE, size=len(reached)))
        kind.append(np.full(len(reached), campaign))
    customer, t, kind = (np.concatenate(x) for x in (who, when, kind))
    order = np.lexsort((customer, t))
    return customer[order], t[order], kind[order]


def _replies(rng: np.random.Generator, kind: np.ndarray) -> tuple[np.ndarray, pl.Series]:
    """For each message, which reply (if any): 0 none, 1 stop, 2 plain opt-out, 3 help,
    4 chatter, 5 yes, 6 score; and the reply's text."""
    p = {
        SHIPPING: (0.003, 0.002, 0.001, 0.012, 0.0, 0.0),
        PROMOTION: (0.025, 0.01, 0.004, 0.01, 0.005, 0.0),
        SURVEY: (0.02, 0.008, 0.002, 0.01, 0.0, 0.12),
    }
    reply = np.zeros(len(kind), dtype=np.int8)
    for k, probs in p.items():
        rows = np.flatnonzero(kind == k)
        full = np.array([1 - sum(probs), *probs])
        reply[rows] = rng.choice(len(full), size=len(rows), p=full)
    n = len(kind)
    options = {
        1: STOP_WORDS,
        2: PLAIN_OPT_OUTS,
        3: HELP_WORDS,
        4: CHATTER,
        5: ("YES", "Yes", "yes!"),
        6: tuple(str(i) for i in range(11)),
    }
    text = np.full(n, None, dtype=object)
    for k, words in options.items():
        rows = np.flatnonzero(reply == k)
        if k == 6:
            choice = rng.choice(11, size=len(rows), p=SCORE_P / SCORE_P.sum())
        else:
            choice = rng.integers(0, len(words), size=len(rows))
        text[rows] = np.array(words, dtype=object)[choice]
    return reply, pl.Series(text.tolist(), dtype=pl.String)


def make_legacy_sms(
    customers: Customers,
    orders: Orders,
    shipments: Shipments,
    can_text: np.ndarray,
    marketing: np.ndarray,
    clock: Clock,
    rng: np.random.Generator,
) -> LegacySms:
    can_text = can_text & customers.phone_valid
    marketing = marketing & customers.phone_valid
    customer, sent_at, kind = _messages(
        customers, orders, shipments, can_text, marketing, clock, rng
    )
    reply, reply_text = _replies(rng, kind)
    reply_at = sent_at + (rng.lognormal(np.log(4 * MINUTE), 1.2, size=len(kind))).astype(np.int64)
    reply_at = np.maximum(reply_at, sent_at + 20)

    # The old tool honoured STOP keywords: nothing was sent to a number after its first STOP.
    stop = (reply == 1) & (reply_at < clock.t0)
    first_stop = np.full(customers.n, np.iinfo(np.int64).max)
    np.minimum.at(first_stop, customer[stop], reply_at[stop])
    reply[(reply == 1) & (reply_at > first_stop[customer])] = 0  # one STOP is enough
    keep = sent_at <= first_stop[customer]
    customer, sent_at, kind, reply, reply_at = (
        a[keep] for a in (customer, sent_at, kind, reply, reply_at)
    )
    reply_text = reply_text.filter(pl.Series(keep))
    n = len(customer)

    uuids = _uuids(rng, n)
    receipts = _receipts(uuids, sent_at, clock, rng)

    # Replies, plus a START some days after a few STOPs.
    answered = (reply > 0) & (reply_at < clock.t0)
    stopped = np.flatnonzero((reply == 1) & answered)
    restart = stopped[rng.random(len(stopped)) < 0.15]
    restart_at = reply_at[restart] + rng.integers(1 * DAY, 20 * DAY, size=len(restart))
    restart = restart[restart_at < clock.t0]
    restart_at = restart_at[restart_at < clock.t0]
    in_customer = np.concatenate([customer[answered], customer[restart]])
    in_t = np.concatenate([reply_at[answered], restart_at])
    in_text = pl.concat(
        [
            reply_text.filter(pl.Series(answered)),
            pick(START_WORDS, rng.integers(0, len(START_WORDS), size=len(restart))),
        ]
    )
    in_kind = np.concatenate([reply[answered], np.full(len(restart), 7)])
    inbound = _inbound(customers, in_customer, in_t, in_text, in_kind, rng)

    link = kind != SURVEY
    clicks = _clicks(sent_at[link], kind[link], clock, rng)

    opt_out = in_kind == 1
    opt_in = in_kind == 7
    keyword = opt_out | opt_in
    return LegacySms(
        receipts=within_window(receipts, clock),
        inbound=within_window(inbound, clock),
        clicks=within_window(clicks, clock),
        keyword_customer=in_customer[keyword],
        keyword_t=in_t[keyword],
        keyword_opt_in=opt_in[keyword],
        unhandled_opt_outs=int((in_kind == 2).sum()),
        messages=n,
    )


def _receipts(
    uuids: pl.Series, sent_at: np.ndarray, clock: Clock, rng: np.random.Generator
) -> pl.DataFrame:
    n = len(sent_at)
    outcome = rng.choice(3, size=n, p=(0.94, 0.03, 0.03))  # delivered, undelivered, failed
    units = rng.choice([1, 2, 3], size=n, p=(0.8, 0.18, 0.02))
    network = rng.choice(len(NETWORKS), size=n, p=NETWORK_P)
    sent = sent_at + rng.integers(1, 5, size=n)
    final = np.where(
        outcome == 2,
        sent_at + rng.integers(1, 4, size=n),
        sent + np.where(outcome == 0, rng.integers(3, 90, size=n), rng.integers(10, 600, n)),
    )
    msg = np.arange(n)
    not_failed = outcome != 2
    rows = np.concatenate([msg, msg[not_failed], msg])
    status = np.concatenate(
        [np.zeros(n, dtype=int), np.ones(int(not_failed.sum()), dtype=int), outcome + 2]
    )
    t = np.concatenate([sent_at, sent[not_failed], final])
    sequence = np.concatenate([np.ones(n), np.full(int(not_failed.sum()), 2), 2 + not_failed])
    code = np.full(len(rows), None, dtype=object)
    undelivered = status == 3
    failed = status == 4
    code[undelivered] = np.array(UNDELIVERED_CODES)[rng.integers(0, 2, int(undelivered.sum()))]
    code[failed] = np.array(FAILED_CODES)[rng.integers(0, 2, int(failed.sum()))]
    amount = units[rows] * RATE_MICRO_DOLLARS
    queued = status == 0
    frame = pl.DataFrame(
        {
            "mcc": pick([m for m, _ in NETWORKS], network[rows]),
            "mnc": pick([m for _, m in NETWORKS], network[rows]),
            "q": queued,
        }
    ).select(
        # The network is known once the message leaves the queue.
        mcc=pl.when(~pl.col("q")).then("mcc"),
        mnc=pl.when(~pl.col("q")).then("mnc"),
    )
    style = styles(rng, len(rows), z=0.2, utc=0.8, local=0.0)
    return table(
        "sms_delivery_receipts",
        {
            "message_uuid": uuids.gather(rows),
            "status": pick(RECEIPT_STATUSES, status),
            "occurred_at": iso_text(t, style, np.zeros(len(rows), dtype=np.int64)),
            "sequence": int_text(sequence),
            "error_code": pl.Series(code.tolist(), dtype=pl.String),
            "units": int_text(units[rows]),
            "total_rate": _micro_dollars(np.full(len(rows), RATE_MICRO_DOLLARS)),
            "total_amount": _micro_dollars(amount),
            "mcc": frame["mcc"],
            "mnc": frame["mnc"],
        },
        t=t,
        tie=rows * 8 + status,
    )


def _micro_dollars(micro: np.ndarray) -> pl.Series:
    micro = pl.Series(np.asarray(micro, dtype=np.int64))
    return pl.select(
        pl.format(
            "{}.{}",
            (pl.lit(micro) // 1_000_000).cast(pl.String),
            (pl.lit(micro) % 1_000_000 // 10).cast(pl.String).str.zfill(5),
        )
    ).to_series()


def _inbound(
    customers: Customers,
    customer: np.ndarray,
    t: np.ndarray,
    text: pl.Series,
    kind: np.ndarray,
    rng: np.random.Generator,
) -> pl.DataFrame:
    n = len(customer)
    e164 = customers.e164().gather(customer)
    # Plivo drops the "+"; numbers forwarded by the old tool's webhook relay kept it.
    plus = pl.Series(rng.random(n) < 0.3)
    from_number = pl.select(pl.when(plus).then(e164).otherwise(e164.str.slice(1))).to_series()
    intent = np.full(n, None, dtype=object)
    intent[kind == 1] = "optout"
    intent[kind == 3] = "help"
    intent[kind == 7] = "optin"
    style = styles(rng, n, z=0.7, utc=0.3, local=0.0)
    return table(
        "inbound_messages",
        {
            "message_uuid": _uuids(rng, n),
            "from_number": from_number,
            "to_number": BRAND_NUMBER,
            "text": text,
            "received_at": iso_text(t, style, np.zeros(n, dtype=np.int64)),
            "intent": pl.Series(intent.tolist(), dtype=pl.String),
        },
        t=t,
    )


def _clicks(
    sent_at: np.ndarray, kind: np.ndarray, clock: Clock, rng: np.random.Generator
) -> pl.DataFrame:
    n = len(sent_at)
    # Short codes skip look-alike characters (0/O, 1/l/I) that people mistype.
    codes = _tokens(rng, n, "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", 7, "")
    click_p = np.where(kind == SHIPPING, 0.3, 0.08)
    human = rng.random(n) < click_p
    again = human & (rng.random(n) < 0.12)
    preview = rng.random(n) < PREVIEW_P
    first = sent_at + rng.lognormal(np.log(20 * MINUTE), 1.3, size=n).astype(np.int64) + 10
    second = first + rng.lognormal(np.log(6 * HOUR), 1.0, size=n).astype(np.int64) + 60
    bot = sent_at + rng.integers(1, 4, size=n)
    link = np.concatenate([np.flatnonzero(human), np.flatnonzero(again), np.flatnonzero(preview)])
    t = np.concatenate([first[human], second[again], bot[preview]])
    agent = pl.concat(
        [
            pick(USER_AGENTS, rng.choice(len(USER_AGENTS), size=int(human.sum()), p=USER_AGENT_P)),
            pick(USER_AGENTS, rng.choice(len(USER_AGENTS), size=int(again.sum()), p=USER_AGENT_P)),
            pl.repeat(PREVIEW_BOT, int(preview.sum()), dtype=pl.String, eager=True),
        ]
    )
    keep = t < clock.t0
    link, t, agent = link[keep], t[keep], agent.filter(pl.Series(keep))
    m = len(t)
    click_id = _tokens(rng, m, "0123456789abcdef", 12, "clk_")
    style = styles(rng, m, z=0.8, utc=0.2, local=0.0)
    return table(
        "link_clicks",
        {
            "click_id": click_id,
            "short_code": codes.gather(link),
            "clicked_at": iso_text(t, style, np.zeros(m, dtype=np.int64)),
            "user_agent": agent,
        },
        t=t,
    )
