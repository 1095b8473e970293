"""Sending through Plivo with the real SDK (plivo 4.63.0), pointed at a base URL of our choosing.

The SDK knows nothing of retries, idempotency or where its errors came from, so this module adds
the three things the sender needs: every request goes to `base_url` (a test server in
development), one client per thread (the SDK mutates its `requests.Session` per request), and
each failure sorted into retryable / ambiguous / permanent (see `errors.py`).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import plivo
import requests
from plivo.exceptions import PlivoRestError
from plivo.utils import is_valid_mainaccount, is_valid_subaccount
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ProxyError
from urllib3.exceptions import SSLError as Urllib3SSLError

from pipelines.providers.base import SendRequest, SendResult, mask_phones, mask_phones_in
from pipelines.providers.errors import (
    AmbiguousError,
    PermanentError,
    ProviderConfigError,
    ProviderError,
    RetryableError,
)

logger = logging.getLogger(__name__)

PLIVO_API_BASE_URL = "https://api.plivo.com/v1/Account"
_BASE_SUFFIX = "/v1/Account"

# Statuses that say "not processed, try again later". 408 is the server giving up before it
# read the whole request; 500 is on Plivo's own list of transient failures.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def normalize_base_url(base_url: str) -> str:
    """`http://host:port` or `.../v1/Account[/]` -> `.../v1/Account`, which the SDK extends."""
    url = base_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ProviderConfigError(f"Plivo base URL must start with http:// or https://: {url!r}")
    if not url.endswith(_BASE_SUFFIX):
        url += _BASE_SUFFIX
    return url


class PinnedBaseUrlClient(plivo.RestClient):
    """A `plivo.RestClient` whose every request goes to one base URL.

    `RestClient.request()` assigns the module constant `PLIVO_API_BASE_URI` to `self.base_uri`
    before each messaging call, so setting the attribute once does not stick. A property whose
    setter ignores those assignments does, for this client only; patching the module constant
    instead would redirect every client in the process, including other providers' and tests'.
    """

    def __init__(self, base_uri: str, **kwargs: Any) -> None:
        self._pinned_base_uri = base_uri  # before super().__init__, which assigns base_uri
        super().__init__(**kwargs)

    @property
    def base_uri(self) -> str:
        return self._pinned_base_uri

    @base_uri.setter
    def base_uri(self, _ignored: str) -> None:
        pass


@dataclass(frozen=True)
class SeenResponse:
    """What the session hook saw of the last response: the SDK's exceptions drop all of it."""

    status: int
    retry_after: str | None
    error: str | None


class _ThreadState:
    """One SDK client per thread, with the last response its hook saw."""

    def __init__(self, client: PinnedBaseUrlClient) -> None:
        self.client = client
        self.last: SeenResponse | None = None
        client.session.hooks["response"].append(self._observe)

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        error = None
        if response.status_code >= 400:
            try:
                body = response.json()
                error = str(body.get("error")) if isinstance(body, dict) else None
            except ValueError:
                error = response.text[:200] or None
        self.last = SeenResponse(response.status_code, response.headers.get("Retry-After"), error)


