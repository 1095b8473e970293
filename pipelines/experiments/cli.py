"""`postpurchase experiments plan` and `postpurchase experiments validate` (the group is
registered in pipelines/cli.py)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click
from rich.table import Table

from pipelines.console import console
from pipelines.settings import get_experiments_dir


@click.group("experiments", context_settings={"help_option_names": ["-h", "--help"]})
def experiments_group() -> None:
    """Size experiments and check their specs."""


# --- plan ----------------------------------------------------------------------------------------


def _weights(_ctx, param, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        weights = [float(w) for w in value.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of numbers, e.g. 0.5,0.5", param=param
        ) from None
    if len(weights) < 2 or not all(math.isfinite(w) and w > 0 for w in weights):
        raise click.BadParameter(
            "give at least two positive weights, control first, e.g. 0.5,0.25,0.25", param=param
        )
    return weights


def _open_unit(low: float, high: float, name: str):
    def check(_ctx, param, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and low < value < high):
            raise click.BadParameter(
                f"{name} must be strictly between {low:g} and {high:g}, not {value:g}", param=param
            )
        return value

    return check


def plan_result(
    *,
    mde: float,
    baseline_rate: float | None = None,
    baseline_mean: float | None = None,
    baseline_sd: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    daily_units: float | None = None,
    weights: list[float] | None = None,
) -> dict:
    """The plan as plain JSON types; ValueError for inputs the planner cannot size."""
    from pipelines.stats import plan

    if (baseline_rate is None) == (baseline_mean is None):
        raise ValueError("give exactly one of --baseline-rate (binary) or --baseline-mean (mean)")
    if baseline_mean is not None and baseline_sd is None:
        raise ValueError("--baseline-mean needs --baseline-sd, the metric's standard deviation")
    if baseline_rate is not None and baseline_sd is not None:
        raise ValueError("--baseline-sd is for a mean metric; a rate's spread follows from it")
    weights = weights or [0.5, 0.5]
    baseline = baseline_rate if baseline_rate is not None else baseline_mean
    result = plan(
        baseline,
        mde,
        daily_units if daily_units is not None else 1.0,
        weights=weights,
        sd=baseline_sd,
        alpha=alpha,
        power=power,
    )
    total = sum(weights)
    return {
        "metric_type": "binary" if baseline_rate is not None else "mean",
        "baseline": baseline,
        "baseline_sd": baseline_sd,
        "mde_relative": mde,
        "effect_absolute": baseline * mde,
        "alpha": alpha,
        "power": power,
        "weights": [w / total for w in weights],
        "units_per_arm": [int(n) for n in result.units_per_arm],
        "total_units": int(result.total_units),
        "daily_units": daily_units,
        "days": int(result.days) if daily_units is not None else None,
    }


def _plan_table(result: dict) -> Table:
    table = Table(
        title="Sample size and duration",
        caption="two-sided Welch test, each treatment against control",
        show_header=False,
    )
    table.add_column("what")
    table.add_column("value", justify="right")
    lift = f"{100 * result['mde_relative']:+.4g}%"
    baseline, target = result["baseline"], result["baseline"] * (1 + result["mde_relative"])
    if result["metric_type"] == "binary":
        table.add_row("baseline rate", f"{baseline:.4g}")
    else:
        table.add_row("baseline mean", f"{baseline:.4g} (sd {result['baseline_sd']:.4g})")
    table.add_row("minimum detectable effect", f"{lift} ({baseline:.4g} to {target:.4g})")
    table.add_row("alpha / power", f"{result['alpha']:g} / {result['power']:g}")
    table.add_row("weights", " / ".join(f"{w:.4g}" for w in result["weights"]))
    for i, n in enumerate(result["units_per_arm"]):
        table.add_row("units in control" if i == 0 else f"units in treatment {i}", f"{n:,}")
    table.add_row("units in total", f"{result['total_units']:,}", style="bold")
    if result["daily_units"] is not None:
        days = result["days"]
        weeks = f" (about {days / 7:.1f} weeks)" if days > 13 else ""
        table.add_row("units a day", f"{result['daily_units']:,g}")
        table.add_row("days", f"{days:,}{weeks}", style="bold")
    return table


@experiments_group.command("plan")
@click.option(
    "--baseline-rate",
    type=float,
    callback=_open_unit(0, 1, "--baseline-rate"),
    help="Control's rate for a binary metric, e.g. 0.03 for 3% clicked.",
)
@click.option("--baseline-mean", type=float, help="Control's mean for a mean metric (revenue).")
@click.option(
    "--baseline-sd", type=float, help="Standard deviation per unit, with --baseline-mean."
)
@click.option(
    "--mde",
    type=float,
    required=True,
    help="Minimum detectable effect, relative: 0.1 = a 10% lift over the baseline.",
)
@click.option(
    "--alpha",
    type=float,
    default=0.05,
    show_default=True,
    callback=_open_unit(0, 1, "--alpha"),
    help="Two-sided significance level.",
)
@click.option(
    "--power",
    type=float,
    default=0.8,
    show_default=True,
    callback=_open_unit(0, 1, "--power"),
    help="Chance of detecting an effect of exactly the MDE.",
)
@click.option(
    "--daily-units",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="New units (exposed customers) a day across all arms; adds the days needed.",
)
@click.option(
    "--weights",
    callback=_weights,
    default=None,
    help="Arm weights, control first, comma-separated [default: 0.5,0.5].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plan_command(
    baseline_rate: float | None,
    baseline_mean: float | None,
    baseline_sd: float | None,
    mde: float,
    alpha: float,
    power: float,
    daily_units: float | None,
    weights: list[float] | None,
    as_json: bool,
) -> None:
    """Units per arm and days needed to detect a minimum effect.

    The sizes are for the Welch test the analysis runs (unpooled variances), each treatment
    against control. Divide --alpha by the number of comparisons if the plan should survive a
    Holm correction.

    \b
    Examples:
      postpurchase experiments plan --baseline-rate 0.03 --mde 0.1 --daily-units 4000
      postpurchase experiments plan --baseline-mean 8 --baseline-sd 25 --mde 0.25 --json
    """
    try:
        result = plan_result(
            mde=mde,
            baseline_rate=baseline_rate,
            baseline_mean=baseline_mean,
            baseline_sd=baseline_sd,
            alpha=alpha,
            power=power,
            daily_units=daily_units,
            weights=weights,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        console.print(_plan_table(result))


# --- validate ------------------------------------------------------------------------------------


def _spec_files(folder: Path) -> list[Path]:
    # What load_experiments reads: every YAML file in the folder, holdouts.yaml included.
    return sorted({*folder.glob("*.yaml"), *folder.glob("*.yml")})


def _describe(catalog, label: str) -> str:
    specs = [s for s in catalog.specs if s.source == label]
    holdouts = [h for h in catalog.holdouts if h.source == label]
    if specs:
        spec = specs[0]
        return f"{spec.key}: {spec.status}, {spec.flow}, {len(spec.variants)} variants"
    if holdouts:
        flows = ", ".join(f"{h.flow} {h.share:.0%}" for h in holdouts)
        return f"holdouts: {flows}"
    return ""


@experiments_group.command("validate")
@click.argument(
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    required=False,
)
def validate_command(folder: Path | None) -> None:
    """Check every experiment spec in FOLDER and print OK or its problems, file by file.

    FOLDER defaults to $POSTPURCHASE_EXPERIMENTS_DIR, else the repository's experiments/.
    Exits with 1 if any spec is invalid, as the daily run would refuse to start.
    """
    from pipelines.experiments.spec import Catalog, SpecError, load_experiments

    folder = (folder or get_experiments_dir()).resolve()
    if not folder.is_dir():
        click.echo(f"Error: {folder} is not a folder", err=True)
        sys.exit(1)
    try:
        catalog = load_experiments(folder)
        errors: list[str] = []
    except SpecError as exc:
        catalog, errors = Catalog([], []), exc.errors
    files = _spec_files(folder)
    if not files:
        click.echo(f"No experiment specs (*.yaml) in {folder}")
        return

    unclaimed = list(errors)
    invalid = 0
    for path in files:
        label = f"{folder.name}/{path.name}"
        mine = [e for e in errors if e.startswith(f"{label}:")]
        unclaimed = [e for e in unclaimed if e not in mine]
        if mine:
            invalid += 1
            click.echo(f"INVALID  {label}")
            for error in mine:
                click.echo(f"  {error[len(label) + 1 :].strip()}")
        else:
            description = _describe(catalog, label)
            click.echo(f"OK       {label}" + (f"  ({description})" if description else ""))
    for error in unclaimed:
        click.echo(f"ERROR    {error}")

    problems = len(errors)
    if problems:
        noun = "problem" if problems == 1 else "problems"
        click.echo(
            f"{invalid} of {len(files)} files invalid, {problems} {noun}; "
            "fix them before the daily run (it validates every file and stops on any problem)."
        )
        sys.exit(1)
    click.echo(f"All {len(files)} files valid.")
