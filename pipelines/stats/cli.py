"""`postpurchase stats compare` (the group is registered in pipelines/cli.py).

Analysts use it to check a number by hand, and outside tools to check ours: one JSON object in
(standard input or a file), one JSON object out. A bad payload is a one-line error naming the
field on standard error and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
from typing import IO, NoReturn

import click

from .compare import compare


def _reject_constant(name: str) -> float:
    # Python's json reads NaN and Infinity, which are not JSON: name them as a decode error.
    raise ValueError(f"{name} is not valid JSON (use a finite number or null)")


def read_payload(text: str) -> dict:
    """The one JSON object in ``text``; ValueError with a one-line reason otherwise."""
    if not text.strip():
        raise ValueError("no input: expected one JSON object")
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # also NaN or Infinity, or an integer with too many digits
        raise ValueError(f"input is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("input is not valid JSON: nested too deeply") from None
    if not isinstance(payload, dict):
        raise ValueError(f"input must be one JSON object, got a {type(payload).__name__}")
    return payload


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    raise SystemExit(2)


@click.group("stats", context_settings={"help_option_names": ["-h", "--help"]})
def stats_group() -> None:
    """Check experiment statistics by hand."""


@stats_group.command("compare")
@click.argument("payload_file", type=click.File("r"), default="-", required=False)
@click.option("--compact", is_flag=True, help="One line of JSON instead of indented.")
def compare_command(payload_file: IO[str], compact: bool) -> None:
    """Compare a treatment with a control from summary statistics.

    Reads one JSON object from PAYLOAD_FILE (default: standard input) and prints the result
    as JSON. Fields: metric_type ("binary" or "mean"), control and treatment (each with n,
    sum and, for a mean, sum_squares), alpha (default 0.05), method ("fixed", "sequential" or
    "bayesian"; default "fixed") and, for "sequential", sequential_tuning (N*, the planned
    total sample size across both arms).

    The output has effect_absolute, ci_absolute, p_value_absolute, lift_relative,
    ci_relative, p_value_relative, chance_to_win (relative scale), and the standard errors
    and Welch df behind them (se_absolute, se_relative, df); "sequential" adds
    ci_absolute_sequential, ci_relative_sequential, p_value_sequential (relative) and
    p_value_absolute_sequential; "bayesian" adds expected_loss. A number that cannot be
    computed (a zero baseline, say) is null. A bad payload exits with code 2.

    \b
    Example:
      echo '{"metric_type": "binary", "control": {"n": 50000, "sum": 1500},
             "treatment": {"n": 50300, "sum": 1680}}' | postpurchase stats compare
    """
    if payload_file.isatty():
        click.echo("Reading one JSON object from standard input; end it with Ctrl-D.", err=True)
    try:
        result = compare(read_payload(payload_file.read()))
    except ValueError as exc:  # also UnicodeDecodeError, for a file that is not text
        _fail(str(exc))
    click.echo(json.dumps(result, allow_nan=False, indent=None if compact else 2))
