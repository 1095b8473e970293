"""SMS consent events: what each customer agreed to at checkout, and how that changed.

A fifth of customers never agreed to texts, some only to transactional ones, half also to
marketing. Consents collected before the window arrive as the old tool's import; STOP and
START keywords from the SMS history change them; during the window customers opt out in
their account or opt in through a sign-up pop-up.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.simulator.clock import Clock, iso_text, styles
from pipelines.simulator.legacy_sms import LegacySms
from pipelines.simulator.people import Customers
from pipelines.simulator.tables import pick, table, within_window

NONE, TRANSACTIONAL, MARKETING = range(3)  # profiles; MARKETING includes transactional
PROFILE_P = (0.2, 0.3, 0.5)
ACCOUNT_OPT_OUTS_PER_YEAR = 0.25  # marketing opt-outs per consented customer
POPUP_OPT_INS_PER_YEAR = 0.15

SOURCES = ("checkout", "import", "keyword", "account", "popup")
CHECKOUT, IMPORT, KEYWORD, ACCOUNT, POPUP = range(5)
SCOPES = ("transactional", "marketing")
STATUSES = ("opted_in", "opted_out")


def consent_profiles(customers: Customers, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Each customer's consent at sign-up and when it was given (a few seconds after)."""
    profile = rng.choice(3, size=customers.n, p=PROFILE_P)
    return profile, customers.created + rng.integers(5, 60, size=customers.n)


def _within(rng: np.random.Generator, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    return begin + (rng.random(len(begin)) * np.maximum(end - begin, 1)).astype(np.int64)


def consent_table(
    customers: Customers,
    profile: np.ndarray,
    consented_at: np.ndarray,
    legacy: LegacySms,
    clock: Clock,
    rng: np.random.Generator,
) -> pl.DataFrame:
    everyone = np.arange(customers.n)
    source = np.where(customers.created >= clock.t0, CHECKOUT, IMPORT)
    agreed = everyone[profile >= TRANSACTIONAL]
    marketing = everyone[profile == MARKETING]
    # rows: customer, scope, opted in?, source, moment
    parts = [
        (agreed, 0, True, source[agreed], consented_at[agreed]),
        (marketing, 1, True, source[marketing], consented_at[marketing] + 1),
    ]
    for scope in (0, 1):
        parts.append(
            (
                legacy.keyword_customer,
                scope,
                legacy.keyword_opt_in,
                np.full(len(legacy.keyword_customer), KEYWORD),
                legacy.keyword_t + 1 + scope,
            )
        )

    years = clock.days / 365
    begin = np.maximum(consented_at, clock.t0)
    stopped = np.zeros(customers.n, dtype=bool)
    stopped[legacy.keyword_customer] = True
    leaving = marketing[
        ~stopped[marketing]
        & (rng.random(len(marketing)) < 1 - np.exp(-ACCOUNT_OPT_OUTS_PER_YEAR * years))
    ]
    left_at = _within(rng, begin[leaving], np.full(len(leaving), clock.t_end))
    parts.append((leaving, 1, False, np.full(len(leaving), ACCOUNT), left_at))
    hesitant = everyone[profile < MARKETING]
    joining = hesitant[rng.random(len(hesitant)) < 1 - np.exp(-POPUP_OPT_INS_PER_YEAR * years)]
    joined_at = _within(rng, begin[joining], np.full(len(joining), clock.t_end))
    parts.append((joining, 1, True, np.full(len(joining), POPUP), joined_at))
    new_to_texts = joining[profile[joining] == NONE]
    joined_first = joined_at[profile[joining] == NONE] - 1
    parts.append((new_to_texts, 0, True, np.full(len(new_to_texts), POPUP), joined_first))

    customer = np.concatenate([p[0] for p in parts])
    scope = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
    opted_in = np.concatenate([np.broadcast_to(p[2], len(p[0])) for p in parts])
    src = np.concatenate([p[3] for p in parts])
    t = np.concatenate([p[4] for p in parts])
    t = strictly_increasing(customer, t)

    # Keyword events carry the number that texted; the rest the number on the account.
    keyword = src == KEYWORD
    phone = pl.select(
        pl.when(pl.Series(keyword))
        .then(customers.e164().gather(customer))
        .otherwise(customers.phone.gather(customer))
    ).to_series()
    zone = customers.zone[customer]
    style = styles(rng, len(t), z=0.5, utc=0.2, local=0.3)
    frame = table(
        "sms_consents",
        {
            "customer_id": customers.ids.gather(customer),
            "occurred_at": iso_text(t, style, clock.offset(zone, t)),
            "phone": phone,
            "status": pick(STATUSES, (~opted_in).astype(int)),
            "source": pick(SOURCES, src),
            "scope": pick(SCOPES, scope),
        },
        t=t,
        tie=customer * 2 + scope,
    )
    return within_window(frame, clock)


def strictly_increasing(customer: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Nudge moments by whole seconds so no customer has two events at the same second:
    (customer_id, occurred_at) is the entity's key."""
    order = np.lexsort((t, customer))
    c, s = customer[order], t[order]
    start = np.r_[True, c[1:] != c[:-1]]
    group = np.cumsum(start) - 1
    rank = np.arange(len(c)) - np.flatnonzero(start)[group]
    # t'[i] = rank + running max of (t - rank) within the customer's events.
    shifted = (
        pl.DataFrame({"g": group, "v": s - rank})
        .select(pl.col("v").cum_max().over("g"))["v"]
        .to_numpy()
    )
    out = np.empty_like(t)
    out[order] = shifted + rank
    return out
