"""What customers buy and when: consumables on each customer's own cadence, plus one-offs.

Each (customer, consumable) pair has a hidden ``days_per_unit`` drawn around the product's
mean. A pair buys ``q`` units, then comes back after about ``q * days_per_unit`` days (with
noise and the occasional late reorder), until it drops the product or the customer churns.
The process is simulated for all pairs at once, one purchase number per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.simulator.catalog import CATALOG, Prices
from pipelines.simulator.clock import DAY, HOUR, Clock
from pipelines.simulator.people import Customers

HISTORY_DAYS = 240  # order history the shop exports on day 0
NEVER = np.iinfo(np.int64).max

PAIRS_PER_CUSTOMER_P = (0.2, 0.45, 0.25, 0.1)  # 0..3 consumables per customer
RATE_SIGMA = 0.3  # spread of customers' days-per-unit around the product's mean
GAP_SIGMA = 0.22  # noise of one reorder gap around q * days_per_unit
LATE_REORDER_P = 0.1  # ran out and waited a while before reordering
MULTI_BUYER_P = 0.2  # pairs that habitually buy 2-3 units
NEXT_PRODUCT_MEAN_DAYS = 25  # a new customer's further consumables start this much later
ONE_OFFS_PER_YEAR = 1.2
ADD_ON_P = 0.06  # a consumable order that also picks up an accessory, gift card or e-book
# A customer about to reorder one product often adds another that would run out within days
# (buying it a little early), and sometimes places two orders anyway.
MERGE_GAP = 5 * DAY
MERGE_P = 0.6


@dataclass(frozen=True)
class Pairs:
    """The hidden truth of each (customer, consumable) pair that bought at least once."""

    customer: np.ndarray
    product: np.ndarray
    days_per_unit: np.ndarray
    multi_buyer: np.ndarray
    first_at: np.ndarray
    stopped_at: np.ndarray  # NEVER while still buying at the end of the window
    stop_reason: np.ndarray  # 0 still buying, 1 customer churned, 2 dropped the product
    purchases: np.ndarray


@dataclass(frozen=True)
class Orders:
    """Orders in time order (index = order number) and their lines."""

    customer: np.ndarray
    t: np.ndarray
    digital: np.ndarray
    total_cents: np.ndarray
    line_order: np.ndarray
    line_no: np.ndarray
    line_product: np.ndarray
    line_quantity: np.ndarray
    line_unit_cents: np.ndarray

    @property
    def n(self) -> int:
        return len(self.t)


def _quantities(rng: np.random.Generator, multi: np.ndarray) -> np.ndarray:
    single = rng.choice([1, 2], size=len(multi), p=[0.9, 0.1])
    bulk = rng.choice([1, 2, 3], size=len(multi), p=[0.15, 0.6, 0.25])
    return np.where(multi, bulk, single)


def _choose_pairs(customers: Customers, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    consumables = np.flatnonzero([p.is_consumable for p in CATALOG])
    popularity = np.array([CATALOG[i].popularity for i in consumables])
    count = rng.choice(len(PAIRS_PER_CUSTOMER_P), size=customers.n, p=PAIRS_PER_CUSTOMER_P)
    # Weighted sampling without replacement for every customer at once (Gumbel top-k).
    keys = np.log(popularity)[None, :] + rng.gumbel(size=(customers.n, len(consumables)))
    top = np.argsort(-keys, axis=1, kind="stable")[:, : len(PAIRS_PER_CUSTOMER_P) - 1]
    take = np.arange(top.shape[1])[None, :] < count[:, None]
    customer = np.broadcast_to(np.arange(customers.n)[:, None], top.shape)[take]
    rank = np.broadcast_to(np.arange(top.shape[1])[None, :], top.shape)[take]
    return customer, consumables[top[take]], rank


def _repeat_purchases(
    customers: Customers, clock: Clock, rng: np.random.Generator
) -> tuple[Pairs, tuple[np.ndarray, ...]]:
    customer, product, rank = _choose_pairs(customers, rng)
    n = len(customer)
    true_days = np.array([p.true_days or 0.0 for p in CATALOG])
    days_per_unit = true_days[product] * rng.lognormal(0.0, RATE_SIGMA, size=n)
    multi = rng.random(n) < MULTI_BUYER_P
    drop_hazard = rng.beta(1.5, 25.0, size=n)  # chance to drop the product after a purchase
    churn_at = customers.churn_at[customer]
    created = customers.created[customer]

    window_start = clock.t0 - HISTORY_DAYS * DAY
    q = _quantities(rng, multi)
    # Customers who signed up inside the history buy their first consumable at checkout and
    # discover others later; older customers are somewhere in their cycle when history begins.
    later = (rng.exponential(NEXT_PRODUCT_MEAN_DAYS, size=n) * DAY).astype(np.int64)
    phase = (rng.random(n) * days_per_unit * q * DAY).astype(np.int64)
    t = np.where(
        created >= window_start, created + np.where(rank == 0, 0, later), window_start + phase
    )

    stopped_at = np.full(n, NEVER, dtype=np.int64)
    reason = np.zeros(n, dtype=np.int8)
    count = np.zeros(n, dtype=np.int64)
    first_at = np.full(n, NEVER, dtype=np.int64)
    bought: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        ti = t[idx]
        past_end = ti >= clock.t_end
        churned = ~past_end & (ti >= churn_at[idx])
        stopped_at[idx[churned]] = churn_at[idx[churned]]
        reason[idx[churned]] = 1
        buy = idx[~past_end & ~churned]
        active[idx[past_end | churned]] = False
        if len(buy) == 0:
            break
        bought.append((buy, t[buy], q[buy]))
        count[buy] += 1
        first_at[buy] = np.minimum(first_at[buy], t[buy])

        noise = rng.lognormal(0.0, GAP_SIGMA, size=len(buy))
        late = np.where(rng.random(len(buy)) < LATE_REORDER_P, rng.uniform(1.2, 1.8, len(buy)), 1)
        gap = (days_per_unit[buy] * q[buy] * noise * late * DAY).astype(np.int64)
        t[buy] += gap
        q[buy] = _quantities(rng, multi[buy])

        # Dropping shows as a reorder that never comes: stopped when the last unit ran out.
        drop = buy[rng.random(len(buy)) < drop_hazard[buy]]
        drop = drop[t[drop] < churn_at[drop]]
        stopped_at[drop] = t[drop]
        reason[drop] = 2
        active[drop] = False

    stopped_at[stopped_at >= clock.t_end] = NEVER
    reason[stopped_at == NEVER] = 0
    keep = count > 0
    pairs = Pairs(
        customer=customer[keep],
        product=product[keep],
        days_per_unit=days_per_unit[keep],
        multi_buyer=multi[keep],
        first_at=first_at[keep],
        stopped_at=stopped_at[keep],
        stop_reason=reason[keep],
        purchases=count[keep],
    )
    if bought:
        pair_idx = np.concatenate([b[0] for b in bought])
        purchase = (
            customer[pair_idx],
            product[pair_idx],
            np.concatenate([b[1] for b in bought]),
            np.concatenate([b[2] for b in bought]),
        )
    else:
        empty = np.zeros(0, dtype=np.int64)
        purchase = (empty, empty, empty, empty)
    return pairs, purchase


def _one_offs(
    customers: Customers,
    has_pair: np.ndarray,
    repeats: tuple[np.ndarray, ...],
    clock: Clock,
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    others = np.flatnonzero([not p.is_consumable for p in CATALOG])
    popularity = np.array([CATALOG[i].popularity for i in others])
    window_start = clock.t0 - HISTORY_DAYS * DAY
    begin = np.maximum(customers.created, window_start)
    end = np.minimum(customers.churn_at, clock.t_end)
    span = np.maximum(end - begin, 0)
    rate = rng.gamma(0.8, ONE_OFFS_PER_YEAR / 0.8, size=customers.n)
    count = rng.poisson(rate * span / (365 * DAY))
    customer = np.repeat(np.arange(customers.n), count)
    t = begin[customer] + (rng.random(len(customer)) * span[customer]).astype(np.int64)
    # A customer who signed up inside the history did so at checkout: if no consumable was in
    # that first order, a one-off was.
    first = np.flatnonzero((customers.created >= window_start) & ~has_pair)
    add_on = rng.random(len(repeats[0])) < ADD_ON_P
    customer = np.concatenate([customer, first, repeats[0][add_on]])
    t = np.concatenate([t, customers.created[first], repeats[2][add_on]])
    product = others[rng.choice(len(others), size=len(customer), p=popularity / popularity.sum())]
    quantity = rng.choice([1, 2], size=len(customer), p=[0.92, 0.08])
    return customer, product, t, quantity


def _assemble_orders(
    purchase: tuple[np.ndarray, ...], prices: Prices, rng: np.random.Generator
) -> Orders:
    customer, product, t, quantity = purchase
    order = np.lexsort((product, t, customer))
    customer, product, t, quantity = customer[order], product[order], t[order], quantity[order]
    n = len(t)
    new = np.ones(n, dtype=bool)
    if n > 1:
        close = (customer[1:] == customer[:-1]) & (t[1:] - t[:-1] <= MERGE_GAP)
        together = (t[1:] - t[:-1] <= HOUR) | (rng.random(n - 1) < MERGE_P)
        new[1:] = ~(close & together)
    group = np.cumsum(new) - 1
    group_customer = customer[new]
    # Number orders in time order, the way a shop's order numbers grow.
    by_time = np.lexsort((group_customer, t[new]))
    number = np.empty_like(by_time)
    number[by_time] = np.arange(len(by_time))
    line_order = number[group]
    order_t = t[new][by_time]
    order_customer = group_customer[by_time]

    # One line per (order, product): two purchases of the same product share a line.
    key = line_order.astype(np.int64) * len(CATALOG) + product
    keys, inverse = np.unique(key, return_inverse=True)
    line_quantity = np.bincount(inverse, weights=quantity).astype(np.int64)
    line_order = keys // len(CATALOG)
    line_product = keys % len(CATALOG)
    line_unit = prices.at(line_product, order_t[line_order])
    starts = np.searchsorted(line_order, line_order, side="left")
    line_no = np.arange(len(keys)) - starts + 1

    n_orders = len(order_t)
    digital = np.array([p.digital for p in CATALOG])
    physical_lines = np.bincount(line_order, weights=~digital[line_product], minlength=n_orders)
    total = np.bincount(line_order, weights=line_quantity * line_unit, minlength=n_orders)
    return Orders(
        customer=order_customer,
        t=order_t,
        digital=physical_lines == 0,
        total_cents=np.rint(total).astype(np.int64),
        line_order=line_order,
        line_no=line_no,
        line_product=line_product,
        line_quantity=line_quantity,
        line_unit_cents=line_unit,
    )


def make_demand(
    customers: Customers, prices: Prices, clock: Clock, rng: np.random.Generator
) -> tuple[Pairs, Orders]:
    pairs, repeats = _repeat_purchases(customers, clock, rng)
    has_pair = np.zeros(customers.n, dtype=bool)
    has_pair[pairs.customer] = True
    one_offs = _one_offs(customers, has_pair, repeats, clock, rng)
    purchase = tuple(np.concatenate([a, b]) for a, b in zip(repeats, one_offs, strict=True))
    return pairs, _assemble_orders(purchase, prices, rng)
