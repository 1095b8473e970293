"""What the demo world knows about the person behind a number and the products they buy.

The truth files say who owns each phone, where they live, whether they have churned and which
products they have stopped using; the shop's own landing exports say each customer's address
and each product's price over time. Read once, lazily, and never written.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.ingest import read_landing_file, validate
from pipelines.landing import ENTITIES
from pipelines.simulator.catalog import CATALOG


@dataclass(frozen=True)
class Recipient:
    customer_id: str
    timezone: str
    churned_at: dt.datetime | None
    postal_code: str | None = None
    region: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Product:
    product_id: str
    title: str
    digital: bool
    # (valid from, price in cents), oldest first; the first applies before its date too.
    prices: tuple[tuple[dt.datetime, int], ...]

    def price_cents(self, at: dt.datetime) -> int:
        current = self.prices[0][1]
        for since, cents in self.prices:
            if since <= at:
                current = cents
        return current


def _landing_rows(landing: Path, entity: str) -> pl.DataFrame | None:
    """Every valid row the shop exported for `entity`, typed by the ingest's own rules."""
    files = sorted((landing / entity).glob("*/*.*"))
    frames = []
    for path in files:
        if path.name.startswith(".") or path.suffix not in (".csv", ".jsonl", ".parquet"):
            continue
        good, _ = validate(read_landing_file(path, ENTITIES[entity]), ENTITIES[entity])
        frames.append(good)
    return pl.concat(frames, how="diagonal_relaxed") if frames else None


def _catalogue(landing: Path) -> dict[str, Product]:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    versions: dict[str, list[tuple[dt.datetime, int]]] = {
        p.product_id: [(epoch, p.price_cents)] for p in CATALOG
    }
    titles = {p.product_id: p.title for p in CATALOG}
    rows = _landing_rows(landing, "products")
    if rows is not None:
        rows = rows.filter(pl.col("price").is_not_null()).sort("updated_at", nulls_last=False)
        for pid, title, price, at in rows.select(
            "product_id", "title", "price", "updated_at"
        ).iter_rows():
            # The shop's own price list wins over the built-in catalogue.
            history = versions.setdefault(pid, [])
            history[:] = [v for v in history if v[0] != epoch]
            history.append((at or epoch, round(price * 100)))
            titles[pid] = title or titles.get(pid, pid)
    digital = {p.product_id for p in CATALOG if p.digital}
    return {
        pid: Product(pid, titles[pid], pid in digital, tuple(sorted(v, key=lambda x: x[0])))
        for pid, v in versions.items()
        if v
    }


def _addresses(landing: Path) -> dict[str, tuple[str | None, str | None, str | None]]:
    rows = _landing_rows(landing, "customers")
    if rows is None:
        return {}
    latest = (
        rows.with_columns(_at=pl.coalesce("updated_at", "created_at"))
        .sort("_at", nulls_last=False)
        .unique("customer_id", keep="last")
    )
    return {
        cid: (postal, region, country)
        for cid, postal, region, country in latest.select(
            "customer_id", "postal_code", "region", "country"
        ).iter_rows()
    }


class WorldView:
    """Lookups over the truth and landing folders, loaded on first use (thread-safe)."""

    def __init__(self, truth_dir: Path, landing_dir: Path) -> None:
        self.truth_dir = Path(truth_dir)
        self.landing_dir = Path(landing_dir)
        self._lock = threading.Lock()
        self._loaded = False
        self._by_phone: dict[str, Recipient] = {}
        self._dropped: dict[tuple[str, str], dt.datetime] = {}
        self._products: dict[str, Product] = {}
        self._titles: dict[str, str] = {}

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            truth = pl.read_parquet(self.truth_dir / "customers.parquet")
            addresses = _addresses(self.landing_dir)
            # A number shared by two customers goes to the one who signed up first.
            truth = truth.filter(pl.col("phone_e164").is_not_null()).sort("customer_id")
            for cid, phone, zone, churned in truth.select(
                "customer_id", "phone_e164", "home_timezone", "churned_at"
            ).iter_rows():
                if phone not in self._by_phone:
                    self._by_phone[phone] = Recipient(
                        cid, zone, churned, *addresses.get(cid, (None, None, None))
                    )
            pairs = pl.read_parquet(self.truth_dir / "consumption.parquet").filter(
                pl.col("stop_reason") == "dropped product"
            )
            for cid, pid, at in pairs.select("customer_id", "product_id", "stopped_at").iter_rows():
                self._dropped[(cid, pid)] = at
            self._products = _catalogue(self.landing_dir)
            self._titles = {p.title: p.product_id for p in self._products.values()}
            self._loaded = True

    def recipient(self, phone: str) -> Recipient | None:
        self._load()
        return self._by_phone.get(phone)

    def titles(self) -> list[str]:
        self._load()
        return list(self._titles)

    def product_by_title(self, title: str) -> Product | None:
        self._load()
        pid = self._titles.get(title)
        if pid is None:
            lowered = {t.lower(): p for t, p in self._titles.items()}
            pid = lowered.get(title.lower())
        return self._products.get(pid) if pid else None

    def dropped_at(self, customer_id: str, product_id: str) -> dt.datetime | None:
        """When the customer stopped using the product for good, if they did."""
        self._load()
        return self._dropped.get((customer_id, product_id))
