"""A provider that sends nothing: it remembers what would have gone out."""

from __future__ import annotations

import hashlib
import threading

from pipelines.providers.base import SendRequest, SendResult


def dry_run_uuid(text: str, destination: str) -> str:
    """Deterministic, so a rerun of the same decisions yields the same ids."""
    # The separator keeps ("ab", "+1...") and ("a", "b+1...") apart.
    digest = hashlib.sha1(f"{text}\x00{destination}".encode()).hexdigest()
    return f"dry-{digest}"


class DryRunProvider:
    """Records each request in memory (thread-safe) and answers as if all were queued."""

    name = "dry-run"
    # No carrier hears of these, so nothing to pace: a dry run of a big brand's day takes
    # as long as the decisions and the outbox take, not hours at the carrier's rate.
    paced = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: list[SendRequest] = []

    def send(self, request: SendRequest) -> SendResult:
        with self._lock:
            self._sent.append(request)
        uuids = tuple(dry_run_uuid(request.text, dst) for dst in request.destinations)
        return SendResult(message_uuids=uuids, invalid_numbers=(), api_id=None)

    @property
    def sent(self) -> list[SendRequest]:
        """A copy of every request so far, in arrival order."""
        with self._lock:
            return list(self._sent)
