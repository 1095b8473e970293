"""What a reply asks for: opt out, opt back in, help, a survey score, or none of these.

The phrases are the dbt seed `sms_keywords.csv`, the same list the consent models read, so the
service and the warehouse agree on what counts as STOP. Matching is the models' too (lowercase,
whitespace collapsed; `exact` phrases are the whole text, `contains` phrases anywhere), with one
addition: punctuation around the words is ignored ("Stop.", "STOP!!"), since any reasonable
way of saying stop revokes consent and a stray full stop must not keep the texts coming.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

KEYWORDS_SEED = Path(__file__).resolve().parents[2] / "dbt" / "seeds" / "sms_keywords.csv"

OPT_OUT, OPT_IN, HELP = "opt_out", "opt_in", "help"
# Plivo's MessageIntent for its standard keywords.
PLIVO_INTENTS = {"optout": OPT_OUT, "optin": OPT_IN, "help": HELP}

_SPACES = re.compile(r"\s+")
_EDGE_PUNCTUATION = re.compile(r"^[^\w]+|[^\w]+$")
_INNER_PUNCTUATION = re.compile(r"[^\w\s'-]+")
# "7", "7/10", "10!", " 8 . ": a survey answer, 0 to 10.
_SCORE = re.compile(r"^\s*(10|[0-9])\s*(?:/\s*10)?\s*[.!]*\s*$")


@dataclass(frozen=True)
class Phrase:
    text: str
    intent: str
    exact: bool


@cache
def phrases(seed: Path = KEYWORDS_SEED) -> tuple[Phrase, ...]:
    with open(seed, newline="", encoding="utf-8") as handle:
        return tuple(
            Phrase(normalize(row["phrase"]), row["intent"], row["match"] == "exact")
            for row in csv.DictReader(handle)
        )


def normalize(text: str | None) -> str:
    """The models' comparable form: lowercase, whitespace collapsed and trimmed."""
    return _SPACES.sub(" ", (text or "").lower()).strip()


def _forms(text: str) -> tuple[str, ...]:
    plain = normalize(text)
    trimmed = _EDGE_PUNCTUATION.sub("", plain)
    loose = normalize(_INNER_PUNCTUATION.sub(" ", trimmed))
    return tuple(dict.fromkeys((plain, trimmed, loose)))


def keyword_intent(text: str | None, plivo_intent: str | None = None) -> str | None:
    """opt_out | opt_in | help | None. An opt-out reading anywhere wins over the rest."""
    found = set()
    if plivo_intent and plivo_intent.strip().lower() in PLIVO_INTENTS:
        found.add(PLIVO_INTENTS[plivo_intent.strip().lower()])
    forms = _forms(text or "")
    for phrase in phrases():
        exact = phrase.exact and phrase.text in forms
        if exact or (not phrase.exact and any(phrase.text in form for form in forms)):
            found.add(phrase.intent)
    for intent in (OPT_OUT, OPT_IN, HELP):
        if intent in found:
            return intent
    return None


def survey_score(text: str | None) -> int | None:
    """The 0-10 score a reply gives, or None when it is not just a number in range."""
    match = _SCORE.match(text or "")
    return int(match.group(1)) if match else None
