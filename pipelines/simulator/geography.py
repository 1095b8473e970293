"""Where the simulated customers live: US cities with their states, zones, ZIPs and area codes.

The mix is deliberate: every continental zone plus Alaska and Hawaii, Arizona (no DST), the
stricter quiet-hour states (Florida, Oklahoma, Maryland, Connecticut), and Pensacola, whose
area code 850 the phonenumbers library maps to Eastern time although the city keeps Central.

A place's own area codes are where its customers' numbers come from. A world too large for them
(a few hundred thousand customers) also draws from ``MORE_AREA_CODES``: real overlays and
neighbours of the same state and time zone, so a number still says where its owner lives.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    city: str
    region: str
    zone: str
    postal_codes: tuple[str, ...]
    area_codes: tuple[int, ...]
    weight: float


PLACES: tuple[Place, ...] = (
    Place("New York", "NY", "America/New_York", ("10001", "10025", "11201"), (212, 718, 917), 8.0),
    Place("Los Angeles", "CA", "America/Los_Angeles", ("90012", "90026"), (213, 310, 323), 6.5),
    Place("San Francisco", "CA", "America/Los_Angeles", ("94110", "94117"), (415, 628), 3.0),
    Place("San Diego", "CA", "America/Los_Angeles", ("92101", "92104"), (619, 858), 2.0),
    Place("Seattle", "WA", "America/Los_Angeles", ("98101", "98122"), (206,), 2.5),
    Place("Portland", "OR", "America/Los_Angeles", ("97205", "97214"), (503, 971), 1.5),
    Place("Las Vegas", "NV", "America/Los_Angeles", ("89101", "89123"), (702, 725), 1.3),
    Place("Phoenix", "AZ", "America/Phoenix", ("85004", "85016"), (602, 480), 2.5),
    Place("Denver", "CO", "America/Denver", ("80202", "80211"), (303, 720), 2.2),
    Place("Salt Lake City", "UT", "America/Denver", ("84101", "84105"), (801, 385), 1.0),
    Place("Austin", "TX", "America/Chicago", ("78701", "78704"), (512, 737), 2.0),
    Place("Houston", "TX", "America/Chicago", ("77002", "77006"), (713, 832), 3.0),
    Place("Dallas", "TX", "America/Chicago", ("75201", "75206"), (214, 469), 2.8),
    Place("Chicago", "IL", "America/Chicago", ("60601", "60614"), (312, 773), 4.0),
    Place("Minneapolis", "MN", "America/Chicago", ("55401", "55408"), (612,), 1.5),
    Place("Oklahoma City", "OK", "America/Chicago", ("73102", "73118"), (405,), 1.3),
    Place("Tulsa", "OK", "America/Chicago", ("74103", "74105"), (918,), 0.9),
    Place("Nashville", "TN", "America/Chicago", ("37203", "37206"), (615, 629), 1.4),
    Place("Miami", "FL", "America/New_York", ("33130", "33139"), (305, 786), 3.0),
    Place("Tampa", "FL", "America/New_York", ("33602", "33606"), (813,), 2.0),
    Place("Orlando", "FL", "America/New_York", ("32801", "32806"), (407, 321), 1.8),
    Place("Pensacola", "FL", "America/Chicago", ("32502", "32503"), (850,), 0.6),
    Place("Boston", "MA", "America/New_York", ("02108", "02116"), (617, 857), 2.2),
    Place("Hartford", "CT", "America/New_York", ("06103", "06106"), (860, 959), 0.9),
    Place("Baltimore", "MD", "America/New_York", ("21201", "21218"), (410, 443), 1.4),
    Place("Philadelphia", "PA", "America/New_York", ("19103", "19147"), (215, 267), 2.5),
    Place("Atlanta", "GA", "America/New_York", ("30303", "30308"), (404, 678), 2.5),
    Place("Charlotte", "NC", "America/New_York", ("28202", "28205"), (704, 980), 1.6),
    Place("Columbus", "OH", "America/New_York", ("43215", "43201"), (614, 380), 1.4),
    Place("Detroit", "MI", "America/Detroit", ("48226", "48201"), (313,), 1.3),
    Place("Indianapolis", "IN", "America/Indiana/Indianapolis", ("46204", "46202"), (317,), 1.0),
    Place("Anchorage", "AK", "America/Anchorage", ("99501", "99503"), (907,), 0.3),
    Place("Honolulu", "HI", "Pacific/Honolulu", ("96813", "96815"), (808,), 0.4),
)

ZONES: tuple[str, ...] = tuple(sorted({p.zone for p in PLACES}))

# Each code holds 9,900 numbers (555-0100 .. 555-9999), so these make room for about a million
# customers; Pensacola keeps 850 alone, the one code of its zone quirk.
MORE_AREA_CODES: dict[str, tuple[int, ...]] = {
    "New York": (646, 347, 929, 332, 516, 631, 914, 363, 934, 845, 518),
    "Los Angeles": (424, 818, 747, 626, 562, 661, 657, 714, 949),
    "San Francisco": (510, 341, 650, 408, 669, 925),
    "San Diego": (760, 442),
    "Seattle": (253, 425, 360, 564),
    "Portland": (541, 458),
    "Las Vegas": (775,),
    "Phoenix": (623, 520, 928),
    "Denver": (983, 970, 719),
    "Salt Lake City": (435,),
    "Austin": (254, 830),
    "Houston": (281, 346, 409, 936, 979),
    "Dallas": (972, 945, 817, 682),
    "Chicago": (872, 708, 847, 224, 630, 331),
    "Minneapolis": (651, 763, 952),
    "Oklahoma City": (572, 580),
    "Tulsa": (539,),
    "Nashville": (931,),
    "Miami": (645, 954, 754, 561, 728),
    "Tampa": (656, 727, 941),
    "Orlando": (352, 386),
    "Boston": (781, 339, 508, 774),
    "Baltimore": (667,),
    "Philadelphia": (445, 610, 484),
    "Atlanta": (470, 770, 943),
    "Charlotte": (828,),
    "Columbus": (740, 220),
    "Detroit": (248, 947, 586, 734),
    "Indianapolis": (765,),
}
