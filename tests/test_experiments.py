"""Experiment specs, assignment buckets and the experiment_assignments model."""

import copy
import csv
import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import jinja2
import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from pipelines.experiments.buckets import BUCKETS, bucket, bucket_ranges, variant_for
from pipelines.experiments.spec import METRICS, SpecError, load_experiments, load_specs
from pipelines.experiments.tables import replace_raw_tables
from pipelines.flows import FLOWS, MARKETING_FLOWS
from pipelines.project import DBT_DIR, DBT_EXECUTABLE
from pipelines.stats import sample_ratio_mismatch
from pipelines.templates import TEMPLATES_ROOT, template_exists

REPO = Path(__file__).resolve().parents[1]
VECTORS = DBT_DIR / "seeds" / "bucket_test_vectors.csv"

BASE = {
    "key": "lead_time",
    "hypothesis": "Earlier reminders convert more.",
    "flow": "replenishment_reminder",
    "status": "running",
    "start_date": dt.date(2026, 8, 1),
    "variants": [
        {"key": "three", "weight": 0.5, "params": {"lead_days": 3}},
        {"key": "seven", "weight": 0.5, "params": {"lead_days": 7}},
    ],
    "primary_metric": "converted_7d",
    "guardrail_metrics": [{"metric": "opted_out_7d", "margin": 0.01, "margin_type": "absolute"}],
    "minimum_detectable_effect": 0.2,
}


def spec(**changes) -> dict:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def write_specs(folder: Path, **files: dict | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        (folder / f"{name}.yaml").write_text(text)
    return folder


def problems(folder: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_experiments(folder)
    return caught.value.errors


# --- specs -------------------------------------------------------------------------------------


def test_the_shipped_specs_are_valid():
    catalog = load_experiments(REPO / "experiments")
    by_key = {s.key: s for s in catalog.specs}
    assert set(by_key) == {"order_confirmation_upsell", "replenishment_lead_time"}
    upsell = by_key["order_confirmation_upsell"]
    assert [v.template for v in upsell.variants] == ["default", "upsell"]
    assert upsell.guardrail_metrics[0].metric == "opted_out_7d"
    assert upsell.guardrail_metrics[0].direction == "higher_is_worse"
    lead = by_key["replenishment_lead_time"]
    assert [v.params for v in lead.variants] == [{"lead_days": 3}, {"lead_days": 7}]
    assert all(
        s.status == "running" and s.start_date == dt.date(2026, 8, 1) for s in by_key.values()
    )
    assert {h.flow for h in catalog.holdouts} == set(MARKETING_FLOWS)
    assert all(0.05 <= h.share <= 0.1 for h in catalog.holdouts)


def test_defaults_fill_layer_salt_template_and_direction(tmp_path):
    [s] = load_specs(write_specs(tmp_path / "experiments", a=spec()))
    assert (s.layer, s.salt, s.unit, s.analysis) == (
        "replenishment_reminder",
        "lead_time",
        "customer",
        "fixed",
    )
    assert [v.template for v in s.variants] == ["default", "default"]
    assert s.control.key == "three" and s.weights == [0.5, 0.5]
    assert s.guardrail_metrics[0].direction == "higher_is_worse"
    assert (s.alpha, s.power) == (0.05, 0.8)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"flow": "upsell_flow"}, "experiments/bad.yaml: flow: 'upsell_flow' is not one of"),
        (
            {"variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.4}]},
            "experiments/bad.yaml: variants[1].weight: weights sum to 0.9, not 1",
        ),
        (
            {"primary_metric": "conversion_7d"},
            "experiments/bad.yaml: primary_metric: unknown metric",
        ),
        (
            {"secondary_metrics": ["revenue_30d", "revenue_90d"]},
            "secondary_metrics[1]: unknown metric",
        ),
        (
            {
                "guardrail_metrics": [
                    {"metric": "optouts", "margin": 0.1, "margin_type": "absolute"}
                ]
            },
            "experiments/bad.yaml: guardrail_metrics[0].metric: unknown metric 'optouts'",
        ),
        (
            {
                "guardrail_metrics": [
                    {"metric": "opted_out_7d", "margin": -1, "margin_type": "absolute"}
                ]
            },
            "guardrail_metrics[0].margin: -1 must be above 0",
        ),
        (
            {"guardrail_metrics": [{"metric": "opted_out_7d", "margin": 0.1}]},
            "guardrail_metrics[0].margin_type: required",
        ),
        (
            {
                "variants": [
                    {"key": "a", "weight": 0.5},
                    {"key": "b", "weight": 0.5, "template": "nope"},
                ]
            },
            "experiments/bad.yaml: variants[1].template: no template "
            "pipelines/templates/replenishment_reminder/nope.j2",
        ),
        (
            {
                "variants": [
                    {"key": "a", "weight": 0.5},
                    {"key": "b", "weight": 0.5, "params": {"points": 5}},
                ]
            },
            "variants[1].params.points: replenishment_reminder has no parameter",
        ),
        (
            {
                "variants": [
                    {"key": "a", "weight": 0.5},
                    {"key": "b", "weight": 0.5, "params": {"lead_days": "7"}},
                ]
            },
            "variants[1].params.lead_days: must be a whole number",
        ),
        (
            {
                "variants": [
                    {"key": "a", "weight": 0.5},
                    {"key": "b", "weight": 0.5, "params": {"lead_days": 99}},
                ]
            },
            "variants[1].params.lead_days: 99 is outside 0..21",
        ),
        (
            {"variants": [{"key": "a", "weight": 0.5}, {"key": "a", "weight": 0.5}]},
            "variants[1].key: 'a' is used by another variant",
        ),
        ({"variants": [{"key": "a", "weight": 1.0}]}, "variants: needs at least two variants"),
        (
            {"variants": [{"key": "a", "weight": 0.33333}, {"key": "b", "weight": 0.66667}]},
            "variants[0].weight: 0.33333 must be above 0, at most 1 and a multiple of 0.0001",
        ),
        ({"start_date": "2026-13-01"}, "experiments/bad.yaml: start_date: must be a date"),
        ({"end_date": dt.date(2026, 7, 1)}, "end_date: 2026-07-01 is before start_date 2026-08-01"),
        ({"status": "stopped"}, "end_date: required once the status is stopped"),
        ({"status": "live"}, "experiments/bad.yaml: status: 'live' is not one of"),
        ({"alpha": "low"}, "experiments/bad.yaml: alpha: must be a number, not 'low'"),
        ({"power": 1.5}, "power: 1.5 must be in (0, 1)"),
        ({"unit": "order"}, "unit: 'order' is not one of customer"),
        ({"analysis": "vibes"}, "analysis: 'vibes' is not one of fixed, sequential, bayesian"),
        ({"planned_units": 2.5}, "planned_units: must be a whole number above 0"),
        ({"key": "Lead Time"}, "key: 'Lead Time' must be lowercase"),
        ({"key": "holdout_x"}, "key: names starting with 'holdout' are kept for holdouts"),
        ({"primary_metrc": "converted_7d"}, "experiments/bad.yaml: primary_metrc: unknown field"),
        ({"hypothesis": None}, "experiments/bad.yaml: hypothesis: required"),
    ],
)
def test_an_invalid_spec_names_the_file_and_the_field(tmp_path, changes, expected):
    errors = problems(write_specs(tmp_path / "experiments", bad=spec(**changes)))
    assert any(expected in e for e in errors), errors


