"""Plivo's request signatures (V3, with V2 as the fallback), checked in constant time.

The algorithms are those of the plivo SDK (`plivo.utils.validate_v3_signature` and
`plivo.utils.validate_signature`, 4.63.0), rewritten because the SDK helpers raise on a missing
header instead of answering False and compare with `==`, which leaks timing.

V3 signs `url` + the sorted form (`key` + `value` pairs) + "." + nonce, where `url` is the
public URL Plivo called: scheme://host/path, then "?" and the sorted query when there is one,
and for a POST with a form "?" (and "." after a query) before the form. V2 signs only the URL
without its query, then the nonce. Both are HMAC-SHA256 with the auth token, base64.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

V3_HEADER = "x-plivo-signature-v3"
V3_NONCE = "x-plivo-signature-v3-nonce"
V2_HEADER = "x-plivo-signature-v2"
V2_NONCE = "x-plivo-signature-v2-nonce"

Params = Mapping[str, str | Sequence[str]]


def _hmac(token: str, message: str) -> str:
    digest = hmac.new(token.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _values(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else sorted(value)


def _sorted_query(params: Params) -> str:
    return "&".join(f"{k}={v}" for k in sorted(params) for v in _values(params[k]))


def _sorted_form(params: Params) -> str:
    return "".join(f"{k}{v}" for k in sorted(params) for v in _values(params[k]))


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def v3_string(method: str, url: str, params: Params, nonce: str) -> str:
    """The exact text a V3 signature covers."""
    query = {k: v for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}
    sorted_query = _sorted_query(query)
    signed = _base_url(url)
    if method.upper() == "GET":
        # A GET's own parameters are query parameters.
        merged = {**{k: _values(v) for k, v in params.items()}, **query}
        sorted_query = _sorted_query(merged)
        if sorted_query:
            signed += "?" + sorted_query
        return f"{signed}.{nonce}"
    if sorted_query or params:
        signed += "?" + sorted_query
    if sorted_query and params:
        signed += "."
    return f"{signed}{_sorted_form(params)}.{nonce}"


def v3_signature(method: str, url: str, params: Params, nonce: str, token: str) -> str:
    return _hmac(token, v3_string(method, url, params, nonce))


def v2_signature(url: str, nonce: str, token: str) -> str:
    return _hmac(token, _base_url(url) + nonce)


def _matches(expected: str, header: str) -> bool:
    # The header may carry several signatures (a token being rotated): any one will do, and
    # every candidate is compared, so the time taken does not depend on which matched.
    found = False
    for candidate in header.split(","):
        found |= hmac.compare_digest(expected.encode(), candidate.strip().encode())
    return found


@dataclass(frozen=True)
class Verdict:
    ok: bool
    version: str | None  # "v3" | "v2" | None
    reason: str


def verify(
    method: str, url: str, params: Params, headers: Mapping[str, str], token: str
) -> Verdict:
    """Whether a request carries a valid Plivo signature for `url` (the public URL called).

    V3 when its headers are present; V2 only when V3's are absent. A missing header is a
    refusal, never an exception.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    if lower.get(V3_HEADER) is not None or lower.get(V3_NONCE) is not None:
        signature, nonce = lower.get(V3_HEADER), lower.get(V3_NONCE)
        if not signature or not nonce:
            return Verdict(False, "v3", "incomplete V3 signature headers")
        expected = v3_signature(method, url, params, nonce, token)
        if _matches(expected, signature):
            return Verdict(True, "v3", "valid V3 signature")
        return Verdict(False, "v3", "V3 signature does not match")
    if lower.get(V2_HEADER) is not None or lower.get(V2_NONCE) is not None:
        signature, nonce = lower.get(V2_HEADER), lower.get(V2_NONCE)
        if not signature or not nonce:
            return Verdict(False, "v2", "incomplete V2 signature headers")
        if _matches(v2_signature(url, nonce, token), signature):
            return Verdict(True, "v2", "valid V2 signature")
        return Verdict(False, "v2", "V2 signature does not match")
    return Verdict(False, None, "unsigned: no Plivo signature headers")


def sign_v3_headers(
    url: str, params: Params, token: str, nonce: str, method: str = "POST"
) -> dict[str, str]:
    """The headers Plivo would send: for tests, the simulator and `curl` examples."""
    return {
        "X-Plivo-Signature-V3": v3_signature(method, url, params, nonce, token),
        "X-Plivo-Signature-V3-Nonce": nonce,
    }
