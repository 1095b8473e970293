"""The replenishment model on small synthetic histories where the right answer is known."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from pipelines import cadence

AS_OF = dt.date(2024, 9, 1)
GAP = 30


def events(rows: list[tuple[str, str, dt.date, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["customer_id", "product_id", "day", "quantity"], orient="row")


def regular(customer: str, product: str, last: dt.date, times: int, gap: int = GAP) -> list:
    """``times`` purchases of one unit, ``gap`` days apart, the last one on ``last``."""
    return [(customer, product, last - dt.timedelta(days=gap * k), 1.0) for k in range(times)]


def population(product: str = "P", customers: int = 20, noise: float = 0.25) -> list:
    """Customers who rebuy ``product`` about every GAP days (log-normal noise)."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(customers):
        day = AS_OF - dt.timedelta(days=300 - i)
        for _ in range(6):
            rows.append((f"pop{i}", product, day, 1.0))
            day += dt.timedelta(days=round(GAP * rng.lognormal(0, noise)))
    return [r for r in rows if r[2] < AS_OF]


def row(frame: pl.DataFrame, customer: str, product: str = "P") -> dict:
    return frame.filter(
        (pl.col("customer_id") == customer) & (pl.col("product_id") == product)
    ).row(0, named=True)


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def test_regular_gaps_predict_next_date_near_last_plus_gap():
    last = AS_OF - days(5)
    out = cadence.predict(events(population() + regular("r", "P", last, 6)), None, AS_OF)
    r = row(out, "r")
    assert r["last_purchase_date"] == last
    assert r["purchase_days"] == 6
    assert abs((r["predicted_next_date"] - last).days - GAP) <= 2
    assert abs(r["expected_gap_days"] - GAP) <= 2
    assert r["reminder_date"] == r["predicted_next_date"] - days(3)


def test_one_row_per_pair_with_the_promised_columns():
    rows = population() + regular("r", "P", AS_OF - days(5), 3) + regular("r", "Q", AS_OF, 1)
    out = cadence.predict(events(rows), None, AS_OF)
    assert out.columns == list(cadence.OUTPUT_SCHEMA)
    assert out.select("customer_id", "product_id").is_duplicated().sum() == 0
    # The purchase on as_of itself is not history yet.
    assert out.filter(pl.col("product_id") == "Q").is_empty()
    assert out["probability_next_window"].is_between(0, 1).all()
    assert (out["predicted_next_date"] >= AS_OF).all()
    assert (out["reminder_date"] >= AS_OF).all()


def test_quantity_two_doubles_the_expected_gap():
    last = AS_OF - days(5)
    single = regular("one", "P", last, 5)
    double = [("two", "P", day, 2.0 if day == last else q) for _, _, day, q in single]
    out = cadence.predict(events(population() + single + double), None, AS_OF)
    one, two = row(out, "one"), row(out, "two")
    # No pair ever varied its quantity, so the elasticity stays at its prior of 1.
    assert two["expected_gap_days"] == pytest.approx(2 * one["expected_gap_days"], rel=1e-6)
    assert (two["predicted_next_date"] - last).days == pytest.approx(2 * GAP, abs=3)


def test_elapsed_time_changes_the_probability_as_a_hazard_should():
    rows = population()
    for name, elapsed in [("just_bought", 2), ("due", GAP - 1), ("long_gone", 5 * GAP)]:
        rows += regular(name, "P", AS_OF - days(elapsed), 4)
    out = cadence.predict(events(rows), None, AS_OF)
    p = {n: row(out, n)["probability_next_window"] for n in ("just_bought", "due", "long_gone")}
    # A pair due this week beats one that just bought, and one silent for five cycles has
    # probably stopped (the alive probability falls with every missed cycle).
    assert p["due"] > 0.3
    assert p["due"] > 100 * p["just_bought"]
    assert p["due"] > 10 * p["long_gone"]
    # The overdue pair is predicted in the future, not at last + gap (long past).
    gone = row(out, "long_gone")
    assert gone["days_overdue"] > 3 * GAP
    assert gone["predicted_next_date"] >= AS_OF
    assert gone["reminder_date"] == AS_OF


def test_probability_peaks_when_the_pair_is_due():
    rows = population()
    elapsed = [1, 10, 20, 25, 30, 35, 45, 70]
    for e in elapsed:
        rows += regular(f"e{e}", "P", AS_OF - days(e), 4)
    out = cadence.predict(events(rows), None, AS_OF)
    p = [row(out, f"e{e}")["probability_next_window"] for e in elapsed]
    peak = int(np.argmax(p))
    assert elapsed[peak] in (25, 30)
    # Rising into the due week, falling after it (ties only at the tiny-probability floor).
    assert all(np.diff(p[: peak + 1]) >= 0) and p[peak - 1] < p[peak]
    assert all(np.diff(p[peak:]) <= 0) and p[peak + 1] < p[peak]
    assert max(p[0], p[-1]) < p[peak] / 100


