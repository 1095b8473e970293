"""What can go wrong when handing a message to a provider, sorted by what the sender may do next.

The split follows one question: could the provider have queued the message? If certainly not,
the sender may retry (`RetryableError`); if it might have, a retry risks a duplicate text, so
the attempt is marked unknown (`AmbiguousError`); if the provider refused the request itself,
retrying the same request is pointless (`PermanentError`).
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base class: `status` is the HTTP status when a response arrived, else None."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message if self.status is None else f"HTTP {self.status}: {self.message}"


class RetryableError(ProviderError):
    """The request was not delivered, or was refused in a way that is safe to repeat.

    Connection refused, connect timeouts, 429 (with `retry_after` seconds when the provider sent
    Retry-After) and 500/502/503/504.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class AmbiguousError(ProviderError):
    """The request left and no definite answer came back (read timeout, dropped connection).

    The provider may have queued the message: never resend blindly.
    """


class PermanentError(ProviderError):
    """The provider rejected the request (other 4xx); `message` is the provider's own reason."""


class ProviderConfigError(ValueError):
    """A provider cannot be built from the environment; the message names what is missing."""
