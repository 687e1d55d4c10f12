"""End to end through the real API, PostgreSQL and RabbitMQ: submit, route, inbox, fetch, ack,
statuses and trails, with the field samples going through byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

from adapters.client import HubClient, HubClientError
from schemas import build_document, build_status
from tests.conftest import sample

MINISTRY = "000.00.00.G01"
PROVINCE = "000.00.00.H49"
DISTRICT = "000.00.10.H49"
COMMUNE = "000.05.10.H49"
BYSTANDER = "000.00.20.H49"

FIELD_AGENCIES = [
    ("000.00.00.A80", "UBND xã Hòa Tiến"),
    ("28.22.H17", "UBND xã Hòa Sơn"),
    ("000.00.00.G22", "Văn phòng Chính phủ"),
    ("000.00.00.H41", "UBND Tỉnh Nghệ An"),
    ("000.00.00.H14", "UBND Tỉnh Cao Bằng"),
    ("000.00.00.G17", "Sở Thông tin truyền thông Hải Phòng"),
]


async def wait_for_inbox(client: HubClient, package_id: str, timeout: float = 15.0) -> dict:
    """Poll the inbox until ``package_id`` shows up (deliveries travel through the broker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in (await client.inbox(limit=500))["items"]:
            if item["id"] == package_id:
                return item
        await asyncio.sleep(0.05)
    raise AssertionError(f"package {package_id} never reached the inbox")


@pytest.fixture(scope="module")
async def agencies(exchange):
    await exchange.register(
        (MINISTRY, "Bộ Nội vụ"),
        (PROVINCE, "UBND tỉnh Quảng Ninh"),
        (DISTRICT, "UBND thành phố Hạ Long"),
        (COMMUNE, "UBND phường Hồng Gai"),
        (BYSTANDER, "UBND thành phố Cẩm Phả"),
        *FIELD_AGENCIES,
    )
    return {
        code: await exchange.client(code)
        for code in (MINISTRY, PROVINCE, DISTRICT, COMMUNE, BYSTANDER)
    }


def document(number: str, recipients=(PROVINCE, DISTRICT, COMMUNE), **kw) -> bytes:
    return build_document(
        sender=kw.pop("sender", MINISTRY),
        recipients=list(recipients),
        code_number=number,
        code_notation="BNV-VP",
        subject=f"Công văn số {number}",
        attachments=kw.pop("attachments", [("cv.pdf", "application/pdf", b"%PDF-1.7 test")]),
        **kw,
    )


async def test_three_levels_reach_exactly_three_inboxes(exchange, agencies):
    sent = await agencies[MINISTRY].submit(document("101"))
    assert sent["recipients"] == [PROVINCE, DISTRICT, COMMUNE]
    assert sent["duplicate"] is False
    for code in (PROVINCE, DISTRICT, COMMUNE):
        item = await wait_for_inbox(agencies[code], sent["id"])
        assert item["sender"] == MINISTRY and item["kind"] == "edoc"
        assert item["digest"] == sent["digest"]
    # A sentinel for the bystander, sent after: once it is in, a wrong route would have been too.
    sentinel = await agencies[MINISTRY].submit(document("101s", recipients=[BYSTANDER]))
    await wait_for_inbox(agencies[BYSTANDER], sentinel["id"])
    stray = [i for i in (await agencies[BYSTANDER].inbox())["items"] if i["id"] == sent["id"]]
    assert stray == []
    trail = await agencies[MINISTRY].trail(sent["id"])
    delivered = sorted(e["organ_id"] for e in trail["events"] if e["event"] == "delivered")
    routed = sorted(e["organ_id"] for e in trail["events"] if e["event"] == "routed")
    assert delivered == routed == sorted([PROVINCE, DISTRICT, COMMUNE])
    assert trail["events"][0]["event"] == "submitted"


async def test_recipient_fetches_exact_bytes_acks_and_inbox_empties(exchange, agencies):
    package = document("102", recipients=[COMMUNE])
    sent = await agencies[MINISTRY].submit(package)
    assert sent["digest"] == hashlib.sha256(package).hexdigest()
    await wait_for_inbox(agencies[COMMUNE], sent["id"])
    assert await agencies[COMMUNE].fetch(sent["id"]) == package
    assert await agencies[MINISTRY].fetch(sent["id"]) == package  # the sender may read it too
    first = await agencies[COMMUNE].ack(sent["id"])
    assert first["already"] is False
    again = await agencies[COMMUNE].ack(sent["id"])
    assert again["already"] is True
    ids = [i["id"] for i in (await agencies[COMMUNE].inbox())["items"]]
    assert sent["id"] not in ids
    trail = await agencies[MINISTRY].trail(sent["id"])
    events = [(e["event"], e["organ_id"]) for e in trail["events"]]
    assert ("fetched", COMMUNE) in events
    assert events.count(("acknowledged", COMMUNE)) == 1
    assert trail["recipients"][0]["state"] == "acknowledged"


async def test_statuses_flow_back_and_show_in_the_trail(exchange, agencies):
    sent = await agencies[MINISTRY].submit(document("103", recipients=[PROVINCE, COMMUNE]))
    for code in (PROVINCE, COMMUNE):
        await wait_for_inbox(agencies[code], sent["id"])
        for status in ("01", "03"):
            answer = await agencies[code].submit(
                build_status(
                    sender=code,
                    response_for_organ_id=MINISTRY,
                    response_for_document_id=sent["document_id"],
                    status_code=status,
                    description="test",
                )
            )
            assert answer["kind"] == "status" and answer["recipients"] == [MINISTRY]
            await wait_for_inbox(agencies[MINISTRY], answer["id"])
    trail = await agencies[MINISTRY].trail(sent["id"])
    statuses = sorted(
        (e["organ_id"], e["detail"]["status_code"])
        for e in trail["events"]
        if e["event"] == "status"
    )
    assert statuses == [(PROVINCE, "01"), (PROVINCE, "03"), (COMMUNE, "01"), (COMMUNE, "03")]


async def test_identical_bytes_are_idempotent_and_document_id_reuse_conflicts(exchange, agencies):
    package = document("104", recipients=[PROVINCE])
    first = await agencies[MINISTRY].submit(package)
    second = await agencies[MINISTRY].submit(package)
    assert second["id"] == first["id"] and second["duplicate"] is True
    other = (
        document("104", recipients=[PROVINCE], subject_suffix=None)
        if False
        else document(
            "104", recipients=[PROVINCE], attachments=[("cv.pdf", "application/pdf", b"other")]
        )
    )
    with pytest.raises(HubClientError) as info:
        await agencies[MINISTRY].submit(other)
    assert info.value.status == 409 and info.value.code == "package.duplicate_document_id"
    update = document(
        "104",
        recipients=[PROVINCE],
        business_doc_type=2,
        attachments=[("cv.pdf", "application/pdf", b"corrected")],
    )
    updated = await agencies[MINISTRY].submit(update)
    assert updated["id"] != first["id"] and updated["document_id"] == first["document_id"]
    # The province sees one delivery per package, not one per post.
    await wait_for_inbox(agencies[PROVINCE], updated["id"])
    items = [
        i for i in (await agencies[PROVINCE].inbox(limit=500))["items"] if i["id"] == first["id"]
    ]
    assert len(items) == 1


async def test_inbox_pages_with_a_cursor_oldest_first(exchange, agencies):
    sent = []
    for n in range(5):
        sent.append(
            (await agencies[MINISTRY].submit(document(f"2{n:02d}", recipients=[DISTRICT])))["id"]
        )
    await wait_for_inbox(agencies[DISTRICT], sent[-1])
    seen, cursor = [], None
    while True:
        page = await agencies[DISTRICT].inbox(after=cursor, limit=2)
        if not page["items"]:
            break
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        cursor = page["next"]
    mine = [i for i in seen if i in sent]
    assert mine == sent  # oldest first, none twice, none lost
    assert len(seen) == len(set(seen))


async def test_field_samples_go_through_byte_for_byte(exchange, agencies):
    senders = {
        code: await exchange.client(code)
        for code in ("000.00.00.A80", "000.00.00.G22", "000.00.00.H41")
    }
    receivers = {
        code: await exchange.client(code)
        for code in (
            "000.28.22.H17",
            "000.00.00.H41",
            "000.00.00.H14",
            "000.00.00.G17",
            "000.00.00.G22",
        )
    }
    plan = (
        [
            ("edoc_new.edxml", "000.00.00.A80", ["000.28.22.H17"]),
            (
                "edoc_update.edxml",
                "000.00.00.G22",
                ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"],
            ),
            (
                "edoc_replacement.edxml",
                "000.00.00.G22",
                ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"],
            ),
            (
                "edoc_revocation.edxml",
                "000.00.00.G22",
                ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"],
            ),
        ]
        + [
            (name, "000.00.00.H41", ["000.00.00.G22"])
            # One recipient's statuses move forward (tests/integration/test_flows.py sends
            # the others: a second 01, 02, and the answers 15 and 16).
            for name in (
                "status.edxml",
                "status_acceptance_03.edxml",
                "status_assignment_04.edxml",
                "status_processing_05.edxml",
                "status_finish_06.edxml",
            )
        ]
        + [
            # A recall (13) goes the other way: the sender tells the recipient.
            ("status_cancellation_13.edxml", "000.00.00.G22", ["000.00.00.H41"]),
        ]
    )
    # The documents the update, the replacement and the revocation concern come first.
    for number, document_id in (
        ("7806", "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT"),
        ("7807", "000.00.00.G22,2014/01/30,7806/VPCP-TTĐT"),
        ("267", "000.00.04.G14,2012/08/06,267/VPCP-TTĐT"),
    ):
        concerned = build_document(
            sender="000.00.00.G22",
            recipients=["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"],
            code_number=number,
            code_notation="VPCP-TTĐT",
            subject="Văn bản gốc",
            document_id=document_id,
        )
        await senders["000.00.00.G22"].submit(concerned)
    last_document = None
    for name, sender, recipients in plan:
        data = sample(name)
        sent = await senders[sender].submit(data)
        assert sent["recipients"] == recipients, name
        for code in recipients:
            await wait_for_inbox(receivers[code], sent["id"])
            assert await receivers[code].fetch(sent["id"]) == data, name
        if name.startswith("edoc_") and sender == "000.00.00.G22":
            last_document = sent["id"]
    # The six statuses about G22's document (five from H41, the recall from G22) show in its
    # trail.
    trail = await receivers["000.00.00.G22"].trail(last_document)
    codes = sorted(
        e["detail"]["status_code"] for e in trail["events"] if e["event"] in ("status", "recalled")
    )
    assert [e["detail"]["status_code"] for e in trail["events"] if e["event"] == "recalled"] == [
        "13"
    ]
    assert codes == sorted(["01", "03", "04", "05", "06", "13"])


async def test_outbox_relay_publishes_what_a_crash_left_behind(exchange, agencies):
    """A package committed but never published (the process died) is still delivered."""
    import uuid

    from exchange.delivery import choose_document
    from exchange.ports import NewPackage
    from schemas import OrganId, parse_package

    package = document("301", recipients=[BYSTANDER])
    parsed = parse_package(package)
    digest = hashlib.sha256(package).digest()
    path = exchange.hub.blobs.path_for(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(package)
    # Record only: the dispatcher is never told, exactly as if we crashed after COMMIT.
    new = NewPackage(
        id=uuid.uuid4(),
        package=parsed,
        digest=digest,
        size=len(package),
        recipients=(BYSTANDER,),
        routing_keys=(OrganId.parse(BYSTANDER).routing_key,),
        retry_after=0.0,
        report=None,
    )
    result = await exchange.hub.packages.insert(new, choose_document)
    pending = await exchange.hub.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE delivery_id = $1", result.outgoing[0].delivery_id
    )
    assert pending == 1
    await wait_for_inbox(agencies[BYSTANDER], str(result.id), timeout=20)
    assert await agencies[BYSTANDER].fetch(str(result.id)) == package
    left = await exchange.hub.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE delivery_id = $1", result.outgoing[0].delivery_id
    )
    assert left == 0


