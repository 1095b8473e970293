"""The Online Retail importer: a tiny hand-made log checked row by row, and the real file checked
against counts derived independently with DuckDB SQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.importers.online_retail import SKIP_REASONS, import_online_retail
from pipelines.landing import ENTITIES

REAL_FILE = (
    Path(__file__).parents[1].parent / "shared" / "data" / "online_retail" / "online_retail.parquet"
)
ENTITY_NAMES = ("customers", "products", "orders", "order_lines")


def _landed(out: Path, entity: str, day: str) -> list[dict]:
    return pl.read_parquet(out / entity / day / "online_retail.parquet").to_dicts()


# --- synthetic --------------------------------------------------------------------------------


def _source_row(invoice, code, desc, qty, when, price, customer, country="United Kingdom"):
    return {
        "InvoiceNo": invoice,
        "StockCode": code,
        "Description": desc,
        "Quantity": float(qty),
        "InvoiceDate": dt.datetime.fromisoformat(when),
        "UnitPrice": float(price),
        "CustomerID": None if customer is None else float(customer),
        "Country": country,
    }


@pytest.fixture
def tiny_import(tmp_path: Path):
    rows = [
        # A winter invoice (GMT) from a French customer, with postage.
        _source_row("500000", "22728", "ALARM CLOCK", 4, "2010-12-01 08:26", 3.75, 12583, "France"),
        _source_row("500000", "POST", "POSTAGE", 1, "2010-12-01 08:26", 18.00, 12583, "France"),
        # A summer invoice (BST) with an identical line keyed twice and a £0.001 item.
        _source_row("536365", "85123A", "WHITE HEART", 6, "2011-07-01 09:00", 2.55, 17850),
        _source_row("536365", "PADS", "PADS", 1, "2011-07-01 09:00", 0.001, 17850),
        _source_row("536365", "85123A", "WHITE HEART", 6, "2011-07-01 09:00", 2.55, 17850),
        # A credit note for two of them the next day.
        _source_row("C536366", "85123A", "WHITE HEART ", -2, "2011-07-02 10:00", 2.55, 17850),
        # A web sale without a customer id, a stock adjustment and a bad-debt write-off.
        _source_row("536367", "21730", "LANTERN", 3, "2011-07-02 11:00", 4.95, None),
        _source_row("536368", "21730", "damaged", -5, "2011-07-02 11:05", 0.0, None),
        _source_row("A536369", "B", "Adjust bad debt", 1, "2011-07-02 11:10", -11062.06, None),
    ]
    source = tmp_path / "online_retail.parquet"
    pl.DataFrame(rows).write_parquet(source)
    out = tmp_path / "data" / "landing"
    calls: list[tuple[int, int]] = []
    summary = import_online_retail(source, out, progress=lambda d, t: calls.append((d, t)))
    return summary, out, calls


def test_tiny_log_summary_accounts_for_every_line(tiny_import):
    summary, out, calls = tiny_import
    assert summary.lines_in == 9
    assert summary.invoices_in == 6
    assert (summary.orders, summary.cancelled_orders) == (2, 1)
    assert summary.lines_written == 6
    assert summary.skipped_lines == {
        "missing_field": 0,
        "negative_price": 1,
        "non_positive_quantity": 1,
        "no_customer_id": 1,
    }
    assert summary.lines_in == summary.lines_written + summary.lines_skipped
    assert (summary.lines_without_customer, summary.invoices_without_customer) == (3, 3)
    assert (summary.customers, summary.products) == (2, 4)
    assert summary.days_written == 3
    assert calls == [(1, 3), (2, 3), (3, 3)]
    report = json.loads((out.parent / "imports" / "online_retail.json").read_text())
    assert report["lines_skipped"] == 3
    assert report["skipped_lines"]["negative_price"] == 1


def test_tiny_log_lands_exactly_the_purchases(tiny_import):
    _, out, _ = tiny_import
    assert sorted(p.name for p in (out / "orders").iterdir()) == [
        "2010-12-01",
        "2011-07-01",
        "2011-07-02",
    ]
    order = dict.fromkeys(ENTITIES["orders"].column_names)
    assert _landed(out, "orders", "2011-07-01") == [
        order
        | {
            "order_id": "536365",
            "customer_id": "17850",
            "ordered_at": "2011-07-01T09:00:00+01:00",
            "currency": "GBP",
            "total_amount": "30.601",
            "fulfillment_type": "physical",
            "shipping_country": "United Kingdom",
            "status": "fulfilled",
            "updated_at": "2011-07-01T09:00:00+01:00",
        }
    ]
    # The credit note lands as a cancelled order with positive amounts; the skipped lines of
    # that day do not land at all.
    assert _landed(out, "orders", "2011-07-02") == [
        order
        | {
            "order_id": "C536366",
            "customer_id": "17850",
            "ordered_at": "2011-07-02T10:00:00+01:00",
            "currency": "GBP",
            "total_amount": "5.10",
            "fulfillment_type": "physical",
            "shipping_country": "United Kingdom",
            "status": "cancelled",
            "updated_at": "2011-07-02T10:00:00+01:00",
        }
    ]
    assert _landed(out, "orders", "2010-12-01")[0]["ordered_at"] == "2010-12-01T08:26:00+00:00"
    assert _landed(out, "orders", "2010-12-01")[0]["total_amount"] == "33.00"

    # Duplicate identical lines keep their own positions.
    assert _landed(out, "order_lines", "2011-07-01") == [
        {
            "order_id": "536365",
            "line_id": "1",
            "product_id": "85123A",
            "quantity": "6",
            "unit_price": "2.55",
        },
        {
            "order_id": "536365",
            "line_id": "2",
            "product_id": "PADS",
            "quantity": "1",
            "unit_price": "0.001",
        },
        {
            "order_id": "536365",
            "line_id": "3",
            "product_id": "85123A",
            "quantity": "6",
            "unit_price": "2.55",
        },
    ]
    assert _landed(out, "order_lines", "2011-07-02") == [
        {
            "order_id": "C536366",
            "line_id": "1",
            "product_id": "85123A",
            "quantity": "2",
            "unit_price": "2.55",
        }
    ]


def test_tiny_log_customers_and_products(tiny_import):
    _, out, _ = tiny_import
    customer = dict.fromkeys(ENTITIES["customers"].column_names)
    assert _landed(out, "customers", "2010-12-01") == [
        customer
        | {
            "customer_id": "12583",
            "created_at": "2010-12-01T08:26:00+00:00",
            "country": "France",
            "updated_at": "2010-12-01T08:26:00+00:00",
        }
    ]
    assert [c["customer_id"] for c in _landed(out, "customers", "2011-07-01")] == ["17850"]
    assert not (out / "customers" / "2011-07-02").exists()

    product = dict.fromkeys(ENTITIES["products"].column_names) | {
        "currency": "GBP",
        "is_consumable": "false",
        "needs_setup": "false",
    }
    assert _landed(out, "products", "2010-12-01") == [
        product
        | {
            "product_id": "22728",
            "title": "ALARM CLOCK",
            "price": "3.75",
            "updated_at": "2010-12-01T08:26:00+00:00",
        },
        product
        | {
            "product_id": "POST",
            "title": "POSTAGE",
            "category": "shipping",
            "price": "18.00",
            "updated_at": "2010-12-01T08:26:00+00:00",
        },
    ]
    summer = {p["product_id"]: p for p in _landed(out, "products", "2011-07-01")}
    assert summer.keys() == {"85123A", "PADS"}
    assert summer["85123A"]["title"] == "WHITE HEART"
    assert summer["85123A"]["price"] == "2.55"
    assert summer["PADS"]["price"] == "0.001"
    # 21730 was only sold without a customer id and adjusted: it never lands.
    assert not (out / "products" / "2011-07-02").exists()


def test_rerun_rewrites_the_same_files(tiny_import, tmp_path: Path):
    summary, out, _ = tiny_import
    before = {p: p.read_bytes() for p in out.rglob("*.parquet")}
    again = import_online_retail(Path(summary.source), out)
    assert again == summary
    assert {p: p.read_bytes() for p in out.rglob("*.parquet")} == before


def test_missing_columns_are_refused(tmp_path: Path):
    bad = tmp_path / "bad.parquet"
    pl.DataFrame({"InvoiceNo": ["1"]}).write_parquet(bad)
    with pytest.raises(ValueError, match="missing columns"):
        import_online_retail(bad, tmp_path / "landing")


# --- the real file ----------------------------------------------------------------------------

# Each source line's fate, decided in SQL without the importer's code: a write-off or an
# adjustment first, then a missing customer id.
_CLASSIFIED = """
    create table src as
    select
        *,
        starts_with(InvoiceNo, 'C') as is_cancellation,
        case
            when UnitPrice < 0 then 'negative_price'
            when not starts_with(InvoiceNo, 'C') and Quantity <= 0 then 'non_positive_quantity'
            when CustomerID is null then 'no_customer_id'
        end as reason
    from read_parquet(?)
