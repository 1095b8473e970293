"""The one dbt project, and the dbt executable that belongs to this environment."""

import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

DBT_DIR = Path(__file__).resolve().parents[1] / "dbt"
# The dbt beside this interpreter, so an unactivated virtualenv works too.
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")

SOURCE_FOLDERS = ("models", "seeds", "macros", "tests", "snapshots", "analyses")
dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)


def prepare_manifest() -> Path:
    """Parse the dbt project when the manifest is missing or older than any dbt file."""
    manifest = dbt_project.manifest_path
    # Only the source folders: target/ gains a folder of files per dbt invocation, tens of
    # thousands after a while, and walking them cost every command seconds.
    sources = [
        p
        for folder in SOURCE_FOLDERS
        for p in (DBT_DIR / folder).rglob("*")
        if p.suffix in {".sql", ".py", ".yml", ".csv"}
    ] + [p for p in DBT_DIR.glob("*.yml")]
    newest = max(p.stat().st_mtime for p in sources)
    if not manifest.exists() or newest > manifest.stat().st_mtime:
        subprocess.run(
            [
                DBT_EXECUTABLE,
                "parse",
                "--quiet",
                "--project-dir",
                str(DBT_DIR),
                "--profiles-dir",
                str(DBT_DIR),
            ],
            check=True,
        )
    return manifest


# The dbt assets read the manifest when this package is imported, by `dg dev`, `dagster dev`,
# a code server or a test. DbtProject.prepare_if_dev() would do this only under the dev
# commands, and only with a `dbt` on PATH; this works from any entry point and virtualenv.
prepare_manifest()
