"""`postpurchase dashboard`: the Streamlit reports on the published snapshot (registered in
pipelines/cli.py). The app lives in the repository's dashboards/ folder, beside the code."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from pipelines.settings import get_settings

APP = Path(__file__).resolve().parents[1] / "dashboards" / "streamlit_app.py"
# The libraries the pages use, imported before the server answers: otherwise the first page
# anyone opens after a start waits two seconds or more for them (Streamlit imports only its
# own on start; a page's imports happen in its first run, and st.dataframe imports pandas).
PRELOAD = (
    "altair",
    "duckdb",
    "pandas",
    "polars",
    "pyarrow",
    "pyarrow.compute",
    "pipelines.flows",
    "pipelines.settings",
)
SERVE = "from pipelines.dashboard_cli import serve; serve()"


def serve() -> None:
    """`streamlit run` with PRELOAD imported first; takes Streamlit's own arguments."""
    for module in PRELOAD:
        importlib.import_module(module)
    from streamlit.web import cli

    cli.main(prog_name="streamlit")


def streamlit_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    """The command that serves the app: headless, bound to `host`, no usage statistics."""
    return [
        sys.executable,
        "-c",
        SERVE,
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


@click.command("dashboard")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; the default keeps the reports on this machine.",
)
@click.option(
    "--publish",
    is_flag=True,
    help="Publish a snapshot from the warehouse first (each successful daily run does this).",
)
def dashboard_command(port: int, host: str, publish: bool) -> None:
    """Serve the reports (overview, experiments, flow health, replenishment, planner).

    They read $POSTPURCHASE_DATA_DIR/reporting.duckdb, the snapshot the daily run publishes
    after each success, never the warehouse itself, so they keep working during a run.
    """
    settings = get_settings()
    if not APP.exists():
        raise click.ClickException(f"{APP} is missing: run this from a checkout of the repository")
    if publish:
        _publish(settings.data_dir)
    elif not settings.reporting_path.exists():
        click.echo(
            f"No snapshot yet at {settings.reporting_path}: the pages will say so. Run "
            "`make demo` first, or `postpurchase dashboard --publish` on a built warehouse."
        )
    click.echo(f"Dashboards on http://{host}:{port} (Ctrl+C to stop)")
    # Pass the data folder on explicitly: the app reads it through the same settings.
    os.environ["POSTPURCHASE_DATA_DIR"] = str(settings.data_dir)
    argv = streamlit_argv(port, host)
    os.execv(argv[0], argv)


def _publish(data_dir: Path) -> None:
    from pipelines.reporting import publish
    from pipelines.sender.reads import latest_logical_time
    from pipelines.warehouse import Warehouse

    warehouse = Warehouse(data_dir)
    if not warehouse.path.exists():
        raise click.ClickException(f"no warehouse at {warehouse.path}: run `make demo` first")
    with warehouse.connect() as con:
        as_of = latest_logical_time(con)
    published = publish(data_dir, as_of)
    click.echo(
        f"Published {published.path} ({len(published.tables)} tables) in {published.seconds:.1f} s"
    )


if __name__ == "__main__":
    # `python -m pipelines.dashboard_cli`, as `make dashboard` runs it.
    dashboard_command()
