"""Reading a sent text the way a customer would: which message is this, and what does it say?

A provider sees only a number and a text, so the simulator recognizes the flow and template by
matching the text against every template in `pipelines/templates/`, each turned into a regular
expression whose variables become named groups. A template an analyst adds later is recognized
without a change here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import jinja2

from pipelines.messaging.encoding import normalize_gsm
from pipelines.messaging.render import collapse_whitespace
from pipelines.templates import TEMPLATES_ROOT

_WHITESPACE = re.compile(r"(\s+)")
_URL = re.compile(r"https?://[^\s<>\"']+")
_DISCOUNT = re.compile(r"(\d{1,3})\s*%\s*off\b", re.IGNORECASE)
_ORDINAL = re.compile(r"(\d)(st|nd|rd|th)\b", re.IGNORECASE)
# Spellings a template might use for a date; the year is added when the format lacks one.
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%A, %B %d, %Y",
    "%m/%d",
    "%B %d",
    "%b %d",
    "%b. %d",
    "%A, %B %d",
    "%A %B %d",
    "%a, %b %d",
    "%a %b %d",
    "%d %B",
    "%d %b",
)


@dataclass(frozen=True)
class Template:
    flow: str
    name: str
    pattern: re.Pattern[str]
    anchors: tuple[str, ...]  # literal words every match contains: a cheap prefilter
    weight: int  # literal characters: the more, the more specific


@dataclass(frozen=True)
class Recognized:
    flow: str
    template: str
    values: dict[str, str]
    starts: dict[str, int]  # where each value starts in `text`
    text: str  # the text as matched: GSM-normalized, whitespace collapsed

    def value_from(self, name: str, choices: Iterable[str]) -> str | None:
        """The longest of `choices` that the text spells where variable `name` starts.

        A lazy match stops at the first possible end, so a value holding a comma ("Shave Gel,
        7 oz") comes back cut short; known values (product titles) settle it.
        """
        start = self.starts.get(name)
        if start is None:
            return None
        lowered = self.text.lower()
        fits = [c for c in choices if c and lowered.startswith(c.lower(), start)]
        return max(fits, key=len) if fits else None


def _literal(text: str) -> str:
    parts = _WHITESPACE.split(normalize_gsm(text))
    return "".join(r"\s*" if p.isspace() else re.escape(p) for p in parts if p)


def _compile(flow: str, name: str, source: str, env: jinja2.Environment) -> Template | None:
    """The template as a regex, or None when it uses constructs beyond {{ }} and {% if %}."""
    out: list[str] = []
    anchors: list[str] = []
    weight = 0
    named: set[str] = set()
    stack: list[list[bool]] = []  # per open if: [has an else branch]
    words: list[str] | None = None
    opener = ""
    for _, kind, value in env.lex(source):
        if kind == "data":
            out.append(_literal(value))
            weight += len(value.strip())
            if not stack:
                anchors.extend(w for w in normalize_gsm(value).split() if len(w) >= 4)
        elif kind in ("variable_begin", "block_begin"):
            words, opener = [], kind
        elif kind == "name" and words is not None:
            words.append(value)
        elif kind in ("variable_end", "block_end") and words is not None:
            if opener == "variable_begin":
                var = words[0] if words else ""
                if var and var not in named:
                    named.add(var)
                    out.append(f"(?P<{var}>.+?)")
                else:
                    out.append(".+?")
            else:
                keyword = words[0] if words else ""
                if keyword == "if":
                    stack.append([False])
                    out.append("(?:")
                elif keyword in ("elif", "else") and stack:
                    stack[-1][0] = True
                    out.append("|")
                elif keyword == "endif" and stack:
                    out.append(")" if stack.pop()[0] else ")?")
                else:
                    return None
            words = None
    if stack:
        return None
    pattern = re.compile(r"\s*" + "".join(out) + r"\s*", re.DOTALL)
    return Template(flow, name, pattern, tuple(anchors), weight)


@cache
def templates(root: Path = TEMPLATES_ROOT) -> tuple[Template, ...]:
    env = jinja2.Environment()
    found = []
    for path in sorted(root.glob("*/*.j2")):
        compiled = _compile(path.parent.name, path.stem, path.read_text(encoding="utf-8"), env)
        if compiled is not None:
            found.append(compiled)
    # Most specific first, so a default never shadows a longer variant of itself.
    return tuple(sorted(found, key=lambda t: (-t.weight, t.flow, t.name)))


def recognize(text: str, root: Path = TEMPLATES_ROOT) -> Recognized | None:
    """The flow, template and variable values a text was rendered from, if any template fits."""
    clean = collapse_whitespace(normalize_gsm(text))
    for template in templates(root):
        if not all(a in clean for a in template.anchors):
            continue
        match = template.pattern.fullmatch(clean)
        if match:
            found = {k: v for k, v in match.groupdict().items() if v is not None}
            values = {k: v.strip() for k, v in found.items()}
            starts = {k: match.start(k) for k in found}
            return Recognized(template.flow, template.name, values, starts, clean)
    return None


def short_code(url: str) -> str | None:
    """The last path segment of a short link (`https://sms.example.com/r/Ab3dE9x` -> `Ab3dE9x`)."""
    path = urlsplit(url.rstrip(".,;:!?)")).path
    segments = [s for s in path.split("/") if s]
    return segments[-1] if segments else None


def urls(text: str) -> list[str]:
    return _URL.findall(text)


def discount_percent(text: str) -> int:
    """The discount a text offers ("10% off"), 0 when it offers none."""
    found = _DISCOUNT.search(text)
    return int(found.group(1)) if found else 0


def parse_day(value: str, near: dt.date) -> dt.date | None:
    """A date as a template printed it, with a missing year taken as the one nearest `near`."""
    text = _ORDINAL.sub(r"\1", value.strip().rstrip(".,;:!?"))
    for fmt in _DATE_FORMATS:
        if "%Y" in fmt:
            try:
                return dt.datetime.strptime(text, fmt).date()
            except ValueError:
                continue
        candidates = []
        for year in (near.year - 1, near.year, near.year + 1):
            try:
                candidates.append(dt.datetime.strptime(f"{text} {year}", f"{fmt} %Y").date())
            except ValueError:
                continue
        if candidates:
            return min(candidates, key=lambda d: abs((d - near).days))
    return None
