"""The sending rules in pipelines.messaging: plain functions, no Dagster, no database."""

from __future__ import annotations

import math
import os
import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipelines.flows import FLOWS, MARKETING
from pipelines.messaging import encoding, frequency, quiet_hours, render, retry
from pipelines.messaging.encoding import GSM7, UCS2, MessageTooLong, measure, normalize_gsm
from pipelines.messaging.frequency import Caps, Limit, cap_decision
from pipelines.messaging.quiet_hours import FEDERAL_WINDOW, Window, is_open, next_open
from pipelines.messaging.rate_limit import JITTER_MARGIN, InFlightLimit, TokenBucket
from pipelines.messaging.render import RenderError
from pipelines.providers.errors import AmbiguousError, PermanentError, RetryableError
from pipelines.templates import template_names

# ---------------------------------------------------------------------------------------------
# Encoding: a reference written from the 3GPP TS 23.038 code table, counting on the encoded
# stream (septets with explicit ESC, UTF-16 code units) instead of per-character weights.

ESC = "\x1b"
_GSM_ROWS = [  # columns 0x0-0x7, rows x0-xF, read down each column of the standard's table
    "@Δ 0¡P¿p",
    "£_!1AQaq",
    '$Φ"2BRbr',
    "¥Γ#3CScs",
    "èΛ¤4DTdt",
    "éΩ%5EUeu",
    "ùΠ&6FVfv",
    "ìΨ'7GWgw",
    "òΣ(8HXhx",
    "ÇΘ)9IYiy",
    "\nΞ*:JZjz",
    "Ø" + ESC + "+;KÄkä",
    "øÆ,<LÖlö",
    "\ræ-=MÑmñ",
    "Åß.>NÜnü",
    "åÉ/?O§oà",
]
REF_BASIC = {row[col]: col * 16 + r for r, row in enumerate(_GSM_ROWS) for col in range(8)}
del REF_BASIC[ESC]
REF_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D}
REF_EXTENSION |= {"]": 0x3E, "|": 0x40, "€": 0x65}


def reference_segments(text: str) -> tuple[str, int, int]:
    """(encoding, units, segments) by encoding the text and cutting the stream into parts."""
    if all(ch in REF_BASIC or ch in REF_EXTENSION for ch in text):
        stream: list[int] = []
        for ch in text:
            if ch in REF_EXTENSION:
                stream += [0x1B, REF_EXTENSION[ch]]
            else:
                stream.append(REF_BASIC[ch])
        single, part, enc = 160, 153, GSM7

        def splits_pair(chunk: list[int]) -> bool:
            # No table code equals 0x1B, so an ESC always opens a pair with the next septet.
            return bool(chunk) and chunk[-1] == 0x1B

    else:
        raw = text.encode("utf-16-be")
        stream = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
        single, part, enc = 70, 67, UCS2

        def splits_pair(chunk: list[int]) -> bool:
            return bool(chunk) and 0xD800 <= chunk[-1] <= 0xDBFF

    if not stream:
        return enc, 0, 0
    if len(stream) <= single:
        return enc, len(stream), 1
    parts, rest = 0, stream
    while rest:
        take = min(part, len(rest))
        if take < len(rest) and splits_pair(rest[:take]):
            take -= 1
        rest = rest[take:]
        parts += 1
    return enc, len(stream), parts


def test_reference_tables_are_the_standard():
    assert len(REF_BASIC) == 127 and REF_BASIC["@"] == 0x00 and REF_BASIC["à"] == 0x7F
    assert REF_BASIC["¤"] == 0x24 and REF_BASIC["$"] == 0x02 and REF_BASIC["_"] == 0x11
    assert set(REF_BASIC) == encoding.GSM7_BASIC
    assert set(REF_EXTENSION) == encoding.GSM7_EXTENSION


