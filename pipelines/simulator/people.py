"""The simulated customers: who they are, where they live, how they spell their phone numbers.

Every valid number uses the 555 exchange (``(415) 555-0142``). libphonenumber accepts these as
valid US mobile numbers (its own example number is 201-555-0123), and almost none of them ring a
real handset, so a demo world pointed at a real SMS provider by mistake texts nobody.

That leaves 9,900 lines per area code. Worlds up to about 130,000 customers draw from each
place's own codes, as they always have; larger ones from its overlays and neighbours too
(``pooled_numbers``), which hold about a million.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.simulator.clock import DAY, Clock
from pipelines.simulator.geography import MORE_AREA_CODES, PLACES, ZONES

_NAMES = """
Aaliyah Aaron Abigail Adrian Aiden Aisha Alejandro Alex Alexis Ali Alicia Amanda Amara Amir
Ana Andre Andrea Angela Anthony Arjun Ava Benjamin Bianca Brandon Brianna Caleb Camila
Carlos Carmen Charlotte Chloe Chris Daniel Darius David Destiny Diego Dmitri Elena Eli
Elijah Elizabeth Emily Emma Eric Ethan Evelyn Fatima Gabriel Grace Hannah Harper Hector
Hiroshi Imani Isabella Isaiah Jackson Jacob Jamal James Jasmine Javier Jennifer Jessica Jin
Jordan Jose Joseph Joshua Julia Julian Kai Kayla Keisha Kevin Khalil Kim Laura Layla Leah
Liam Lily Lucas Luis Luna Madison Malik Maria Mateo Maya Mei Mia Michael Michelle Mohammed
Natalie Nathan Nia Noah Nora Olivia Omar Paul Priya Rachel Rafael Raj Rebecca Ricardo Riley
Rosa Ryan Samantha Samuel Santiago Sara Sebastian Sofia Sophia Stephanie Sun Tanisha Taylor
Thomas Tiffany Tyler Valentina Victoria William Xavier Yasmin Zoe
"""
FIRST_NAMES = tuple(_NAMES.split())

EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")

# Local hour of day at which people check out: a lunch bump and an evening peak.
HOUR_WEIGHTS = np.array(
    [0.6, 0.3, 0.2, 0.15, 0.15, 0.3, 0.8, 1.6, 2.6, 3.2, 3.6, 4.0]
    + [4.6, 4.4, 4.0, 3.8, 3.8, 4.2, 4.8, 5.4, 5.8, 5.4, 3.6, 1.6]
)

PRE_EXISTING_SHARE = 0.5
MAX_AGE_DAYS = 730
MOVED_SHARE = 0.12  # customers whose area code belongs to another city than their address
INVALID_PHONE_SHARE = 0.012
TIMEZONE_GIVEN_SHARE = 0.3
NO_EMAIL_SHARE = 0.02
ZIP_PLUS_FOUR_SHARE = 0.05
MEAN_LIFETIME_DAYS = 540

PHONE_STYLES = 6  # "(415) 555-0142", "+1 415 555 0142", "415.555.0142", "14155550142", ...
LINE_LOW, LINE_HIGH = 100, 10_000  # 555-0100 .. 555-9999


@dataclass(frozen=True)
class Customers:
    created: np.ndarray  # UTC seconds, ascending: customer i is the i-th to sign up
    place: np.ndarray
    zone: np.ndarray
    area_code: np.ndarray
    line: np.ndarray
    phone_valid: np.ndarray
    phone_style: np.ndarray
    phone: pl.Series  # as the shop exports it
    postal_code: pl.Series
    first_name: pl.Series
    email: pl.Series
    timezone_given: np.ndarray
    churn_at: np.ndarray  # when the customer stops buying anything (may be past the window)

    @property
    def n(self) -> int:
        return len(self.created)

    @property
    def ids(self) -> pl.Series:
        return customer_ids(np.arange(self.n))

    def e164(self) -> pl.Series:
        """The number as Plivo reports it, null for the invalid ones."""
        text = pl.format("+1{}555{}", _s(self.area_code), _s(self.line).str.zfill(4))
        frame = pl.DataFrame({"a": self.area_code, "l": self.line, "v": self.phone_valid})
        return frame.select(pl.when(pl.col("v")).then(text)).to_series().alias("e164")


def _s(values: np.ndarray) -> pl.Expr:
    return pl.lit(pl.Series(values)).cast(pl.String)


def customer_ids(index: np.ndarray) -> pl.Series:
    digits = pl.Series(np.asarray(index) + 1).cast(pl.String).str.zfill(6)
    return pl.select(pl.format("C{}", pl.lit(digits))).to_series().alias("customer_id")


def local_times(
    clock: Clock, rng: np.random.Generator, zone: np.ndarray, local_day: np.ndarray
) -> np.ndarray:
    """UTC moments on the given local days, at hours people actually shop."""
    hours = rng.choice(24, size=len(zone), p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    seconds = hours * 3600 + rng.integers(0, 3600, size=len(zone))
    return clock.at_local(zone, local_day, seconds)


def format_phones(area: np.ndarray, line: np.ndarray, style: np.ndarray) -> pl.Series:
    frame = pl.DataFrame(
        {
            "a": pl.Series(area).cast(pl.String),
            "l": pl.Series(line).cast(pl.String).str.zfill(4),
            "s": style,
        }
    )
    a, ln, s = pl.col("a"), pl.col("l"), pl.col("s")
    expr = (
        pl.when(s == 0)
        .then(pl.format("({}) 555-{}", a, ln))
        .when(s == 1)
        .then(pl.format("+1 {} 555 {}", a, ln))
        .when(s == 2)
        .then(pl.format("{}.555.{}", a, ln))
        .when(s == 3)
        .then(pl.format("1{}555{}", a, ln))
        .when(s == 4)
        .then(pl.format("+1{}555{}", a, ln))
        .otherwise(pl.format("{}-555-{}", a, ln))
    )
    return frame.select(expr.alias("phone")).to_series()


def invalid_phones(area: np.ndarray, line: np.ndarray, kind: np.ndarray) -> pl.Series:
    """Typos a checkout form lets through: no area code, digits missing, an impossible area."""
    frame = pl.DataFrame(
        {
            "a": pl.Series(area).cast(pl.String),
            "l": pl.Series(line).cast(pl.String).str.zfill(4),
            "k": kind,
        }
    )
    a, ln, k = pl.col("a"), pl.col("l"), pl.col("k")
    expr = (
        pl.when(k == 0)
        .then(pl.format("555-{}", ln))
        .when(k == 1)
        .then(pl.format("({}) 555-{}", a, ln.str.slice(0, 2)))
        .otherwise(pl.format("(1{}) 555-{}", a.str.slice(1, 2), ln))
    )
    return frame.select(expr.alias("phone")).to_series()


def _lines_can_be_redrawn(area: np.ndarray) -> bool:
    """Whether ``_unique_lines`` can number these customers: no area code over half full, so
    redrawing the clashes settles quickly."""
    _, demand = np.unique(area, return_counts=True)
    return bool(demand.max() <= (LINE_HIGH - LINE_LOW) // 2)


def _unique_lines(rng: np.random.Generator, area: np.ndarray) -> np.ndarray:
    """A subscriber line per customer such that no two customers share a number."""
    if not _lines_can_be_redrawn(area):
        raise ValueError("too many customers for the simulated number pool; use fewer")
    line = rng.integers(LINE_LOW, LINE_HIGH, size=len(area))
    while True:
        number = area.astype(np.int64) * LINE_HIGH + line
        order = np.argsort(number, kind="stable")
        clash = np.zeros(len(area), dtype=bool)
        clash[order[1:]] = number[order[1:]] == number[order[:-1]]
        if not clash.any():
            return line
        line[clash] = rng.integers(LINE_LOW, LINE_HIGH, size=int(clash.sum()))


def pooled_numbers(
    rng: np.random.Generator, home_place: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Area code and line of each customer whose number belongs to ``home_place`` (a PLACES
    index), drawn without replacement from all of the place's codes, its own and its
    ``MORE_AREA_CODES``: no two customers share a number and every code can fill up."""
    lines = LINE_HIGH - LINE_LOW
    area = np.empty(len(home_place), dtype=np.int64)
    line = np.empty(len(home_place), dtype=np.int64)
    for p, place in enumerate(PLACES):
        who = np.flatnonzero(home_place == p)
        codes = np.array(place.area_codes + MORE_AREA_CODES.get(place.city, ()), dtype=np.int64)
        if len(who) > len(codes) * lines:
            raise ValueError(
                f"too many customers for the simulated number pool: {len(who)} numbers from "
                f"{place.city}, which has room for {len(codes) * lines}; use fewer customers"
            )
        number = rng.choice(len(codes) * lines, size=len(who), replace=False)
        area[who] = codes[number // lines]
        line[who] = LINE_LOW + number % lines
    return area, line


def _postal_codes(rng: np.random.Generator, place: np.ndarray) -> pl.Series:
    n = len(place)
    options = np.array(
        [[p.postal_codes[k % len(p.postal_codes)] for k in range(6)] for p in PLACES]
    )
    five = pl.Series(options[place, rng.integers(0, 6, size=n)])
    plus_four = pl.Series(rng.integers(1000, 10_000, size=n)).cast(pl.String)
    long_form = rng.random(n) < ZIP_PLUS_FOUR_SHARE
    return (
        pl.select(
            pl.when(pl.Series(long_form)).then(pl.format("{}-{}", five, plus_four)).otherwise(five)
        )
        .to_series()
        .alias("postal_code")
    )


def make_emails(rng: np.random.Generator, first: pl.Series) -> pl.Series:
    n = len(first)
    frame = pl.DataFrame(
        {
            "f": first.str.to_lowercase(),
            "i": np.array(list("abcdefghijklmnopqrstuvwxyz"))[rng.integers(0, 26, size=n)],
            "d": pl.Series(rng.integers(1, 10_000, size=n)).cast(pl.String),
            "p": rng.integers(0, 4, size=n),
            "dom": pl.Series(np.array(EMAIL_DOMAINS)[rng.integers(0, len(EMAIL_DOMAINS), n)]),
            "shout": rng.random(n) < 0.05,
            "none": rng.random(n) < NO_EMAIL_SHARE,
        }
    )
    f, d, dom = pl.col("f"), pl.col("d"), pl.col("dom")
    initial = pl.col("i")
    local = (
        pl.when(pl.col("p") == 0)
        .then(pl.format("{}{}", f, d))
        .when(pl.col("p") == 1)
        .then(pl.format("{}.{}", f, initial))
        .when(pl.col("p") == 2)
        .then(pl.format("{}_{}", f, d))
        .otherwise(pl.format("{}{}{}", initial, f, d))
    )
    email = pl.format("{}@{}", local, dom)
    # Some phones capitalize the first letter; the warehouse should lowercase addresses.
    capitalized = pl.concat_str(email.str.slice(0, 1).str.to_uppercase(), email.str.slice(1))
    email = pl.when(pl.col("shout")).then(capitalized).otherwise(email)
    return frame.select(pl.when(~pl.col("none")).then(email).alias("email")).to_series()


def make_customers(clock: Clock, rng: np.random.Generator, n: int) -> Customers:
    weights = np.array([p.weight for p in PLACES])
    place = rng.choice(len(PLACES), size=n, p=weights / weights.sum())
    zone_of_place = np.array([ZONES.index(p.zone) for p in PLACES])
    zone = zone_of_place[place]

    # Half the customers signed up before the window (over the past two years); the rest
    # arrive day by day, a little more at weekends and a little more as the shop grows.
    n_pre = round(n * PRE_EXISTING_SHARE)
    t0_day = clock.t0 // DAY
    local_day = np.empty(n, dtype=np.int64)
    local_day[:n_pre] = t0_day - rng.integers(1, MAX_AGE_DAYS + 1, size=n_pre)
    day = np.arange(clock.days)
    weekday = (t0_day + day + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 are Sat, Sun
    arrival = (1.0 + 0.3 * (weekday >= 5)) * (1.0 + 0.5 * day / max(clock.days, 1))
    per_day = rng.multinomial(n - n_pre, arrival / arrival.sum())
    local_day[n_pre:] = t0_day + np.repeat(day, per_day)
    # Days are local, so a late sign-up in Honolulu on the last day would fall on the UTC day
    # after the window: keep everyone inside it.
    created = np.minimum(local_times(clock, rng, zone, local_day), clock.t_end - 1)

    order = np.lexsort((np.arange(n), created))
    created, place, zone = created[order], place[order], zone[order]

    moved = rng.random(n) < MOVED_SHARE
    home_place = np.where(moved, rng.choice(len(PLACES), size=n, p=weights / weights.sum()), place)
    # Six slots per place, filled round-robin, so each of a place's codes is equally likely.
    codes = np.array([[p.area_codes[k % len(p.area_codes)] for k in range(6)] for p in PLACES])
    area_code = codes[home_place, rng.integers(0, 6, size=n)]
    if _lines_can_be_redrawn(area_code):
        line = _unique_lines(rng, area_code)
    else:
        # Too many customers for the places' own codes (every world that fits them keeps the
        # numbers it always had): open up the overlays and neighbours.
        area_code, line = pooled_numbers(rng, home_place)
    phone_style = rng.integers(0, PHONE_STYLES, size=n).astype(np.int8)
    phone_valid = rng.random(n) >= INVALID_PHONE_SHARE
    valid_text = format_phones(area_code, line, phone_style)
    invalid_text = invalid_phones(area_code, line, rng.integers(0, 3, size=n))
    phone = pl.select(
        pl.when(pl.Series(phone_valid)).then(valid_text).otherwise(invalid_text)
    ).to_series()

    postal_code = _postal_codes(rng, place)
    first_name = pl.Series(np.array(FIRST_NAMES)[rng.integers(0, len(FIRST_NAMES), size=n)])
    return Customers(
        created=created,
        place=place,
        zone=zone,
        area_code=area_code,
        line=line,
        phone_valid=phone_valid,
        phone_style=phone_style,
        phone=phone.alias("phone"),
        postal_code=postal_code,
        first_name=first_name.alias("first_name"),
        email=make_emails(rng, first_name),
        timezone_given=rng.random(n) < TIMEZONE_GIVEN_SHARE,
        churn_at=created + (rng.exponential(MEAN_LIFETIME_DAYS, size=n) * DAY).astype(np.int64),
    )
