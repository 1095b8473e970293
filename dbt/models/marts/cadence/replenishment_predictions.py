"""Per customer and product: the predicted run-out and the chance of a purchase this week.

The scoring is pipelines.cadence.predict, the same function `postpurchase backtest` judges,
so what the pipeline sends on is exactly what was measured.
"""

import datetime as dt

import polars as pl

from pipelines.cadence import predict


def model(dbt, session):
    dbt.config(materialized="table")
    as_of = dt.datetime.fromisoformat(dbt.config.get("as_of")).date()
    events = (
        dbt.ref("int_purchase_days_aggregated")
        .pl()
        .select("customer_id", "product_id", pl.col("purchase_date").alias("day"), "quantity")
    )
    products = dbt.ref("stg_shop__products").pl()
    predictions = predict(events, products.select("product_id", "usage_days"), as_of)
    return predictions.join(
        products.select("product_id", "title", "category", "is_consumable", "usage_days"),
        on="product_id",
        how="left",
    ).with_columns(pl.lit(as_of).alias("as_of_date"))