GSM_BASIC_CHARS = sorted(REF_BASIC)
GSM_EXTENSION_CHARS = sorted(REF_EXTENSION)
RISKY = list("’‘“”—–…•\u00a0\u202f\u2009\u200b«»×")
EMOJI = ["😀", "👍", "🎉", "👍🏽", "❤", "☺", "中", "ç", "\U0001f9f4", "\U00010348"]

gsm_text = st.lists(
    st.one_of(st.sampled_from(GSM_BASIC_CHARS), st.sampled_from(GSM_EXTENSION_CHARS)),
    max_size=900,
).map("".join)
mixed_text = st.lists(
    st.one_of(
        st.sampled_from(GSM_BASIC_CHARS),
        st.sampled_from(GSM_EXTENSION_CHARS),
        st.sampled_from(RISKY),
        st.sampled_from(EMOJI),
        st.characters(codec="utf-8"),
    ),
    max_size=400,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(gsm_text, mixed_text))
@example("a" * 160)
@example("a" * 161)
@example("a" * 152 + "€" + "a" * 10)  # the escape pair would straddle the 153rd septet
@example("€" * 80)
@example("a" * 66 + "😀" + "a" * 10)  # the surrogate pair would straddle the 67th unit
@example("😀" * 35)
@example("😀" * 36)
@example("a" * 1600)
@example("a" * 1601)
@example("😀" * 368 + "a")
@example("😀" * 369)
def test_segments_match_the_reference(text):
    enc, units, parts = reference_segments(text)
    limit = 1600 if enc == GSM7 else 737
    if units > limit:
        with pytest.raises(MessageTooLong):
            measure(text)
        return
    measured = measure(text)
    assert (measured.encoding, measured.units, measured.segments) == (enc, units, parts)
    assert measured.characters == len(text)
    assert encoding.segments(text) == parts


def test_segment_boundaries():
    assert measure("a" * 160).segments == 1
    assert measure("a" * 161).segments == 2
    assert measure("a" * 306).segments == 2 and measure("a" * 307).segments == 3
    # 152 septets + a two-septet euro: the pair moves whole into part two.
    assert measure("a" * 152 + "€" + "a" * 9).segments == 2
    assert measure("a" * 70 + "’").encoding == UCS2
    assert measure("’" + "a" * 69).segments == 1
    assert measure("’" + "a" * 70).segments == 2
    assert measure("").segments == 0


def test_plivo_maxima_are_a_clear_error():
    with pytest.raises(MessageTooLong, match="1600"):
        measure("a" * 1601)
    with pytest.raises(MessageTooLong, match="737"):
        measure("é" * 700 + "😀" * 20)  # é is GSM-7, the emoji makes it UCS-2: 740 units


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_normalization_is_idempotent(text):
    once = normalize_gsm(text)
    assert normalize_gsm(once) == once


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(GSM_BASIC_CHARS), st.sampled_from(RISKY)), max_size=200).map(
        "".join
    )
)
def test_normalization_makes_typographic_text_gsm7(text):
    assert encoding.encoding_of(normalize_gsm(text)) == GSM7


def test_normalization_keeps_the_meaning():
    assert normalize_gsm("It’s “ready” — 2–3 days…\u00a0• 2 × Serum") == (
        'It\'s "ready" - 2-3 days... - 2 x Serum'
    )
    # Letters keep their accents even when that costs UCS-2; decomposed ones get composed.
    assert normalize_gsm("María") == "María"
    assert normalize_gsm("Jose\u0301") == "José" and encoding.is_gsm7("José")
    assert normalize_gsm("😀") == "😀"


def test_cost_is_exact_decimal():
    assert str(encoding.cost(3, 0.0055)) == "0.0165"
    assert str(encoding.cost(2, "0.00550")) == "0.01100"
    with pytest.raises(ValueError):
        encoding.cost(-1, 1)


# ---------------------------------------------------------------------------------------------
# Quiet hours

