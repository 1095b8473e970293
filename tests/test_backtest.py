"""The backtest: metrics on hand-computed cases, the protocol, and the model against baselines."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from pipelines import backtest, reporting

ONLINE_RETAIL = (
    Path(__file__).resolve().parents[2] / "shared/data/online_retail/online_retail.parquet"
)
START = dt.date(2023, 1, 1)


# Metrics -----------------------------------------------------------------------------------


def test_auc_counts_ordered_pairs_and_ties_as_half():
    # Positives 0.9 and 0.4, negatives 0.8 and 0.1: 3 of 4 pairs ordered right.
    assert backtest.roc_auc([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.1]) == pytest.approx(0.75)
    # One tie between a positive and a negative counts one half: (1 + 1 + 0.5 + 1) / 4.
    assert backtest.roc_auc([1, 1, 0, 0], [1.0, 0.5, 0.5, 0.0]) == pytest.approx(0.875)
    assert backtest.roc_auc([1, 0], [0.3, 0.3]) == pytest.approx(0.5)
    assert backtest.roc_auc([0, 1], [0.9, 0.1]) == pytest.approx(0.0)
    assert backtest.roc_auc([1, 1], [0.2, 0.3]) is None


def test_average_precision_matches_the_step_definition():
    # scikit-learn's documented example: 0.8333.
    assert backtest.average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)
    # Thresholds 0.9 (P=1, R=1/2), 0.8 (P=1/2, R=1/2), 0.4 (P=2/3, R=1), 0.1 (P=1/2, R=1).
    assert backtest.average_precision([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.1]) == pytest.approx(
        0.5 * 1 + 0.5 * 2 / 3
    )
    # A tie is one threshold: at 0.5 precision 1/2 with recall 1/2, then 2/3 at recall 1.
    assert backtest.average_precision([1, 0, 1], [0.5, 0.5, 0.2]) == pytest.approx(
        0.5 * 0.5 + 0.5 * 2 / 3
    )
    assert backtest.average_precision([0, 0], [0.5, 0.2]) is None


def test_precision_at_top_fraction_with_ties_at_the_cut():
    y = np.zeros(200)
    score = np.arange(200, dtype=float)
    y[199] = 1  # the best score is a hit, the second best is not: top 1% = 2 rows
    assert backtest.precision_at(y, score) == pytest.approx(0.5)
    y[198] = 1
    assert backtest.precision_at(y, score) == pytest.approx(1.0)
    # k = 1 of 100, but two rows share the top score and one of them is a hit: 1/2 expected.
    y, score = np.zeros(100), np.zeros(100)
    score[:2], y[0] = 1.0, 1
    assert backtest.precision_at(y, score) == pytest.approx(0.5)
    assert backtest.precision_at(y, score, fraction=0.5) == pytest.approx(1 / 50)
    # The row order of a tie does not matter.
    assert backtest.precision_at(y[::-1], score[::-1]) == pytest.approx(0.5)


def test_brier_is_the_mean_squared_error():
    assert backtest.brier([1, 0], [0.8, 0.4]) == pytest.approx((0.04 + 0.16) / 2)
    assert backtest.brier([], []) is None


# Reading orders and lines ------------------------------------------------------------------


def write_landing(root: Path, orders: pl.DataFrame, lines: pl.DataFrame, fmt: str) -> None:
    """One file per order day, as ``<root>/<entity>/<day>/part.<fmt>``."""
    day = pl.col("ordered_at").str.slice(0, 10).alias("d")
    for (d,), part in orders.with_columns(day).group_by("d"):
        for entity, frame in (
            ("orders", part.drop("d")),
            ("order_lines", lines.filter(pl.col("order_id").is_in(part["order_id"].implode()))),
        ):
            folder = root / entity / d
            folder.mkdir(parents=True, exist_ok=True)
            if fmt == "csv":
                frame.write_csv(folder / "part.csv")
            else:
                frame.write_parquet(folder / "part.parquet")


def small_shop() -> tuple[pl.DataFrame, pl.DataFrame]:
    orders = pl.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4", "o5", "o5"],
            "customer_id": ["a", "a", "b", "a", "b", "b"],
            "ordered_at": [
                "2024-01-01T10:00:00+01:00",
                "2024-01-01T18:00:00+01:00",
                "2024-01-03T09:00:00Z",
                "2024-01-10T09:00:00",
                "2024-01-12T09:00:00",
                "2024-01-12T09:00:00",
            ],
            "currency": ["EUR"] * 6,
            "total_amount": ["10.00"] * 6,
            "status": ["fulfilled", "paid", "Cancelled", "fulfilled", "fulfilled", "canceled"],
            "updated_at": [None, None, None, None, "2024-01-12T09:00:00", "2024-01-13T09:00:00"],
        }
    )
    lines = pl.DataFrame(
        {
            "order_id": ["o1", "o1", "o2", "o3", "o4", "o4", "o5"],
            "line_id": ["1", "2", "1", "1", "1", "2", "1"],
            "product_id": ["p", "q", "p", "p", "p", "r", "p"],
            "quantity": [1, 2, 3, 1, 1, -1, 1],
            "unit_price": ["5.00"] * 7,
        }
    )
    return orders, lines


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_events_from_a_landing_folder_glob_or_directory(tmp_path: Path, fmt: str):
    orders, lines = small_shop()
    write_landing(tmp_path, orders, lines, fmt)
    # A writer's temporary must not be read.
    (tmp_path / "orders" / "2024-01-01" / ".part.csv.tmp").write_text("garbage")
    by_glob = backtest.purchase_events(
        backtest.read_entity(tmp_path / "orders" / "*" / "*"),
        backtest.read_entity(tmp_path / "order_lines" / "*" / "*"),
    )
    by_dir = backtest.purchase_events(
        backtest.read_entity(tmp_path / "orders"), backtest.read_entity(tmp_path / "order_lines")
    )
    assert by_glob.equals(by_dir)
    # o1 and o2 are one purchase day of p (1 + 3 units); o3 and the latest o5 are cancelled;
    # the returned line of r has no positive quantity.
    assert by_glob.rows() == [
        ("a", "p", dt.date(2024, 1, 1), 4.0),
        ("a", "p", dt.date(2024, 1, 10), 1.0),
        ("a", "q", dt.date(2024, 1, 1), 2.0),
    ]


def test_missing_files_are_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        backtest.read_entity(tmp_path / "nothing" / "*")


def test_unreadable_dates_are_an_error_not_an_empty_result(tmp_path: Path):
    orders, lines = small_shop()
    orders.with_columns(pl.lit("01/02/2024 10:00").alias("ordered_at")).write_csv(
        tmp_path / "orders.csv"
    )
    lines.write_csv(tmp_path / "lines.csv")
    with pytest.raises(ValueError, match="no purchase events"):
        backtest.run_backtest(tmp_path / "orders.csv", tmp_path / "lines.csv")


# The protocol ------------------------------------------------------------------------------


def synthetic_world(customers: int = 1500, days: int = 400, seed: int = 7) -> pl.DataFrame:
    """Replenishment with known structure: product cadences, customer speed, churn, quantity.

    Each customer buys 1-4 of ten products; a pair's gaps are the product's base gap times a
    customer speed times log-normal noise, twice as long after buying two units, and after
    each purchase the pair stops for good with probability 4%.
    """
    rng = np.random.default_rng(seed)
    base = np.array([7, 10, 14, 21, 30, 30, 45, 60, 90, 120], float)
    rows = []
    for c in range(customers):
        speed = rng.lognormal(0, 0.3)
        for p in rng.choice(len(base), size=rng.integers(1, 5), replace=False):
            day = rng.uniform(0, 120)
            while day < days:
                quantity = 2 if rng.random() < 0.2 else 1
                rows.append((f"c{c}", f"p{p}", START + dt.timedelta(days=int(day)), quantity))
                if rng.random() < 0.04:
                    break
                day += max(1.0, base[p] * speed * quantity * rng.lognormal(0, 0.3))
    return pl.DataFrame(
        rows, schema=["customer_id", "product_id", "day", "quantity"], orient="row"
    ).with_columns(pl.col("quantity").cast(pl.Float64))


@pytest.fixture(scope="module")
def world() -> pl.DataFrame:
    return synthetic_world()


def test_candidates_and_labels_follow_the_protocol():
    d = START
    events = pl.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c", "d", "d"],
            "product_id": ["p", "p", "p", "p", "p", "q"],
            "day": [
                d,
                d + dt.timedelta(days=400),  # a: bought in the year before the cutoff
                d,  # b: last bought more than 365 days before the cutoff
                d + dt.timedelta(days=399),
                d + dt.timedelta(days=409),
                d + dt.timedelta(days=410),  # d: first purchases inside the window
            ],
            "quantity": [1.0] * 6,
        }
    )
    cutoff = d + dt.timedelta(days=405)
    events = pl.concat(
        [
            events,
            pl.DataFrame(
                {
                    "customer_id": ["a", "c"],
                    "product_id": ["p", "p"],
                    "day": [cutoff + dt.timedelta(days=6), cutoff + dt.timedelta(days=7)],
                    "quantity": [1.0, 1.0],
                }
            ),
        ]
    )
    scored = backtest.score_cutoff(events, cutoff, window_days=7)
    # b is outside the lookback; d's pairs start after the cutoff.
    assert scored.select("customer_id", "product_id").rows() == [("a", "p"), ("c", "p")]
    # a rebuys on the window's last day; c one day after it.
    assert scored["label"].to_list() == [1, 0]
    assert scored["frequency"].to_list() == [2.0, 1.0]
    assert scored["recency"].to_list() == [-5.0, -6.0]
    # The only gap before the cutoff is a's 400 days: a is due on day 800, and so is c (bought
    # once, so the product's median stands in), a day earlier; the window ends on day 411.
    assert scored["due_customer_mean"].to_list() == [-389.0, -388.0]
    assert scored["due_product_median"].to_list() == [-389.0, -388.0]


def test_default_cutoffs_every_two_weeks_over_twelve_weeks_with_a_full_window(world):
    cutoffs = backtest.default_cutoffs(world, window_days=7)
    last_day = world["day"].max()
    assert len(cutoffs) == 6
    # The last window ends before the (partial) last day, at most a fortnight before it.
    assert 0 <= (last_day - dt.timedelta(days=7) - cutoffs[-1]).days < 14
    assert all((b - a).days == 14 for a, b in zip(cutoffs, cutoffs[1:], strict=False))
    assert (cutoffs[-1] - cutoffs[0]).days < 84
    # On a fixed grid: a day later, the same cutoffs.
    tomorrow = world.with_columns(pl.col("day") + dt.timedelta(days=1))
    assert backtest.default_cutoffs(world.vstack(tomorrow.tail(1)), window_days=7) in (
        cutoffs,
        [*cutoffs[1:], cutoffs[-1] + dt.timedelta(days=14)],
    )


def test_the_daily_report_reuses_each_cutoffs_scores_until_its_events_change(world, monkeypatch):
    summary, per_cutoff = reporting.replenishment_backtest(world)
    assert summary["cutoff_count"][0] == 6
    assert per_cutoff["cutoff"].n_unique() == 6

    scored = []
    real = reporting.score_cutoff_metrics

    def counting(events, cutoff, window_days=7):
        scored.append(cutoff)
        return real(events, cutoff, window_days)

    monkeypatch.setattr(reporting, "score_cutoff_metrics", counting)
    again, _ = reporting.replenishment_backtest(world, known=per_cutoff)
    assert scored == []
    assert again.equals(summary)

    # A late order before the last cutoff's window ends: that cutoff and none before it.
    last = per_cutoff["cutoff"].max()
    late = world.head(1).with_columns(pl.lit(last).alias("day"), pl.lit(1.0).alias("quantity"))
    reporting.replenishment_backtest(world.vstack(late), known=per_cutoff)
    assert scored == [last]


def test_no_leakage_future_events_never_change_scores(world):
    cutoff = dt.date(2023, 11, 20)
    future = world.filter(pl.col("day") >= cutoff)
    rng = np.random.default_rng(0)
    perturbed = pl.concat(
        [
            world.filter(pl.col("day") < cutoff),
            # Move every future purchase, change its quantity, and add new customers.
            future.with_columns(
                pl.Series(
                    "day",
                    [
                        d + dt.timedelta(days=int(s))
                        for d, s in zip(
                            future["day"], rng.integers(-10, 30, future.height), strict=True
                        )
                    ],
                ).clip(lower_bound=cutoff),
                pl.col("quantity") * 3,
            ),
            pl.DataFrame(
                {
                    "customer_id": ["new"] * 3,
                    "product_id": ["p1", "p2", "p3"],
                    "day": [cutoff, cutoff + dt.timedelta(days=1), cutoff + dt.timedelta(days=2)],
                    "quantity": [1.0, 1.0, 1.0],
                }
            ),
        ]
    ).sample(fraction=1.0, shuffle=True, seed=1)
    original = backtest.score_cutoff(world, cutoff)
    changed = backtest.score_cutoff(perturbed, cutoff)
    keys = ["customer_id", "product_id", *backtest.BASELINES]
    assert original.select(keys).equals(changed.select(keys))
    # Polars sums in parallel, so the model may differ in the last bits between runs on the
    # very same input; anything a future event could cause would be far larger.
    assert np.allclose(original["model"], changed["model"], rtol=1e-9, atol=0)
    # The perturbation did reach the labels, so the check above was not vacuous.
    assert not original["label"].equals(changed["label"])
    # And the model was calibrated on earlier windows here, not just layer 1.
    assert original["model"].n_unique() > 100


def test_model_beats_every_baseline_on_a_synthetic_world(world):
    result = backtest.backtest_events(world, window_days=7)
    model = result["model"]
    assert len(result["cutoffs"]) == 6
    assert 0 < result["base_rate"] < 1
    for name, metrics in result["baselines"].items():
        assert model["auc"] > metrics["auc"] + 0.03, name
        assert model["precision_at_1pct"] > metrics["precision_at_1pct"] + 0.05, name
        assert metrics["brier"] is None
    # Calibrated: better than always predicting the base rate.
    base = result["base_rate"]
    assert model["brier"] < base * (1 - base)


def test_run_backtest_json_and_table(tmp_path: Path, world):
    ids = world.with_row_index("n").with_columns(pl.format("o{}", pl.col("n")).alias("order_id"))
    orders = ids.select(
        "order_id",
        "customer_id",
        pl.col("day").dt.strftime("%Y-%m-%dT12:00:00Z").alias("ordered_at"),
        pl.lit("fulfilled").alias("status"),
    )
    lines = ids.select(
        "order_id", pl.lit("1").alias("line_id"), "product_id", pl.col("quantity").cast(pl.Int64)
    )
    orders.write_parquet(tmp_path / "orders.parquet")
    lines.write_csv(tmp_path / "order_lines.csv")
    cutoffs = "2023-12-04,2023-12-18"
    out = tmp_path / "result.json"
    runner = CliRunner()
    res = runner.invoke(
        backtest.backtest_command,
        [
            "--orders",
            str(tmp_path / "orders.parquet"),
            "--order-lines",
            str(tmp_path / "order_lines.csv"),
            "--cutoffs",
            cutoffs,
            "--json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert set(result) == {
        "cutoffs",
        "window_days",
        "candidates",
        "base_rate",
        "model",
        "baselines",
    }
    assert result["cutoffs"] == cutoffs.split(",")
    assert set(result["baselines"]) == set(backtest.BASELINES)
    assert set(result["model"]) == set(backtest.METRICS)
    direct = backtest.backtest_events(
        world, [dt.date(2023, 12, 4), dt.date(2023, 12, 18)], window_days=7
    )
    assert result["candidates"] == direct["candidates"]
    for name, metrics in [("model", direct["model"]), *direct["baselines"].items()]:
        got = result["model"] if name == "model" else result["baselines"][name]
        for metric, value in metrics.items():
            # Equal up to the last bits of Polars' parallel sums; None stays None.
            assert got[metric] == (value if value is None else pytest.approx(value, rel=1e-9))
    for name in ("model", *backtest.BASELINES):
        assert name in res.output
    assert "P@1%" in res.output


# The real-data target --------------------------------------------------------------------


def online_retail_landing(root: Path) -> tuple[str, str]:
    """The UCI Online Retail log in the landing format, one folder per month."""
    raw = pl.read_parquet(ONLINE_RETAIL).filter(pl.col("CustomerID").is_not_null())
    raw = raw.with_columns(
        pl.col("CustomerID").cast(pl.Int64).cast(pl.String).alias("customer_id"),
        pl.col("InvoiceDate").dt.truncate("1mo").dt.strftime("%Y-%m-%d").alias("month"),
    )
    orders = raw.group_by("InvoiceNo").agg(
        pl.col("customer_id").first(),
        pl.col("InvoiceDate").min().dt.strftime("%Y-%m-%dT%H:%M:%S").alias("ordered_at"),
        pl.col("month").first(),
    )
    orders = orders.select(
        pl.col("InvoiceNo").alias("order_id"),
        "customer_id",
        "ordered_at",
        pl.lit("GBP").alias("currency"),
        pl.lit("0").alias("total_amount"),
        pl.when(pl.col("InvoiceNo").str.starts_with("C"))
        .then(pl.lit("cancelled"))
        .otherwise(pl.lit("fulfilled"))
        .alias("status"),
        "month",
    )
    lines = raw.with_row_index("line").select(
        pl.col("InvoiceNo").alias("order_id"),
        pl.col("line").cast(pl.String).alias("line_id"),
        pl.col("StockCode").alias("product_id"),
        pl.col("Quantity").cast(pl.Int64).alias("quantity"),
        pl.col("UnitPrice").alias("unit_price"),
        "month",
    )
    for entity, frame in (("orders", orders), ("order_lines", lines)):
        for (month,), part in frame.group_by("month"):
            folder = root / entity / month
            folder.mkdir(parents=True)
            part.drop("month").write_parquet(folder / f"{entity}.parquet")
    return str(root / "orders" / "*" / "*"), str(root / "order_lines" / "*" / "*")


@pytest.mark.skipif(
    not ONLINE_RETAIL.exists(), reason=f"shared Online Retail file not found at {ONLINE_RETAIL}"
)
def test_online_retail_model_beats_the_baselines_by_the_target_margin(tmp_path: Path):
    orders, lines = online_retail_landing(tmp_path)
    cutoffs = [dt.date(2011, 9, 5) + dt.timedelta(days=14 * i) for i in range(6)]
    started = time.perf_counter()
    result = backtest.run_backtest(orders, lines, cutoffs, window_days=7)
    elapsed = time.perf_counter() - started
    print(backtest.format_table(result), f"\n{elapsed:.1f} s")
    model = result["model"]
    assert result["cutoffs"][-1] == "2011-11-14"
    assert model["auc"] >= 0.74
    assert model["precision_at_1pct"] >= 0.22
    best_auc = max(m["auc"] for m in result["baselines"].values())
    best_top = max(m["precision_at_1pct"] for m in result["baselines"].values())
    # The baselines as the issue describes them; a big change here means the protocol moved.
    assert 0.68 < best_auc < 0.74
    assert 0.15 < best_top < 0.21
    assert model["auc"] > best_auc + 0.03
    assert model["precision_at_1pct"] > best_top + 0.03


def test_latest_order_version_wins_across_mixed_offsets():
    """10:00-05:00 is 15:00Z, later than 12:00Z, though it sorts earlier as text."""
    orders = pl.DataFrame(
        {
            "order_id": ["o1", "o1"],
            "customer_id": ["c1", "c1"],
            "ordered_at": ["2026-08-01T09:00:00Z", "2026-08-01T09:00:00Z"],
            "status": ["cancelled", "paid"],
            "updated_at": ["2026-08-01T10:00:00-05:00", "2026-08-01T12:00:00Z"],
        }
    )
    lines = pl.DataFrame(
        {"order_id": ["o1"], "line_id": ["1"], "product_id": ["p1"], "quantity": ["1"]}
    )
    assert backtest.purchase_events(orders, lines).is_empty()
