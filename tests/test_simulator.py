"""The simulated shop: deterministic, complete, realistic, and honest about the mess it plants."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import phonenumbers
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as number_zones

from pipelines.landing import BOOLEAN, ENTITIES, FORMATS, INTEGER, MONEY, TIMESTAMP
from pipelines.simulator import simulate
from pipelines.simulator.clock import STYLE_LOCAL, iso_text, make_clock
from pipelines.simulator.consents import strictly_increasing
from pipelines.simulator.geography import MORE_AREA_CODES, PLACES, ZONES
from pipelines.simulator.mess import REASONS
from pipelines.simulator.people import (
    MAX_AGE_DAYS,
    format_phones,
    invalid_phones,
    make_customers,
    pooled_numbers,
)

START = dt.date(2026, 8, 1)
SMALL = {"days": 20, "customers": 200, "seed": 11, "start": START}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("world")
    calls: list[tuple[int, int]] = []
    summary = simulate(root / "landing", progress=lambda d, t: calls.append((d, t)), **SMALL)
    return {"root": root, "landing": root / "landing", "summary": summary, "calls": calls}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.*"))}


def read_entity(landing: Path, entity: str) -> pl.DataFrame:
    """Every row of an entity, as text, with the day folder and file it came from."""
    frames = []
    columns = ENTITIES[entity].column_names
    for path in sorted((landing / entity).glob("*/*.*")):
        if path.suffix == ".csv":
            frame = pl.read_csv(path, infer_schema=False)
        elif path.suffix == ".jsonl":
            frame = pl.read_ndjson(path, schema=dict.fromkeys(columns, pl.String))
        else:
            frame = pl.read_parquet(path)
        assert frame.columns == columns, path
        frames.append(
            frame.with_columns(
                _day=pl.lit(path.parent.name), _file=pl.lit(path.name), _line=pl.int_range(pl.len())
            )
        )
    return pl.concat(frames)


# A validator written from the contract alone, as the ingest would apply it.
def _bad(value: str, kind: str) -> bool:
    if kind == TIMESTAMP:
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            return True
        return False
    if kind == MONEY:
        try:
            return not Decimal(value).is_finite()
        except InvalidOperation:
            return True
    if kind == INTEGER:
        return re.fullmatch(r"[+-]?\d+", value) is None
    if kind == BOOLEAN:
        return value.strip().lower() not in {"true", "false", "1", "0", "yes", "no"}
    return False


def problems(entity: str, row: dict) -> list[str]:
    spec = ENTITIES[entity]
    found = ["missing value" for c in spec.required if row[c] is None or not row[c].strip()]
    for column, kind in spec.columns.items():
        value = row[column]
        if value is None or not value.strip():
            continue
        if _bad(value, kind):
            found.append(f"invalid {kind.replace('money', 'number')}")
        elif column in spec.enums and value.lower() not in spec.enums[column]:
            found.append("invalid value")
    for column in spec.positive:
        value = row[column]
        if value and value.strip() and not _bad(value, INTEGER) and int(value) <= 0:
            found.append("non-positive quantity")
    return found


def valid_rows(landing: Path, entity: str) -> pl.DataFrame:
    frame = read_entity(landing, entity)
    keep = [not problems(entity, row) for row in frame.iter_rows(named=True)]
    return frame.filter(pl.Series(keep))


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def test_progress_is_reported_after_each_day(world: dict) -> None:
    assert world["calls"] == [(d, SMALL["days"]) for d in range(1, SMALL["days"] + 1)]


def test_same_arguments_give_identical_bytes(world: dict, tmp_path: Path) -> None:
    again = simulate(tmp_path / "landing", **SMALL)
    assert _files(tmp_path / "landing") == _files(world["landing"])
    assert _files(again.truth_dir) == _files(world["summary"].truth_dir)


def test_another_seed_gives_another_world(world: dict, tmp_path: Path) -> None:
    simulate(tmp_path / "landing", **{**SMALL, "seed": 12})
    ours, theirs = _files(world["landing"]), _files(tmp_path / "landing")
    assert ours.keys() & theirs.keys()
    assert all(ours[k] != theirs[k] for k in ours.keys() & theirs.keys())


def test_every_entity_lands_with_every_contract_column(world: dict) -> None:
    for entity in ENTITIES:
        frame = read_entity(world["landing"], entity)  # asserts the columns, file by file
        assert frame.height > 0, entity
        assert frame.height == world["summary"].rows[entity]


def test_formats_change_so_every_format_is_exercised(world: dict) -> None:
    for entity in ("customers", "orders", "order_lines", "fulfillment_events", "sms_consents"):
        suffixes = {p.suffix.lstrip(".") for p in (world["landing"] / entity).glob("*/*.*")}
        assert suffixes == set(FORMATS), entity


def test_a_day_file_holds_only_that_day(world: dict) -> None:
    moments = {
        "orders": "updated_at",
        "customers": "updated_at",
        "fulfillment_events": "occurred_at",
        "sms_consents": "occurred_at",
    }
    for entity, column in moments.items():
        frame = valid_rows(world["landing"], entity)
        copies = frame.drop("_day", "_file", "_line").is_duplicated()
        for row, copy in zip(frame.iter_rows(named=True), copies, strict=True):
            day = dt.date.fromisoformat(row["_day"])
            when = utc(row[column]).date()
            # Day 0 carries the backfilled history; later, only a re-export is older.
            assert when == day or (when < day and (day == START or copy)), (entity, row)
    days = sorted(p.name for p in (world["landing"] / "orders").iterdir())
    assert days[0] == START.isoformat()
    assert days[-1] == (START + dt.timedelta(days=SMALL["days"] - 1)).isoformat()


def test_phones_are_valid_except_the_planted_invalid_ones(world: dict) -> None:
    planted = world["summary"].planted["invalid_phone_numbers"]
    customers = read_entity(world["landing"], "customers")
    invalid = set()
    for cid, phone in customers.select("customer_id", "phone").iter_rows():
        number = phonenumbers.parse(phone, "US")
        if not phonenumbers.is_valid_number(number):
            invalid.add(cid)
    invalid.discard(None)
    assert invalid == set(planted["customer_ids"])
    assert 0 < planted["customers"] < customers["customer_id"].n_unique() * 0.05
    styles = {re.sub(r"\d", "#", p) for p in customers["phone"].to_list()}
    assert {"(###) ###-####", "+# ### ### ####", "###.###.####", "###########"} <= styles


def test_customers_span_zones_and_strict_states(world: dict) -> None:
    customers = read_entity(world["landing"], "customers")
    regions = set(customers["region"].drop_nulls())
    assert {"FL", "OK", "CA", "NY", "TX"} <= regions
    assert customers["timezone"].null_count() > customers.height / 2
    assert len(set(customers["timezone"].drop_nulls())) >= 4
    offsets = set(customers["created_at"].str.extract(r"(Z|[+-]\d\d:\d\d)$").to_list())
    assert {"Z", "+00:00"} <= offsets and len(offsets) >= 4


def test_the_truth_stays_outside_landing(world: dict) -> None:
    truth = world["summary"].truth_dir
    assert truth == world["landing"].parent / "simulator"
    for name in ("consumption.parquet", "planted.json"):
        assert (truth / name).is_file()
    assert not any(
        p.name.startswith(("consumption", "planted")) for p in world["landing"].rglob("*")
    )


def test_rerunning_the_same_world_is_safe_but_another_world_is_refused(tmp_path: Path) -> None:
    tiny = {"days": 3, "customers": 30, "seed": 5}
    with pytest.raises(ValueError):
        simulate(tmp_path / "landing", truth_dir=tmp_path / "landing" / "truth", **tiny)
    simulate(tmp_path / "landing", **tiny)
    before = _files(tmp_path)
    simulate(tmp_path / "landing", **tiny)
    assert _files(tmp_path) == before
    with pytest.raises(FileExistsError):
        simulate(tmp_path / "landing", **{**tiny, "seed": 6})
    assert _files(tmp_path) == before


def test_repeat_purchases_follow_the_true_consumption_rate(world: dict) -> None:
    truth = pl.read_parquet(world["summary"].truth_dir / "consumption.parquet")
    orders = valid_rows(world["landing"], "orders").unique(["order_id"])
    lines = valid_rows(world["landing"], "order_lines").unique(["order_id", "line_id"])
    bought = (
        lines.join(orders.select("order_id", "customer_id", "ordered_at"), on="order_id")
        .join(truth.select("customer_id", "product_id"), on=["customer_id", "product_id"])
        .with_columns(
            t=pl.col("ordered_at").str.to_datetime(time_zone="UTC"),
            q=pl.col("quantity").cast(pl.Int64),
        )
        .sort("customer_id", "product_id", "t")
    )
    gaps = (
        bought.with_columns(
            gap_days=(pl.col("t") - pl.col("t").shift(1))
            .dt.total_seconds()
            .over("customer_id", "product_id")
            / 86_400,
            q_before=pl.col("q").shift(1).over("customer_id", "product_id"),
        )
        .drop_nulls("gap_days")
        .group_by("customer_id", "product_id")
        .agg((pl.col("gap_days") / pl.col("q_before")).median().alias("observed"), pl.len())
        .filter(pl.col("len") >= 2)
        .join(truth, on=["customer_id", "product_id"])
    )
    assert gaps.height >= 50
    ratio = (gaps["observed"] / gaps["true_days_per_unit"]).to_numpy()
    assert np.mean((ratio > 0.6) & (ratio < 1.7)) > 0.9
    log_corr = np.corrcoef(np.log(gaps["observed"]), np.log(gaps["true_days_per_unit"]))[0, 1]
    assert log_corr > 0.9


def test_planted_mess_matches_what_an_exact_validator_finds(world: dict) -> None:
    planted = json.loads((world["summary"].truth_dir / "planted.json").read_text())
    assert planted == world["summary"].planted
    for entity in ENTITIES:
        frame = read_entity(world["landing"], entity)
        found: dict[str, int] = {}
        for row in frame.iter_rows(named=True):
            issues = problems(entity, row)
            assert len(issues) <= 1, (entity, row, issues)
            for issue in issues:
                found[issue] = found.get(issue, 0) + 1
        assert found == planted["malformed"][entity], entity
        assert sum(found.values()) == planted["malformed_total"][entity]
        content = frame.drop("_day", "_file", "_line")
        assert content.height - content.unique().height == planted["duplicate_rows"][entity]
        assert frame.height == planted["rows"][entity]
    assert set().union(*planted["malformed"].values()) == set(REASONS)
    assert planted["duplicate_rows"]["orders"] > 0
    assert planted["duplicate_rows"]["order_lines"] >= planted["duplicate_rows"]["orders"]


def test_late_updates_and_final_statuses_are_counted_exactly(world: dict) -> None:
    planted = world["summary"].planted
    for entity, key in (
        ("orders", "order_id"),
        ("customers", "customer_id"),
        ("products", "product_id"),
    ):
        rows = valid_rows(world["landing"], entity).drop("_day", "_file", "_line").unique()
        assert rows.height - rows[key].n_unique() == planted["late_updates"][entity]
    orders = valid_rows(world["landing"], "orders").with_columns(
        t=pl.col("updated_at").str.to_datetime(time_zone="UTC")
    )
    latest = orders.sort("t").group_by("order_id").last()
    assert latest.filter(pl.col("status") == "cancelled").height == planted["cancelled_orders"]
    assert latest.filter(pl.col("status") == "refunded").height == planted["refunded_orders"]
    assert planted["late_updates"]["orders"] == sum(
        planted["late_order_updates_by_status"].values()
    )
    assert planted["late_order_updates_by_status"]["cancelled"] > 0


def test_order_totals_equal_their_lines(world: dict) -> None:
    orders = valid_rows(world["landing"], "orders").unique(["order_id"])
    lines = valid_rows(world["landing"], "order_lines").unique(["order_id", "line_id"])
    # Orders whose lines were all planted as malformed copies keep their clean lines too.
    sums = lines.group_by("order_id").agg(
        (pl.col("quantity").cast(pl.Int64) * pl.col("unit_price").cast(pl.Decimal(12, 2)))
        .sum()
        .alias("lines")
    )
    joined = orders.join(sums, on="order_id", how="left")
    assert joined["lines"].null_count() == 0
    assert (joined["total_amount"].cast(pl.Decimal(12, 2)) == joined["lines"]).all()


def test_shipments_move_forward_and_digital_orders_ship_nothing(world: dict) -> None:
    events = valid_rows(world["landing"], "fulfillment_events").unique()
    rank = {
        "label_created": 0,
        "shipped": 1,
        "in_transit": 2,
        "out_for_delivery": 3,
        "failed_attempt": 3,
        "delivered": 4,
        "returned": 5,
    }
    ordered = events.with_columns(
        t=pl.col("occurred_at").str.to_datetime(time_zone="UTC"),
        r=pl.col("status").replace_strict(rank),
    ).sort("shipment_id", "t")
    backwards = ordered.filter(pl.col("r") < pl.col("r").shift(1).over("shipment_id"))
    assert backwards.height == 0
    assert {"failed_attempt", "delivered", "out_for_delivery"} <= set(events["status"])
    orders = valid_rows(world["landing"], "orders")
    digital = set(orders.filter(pl.col("fulfillment_type") == "digital")["order_id"])
    assert digital and not digital & set(events["order_id"])


def test_consents_mix_scopes_sources_and_opt_outs(world: dict) -> None:
    consents = valid_rows(world["landing"], "sms_consents")
    assert {"checkout", "import"} <= set(consents["source"])
    assert {"opted_in", "opted_out"} == set(consents["status"].str.to_lowercase())
    scopes = consents.group_by("customer_id").agg(pl.col("scope").unique())
    assert scopes["scope"].list.len().max() == 2 and scopes["scope"].list.len().min() == 1
    customers = read_entity(world["landing"], "customers")["customer_id"].n_unique()
    assert scopes.height < customers  # some never agreed to texts


def test_legacy_sms_history_looks_like_plivo(world: dict) -> None:
    receipts = valid_rows(world["landing"], "sms_delivery_receipts")
    assert {"queued", "sent", "delivered"} <= set(receipts["status"])
    failures = receipts.filter(pl.col("status").is_in(["failed", "undelivered"]))
    assert set(failures["error_code"]) <= {"20", "30", "50", "200"}
    assert receipts.filter(pl.col("status") == "delivered")["error_code"].null_count() > 0
    assert set(receipts["mcc"].drop_nulls()) <= {"310", "311"}
    inbound = valid_rows(world["landing"], "inbound_messages")
    assert inbound.height > 0
    for number in inbound["from_number"]:
        assert phonenumbers.is_valid_number(phonenumbers.parse("+" + number.lstrip("+")))
    clicks = valid_rows(world["landing"], "link_clicks")
    assert clicks["click_id"].n_unique() == clicks.height


@settings(max_examples=200, deadline=None)
@given(
    place=st.sampled_from(PLACES),
    slot=st.integers(0, 2),
    line=st.integers(100, 9999),
    style=st.integers(0, 5),
)
def test_every_simulated_phone_spelling_is_a_valid_us_number(
    place, slot: int, line: int, style: int
) -> None:
    area = place.area_codes[slot % len(place.area_codes)]
    text = format_phones(np.array([area]), np.array([line]), np.array([style]))[0]
    number = phonenumbers.parse(text, "US")
    assert phonenumbers.is_valid_number(number), text
    assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == (
        f"+1{area}555{line:04d}"
    )


@given(
    area=st.sampled_from(sorted({a for p in PLACES for a in p.area_codes})),
    line=st.integers(100, 9999),
    kind=st.integers(0, 2),
)
def test_every_planted_phone_typo_is_invalid(area: int, line: int, kind: int) -> None:
    text = invalid_phones(np.array([area]), np.array([line]), np.array([kind]))[0]
    assert not phonenumbers.is_valid_number(phonenumbers.parse(text, "US")), text


def _keeps_the_time_of(zone: str, number: phonenumbers.PhoneNumber) -> bool:
    """Whether the zones phonenumbers gives a number include ``zone`` or keep its clock (it
    files Detroit's and Indianapolis' codes under New York)."""
    zones = number_zones.time_zones_for_number(number)
    moments = [dt.datetime(2026, month, 15, 12, tzinfo=dt.UTC) for month in (1, 4, 7, 10)]
    return zone in zones or all(
        m.astimezone(ZoneInfo(z)).utcoffset() == m.astimezone(ZoneInfo(zone)).utcoffset()
        for z in zones
        for m in moments
    )


@pytest.mark.parametrize("place", PLACES, ids=lambda p: p.city)
def test_every_area_code_of_a_place_is_valid_and_keeps_its_time(place) -> None:
    codes = place.area_codes + MORE_AREA_CODES.get(place.city, ())
    for code in codes:
        for line in (100, 142, 9999):
            number = phonenumbers.parse(f"+1{code}555{line:04d}")
            assert phonenumbers.is_valid_number(number), (code, line)
        # Pensacola's 850 is filed under Eastern time on purpose (see geography).
        assert place.city == "Pensacola" or _keeps_the_time_of(place.zone, number), code
    assert place.city != "Pensacola" or codes == (850,)
    others = {c for p in PLACES if p is not place for c in p.area_codes}
    others |= {c for p in PLACES if p is not place for c in MORE_AREA_CODES.get(p.city, ())}
    assert not set(codes) & others  # a number drawn for one place is no other place's


def test_a_million_customers_get_distinct_numbers_from_their_own_place() -> None:
    rng = np.random.default_rng(3)
    weights = np.array([p.weight for p in PLACES])
    home = rng.choice(len(PLACES), size=1_000_000, p=weights / weights.sum())
    area, line = pooled_numbers(rng, home)
    assert len(np.unique(area * 10_000 + line)) == len(home)
    assert line.min() >= 100 and line.max() <= 9999
    for p, place in enumerate(PLACES):
        assert set(area[home == p]) <= set(place.area_codes + MORE_AREA_CODES.get(place.city, ()))
    for i in rng.choice(len(home), size=2000, replace=False):
        number = phonenumbers.parse(f"+1{area[i]}555{line[i]:04d}")
        assert phonenumbers.is_valid_number(number)
    with pytest.raises(ValueError, match="number pool"):
        pooled_numbers(rng, np.zeros(10_000, dtype=np.int64) + len(PLACES) - 1)


def test_worlds_beyond_the_old_number_pool_draw_from_more_area_codes() -> None:
    clock = make_clock(START, 5, ZONES, MAX_AGE_DAYS + 5, 60)
    big = make_customers(clock, np.random.default_rng(7), 200_000)
    numbers = big.e164().drop_nulls()
    assert numbers.n_unique() == numbers.len() > 195_000
    own = {c for p in PLACES for c in p.area_codes}
    assert set(big.area_code) - own  # too many customers for the places' own codes
    small = make_customers(clock, np.random.default_rng(7), 20_000)
    assert set(small.area_code) <= own


_CLOCK = make_clock(START, 30, ZONES, 800, 60)


@settings(max_examples=200, deadline=None)
@given(
    t=st.integers(_CLOCK.t0 - 700 * 86_400, _CLOCK.t_end + 50 * 86_400),
    zone=st.integers(0, len(ZONES) - 1),
    style=st.integers(0, 2),
)
def test_timestamp_text_names_the_same_instant_in_any_spelling(
    t: int, zone: int, style: int
) -> None:
    offset = _CLOCK.offset(np.array([zone]), np.array([t]))
    text = iso_text(np.array([t]), np.array([style]), offset)[0]
    assert dt.datetime.fromisoformat(text).timestamp() == t
    if style == STYLE_LOCAL:
        from zoneinfo import ZoneInfo

        local = dt.datetime.fromtimestamp(t, ZoneInfo(ZONES[zone]))
        assert text == local.isoformat()


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 20)), min_size=1, max_size=40))
def test_consent_moments_become_unique_per_customer(events: list[tuple[int, int]]) -> None:
    customer = np.array([c for c, _ in events])
    t = np.array([s for _, s in events], dtype=np.int64)
    nudged = strictly_increasing(customer, t)
    assert (nudged >= t).all()
    assert len(set(zip(customer.tolist(), nudged.tolist(), strict=True))) == len(events)