NY, CHI = "America/New_York", "America/Chicago"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_state_windows_from_the_seed():
    assert quiet_hours.window_for_state("NY") == Window(8, 21)
    for state in ("FL", "OK", "MD", "Florida", "oklahoma"):
        assert quiet_hours.window_for_state(state) == Window(8, 20)
    assert quiet_hours.window_for_state("CT") == Window(9, 20)
    assert quiet_hours.window_for_state(None) == FEDERAL_WINDOW
    assert quiet_hours.window_for_state("ZZ") == FEDERAL_WINDOW
    assert quiet_hours.state_rules()["FL"].marketing_max_per_24h == 3


def test_florida_and_oklahoma_close_at_20_new_york_at_21():
    at = utc(2025, 6, 11, 0, 30)  # 20:30 EDT, 19:30 CDT
    assert is_open(at, [NY], quiet_hours.window_for_state("NY"))
    assert not is_open(at, [NY], quiet_hours.window_for_state("FL"))
    assert next_open(at, [NY], quiet_hours.window_for_state("FL")) == utc(2025, 6, 11, 12)
    late_oklahoma = utc(2025, 6, 11, 1, 30)  # 20:30 CDT
    assert not is_open(late_oklahoma, [CHI], quiet_hours.window_for_state("OK"))
    assert is_open(late_oklahoma, [CHI], quiet_hours.window_for_state("TX"))
    assert not is_open(utc(2025, 6, 10, 12, 30), [NY], quiet_hours.window_for_state("CT"))


def test_area_code_presumes_residency_for_fl_ok_md_only():
    assert quiet_hours.state_for_phone("+13055551234") == "FL"
    assert quiet_hours.state_for_phone("+13052450000") == "FL"  # geocoder says "Homestead, FL"
    assert quiet_hours.marketing_window("NY", "+13055551234") == Window(8, 20)
    assert quiet_hours.marketing_window("NY", "+14055551234") == Window(8, 20)  # Oklahoma
    assert quiet_hours.marketing_window("NY", "+14105551234") == Window(8, 20)  # Maryland
    assert quiet_hours.marketing_window("CT", "+13055551234") == Window(9, 20)  # strictest
    assert quiet_hours.marketing_window("NY", "+12125551234") == Window(8, 21)
    assert quiet_hours.marketing_window(None, "+18005551234") == Window(8, 21)  # toll free


def test_several_zones_must_all_be_open():
    zones = quiet_hours.zones_for("America/New_York|America/Chicago", None)
    assert zones == [NY, CHI]
    assert not is_open(utc(2025, 7, 1, 12, 30), zones, FEDERAL_WINDOW)  # 8:30 ET, 7:30 CT
    assert next_open(utc(2025, 7, 1, 12, 30), zones, FEDERAL_WINDOW) == utc(2025, 7, 1, 13)
    assert is_open(utc(2025, 7, 1, 13), zones, FEDERAL_WINDOW)
    assert not is_open(utc(2025, 7, 2, 1, 30), zones, FEDERAL_WINDOW)  # 21:30 ET, 20:30 CT
    assert is_open(utc(2025, 7, 2, 0, 59), zones, FEDERAL_WINDOW)


def test_dst_change_days():
    # Spring forward: 22:00 EST on Saturday opens at 8:00 EDT, which is 12:00 UTC, not 13:00.
    assert next_open(utc(2025, 3, 9, 3), [NY], FEDERAL_WINDOW) == utc(2025, 3, 9, 12)
    # Fall back: 22:00 EDT on Saturday opens at 8:00 EST = 13:00 UTC.
    assert next_open(utc(2025, 11, 2, 2), [NY], FEDERAL_WINDOW) == utc(2025, 11, 2, 13)
    # A window inside the skipped hour does not exist that day; the next day it does.
    assert next_open(utc(2025, 3, 9, 5), [NY], Window(2, 3)) == utc(2025, 3, 10, 6)
    # The repeated hour is open twice in a row: 1:00 EDT to 2:00 EST is two real hours.
    assert is_open(utc(2025, 11, 2, 5, 30), [NY], Window(1, 2))
    assert is_open(utc(2025, 11, 2, 6, 30), [NY], Window(1, 2))
    assert not is_open(utc(2025, 11, 2, 7, 0), [NY], Window(1, 2))


