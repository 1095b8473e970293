"""The simulated world's hidden truth, written next to (never inside) the landing folder.

``consumption.parquet`` holds each (customer, consumable) pair's true rate, for judging the
cadence model; ``customers.parquet`` each customer's true number and churn; ``planted.json``
the mess planted in the exports, for checking the ingest's rejects and deduplication.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.simulator.catalog import CATALOG
from pipelines.simulator.clock import Clock
from pipelines.simulator.people import Customers
from pipelines.simulator.purchases import NEVER, Pairs

STOP_REASONS = (None, "customer churned", "dropped product")


def _utc(t: np.ndarray) -> pl.Series:
    moments = pl.Series(np.where(t == NEVER, 0, t))
    stamped = pl.from_epoch(moments, time_unit="s").dt.replace_time_zone("UTC")
    return pl.select(pl.when(pl.Series(t != NEVER)).then(stamped)).to_series()


def consumption_frame(pairs: Pairs, customers: Customers) -> pl.DataFrame:
    product = pairs.product
    frame = pl.DataFrame(
        {
            "customer_id": customers.ids.gather(pairs.customer),
            "product_id": pl.Series([CATALOG[p].product_id for p in product.tolist()]),
            "category": pl.Series([CATALOG[p].category for p in product.tolist()]),
            "true_days_per_unit": pairs.days_per_unit,
            "true_daily_rate": 1.0 / pairs.days_per_unit,
            "product_mean_days_per_unit": np.array([CATALOG[p].true_days for p in product]),
            "published_usage_days": pl.Series(
                [CATALOG[p].usage_days for p in product.tolist()], dtype=pl.Int64
            ),
            "buys_in_bulk": pairs.multi_buyer,
            "first_purchase_at": _utc(pairs.first_at),
            "purchases": pairs.purchases,
            "stopped_at": _utc(pairs.stopped_at),
            "stop_reason": pl.Series(
                [STOP_REASONS[r] for r in pairs.stop_reason.tolist()], dtype=pl.String
            ),
        }
    )
    return frame.sort(["customer_id", "product_id"])


def customer_truth_frame(
    customers: Customers, consent_profile: np.ndarray, clock: Clock
) -> pl.DataFrame:
    churned = np.where(customers.churn_at < clock.t_end, customers.churn_at, NEVER)
    return pl.DataFrame(
        {
            "customer_id": customers.ids,
            "phone_e164": customers.e164(),
            "phone_valid": customers.phone_valid,
            "home_timezone": pl.Series([clock.zones[z] for z in customers.zone.tolist()]),
            "consent_at_signup": pl.Series(
                np.array(["none", "transactional", "marketing"])[consent_profile]
            ),
            "churned_at": _utc(churned),
        }
    )


def write_truth(
    truth_dir: Path,
    consumption: pl.DataFrame,
    customer_truth: pl.DataFrame,
    planted: dict,
) -> None:
    truth_dir.mkdir(parents=True, exist_ok=True)
    consumption.write_parquet(truth_dir / "consumption.parquet")
    customer_truth.write_parquet(truth_dir / "customers.parquet")
    text = json.dumps(planted, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (truth_dir / "planted.json").write_text(text, encoding="utf-8")
