"""`postpurchase`: the command line a data engineer and an analyst use without the UI."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.console import console
from pipelines.sender.cli import summary_table
from pipelines.settings import get_settings


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _date(_ctx, param, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param=param) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Post-purchase SMS flows: ingest, model, send and prove what works.

    Everything is read from and written to POSTPURCHASE_DATA_DIR (default ./data).
    """


@main.command()
@click.option("--days", default=60, show_default=True, help="Days of history to simulate.")
@click.option("--customers", default=2000, show_default=True, help="Customers in the world.")
@click.option("--seed", default=7, show_default=True, help="Same seed, same files.")
@click.option("--start", callback=_date, default="2026-08-01", show_default=True, help="First day.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Landing root to write to [default: $POSTPURCHASE_DATA_DIR/landing].",
)
def simulate(days: int, customers: int, seed: int, start: dt.date, out: Path | None) -> None:
    """Write a deterministic simulated shop's daily exports into landing."""
    settings = get_settings()
    out = out or settings.landing_dir
    summary = _simulate(out, days, customers, seed, start, settings.simulator_dir)
    console.print(
        f"Simulated {customers:,} customers over {days} days "
        f"({summary.first_day} to {summary.last_day}) into {out}"
    )


def _simulate(out: Path, days: int, customers: int, seed: int, start: dt.date, truth: Path):
    from pipelines.simulator import simulate as run_simulation

    with _progress() as bar:
        task = bar.add_task("simulating days", total=days)
        return run_simulation(
            out,
            days=days,
            customers=customers,
            seed=seed,
            start=start,
            truth_dir=truth,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )


@main.group(name="import")
def import_() -> None:
    """Convert a shop's or a public data set's exports into canonical landing files."""


@import_.command("online-retail")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Landing root to write to [default: $POSTPURCHASE_DATA_DIR/landing].",
)
def import_online_retail(path: Path, out: Path | None) -> None:
    """Convert the UCI Online Retail log (Chen, Sain & Guo 2012) into landing files."""
    from pipelines.importers.online_retail import import_online_retail as convert

    out = out or get_settings().landing_dir
    with _progress() as bar:
        task = bar.add_task("writing days", total=None)
        summary = convert(
            path, out, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    table = Table(title=f"Online Retail import into {out}")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("source lines", summary.lines_in),
        ("orders (normal)", summary.orders),
        ("orders (cancelled, C invoices)", summary.cancelled_orders),
        ("order lines written", summary.lines_written),
        ("customers", summary.customers),
        ("products", summary.products),
        *((f"lines skipped: {reason}", n) for reason, n in summary.skipped_lines.items()),
        ("days written", summary.days_written),
    ]
    for what, count in rows:
        table.add_row(what, f"{count:,}")
    console.print(table)
    console.print(f"Next: postpurchase run --from {summary.first_day} --to {summary.last_day}")


@main.command()
@click.option("--from", "start", callback=_date, required=True, help="First day (YYYY-MM-DD).")
@click.option("--to", "end", callback=_date, required=True, help="Last day (YYYY-MM-DD).")
@click.option(
    "--build-every-day",
    is_flag=True,
    help="Build the dbt models as of every day, not only the last (slower; as a backfill does).",
)
@click.option(
    "--record-runs",
    is_flag=True,
    help="Record the runs in the Dagster instance the UI (make dev) shows (slower).",
)
@click.option(
    "--send/--no-send",
    default=True,
    show_default=True,
    help="Then send what is due at the end of the last day through $SMS_PROVIDER.",
)
def run(start: dt.date, end: dt.date, build_every_day: bool, record_runs: bool, send: bool) -> None:
    """Materialize the daily job for each day in order, in-process, with progress."""
    _run(start, end, build_every_day, record_runs)
    if send:
        _send_after(end)


def _send_after(day: dt.date) -> None:
    """Send what is due once the day is over, as the hourly sender would at midnight UTC."""
    from pipelines.providers.errors import ProviderConfigError
    from pipelines.sender.cli import send_at

    at = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    try:
        report = send_at(at)
    except (ProviderConfigError, FileNotFoundError, ValueError) as exc:
        # The warehouse is built either way; say why nothing was sent rather than fail it.
        console.print(f"[yellow]Not sending:[/yellow] {exc}")
        return
    console.print(summary_table(report))