def test_zones_that_never_overlap_raise_after_seven_days():
    with pytest.raises(quiet_hours.NoOpenWindow):
        next_open(utc(2025, 7, 1), ["Asia/Tokyo", NY], Window(9, 10))


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        is_open(datetime(2025, 7, 1, 12), [NY], FEDERAL_WINDOW)


ZONE_POOL = [
    NY,
    CHI,
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/St_Johns",  # UTC-3:30 with DST
    "Asia/Kathmandu",  # +5:45
    "Australia/Lord_Howe",  # a half-hour DST shift
    "Europe/London",
]


@st.composite
def windows(draw):
    start = draw(st.integers(0, 23))
    return Window(start, draw(st.integers(start + 1, 24)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    at=st.datetimes(datetime(2024, 1, 1), datetime(2026, 12, 31), timezones=st.just(UTC)),
    zones=st.lists(st.sampled_from(ZONE_POOL), min_size=1, max_size=3, unique=True),
    window=windows(),
)
@example(at=utc(2025, 3, 9, 6, 59), zones=[NY], window=Window(8, 21))
@example(at=utc(2025, 11, 2, 5, 59), zones=[NY, CHI], window=Window(1, 2))
def test_next_open_is_open_and_nothing_earlier_is(at, zones, window):
    # Two days keep the brute force below affordable; the seven-day search is tested above.
    horizon = timedelta(days=2)
    try:
        found = next_open(at, zones, window, horizon)
    except quiet_hours.NoOpenWindow:
        found = None
    end = found if found is not None else at + horizon
    if found is not None:
        assert found >= at and is_open(found, zones, window)
    # Brute force at one-minute steps, finer than the quarter hours next_open relies on.
    probe = at
    while probe < end:
        assert not is_open(probe, zones, window), probe
        probe = (probe + timedelta(minutes=1)).replace(second=0, microsecond=0)


def test_zones_from_the_phone_number():
    assert quiet_hours.zones_for(None, "+14055551234") == [CHI]
    assert set(quiet_hours.zones_for("", "+19075551234")) == {"America/Anchorage", "America/Adak"}
    # The address wins; an unknown zone name is ignored rather than trusted.
    assert quiet_hours.zones_for("America/Denver", "+14055551234") == ["America/Denver"]
    assert quiet_hours.zones_for("Mars/Olympus", "+14055551234") == [CHI]
    assert quiet_hours.zones_for(None, None) == list(quiet_hours.FALLBACK_ZONES)
    assert quiet_hours.zones_for(None, "not a number") == list(quiet_hours.FALLBACK_ZONES)


def test_only_marketing_and_waking_hours_flows_wait():
    assert not quiet_hours.quiet_hours_apply("order_confirmation")
    assert not quiet_hours.quiet_hours_apply("out_for_delivery")
    assert quiet_hours.quiet_hours_apply("setup_onboarding")
    assert all(quiet_hours.quiet_hours_apply(f) for f in FLOWS if FLOWS[f].is_marketing)
    assert quiet_hours.quiet_hours_apply("order_confirmation", MARKETING)  # an upsell variant
    night = utc(2025, 7, 1, 6)  # 2:00 EDT
    assert quiet_hours.send_time(night, "shipping_update", [NY], FEDERAL_WINDOW) == night
    assert quiet_hours.send_time(night, "review_request", [NY], FEDERAL_WINDOW) == utc(
        2025, 7, 1, 12
    )


# ---------------------------------------------------------------------------------------------
# Frequency caps

T0 = utc(2025, 7, 1, 15)


def test_one_per_day_across_marketing_flows():
    history = [
        (T0, "review_request"),
        (T0 + timedelta(hours=1), "order_confirmation"),
        (T0 + timedelta(hours=2), "delivered"),
    ]
    sent = frequency.marketing_sent_times(history)
    assert sent == [T0]
    decision = cap_decision(sent, T0 + timedelta(hours=3))
    assert not decision.allowed and "1 per 24h" in decision.reason
    assert decision.retry_at == T0 + timedelta(hours=24)
    assert cap_decision(sent, T0 + timedelta(hours=24)).allowed
    assert not cap_decision(sent, T0 + timedelta(hours=24) - timedelta(microseconds=1)).allowed


def test_four_per_seven_days():
    flows = ["review_request", "loyalty_invite", "feedback_survey", "replenishment_reminder"]
    history = [(T0 + timedelta(days=i), flow) for i, flow in enumerate(flows)]
    sent = frequency.marketing_sent_times(history)
    decision = cap_decision(sent, T0 + timedelta(days=4))
    assert not decision.allowed and "4 per 7 days" in decision.reason
    assert decision.retry_at == T0 + timedelta(days=7)
    assert cap_decision(sent, T0 + timedelta(days=7)).allowed


def test_transactional_never_counts():
    history = [(T0 + timedelta(minutes=i), "shipping_update") for i in range(20)]
    assert frequency.marketing_sent_times(history) == []
    assert cap_decision(frequency.marketing_sent_times(history), T0 + timedelta(hours=1)).allowed


def test_state_ceiling_tightens_a_looser_cap():
    loose = Caps((Limit(timedelta(hours=24), 5),))
    fl = frequency.caps_for_state(loose, 3)
    sent = [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert cap_decision(sent, T0 + timedelta(hours=3), loose).allowed
    assert not cap_decision(sent, T0 + timedelta(hours=3), fl).allowed
    assert frequency.caps_for_state(frequency.DEFAULT_CAPS, 3) == frequency.DEFAULT_CAPS
    assert frequency.caps_for_state(Caps.of(per_24h=None, per_7_days=10), 3).limits[-1] == (
        Limit(timedelta(hours=24), 3)
    )


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 14 * 24 * 60), max_size=12),
    at_offset=st.integers(0, 14 * 24 * 60),
    day_max=st.integers(1, 3),
    week_max=st.integers(1, 6),
)
def test_retry_at_is_the_earliest_allowed_instant(offsets, at_offset, day_max, week_max):
    caps = Caps((Limit(timedelta(hours=24), day_max), Limit(timedelta(days=7), week_max)))
    sent = [T0 + timedelta(minutes=m) for m in offsets]
    at = T0 + timedelta(minutes=at_offset)
    decision = cap_decision(sent, at, caps)
    if decision.allowed:
        assert decision.retry_at is None
        return
    assert decision.retry_at > at
    assert cap_decision(sent, decision.retry_at, caps).allowed
    assert not cap_decision(sent, decision.retry_at - timedelta(microseconds=1), caps).allowed


