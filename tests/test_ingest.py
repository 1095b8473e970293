import datetime as dt
import json

import duckdb
import numpy as np
import phonenumbers
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.ingest import UnreadableFileError, ingest_partition
from pipelines.landing import ENTITIES, write_landing_file
from pipelines.phones import nanp_valid, normalize_phone, normalize_phone_series

DAY = dt.date(2026, 8, 1)
ORDER_COLUMNS = ENTITIES["orders"].column_names


def order(order_id: str, **changes) -> dict:
    row = {
        "order_id": order_id,
        "customer_id": "c1",
        "ordered_at": "2026-08-01T10:00:00-05:00",
        "currency": "usd",
        "total_amount": "12.50",
        "fulfillment_type": "physical",
        "shipping_postal_code": "33101",
        "shipping_region": "FL",
        "shipping_city": "Miami",
        "shipping_country": "US",
        "status": "paid",
        "updated_at": "2026-08-01T10:00:00Z",
    }
    return {**row, **changes}


def land(landing, entity, rows, day=DAY, name="export", fmt="csv"):
    frame = pl.DataFrame(rows, schema={c: pl.String for c in ENTITIES[entity].column_names})
    return write_landing_file(frame, landing, entity, day, name, fmt)


def table(con, name):
    return con.execute(f"select * from {name} order by all").fetchall()


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield connection
    connection.close()


def test_ingest_twice_gives_identical_tables(tmp_path, con):
    landing = tmp_path / "landing"
    land(landing, "orders", [order("o1"), order("o2")])
    land(landing, "orders", [order("o3")], name="more", fmt="jsonl")
    first = ingest_partition(con, landing, "orders", DAY)
    snapshot = (table(con, "raw.orders"), table(con, "ops.ingest_rejects"))
    second = ingest_partition(con, landing, "orders", DAY)
    assert (table(con, "raw.orders"), table(con, "ops.ingest_rejects")) == snapshot
    assert first.loaded == second.loaded == 3


def test_duplicates_and_late_updates_resolve_to_latest(tmp_path, con):
    landing = tmp_path / "landing"
    day2 = DAY + dt.timedelta(days=1)
    land(landing, "orders", [order("o1"), order("o2")])
    # The next day's export repeats o1 unchanged and carries a late update of o2.
    land(
        landing,
        "orders",
        [order("o1"), order("o2", status="cancelled", updated_at="2026-08-02T09:00:00+00:00")],
        day=day2,
        fmt="parquet",
    )
    ingest_partition(con, landing, "orders", DAY)
    ingest_partition(con, landing, "orders", day2)
    rows = dict(con.execute("select order_id, status from raw.orders").fetchall())
    assert rows == {"o1": "paid", "o2": "cancelled"}
    # Re-running the older day afterwards must not bring the stale version back.
    ingest_partition(con, landing, "orders", DAY)
    assert dict(con.execute("select order_id, status from raw.orders").fetchall())["o2"] == (
        "cancelled"
    )


def test_typing_normalizes_timestamps_money_and_phones(tmp_path, con):
    landing = tmp_path / "landing"
    land(
        landing,
        "customers",
        [
            {
                "customer_id": "c1",
                "created_at": "2026-07-01T08:00:00-04:00",
                "phone": "(305) 441-2233",
            },
            {"customer_id": "c2", "created_at": "2026-07-01", "phone": "12345"},
        ],
    )
    result = ingest_partition(con, landing, "customers", DAY)
    rows = con.execute(
        "select customer_id, created_at, phone_e164, phone_valid, phone "
        "from raw.customers order by 1"
    ).fetchall()
    assert rows[0][1] == dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)
    assert rows[0][2:4] == ("+13054412233", True)
    # An invalid number is kept as given and flagged, never dropped.
    assert rows[1][2:] == (None, False, "12345")
    assert result.invalid_phones == 1


