"""Phone numbers: any format in, E.164 out, with a flag instead of a silent drop."""

from __future__ import annotations

import phonenumbers
import polars as pl

# The everyday North American spellings: "(415) 555-0142", "+1 415 555 0142", "415.555.0142",
# "14155550142". For these the number is plain to read, so only the validity check (the
# library's rules for which area codes and exchanges exist) needs libphonenumber, which skips
# its parser, the slow part. Anything else takes the library's full parse.
_NANP = r"^\s*(?:\+?1[\s.-]?)?\(?([2-9]\d{2})\)?[\s.-]?(\d{3})[\s.-]?(\d{4})\s*$"


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


def _normalize_nanp(national: str) -> tuple[str | None, bool]:
    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(national))
    if not phonenumbers.is_valid_number(number):
        return None, False
    return f"+1{national}", True


def normalize_phone_series(raw: pl.Series, region: str = "US") -> tuple[pl.Series, pl.Series]:
    """Vectorized over distinct values: parsing is the slow part and numbers repeat."""
    distinct = pl.DataFrame({"raw": raw.drop_nulls().unique()}).with_columns(
        national=pl.concat_str([pl.col("raw").str.extract(_NANP, i) for i in (1, 2, 3)])
        if region == "US"
        else pl.lit(None, dtype=pl.String)
    )
    table = {
        value: _normalize_nanp(national) if national else normalize_phone(value, region)
        for value, national in distinct.iter_rows()
    }
    e164 = pl.Series([table[v][0] if v is not None else None for v in raw], dtype=pl.String)
    valid = pl.Series([table[v][1] if v is not None else None for v in raw], dtype=pl.Boolean)
    return e164, valid