# ---------------------------------------------------------------------------------------------
# Rendering

FULL_CONTEXT = {
    "brand": "Acme",
    "first_name": "Ana",
    "order_number": "A-1001",
    "items": "1 x Serum",
    "link": "https://acme.test/r/abc",
    "tracking_url": "https://acme.test/t/abc",
    "product": "Serum",
    "points": 100,
    "discount_percent": 10,
    "run_out_date": "Jul 9",
}


@pytest.mark.parametrize(("flow", "template"), [(f, t) for f in FLOWS for t in template_names(f)])
def test_every_shipped_template_renders_within_budget(flow, template):
    message = render.render(flow, template, FULL_CONTEXT)
    assert "Acme" in message.text and message.encoding == GSM7 and message.segments <= 2
    if FLOWS[flow].is_marketing:
        assert render.OPT_OUT.search(message.text)


def test_missing_variable_names_template_and_variable():
    context = {k: v for k, v in FULL_CONTEXT.items() if k != "first_name"}
    with pytest.raises(RenderError, match="review_request/default.*first_name") as err:
        render.render("review_request", "default", context)
    assert err.value.reason == "missing_variable"
    with pytest.raises(RenderError, match="brand"):
        render.render("shipping_update", "default", {"order_number": "1", "tracking_url": "x"})