BAD_VALUES = {
    "ordered_at": ("invalid timestamp", st.sampled_from(["2026-13-45", "yesterday", "31/12/2026"])),
    "total_amount": ("invalid number", st.sampled_from(["12,3x", "abc", "1.2.3"])),
    "customer_id": ("missing value", st.just("")),
    "fulfillment_type": ("invalid value", st.sampled_from(["teleport", "drone"])),
}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(
        st.one_of(
            st.just(None),
            st.sampled_from(sorted(BAD_VALUES)).flatmap(
                lambda col: BAD_VALUES[col][1].map(lambda v, col=col: (col, v))
            ),
        ),
        min_size=1,
        max_size=40,
    ),
    fmt=st.sampled_from(["csv", "jsonl", "parquet"]),
)
def test_malformed_rows_are_rejected_with_reasons_and_counts_add_up(tmp_path_factory, plan, fmt):
    landing = tmp_path_factory.mktemp("landing")
    rows = [order(f"o{i}", **({bad[0]: bad[1]} if bad else {})) for i, bad in enumerate(plan)]
    land(landing, "orders", rows, fmt=fmt)
    with duckdb.connect(str(landing / "w.duckdb")) as con:
        result = ingest_partition(con, landing, "orders", DAY)
        expected = {}
        for bad in plan:
            if bad:
                reason = BAD_VALUES[bad[0]][0]
                expected[reason] = expected.get(reason, 0) + 1
        assert result.rows_in == len(plan) == result.loaded + result.rejected
        assert result.reasons == expected
        rejects = con.execute(
            "select source_line, reason, detail, record from ops.ingest_rejects order by 1"
        ).fetchall()
        assert len(rejects) == sum(expected.values())
        loaded = con.execute("select count(*) from raw.orders").fetchone()[0]
        assert loaded == result.loaded
        for line, reason, detail, record in rejects:
            # The line points at the offending row, and the record is kept to fix and replay.
            index = line - 2 if fmt == "csv" else line - 1
            assert plan[index] is not None and BAD_VALUES[plan[index][0]][0] == reason
            assert detail.startswith(reason)
            assert json.loads(record)["order_id"] == f"o{index}"


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("bad.parquet", b"PAR1 this is not parquet", "not a readable Parquet file"),
        ("bad.csv", b"order_id,customer_id\n\xff\xfe broken", "not valid UTF-8"),
        ("bad.csv", b"sku,qty\n1,2\n", "wrong columns for orders: missing order_id"),
        ("bad.jsonl", b'{"order_id": "o9", "customer', "no line is a JSON object"),
    ],
)
def test_unreadable_file_fails_clearly_and_loads_nothing(tmp_path, con, name, content, problem):
    landing = tmp_path / "landing"
    good = land(landing, "orders", [order("o1")])
    (good.parent / name).write_bytes(content)
    with pytest.raises(UnreadableFileError) as raised:
        ingest_partition(con, landing, "orders", DAY)
    assert name in str(raised.value) and problem in str(raised.value)
    # The readable file beside it was not loaded either: the partition is all or nothing.
    tables = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'raw'"
    ).fetchone()[0]
    if tables:
        assert con.execute("select count(*) from raw.orders").fetchone()[0] == 0


def test_non_positive_quantity_and_ragged_csv_rows_are_rejects(tmp_path, con):
    landing = tmp_path / "landing"
    path = land(
        landing,
        "order_lines",
        [
            {
                "order_id": "o1",
                "line_id": "1",
                "product_id": "p1",
                "quantity": "2",
                "unit_price": "3.5",
            },
            {
                "order_id": "o1",
                "line_id": "2",
                "product_id": "p1",
                "quantity": "0",
                "unit_price": "3.5",
            },
            {
                "order_id": "o1",
                "line_id": "3",
                "product_id": "p1",
                "quantity": "two",
                "unit_price": "3.5",
            },
        ],
    )
    with open(path, "a") as handle:
        handle.write("o1,4,p1\n")
    result = ingest_partition(con, landing, "order_lines", DAY)
    assert result.rows_in == 4 and result.loaded == 1
    assert result.reasons == {
        "non-positive quantity": 1,
        "invalid integer": 1,
        "malformed record": 1,
    }


def test_north_american_validity_is_the_librarys_for_every_area_code_and_exchange():
    """The vectorized check reads libphonenumber's own patterns; it must agree with it."""
    rng = np.random.default_rng(7)
    nationals = [
        f"{area}{exchange:03d}{line:04d}"
        for area in range(200, 1000)
        for exchange, line in zip(range(0, 1000, 7), rng.integers(0, 10_000, 143), strict=False)
    ]
    got = pl.DataFrame({"n": nationals}).select(nanp_valid(pl.col("n"))).to_series()
    expected = [
        phonenumbers.is_valid_number(phonenumbers.PhoneNumber(1, int(n))) for n in nationals
    ]
    assert 0.2 < sum(expected) / len(expected) < 0.8  # both kinds are well represented
    assert got.to_list() == expected


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("(415) 555-0142", "+14155550142"),
        ("+1 268 464 1234", "+12684641234"),  # Antigua: +1, its own region
        ("\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0664\u0662", "+14155550142"),
        ("+44 20 7946 0958", "+442079460958"),
        ("(415) 155-0142", None),  # no exchange starts with 1
        ("garbage", None),
    ],
)
def test_phone_spellings_normalize_as_the_full_parse_does(raw, e164):
    e164s, valid = normalize_phone_series(pl.Series([raw]))
    assert e164s[0] == e164
    assert valid[0] == (e164 is not None)
    assert normalize_phone(raw) == (e164, e164 is not None)
