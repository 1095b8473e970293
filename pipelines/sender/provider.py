"""The provider SMS_PROVIDER names, built at call time."""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable

from pipelines.providers.base import Provider
from pipelines.providers.dry_run import DryRunProvider
from pipelines.providers.errors import ProviderConfigError
from pipelines.settings import get_settings


def make_provider(name: str, at: dt.datetime | Callable[[], dt.datetime]) -> Provider:
    """plivo | simulator | dry-run, for send runs as of the logical time ``at``.

    ``at`` is a time, or a function returning the current run's time when one provider serves
    many runs (the demo's hours). The simulator is imported lazily (it loads the world); its
    clock is the run's logical time, so the world's answers are timed from when the text was
    sent, never the wall clock.
    """
    if name == "dry-run":
        return DryRunProvider()
    if name == "plivo":
        from pipelines.providers.plivo import PlivoProvider

        return PlivoProvider.from_settings()
    if name == "simulator":
        try:
            module = importlib.import_module("pipelines.providers.simulator")
        except ModuleNotFoundError as exc:
            if exc.name != "pipelines.providers.simulator":
                raise
            raise ProviderConfigError(
                "SMS_PROVIDER=simulator, but pipelines/providers/simulator.py does not exist "
                "yet; use --provider dry-run or plivo"
            ) from exc
        settings = get_settings()
        clock = at if callable(at) else lambda: at
        return module.SimulatorProvider(settings.landing_dir, settings.simulator_dir, clock=clock)
    raise ProviderConfigError(f"unknown provider {name!r}: plivo, simulator or dry-run")
