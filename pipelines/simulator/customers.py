"""Customer rows as the shop exports them: at sign-up, and again when a customer edits a detail."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.simulator.clock import DAY, Clock, iso_text, styles
from pipelines.simulator.geography import PLACES, ZONES
from pipelines.simulator.people import Customers, format_phones, make_emails
from pipelines.simulator.tables import latest_per_day, pick, table, within_window

UPDATE_SHARE = 0.03  # customers who later change their email, phone format or time zone


def customer_table(
    customers: Customers, clock: Clock, rng: np.random.Generator
) -> tuple[pl.DataFrame, int]:
    """The customers entity and the number of late updates in it."""
    n = customers.n
    style = styles(rng, n, z=0.3, utc=0.3, local=0.4)
    created_day = clock.export_day(customers.created)
    can_update = created_day < clock.days - 1
    updated = np.flatnonzero(can_update & (rng.random(n) < UPDATE_SHARE))
    update_day = rng.integers(created_day[updated] + 1, clock.days)
    update_t = clock.t0 + update_day * DAY + rng.integers(0, DAY, size=len(updated))
    kind = rng.integers(0, 3, size=len(updated))  # 0 email, 1 phone format, 2 time zone

    zone_name = pick(ZONES, customers.zone)
    timezone = pl.select(pl.when(pl.Series(customers.timezone_given)).then(zone_name)).to_series()
    row = np.concatenate([np.arange(n), updated])
    is_update = np.r_[np.zeros(n, dtype=bool), np.ones(len(updated), dtype=bool)]

    new_email = make_emails(rng, customers.first_name.gather(updated))
    restyled = format_phones(
        customers.area_code[updated],
        customers.line[updated],
        (customers.phone_style[updated] + 1 + rng.integers(0, 4, len(updated))) % 6,
    )
    # An invalid number stays as typed: only a valid one can be re-spelled.
    reformat = (kind == 1) & customers.phone_valid[updated]
    tail = pl.DataFrame(
        {
            "email": customers.email.gather(updated),
            "new_email": new_email,
            "phone": customers.phone.gather(updated),
            "restyled": restyled,
            "tz": timezone.gather(updated),
            "zone": zone_name.gather(updated),
            "kind": kind,
            "reformat": reformat,
        }
    ).select(
        email=pl.when(pl.col("kind") == 0).then("new_email").otherwise("email"),
        phone=pl.when("reformat").then("restyled").otherwise("phone"),
        tz=pl.when(pl.col("kind") == 2).then("zone").otherwise("tz"),
    )
    email = pl.concat([customers.email, tail["email"]])
    phone = pl.concat([customers.phone, tail["phone"]])
    tz = pl.concat([timezone, tail["tz"]])

    version_t = np.concatenate([customers.created, update_t])
    zone = customers.zone[row]
    created = customers.created[row]
    frame = table(
        "customers",
        {
            "customer_id": customers.ids.gather(row),
            "first_name": customers.first_name.gather(row),
            "phone": phone,
            "email": email,
            "created_at": iso_text(created, style[row], clock.offset(zone, created)),
            "postal_code": customers.postal_code.gather(row),
            "region": pick([p.region for p in PLACES], customers.place[row]),
            "country": "US",
            "timezone": tz,
            "updated_at": iso_text(version_t, style[row], clock.offset(zone, version_t)),
        },
        t=version_t,
        tie=row * 2 + is_update,
    )
    frame = latest_per_day(within_window(frame, clock), "customer_id")
    first_day = pl.col("_day").min().over("customer_id")
    return frame, frame.filter(pl.col("_day") > first_day).height