def _run(start: dt.date, end: dt.date, build_every_day: bool = False, record_runs: bool = False):
    """The daily job for each day, with progress; returns the Dagster instance it used."""
    from pipelines.runner import RunFailed, days_between, run_days

    settings = get_settings()
    try:
        days = days_between(start, end)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    instance = _prepare(settings, record_runs)
    # Without the Dagster daemon no sensor lands the callback service's sealed log segments.
    from pipelines.callbacks.loading import land_sealed

    land_sealed(settings.events_dir, settings.landing_dir)
    with _progress() as bar:
        task = bar.add_task("daily runs", total=len(days))

        def advance(day_run) -> None:
            what = "ingest + dbt build" if day_run.built_models else "ingest"
            if day_run.days > 1:
                what = f"ingest of {day_run.days} days"
            bar.update(task, advance=day_run.days, description=f"{day_run.day} {what}")
            if not console.is_terminal:
                # No live bar in a log file: one line per day instead.
                console.print(f"{day_run.day} {what} done in {day_run.seconds:.1f} s")

        with _exit_on_failure(RunFailed):
            run_days(
                instance,
                days,
                _log_path(settings),
                build_every_day=build_every_day,
                on_day=advance,
            )
    return instance


def _prepare(settings, record_runs: bool = False):
    from pipelines.runner import prepare_environment

    with console.status("preparing the Dagster instance and the dbt manifest"):
        instance = prepare_environment(settings, record=record_runs)
    # The runs' own output goes to the log; pin the console to the terminal it started on.
    console.file = sys.stdout
    _log_to_file(_log_path(settings))
    return instance


def _log_to_file(path: Path) -> None:
    """Send Python logging (Dagster's step logs among it) to the run log, not the screen.

    Without a handler on the root logger, the first library to call `logging.warning()`
    installs one on stderr, and every Dagster step log floods the progress bars from then on.
    """
    root = logging.getLogger()
    if any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)


def _log_path(settings) -> Path:
    return settings.data_dir / "logs" / "run.log"


@contextlib.contextmanager
def _exit_on_failure(failure: type[Exception]):
    try:
        yield
    except failure as exc:
        console.print(f"[red]Run failed[/red] {exc}")
        console.print(
            "The failed step loaded nothing; fix the cause and run the same command again."
        )
        sys.exit(1)