async def test_a_redelivered_message_makes_one_inbox_entry(exchange, agencies):
    sent = await agencies[MINISTRY].submit(document("302", recipients=[BYSTANDER]))
    await wait_for_inbox(agencies[BYSTANDER], sent["id"])
    row = await exchange.hub.pool.fetchrow(
        "SELECT d.id, d.package_id, d.recipient, d.inbox_seq FROM deliveries d "
        "WHERE d.package_id = $1::uuid",
        sent["id"],
    )
    from exchange.ports import Outgoing
    from schemas import OrganId

    # Publish the same delivery again, as the relay would after a lost confirm.
    await exchange.hub.broker.publish(
        Outgoing(
            row["id"],
            row["package_id"],
            row["recipient"],
            OrganId.parse(row["recipient"]).routing_key,
            bytes.fromhex(sent["digest"]),
        )
    )
    # A sentinel behind it in the same queue: once it is delivered, the copy was consumed.
    sentinel = await agencies[MINISTRY].submit(document("302s", recipients=[BYSTANDER]))
    await wait_for_inbox(agencies[BYSTANDER], sentinel["id"])
    after = await exchange.hub.pool.fetchrow(
        "SELECT inbox_seq FROM deliveries WHERE id = $1", row["id"]
    )
    assert after["inbox_seq"] == row["inbox_seq"]
    delivered = await exchange.hub.pool.fetchval(
        "SELECT count(*) FROM events WHERE package_id = $1::uuid AND event = 'delivered'",
        sent["id"],
    )
    assert delivered == 1


