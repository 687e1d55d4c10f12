"""The 2025 reorganisation through the real API, PostgreSQL and RabbitMQ: the registry as of a
day, a package for a retired district reaching its commune with the redirect in the trail, old
documents keeping their original recipients and names, successors as parties, retired senders
refused."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest

from adapters.client import HubClientError
from exchange import demo_reorganisation as demo
from exchange.audit import verify_bundle
from exchange.errors import HubError
from exchange.ledger_check import check_ledger
from exchange.mapping import read_mapping
from exchange.registry import Agency
from exchange.reorganise import apply_reorganisation
from exchange.store.ledger import PostgresLedger
from exchange.store.registry import today
from exchange.succession import route_recipients
from schemas import build_document, build_status
from tests.integration.test_exchange import wait_for_inbox
from tests.support.http import assert_error

MINISTRY = "000.00.00.G05"
ABOLISHED = "000.00.30.H49"


def document(number: str, recipients, sender=MINISTRY) -> bytes:
    return build_document(
        sender=sender,
        recipients=list(recipients),
        code_number=number,
        code_notation="BNV-VP",
        subject=f"Công văn số {number}",
        attachments=[("cv.pdf", "application/pdf", b"%PDF-1.7 test")],
    )


@pytest.fixture(scope="module")
async def world(exchange, tmp_path_factory):
    """The demo registry before the change, one document sent under it, then the change."""
    await exchange.register(
        (MINISTRY, "Bộ Nội vụ"),
        (demo.PROVINCE, "UBND tỉnh Quảng Ninh"),
        (demo.CITY, "UBND thành phố Hạ Long"),
        (demo.OLD_WARD, "UBND phường Hồng Gai"),
    )
    hub = exchange.hub
    extra = (*demo.OLD_PROVINCES, *demo.NEW_UNITS)
    gone = Agency(
        ABOLISHED, "Ban quản lý cũ", demo.PROVINCE, "district", valid_to=dt.date(2025, 6, 30)
    )
    await hub.registry.upsert([*extra, gone])
    for agency in (*extra, gone):
        exchange.codes.append(agency.code)
        await hub.broker.ensure_agency(agency.code)
    clients = {c: await exchange.client(c) for c in (MINISTRY, demo.CITY, demo.HONG_GAI)}
    before = await clients[MINISTRY].submit(document("501", [demo.CITY, demo.OLD_WARD]))
    await wait_for_inbox(clients[demo.CITY], before["id"])
    from_city = await clients[demo.CITY].submit(document("601", [MINISTRY], sender=demo.CITY))
    to_update = await clients[demo.CITY].submit(document("602", [MINISTRY], sender=demo.CITY))
    _, mapping = demo.write_demo_files(tmp_path_factory.mktemp("reorg"))
    rows, problems = read_mapping(mapping)
    assert problems == []
    plan = await apply_reorganisation(hub.registry, rows, by="test", reason="demo", dry_run=False)
    assert plan.problems == [] and len(plan.versions) == 3
    return {"clients": clients, "before": before, "from_city": from_city, "to_update": to_update}


async def _get(exchange, path: str, organ: str = MINISTRY) -> tuple[int, dict]:
    token = await exchange.token(organ)
    async with exchange.session.get(
        f"{exchange.url}{path}", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        return resp.status, await resp.json()


async def test_agency_as_of_a_day_and_today(exchange, world):
    status, then = await _get(exchange, f"/v1/agencies/{demo.CITY}?at=2025-06-30")
    assert status == 200, then
    assert then["active"] is True and then["agency"]["level"] == "district"
    assert then["agency"]["valid_to"] is None and then["successors_today"] == [demo.HONG_GAI]
    status, now = await _get(exchange, f"/v1/agencies/{demo.CITY}")
    assert now["active"] is False and now["agency"]["valid_to"] == "2025-06-30"
    assert now["agency"]["successors"] == [demo.HONG_GAI, demo.HA_LONG, demo.BAI_CHAY]
    assert [v["effective_from"] for v in now["versions"]] == ["0001-01-01", "2025-07-01"]
    assert (now["versions"][1]["recorded_by"], now["versions"][1]["reason"]) == ("test", "demo")
    # The structure of each day: the old ward under the city then, the new ward under H49 now.
    status, old = await _get(exchange, f"/v1/agencies?at=2025-06-30&under={demo.PROVINCE}")
    codes = {a["code"]: a for a in old["items"]}
    assert codes[demo.OLD_WARD]["parent"] == demo.CITY and codes[demo.OLD_WARD]["valid_to"] is None
    structure = await exchange.hub.registry.structure_at(dt.date(2025, 6, 30))
    assert structure[demo.OLD_WARD].parent == demo.CITY
    assert structure[demo.OLD_WARD].province == demo.PROVINCE
    assert structure[demo.BAC_GIANG].province == demo.BAC_GIANG
    assert demo.HONG_GAI not in structure  # it begins on 2025-07-01
    now = await exchange.hub.registry.structure_at(today())
    assert now[demo.HONG_GAI].parent == demo.PROVINCE
    assert now[demo.BAC_GIANG].province == demo.BAC_NINH  # merged: it counts under Bắc Ninh
    assert now[demo.OLD_WARD].province == demo.PROVINCE


@pytest.mark.parametrize(
    ("path", "want_status", "want_code"),
    [
        ("/v1/agencies/000.00.99.H49", 404, "agency.not_found"),
        (f"/v1/agencies/{demo.CITY}?at=2025-13-01", 400, "request.invalid_parameter"),
        (f"/v1/agencies/{demo.CITY}?at=yesterday", 400, "request.invalid_parameter"),
        ("/v1/agencies/not-a-code", 422, "organ_id.invalid"),
        ("/v1/agencies?at=30/06/2025", 400, "request.invalid_parameter"),
    ],
)
async def test_agency_lookup_refusals(exchange, world, path, want_status, want_code):
    status, body = await _get(exchange, path)
    assert_error(status, body, want_status, want_code)


async def test_retired_district_package_reaches_its_commune_with_the_redirect(exchange, world):
    clients = world["clients"]
    sent = await clients[MINISTRY].submit(document("502", [demo.CITY]))
    assert sent["recipients"] == [demo.HONG_GAI]
    assert sent["redirected_from"] == {demo.HONG_GAI: demo.CITY}
    item = await wait_for_inbox(clients[demo.HONG_GAI], sent["id"])
    assert item["addressed_as"] == demo.CITY
    trail = await clients[MINISTRY].trail(sent["id"])
    assert trail["events"][0]["detail"]["redirected_from"] == {demo.HONG_GAI: demo.CITY}
    assert trail["recipients"][0] == trail["recipients"][0] | {
        "organ_id": demo.HONG_GAI,
        "addressed_as": demo.CITY,
    }
    assert trail["parties"][demo.CITY]["today"]["successors"] == [demo.HONG_GAI]
    # Named directly as well: no redirect is claimed, one copy goes.
    both = await clients[MINISTRY].submit(document("503", [demo.OLD_WARD, demo.HONG_GAI]))
    assert both["recipients"] == [demo.HONG_GAI] and "redirected_from" not in both


async def test_old_document_keeps_its_recipients_and_their_names(exchange, world, tmp_path):
    before = world["before"]
    trail = await world["clients"][MINISTRY].trail(before["id"])
    assert [r["organ_id"] for r in trail["recipients"]] == [demo.CITY, demo.OLD_WARD]
    assert all(r["addressed_as"] is None for r in trail["recipients"])
    city = trail["parties"][demo.CITY]
    assert (city["name"], city["level"]) == ("UBND thành phố Hạ Long", "district")
    assert city["today"]["active"] is False
    token = await exchange.token(MINISTRY)
    async with exchange.session.get(
        f"{exchange.url}/v1/packages/{before['id']}/evidence",
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        assert resp.status == 200
        data = await resp.read()
    bundle = zipfile.ZipFile(io.BytesIO(data))
    parties = json.loads(bundle.read("parties.json"))
    assert parties[demo.OLD_WARD]["parent"] == demo.CITY
    assert parties[demo.OLD_WARD]["today"]["successors"] == [demo.HONG_GAI]
    assert "parties.json" in json.loads(bundle.read("evidence.json"))["files"]
    # The auditor's verification still passes and names the city as it was, and its successor.
    (tmp_path / "old.asice").write_bytes(data)
    checks = await verify_bundle(tmp_path / "old.asice", [exchange.hub.key.cert])
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    city = next(c for c in checks if c.item == f"party {demo.CITY}")
    assert "UBND thành phố Hạ Long (district)" in city.detail and demo.HONG_GAI in city.detail


async def test_status_from_the_successor_is_from_a_party(exchange, world):
    before = world["before"]
    answer = await world["clients"][demo.HONG_GAI].submit(
        build_status(
            sender=demo.HONG_GAI,
            response_for_organ_id=MINISTRY,
            response_for_document_id=before["document_id"],
            status_code="03",
            description="tiếp nhận thay UBND thành phố Hạ Long",
        )
    )
    assert answer["kind"] == "status" and answer["recipients"] == [MINISTRY]
    # It answers for the predecessor's copy: the sender sees the city's copy accepted.
    trail = await world["clients"][MINISTRY].trail(before["id"])
    city = next(r for r in trail["recipients"] if r["organ_id"] == demo.CITY)
    assert city["status_code"] == "03"


async def test_successor_recalls_a_document_its_predecessor_sent(exchange, world):
    sent = world["from_city"]
    await wait_for_inbox(await exchange.client(MINISTRY), sent["id"])
    answer = await world["clients"][demo.HONG_GAI].submit(
        build_status(
            sender=demo.HONG_GAI,
            response_for_organ_id=MINISTRY,
            response_for_document_id=sent["document_id"],
            status_code="13",
            description="thu hồi thay UBND thành phố Hạ Long",
        )
    )
    assert answer["kind"] == "status" and answer["recipients"] == [MINISTRY]


async def test_successor_updates_a_document_its_predecessor_sent(exchange, world):
    sent = world["to_update"]
    update = build_document(
        sender=demo.HONG_GAI,
        recipients=[MINISTRY],
        code_number="602",
        code_notation="BNV-VP",
        subject="Công văn số 602 (đính chính)",
        document_id=sent["document_id"],
        business_doc_type=2,
        attachments=[("cv.pdf", "application/pdf", b"%PDF-1.7 update")],
    )
    await world["clients"][demo.HONG_GAI].submit(update)
    trail = await (await exchange.client(MINISTRY)).trail(sent["id"])
    assert trail["recipients"][0]["disposition"] == "superseded"


async def test_sending_as_a_retired_code_names_the_successor(exchange, world):
    with pytest.raises(HubClientError) as caught:
        await world["clients"][demo.CITY].submit(document("504", [MINISTRY], sender=demo.CITY))
    assert (caught.value.status, caught.value.code) == (403, "sender.inactive")
    assert demo.HONG_GAI in caught.value.message


async def test_retired_without_successor_is_refused_naming_the_date(exchange, world):
    with pytest.raises(HubClientError) as caught:
        await world["clients"][MINISTRY].submit(document("505", [ABOLISHED]))
    assert (caught.value.status, caught.value.code) == (422, "recipient.inactive")
    assert "retired after 2025-06-30 without a successor" in caught.value.message


async def test_refuse_mode_names_the_successor(exchange, world):
    with pytest.raises(HubError) as caught:
        await route_recipients(exchange.hub.registry, (demo.CITY,), today(), "refuse", "To")
    assert caught.value.code == "recipient.inactive"
    assert demo.HONG_GAI in caught.value.message and "2025-06-30" in caught.value.message


async def test_registry_changes_are_in_the_ledger(exchange, world):
    rows = await exchange.hub.pool.fetch(
        "SELECT id, organ_id, detail FROM events WHERE event = 'registry' AND organ_id = $1 "
        "ORDER BY id",
        demo.CITY,
    )
    last = rows[-1]["detail"]
    assert (last["by"], last["effective_from"], last["reason"]) == ("test", "2025-07-01", "demo")
    assert last["changed"]["valid_to"] == [None, "2025-06-30"]
    # They are leaves like any other: sequenced, and the ledger recomputes to the same bytes.
    ids = [r["id"] for r in await exchange.hub.pool.fetch("SELECT id FROM events")]
    await exchange.hub.ledger.wait_indexed(ids, timeout=10)
    report = await check_ledger(PostgresLedger(exchange.hub.pool))
    assert report.ok and report.leaves >= len(ids), report.findings


async def test_signer_rules_follow_successors(exchange, world):
    await exchange.hub.registry.add_signer_rule(demo.CITY, "organization_identifier", "X-1")
    rules = await exchange.hub.registry.signer_rules(demo.HONG_GAI)
    assert (demo.CITY, "organization_identifier", "X-1") in rules