def test_every_problem_is_reported_at_once(tmp_path):
    bad = spec(flow="nope", primary_metric="nope_7d", alpha=2, start_date="soon")
    folder = write_specs(
        tmp_path / "experiments", bad=bad, other=spec(key="other", salt="x", layer="l")
    )
    (folder / "broken.yaml").write_text("key: [unclosed\n")
    errors = problems(folder)
    fields = [e.split(": ")[1] for e in errors if e.startswith("experiments/bad.yaml")]
    assert fields == ["flow", "start_date", "primary_metric", "alpha"], errors
    assert any(e.startswith("experiments/broken.yaml: not valid YAML") for e in errors)
    assert str(len(errors)) in str(SpecError(errors))


def test_a_field_given_twice_in_one_file_is_an_error(tmp_path):
    text = yaml.safe_dump(spec(), sort_keys=False) + "alpha: 0.1\nalpha: 0.2\n"
    errors = problems(write_specs(tmp_path / "experiments", twice=text))
    assert any(e.startswith("experiments/twice.yaml: alpha: given twice (lines") for e in errors)


def test_a_key_used_by_two_files_is_an_error(tmp_path):
    folder = write_specs(
        tmp_path / "experiments", a=spec(layer="one"), b=spec(layer="two", salt="other")
    )
    assert problems(folder) == [
        "experiments/b.yaml: key: 'lead_time' is already the key of experiments/a.yaml"
    ]


