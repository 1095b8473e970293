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
