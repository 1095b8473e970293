"""What the simulated shop sells, at what price, and how fast each consumable runs out.

``usage_days`` is what the shop publishes (and sometimes leaves blank); ``true_days`` is how
long one unit lasts the average customer, which the cadence model has to learn from orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.simulator.clock import DAY, HOUR, Clock, iso_text, styles
from pipelines.simulator.tables import money_text, table, within_window

SETUP_BASE = "https://example.com/setup/"


@dataclass(frozen=True)
class Product:
    product_id: str
    title: str
    category: str
    price_cents: int
    popularity: float
    true_days: float | None = None  # set for consumables: mean days one unit lasts
    usage_days: int | None = None
    needs_setup: bool = False
    review_delay_days: int | None = None
    setup_slug: str | None = None
    digital: bool = False

    @property
    def is_consumable(self) -> bool:
        return self.true_days is not None

    @property
    def setup_url(self) -> str | None:
        return SETUP_BASE + self.setup_slug if self.setup_slug else None


def _c(
    pid: str,
    title: str,
    category: str,
    price: int,
    popularity: float,
    true_days: float,
    usage_days: int | None,
    review: int | None = None,
) -> Product:
    """A consumable."""
    return Product(pid, title, category, price, popularity, true_days, usage_days, False, review)


CATALOG: tuple[Product, ...] = (
    _c("P101", "House Blend Coffee Beans, 12 oz", "coffee", 1600, 3.0, 14, 14, 5),
    _c("P102", "Decaf Colombia Coffee Beans, 12 oz", "coffee", 1700, 1.0, 18, None, 5),
    _c("P103", "Cold Brew Concentrate, 32 oz", "coffee", 1450, 1.2, 10, 10),
    _c("P104", "Earl Grey Loose Leaf Tea, 100 g", "tea", 1200, 1.0, 30, 30),
    _c("P111", "Daily Multivitamin, 60 ct", "vitamins", 2400, 2.0, 30, 30),
    _c("P112", "Vitamin D3 + K2, 90 ct", "vitamins", 1800, 1.2, 90, 90),
    _c("P113", "Omega-3 Fish Oil, 120 ct", "vitamins", 2900, 1.0, 60, 60),
    _c("P114", "Magnesium Glycinate, 120 ct", "vitamins", 2200, 0.8, 40, None),
    _c("P121", "Grain-Free Dog Food, 12 lb", "pet food", 5400, 2.0, 21, 21),
    _c("P122", "Salmon Pate Cat Food, 24 cans", "pet food", 3800, 1.4, 12, 12),
    _c("P123", "Dental Chews for Dogs, 30 ct", "pet food", 1900, 1.0, 30, 30),
    _c("P124", "Clumping Cat Litter, 20 lb", "pet supplies", 2400, 1.0, 24, None),
    _c("P131", "Vitamin C Brightening Serum, 30 ml", "skincare", 3800, 1.5, 45, 45, 21),
    _c("P132", "Daily Moisturizer SPF 30, 50 ml", "skincare", 3200, 1.3, 40, 40, 14),
    _c("P133", "Retinol Night Cream, 50 ml", "skincare", 4500, 0.8, 60, None, 21),
    _c("P134", "Gentle Foaming Cleanser, 150 ml", "skincare", 2200, 1.0, 50, 50, 14),
    _c("P141", "Razor Blade Refills, 8 ct", "shaving", 2000, 1.6, 40, 40),
    _c("P142", "Shave Gel, 7 oz", "shaving", 900, 0.8, 30, 30),
    _c("P151", "Dishwasher Pods, 60 ct", "household", 1700, 1.2, 45, 45),
    _c("P152", "Laundry Detergent Sheets, 64 ct", "household", 1900, 1.0, 50, 50),
    _c("P153", "Refrigerator Water Filter", "household", 3900, 0.6, 150, 180),
    _c("P161", "Whitening Toothpaste, 2-pack", "oral care", 1100, 1.0, 55, 60),
    _c("P162", "Sonic Toothbrush Heads, 4-pack", "oral care", 2400, 0.8, 130, 120),
    _c("P171", "Whey Protein, Vanilla, 2 lb", "nutrition", 3900, 1.2, 26, 28),
    _c("P181", "Diapers Size 3, 120 ct", "baby", 4400, 0.9, 18, 20),
    Product("P201", "Merino Crew Socks, 3-pack", "apparel", 2800, 1.2, review_delay_days=7),
    Product("P202", "Organic Cotton Tee", "apparel", 3200, 1.0, review_delay_days=7),
    Product("P203", "Packable Rain Jacket", "apparel", 8900, 0.6, review_delay_days=10),
    Product("P204", "Running Shorts", "apparel", 4500, 0.7, review_delay_days=7),
    Product(
        "P211",
        "Smart Coffee Scale",
        "electronics",
        7900,
        0.5,
        needs_setup=True,
        review_delay_days=10,
        setup_slug="smart-coffee-scale",
    ),
    Product(
        "P212",
        "Wi-Fi Pet Feeder",
        "electronics",
        12900,
        0.5,
        needs_setup=True,
        review_delay_days=10,
        setup_slug="wifi-pet-feeder",
    ),
    Product(
        "P213",
        "Sonic Toothbrush",
        "electronics",
        9900,
        0.5,
        needs_setup=True,
        review_delay_days=14,
        setup_slug="sonic-toothbrush",
    ),
    Product("P221", "Ceramic Pour-Over Dripper", "kitchen", 2500, 0.6),
    Product("P222", "Insulated Travel Tumbler", "kitchen", 3000, 0.7),
    Product("P223", "Stainless Steel Dog Bowl Set", "pet supplies", 2400, 0.5),
    Product("P231", "Digital Gift Card, $25", "gift cards", 2500, 0.6, digital=True),
    Product("P232", "Digital Gift Card, $50", "gift cards", 5000, 0.5, digital=True),
    Product("P233", "Digital Gift Card, $100", "gift cards", 10000, 0.3, digital=True),
    Product("P241", "E-book: The Home Barista Handbook", "e-books", 999, 0.4, digital=True),
    Product("P242", "E-book: Skin Science, Simplified", "e-books", 1299, 0.4, digital=True),
)

PRICE_CHANGES = 3


@dataclass(frozen=True)
class Prices:
    """Each product's price over time: a base price and at most one change."""

    base: np.ndarray  # cents
    changed_at: np.ndarray  # UTC seconds; far future when the price never changes
    new: np.ndarray  # cents after the change

    def at(self, product: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.where(t >= self.changed_at[product], self.new[product], self.base[product])


def make_prices(clock: Clock, rng: np.random.Generator) -> Prices:
    base = np.array([p.price_cents for p in CATALOG], dtype=np.int64)
    changed_at = np.full(len(CATALOG), np.iinfo(np.int64).max, dtype=np.int64)
    new = base.copy()
    if clock.days >= 2:
        # A mid-window price rise on a few consumables, published as a new product row.
        consumables = np.flatnonzero([p.is_consumable and not p.digital for p in CATALOG])
        chosen = np.sort(rng.choice(consumables, size=PRICE_CHANGES, replace=False))
        day = clock.days // 2
        changed_at[chosen] = clock.t0 + day * DAY + rng.integers(6 * HOUR, 10 * HOUR, PRICE_CHANGES)
        rise = 1 + rng.uniform(0.05, 0.12, size=PRICE_CHANGES)
        # Round to a price tag ending in .00 or .50.
        new[chosen] = (np.round(base[chosen] * rise / 50) * 50).astype(np.int64)
    return Prices(base, changed_at, new)


# Spreadsheets and shop tools spell booleans every way the contract allows.
BOOLEAN_SPELLINGS = (
    ("true", "false"),
    ("TRUE", "FALSE"),
    ("1", "0"),
    ("yes", "no"),
    ("True", "False"),
)


def product_table(prices: Prices, clock: Clock, rng: np.random.Generator) -> pl.DataFrame:
    """The catalog on day 0 (last edited some time ago) and a new row for each price change."""
    n = len(CATALOG)
    changed = np.flatnonzero(prices.changed_at < clock.t_end)
    row = np.concatenate([np.arange(n), changed])
    edited = clock.t0 - rng.integers(10 * DAY, 200 * DAY, size=n)
    t = np.concatenate([edited, prices.changed_at[changed]])
    price = np.concatenate([prices.base, prices.new[changed]])
    spelling = rng.integers(0, len(BOOLEAN_SPELLINGS), size=len(row))

    def flag(values: list[bool]) -> pl.Series:
        truth = np.array(values)[row]
        return pl.Series(
            [BOOLEAN_SPELLINGS[s][0 if v else 1] for s, v in zip(spelling, truth, strict=True)],
            dtype=pl.String,
        )

    def optional(values: list[object]) -> pl.Series:
        return pl.Series(
            [None if values[r] is None else str(values[r]) for r in row], dtype=pl.String
        )

    style = styles(rng, len(row), z=0.5, utc=0.5, local=0.0)
    frame = table(
        "products",
        {
            "product_id": pl.Series([CATALOG[r].product_id for r in row]),
            "title": pl.Series([CATALOG[r].title for r in row]),
            "category": pl.Series([CATALOG[r].category for r in row]),
            "price": money_text(price),
            "currency": "USD",
            "is_consumable": flag([p.is_consumable for p in CATALOG]),
            "usage_days": optional([p.usage_days for p in CATALOG]),
            "needs_setup": flag([p.needs_setup for p in CATALOG]),
            "review_delay_days": optional([p.review_delay_days for p in CATALOG]),
            "setup_url": optional([p.setup_url for p in CATALOG]),
            "updated_at": iso_text(t, style, np.zeros(len(row), dtype=np.int64)),
        },
        t=t,
        tie=row,
    )
    return within_window(frame, clock)
