"""Per-recipient short links: one code per (message, target), the same on every rerun.

The code is derived from the idempotency key and the target, so a rerun after a crash writes
the same row and sends the same URL; the redirect service (a later issue) resolves codes from
ops.short_links and records the click against the message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pipelines.sender.decide import Candidate

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CODE_LENGTH = 8  # 62**8, about 2e14 codes: collisions are negligible at any shop's volume


@dataclass(frozen=True)
class ShortLink:
    code: str
    idempotency_key: str
    customer_id: str | None
    target_url: str
    url: str  # what goes into the text


def short_code(idempotency_key: str, target_url: str) -> str:
    """Base62 of sha256(key NUL target), first CODE_LENGTH characters."""
    number = int.from_bytes(hashlib.sha256(f"{idempotency_key}\0{target_url}".encode()).digest())
    chars = []
    while len(chars) < CODE_LENGTH:
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def link_base(domain: str) -> str:
    """SHORT_LINK_DOMAIN as a URL prefix: `go.example.com` or `https://go.example.com/`."""
    domain = domain.strip().rstrip("/")
    return domain if domain.startswith(("http://", "https://")) else f"https://{domain}"


def short_link(candidate: Candidate, target_url: str, domain: str) -> ShortLink:
    code = short_code(candidate.idempotency_key, target_url)
    return ShortLink(
        code,
        candidate.idempotency_key,
        candidate.customer_id,
        target_url,
        f"{link_base(domain)}/{code}",
    )


def link_target(candidate: Candidate, shop_url: str) -> str | None:
    """Where a flow's `{{ link }}` leads on the shop's site; None when a flow has no link."""
    shop = shop_url.rstrip("/")
    product, order = candidate.product_id, candidate.order_id
    match candidate.flow:
        case "setup_onboarding":
            return candidate.setup_url or (product and f"{shop}/products/{product}/setup")
        case "review_request":
            # Review requests are per order when the model has no single product to ask about.
            if product:
                return f"{shop}/products/{product}/review"
            return order and f"{shop}/orders/{order}/review"
        case "replenishment_reminder":
            return product and f"{shop}/reorder/{product}"
        case "loyalty_invite":
            return f"{shop}/rewards"
        case "delivered":
            return order and f"{shop}/orders/{order}"
        case "order_confirmation":
            return f"{shop}/products/{product}" if product else f"{shop}/orders/{order}"
    return None
