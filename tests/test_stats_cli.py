"""`stats compare`, `experiments plan` and `experiments validate` through the command line:
the reference cases of notes/statistics.md to 1e-6, errors that name the field, JSON out."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.experiments.cli import experiments_group
from pipelines.stats import plan, sample_size_per_arm
from pipelines.stats.cli import stats_group

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-6  # the notes give six significant figures


def approx(value: float) -> object:
    return pytest.approx(value, abs=TOL)


@pytest.fixture(scope="module")
def cli() -> click.Group:
    """A throwaway top-level group, as pipelines/cli.py registers the two groups."""

    @click.group()
    def main() -> None:
        pass

    main.add_command(stats_group)
    main.add_command(experiments_group)
    return main


def strict_json(text: str) -> dict:
    """Parse as a strict JSON reader would: NaN or Infinity in the output fails the test."""

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in the output is not JSON")

    return json.loads(text, parse_constant=no_constants)


def run_compare(cli, payload: dict | str, *args: str):
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return CliRunner().invoke(cli, ["stats", "compare", *args], input=text)


def compare_ok(cli, payload: dict | str, *args: str) -> dict:
    result = run_compare(cli, payload, *args)
    assert result.exit_code == 0, result.output
    return strict_json(result.stdout)


# --- reference payloads ----------------------------------------------------------------------

CLICKS = {
    "metric_type": "binary",
    "control": {"n": 50_000, "sum": 1_500},
    "treatment": {"n": 50_300, "sum": 1_680},
    "alpha": 0.05,
    "method": "sequential",
    "sequential_tuning": 100_300,
}


def sums(n: int, total: float, variance: float) -> dict:
    """The notes give revenue as mean and variance; the payload takes sums."""
    return {"n": n, "sum": total, "sum_squares": variance * (n - 1) + total**2 / n}


# The notes' treatment mean 1.29006 is rounded; their numbers come from a sum of 64,890 (see
# tests/test_stats.py).
REVENUE = {
    "metric_type": "mean",
    "control": sums(50_000, 1.225 * 50_000, 225.0),
    "treatment": sums(50_300, 64_890.0, 240.0),
    "alpha": 0.05,
}


def assert_clicks_fixed(out: dict) -> None:
    assert out["lift_relative"] == approx(0.11332)
    assert out["se_relative"] == approx(0.0389188)
    assert out["ci_relative"] == [approx(0.0370396), approx(0.189601)]
    assert out["p_value_relative"] == approx(0.00359545)
    assert out["effect_absolute"] == approx(0.0033996)
    assert out["ci_absolute"] == [approx(0.00123133), approx(0.00556788)]
    assert out["p_value_absolute"] == approx(0.00211951)
    assert out["chance_to_win"] == approx(0.998203)


def test_compare_reproduces_the_clicks_reference(cli):
    out = compare_ok(cli, CLICKS)
    assert_clicks_fixed(out)
    assert out["method"] == "sequential"
    assert out["ci_relative_sequential"] == [approx(-0.00480674), approx(0.231447)]
    # p-values pair with their intervals: the relative sequence contains 0, the absolute not.
    assert out["p_value_sequential"] > 0.05
    low, high = out["ci_absolute_sequential"]
    assert 0 < low < out["ci_absolute"][0] and high > out["ci_absolute"][1]
    assert out["p_value_absolute_sequential"] < 0.05


@pytest.mark.parametrize("method", ["fixed", "bayesian", None])
def test_compare_clicks_fixed_numbers_do_not_depend_on_the_method(cli, method):
    payload = {k: v for k, v in CLICKS.items() if k not in ("method", "sequential_tuning")}
    if method is not None:
        payload["method"] = method
    out = compare_ok(cli, payload)
    assert_clicks_fixed(out)
    assert out["method"] == (method or "fixed")
    assert "ci_relative_sequential" not in out
    assert ("expected_loss" in out) == (method == "bayesian")


def test_compare_clicks_with_binary_sum_squares_given(cli):
    payload = json.loads(json.dumps(CLICKS))
    payload["control"]["sum_squares"] = 1_500
    payload["treatment"]["sum_squares"] = 1_680
    assert_clicks_fixed(compare_ok(cli, payload))


def test_compare_reproduces_the_revenue_reference(cli):
    out = compare_ok(cli, REVENUE | {"method": "bayesian"})
    assert out["lift_relative"] == approx(0.0531099)
    assert out["se_relative"] == approx(0.0806556)
    assert out["ci_relative"] == [approx(-0.104974), approx(0.211194)]
    assert out["p_value_relative"] == approx(0.510233)
    assert out["chance_to_win"] == approx(0.744884)
    assert out["effect_absolute"] == pytest.approx(64_890 / 50_300 - 1.225, abs=1e-12)
    loss = out["expected_loss"]
    assert loss["control"] - loss["treatment"] == pytest.approx(out["lift_relative"])


def test_compare_reads_a_file_and_prints_compact_json(cli, tmp_path):
    path = tmp_path / "clicks.json"
    path.write_text(json.dumps(CLICKS))
    result = CliRunner().invoke(cli, ["stats", "compare", str(path), "--compact"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1
    assert_clicks_fixed(strict_json(result.stdout))


def test_compare_zero_baseline_prints_null_not_nan(cli):
    payload = {"metric_type": "binary", "control": {"n": 100, "sum": 0}}
    payload["treatment"] = {"n": 100, "sum": 3}
    out = compare_ok(cli, payload)
    assert out["lift_relative"] is None
    assert out["ci_relative"] == [None, None]
    assert out["chance_to_win"] is None
    assert out["effect_absolute"] == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("", "no input"),
        ("   \n", "no input"),
        ('{"metric_type": "binary",', "not valid JSON"),
        ("[1, 2]", "one JSON object, got a list"),
        ('"clicks"', "one JSON object, got a str"),
        (json.dumps(CLICKS) + json.dumps(CLICKS), "not valid JSON"),
        (json.dumps(CLICKS).replace("0.05", "NaN"), "NaN"),
        (json.dumps(CLICKS).replace("0.05", "Infinity"), "Infinity"),
        (json.dumps(CLICKS).replace("0.05", "1e400"), "alpha"),  # reads as inf
        (json.dumps(CLICKS | {"alpha": 10**400}), "alpha"),  # too big for a float
        (json.dumps(CLICKS | {"metric_type": "count"}), "metric_type"),
        (json.dumps(CLICKS | {"method": "frequentist"}), "method"),
        (json.dumps(CLICKS | {"alpha": 0}), "alpha"),
        (json.dumps(CLICKS | {"alpha": "0.05"}), "alpha"),
        (json.dumps(CLICKS | {"control": {"n": 50_000}}), "control.sum"),
        (json.dumps(CLICKS | {"control": {"n": 10**400, "sum": 3}}), "control.n"),
        (json.dumps(CLICKS | {"treatment": {"n": 1, "sum": 0}}), "treatment.n"),
        (json.dumps(CLICKS | {"treatment": {"n": 100, "sum": -1}}), "treatment.sum"),
        (json.dumps(CLICKS | {"treatment": None}), "treatment"),
        (json.dumps(CLICKS | {"control": {"n": 9, "sum": 1, "sums": 1}}), "control.sums"),
        (json.dumps(CLICKS | {"sequential_tuning": -5}), "sequential_tuning"),
        (json.dumps({k: v for k, v in CLICKS.items() if k != "sequential_tuning"}), "tuning"),
        (json.dumps(CLICKS | {"alfa": 0.05}), "alfa"),
        (json.dumps(REVENUE | {"control": {"n": 10, "sum": 10}}), "control.sum_squares"),
        (
            json.dumps(REVENUE | {"control": {"n": 10, "sum": 10, "sum_squares": 1}}),
            "control.sum_squares",
        ),
    ],
)
def test_compare_rejects_bad_input_in_one_line_with_exit_code_2(cli, stdin, message):
    result = run_compare(cli, stdin)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_compare_from_stdin_in_a_subprocess():
    """The command as an outside tool runs it: a real process, JSON on standard input."""
    proc = subprocess.run(
        [sys.executable, "-c", "from pipelines.stats.cli import stats_group; stats_group()"]
        + ["compare"],
        input=json.dumps(CLICKS),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = strict_json(proc.stdout)
    assert_clicks_fixed(out)
    assert out["ci_relative_sequential"] == [approx(-0.00480674), approx(0.231447)]


# --- experiments plan --------------------------------------------------------------------------


def run_plan(cli, *args: str):
    return CliRunner().invoke(cli, ["experiments", "plan", *args])


def plan_json(cli, *args: str) -> dict:
    result = run_plan(cli, *args, "--json")
    assert result.exit_code == 0, result.output
    return strict_json(result.stdout)


def test_plan_binary_json_matches_the_planner(cli):
    out = plan_json(cli, "--baseline-rate", "0.03", "--mde", "0.1", "--daily-units", "4000")
    n = int(sample_size_per_arm(0.03, 0.1))
    assert out["units_per_arm"] == [n, n]
    assert out["total_units"] == 2 * n
    assert out["days"] == math.ceil(2 * n / 4000)
    assert out["metric_type"] == "binary"
    assert out["effect_absolute"] == pytest.approx(0.003)
    assert (out["alpha"], out["power"], out["weights"]) == (0.05, 0.8, [0.5, 0.5])


def test_plan_without_daily_units_has_no_days(cli):
    out = plan_json(cli, "--baseline-rate", "0.12", "--mde", "0.3")
    assert out["units_per_arm"] == [1437, 1437]  # the README's example
    assert out["days"] is None and out["daily_units"] is None


def test_plan_mean_metric_alpha_power_and_weights(cli):
    args = ["--baseline-mean", "8", "--baseline-sd", "25", "--mde", "0.25"]
    args += ["--alpha", "0.01", "--power", "0.9", "--daily-units", "30"]
    out = plan_json(cli, *args, "--weights", "0.5,0.25,0.25")
    expected = plan(8, 0.25, 30, weights=(0.5, 0.25, 0.25), sd=25, alpha=0.01, power=0.9)
    assert out["units_per_arm"] == expected.units_per_arm.tolist()
    assert out["total_units"] == int(expected.total_units) == sum(out["units_per_arm"])
    assert out["days"] == int(expected.days)
    assert out["metric_type"] == "mean" and out["baseline_sd"] == 25


def test_plan_prints_a_table_by_default(cli):
    result = run_plan(cli, "--baseline-rate", "0.03", "--mde", "0.1", "--daily-units", "4000")
    assert result.exit_code == 0, result.output
    n = int(sample_size_per_arm(0.03, 0.1))
    assert f"{n:,}" in result.output and f"{2 * n:,}" in result.output
    assert "days" in result.output
    assert str(math.ceil(2 * n / 4000)) in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mde", "0.1"], "exactly one of --baseline-rate"),
        (["--baseline-rate", "0.03", "--baseline-mean", "2", "--mde", "0.1"], "exactly one"),
        (["--baseline-mean", "2", "--mde", "0.1"], "--baseline-sd"),
        (["--baseline-rate", "0.03", "--baseline-sd", "2", "--mde", "0.1"], "--baseline-sd"),
        (["--baseline-rate", "1.5", "--mde", "0.1"], "--baseline-rate"),
        (["--baseline-rate", "0.95", "--mde", "0.1"], "between 0 and 1"),
        (["--baseline-rate", "0.03", "--mde", "0"], "non-zero"),
        (["--baseline-rate", "0.03"], "--mde"),
        (["--baseline-rate", "0.03", "--mde", "0.1", "--alpha", "5"], "--alpha"),
        (["--baseline-rate", "0.03", "--mde", "0.1", "--power", "1"], "--power"),
        (["--baseline-rate", "0.03", "--mde", "0.1", "--daily-units", "0"], "--daily-units"),
        (["--baseline-rate", "0.03", "--mde", "0.1", "--weights", "0.5"], "--weights"),
        (["--baseline-rate", "0.03", "--mde", "0.1", "--weights", "a,b"], "--weights"),
        (["--baseline-mean", "2", "--baseline-sd", "-1", "--mde", "0.1"], "sd"),
    ],
)
def test_plan_rejects_bad_options(cli, args, message):
    result = run_plan(cli, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


# --- experiments validate ------------------------------------------------------------------------


def run_validate(cli, *args: str):
    return CliRunner().invoke(cli, ["experiments", "validate", *args])


def test_validate_the_repository_specs(cli, monkeypatch):
    monkeypatch.delenv("POSTPURCHASE_EXPERIMENTS_DIR", raising=False)
    result = run_validate(cli)
    assert result.exit_code == 0, result.output
    for name in ("holdouts", "order_confirmation_upsell", "replenishment_lead_time"):
        assert f"OK       experiments/{name}.yaml" in result.output
    assert "All 3 files valid." in result.output


def test_validate_reads_the_folder_from_the_environment(cli, tmp_path, monkeypatch):
    folder = tmp_path / "specs"
    folder.mkdir()
    shutil.copy(REPO / "experiments" / "replenishment_lead_time.yaml", folder)
    monkeypatch.setenv("POSTPURCHASE_EXPERIMENTS_DIR", str(folder))
    result = run_validate(cli)
    assert result.exit_code == 0, result.output
    assert (
        "OK       specs/replenishment_lead_time.yaml  (replenishment_lead_time: " in result.output
    )


def test_validate_lists_each_files_problems_and_exits_1(cli, tmp_path):
    folder = tmp_path / "experiments"
    shutil.copytree(REPO / "experiments", folder)
    good = yaml.safe_load((folder / "replenishment_lead_time.yaml").read_text())
    bad = good | {"key": "broken", "salt": "broken", "primary_metrc": "converted_7d"}
    bad["variants"] = [v | {"weight": 0.45} for v in good["variants"]]
    bad["layer"] = "other_layer"
    del bad["primary_metric"]
    (folder / "broken.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    (folder / "unreadable.yml").write_text("key: [unclosed\n")

    result = run_validate(cli, str(folder))
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "INVALID  experiments/broken.yaml" in lines
    at = lines.index("INVALID  experiments/broken.yaml")
    details = []
    for line in lines[at + 1 :]:
        if not line.startswith("  "):
            break
        details.append(line.strip())
    assert any(d.startswith("primary_metrc: unknown field") for d in details), details
    assert any(d.startswith("primary_metric: required") for d in details), details
    assert any(d.startswith("variants") and "sum to 0.9" in d for d in details), details
    assert "INVALID  experiments/unreadable.yml" in lines
    assert "OK       experiments/replenishment_lead_time.yaml" in lines
    assert "OK       experiments/holdouts.yaml" in lines
    assert "2 of 5 files invalid" in lines[-1]


def test_validate_attributes_a_cross_file_problem_to_its_file(cli, tmp_path):
    folder = tmp_path / "experiments"
    folder.mkdir()
    shutil.copy(REPO / "experiments" / "replenishment_lead_time.yaml", folder / "a.yaml")
    shutil.copy(REPO / "experiments" / "replenishment_lead_time.yaml", folder / "b.yaml")
    result = run_validate(cli, str(folder))
    assert result.exit_code == 1, result.output
    assert "OK       experiments/a.yaml" in result.output
    assert "INVALID  experiments/b.yaml" in result.output
    assert "key: 'replenishment_lead_time' is already the key of experiments/a.yaml" in (
        result.output
    )


def test_validate_an_empty_or_missing_folder(cli, tmp_path):
    empty = run_validate(cli, str(tmp_path))
    assert empty.exit_code == 0, empty.output
    assert "No experiment specs" in empty.output
    missing = run_validate(cli, str(tmp_path / "nowhere"))
    assert missing.exit_code == 1
    assert "is not a folder" in missing.output


@pytest.mark.parametrize(
    "path",
    [
        ("stats",),
        ("stats", "compare"),
        ("experiments",),
        ("experiments", "plan"),
        ("experiments", "validate"),
    ],
)
def test_help(cli, path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
binary_arms = st.integers(2, 10**7).flatmap(
    lambda n: st.fixed_dictionaries({"n": st.just(n), "sum": st.integers(0, n)})
)
mean_arms = st.builds(
    lambda n, mean, sd: {"n": n, "sum": n * mean, "sum_squares": sd**2 * (n - 1) + n * mean**2},
    st.integers(2, 10**7),
    st.floats(-100, 1_000),
    st.floats(0, 1_000),
)
optional = {
    "alpha": st.floats(0.001, 0.5),
    "method": st.sampled_from(["fixed", "sequential", "bayesian"]),
    "sequential_tuning": st.integers(1, 10**8),
}
valid_payloads = st.fixed_dictionaries(
    {"metric_type": st.just("binary"), "control": binary_arms, "treatment": binary_arms},
    optional=optional,
) | st.fixed_dictionaries(
    {"metric_type": st.just("mean"), "control": mean_arms, "treatment": mean_arms},
    optional=optional,
)


def invoke_compare(payload) -> object:
    main = click.Group(commands=[stats_group])
    return CliRunner().invoke(main, ["stats", "compare"], input=json.dumps(payload))


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.filterwarnings("error")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_payloads)
def test_compare_valid_payloads_give_consistent_plain_json(payload):
    result = invoke_compare(payload)
    if payload.get("method") == "sequential" and "sequential_tuning" not in payload:
        assert "sequential_tuning" in one_error_line(result)
        return
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no warnings from the arithmetic of edge cases
    out = strict_json(result.stdout)
    for scale, estimate in (("absolute", "effect_absolute"), ("relative", "lift_relative")):
        low, high = out[f"ci_{scale}"]
        p_value = out[f"p_value_{scale}"]
        if None not in (low, high, out[estimate]):
            assert low <= out[estimate] <= high
        if p_value is not None:
            assert 0 <= p_value <= 1


@pytest.mark.filterwarnings("error")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    valid_payloads,
    st.sampled_from(["metric_type", "control", "treatment", "alpha", "method", "n", "sum"]),
    json_values,
)
def test_compare_never_tracebacks(payload, field, value):
    """Any field replaced by any JSON: plain JSON out (exit 0), or one error line (exit 2)."""
    if field in ("n", "sum"):
        payload["treatment"] = dict(payload["treatment"], **{field: value})
    else:
        payload[field] = value
    result = invoke_compare(payload)
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 0:
        strict_json(result.stdout)
        assert result.stderr == ""
    else:
        one_error_line(result)
