"""The demo world's true response to texts: what the experiments are trying to find out.

These numbers belong to the simulated customers, not to any experiment: the specs in
`experiments/` never see them, and the analysis has to recover them from the warehouse. The
world reacts to what a text says (its flow, its lead time, its upsell line, its discount),
never to an experiment or variant name, exactly as real customers would.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.flows import FLOWS

# --- delivery ----------------------------------------------------------------------------------

RATE_PER_SEGMENT = "0.00500"  # USD, Plivo's US long-code price per segment
RATE_MICRO_DOLLARS = 5_000
# (mcc, mnc) of the big US networks, and how many numbers each carries.
NETWORKS = (("310", "260"), ("310", "410"), ("311", "480"), ("311", "580"))
NETWORK_P = (0.35, 0.35, 0.27, 0.03)

# A number that no network will take (ported away, landline, disconnected) fails every time:
# error 50 is a property of the destination, not of one message.
INVALID_DESTINATION_P = 0.004
# Per message: a transient network failure at the provider (error 20, status failed) and the
# carrier's spam filter (error 30, status undelivered), which bites marketing texts harder.
NETWORK_FAILURE_P = 0.007
SPAM_FILTER_P = {"transactional": 0.004, "marketing": 0.014}

# --- clicks ------------------------------------------------------------------------------------

# Share of delivered texts whose own short link a person opens (before any caused order).
CLICK_P = {
    "order_confirmation": 0.09,  # only the upsell variant carries a link
    "delivered": 0.10,
    "setup_onboarding": 0.32,
    "review_request": 0.07,
    "replenishment_reminder": 0.10,
    "loyalty_invite": 0.11,
}
OTHER_CLICK_P = 0.05
CONVERTER_CLICK_P = 0.8  # most caused orders start with a tap on the link
SECOND_CLICK_P = 0.12
# iMessage and chat apps fetch a link preview within seconds: a "click" nobody made.
PREVIEW_BOT_P = 0.1

# --- replies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyShares:
    """Chance that a delivered text draws each kind of reply (at most one, plus a START)."""

    stop: float  # a standard keyword: STOP, Stop, UNSUBSCRIBE, ...
    plain_opt_out: float  # "stop texting me": no keyword, Plivo flags nothing
    help: float
    chatter: float  # "thanks!", questions
    score: float = 0.0  # a number 0-10, for the survey


TRANSACTIONAL_REPLIES = ReplyShares(stop=0.002, plain_opt_out=0.001, help=0.002, chatter=0.012)
MARKETING_REPLIES = ReplyShares(stop=0.012, plain_opt_out=0.004, help=0.003, chatter=0.006)
REPLIES = {
    "feedback_survey": ReplyShares(
        stop=0.012, plain_opt_out=0.004, help=0.002, chatter=0.01, score=0.28
    ),
}
# The upsell line turns a confirmation into a sales text, and a few more people say STOP:
# +0.4 points, inside the experiment's 0.5-point guardrail but real.
UPSELL_REPLIES = ReplyShares(stop=0.005, plain_opt_out=0.002, help=0.002, chatter=0.012)
RESTART_P = 0.1  # share of STOPs followed by START some days later


def reply_shares(flow: str | None, upsell: bool) -> ReplyShares:
    if upsell:
        return UPSELL_REPLIES
    if flow in REPLIES:
        return REPLIES[flow]
    if flow is not None and FLOWS[flow].is_marketing:
        return MARKETING_REPLIES
    return TRANSACTIONAL_REPLIES


# Satisfaction: each customer's mean survey score, 10 * Beta(a, b) (mean about 7.6), and the
# spread of one reply around it.
SATISFACTION_BETA = (5.0, 1.6)
SCORE_SD = 1.3

# --- caused orders -----------------------------------------------------------------------------

# Chance that a replenishment reminder causes a reorder of the reminded product within 7 days,
# by how many days before the run-out it arrives. Too early and the customer is not ready yet;
# too late and they have bought elsewhere or run out already. Between points: linear.
REORDER_BY_LEAD_DAYS = ((0, 0.06), (3, 0.09), (7, 0.12), (14, 0.105), (21, 0.08))
DEFAULT_LEAD_DAYS = FLOWS["replenishment_reminder"].params["lead_days"].default
REORDER_WINDOW_DAYS = 7.0
# Half of caused reorders come the same day, the rest spread over the week.
SAME_DAY_SHARE = 0.5
# An upsell line sells the paired product to a few buyers within five days.
UPSELL_ORDER_P = 0.03
UPSELL_WINDOW_DAYS = 5.0
# Each discount percentage point raises the chance by 1.5 % of itself (10 % off: x1.15).
DISCOUNT_LIFT_PER_POINT = 0.015
# Churned customers and those who dropped the product rarely come back for a text.
CHURNED_FACTOR = 0.15
DROPPED_PRODUCT_FACTOR = 0.2
BULK_QUANTITY_P = 0.15  # a reorder of two units


def reorder_probability(lead_days: float | None) -> float:
    """True chance of a caused reorder within 7 days for a reminder `lead_days` ahead."""
    lead = DEFAULT_LEAD_DAYS if lead_days is None else lead_days
    points = REORDER_BY_LEAD_DAYS
    if lead <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if lead <= x1:
            return y0 + (y1 - y0) * (lead - x0) / (x1 - x0)
    return points[-1][1]


def discount_factor(percent: int) -> float:
    return 1.0 + DISCOUNT_LIFT_PER_POINT * max(0, min(percent, 100))
