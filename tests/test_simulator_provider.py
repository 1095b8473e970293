"""The simulator provider: the demo world answers texts deterministically and realistically."""

from __future__ import annotations

import datetime as dt
import math
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from pipelines.ingest import read_landing_file, validate
from pipelines.landing import ENTITIES
from pipelines.messaging.render import render
from pipelines.providers.base import Provider, SendRequest
from pipelines.providers.simulator import SimulatorProvider
from pipelines.simulator import simulate
from pipelines.simulator.catalog import CATALOG
from pipelines.simulator.effects import reorder_probability
from pipelines.simulator.responses import caused_order_id
from pipelines.simulator.texts import parse_day, recognize, short_code
from pipelines.templates import TEMPLATES_ROOT

START = dt.date(2026, 8, 1)
CONSUMABLES = [p for p in CATALOG if p.is_consumable and not p.digital]
ADD_ONS = [p for p in CATALOG if not p.is_consumable and not p.digital]
TIME_COLUMN = {
    "sms_delivery_receipts": "occurred_at",
    "inbound_messages": "received_at",
    "link_clicks": "clicked_at",
    "orders": "ordered_at",
    "order_lines": None,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("sim_world")
    simulate(root / "landing", days=14, customers=300, seed=5, start=START)
    truth = pl.read_parquet(root / "simulator" / "customers.parquet")
    phones = truth.filter(pl.col("phone_valid"))["phone_e164"].unique(maintain_order=True)
    return {"root": root, "phones": phones.to_list()}


def _landing_copy(world: dict, tmp: Path) -> Path:
    """A private landing folder holding the shop's exports, for one provider's output."""
    target = tmp / "landing"
    shutil.copytree(world["root"] / "landing", target)
    return target


def _provider(world: dict, landing: Path, **kwargs) -> SimulatorProvider:
    return SimulatorProvider(landing, world["root"] / "simulator", **kwargs)


def _reminder(i: int, product: str, sent: dt.date, lead: int, iso_date: bool = False) -> str:
    run_out = sent + dt.timedelta(days=lead)
    context = {
        "brand": "Acme Goods",
        "first_name": "Maya",
        "product": product,
        "run_out_date": run_out.isoformat() if iso_date else run_out.strftime("%b %-d"),
        "link": f"https://acme.example/r/rm{lead}x{i}",
        "discount_percent": 0,
    }
    return render("replenishment_reminder", "default", context).text


def _confirmation(i: int, add_on: str | None) -> str:
    context = {
        "brand": "Acme Goods",
        "first_name": "Maya",
        "order_number": f"O{100_001 + i}",
        "items": "Shave Gel, 7 oz",
        "product": add_on or "",
        "discount_percent": 10,
        "link": f"https://acme.example/r/up{i}",
    }
    return render("order_confirmation", "upsell" if add_on else "default", context).text


def _survey() -> str:
    context = {"brand": "Acme Goods", "first_name": "Maya", "points": 50}
    return render("feedback_survey", "default", context).text


def _rows(paths: list[Path], entity: str) -> pl.DataFrame:
    frames = [pl.read_parquet(p) for p in paths if p.parent.parent.name == entity]
    return pl.concat(frames) if frames else pl.DataFrame()


@pytest.fixture(scope="module")
def campaign(world: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Many sends of every kind the experiments care about, answered and flushed once."""
    landing = _landing_copy(world, tmp_path_factory.mktemp("campaign"))
    provider = _provider(world, landing, seed=1)
    sent: dict[str, list[tuple[str, str]]] = {}  # kind -> (uuid, product id or "")

    def send(kind: str, phone: str, text: str, product: str = "") -> None:
        result = provider.send(SendRequest((phone,), text))
        sent.setdefault(kind, []).append((result.message_uuids[0], product))

    for day in range(8):
        at = dt.datetime(2026, 8, 3 + day, 15, tzinfo=dt.UTC)
        provider.set_time(at)
        for i, phone in enumerate(world["phones"]):
            product = CONSUMABLES[(i + day) % len(CONSUMABLES)]
            for lead in (3, 7):
                text = _reminder(i, product.title, at.date(), lead, iso_date=day % 2 == 0)
                send(f"lead_{lead}", phone, text, product.product_id)
            if day < 3:
                add_on = ADD_ONS[(i + day) % len(ADD_ONS)]
                send("upsell", phone, _confirmation(i, add_on.title), add_on.product_id)
                send("plain", phone, _confirmation(i, None))
                send("survey", phone, _survey())
    unknown = provider.send(SendRequest(("+12025550199",), _survey())).message_uuids[0]
    provider.close()
    return {"files": provider.written, "sent": sent, "unknown": unknown, "landing": landing}


# --- reading texts ---------------------------------------------------------------------------


def test_every_template_is_recognized_from_its_rendered_text() -> None:
    context = {
        "brand": "Acme Goods",
        "first_name": "Maya",
        "order_number": "O100123",
        "items": "Shave Gel, 7 oz",
        "product": "Razor Blade Refills, 8 ct",
        "discount_percent": 10,
        "link": "https://acme.example/r/Ab3dE9x",
        "tracking_url": "https://carrier.example/t/1Z999",
        "run_out_date": "Aug 14",
        "points": 50,
    }
    templates = sorted(TEMPLATES_ROOT.glob("*/*.j2"))
    assert len(templates) >= 10
    for path in templates:
        flow, name = path.parent.name, path.stem
        text = render(flow, name, context).text
        seen = recognize(text)
        assert seen is not None, text
        assert (seen.flow, seen.template) == (flow, name)
        if "product" in seen.values:
            assert seen.value_from("product", [context["product"]]) == context["product"]
    assert recognize("Acme Goods: your points balance is 150") is None


def test_dates_and_short_codes_are_read_as_a_person_would() -> None:
    near = dt.date(2026, 12, 29)
    assert parse_day("Jan 2", near) == dt.date(2027, 1, 2)
    assert parse_day("2026-12-31", near) == dt.date(2026, 12, 31)
    assert parse_day("Thursday, December 31st", near) == dt.date(2026, 12, 31)
    assert parse_day("soon", near) is None
    assert short_code("https://acme.example/r/Ab3dE9x") == "Ab3dE9x"
    assert short_code("https://acme.example/r/Ab3dE9x/.") == "Ab3dE9x"


def test_the_true_effect_favours_a_week_of_lead_time() -> None:
    assert reorder_probability(7) > reorder_probability(3) + 0.02
    assert reorder_probability(None) == reorder_probability(5)


# --- the provider ----------------------------------------------------------------------------


def test_it_is_a_provider_and_refuses_to_guess_the_time(world: dict, tmp_path: Path) -> None:
    provider = _provider(world, _landing_copy(world, tmp_path))
    assert isinstance(provider, Provider)
    assert provider.name == "simulator"
    with pytest.raises(RuntimeError, match="logical time"):
        provider.send(SendRequest((world["phones"][0],), _survey()))
    with pytest.raises(ValueError, match="outside the landing"):
        SimulatorProvider(tmp_path, tmp_path / "truth")


def _batch(world: dict) -> list[tuple[dt.datetime, SendRequest]]:
    batch = []
    for day in range(2):
        at = dt.datetime(2026, 8, 5 + day, 16, tzinfo=dt.UTC)
        for i, phone in enumerate(world["phones"][:120]):
            product = CONSUMABLES[i % len(CONSUMABLES)].title
            batch.append((at, SendRequest((phone,), _reminder(i, product, at.date(), 7))))
            batch.append((at, SendRequest((phone,), _survey())))
        # Two identical sends to one number at one time are two messages, not one.
        batch.append((at, SendRequest((world["phones"][0],), _survey())))
    return batch


def _run(world: dict, landing: Path, batch: list, threads: int = 1) -> dict[str, bytes]:
    times = sorted({at for at, _ in batch})
    now = {"at": times[0]}
    provider = _provider(world, landing, seed=9, clock=lambda: now["at"])
    uuids: list[str] = []
    for at in times:
        now["at"] = at
        requests = [r for t, r in batch if t == at]
        chunks = [requests[k::threads] for k in range(threads)]

        def work(chunk: list[SendRequest]) -> None:
            for request in chunk:
                uuids.extend(provider.send(request).message_uuids)

        workers = [threading.Thread(target=work, args=(c,)) for c in chunks]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    provider.close()
    assert len(set(uuids)) == len(batch)  # unique ids, even for the identical pair
    return {str(p.relative_to(landing)): p.read_bytes() for p in provider.written}


def test_same_sends_give_identical_files_in_any_order_at_any_real_time(
    world: dict, tmp_path: Path
) -> None:
    batch = _batch(world)
    first = _run(world, _landing_copy(world, tmp_path / "a"), batch)
    time.sleep(0.05)  # a wall-clock read anywhere would now show up as a difference
    shuffled = _run(world, _landing_copy(world, tmp_path / "b"), batch[::-1], threads=4)
    assert first and first == shuffled
    other_seed = _provider(world, _landing_copy(world, tmp_path / "c"), seed=10)
    other_seed.set_time(batch[0][0])
    other = other_seed.send(batch[0][1]).message_uuids
    assert other[0] not in str(first)


def test_flushing_the_same_events_again_writes_nothing_new(world: dict, tmp_path: Path) -> None:
    landing = _landing_copy(world, tmp_path)
    batch = _batch(world)[:50]
    before = _run(world, landing, batch)
    again = _run(world, landing, batch)
    assert before and again == {}
    automatic = _provider(world, landing, seed=9, flush_at_rows=40)
    automatic.set_time(batch[0][0])
    for _, request in batch:
        automatic.send(request)
    assert automatic.written  # flushed by size, before close


# --- what the world answers ------------------------------------------------------------------


def test_every_file_passes_the_ingest_without_a_reject(campaign: dict) -> None:
    assert campaign["files"]
    for path in campaign["files"]:
        assert path.name.startswith("sim-") and path.suffix == ".parquet"
        entity = ENTITIES[path.parent.parent.name]
        good, rejects = validate(read_landing_file(path, entity), entity)
        assert rejects.height == 0, (path, rejects.head(3))
        assert good.height > 0
        # Events land on the UTC day they happen.
        day = dt.date.fromisoformat(path.parent.name)
        column = TIME_COLUMN[entity.name]
        if column:
            assert (good[column].dt.date() == day).all()


def test_every_send_gets_receipts_with_a_realistic_mix_of_failures(campaign: dict) -> None:
    receipts = _rows(campaign["files"], "sms_delivery_receipts")
    every = [u for kind in campaign["sent"].values() for u, _ in kind]
    final = receipts.filter(pl.col("status").is_in(["delivered", "undelivered", "failed"]))
    assert final["message_uuid"].n_unique() == final.height == len(every) + 1
    assert set(receipts["message_uuid"]) == {*every, campaign["unknown"]}
    share = final["status"].value_counts(normalize=True)
    delivered = share.filter(pl.col("status") == "delivered")["proportion"][0]
    assert 0.95 < delivered < 0.99
    codes = Counter(final.filter(pl.col("status") != "delivered")["error_code"].to_list())
    assert set(codes) == {"20", "30", "50"}
    assert final.filter(pl.col("status") == "failed")["error_code"].unique().to_list() == ["20"]
    assert final.filter(pl.col("message_uuid") == campaign["unknown"])["error_code"][0] == "50"
    assert final.filter(pl.col("status") == "delivered")["error_code"].null_count() == len(
        final.filter(pl.col("status") == "delivered")
    )
    # Sequence follows time within each message, starting at queued.
    ordered = receipts.sort("message_uuid", "sequence")
    by_message = ordered.group_by("message_uuid", maintain_order=True).agg("status", "occurred_at")
    for statuses, times in by_message.select("status", "occurred_at").iter_rows():
        assert statuses[0] == "queued" and times == sorted(times)
    assert set(receipts["mcc"].drop_nulls()) <= {"310", "311"}
    assert receipts["total_rate"].unique().to_list() == ["0.00500"]


def test_replies_include_stops_help_and_survey_scores(campaign: dict) -> None:
    inbound = _rows(campaign["files"], "inbound_messages")
    intents = Counter(inbound["intent"].to_list())
    assert intents["optout"] > 10 and intents["help"] > 0
    assert inbound["text"].str.to_lowercase().str.contains("stop texting").any()
    numbers = inbound.filter(pl.col("text").str.contains(r"^\d+$"))["text"].cast(pl.Int64)
    assert numbers.len() > 100  # nearly all from the 3 x ~290 surveys
    assert numbers.min() >= 0 and numbers.max() <= 10
    assert numbers.mean() > 6  # the shop's customers are mostly happy


def _caused(campaign: dict, kind: str) -> pl.DataFrame:
    """Caused orders of one kind of send, with the product the text offered."""
    sent = pl.DataFrame(campaign["sent"][kind], schema=["uuid", "offered"], orient="row")
    lines = _rows(campaign["files"], "order_lines")
    # An order id is derived from its message's uuid: look it up the same way.
    sent = sent.with_columns(
        order_id=pl.col("uuid").map_elements(caused_order_id, return_dtype=pl.String)
    )
    return sent.join(lines, on="order_id", how="left")


def test_orders_caused_by_texts_carry_the_offered_product(campaign: dict) -> None:
    orders = _rows(campaign["files"], "orders")
    assert orders["order_id"].str.starts_with("SMS-").all()
    prices = {p.product_id: p.price_cents for p in CATALOG}
    for kind in ("lead_3", "lead_7", "upsell"):
        caused = _caused(campaign, kind).filter(pl.col("product_id").is_not_null())
        assert caused.height > 0, kind
        assert (caused["product_id"] == caused["offered"]).all()
    reminder = _caused(campaign, "lead_7").filter(pl.col("product_id").is_not_null())
    price_ok = [
        abs(float(p) * 100 - prices[pid]) / prices[pid] < 0.15  # a mid-window price rise at most
        for pid, p in reminder.select("product_id", "unit_price").iter_rows()
    ]
    assert all(price_ok)
    upsold = _caused(campaign, "upsell").filter(pl.col("product_id").is_not_null())
    assert all(  # the upsell's 10% off
        float(p) * 100 <= prices[pid] * 0.9 + 1
        for pid, p in upsold.select("product_id", "unit_price").iter_rows()
    )
    assert _caused(campaign, "plain")["product_id"].null_count() == len(campaign["sent"]["plain"])
    physical = orders.filter(pl.col("fulfillment_type") == "physical")
    assert physical["shipping_postal_code"].null_count() < physical.height * 0.2


def test_a_week_of_lead_time_truly_converts_better(campaign: dict) -> None:
    rates = {}
    for lead in (3, 7):
        caused = _caused(campaign, f"lead_{lead}")
        rates[lead] = (caused["product_id"].is_not_null().mean(), caused.height)
    (p3, n3), (p7, n7) = rates[3], rates[7]
    pooled = (p3 * n3 + p7 * n7) / (n3 + n7)
    z = (p7 - p3) / math.sqrt(pooled * (1 - pooled) * (1 / n3 + 1 / n7))
    assert z > 2.5, rates


def test_clicks_use_the_short_code_of_the_texts_own_link(campaign: dict) -> None:
    clicks = _rows(campaign["files"], "link_clicks")
    codes = set(clicks["short_code"])
    assert codes and all(c.startswith(("rm", "up")) for c in codes)
    assert clicks["click_id"].n_unique() == clicks.height