def test_none_is_not_rendered():
    with pytest.raises(RenderError, match="first_name") as err:
        render.render("review_request", "default", {**FULL_CONTEXT, "first_name": None})
    assert err.value.reason == "missing_variable"


@pytest.fixture
def templates(tmp_path):
    def write(flow: str, name: str, source: str):
        (tmp_path / flow).mkdir(exist_ok=True)
        (tmp_path / flow / f"{name}.j2").write_text(source, encoding="utf-8")

    return tmp_path, write


def test_marketing_without_opt_out_is_refused(templates):
    root, write = templates
    write("review_request", "bare", "{{ brand }}: tell us how you like it: {{ link }}")
    with pytest.raises(RenderError) as err:
        render.render("review_request", "bare", FULL_CONTEXT, root=root)
    assert err.value.reason == "no_opt_out"
    # The same words are fine for a transactional message.
    write("delivered", "bare", "{{ brand }}: tell us how you like it: {{ link }}")
    assert render.render("delivered", "bare", FULL_CONTEXT, root=root).segments == 1
    write("review_request", "ok", "{{ brand }}: review it: {{ link }} Text STOP to end")
    assert render.render("review_request", "ok", FULL_CONTEXT, root=root)


def test_promotional_variant_of_transactional_flow_can_be_held_to_marketing_rules(templates):
    root, write = templates
    write("order_confirmation", "promo", "{{ brand }}: Order {{ order_number }} - 10% off next")
    assert render.render("order_confirmation", "promo", FULL_CONTEXT, root=root)
    with pytest.raises(RenderError, match="STOP"):
        render.render(
            "order_confirmation", "promo", FULL_CONTEXT, root=root, message_class=MARKETING
        )


def test_brand_must_appear(templates):
    root, write = templates
    write("delivered", "nobrand", "Your order {{ order_number }} was delivered.")
    with pytest.raises(RenderError) as err:
        render.render("delivered", "nobrand", FULL_CONTEXT, root=root)
    assert err.value.reason == "no_brand"


def test_segment_budget(templates):
    root, write = templates
    long_items = ", ".join(f"Serum no. {i}" for i in range(40))
    with pytest.raises(RenderError, match="budget of 2") as err:
        render.render("order_confirmation", "default", {**FULL_CONTEXT, "items": long_items})
    assert err.value.reason == "over_segment_budget"
    message = render.render(
        "order_confirmation", "default", {**FULL_CONTEXT, "items": long_items}, max_segments=5
    )
    assert message.segments == 5  # 624 septets: four full parts of 153 and a fifth
    write("shipping_update", "emoji", "{{ brand }} 🚚 {{ tracking_url }} " + "x" * 60)
    with pytest.raises(RenderError, match="UCS-2"):
        render.render("shipping_update", "emoji", FULL_CONTEXT, root=root, max_segments=1)


def test_rendered_text_is_normalized_and_collapsed(templates):
    root, write = templates
    write(
        "delivered",
        "multi",
        "{{ brand }}:   Order {{ order_number }}\n  was delivered.\n\n  Enjoy\t{{ items }}!\n",
    )
    context = {**FULL_CONTEXT, "brand": "Lou’s", "items": "“Serum” — 2 × 30\u00a0ml"}
    message = render.render("delivered", "multi", context, root=root)
    assert message.text == 'Lou\'s: Order A-1001 was delivered.\nEnjoy "Serum" - 2 x 30 ml!'
    assert message.encoding == GSM7


