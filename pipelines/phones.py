"""Phone numbers: any format in, E.164 out, with a flag instead of a silent drop."""

from __future__ import annotations

from functools import cache

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

# The everyday North American spellings: "(415) 555-0142", "+1 415 555 0142", "415.555.0142",
# "14155550142", in ASCII digits. For these the number is plain to read, so only the validity
# check (libphonenumber's rules for which area codes and exchanges exist) is needed; it runs
# on the library's own patterns, vectorized (nanp_valid). Anything else takes the full parse.
_NANP = r"^\s*(?:\+?1[\s.-]?)?\(?([2-9][0-9]{2})\)?[\s.-]?([0-9]{3})[\s.-]?([0-9]{4})\s*$"
# The number types libphonenumber knows (phonenumberutil._number_type_helper): a number of
# none of them is invalid.
_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


def normalize_phone(raw: str | None, region: str = "US") -> tuple[str | None, bool]:
    """E.164 form and validity; an unparseable or invalid number is (None, False)."""
    if raw is None or not raw.strip():
        return None, False
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None, False
    if not phonenumbers.is_valid_number(number):
        return None, False
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), True


def _desc_matches(national: pl.Expr, desc) -> pl.Expr:
    """phonenumberutil._is_number_matching_desc for ten-digit numbers, as an expression."""
    if desc is None or not desc.national_number_pattern:
        return pl.lit(False)
    if desc.possible_length and 10 not in desc.possible_length:
        return pl.lit(False)
    return national.str.contains(f"^(?:{desc.national_number_pattern})$")


@cache
def _nanp_rules() -> list[tuple[str | None, object]]:
    """(leading digits, metadata) of each region sharing +1, in the library's order."""
    regions = COUNTRY_CODE_TO_REGION_CODE[1]
    return [
        (metadata.leading_digits, metadata)
        for metadata in (PhoneMetadata.metadata_for_region(r) for r in regions)
        if metadata is not None
    ]


def nanp_valid(national: pl.Expr) -> pl.Expr:
    """phonenumbers.is_valid_number for +1 and a ten-digit national number, vectorized.

    As the library does it: the number's region is the first of +1's regions whose leading
    digits start it or, for a region without leading digits, whose patterns know it; the
    number is valid when that region's patterns give it a type.
    """
    valid = pl.lit(False)
    for leading, metadata in reversed(_nanp_rules()):
        known = _desc_matches(national, metadata.general_desc) & pl.any_horizontal(
            [_desc_matches(national, getattr(metadata, name)) for name in _TYPES]
        )
        claims = national.str.contains(f"^(?:{leading})") if leading else known
        valid = pl.when(claims).then(known).otherwise(valid)
    return valid


def normalize_phone_series(raw: pl.Series, region: str = "US") -> tuple[pl.Series, pl.Series]:
    """Vectorized over distinct values: parsing is the slow part and numbers repeat."""
    distinct = pl.DataFrame({"raw": raw.drop_nulls().unique()}).with_columns(
        national=pl.concat_str([pl.col("raw").str.extract(_NANP, i) for i in (1, 2, 3)])
        if region == "US"
        else pl.lit(None, dtype=pl.String)
    )
    nanp = distinct.filter(pl.col("national").is_not_null()).with_columns(
        valid=nanp_valid(pl.col("national"))
    )
    table = {
        value: (f"+1{national}", True) if valid else (None, False)
        for value, national, valid in nanp.iter_rows()
    }
    table.update(
        (value, normalize_phone(value, region))
        for (value,) in distinct.filter(pl.col("national").is_null()).select("raw").iter_rows()
    )
    e164 = pl.Series([table[v][0] if v is not None else None for v in raw], dtype=pl.String)
    valid = pl.Series([table[v][1] if v is not None else None for v in raw], dtype=pl.Boolean)
    return e164, valid