async def test_two_documents_racing_for_one_document_id(exchange, agencies):
    first = document("401", recipients=[PROVINCE])
    second = document(
        "401", recipients=[PROVINCE], attachments=[("cv.pdf", "application/pdf", b"another text")]
    )
    results = await asyncio.gather(
        agencies[MINISTRY].submit(first),
        agencies[MINISTRY].submit(second),
        return_exceptions=True,
    )
    accepted = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, HubClientError)]
    assert len(accepted) == 1 and len(refused) == 1, results
    assert refused[0].code == "package.duplicate_document_id"


async def test_statuses_come_only_from_parties_to_the_document(exchange, agencies):
    """A recipient may not recall (13), the sender sends only 13, a stranger sends nothing,
    and a status about a document the hub never saw is refused as such."""
    sent = await agencies[MINISTRY].submit(document("402", recipients=[DISTRICT]))
    await wait_for_inbox(agencies[DISTRICT], sent["id"])
    before = await exchange.hub.pool.fetchval("SELECT count(*) FROM packages")

    def status(sender: str, to: str, code: str, document_id: str = sent["document_id"]) -> bytes:
        return build_status(
            sender=sender,
            response_for_organ_id=to,
            response_for_document_id=document_id,
            status_code=code,
        )

    refusals = [
        (DISTRICT, status(DISTRICT, MINISTRY, "13"), 403, "status.not_party"),
        (MINISTRY, status(MINISTRY, DISTRICT, "03"), 403, "status.not_party"),
        (BYSTANDER, status(BYSTANDER, MINISTRY, "01"), 403, "status.not_party"),
        (BYSTANDER, status(BYSTANDER, DISTRICT, "13"), 422, "status.unknown_document"),
        (
            DISTRICT,
            status(DISTRICT, MINISTRY, "01", "000.00.00.G01,2020/01/01,9/X"),
            422,
            "status.unknown_document",
        ),
    ]
    for caller, package, want_status, want_code in refusals:
        with pytest.raises(HubClientError) as info:
            await agencies[caller].submit(package)
        assert (info.value.status, info.value.code) == (want_status, want_code), caller
        assert "Traceback" not in info.value.message
    assert await exchange.hub.pool.fetchval("SELECT count(*) FROM packages") == before
    digests = [hashlib.sha256(package).digest() for _, package, _, _ in refusals]
    rejected = await exchange.hub.pool.fetch(
        "SELECT digest, detail->>'code' AS code FROM events WHERE event = 'rejected' "
        "AND digest = ANY($1::bytea[])",
        digests,
    )
    assert sorted((r["digest"], r["code"]) for r in rejected) == sorted(
        (d, code) for d, (_, _, _, code) in zip(digests, refusals, strict=True)
    )
    # The parties' own statuses still go through.
    reply = await agencies[DISTRICT].submit(status(DISTRICT, MINISTRY, "01"))
    recall = await agencies[MINISTRY].submit(status(MINISTRY, DISTRICT, "13"))
    assert reply["recipients"] == [MINISTRY] and recall["recipients"] == [DISTRICT]
    trail = await agencies[MINISTRY].trail(sent["id"])
    kinds = [
        (e["event"], e["organ_id"]) for e in trail["events"] if e["event"] in ("status", "recalled")
    ]
    assert kinds == [("status", DISTRICT), ("recalled", MINISTRY)]