class PlivoProvider:
    """Sends one `SendRequest` as one Plivo API call (`<`-joined destinations)."""

    name = "plivo"

    def __init__(
        self,
        auth_id: str,
        auth_token: str,
        *,
        src: str | None = None,
        powerpack_uuid: str | None = None,
        base_url: str = PLIVO_API_BASE_URL,
        timeout: float = 5.0,
    ) -> None:
        if not auth_id or not auth_token:
            # The SDK would silently fall back to the environment; be explicit instead.
            raise ProviderConfigError("Plivo needs both an auth id and an auth token")
        if not (is_valid_mainaccount(auth_id) or is_valid_subaccount(auth_id)):
            raise ProviderConfigError(
                "Plivo auth id must be 20 characters starting with MA or SA "
                f"(got {len(auth_id)} characters starting with {auth_id[:2]!r})"
            )
        if bool(src) == bool(powerpack_uuid):
            raise ProviderConfigError("Plivo needs exactly one of src and powerpack_uuid")
        if timeout <= 0:
            raise ProviderConfigError(f"Plivo timeout must be positive, got {timeout}")
        self.auth_id = auth_id
        self._auth_token = auth_token
        self.src = src or None
        self.powerpack_uuid = powerpack_uuid or None
        self.base_url = normalize_base_url(base_url)
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._states: list[_ThreadState] = []

    def __repr__(self) -> str:
        # Never the token: reprs end up in logs and tracebacks.
        sender = f"src={self.src!r}" if self.src else f"powerpack_uuid={self.powerpack_uuid!r}"
        return f"PlivoProvider(auth_id={self.auth_id!r}, {sender}, base_url={self.base_url!r})"

    @classmethod
    def from_settings(
        cls, environ: Mapping[str, str] | None = None, *, timeout: float = 5.0
    ) -> PlivoProvider:
        """Build from PLIVO_* variables, read now (never at import)."""
        env = os.environ if environ is None else environ

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ProviderConfigError(
                    f"{name} is not set: it is required for SMS_PROVIDER=plivo"
                )
            return value

        auth_id = required("PLIVO_AUTH_ID")
        auth_token = required("PLIVO_AUTH_TOKEN")
        src = env.get("PLIVO_SRC", "").strip()
        powerpack_uuid = env.get("PLIVO_POWERPACK_UUID", "").strip()
        if not src and not powerpack_uuid:
            raise ProviderConfigError(
                "PLIVO_SRC or PLIVO_POWERPACK_UUID must be set: the sender number or powerpack"
            )
        if src and powerpack_uuid:
            raise ProviderConfigError("set only one of PLIVO_SRC and PLIVO_POWERPACK_UUID")
        base_url = env.get("PLIVO_BASE_URL", "").strip() or PLIVO_API_BASE_URL
        return cls(
            auth_id,
            auth_token,
            src=src or None,
            powerpack_uuid=powerpack_uuid or None,
            base_url=base_url,
            timeout=timeout,
        )

    def _state(self) -> _ThreadState:
        state = getattr(self._local, "state", None)
        if state is None:
            client = PinnedBaseUrlClient(
                self.base_url,
                auth_id=self.auth_id,
                auth_token=self._auth_token,
                timeout=self.timeout,
            )
            state = _ThreadState(client)
            self._local.state = state
            with self._lock:
                self._states.append(state)
        return state

    def client(self) -> PinnedBaseUrlClient:
        """This thread's SDK client, created on first use."""
        return self._state().client

    def prepare(self) -> None:
        """Build this thread's SDK client before it takes a token: built after, the first
        request of each worker left late and arrived in the same second as the next ones,
        one more than the rate allows."""
        self._state()

    def send(self, request: SendRequest) -> SendResult:
        state = self._state()
        state.last = None
        params: dict[str, Any] = {
            # SDK 4.63.0 sends a Python list as its repr: join the numbers ourselves.
            "dst": "<".join(request.destinations),
            "text": request.text,
            "log": "true",  # the SDK insists on a string here
        }
        if self.src:
            params["src"] = self.src
        else:
            params["powerpack_uuid"] = self.powerpack_uuid
        if request.callback_url:
            params["url"] = request.callback_url
            params["method"] = "POST"

        try:
            response = state.client.messages.create(**params)
        except (PlivoRestError, requests.RequestException) as exc:
            error = classify_failure(exc, state.last)
            logger.warning(
                "plivo send to %s failed (%s): %s",
                mask_phones(request.destinations),
                type(error).__name__,
                mask_phones_in(str(error)),
            )
            raise error from exc
        try:
            return self._result(request, response, state.last)
        except AmbiguousError as error:
            logger.warning("plivo send to %s: %s", mask_phones(request.destinations), error)
            raise

    def _result(self, request: SendRequest, response: Any, seen: SeenResponse | None) -> SendResult:
        status = seen.status if seen else None
        if response is None:
            # 2xx without a JSON body: queued or not, we cannot tell, and cannot track it.
            raise AmbiguousError(
                "Plivo accepted the request but sent no readable body", status=status
            )
        uuids = tuple(str(u) for u in (getattr(response, "message_uuid", None) or ()))
        invalid = tuple(str(n) for n in (getattr(response, "invalid_number", None) or ()))
        api_id = getattr(response, "api_id", None)
        if not uuids and not invalid:
            raise AmbiguousError("Plivo answered without message uuids", status=status)
        if len(uuids) + len(invalid) != len(request.destinations):
            # Uuids map to destinations by position; a mismatch breaks that mapping.
            logger.warning(
                "plivo api_id=%s returned %d uuid(s) and %d invalid number(s) for %d destinations",
                api_id,
                len(uuids),
                len(invalid),
                len(request.destinations),
            )
        logger.debug(
            "plivo queued %d message(s) to %s, api_id=%s",
            len(uuids),
            mask_phones(request.destinations),
            api_id,
        )
        return SendResult(message_uuids=uuids, invalid_numbers=invalid, api_id=api_id)

    def close(self) -> None:
        """Close every thread's HTTP session (their keep-alive connections)."""
        with self._lock:
            states, self._states = self._states, []
        for state in states:
            state.client.session.close()
            state.client.multipart_session.close()
        self._local = threading.local()


def classify_failure(exc: Exception, seen: SeenResponse | None) -> ProviderError:
    """Sort an SDK or transport exception by whether the message could have been queued."""
    if isinstance(exc, PlivoRestError):
        if seen is None:
            # Raised by the SDK's own argument checks: nothing was sent.
            return PermanentError(str(exc) or type(exc).__name__)
        return classify_status(seen.status, seen.error or str(exc), seen.retry_after)
    if isinstance(exc, requests.ConnectTimeout):
        return RetryableError(f"connect timeout: {exc}")
    if isinstance(exc, requests.ReadTimeout):
        return AmbiguousError(f"no answer within the read timeout (request was sent): {exc}")
    if isinstance(exc, requests.ConnectionError):
        if _never_left(exc):
            return RetryableError(f"could not connect: {exc}")
        return AmbiguousError(f"connection dropped after the request was sent: {exc}")
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | requests.exceptions.InvalidHeader,
    ):
        return PermanentError(f"request could not be built: {exc}")
    return AmbiguousError(f"{type(exc).__name__}: {exc}")


def classify_status(status: int, message: str, retry_after: str | None = None) -> ProviderError:
    """An HTTP error status -> the error class the sender acts on."""
    if status == 429:
        return RetryableError(message, status=status, retry_after=parse_retry_after(retry_after))
    if status in RETRYABLE_STATUSES:
        return RetryableError(message, status=status)
    if 400 <= status < 500:
        return PermanentError(message, status=status)
    # 501, 505, odd 2xx/3xx: the request arrived and we do not know what became of it.
    return AmbiguousError(message, status=status)


def _never_left(exc: requests.ConnectionError) -> bool:
    """True when the failure happened while connecting, before any byte of the request left.

    With requests' default of no retries, urllib3 wraps connect-phase failures (refused, DNS,
    connect timeout, TLS handshake, proxy) in MaxRetryError and re-raises errors after the
    request was written (reset, remote closed) as a bare ProtocolError.
    """
    reason = exc.args[0] if exc.args else None
    if not isinstance(reason, MaxRetryError):
        return False
    return isinstance(reason.reason, ConnectTimeoutError | Urllib3SSLError | ProxyError)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: either delay-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
