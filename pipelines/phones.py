"""Phone numbers: any format in, E.164 out, with a flag instead of a silent drop."""

from __future__ import annotations

import phonenumbers
import polars as pl


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


def normalize_phone_series(raw: pl.Series, region: str = "US") -> tuple[pl.Series, pl.Series]:
    """Vectorized over distinct values: parsing is the slow part and numbers repeat."""
    distinct = raw.drop_nulls().unique().to_list()
    table = {value: normalize_phone(value, region) for value in distinct}
    e164 = pl.Series([table[v][0] if v is not None else None for v in raw], dtype=pl.String)
    valid = pl.Series([table[v][1] if v is not None else None for v in raw], dtype=pl.Boolean)
    return e164, valid
