"""Import the UCI "Online Retail" invoice log as canonical landing files.

The log is one row per invoice line of a UK gift-ware retailer (GBP, 2010-12-01..2011-12-09).
Each row is classified as what it is before anything is written:

- a sale line of an invoice with a customer id lands as an order line;
- a line of a ``C`` invoice (a credit note) lands too, with its quantity made positive, under an
  order with status ``cancelled``, so the cadence model can leave it out;
- a negative price (bad-debt write-off) or a non-positive quantity outside a credit note (stock
  adjustment: damaged, lost, found, ...) is not a purchase and is skipped;
- a line without a customer id cannot be tied to anyone and is skipped.

Skipped lines are counted by reason in the returned summary (and a JSON report), so the source's
line count always equals the lines written plus the lines skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from pipelines.landing import ENTITIES, write_landing_file

SOURCE_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
# InvoiceDate is the shop's wall clock in the UK.
SOURCE_TIMEZONE = "Europe/London"
CURRENCY = "GBP"
FILE_NAME = "online_retail"
FILE_FORMAT = "parquet"
CANCELLATION_PREFIX = "C"

# Exclusive, checked in this order: a line is skipped for the first reason that applies. What a
# line *is* (a write-off, an adjustment) comes before whether it has a customer, so the summary
# says why a line is not a purchase rather than only that nobody can be texted about it.
SKIP_REASONS = ("missing_field", "negative_price", "non_positive_quantity", "no_customer_id")

# Stock codes that are not merchandise. Flows must not ask for a review of "POSTAGE", so these
# get a crude category; real products keep a null category (the source has none).
_NON_MERCHANDISE = {
    "POST": "shipping",
    "DOT": "shipping",
    "C2": "shipping",
    "BANK CHARGES": "fee",
    "AMAZONFEE": "fee",
    "CRUK": "fee",
    "M": "adjustment",
    "D": "adjustment",
    "S": "adjustment",
    "B": "adjustment",
}
_GIFT_VOUCHER_PREFIX = "GIFT_"

# Landing order within a day: referenced records before the records that reference them.
_ENTITY_ORDER = ("customers", "products", "orders", "order_lines")
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%:z"


@dataclass(frozen=True)
class ImportSummary:
    """What one import read, wrote and skipped. ``lines_in == lines_written + lines_skipped``."""

    source: str
    lines_in: int
    invoices_in: int
    orders: int
    cancelled_orders: int
    lines_written: int
    customers: int
    products: int
    skipped_lines: dict[str, int]
    # All source lines without a customer id, whatever else they are (they overlap the
    # write-off and adjustment reasons above), and the invoices they belong to.
    lines_without_customer: int
    invoices_without_customer: int
    days_written: int
    first_day: str | None
    last_day: str | None
    report_path: str | None = None

    @property
    def orders_written(self) -> int:
        return self.orders + self.cancelled_orders

    @property
    def lines_skipped(self) -> int:
        return sum(self.skipped_lines.values())


def import_online_retail(
    path: Path, out: Path, *, progress: Callable[[int, int], None] | None = None
) -> ImportSummary:
    """Convert the Online Retail parquet at ``path`` into landing files under ``out``.

    Writes customers, products, orders and order_lines partitioned by the invoice's UK day,
    one ``online_retail.parquet`` per entity and day (re-running rewrites the same files), and
    a JSON report next to the landing root at ``<out>/../imports/online_retail.json``.
    ``progress(done, total)`` is called after each day is written.
    """
    path, out = Path(path), Path(out)
    source = _read_source(path)
    lines = _classify(source)
    kept = lines.filter(pl.col("skip_reason").is_null()).with_columns(
        # An invoice keyed in across a minute boundary has several times; the order is placed
        # at the first, and all its lines land on that day.
        ordered_at=pl.col("ts").min().over("InvoiceNo"),
    )

    orders = _orders(kept)
    frames = {
        "customers": _customers(orders),
        "products": _products(kept),
        "orders": orders,
        "order_lines": _order_lines(kept),
    }
    days = sorted(set().union(*(f.get_column("day").unique().to_list() for f in frames.values())))
    parts = {
        name: frame.partition_by("day", as_dict=True, include_key=False)
        for name, frame in frames.items()
    }
    for done, day in enumerate(days, start=1):
        for name in _ENTITY_ORDER:
            part = parts[name].get((day,))
            if part is not None:
                write_landing_file(_conform(part, name), out, name, day, FILE_NAME, FILE_FORMAT)
        if progress is not None:
            progress(done, len(days))

    skipped = lines.get_column("skip_reason").drop_nulls().value_counts()
    skipped_counts = dict.fromkeys(SKIP_REASONS, 0)
    skipped_counts.update(dict(skipped.iter_rows()))
    no_customer = lines.filter(pl.col("CustomerID").is_null())
    cancelled = orders.get_column("status").eq("cancelled").sum()
    summary = ImportSummary(
        source=str(path),
        lines_in=lines.height,
        invoices_in=lines.get_column("InvoiceNo").n_unique(),
        orders=orders.height - cancelled,
        cancelled_orders=cancelled,
        lines_written=kept.height,
        customers=frames["customers"].height,
        products=frames["products"].height,
        skipped_lines=skipped_counts,
        lines_without_customer=no_customer.height,
        invoices_without_customer=no_customer.get_column("InvoiceNo").n_unique(),
        days_written=len(days),
        first_day=days[0].isoformat() if days else None,
        last_day=days[-1].isoformat() if days else None,
        report_path=str(out.parent / "imports" / f"{FILE_NAME}.json"),
    )
    if summary.lines_in != summary.lines_written + summary.lines_skipped:
        raise RuntimeError(f"online retail import lost lines: {summary}")
    _write_report(summary, Path(summary.report_path))
    return summary


def _read_source(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"online retail file not found: {path}")
    schema = pl.read_parquet_schema(path)
    missing = [c for c in SOURCE_COLUMNS if c not in schema]
    if missing:
        raise ValueError(f"{path} is not the Online Retail log: missing columns {missing}")
    frame = pl.read_parquet(path, columns=list(SOURCE_COLUMNS)).with_row_index("source_row")
    date = pl.col("InvoiceDate")
    if frame.schema["InvoiceDate"] == pl.String:
        date = date.str.to_datetime()
    date_type = frame.select(date).dtypes[0]
    if isinstance(date_type, pl.Datetime) and date_type.time_zone is not None:
        ts = date.dt.convert_time_zone(SOURCE_TIMEZONE)
    else:
        # Shop hours are 6:00-21:00, far from the 1:00-2:00 clock changes, so an ambiguous or
        # missing local time would mean corrupt data: fail loudly rather than guess.
        ts = date.dt.replace_time_zone(SOURCE_TIMEZONE, ambiguous="raise", non_existent="raise")
    return frame.with_columns(
        ts=ts,
        Quantity=pl.col("Quantity").cast(pl.Int64),
        # Prices go down to £0.001, so money is kept as integer thousandths of a pound: sums
        # are exact and nothing is written as 15.299999999.
        price_mils=(pl.col("UnitPrice").cast(pl.Float64) * 1000).round().cast(pl.Int64),
        CustomerID=pl.col("CustomerID").cast(pl.Int64).cast(pl.String),
        Description=pl.col("Description").str.strip_chars(),
    )


def _classify(source: pl.DataFrame) -> pl.DataFrame:
    """Add ``is_cancellation``, the 1-based ``line_no`` within the invoice and ``skip_reason``."""
    is_cancellation = pl.col("InvoiceNo").str.starts_with(CANCELLATION_PREFIX)
    missing = pl.any_horizontal(
        pl.col(c).is_null() for c in ("InvoiceNo", "StockCode", "Quantity", "ts", "price_mils")
    )
    reason = (
        pl.when(missing)
        .then(pl.lit("missing_field"))
        .when(pl.col("price_mils") < 0)
        .then(pl.lit("negative_price"))
        .when(~is_cancellation & (pl.col("Quantity") <= 0))
        .then(pl.lit("non_positive_quantity"))
        .when(pl.col("CustomerID").is_null())
        .then(pl.lit("no_customer_id"))
    )
    return source.with_columns(
        is_cancellation=is_cancellation,
        # Position among all the invoice's source lines, in file order: identical duplicate
        # lines stay distinct, and a landed line can be traced back to its source row.
        line_no=pl.int_range(1, pl.len() + 1).over("InvoiceNo"),
        skip_reason=reason,
    )


def _orders(kept: pl.DataFrame) -> pl.DataFrame:
    return (
        kept.group_by("InvoiceNo", maintain_order=True)
        .agg(
            customer_id=pl.col("CustomerID").first(),
            ordered_at=pl.col("ordered_at").first(),
            total_mils=(pl.col("Quantity").abs() * pl.col("price_mils")).sum(),
            shipping_country=pl.col("Country").first(),
            is_cancellation=pl.col("is_cancellation").first(),
        )
        .select(
            order_id=pl.col("InvoiceNo"),
            customer_id="customer_id",
            ordered_at=_timestamp(pl.col("ordered_at")),
            currency=pl.lit(CURRENCY),
            total_amount=_money(pl.col("total_mils")),
            fulfillment_type=pl.lit("physical"),
            shipping_country="shipping_country",
            status=pl.when("is_cancellation")
            .then(pl.lit("cancelled"))
            .otherwise(pl.lit("fulfilled")),
            # The log has one version of each invoice: it was last changed when it was placed.
            updated_at=_timestamp(pl.col("ordered_at")),
            day=pl.col("ordered_at").dt.date(),
        )
    )


def _order_lines(kept: pl.DataFrame) -> pl.DataFrame:
    return kept.select(
        order_id="InvoiceNo",
        line_id=pl.col("line_no").cast(pl.String),
        product_id="StockCode",
        quantity=pl.col("Quantity").abs(),
        unit_price=_money(pl.col("price_mils")),
        day=pl.col("ordered_at").dt.date(),
    )


def _customers(orders: pl.DataFrame) -> pl.DataFrame:
    """One customer per id, created at their first invoice (a credit note counts)."""
    return (
        orders.sort(["ordered_at", "order_id"])
        .group_by("customer_id", maintain_order=True)
        .agg(
            created_at=pl.col("ordered_at").first(),
            # A few customers ordered from several countries; the first one describes them
            # when they became a customer.
            country=pl.col("shipping_country").first(),
            day=pl.col("day").first(),
        )
        .with_columns(updated_at=pl.col("created_at"))
    )


def _products(kept: pl.DataFrame) -> pl.DataFrame:
    """One product per stock code that lands, from the lines that land.

    Lines without a customer are left out on purpose: they are mostly another channel whose
    prices run about twice the account prices, and would skew the median.
    """
    first_seen = kept.group_by("StockCode").agg(
        first_seen=pl.col("ordered_at").min(), first_row=pl.col("source_row").min()
    )
    # Most common description; ties go to the one seen first in the file.
    titles = (
        kept.filter(pl.col("Description").is_not_null() & (pl.col("Description") != ""))
        .group_by("StockCode", "Description")
        .agg(n=pl.len(), first_row=pl.col("source_row").min())
        .sort(["StockCode", "n", "first_row"], descending=[False, True, False])
        .unique("StockCode", keep="first")
        .select("StockCode", title="Description")
    )
    # A lower median is a price the shop actually charged. A zero price is a giveaway and a
    # credit note is not a sale, so neither sets the price.
    prices = (
        kept.filter(
            ~pl.col("is_cancellation") & (pl.col("Quantity") > 0) & (pl.col("price_mils") > 0)
        )
        .group_by("StockCode")
        .agg(price_mils=pl.col("price_mils").quantile(0.5, interpolation="lower"))
    )
    code = pl.col("product_id").str.to_uppercase()
    return (
        first_seen.join(titles, on="StockCode", how="left")
        .join(prices, on="StockCode", how="left")
        .sort("first_row")
        .select(
            product_id="StockCode",
            title=pl.coalesce("title", "StockCode"),
            price=_money(pl.col("price_mils").cast(pl.Int64)),
            currency=pl.lit(CURRENCY),
            is_consumable=pl.lit("false"),
            needs_setup=pl.lit("false"),
            updated_at=_timestamp(pl.col("first_seen")),
            day=pl.col("first_seen").dt.date(),
        )
        .with_columns(
            category=pl.when(code.str.starts_with(_GIFT_VOUCHER_PREFIX))
            .then(pl.lit("gift_voucher"))
            .otherwise(code.replace_strict(_NON_MERCHANDISE, default=None, return_dtype=pl.String))
        )
    )


def _conform(frame: pl.DataFrame, entity: str) -> pl.DataFrame:
    """Every contract column, in contract order, as text (the ingest types them)."""
    columns = ENTITIES[entity].column_names
    extra = set(frame.columns) - set(columns)
    if extra:
        raise ValueError(f"{entity}: columns outside the landing contract: {sorted(extra)}")
    return frame.select(
        (pl.col(c) if c in frame.columns else pl.lit(None)).cast(pl.String).alias(c)
        for c in columns
    )


def _timestamp(expr: pl.Expr) -> pl.Expr:
    return expr.dt.to_string(_TIMESTAMP_FORMAT)


def _money(mils: pl.Expr) -> pl.Expr:
    """Integer thousandths as a decimal string: 2550 -> "2.55", 1 -> "0.001", 15000 -> "15.00"."""
    magnitude = mils.abs()
    fraction = (magnitude % 1000).cast(pl.String).str.zfill(3)
    fraction = pl.when(fraction.str.ends_with("0")).then(fraction.str.head(2)).otherwise(fraction)
    sign = pl.when(mils < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.concat_str([sign, (magnitude // 1000).cast(pl.String), pl.lit("."), fraction])


def _write_report(summary: ImportSummary, target: Path) -> None:
    """The summary as JSON, written aside and renamed like the landing files."""
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = asdict(summary) | {
        "orders_written": summary.orders_written,
        "lines_skipped": summary.lines_skipped,
    }
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(target)
