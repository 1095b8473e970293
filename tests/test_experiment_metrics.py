"""Experiment metrics, attribution and holdout revenue (dbt) on a small simulated shop.

One world for the module: a shop simulated for two weeks, its first six days ingested and the
project built as of Aug 7, texts sent through the simulated world from Aug 7 to 11 (it answers
with receipts, clicks, replies and the orders the texts cause), the rest ingested, and the
experiment and attribution marts rebuilt as of Aug 15, when some 7-day windows are over and
others are not. Ingest and dbt run in this process, without Dagster and without dbt's tests
(the daily build and tests/test_pipeline.py run those), to stay fast."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import duckdb
import pytest

from pipelines.experiments.spec import load_experiments
from pipelines.settings import get_experiments_dir
from pipelines.simulator.responses import caused_order_id
from tests.worlds import live_world

START = dt.date(2026, 8, 1)
FIRST_BUILD = dt.datetime(2026, 8, 7, tzinfo=dt.UTC)
# What is due at the build, then each afternoon (US morning to evening) for five days.
SENDS = [FIRST_BUILD] + [FIRST_BUILD + dt.timedelta(days=d, hours=17) for d in range(5)]
AS_OF = dt.datetime(2026, 8, 15, tzinfo=dt.UTC)
MARTS = ["+experiment_metric_summaries", "+order_attributions", "+flow_incremental_revenue"]
WINDOWS = (1, 7, 30)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("data")
    with live_world(
        data,
        seed=5,
        customers=1000,
        start=START,
        first_build=FIRST_BUILD,
        sends=SENDS,
        as_of=AS_OF,
        marts=MARTS,
    ) as con:
        yield con


@pytest.fixture(scope="module")
def units(world) -> list[dict]:
    return _rows(world, "select * from marts.experiment_unit_metrics")


def test_every_exposed_unit_appears_once_per_experiment_at_its_first_send(world, units):
    keys = [(u["experiment_key"], u["unit_id"]) for u in units]
    assert len(keys) == len(set(keys))
    # Independently, from the outbox: the first send of each experiment to each customer.
    first_sent = dict(
        ((key, customer), at)
        for key, customer, at in world.execute(
            """select experiment_key, customer_id, min(sent_at)
               from ops.outbox
               where state = 'sent' and experiment_key is not null and sent_at < ?
               group by all""",
            [AS_OF],
        ).fetchall()
    )
    measured = {
        (u["experiment_key"], u["unit_id"]): u["exposed_at"]
        for u in units
        if not u["is_holdout_layer"]
    }
    assert first_sent, "the world sent no experiment message"
    assert measured == first_sent


def test_holdout_layers_expose_held_out_customers_when_they_would_have_been_sent(world, units):
    held_out = dict(
        ((f"holdout_{flow}", customer), at)
        for flow, customer, at in world.execute(
            """select flow, customer_id, min(decided_at) from ops.outbox
               where state = 'held_out' group by all"""
        ).fetchall()
    )
    holdout_arm = {
        (u["experiment_key"], u["unit_id"]): u
        for u in units
        if u["is_holdout_layer"] and u["variant_key"] == "holdout"
    }
    assert held_out, "the world held nobody out"
    assert set(holdout_arm) == set(held_out)
    for key, unit in holdout_arm.items():
        assert unit["exposed_at"] == held_out[key]
        assert unit["exposure_state"] == "held_out"
        # Nobody held out of a flow ever got one of its messages.
        assert unit["delivered_1d"] in (0, None) and unit["clicked_7d"] in (0, None)
    assert any(u["variant_key"] == "exposed" for u in units if u["is_holdout_layer"])
    assert all(u["is_arm_consistent"] for u in units)


def test_windows_are_complete_exactly_when_over_and_metrics_null_until_then(units):
    for u in units:
        for w in WINDOWS:
            complete = u["exposed_at"] + dt.timedelta(days=w) <= AS_OF
            assert u[f"is_complete_{w}d"] == complete
            for base in ("delivered", "clicked", "replied", "opted_out", "converted", "revenue"):
                assert (u[f"{base}_{w}d"] is None) == (not complete)
    assert any(u["is_complete_7d"] for u in units)
    assert any(not u["is_complete_7d"] for u in units)


def test_conversion_and_revenue_match_the_orders(world, units):
    orders = defaultdict(list)
    for customer, at, amount in world.execute(
        """select customer_id, ordered_at, cast(total_amount as double) from raw.orders
           where lower(coalesce(status, '')) not in ('cancelled', 'canceled')"""
    ).fetchall():
        orders[customer].append((at, amount))
    for u in units:
        start = u["exposed_at"]
        pre = sum(a for t, a in orders[u["unit_id"]] if start - dt.timedelta(days=30) <= t < start)
        assert u["revenue_pre_30d"] == pytest.approx(pre)
        for w in WINDOWS:
            if not u[f"is_complete_{w}d"]:
                continue
            inside = [a for t, a in orders[u["unit_id"]] if start <= t < start + dt.timedelta(w)]
            assert u[f"converted_{w}d"] == int(bool(inside))
            assert u[f"revenue_{w}d"] == pytest.approx(sum(inside))
            assert u[f"revenue_{w}d_winsorized"] <= u[f"revenue_{w}d"] + 1e-9
    assert any(u["converted_7d"] for u in units if u["is_complete_7d"])


def test_summaries_sum_exactly_the_units_with_complete_windows(world, units):
    summaries = _rows(world, "select * from marts.experiment_metric_summaries")
    arms = {(s["experiment_key"], s["variant_key"]) for s in summaries}
    assert {(u["experiment_key"], u["variant_key"]) for u in units} <= arms
    by_arm = defaultdict(list)
    for u in units:
        by_arm[(u["experiment_key"], u["variant_key"])].append(u)
    checked = 0
    for s in summaries:
        members = by_arm[(s["experiment_key"], s["variant_key"])]
        complete = [u for u in members if u[f"is_complete_{s['window_days']}d"]]
        assert s["n"] == len(complete)
        assert s["units_exposed"] == len(members)
        if s["metric_type"] == "binary":
            values = [u[s["metric"]] for u in complete]
            pre = [u[s["pre_metric"]] for u in complete]
        elif s["metric_type"] == "mean":
            values = [u[f"{s['metric']}_winsorized"] for u in complete]
            pre = [u["revenue_pre_30d_winsorized"] for u in complete]
        else:
            continue
        assert s["sum"] == pytest.approx(sum(values))
        assert s["sum_squares"] == pytest.approx(sum(v * v for v in values))
        assert s["sum_products"] == pytest.approx(
            sum(v * p for v, p in zip(values, pre, strict=True))
        )
        checked += 1
    assert checked > 0
    metrics = {s["metric"] for s in summaries}
    for spec in load_experiments(get_experiments_dir()).specs:
        named = [spec.primary_metric, *spec.secondary_metrics]
        assert set(named) | {g.metric for g in spec.guardrail_metrics} <= metrics


def test_srm_counts_are_the_assignments(world):
    counts = _rows(world, "select * from marts.experiment_variant_units")
    assigned = dict(
        ((key, variant), n)
        for key, variant, n in world.execute(
            "select experiment_key, variant_key, count(*) from marts.experiment_assignments "
            "group by all"
        ).fetchall()
    )
    assert {(c["experiment_key"], c["variant_key"]): c["units_assigned"] for c in counts} == (
        assigned
    )
    assert all(c["units_exposed"] <= c["units_assigned"] for c in counts)


def test_attributed_orders_are_orders_and_their_messages_precede_them(world):
    rows = _rows(world, "select * from marts.order_attributions")
    orders = {
        o
        for (o,) in world.execute(
            "select order_id from raw.orders where ordered_at < ?", [AS_OF]
        ).fetchall()
    }
    assert {r["order_id"] for r in rows} == orders
    messages = dict(world.execute("select idempotency_key, customer_id from ops.outbox").fetchall())
    attributed = [r for r in rows if r["is_attributed"]]
    assert attributed
    for r in attributed:
        assert messages[r["message_idempotency_key"]] == r["customer_id"]
        gap = r["ordered_at"] - r["touched_at"]
        limit = dt.timedelta(days=5) if r["attribution_rule"] == "last_click" else dt.timedelta(1)
        assert dt.timedelta(0) <= gap <= limit


def test_orders_the_texts_caused_are_attributed_when_their_text_qualifies(world):
    """The simulated world's own orders (SMS-<hash of the message>) against the raw events."""
    caused_by = {
        caused_order_id(uuid): (key, uuid)
        for key, uuid in world.execute(
            "select idempotency_key, provider_message_uuid from ops.outbox "
            "where provider_message_uuid is not null"
        ).fetchall()
    }
    delivered = dict(
        world.execute(
            "select message_uuid, min(occurred_at) from raw.sms_delivery_receipts "
            "where status = 'delivered' group by 1"
        ).fetchall()
    )
    clicks = defaultdict(list)
    for key, at, agent in world.execute(
        """select links.idempotency_key, clicks.clicked_at, clicks.user_agent
           from raw.link_clicks as clicks
           inner join ops.short_links as links on links.code = clicks.short_code"""
    ).fetchall():
        if not any(bot in (agent or "").lower() for bot in ("bot", "facebookexternalhit")):
            clicks[key].append(at)
    orders = _rows(world, "select * from marts.order_attributions where order_id like 'SMS-%'")
    assert orders, "the texts caused no order"
    to_cause = 0
    for order in orders:
        key, uuid = caused_by[order["order_id"]]
        at = order["ordered_at"]
        clicked = any(at - dt.timedelta(days=5) <= c <= at for c in clicks[key])
        recent = uuid in delivered and at - dt.timedelta(hours=24) <= delivered[uuid] <= at
        # A qualifying touch of its own text always earns the order an attribution (to that
        # text, or to a later touch of another one), and a click outranks any delivery.
        if clicked or recent:
            assert order["is_attributed"]
        if clicked:
            assert order["attribution_rule"] == "last_click"
        to_cause += order["message_idempotency_key"] == key
    assert to_cause >= 1


def test_incremental_revenue_compares_the_holdout_arms(world, units):
    rows = _rows(world, "select * from marts.flow_incremental_revenue")
    assert {r["flow"] for r in rows} == {
        h.flow for h in load_experiments(get_experiments_dir()).holdouts
    }
    for r in rows:
        w = r["window_days"]
        for arm in ("exposed", "holdout"):
            members = [
                u
                for u in units
                if u["experiment_key"] == r["experiment_key"]
                and u["variant_key"] == arm
                and u[f"is_complete_{w}d"]
            ]
            assert r[f"{arm}_n"] == len(members)
            assert r[f"{arm}_sum"] == pytest.approx(sum(u[f"revenue_{w}d"] for u in members))
        if r["exposed_n"] and r["holdout_n"]:
            difference = r["exposed_sum"] / r["exposed_n"] - r["holdout_sum"] / r["holdout_n"]
            assert r["incremental_revenue"] == pytest.approx(difference * r["exposed_n"])
    assert any(r["exposed_n"] and r["holdout_n"] for r in rows)
