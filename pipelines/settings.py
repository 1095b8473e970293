"""Runtime configuration: the one place environment variables are read (never at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def events_dir(self) -> Path:
        return self.data_dir / "events"

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def reporting_path(self) -> Path:
        return self.data_dir / "reporting.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster_home"

    @property
    def simulator_dir(self) -> Path:
        """The simulated world's hidden truth: never part of landing."""
        return self.data_dir / "simulator"


def get_settings() -> Settings:
    return Settings(data_dir=Path(os.environ.get("POSTPURCHASE_DATA_DIR", "data")).resolve())


# The analysts' experiment specs live in the repository, beside the code that runs them.
EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "experiments"


def get_experiments_dir() -> Path:
    """The folder of experiment specs: POSTPURCHASE_EXPERIMENTS_DIR, else the repo's own."""
    override = os.environ.get("POSTPURCHASE_EXPERIMENTS_DIR")
    return Path(override).resolve() if override else EXPERIMENTS_DIR


PROVIDERS = ("plivo", "simulator", "dry-run")
# Plivo's API allows about 300 requests per 5 s and 100 concurrent requests (notes/plivo.md);
# stay under both whatever is configured.
MAX_RATE_PER_SECOND = 50.0
MAX_IN_FLIGHT = 100


@dataclass(frozen=True)
class SenderSettings:
    """What the sender reads from the environment: provider, limits, caps and brand."""

    provider: str = "simulator"
    rate_per_second: float = 5.0
    max_in_flight: int = 100
    marketing_cap_per_24h: int = 1
    marketing_cap_per_7d: int = 4
    brand_name: str = "Acme Goods"
    support_contact: str = "help@acme.example"
    short_link_domain: str = "https://go.example.com"
    callback_public_url: str | None = None
    shop_url: str = "https://shop.example.com"
    cost_per_segment: str = "0.0055"  # USD; a string so it becomes an exact Decimal
    retry_base_seconds: float = 1.0
    retry_cap_seconds: float = 60.0
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(f"SMS_PROVIDER must be one of {', '.join(PROVIDERS)}")
        if not 0 < self.rate_per_second <= MAX_RATE_PER_SECOND:
            raise ValueError(f"SEND_RATE_PER_SECOND must be in (0, {MAX_RATE_PER_SECOND:g}]")
        if not 1 <= self.max_in_flight <= MAX_IN_FLIGHT:
            raise ValueError(f"SEND_MAX_IN_FLIGHT must be in [1, {MAX_IN_FLIGHT}]")

    @property
    def status_callback_url(self) -> str | None:
        """Where Plivo posts delivery receipts: the public callback base + /plivo/status."""
        if not self.callback_public_url:
            return None
        return self.callback_public_url.rstrip("/") + "/plivo/status"


def get_sender_settings(environ: dict[str, str] | None = None) -> SenderSettings:
    """The sender's settings from the environment, read now (never at import)."""
    env = os.environ if environ is None else environ
    defaults = SenderSettings()

    def text(name: str, default: str) -> str:
        return env.get(name, "").strip() or default

    return SenderSettings(
        provider=text("SMS_PROVIDER", defaults.provider),
        rate_per_second=float(text("SEND_RATE_PER_SECOND", str(defaults.rate_per_second))),
        max_in_flight=int(text("SEND_MAX_IN_FLIGHT", str(defaults.max_in_flight))),
        marketing_cap_per_24h=int(
            text("MARKETING_CAP_PER_24H", str(defaults.marketing_cap_per_24h))
        ),
        marketing_cap_per_7d=int(text("MARKETING_CAP_PER_7D", str(defaults.marketing_cap_per_7d))),
        brand_name=text("BRAND_NAME", defaults.brand_name),
        support_contact=text("SUPPORT_CONTACT", defaults.support_contact),
        short_link_domain=text("SHORT_LINK_DOMAIN", defaults.short_link_domain),
        callback_public_url=env.get("CALLBACK_PUBLIC_URL", "").strip() or None,
        shop_url=text("SHOP_URL", defaults.shop_url),
        cost_per_segment=text("SMS_COST_PER_SEGMENT", defaults.cost_per_segment),
        retry_base_seconds=float(text("SEND_RETRY_BASE_SECONDS", str(defaults.retry_base_seconds))),
        retry_cap_seconds=float(text("SEND_RETRY_CAP_SECONDS", str(defaults.retry_cap_seconds))),
        max_attempts=int(text("SEND_MAX_ATTEMPTS", str(defaults.max_attempts))),
    )
