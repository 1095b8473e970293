import csv

from pipelines.flows import FLOWS
from pipelines.project import DBT_DIR


def test_flow_catalogue_and_dbt_seed_agree():
    """The sender reads pipelines/flows.py and dbt reads the seed: they must say the same."""
    with open(DBT_DIR / "seeds" / "flows.csv") as handle:
        seed = {
            row["flow"]: (row["message_class"], int(row["priority"]))
            for row in csv.DictReader(handle)
        }
    assert seed == {name: (f.message_class, f.priority) for name, f in FLOWS.items()}