@main.command()
@click.option("--customers", default=2000, show_default=True)
@click.option("--days", default=60, show_default=True, help="Days simulated in all.")
@click.option(
    "--live-days",
    default=10,
    show_default=True,
    help="Days run live after the history: hourly sends, a nightly build (about 30 s a day).",
)
@click.option(
    "--follow-up-days",
    default=30,
    show_default=True,
    help="Last days, sender paused, so the experiments' 30-day windows complete.",
)
@click.option("--seed", default=7, show_default=True)
def demo(customers: int, days: int, live_days: int, follow_up_days: int, seed: int) -> None:
    """Simulate a shop, catch up on its history, run it live, then read the experiments.

    Safe to re-run: the same seed gives the same shop, and nothing is sent twice.
    """
    from pipelines.demo import split_days
    from pipelines.runner import days_between
    from pipelines.summary import summarize
    from pipelines.warehouse import Warehouse

    settings = get_settings()
    started = time.monotonic()
    start = dt.date(2026, 8, 1)
    try:
        history, live, follow_up = split_days(
            days_between(start, start + dt.timedelta(days=days - 1)), live_days, follow_up_days
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    # The simulated world has no carrier limit; Plivo's default of 5 per second stays for real.
    os.environ.setdefault("SMS_PROVIDER", "simulator")
    os.environ.setdefault("SEND_RATE_PER_SECOND", "50")
    console.rule("1. Simulating the shop")
    _simulate(settings.landing_dir, days, customers, seed, start, settings.simulator_dir)
    console.rule(f"2. Catching up on {len(history)} days of history before going live")
    instance = _run(history[0], history[-1])
    console.rule(f"3. Live for {len(live)} days: sending every hour, building every night")
    report = _run_live(settings, instance, live)
    console.print(summary_table(report, title=f"Hourly send runs over {len(live)} live days"))
    if follow_up:
        console.rule(
            f"4. Following up for {len(follow_up)} days: the sender pauses, the world answers"
        )
        _run(follow_up[0], follow_up[-1])
    console.rule("Summary")
    _print_summary(summarize(Warehouse(settings.data_dir)), settings.simulator_dir / "planted.json")
    console.print(f"Done in {time.monotonic() - started:.0f} s. Data in {settings.data_dir}.")
    console.print(
        "Read the reports with [bold]make dashboard[/bold]; open the Dagster UI on this "
        "warehouse with [bold]make dev[/bold]."
    )


def _run_live(settings, instance, days: list[dt.date]):
    from pipelines.demo import run_live_days
    from pipelines.runner import RunFailed
    from pipelines.sender.provider import make_provider
    from pipelines.sender.run import SendConfig, SendReport
    from pipelines.settings import get_sender_settings
    from pipelines.warehouse import Warehouse

    sender = get_sender_settings()
    config = SendConfig.from_settings(sender, events_dir=settings.events_dir)
    total = SendReport(dt.datetime.combine(days[0], dt.time(), tzinfo=dt.UTC), sender.provider)
    with _progress() as bar:
        task = bar.add_task("live days", total=len(days))

        def advance(live) -> None:
            total.add(live.sends)
            line = (
                f"{live.day}: {live.sends.sent:,} sent, "
                f"{sum(live.sends.deferred.values()):,} deferrals, "
                f"{sum(live.sends.suppressed.values()):,} suppressed; "
                f"ingest + dbt build {live.build.seconds:.1f} s"
            )
            bar.update(task, advance=1, description=line)
            if not console.is_terminal:
                console.print(line)

        with _exit_on_failure(RunFailed):
            run_live_days(
                instance,
                days,
                Warehouse(settings.data_dir),
                lambda clock: make_provider(sender.provider, clock),
                config,
                _log_path(settings),
                on_day=advance,
            )
    return total


def _print_summary(summary, planted_path: Path) -> None:
    planted = json.loads(planted_path.read_text()) if planted_path.exists() else {}
    planted_rejects = planted.get("malformed", {})

    rows = Table(title="Rows per entity")
    for col in ("entity", "rows in", "in raw (latest versions)", "rejected"):
        rows.add_column(col, justify="left" if col == "entity" else "right")
    for entity, n in summary.raw_rows.items():
        rejected = sum(v for (e, _), v in summary.rejects.items() if e == entity)
        rows.add_row(entity, f"{summary.rows_in.get(entity, 0):,}", f"{n:,}", f"{rejected:,}")
    console.print(rows)

    rejects = Table(title="Rejected rows by reason (ops.ingest_rejects)")
    for col in ("entity", "reason", "rejected", "planted by the simulator"):
        rejects.add_column(col, justify="left" if col in ("entity", "reason") else "right")
    keys = sorted(
        set(summary.rejects) | {(e, r) for e, reasons in planted_rejects.items() for r in reasons}
    )
    for entity, reason in keys:
        planted_n = planted_rejects.get(entity, {}).get(reason)
        rejects.add_row(
            entity,
            reason,
            f"{summary.rejects.get((entity, reason), 0):,}",
            "" if planted_n is None else f"{planted_n:,}",
        )
    console.print(rejects)
    console.print(
        f"Customers with an invalid phone number (kept, flagged, never texted): "
        f"{summary.invalid_phones:,}"
    )
    if summary.candidates:
        queue = Table(title="Message candidates by flow and variant (marts.message_candidates)")
        for col in ("flow", "experiment", "variant", "held out", "candidates"):
            queue.add_column(col, justify="right" if col == "candidates" else "left")
        for (flow, experiment, variant, held_out), n in summary.candidates.items():
            queue.add_row(flow, experiment, variant, "yes" if held_out else "", f"{n:,}")
        console.print(queue)
    if summary.outbox:
        sent = Table(title="Messages by flow, variant and outcome (ops.outbox)")
        for col in ("flow", "experiment", "variant", "outcome", "messages"):
            sent.add_column(col, justify="right" if col == "messages" else "left")
        for (flow, experiment, variant, state), n in summary.outbox.items():
            sent.add_row(flow, experiment, variant, state, f"{n:,}")
        console.print(sent)
    if summary.decisions:
        why = Table(title="Messages deferred or suppressed, by reason (ops.send_decisions)")
        for col in ("decision", "reason", "messages"):
            why.add_column(col, justify="right" if col == "messages" else "left")
        for (action, reason), n in summary.decisions.items():
            why.add_row(action, reason, f"{n:,}")
        console.print(why)
        console.print("Ask why for any customer: [bold]postpurchase why PHONE_OR_CUSTOMER[/bold]")
    _print_experiments(summary)
    if summary.models:
        models = Table(title="dbt models")
        models.add_column("model")
        models.add_column("rows", justify="right")
        for name, n in summary.models.items():
            models.add_row(name, f"{n:,}")
        console.print(models)


def _pct(value) -> str:
    return "" if value is None else f"{value:+.1%}"


def _print_experiments(summary) -> None:
    if summary.verdicts:
        table = Table(title="Experiments: primary metric per variant and verdict (analysis.*)")
        for col in (
            "experiment",
            "metric",
            "variant vs control",
            "control",
            "variant",
            "lift",
            "95% interval",
            "p (adjusted)",
            "units / planned",
            "verdict",
        ):
            table.add_column(col, justify="right" if col in ("lift", "p (adjusted)") else "left")
        for r in summary.verdicts:
            interval = (
                f"[{_pct(r['ci_relative_low'])}, {_pct(r['ci_relative_high'])}]"
                if r["ci_relative_low"] is not None
                else ""
            )
            planned = f" / {r['planned_units']:,}" if r["planned_units"] else ""
            p = r["p_value_adjusted"]
            table.add_row(
                r["experiment_key"],
                r["metric"] or "",
                f"{r['variant_key']} vs {r['control_key']}" if r["variant_key"] else "",
                "" if r["mean_control"] is None else f"{r['mean_control']:.4g}",
                "" if r["mean_treatment"] is None else f"{r['mean_treatment']:.4g}",
                _pct(r["lift_relative"]),
                interval,
                "" if p is None else f"{p:.3g}",
                f"{r['units']:,}{planned}",
                f"{r['verdict']}: {r['reason']}",
            )
        console.print(table)
    if summary.incremental:
        table = Table(
            title="Incremental revenue per flow against its holdout (30 days after exposure)"
        )
        for col in (
            "flow",
            "texted",
            "held out",
            "revenue / customer texted",
            "held out",
            "difference (95% interval)",
            "incremental revenue (95% interval)",
        ):
            table.add_column(col, justify="left" if col == "flow" else "right")
        for r in summary.incremental:
            table.add_row(
                r["flow"],
                f"{r['units_treated']:,}",
                f"{r['units_held_out']:,}",
                _money(r["revenue_per_unit_treated"]),
                _money(r["revenue_per_unit_held_out"]),
                f"{_money(r['effect_per_unit'])} ({_money(r['ci_per_unit_low'])} to "
                f"{_money(r['ci_per_unit_high'])})",
                f"{_money(r['incremental_revenue'])} ({_money(r['ci_incremental_low'])} to "
                f"{_money(r['ci_incremental_high'])})",
            )
        console.print(table)


def _money(value) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def _register_commands() -> None:
    # Commands that live beside their domain logic.
    from pipelines.backtest import backtest_command
    from pipelines.callbacks.cli import serve_callbacks_command
    from pipelines.dashboard_cli import dashboard_command
    from pipelines.experiments.cli import experiments_group
    from pipelines.sender.cli import send_command, why_command
    from pipelines.stats.cli import stats_group

    main.add_command(backtest_command)
    main.add_command(send_command)
    main.add_command(why_command)
    main.add_command(stats_group)
    main.add_command(experiments_group)
    main.add_command(serve_callbacks_command)
    main.add_command(dashboard_command)


_register_commands()

if __name__ == "__main__":
    main()
