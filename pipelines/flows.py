"""The catalogue of message flows (DESIGN section 5): one place for the sender, the experiment
specs and the dbt seed `flows.csv` to agree on names, classes and what a variant may change."""

from __future__ import annotations

from dataclasses import dataclass, field

TRANSACTIONAL = "transactional"
MARKETING = "marketing"


@dataclass(frozen=True)
class Param:
    """A setting of a flow that an experiment variant may change."""

    name: str
    default: int
    minimum: int
    maximum: int
    description: str


@dataclass(frozen=True)
class Flow:
    name: str
    message_class: str  # transactional | marketing
    priority: int  # 1 goes first when two flows want the same customer at once
    description: str
    params: dict[str, Param] = field(default_factory=dict)

    @property
    def is_marketing(self) -> bool:
        return self.message_class == MARKETING


def _params(*params: Param) -> dict[str, Param]:
    return {p.name: p for p in params}


DELAY_HOURS = "delay_hours"
DELAY_DAYS = "delay_days"
LEAD_DAYS = "lead_days"
DISCOUNT_PERCENT = "discount_percent"
POINTS = "points"
SEND_HOUR = "send_hour"

# Marketing flows may move their send time within the quiet-hour window (local hours).
_SEND_HOUR = Param(SEND_HOUR, 10, 8, 20, "local hour of day the message is due")

FLOWS: dict[str, Flow] = {
    f.name: f
    for f in [
        Flow(
            "order_confirmation",
            TRANSACTIONAL,
            1,
            "Confirms the order at once with its number and items.",
            _params(
                Param(DISCOUNT_PERCENT, 0, 0, 50, "discount offered in an upsell line, percent")
            ),
        ),
        Flow(
            "shipping_update",
            TRANSACTIONAL,
            2,
            "Says the order has shipped, with the carrier's tracking link.",
        ),
        Flow(
            "out_for_delivery",
            TRANSACTIONAL,
            2,
            "Says the parcel is out for delivery today.",
        ),
        Flow(
            "delivered",
            TRANSACTIONAL,
            3,
            "Says the parcel was delivered, with care or usage notes.",
        ),
        Flow(
            "setup_onboarding",
            TRANSACTIONAL,
            4,
            "Helps set up a product that needs it, a few hours after delivery.",
            _params(Param(DELAY_HOURS, 3, 1, 72, "hours after delivery, in waking hours")),
        ),
        Flow(
            "review_request",
            MARKETING,
            6,
            "Asks for a review once the customer has had time to use the product.",
            _params(
                Param(DELAY_DAYS, 6, 1, 30, "days after delivery"),
                Param(DISCOUNT_PERCENT, 0, 0, 50, "discount offered for a review, percent"),
                _SEND_HOUR,
            ),
        ),
        Flow(
            "replenishment_reminder",
            MARKETING,
            5,
            "Reminds the customer to reorder a consumable before it runs out.",
            _params(
                Param(LEAD_DAYS, 5, 0, 21, "days before the predicted run-out"),
                Param(DISCOUNT_PERCENT, 0, 0, 50, "discount on the reorder, percent"),
                _SEND_HOUR,
            ),
        ),
        Flow(
            "loyalty_invite",
            MARKETING,
            7,
            "Invites a first- or second-time buyer into the loyalty programme, once.",
            _params(
                Param(DELAY_HOURS, 24, 1, 336, "hours after delivery"),
                Param(POINTS, 100, 0, 5000, "welcome points for joining"),
                _SEND_HOUR,
            ),
        ),
        Flow(
            "feedback_survey",
            MARKETING,
            8,
            'Asks "reply 0-10" a few days after delivery; a valid reply earns points.',
            _params(
                Param(DELAY_DAYS, 3, 1, 30, "days after delivery"),
                Param(POINTS, 50, 0, 5000, "points earned by a valid reply"),
                _SEND_HOUR,
            ),
        ),
    ]
}

MARKETING_FLOWS = tuple(name for name, f in FLOWS.items() if f.is_marketing)
TRANSACTIONAL_FLOWS = tuple(name for name, f in FLOWS.items() if not f.is_marketing)