def test_an_edited_template_is_checked_afresh(templates):
    root, write = templates
    write("delivered", "edited", "{{ brand }}: delivered.")
    assert render.render("delivered", "edited", FULL_CONTEXT, root=root)
    write("delivered", "edited", "{{ brand }}: delivered, {{ nickname }}.")
    path = root / "delivered" / "edited.j2"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(RenderError, match="nickname"):
        render.render("delivered", "edited", FULL_CONTEXT, root=root)


def test_bad_template_names_and_flows(templates):
    root, write = templates
    with pytest.raises(RenderError) as err:
        render.render("delivered", "../../etc/passwd", FULL_CONTEXT)
    assert err.value.reason == "template_not_found"
    with pytest.raises(RenderError, match="no such template"):
        render.render("delivered", "nope", FULL_CONTEXT)
    with pytest.raises(RenderError, match="unknown flow"):
        render.render("no_such_flow", "default", FULL_CONTEXT)
    write("delivered", "broken", "{{ brand }} {% if %}")
    with pytest.raises(RenderError) as err:
        render.render("delivered", "broken", FULL_CONTEXT, root=root)
    assert err.value.reason == "template_error"
    write("delivered", "attr", "{{ brand }} {{ order.number }}")
    with pytest.raises(RenderError, match="number") as err:
        render.render("delivered", "attr", {**FULL_CONTEXT, "order": {}}, root=root)
    assert err.value.reason == "missing_variable"


# ---------------------------------------------------------------------------------------------
# Rate limiting


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps += 1
        assert self.sleeps < 100_000, "the bucket spins"
        self.now += seconds


def token_times(grants: list[tuple[float, int]]) -> list[float]:
    return sorted(t for t, n in grants for _ in range(n))


def max_in_any_second(times: list[float], cap: int) -> bool:
    """True when no cap + 1 tokens fall within one half-open second [t, t + 1)."""
    return all(times[i + cap] - times[i] >= 1.0 for i in range(len(times) - cap))


RATES = st.one_of(st.integers(1, 30).map(float), st.sampled_from([0.2, 0.5, 2.5, 4.9, 5.0]))


@settings(max_examples=300, deadline=None)
@given(
    rate=RATES,
    burst=st.one_of(st.none(), st.integers(1, 6).map(float)),
    pattern=st.lists(
        st.tuples(
            st.one_of(st.just(0.0), st.floats(0, 0.05), st.floats(0, 2.0)), st.integers(1, 30)
        ),
        min_size=1,
        max_size=80,
    ),
)
def test_bucket_never_exceeds_its_rate_in_any_second(rate, burst, pattern):
    clock = FakeClock()
    bucket = TokenBucket(rate, burst=burst, clock=clock, sleep=clock.sleep)
    cap = bucket.window_cap
    assert cap <= rate or rate < 1
    grants = []
    for gap, n in pattern:
        clock.now += gap
        n = min(n, cap)
        granted_at = bucket.acquire(n)
        assert granted_at == clock.now
        grants.append((granted_at, n))
    assert max_in_any_second(token_times(grants), cap)


def test_default_burst_spaces_grants_evenly():
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    times = [bucket.acquire() for _ in range(11)]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # 1/r apart, and every fifth grant also waits out the jitter margin.
    assert all(g == pytest.approx(0.2) or g == pytest.approx(0.2 + JITTER_MARGIN) for g in gaps)
    assert times[-1] == pytest.approx(2.0 + 2 * JITTER_MARGIN)


def test_bulk_request_counts_every_destination():
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    assert bucket.acquire(5) == 0.0
    # The batch used the whole second, and the margin for arrival jitter.
    assert bucket.acquire(1) == pytest.approx(1.0 + JITTER_MARGIN)
    with pytest.raises(ValueError, match="at most 5"):
        bucket.acquire(6)


