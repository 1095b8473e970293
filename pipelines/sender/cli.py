"""`postpurchase send` and `postpurchase why` (registered in pipelines/cli.py)."""

from __future__ import annotations

import datetime as dt
import sys

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.console import console
from pipelines.phones import normalize_phone
from pipelines.providers.base import mask_phone
from pipelines.providers.errors import ProviderConfigError
from pipelines.settings import PROVIDERS, get_sender_settings, get_settings
from pipelines.warehouse import Warehouse


def parse_time(value: str) -> dt.datetime:
    """ISO 8601 date or time; naive means UTC."""
    moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _at(_ctx, param, value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param=param) from exc


@click.command("send")
@click.option("--at", "at", callback=_at, help="Logical time (ISO 8601, naive = UTC).")
@click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    default=None,
    help="Provider [default: $SMS_PROVIDER, else simulator].",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N candidates.")
def send_command(at: dt.datetime | None, provider: str | None, limit: int | None) -> None:
    """Decide, render and send the messages due at a logical time.

    Without --at: the latest logical time the warehouse was built for.
    """
    from pipelines.sender.reads import latest_logical_time

    settings = get_settings()
    if at is None:
        with Warehouse(settings.data_dir).connect() as con:
            at = latest_logical_time(con)
        if at is None:
            raise click.UsageError("the warehouse has not been built yet: pass --at TIME")
    try:
        report = send_at(at, provider, limit)
    except (ProviderConfigError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    console.print(summary_table(report))


def send_at(at: dt.datetime, provider: str | None = None, limit: int | None = None):
    """One send run as of ``at`` through ``provider`` (default: SMS_PROVIDER), with progress."""
    from pipelines.sender.provider import make_provider
    from pipelines.sender.run import SendConfig, send_due

    settings = get_settings()
    sender = get_sender_settings()
    chosen = make_provider(provider or sender.provider, at)
    config = SendConfig.from_settings(sender, events_dir=settings.events_dir)
    console.print(f"Sending as of {at:%Y-%m-%d %H:%M}Z through {chosen.name}")
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("messages", total=None)
            return send_due(
                Warehouse(settings.data_dir),
                chosen,
                at,
                limit=limit,
                config=config,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    finally:
        # The simulator writes the world's answers as landing files when it closes.
        close = getattr(chosen, "close", None)
        if callable(close):
            close()


def summary_table(report, title: str | None = None) -> Table:
    title = title or f"Send run as of {report.logical_time:%Y-%m-%d %H:%M}Z ({report.provider})"
    table = Table(title=title)
    table.add_column("outcome")
    table.add_column("count", justify="right")
    rows = [("candidates due", f"{report.candidates:,}"), ("sent", f"{report.sent:,}")]
    rows += [(f"deferred: {r}", f"{n:,}") for r, n in sorted(report.deferred.items())]
    rows += [(f"suppressed: {r}", f"{n:,}") for r, n in sorted(report.suppressed.items())]
    rows += [
        ("held out (would have been sent)", f"{report.held_out:,}"),
        ("failed", f"{report.failed:,}"),
        ("unknown (not resent)", f"{report.unknown:,}"),
    ]
    if report.recovered:
        rows.append(("left mid-send by a killed run, now unknown", f"{report.recovered:,}"))
    rows += [
        ("provider requests (attempts)", f"{report.requests:,} ({report.attempts:,})"),
        ("segments", f"{report.segments:,}"),
        ("cost (USD)", f"{report.cost:.4f}"),
    ]
    for what, count in rows:
        table.add_row(what, count)
    return table


@click.command("why")
@click.argument("who")
def why_command(who: str) -> None:
    """Why a customer got or did not get a text: every decision and send, newest first.

    WHO is a phone number in any format or a customer id.
    """
    from pipelines.outbox import ensure_sender_tables
    from pipelines.sender.why import explain

    with Warehouse(get_settings().data_dir).connect() as con:
        ensure_sender_tables(con)
        rows = explain(con, who)
    shown = mask_phone(who) if normalize_phone(who)[1] else who
    if not rows:
        console.print(f"No decisions or sends recorded for {shown}.")
        sys.exit(1)
    table = Table(title=f"Messages for {shown}, newest first")
    for column in ("when (UTC)", "flow", "customer", "phone", "what", "reason", "until", "detail"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            f"{row.when:%Y-%m-%d %H:%M}" if row.when else "",
            row.flow,
            row.customer_id or "",
            mask_phone(row.phone_e164) if row.phone_e164 else "",
            row.action if row.source == "decision" else f"outbox: {row.action}",
            row.reason or "",
            f"{row.until:%Y-%m-%d %H:%M}" if row.until else "",
            row.detail or "",
        )
    console.print(table)
