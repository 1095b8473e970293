"""Test doubles that run for real: a Plivo-compatible HTTP server for tests and benchmarks."""

from __future__ import annotations

from typing import Any

__all__ = ["PlivoTestServer", "RecordedMessage", "RequestRecord"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m pipelines.testing.plivo_server` does not import the module twice
    # (runpy warns when a package has already imported the module it is asked to run).
    if name in __all__:
        from pipelines.testing import plivo_server

        return getattr(plivo_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
