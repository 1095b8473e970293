import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ONLINE_RETAIL = SHARED / "data" / "online_retail" / "online_retail.parquet"


def pytest_configure(config):
    # dbt must never wait on the network from a test.
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    # A module-level @dbt_assets reads the manifest at import: build it once per session.
    from pipelines.project import prepare_manifest

    prepare_manifest()


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A separate world: its own landing, warehouse and Dagster instance."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("POSTPURCHASE_DATA_DIR", str(path))
    monkeypatch.setenv("DAGSTER_HOME", str(path / "dagster_home"))
    return path