def test_a_shared_salt_is_an_error(tmp_path):
    folder = write_specs(
        tmp_path / "experiments",
        a=spec(key="a", salt="s", layer="one"),
        b=spec(key="b", salt="s", layer="two"),
    )
    [error] = problems(folder)
    assert error.startswith("experiments/b.yaml: salt: 's' is also the salt of experiments/a.yaml")


@pytest.mark.parametrize(
    ("first", "second", "clash"),
    [
        ({}, {"start_date": dt.date(2026, 9, 1)}, True),  # open-ended first
        ({"end_date": dt.date(2026, 8, 31)}, {"start_date": dt.date(2026, 8, 31)}, True),
        ({"end_date": dt.date(2026, 8, 31)}, {"start_date": dt.date(2026, 9, 1)}, False),
        ({}, {"layer": "elsewhere"}, False),
        ({}, {"status": "draft"}, False),
        (
            {"status": "stopped", "end_date": dt.date(2026, 8, 10)},
            {"start_date": dt.date(2026, 8, 5)},
            True,
        ),
    ],
)
def test_two_experiments_may_not_overlap_in_one_layer(tmp_path, first, second, clash):
    folder = write_specs(
        tmp_path / "experiments",
        a=spec(key="a", **first),
        b=spec(key="b", **{"start_date": dt.date(2026, 8, 1), **second}),
    )
    if not clash:
        assert len(load_specs(folder)) == 2
        return
    [error] = problems(folder)
    assert error.startswith("experiments/b.yaml: start_date: b (")
    assert "overlaps a (" in error and "in layer replenishment_reminder" in error


@pytest.mark.parametrize(
    ("holdouts", "expected"),
    [
        (
            [{"flow": "order_confirmation", "share": 0.05}],
            "holdouts[0].flow: order_confirmation is transactional",
        ),
        (
            [{"flow": "review_request", "share": 0.8}],
            "holdouts[0].share: 0.8 must be above 0, at most 0.5",
        ),
        (
            [{"flow": "review_request", "share": 0.05}, {"flow": "review_request", "share": 0.1}],
            "holdouts[1].flow: review_request already has a holdout",
        ),
        (
            [{"flow": "review_request", "share": 0.05, "salt": "lead_time"}],
            "experiments/a.yaml: salt:",
        ),
    ],
)
def test_invalid_holdouts_name_the_field(tmp_path, holdouts, expected):
    folder = write_specs(tmp_path / "experiments", a=spec(), holdouts={"holdouts": holdouts})
    errors = problems(folder)
    assert any(expected in e for e in errors), errors
    assert all(
        e.startswith(("experiments/holdouts.yaml: ", "experiments/a.yaml: ")) for e in errors
    )


def test_metric_catalogue_has_every_window():
    for base in ("delivered", "clicked", "replied", "opted_out", "converted", "revenue"):
        assert {f"{base}_1d", f"{base}_7d", f"{base}_30d"} <= set(METRICS)
    assert METRICS["revenue_per_delivered_30d"].kind == "ratio"
    assert not METRICS["opted_out_1d"].higher_is_better
    assert len(METRICS) == 21


# --- templates ---------------------------------------------------------------------------------

GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
VALUES = {
    "brand": "Acme Goods",
    "first_name": "Ana",
    "order_number": "1042",
    "items": "2 x Coffee beans",
    "tracking_url": "https://go.example.com/t/abc",
    "product": "Coffee beans",
    "run_out_date": "Aug 14",
    "points": 100,
    "link": "https://go.example.com/abc",
    "discount_percent": 10,
}


def test_every_flow_has_a_default_template_that_renders_as_gsm7():
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_ROOT), undefined=jinja2.StrictUndefined
    )
    for flow in FLOWS:
        assert template_exists(flow, "default"), flow
    for path in sorted(TEMPLATES_ROOT.glob("*/*.j2")):
        flow = path.parent.name
        assert flow in FLOWS, path
        text = env.get_template(f"{flow}/{path.name}").render(**VALUES).strip()
        assert set(text) <= GSM7, (path, set(text) - GSM7)
        assert text.startswith("Acme Goods:"), path
        if FLOWS[flow].is_marketing or path.stem == "upsell":
            assert text.endswith("Reply STOP to opt out"), path
    assert not template_exists("order_confirmation", "../delivered/default")


# --- buckets -----------------------------------------------------------------------------------


def read_vectors() -> list[tuple[str, str, int]]:
    with open(VECTORS, newline="", encoding="utf-8") as f:
        return [(r["salt"], r["unit_id"], int(r["bucket"])) for r in csv.DictReader(f)]


