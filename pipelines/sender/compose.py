"""A candidate's text: its template's variables, short links, rendering, segments and cost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pipelines.flows import DISCOUNT_PERCENT, FLOWS, POINTS
from pipelines.messaging.encoding import cost
from pipelines.messaging.render import render
from pipelines.sender.decide import Candidate
from pipelines.sender.links import ShortLink, link_target, short_link


@dataclass(frozen=True)
class Branding:
    brand: str
    support_contact: str
    short_link_domain: str
    shop_url: str
    cost_per_segment: Decimal
    segment_budget: Mapping[str, int] = field(default_factory=dict)  # flow -> max segments


@dataclass(frozen=True)
class Composed:
    text: str
    encoding: str
    segments: int
    cost: Decimal
    links: tuple[ShortLink, ...]


def _param(flow: str, name: str, variant_params: Mapping[str, Any]) -> Any:
    if name in variant_params:
        return variant_params[name]
    param = FLOWS[flow].params.get(name) if flow in FLOWS else None
    return param.default if param else 0


def _date(value: Any) -> str | None:
    return None if value is None else f"{value:%b} {value.day}"


def compose(
    candidate: Candidate, branding: Branding, variant_params: Mapping[str, Any] | None = None
) -> Composed:
    """Render the candidate's template; raises `RenderError` (with a reason code) if unfit."""
    params = variant_params or {}
    links: list[ShortLink] = []

    def shorten(target: str | None) -> str | None:
        if not target:
            return None  # printed, it is refused as a missing variable
        link = short_link(candidate, target, branding.short_link_domain)
        links.append(link)
        return link.url

    # Every name any template uses is present, so a missing value is refused by name rather
    # than as an unknown variable; a None that a template prints is refused too.
    context = {
        "brand": branding.brand,
        "support": branding.support_contact,
        "first_name": candidate.first_name,
        "order_number": candidate.order_number,
        "items": candidate.items_summary,
        "product": candidate.product_title,
        "run_out_date": _date(candidate.run_out_date),
        "points": _param(candidate.flow, POINTS, params),
        "discount_percent": _param(candidate.flow, DISCOUNT_PERCENT, params),
        "tracking_url": shorten(candidate.tracking_url),
        "link": shorten(link_target(candidate, branding.shop_url)),
    }
    rendered = render(
        candidate.flow,
        candidate.template or "default",
        context,
        message_class=candidate.effective_class,
        max_segments=branding.segment_budget.get(candidate.flow),
    )
    # Only the links the text really carries are written to ops.short_links.
    used = tuple(link for link in links if link.url in rendered.text)
    return Composed(
        rendered.text,
        rendered.encoding,
        rendered.segments,
        cost(rendered.segments, branding.cost_per_segment),
        used,
    )
