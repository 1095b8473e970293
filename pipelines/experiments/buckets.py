"""Deterministic assignment buckets; the dbt macro `bucket_of` computes the same numbers.

bucket = int(first 8 hex digits of md5(salt || unit_id)) mod 10,000. Variants take contiguous
bucket ranges in their listed order, each a whole number of buckets (weight x 10,000), so the
Python and SQL ranges agree exactly instead of up to floating-point rounding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import accumulate

BUCKETS = 10_000


def bucket(salt: str, unit_id: str) -> int:
    """The unit's bucket in 0..9,999 for this salt (md5 over the UTF-8 bytes of salt + id)."""
    digest = hashlib.md5((salt + unit_id).encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % BUCKETS


def bucket_counts(weights: Sequence[float]) -> list[int]:
    """How many buckets each variant gets; the validated specs make these sum to 10,000."""
    return [round(w * BUCKETS) for w in weights]


def bucket_ranges(weights: Sequence[float]) -> list[tuple[int, int]]:
    """Half-open [start, end) bucket ranges by variant order."""
    ends = list(accumulate(bucket_counts(weights)))
    return list(zip([0, *ends[:-1]], ends, strict=True))


def variant_for(bucket_: int, weights: Sequence[float]) -> int:
    """The index of the variant whose range holds the bucket."""
    for index, (start, end) in enumerate(bucket_ranges(weights)):
        if start <= bucket_ < end:
            return index
    raise ValueError(f"bucket {bucket_} is outside the ranges of weights {list(weights)}")
