"""Rendering a flow's template into a text that may be sent, or a reason it may not.

A rendered text is normalized to GSM-7 where that keeps the meaning, its whitespace collapsed,
and then checked: it names the brand, a marketing text says how to stop, and it fits the
segment budget. Every refusal is a `RenderError` with a short `reason` code for the ops tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from pipelines.flows import FLOWS, MARKETING, TRANSACTIONAL
from pipelines.messaging.encoding import MessageTooLong, measure, normalize_gsm
from pipelines.templates import TEMPLATES_ROOT, template_path

DEFAULT_SEGMENT_BUDGET = {TRANSACTIONAL: 2, MARKETING: 2}

# "Reply STOP to opt out", "Text STOP to end", "STOP to unsubscribe": the keyword itself in
# capitals so it stands out, the rest in any case.
OPT_OUT = re.compile(r"\bSTOP\s+(?i:to\s+(?:opt[\s-]?out|end|unsubscribe|cancel|quit))\b")
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")
_UNDEFINED = re.compile(r"'([^']+)' is undefined")


class RenderError(Exception):
    """A message that will not be sent, with a reason code and the template it came from."""

    def __init__(self, message: str, *, template: str, reason: str) -> None:
        super().__init__(f"{template}: {message}")
        self.template = template
        self.reason = reason


@dataclass(frozen=True)
class RenderedMessage:
    text: str
    encoding: str  # GSM-7 | UCS-2
    segments: int
    characters: int
    units: int  # septets or UTF-16 units, what the segment count is made of


class _NoneValue(Exception):
    pass


def _refuse_none(value: Any) -> Any:
    # "Hi None" must never reach a customer: a None printed by {{ }} is treated as missing.
    # ({{ first_name or "there" }} still works, since the fallback is what gets printed.)
    if value is None:
        raise _NoneValue
    return value


@cache
def environment(root: Path = TEMPLATES_ROOT) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text, not HTML: "&" must stay "&"
        keep_trailing_newline=False,
        finalize=_refuse_none,
    )


@cache
def _required_variables(root: Path, name: str, mtime_ns: int) -> frozenset[str]:
    # Keyed by the file's mtime as well: Jinja reloads an edited template, and so must this.
    env = environment(root)
    source, _, _ = jinja2.FileSystemLoader(root).get_source(env, name)
    return frozenset(meta.find_undeclared_variables(env.parse(source)))


def collapse_whitespace(text: str) -> str:
    """Template line breaks become spaces; a blank line is kept as one line break."""
    paragraphs = _BLANK_LINE.split(text.strip())
    return "\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def render(
    flow: str,
    template: str,
    context: dict[str, Any],
    *,
    message_class: str | None = None,
    max_segments: int | None = None,
    root: Path = TEMPLATES_ROOT,
) -> RenderedMessage:
    """Render `<flow>/<template>.j2` with `context` and check it is fit to send.

    `message_class` overrides the flow's class: a promotional variant of a transactional flow
    is marketing and must then carry the opt-out wording too. Every variable the template
    mentions must be in `context`, even one in a branch not taken, so a template's contract
    does not depend on the data.
    """
    label = f"{flow}/{template}"
    if message_class is None:
        if flow not in FLOWS:
            raise RenderError("unknown flow", template=label, reason="unknown_flow")
        message_class = FLOWS[flow].message_class
    if message_class not in DEFAULT_SEGMENT_BUDGET:
        raise RenderError(
            f"unknown message class {message_class!r}", template=label, reason="unknown_class"
        )
    try:
        template_path(flow, template)  # rejects names that could leave the templates folder
        name = f"{flow}/{template}.j2"
        required = _required_variables(root, name, (root / name).stat().st_mtime_ns)
        compiled = environment(root).get_template(name)
    except (ValueError, OSError, jinja2.TemplateNotFound) as exc:
        raise RenderError("no such template", template=label, reason="template_not_found") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"syntax error: {exc}", template=label, reason="template_error") from exc

    missing = sorted((required | {"brand"}) - context.keys())
    if missing:
        raise RenderError(
            f"missing variable(s): {', '.join(missing)}", template=label, reason="missing_variable"
        )
    try:
        raw = compiled.render(context)
    except jinja2.UndefinedError as exc:
        # Reached for attributes and items (order.number) that the up-front check cannot see.
        found = _UNDEFINED.search(str(exc))
        variable = found.group(1) if found else str(exc)
        raise RenderError(
            f"missing variable: {variable}", template=label, reason="missing_variable"
        ) from exc
    except _NoneValue as exc:
        nones = sorted(k for k in required if context.get(k, "") is None)
        raise RenderError(
            f"variable is None: {', '.join(nones) or 'an expression'}",
            template=label,
            reason="missing_variable",
        ) from exc

    text = collapse_whitespace(normalize_gsm(raw))
    if not text:
        raise RenderError("renders to an empty text", template=label, reason="empty")
    brand = collapse_whitespace(normalize_gsm(str(context["brand"])))
    if not brand or brand not in text:
        raise RenderError(
            f"the brand {brand!r} does not appear in the text", template=label, reason="no_brand"
        )
    if message_class == MARKETING and not OPT_OUT.search(text):
        raise RenderError(
            'a marketing text must say how to stop ("Reply STOP to opt out")',
            template=label,
            reason="no_opt_out",
        )
    try:
        measured = measure(text)
    except MessageTooLong as exc:
        raise RenderError(str(exc), template=label, reason="too_long") from exc
    budget = DEFAULT_SEGMENT_BUDGET[message_class] if max_segments is None else max_segments
    if measured.segments > budget:
        raise RenderError(
            f"{measured.segments} segments ({measured.encoding}, {measured.units} units) "
            f"exceed the budget of {budget}",
            template=label,
            reason="over_segment_budget",
        )
    return RenderedMessage(
        measured.text, measured.encoding, measured.segments, measured.characters, measured.units
    )
