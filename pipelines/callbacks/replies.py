"""What the service answers a reply with, as Plivo XML in the HTTP response.

Answering in the response (rather than through the sender) needs no second process, costs no
extra API request and cannot be lost between two systems: Plivo sends the `<Message>` the
moment it gets our 200. Every answer names the brand; none carries marketing, so an opt-out's
confirmation is allowed (one, within minutes, without marketing: notes/sms-compliance.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

EMPTY_RESPONSE = '<?xml version="1.0" encoding="UTF-8"?>\n<Response></Response>'


@dataclass(frozen=True)
class ReplyBranding:
    brand: str
    support_contact: str


def stop_confirmation(b: ReplyBranding) -> str:
    return (
        f"{b.brand}: You're unsubscribed and will get no more texts from us. "
        "Reply START to resubscribe."
    )


def start_confirmation(b: ReplyBranding) -> str:
    return (
        f"{b.brand}: You're resubscribed. Msg frequency varies. Msg & data rates may apply. "
        "Reply HELP for help, STOP to opt out."
    )


def help_answer(b: ReplyBranding) -> str:
    return (
        f"{b.brand}: Order updates and offers. Help: {b.support_contact}. "
        "Msg frequency varies. Msg & data rates may apply. Reply STOP to opt out."
    )


def score_thanks(b: ReplyBranding, score: int, points: int, balance: int) -> str:
    return (
        f"{b.brand}: Thanks for your {score}/10! You earned {points} points; "
        f"your balance is {balance} points."
    )


def score_already_counted(b: ReplyBranding, balance: int) -> str:
    return (
        f"{b.brand}: Thanks, we already have your answer to this survey. "
        f"Your balance is {balance} points."
    )


def plivo_xml(text: str | None, src: str | None, dst: str | None) -> str:
    """A `<Response>` that sends `text` back from `src` (our number) to `dst` (theirs)."""
    if not text or not src or not dst:
        return EMPTY_RESPONSE
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response>'
        f'<Message src={quoteattr(src)} dst={quoteattr(dst)} type="sms">{escape(text)}</Message>'
        "</Response>"
    )
