from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from pipelines.project import DBT_EXECUTABLE, dbt_project
from pipelines.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The data directory: landing files in, the DuckDB warehouse out."""

    data_dir: str

    def get(self) -> Warehouse:
        return Warehouse(Path(self.data_dir).resolve())


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "warehouse": WarehouseResource(data_dir=dg.EnvVar("POSTPURCHASE_DATA_DIR")),
            "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
        }
    )