def test_python_buckets_match_the_shared_vectors():
    vectors = read_vectors()
    assert len(vectors) >= 50
    assert any(unit == "" for _, unit, _ in vectors)
    assert any(not unit.isascii() for _, unit, _ in vectors)
    for salt, unit, expected in vectors:
        assert bucket(salt, unit) == expected, (salt, unit)


def test_bucket_is_the_first_eight_hex_digits_of_md5_mod_10000():
    # md5("ab") = 187ef443 6122d1cc...; 0x187ef443 = 410,973,251.
    assert bucket("a", "b") == 410_973_251 % 10_000 == 3251


def test_variants_take_contiguous_ranges_by_weight():
    assert bucket_ranges([0.2, 0.3, 0.5]) == [(0, 2000), (2000, 5000), (5000, 10000)]
    assert bucket_ranges([0.3333, 0.3333, 0.3334]) == [(0, 3333), (3333, 6666), (6666, 10000)]
    assert [variant_for(b, [0.2, 0.8]) for b in (0, 1999, 2000, 9999)] == [0, 0, 1, 1]
    with pytest.raises(ValueError):
        variant_for(BUCKETS, [0.5, 0.5])


@given(st.text(max_size=20), st.text(max_size=20))
def test_a_bucket_is_in_range_and_deterministic(salt, unit):
    b = bucket(salt, unit)
    assert 0 <= b < BUCKETS and b == bucket(salt, unit)


def test_no_sample_ratio_mismatch_over_100000_units():
    weights = [0.2, 0.3, 0.5]
    units = [f"c{i:06d}" for i in range(100_000)]
    counts = np.bincount([variant_for(bucket("srm_check", u), weights) for u in units], minlength=3)
    result = sample_ratio_mismatch(counts, weights)
    assert result.p_value > 0.001, (counts, result)
    # And the check would notice a broken split.
    assert sample_ratio_mismatch(counts, [0.25, 0.25, 0.5]).p_value < 0.001


def test_two_experiments_assign_independently():
    units = [f"c{i:06d}" for i in range(100_000)]
    a = np.array([variant_for(bucket("order_confirmation_upsell", u), [0.5, 0.5]) for u in units])
    b = np.array([variant_for(bucket("replenishment_lead_time", u), [0.2, 0.8]) for u in units])
    table = np.zeros((2, 2))
    np.add.at(table, (a, b), 1)
    assert stats.chi2_contingency(table).pvalue > 0.001, table
    # The same salt would make them identical: the reason salts must differ.
    same = np.array(
        [variant_for(bucket("order_confirmation_upsell", u), [0.2, 0.8]) for u in units]
    )
    table = np.zeros((2, 2))
    np.add.at(table, (a, same), 1)
    assert stats.chi2_contingency(table).pvalue < 1e-12


# --- the loader asset --------------------------------------------------------------------------


