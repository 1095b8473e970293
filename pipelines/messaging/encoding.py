"""SMS encoding, segment counts and cost: what a text will cost before it is sent.

A text is sent as GSM-7 when every character is in the GSM 03.38 default alphabet or its
extension table, and as UCS-2 otherwise; one stray curly quote switches the whole message and
more than doubles its segments. So texts are normalized first (`normalize_gsm`) and counted
(`measure`) before anything goes out.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from decimal import Decimal

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# 3GPP TS 23.038 default alphabet, in code order 0x00-0x7F. 0x1B is the escape to the extension
# table, not a character, so it is left out. 0x09 is the capital C cedilla as the standard
# draws it; a lower-case one is therefore UCS-2, which can only over-count, never under-count.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The extension table: each is sent as ESC + code, so it takes two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153  # a part loses 7 septets to the concatenation header
UCS2_SINGLE, UCS2_PART = 70, 67  # and 3 UTF-16 units in UCS-2
# Plivo's maxima for one message. We compare them with encoded units (septets, UTF-16 units),
# which is never more lenient than counting characters.
GSM7_MAX = 1600
UCS2_MAX = 737

# Replacements that keep the meaning: typography a keyboard or a CMS slipped in, invisible
# characters, and exotic spaces. Letters are never changed (a customer's name keeps its
# accents even when that costs UCS-2).
_SPACES = "\t\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
_SPACES += "\u202f\u205f\u3000"
_REPLACEMENTS: dict[str, str] = {
    **dict.fromkeys(_SPACES, " "),
    **dict.fromkeys("\u200b\u2060\ufeff\u00ad", ""),  # zero-width space/joiner, BOM, soft hyphen
    **dict.fromkeys("\u2028\u2029\u0085", "\n"),  # line and paragraph separators
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u2039\u203a`\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
    **dict.fromkeys("\u2022\u2023\u2043\u2219\u25e6", "-"),  # bullets
    "\u2026": "...",
    "\u2044": "/",  # fraction slash
    "\u00d7": "x",  # multiplication sign, as in "2 × Serum"
}
_TABLE = str.maketrans(_REPLACEMENTS)


class MessageTooLong(ValueError):
    """The text is longer than the provider accepts for one message, at any segment count."""


@dataclass(frozen=True)
class SmsText:
    text: str
    encoding: str  # GSM-7 | UCS-2
    segments: int
    characters: int  # code points, what a person would call its length
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2): what segments are made of


def normalize_gsm(text: str) -> str:
    """Replace look-alike typography with GSM-7 characters; idempotent."""
    # NFC after the table: deleting an invisible character can leave a base letter next to a
    # combining accent, and composing them (e + U+0301 -> é) may make it GSM-7 after all.
    return unicodedata.normalize("NFC", text.translate(_TABLE)).translate(_TABLE)


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def encoding_of(text: str) -> str:
    return GSM7 if is_gsm7(text) else UCS2


def _unit_weights(text: str, encoding: str) -> list[int]:
    """Units per character; a character's units never straddle two parts."""
    if encoding == GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]  # astral plane: a surrogate pair


def _pack(weights: list[int], single: int, part: int) -> int:
    total = sum(weights)
    if total == 0:
        return 0
    if total <= single:
        return 1
    # Greedy, as handsets and providers split: an escape pair or surrogate pair that does not
    # fit moves whole to the next part, so parts can hold fewer than `part` units.
    parts, used = 1, 0
    for weight in weights:
        if used + weight > part:
            parts, used = parts + 1, 0
        used += weight
    return parts


def measure(text: str) -> SmsText:
    """Encoding, segments and length of `text` exactly as given (normalize first if wanted)."""
    encoding = encoding_of(text)
    weights = _unit_weights(text, encoding)
    units = sum(weights)
    if encoding == GSM7:
        limit, single, part = GSM7_MAX, GSM7_SINGLE, GSM7_PART
    else:
        limit, single, part = UCS2_MAX, UCS2_SINGLE, UCS2_PART
    if units > limit:
        raise MessageTooLong(
            f"message is {units} {encoding} units long; Plivo accepts at most {limit}"
        )
    return SmsText(text, encoding, _pack(weights, single, part), len(text), units)


def segments(text: str) -> int:
    """Segments billed for `text` (0 for an empty text); MessageTooLong past Plivo's maxima."""
    return measure(text).segments


def cost(segment_count: int, per_segment_rate: Decimal | float | str) -> Decimal:
    """Price of a message. Decimal, because rates have five decimals and sums must not drift."""
    if segment_count < 0:
        raise ValueError(f"segment count must be >= 0, got {segment_count}")
    rate = (
        per_segment_rate
        if isinstance(per_segment_rate, Decimal)
        else Decimal(str(per_segment_rate))
    )
    return rate * segment_count