def test_grants_are_a_second_plus_the_jitter_margin_apart():
    # Arrivals jitter by a few ms; a window cap's worth of grants spans more than one second.
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    times = [bucket.acquire() for _ in range(12)]
    spans = [later - first for first, later in zip(times, times[5:], strict=False)]
    assert min(spans) >= 1.0 + JITTER_MARGIN - 1e-9
    assert times[-1] == pytest.approx(2.2 + 2 * JITTER_MARGIN)  # under 2% slower than 5/s


def test_bucket_in_real_time_with_threads():
    bucket = TokenBucket(5)
    grants: list[tuple[float, int]] = []
    lock = threading.Lock()
    start = time.monotonic()

    def worker() -> None:
        while time.monotonic() - start < 1.5:
            granted_at = bucket.acquire()
            with lock:
                grants.append((granted_at, 1))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    times = token_times(grants)
    assert max_in_any_second(times, 5)
    # One token at the start, then one per 0.2 s while the 1.5 s last; each thread may have
    # begun one more acquire before the end, so up to 8 + 4 grants.
    assert 6 <= len(times) <= 12
    assert all(b - a >= 0.2 - 1e-6 for a, b in zip(times, times[1:], strict=False))


def test_in_flight_limit():
    limit = InFlightLimit(3)
    peak = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal peak
        with limit:
            with lock:
                peak = max(peak, limit.in_flight)
            time.sleep(0.01)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert 1 <= peak <= 3 and limit.in_flight == 0
    assert limit.acquire(timeout=0) and limit.acquire() and limit.acquire()
    assert not limit.acquire(timeout=0)
    for _ in range(3):
        limit.release()
    with pytest.raises(ValueError):
        limit.release()
    assert limit.in_flight == 0


# ---------------------------------------------------------------------------------------------
# Retry


@given(
    attempts=st.integers(0, 40),
    base=st.floats(0.01, 10),
    cap=st.floats(0, 120),
    seed=st.integers(0, 2**32),
)
def test_backoff_is_full_jitter_under_the_cap(attempts, base, cap, seed):
    delays = retry.backoff_delays(attempts, base, cap, random.Random(seed))
    assert len(delays) == attempts
    for i, delay in enumerate(delays):
        assert 0 <= delay <= min(cap, base * 2**i)
    assert delays == retry.backoff_delays(attempts, base, cap, random.Random(seed))


def test_backoff_spreads_and_survives_huge_attempts():
    rng = random.Random(7)
    assert retry.backoff_delay(5000, 1.0, 30.0, rng) <= 30.0
    samples = [retry.backoff_delay(4, 1.0, 60.0, rng) for _ in range(2000)]
    assert max(samples) <= 16 and math.isclose(sum(samples) / len(samples), 8, rel_tol=0.1)


def test_only_undelivered_failures_are_retried():
    assert retry.is_safe_to_retry(RetryableError("connect timeout"))
    assert retry.is_safe_to_retry(RetryableError("busy", status=429, retry_after=3))
    assert not retry.is_safe_to_retry(AmbiguousError("read timeout"))
    assert not retry.is_safe_to_retry(PermanentError("invalid dst", status=400))
    assert not retry.is_safe_to_retry(TimeoutError("raw, unclassified"))
    assert retry.classify(PermanentError("x")) == "permanent"
    assert retry.classify(AmbiguousError("x")) == "ambiguous"
    assert retry.classify(RuntimeError("x")) == "ambiguous"


def test_retry_delay_honours_retry_after_and_attempt_limit():
    rng = random.Random(1)
    busy = RetryableError("busy", status=429, retry_after=30.0)
    assert retry.retry_delay(busy, 1, base=1.0, cap=10.0, rng=rng) == 30.0
    assert 0 <= retry.retry_delay(RetryableError("502"), 2, base=1.0, cap=10.0, rng=rng) <= 2
    assert retry.retry_delay(RetryableError("502"), 5, max_attempts=5, rng=rng) is None
    assert retry.retry_delay(AmbiguousError("read timeout"), 1, rng=rng) is None
