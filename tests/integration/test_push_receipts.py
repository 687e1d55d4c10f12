"""Signed delivery receipts: one per copy a recipient's system took (2xx on push, ack on pull),
listed beside the acceptance receipt, carried in the evidence bundle and checked offline."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile

import pytest

from exchange import hubkeys
from exchange.audit import load_anchors, verify_bundle
from signing import verify_detached
from tests.integration.test_faults import until
from tests.integration.test_ledger import _rewrite
from tests.integration.test_push import hub_with, pushed_agency, send, state_is
from tests.support.receivers import Receiver


@pytest.fixture(scope="module")
async def ex(tmp_path_factory):
    async with hub_with(tmp_path_factory.mktemp("receipts")) as exchange:
        yield exchange


async def _receipts(ex, client, package_id: str) -> dict:
    headers = {"Authorization": f"Bearer {await client.token()}"}
    async with ex.session.get(f"{ex.url}/v1/packages/{package_id}/receipts", headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def _three_ways(ex):
    """A document to an agency on push, one that pulls and acks, one that never acks."""
    receiver = Receiver()
    await receiver.start()
    pushed, _ = await pushed_agency(ex, receiver.url)
    pulled, idle = "000.00.71.H31", "000.00.72.H31"
    await ex.register((pulled, "UBND kéo"), (idle, "UBND chờ"))
    package_id, body = await send(ex, [pushed, pulled, idle])
    await until(lambda: state_is(ex, package_id, pushed, "acknowledged"))
    puller = await ex.client(pulled)
    await until(lambda: _in_inbox(puller, package_id))
    await puller.fetch(package_id)
    await puller.ack(package_id)
    await receiver.stop()
    return package_id, body, pushed, pulled, idle, puller


async def _in_inbox(client, package_id: str) -> bool:
    return package_id in [i["id"] for i in (await client.inbox())["items"]]


async def test_receipts_list_acceptance_and_each_delivery(ex, tmp_path):
    package_id, body, pushed, pulled, idle, puller = await _three_ways(ex)
    listing = await _receipts(ex, ex.sender, package_id)
    kinds = [(i["type"], i["recipient"]) for i in listing["items"]]
    assert kinds == [("acceptance", None), ("delivery", pushed), ("delivery", pulled)]
    anchor = tmp_path / "hub.pem"
    anchor.write_text(hubkeys.pem_chain(hubkeys.chain_of(ex.hub.key)))
    anchors = load_anchors([anchor])
    digest = hashlib.sha256(body).hexdigest()
    via = {}
    for item in listing["items"][1:]:
        receipt = item["receipt"]
        signed = base64.b64decode(receipt["body"])
        check = await verify_detached(signed, base64.b64decode(receipt["signature"]), anchors)
        assert check.ok, check.problem
        claims = json.loads(signed)
        assert claims == receipt["claims"]
        assert claims["type"] == "lienthong.delivery-receipt"
        assert (claims["package_id"], claims["digest"]) == (package_id, digest)
        leaf = await ex.hub.pool.fetchrow(
            "SELECT event, organ_id FROM events WHERE ledger_index = $1",
            claims["ledger"]["leaf_index"],
        )
        assert (leaf["event"], leaf["organ_id"]) == ("acknowledged", item["recipient"])
        via[item["recipient"]] = (claims["via"], claims["webhook_id"] is not None)
    assert via == {pushed: ("push", True), pulled: ("pull", False)}
    # made once and kept
    again = await _receipts(ex, ex.sender, package_id)
    assert again == listing
    # a recipient sees neither another recipient's pushes in the trail ...
    trail = await puller.trail(package_id)
    assert not [e for e in trail["events"] if e["event"].startswith("push")]
    assert [
        e for e in (await ex.sender.trail(package_id))["events"] if e["event"] == "push_attempt"
    ]
    # ... nor its delivery receipt: the acceptance receipt and its own only
    own = await _receipts(ex, puller, package_id)
    assert [(i["type"], i["recipient"]) for i in own["items"]] == [
        ("acceptance", None),
        ("delivery", pulled),
    ]


async def test_the_bundle_carries_delivery_receipts_and_audit_checks_them(ex, tmp_path):
    package_id, _, pushed, pulled, _, _ = await _three_ways(ex)
    headers = {"Authorization": f"Bearer {await ex.sender.token()}"}
    async with ex.session.get(f"{ex.url}/v1/packages/{package_id}/evidence", headers=headers) as r:
        data = await r.read()
    path = tmp_path / "evidence.asice"
    path.write_bytes(data)
    anchor = tmp_path / "hub.pem"
    anchor.write_text(hubkeys.pem_chain(hubkeys.chain_of(ex.hub.key)))
    anchors = load_anchors([anchor])
    checks = await verify_bundle(path, anchors)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    items = {c.item for c in checks}
    for organ in (pushed, pulled):
        assert f"delivery receipt {package_id} {organ} claims" in items
    # one recipient's receipt passed off as another's: signed, but the claims do not agree
    forged = tmp_path / "forged.asice"
    member = f"delivery-receipts/{package_id}/{pushed}"
    other = f"delivery-receipts/{package_id}/{pulled}"
    with open(path, "rb") as source:
        original = source.read()
    archive = zipfile.ZipFile(io.BytesIO(original))
    swapped = {
        f"{member}.json": archive.read(f"{other}.json"),
        f"{member}.p7s": archive.read(f"{other}.p7s"),
    }
    forged.write_bytes(_rewrite(original, swapped))
    failed = [c for c in await verify_bundle(forged, anchors) if not c.ok]
    assert [c.item for c in failed] == [f"delivery receipt {package_id} {pushed} claims"]
    # a receipt whose bytes were changed no longer verifies
    claims = json.loads(archive.read(f"{member}.json"))
    claims["digest"] = "0" * 64
    tampered = tmp_path / "tampered.asice"
    tampered.write_bytes(_rewrite(original, {f"{member}.json": json.dumps(claims).encode()}))
    failed = [c.item for c in await verify_bundle(tampered, anchors) if not c.ok]
    assert f"delivery receipt {package_id} {pushed}" in failed