def test_single_purchase_falls_back_to_usage_days():
    last = AS_OF - days(2)
    rows = population() + [("n", "U", last, 1.0), ("n", "V", last, 1.0)]
    products = pl.DataFrame({"product_id": ["U", "V"], "usage_days": [45, None]})
    out = cadence.predict(events(rows), products, AS_OF)
    u, v = row(out, "n", "U"), row(out, "n", "V")
    assert u["expected_gap_days"] == pytest.approx(45)
    assert (u["predicted_next_date"] - last).days == pytest.approx(45, abs=1)
    # Without usage_days the shop-wide cadence (here about GAP) is the best guess.
    assert v["expected_gap_days"] == pytest.approx(GAP, rel=0.1)


def test_usage_days_alone_is_enough_without_any_repeat_in_the_shop():
    rows = [("n", "U", AS_OF - days(40), 3.0)]
    out = cadence.predict(
        events(rows), pl.DataFrame({"product_id": ["U"], "usage_days": [20]}), AS_OF
    )
    # Three units of a 20-day product last 60 days; 40 have passed.
    assert row(out, "n", "U")["expected_gap_days"] == pytest.approx(60)


def test_one_short_gap_moves_the_estimate_only_partly_away_from_the_product():
    short = [("s", "P", AS_OF - days(3), 1.0), ("s", "P", AS_OF - days(13), 1.0)]
    many = regular("m", "P", AS_OF - days(3), 9, gap=10)
    out = cadence.predict(events(population() + short + many), None, AS_OF)
    one_gap = row(out, "s")["expected_gap_days"]
    eight_gaps = row(out, "m")["expected_gap_days"]
    assert 12 < one_gap < 25
    # More evidence, more weight on the customer's own cadence.
    assert 10 <= eight_gaps < one_gap


def test_events_on_or_after_as_of_are_ignored():
    rows = population() + regular("r", "P", AS_OF - days(5), 4)
    future = [("r", "P", AS_OF, 1.0), ("x", "P", AS_OF + days(3), 5.0), ("r", "Z", AS_OF, 1.0)]
    base = cadence.predict(events(rows), None, AS_OF)
    assert base.equals(cadence.predict(events(rows + future), None, AS_OF))


def test_empty_history_gives_an_empty_frame():
    out = cadence.predict(events([("a", "P", AS_OF, 1.0)]), None, AS_OF)
    assert out.is_empty()
    assert out.columns == list(cadence.OUTPUT_SCHEMA)


def test_calibration_recovers_known_coefficients_and_stays_at_prior_without_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 2))
    truth = np.array([-1.0, 1.0, 0.5])
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(truth[0] + x @ truth[1:])))).astype(float)
    fitted = cadence.fit_calibration(x, y)
    z = (x - fitted.mean) / fitted.scale
    # Map the standardized coefficients back to the raw scale.
    raw = fitted.coef[1:] / fitted.scale
    assert raw == pytest.approx(truth[1:], abs=0.08)
    assert fitted.coef[0] - fitted.mean @ raw == pytest.approx(truth[0], abs=0.08)
    assert fitted.predict(x) == pytest.approx(
        1 / (1 + np.exp(-(fitted.coef[0] + z @ fitted.coef[1:])))
    )
    # With a strong prior and no information the fit stays where the prior is.
    prior = cadence.fit_calibration(x[:4], np.array([0.0, 1.0, 0.0, 1.0]), precision=1e6)
    assert prior.coef == pytest.approx(cadence.prior_calibration(2).coef, abs=1e-3)


def test_predictions_on_the_simulated_shop_recover_true_consumption_rates(tmp_path):
    """The simulator knows each pair's true days per unit; the model only sees the orders."""
    from scipy import stats

    from pipelines.backtest import purchase_events, read_entity
    from pipelines.simulator import simulate

    landing = tmp_path / "landing"
    world = simulate(landing, days=120, customers=800, seed=3, truth_dir=tmp_path / "truth")
    events = purchase_events(read_entity(landing / "orders"), read_entity(landing / "order_lines"))
    products = (
        read_entity(landing / "products")
        .select("product_id", pl.col("usage_days").cast(pl.Int64, strict=False))
        .unique("product_id")
    )
    predicted = cadence.predict(events, products, world.last_day + dt.timedelta(days=1))
    truth = pl.read_parquet(tmp_path / "truth" / "consumption.parquet")
    # Pairs still buying, with enough history for their own cadence to show.
    pairs = predicted.join(truth, on=["customer_id", "product_id"]).filter(
        pl.col("stopped_at").is_null() & (pl.col("purchase_days") >= 4)
    )
    assert pairs.height > 50
    estimated = (pairs["expected_gap_days"] / pairs["last_quantity"]).to_numpy()
    true = pairs["true_days_per_unit"].to_numpy()
    assert stats.spearmanr(estimated, true).statistic > 0.85
    assert 0.85 < np.median(estimated / true) < 1.2