"""
_KEPT = """
    create view kept as
    select *, min(InvoiceDate) over (partition by InvoiceNo) as invoice_at
    from src
    where reason is null
"""


@pytest.fixture(scope="module")
def real_import(tmp_path_factory):
    if not REAL_FILE.is_file():
        pytest.skip(f"the UCI Online Retail file is not at {REAL_FILE}")
    out = tmp_path_factory.mktemp("online_retail") / "landing"
    summary = import_online_retail(REAL_FILE, out)
    con = duckdb.connect()
    con.execute(_CLASSIFIED, [str(REAL_FILE)])
    con.execute(_KEPT)
    for entity in ENTITY_NAMES:
        # The partition day is the file's folder name.
        con.execute(
            f"create table landed_{entity} as "
            "select * exclude (filename), split_part(filename, '/', -2) as day "
            "from read_parquet(?, filename = true)",
            [str(out / entity / "*" / "*.parquet")],
        )
    yield summary, out, con
    con.close()


def _one(con: duckdb.DuckDBPyConnection, sql: str):
    return con.execute(sql).fetchall()[0]


def test_real_counts_match_independent_sql(real_import):
    summary, _, con = real_import
    lines_in, invoices_in = _one(con, "select count(*), count(distinct InvoiceNo) from src")
    orders, cancelled, lines, customers, products, days = _one(
        con,
        """
        select
            count(distinct InvoiceNo) filter (where not is_cancellation),
            count(distinct InvoiceNo) filter (where is_cancellation),
            count(*),
            count(distinct CustomerID),
            count(distinct StockCode),
            count(distinct invoice_at::date)
        from kept
        """,
    )
    skipped = dict(
        con.execute(
            "select reason, count(*) from src where reason is not null group by 1"
        ).fetchall()
    )
    no_customer = _one(
        con, "select count(*), count(distinct InvoiceNo) from src where CustomerID is null"
    )

    assert (summary.lines_in, summary.invoices_in) == (lines_in, invoices_in)
    assert (summary.orders, summary.cancelled_orders) == (orders, cancelled)
    assert summary.lines_written == lines
    assert (summary.customers, summary.products) == (customers, products)
    assert summary.days_written == days
    assert summary.skipped_lines == dict.fromkeys(SKIP_REASONS, 0) | skipped
    assert (summary.lines_without_customer, summary.invoices_without_customer) == no_customer
    assert summary.lines_in == summary.lines_written + sum(summary.skipped_lines.values())

    # The file is a fixed public data set; pin its numbers so a change in it is noticed.
    assert (lines_in, invoices_in) == (541_909, 25_900)
    assert (orders, cancelled, lines, customers, products, days) == (
        18_536,
        3_654,
        406_829,
        4_372,
        3_684,
        305,
    )
    assert skipped == {
        "negative_price": 2,
        "non_positive_quantity": 1_336,
        "no_customer_id": 133_742,
    }
    assert no_customer == (135_080, 3_710)


def test_real_landing_holds_what_the_summary_says(real_import):
    summary, _, con = real_import
    counted = {e: _one(con, f"select count(*) from landed_{e}")[0] for e in ENTITY_NAMES}
    assert counted == {
        "customers": summary.customers,
        "products": summary.products,
        "orders": summary.orders_written,
        "order_lines": summary.lines_written,
    }
    # Keys are unique, duplicate source lines included.
    assert (
        _one(
            con, "select count(*) from (select distinct order_id, line_id from landed_order_lines)"
        )[0]
        == summary.lines_written
    )
    assert (
        _one(con, "select count(distinct order_id) from landed_orders")[0] == summary.orders_written
    )
    assert (
        _one(con, "select count(distinct customer_id) from landed_customers")[0]
        == summary.customers
    )
    assert (
        _one(con, "select count(distinct product_id) from landed_products")[0] == summary.products
    )
    assert (
        _one(
            con,
            "select count(*) from (select InvoiceNo, StockCode, Quantity, InvoiceDate, UnitPrice "
            "from kept group by all having count(*) > 1)",
        )[0]
        > 0
    )


def test_real_references_and_days_line_up(real_import):
    _, _, con = real_import
    # Every reference resolves, and nothing lands on a day before what it refers to.
    assert (
        _one(
            con,
            """
        select count(*) from landed_order_lines l
        left join landed_orders o using (order_id)
        left join landed_products p using (product_id)
        where o.order_id is null or p.product_id is null or l.day <> o.day or p.day > o.day
        """,
        )[0]
        == 0
    )
    assert (
        _one(
            con,
            """
        select count(*) from landed_orders o
        left join landed_customers c using (customer_id)
        where c.customer_id is null or c.day > o.day
        """,
        )[0]
        == 0
    )
    assert _one(con, "select count(*) from landed_customers where phone is not null")[0] == 0


def test_real_orders_match_source_amounts_and_local_times(real_import):
    _, _, con = real_import
    mismatches = _one(
        con,
        """
        with expected as (
            select
                InvoiceNo as order_id,
                any_value(CustomerID)::bigint::varchar as customer_id,
                round(sum(abs(Quantity) * UnitPrice), 3) as total,
                -- UK summer time in 2011 ran from 27 March to 30 October; the shop trades
                -- 6:00-21:00, never inside a clock change.
                strftime(min(InvoiceDate), '%Y-%m-%dT%H:%M:%S')
                    || case
                        when min(InvoiceDate) between '2011-03-27' and '2011-10-30'
                            then '+01:00' else '+00:00'
                    end as ordered_at,
                case when bool_or(is_cancellation) then 'cancelled' else 'fulfilled' end
                    as status,
                any_value(Country) as country
            from kept
            group by InvoiceNo
        )
        select count(*) from expected e
        full join landed_orders o using (order_id)
        where o.order_id is null or e.order_id is null
            or o.customer_id <> e.customer_id
            or o.total_amount::decimal(18, 3) <> e.total
            or o.ordered_at <> e.ordered_at
            or o.updated_at <> e.ordered_at
            or o.status <> e.status
            or o.shipping_country <> e.country
            or o.currency <> 'GBP'
            or o.fulfillment_type <> 'physical'
        """,
    )[0]
    assert mismatches == 0
    # Line quantities are positive everywhere, credit notes included.
    assert _one(con, "select min(quantity::integer) from landed_order_lines")[0] > 0


def test_real_products_take_customer_sale_prices(real_import):
    _, _, con = real_import
    expected = con.execute(
        """
        select StockCode, quantile_disc(UnitPrice, 0.5)
        from kept
        where not is_cancellation and Quantity > 0 and UnitPrice > 0
            and StockCode in ('85123A', '22423', 'POST')
        group by 1 order by 1
        """
    ).fetchall()
    landed = con.execute(
        "select product_id, price::double from landed_products "
        "where product_id in ('85123A', '22423', 'POST') order by 1"
    ).fetchall()
    assert landed == expected
    assert _one(con, "select title from landed_products where product_id = '85123A'") == (
        "WHITE HANGING HEART T-LIGHT HOLDER",
    )