def test_loader_replaces_the_raw_tables(data_dir, monkeypatch):
    from pipelines.defs.experiments.assets import experiment_specs
    from pipelines.defs.resources import WarehouseResource

    resources = {"warehouse": WarehouseResource(data_dir=str(data_dir))}
    result = dg.materialize([experiment_specs], partition_key="2026-08-01", resources=resources)
    assert result.success
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        keys = con.execute("select experiment_key from raw.experiments order by 1").fetchall()
        variants = con.execute(
            "select variant_key, params from raw.experiment_variants "
            "where experiment_key = 'replenishment_lead_time' order by variant_index"
        ).fetchall()
        holdouts = con.execute("select count(*) from raw.experiment_holdouts").fetchall()
    assert keys == [("order_confirmation_upsell",), ("replenishment_lead_time",)]
    assert [(k, json.loads(p)) for k, p in variants] == [
        ("lead_3_days", {"lead_days": 3}),
        ("lead_7_days", {"lead_days": 7}),
    ]
    assert holdouts == [(len(MARKETING_FLOWS),)]

    # A bad spec fails the asset, naming every problem, and leaves the tables as they were.
    folder = write_specs(data_dir.parent / "specs" / "experiments", a=spec(flow="nope", alpha=3))
    monkeypatch.setenv("POSTPURCHASE_EXPERIMENTS_DIR", str(folder))
    result = dg.materialize(
        [experiment_specs], partition_key="2026-08-02", resources=resources, raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.cause.message
    assert "experiments/a.yaml: flow: 'nope'" in message
    assert "experiments/a.yaml: alpha: 3 must be in (0, 0.5)" in message
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from raw.experiments").fetchall() == [(2,)]


# --- the dbt models, for real ------------------------------------------------------------------

DBT_SELECT = [
    "+experiment_assignments",
    "bucket_test_vectors",
    "path:models/staging/experiments",
]


def dbt_build(data_dir: Path, as_of: str, select: list[str] = DBT_SELECT) -> dict[str, str]:
    """`dbt build` of the experiment models as of a time; the status of each node by name."""
    target = data_dir / "dbt_target"
    env = {**os.environ, "POSTPURCHASE_DATA_DIR": str(data_dir)}
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    done = subprocess.run(
        [
            DBT_EXECUTABLE,
            "build",
            "--project-dir",
            str(DBT_DIR),
            "--profiles-dir",
            str(DBT_DIR),
            "--target-path",
            str(target),
            "--log-path",
            str(data_dir / "dbt_logs"),
            # Only tests whose every parent is built here, not other models' tests on the mart.
            "--indirect-selection",
            "cautious",
            "--select",
            *select,
            "--vars",
            json.dumps({"as_of": as_of}),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[-1]: r["status"] for r in results}


def add_customers(con, ids: list[str], created_at: dt.datetime) -> None:
    con.executemany(
        "insert into raw.customers (customer_id, created_at, _partition) values (?, ?, ?)",
        [(i, created_at, created_at.date()) for i in ids],
    )


def assignments(path: Path) -> dict[tuple[str, str], tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select experiment_key, unit_id, bucket, variant_key, assigned_at "
            "from marts.experiment_assignments"
        ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def test_dbt_assignments_match_python_and_never_move_when_weights_change(data_dir):
    from pipelines.ingest import ensure_schema

    specs = data_dir.parent / "specs" / "experiments"
    spec_a = spec(
        key="lead",
        variants=[
            {"key": "three", "weight": 0.5, "params": {"lead_days": 3}},
            {"key": "seven", "weight": 0.5, "params": {"lead_days": 7}},
        ],
    )
    holdouts = {"holdouts": [{"flow": "review_request", "share": 0.1, "salt": "h"}]}
    write_specs(specs, lead=spec_a, holdouts=holdouts)
    first = [f"c{i:04d}" for i in range(400)]
    warehouse = data_dir / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ensure_schema(con)
        add_customers(con, first, dt.datetime(2026, 7, 15, tzinfo=dt.UTC))
        replace_raw_tables(con, load_experiments(specs))

    statuses = dbt_build(data_dir, "2026-08-02T00:00:00+00:00")
    assert statuses["assert_bucket_vectors_match"] == "pass"
    assert statuses["assert_experiments_in_a_layer_never_share_a_unit_at_once"] == "pass"
    before = assignments(warehouse)
    assert len(before) == 2 * len(first)
    for (key, unit), (b, variant, _) in before.items():
        salt, weights, names = (
            ("lead", [0.5, 0.5], ["three", "seven"])
            if key == "lead"
            else ("h", [0.1, 0.9], ["holdout", "exposed"])
        )
        assert b == bucket(salt, unit)
        assert variant == names[variant_for(b, weights)]

    # Weights change to 0.2 / 0.8 and new customers arrive: old units stay where they were.
    spec_a["variants"][0]["weight"], spec_a["variants"][1]["weight"] = 0.2, 0.8
    write_specs(specs, lead=spec_a)
    later = [f"n{i:04d}" for i in range(400)]
    with duckdb.connect(str(warehouse)) as con:
        add_customers(con, later, dt.datetime(2026, 8, 3, tzinfo=dt.UTC))
        replace_raw_tables(con, load_experiments(specs))
    # The staging views read the new raw tables as they are; only the mart needs building.
    statuses = dbt_build(data_dir, "2026-08-05T00:00:00+00:00", ["experiment_assignments"])
    assert statuses["experiment_assignments"] == "success"
    after = assignments(warehouse)
    assert {k: after[k] for k in before} == before
    moved = [u for (k, u), (b, v, _) in before.items() if k == "lead" and 2000 <= b < 5000]
    assert moved and all(after[("lead", u)][1] == "three" for u in moved)
    new = {u: after[("lead", u)] for u in later}
    assert all(v == ["three", "seven"][variant_for(b, [0.2, 0.8])] for b, v, _ in new.values())
    assert {at for _, _, at in new.values()} == {dt.datetime(2026, 8, 5, tzinfo=dt.UTC)}