async def test_a_recipient_sees_only_its_own_part_of_the_trail(exchange, agencies):
    """The trail follows the evidence bundle's visibility: a recipient sees the package's own
    events, its own delivery and the statuses it sent or received, never another recipient's."""
    sent = await agencies[MINISTRY].submit(document("403", recipients=[PROVINCE, COMMUNE]))
    for code in (PROVINCE, COMMUNE):
        await wait_for_inbox(agencies[code], sent["id"])
        await agencies[code].fetch(sent["id"])
        reply = await agencies[code].submit(
            build_status(
                sender=code,
                response_for_organ_id=MINISTRY,
                response_for_document_id=sent["document_id"],
                status_code="01",
            )
        )
        await wait_for_inbox(agencies[MINISTRY], reply["id"])
    full = await agencies[MINISTRY].trail(sent["id"])
    assert {e["organ_id"] for e in full["events"] if e["event"] == "status"} == {PROVINCE, COMMUNE}
    assert [r["organ_id"] for r in full["recipients"]] == [PROVINCE, COMMUNE]
    own = await agencies[PROVINCE].trail(sent["id"])
    assert [r["organ_id"] for r in own["recipients"]] == [PROVINCE]
    seen = {(e["event"], e["organ_id"]) for e in own["events"]}
    assert ("status", PROVINCE) in seen and ("fetched", PROVINCE) in seen
    assert ("submitted", MINISTRY) in seen
    assert not any(organ == COMMUNE for _, organ in seen), seen


async def test_identical_bytes_posted_at_once_give_202_and_200_with_one_id(exchange, agencies):
    """A client that times out and retries while its first attempt still runs gets the first
    answer again (200, same id), never a conflict with itself."""
    client = agencies[MINISTRY]
    url = f"{exchange.url}/v1/packages"
    headers = {**await client._headers(), "Content-Type": "application/xml"}

    async def post(data: bytes) -> tuple[int, dict]:
        async with exchange.session.post(url, data=data, headers=headers) as resp:
            return resp.status, await resp.json()

    for attempt in range(10):
        package = document(f"5{attempt:02d}", recipients=[PROVINCE])
        (s1, a1), (s2, a2) = await asyncio.gather(post(package), post(package))
        assert sorted((s1, s2)) == [200, 202], (attempt, a1, a2)
        assert a1["id"] == a2["id"]
        assert {a1["duplicate"], a2["duplicate"]} == {True, False}
        deliveries = await exchange.hub.pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE package_id = $1::uuid", a1["id"]
        )
        assert deliveries == 1
