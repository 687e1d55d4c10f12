"""Business flows through the real API, PostgreSQL and RabbitMQ: revocations, updates and
replacements linked to what they concern, each recipient's status as a state machine, the
dispositions users see, and every bad input with its code."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time

import pytest

from adapters.client import HubClient, HubClientError
from schemas import Replacement, build_document, build_status
from tests.conftest import sample

G22, H41, H14, G17 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H14", "000.00.00.G17"
SENDER, ONE, TWO, THREE = "000.00.00.G05", "000.00.00.H51", "000.00.10.H51", "000.00.20.H51"
OTHER = "000.00.00.G06"


@pytest.fixture(scope="module")
async def clients(exchange):
    await exchange.register(
        (G22, "Văn phòng Chính phủ"),
        (H41, "UBND Tỉnh Nghệ An"),
        (H14, "UBND Tỉnh Cao Bằng"),
        (G17, "Sở Thông tin truyền thông Hải Phòng"),
        (SENDER, "Bộ Tư pháp"),
        (OTHER, "Bộ Tài chính"),
        (ONE, "UBND tỉnh Quảng Ngãi"),
        (TWO, "UBND thành phố Quảng Ngãi"),
        (THREE, "UBND huyện Bình Sơn"),
    )
    return {
        c: await exchange.client(c) for c in (G22, H41, H14, G17, SENDER, OTHER, ONE, TWO, THREE)
    }


async def arrived(client: HubClient, package_id: str, timeout: float = 15.0) -> None:
    """Wait until ``package_id`` is in the client's inbox (it travels through the broker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(i["id"] == package_id for i in (await client.inbox(limit=500))["items"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{package_id} never reached the inbox")


async def refused(client: HubClient, data: bytes, status: int, code: str) -> HubClientError:
    with pytest.raises(HubClientError) as caught:
        await client.submit(data)
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.message
    assert "Traceback" not in caught.value.message
    return caught.value


def original(number: str, recipients, sender: str = SENDER, **kw) -> bytes:
    return build_document(
        sender=sender,
        recipients=list(recipients),
        code_number=number,
        code_notation="BTP-VP",
        **{"subject": f"Công văn số {number}", **kw},
    )


_SERIAL = itertools.count()


def status(sender: str, to: str, document_id: str, code: str) -> bytes:
    """A status; each call makes other bytes (a re-sent status is seldom byte-identical)."""
    return build_status(
        sender=sender,
        response_for_organ_id=to,
        response_for_document_id=document_id,
        status_code=code,
        description=f"lần {next(_SERIAL)}",
    )


async def copies(client: HubClient, package_id: str) -> dict[str, tuple]:
    return {
        organ: (c["disposition"], c["status_code"], c["answer"])
        for organ, c in (await client.dispositions(package_id)).items()
    }


async def test_the_field_samples_of_the_three_flows_end_where_the_flows_imply(clients):
    """The original documents the samples name are sent first; then the update, the
    replacement and the revocation samples, and the statuses, byte for byte."""
    send = clients[G22].submit
    ids = {}
    for key, document_id in (
        ("A", "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT"),
        ("B", "000.00.00.G22,2014/01/30,7806/VPCP-TTĐT"),
        ("C", "000.00.04.G14,2012/08/06,267/VPCP-TTĐT"),
    ):
        sent = await send(original(key, (H41, H14, G17), sender=G22, document_id=document_id))
        ids[key] = sent["id"]
        for organ in (H41, H14, G17):
            await arrived(clients[organ], sent["id"])
            if (key, organ) != ("C", H14):  # H14 never takes C: its recall is settled at once
                await clients[organ].fetch(sent["id"])

    update = await send(sample("edoc_update.edxml"))
    assert await copies(clients[G22], ids["A"]) == dict.fromkeys(
        (H41, H14, G17), ("superseded", None, None)
    )
    first = await clients[H41].submit(sample("status.edxml"))
    again = await clients[H41].submit(sample("status_inbox_01.edxml"))  # 01 again: harmless
    assert (again["id"], again["duplicate"]) == (first["id"], True)
    await clients[H41].submit(sample("status_change-rejection_16.edxml"))
    assert (await copies(clients[G22], ids["A"]))[H41] == ("superseded", "16", "refused")

    replacement = await send(sample("edoc_replacement.edxml"))
    assert await copies(clients[G22], ids["B"]) == {
        H41: ("superseded", None, None),
        H14: ("superseded", None, None),
        G17: ("active", None, None),  # not in its OrganIdList
    }
    await clients[H41].submit(sample("status_rejection_02.edxml"))

    revocation = await send(sample("edoc_revocation.edxml"))
    assert await copies(clients[G22], ids["C"]) == {
        H41: ("recall_requested", None, None),
        H14: ("recalled", None, None),
        G17: ("recall_requested", None, None),
    }
    with pytest.raises(HubClientError) as gone:
        await clients[H14].fetch(ids["C"])
    assert (gone.value.status, gone.value.code) == (410, "package.recalled")
    assert ids["C"] not in [i["id"] for i in (await clients[H14].inbox(limit=500))["items"]]
    await clients[H41].submit(sample("status_change-acceptance_15.edxml"))
    assert (await copies(clients[G22], ids["C"]))[H41] == ("recalled", "15", "agreed")

    for name in ("acceptance_03", "assignment_04", "processing_05", "finish_06"):
        await clients[H41].submit(sample(f"status_{name}.edxml"))
    await arrived(clients[H41], revocation["id"])
    await clients[H41].fetch(revocation["id"])
    await clients[G22].submit(sample("status_cancellation_13.edxml"))
    assert (await copies(clients[G22], revocation["id"]))[H41] == ("recall_requested", "06", None)

    trail = await clients[G22].trail(ids["C"])
    assert [link["relation"] for link in trail["links"]] == ["revoked_by"]
    assert trail["links"][0]["package"] == revocation["id"]
    assert (await clients[G22].trail(update["id"]))["links"][0]["package"] == ids["A"]
    assert (await clients[G22].trail(replacement["id"]))["links"][0]["relation"] == "replaces"
    # H14 sees its own copy only, and that it was recalled.
    mine = await clients[H14].trail(ids["C"])
    assert [(r["organ_id"], r["disposition"]) for r in mine["recipients"]] == [(H14, "recalled")]
    moves = [e["detail"]["to"] for e in mine["events"] if e["event"] == "disposition"]
    assert moves == ["recalled"]


async def test_statuses_move_forward_only(exchange, clients):
    sent = await clients[SENDER].submit(original("201", (ONE,)))
    doc = sent["document_id"]
    answer = clients[ONE].submit
    await answer(status(ONE, SENDER, doc, "03"))  # 01 never sent: skipping forward is fine
    await answer(status(ONE, SENDER, doc, "05"))
    again = await answer(status(ONE, SENDER, doc, "05"))  # 05 repeats, recorded each time
    assert again["duplicate"] is False
    back = await refused(clients[ONE], status(ONE, SENDER, doc, "04"), 409, "status.out_of_order")
    assert "05 (processing)" in back.message
    await refused(clients[ONE], status(ONE, SENDER, doc, "02"), 409, "status.out_of_order")
    await answer(status(ONE, SENDER, doc, "06"))
    await refused(clients[ONE], status(ONE, SENDER, doc, "06"), 409, "status.out_of_order")
    assert (await copies(clients[SENDER], sent["id"]))[ONE] == ("active", "06", None)

    rejected = await clients[SENDER].submit(original("202", (ONE,)))
    doc = rejected["document_id"]
    first = await answer(status(ONE, SENDER, doc, "01"))
    repeated = status(ONE, SENDER, doc, "01")
    repeat = await answer(repeated)
    assert (repeat["id"], repeat["duplicate"]) == (first["id"], True)
    blobs = exchange.hub.blobs
    assert blobs.path_for(bytes.fromhex(first["digest"])).exists()
    assert not blobs.path_for(hashlib.sha256(repeated).digest()).exists()  # not kept
    await answer(status(ONE, SENDER, doc, "02"))
    for code in ("03", "02", "06"):
        await refused(clients[ONE], status(ONE, SENDER, doc, code), 409, "status.out_of_order")
    trail = await clients[SENDER].trail(rejected["id"])
    assert [e["detail"]["status_code"] for e in trail["events"] if e["event"] == "status"] == [
        "01",
        "02",
    ]


async def test_a_recall_settles_at_once_where_nobody_took_it_and_waits_elsewhere(clients):
    sent = await clients[SENDER].submit(original("301", (ONE, TWO, THREE)))
    doc = sent["document_id"]
    for organ in (ONE, TWO, THREE):
        await arrived(clients[organ], sent["id"])
    await clients[ONE].fetch(sent["id"])
    await clients[TWO].ack(sent["id"])  # acknowledged counts as taken
    recall = await clients[SENDER].recall(SENDER, doc, [ONE, TWO, THREE], code_number="302")
    assert await copies(clients[SENDER], sent["id"]) == {
        ONE: ("recall_requested", None, None),
        TWO: ("recall_requested", None, None),
        THREE: ("recalled", None, None),
    }
    # A second recall while one is pending, by package or by status 13.
    again = clients[SENDER].recall(SENDER, doc, [ONE], code_number="303")
    with pytest.raises(HubClientError) as pending:
        await again
    assert (pending.value.status, pending.value.code) == (409, "recall.pending")
    await refused(clients[SENDER], status(SENDER, ONE, doc, "13"), 409, "recall.pending")
    # The answers: about the revocation's DocumentId, or the document's own.
    await clients[ONE].answer(ONE, SENDER, recall["document_id"], agree=True)
    await clients[TWO].submit(status(TWO, SENDER, doc, "16"))
    assert await copies(clients[SENDER], sent["id"]) == {
        ONE: ("recalled", "15", "agreed"),
        TWO: ("recall_refused", "16", "refused"),
        THREE: ("recalled", None, None),
    }
    # A new recall after a 16 is allowed; 14 is one vendor's 15, recorded as received.
    await clients[SENDER].recall_copy(SENDER, TWO, doc)
    await clients[TWO].submit(status(TWO, SENDER, doc, "14"))
    two = (await clients[SENDER].dispositions(sent["id"]))[TWO]
    assert (two["disposition"], two["status_code"], two["status_received"]) == (
        "recalled",
        "15",
        "14",
    )
    for organ in (ONE, THREE):
        with pytest.raises(HubClientError) as gone:
            await clients[organ].fetch(sent["id"])
        assert (gone.value.status, gone.value.code) == (410, "package.recalled")
    assert await clients[SENDER].fetch(sent["id"])  # the sender still reads its own
    # A statuses about a recalled copy, and answers with nothing pending, are out of order.
    await refused(clients[ONE], status(ONE, SENDER, doc, "05"), 409, "status.out_of_order")


async def test_bad_inputs_of_the_flows(clients):
    sent = await clients[SENDER].submit(original("401", (ONE, TWO)))
    doc = sent["document_id"]
    await arrived(clients[ONE], sent["id"])
    stranger = await clients[OTHER].submit(original("402", (ONE,), sender=OTHER))

    def revocation(document_id: str, sender: str = SENDER) -> bytes:
        from schemas import build_revocation

        return build_revocation(
            revoked_document_id=document_id,
            sender=sender,
            recipients=[ONE],
            code_number="9",
            code_notation="TH",
            subject="Thu hồi",
        )

    unknown = await refused(
        clients[SENDER], revocation(f"{SENDER},2020/01/01,1/NONE"), 422, "document.unknown"
    )
    assert "1/NONE" in unknown.message
    assert unknown.body["error"]["field"] == "Bussiness/DocumentId"
    await refused(clients[SENDER], revocation(stranger["document_id"]), 403, "document.not_sender")
    for attempt, code in (
        (clients[SENDER].update(SENDER, f"{SENDER},2020/01/01,2/NONE", [ONE]), "document.unknown"),
        (clients[SENDER].update(SENDER, stranger["document_id"], [ONE]), "document.not_sender"),
    ):
        with pytest.raises(HubClientError) as caught:
            await attempt
        assert caught.value.code == code
    # A status about a document never sent to the caller.
    await refused(clients[THREE], status(THREE, SENDER, doc, "01"), 403, "status.not_party")
    # 15 or 16 with nothing pending; 13 from a recipient.
    for code in ("15", "16"):
        await refused(clients[ONE], status(ONE, SENDER, doc, code), 409, "status.out_of_order")
    await refused(clients[ONE], status(ONE, SENDER, doc, "13"), 403, "status.not_party")
    # A replacement naming an organ that never received the replaced document.
    with pytest.raises(HubClientError) as wrong:
        await clients[SENDER].replace(SENDER, [Replacement(doc, (THREE,))], [ONE, THREE])
    assert (wrong.value.status, wrong.value.code) == (422, "document.not_recipient")
    assert THREE in wrong.value.message
    # Nothing of the refused packages was stored or changed.
    assert await copies(clients[SENDER], sent["id"]) == {
        ONE: ("active", None, None),
        TWO: ("active", None, None),
    }


async def test_a_replacement_of_several_documents_and_the_document_view(clients):
    first = await clients[SENDER].submit(original("501", (ONE, TWO)))
    second = await clients[SENDER].submit(original("502", (ONE,)))
    replacement = await clients[SENDER].replace(
        SENDER,
        [first["document_id"], Replacement(second["document_id"], (ONE,))],
        [ONE, TWO],
        code_number="503",
    )
    for sent in (first, second):
        states = await copies(clients[SENDER], sent["id"])
        assert {d for d, _, _ in states.values()} == {"superseded"}
    await clients[ONE].answer(ONE, SENDER, replacement["document_id"], agree=True)
    assert (await copies(clients[SENDER], first["id"]))[ONE] == ("superseded", "15", "agreed")
    assert (await copies(clients[SENDER], second["id"]))[ONE] == ("superseded", "15", "agreed")
    assert (await copies(clients[SENDER], first["id"]))[TWO] == ("superseded", None, None)

    view = await clients[SENDER].document(first["document_id"])
    listed = {p["id"]: p for p in view["packages"]}
    assert {first["id"], replacement["id"]} <= set(listed)
    assert listed[replacement["id"]]["business_doc_type"] == 3
    assert any(p["kind"] == "status" for p in view["packages"])
    # A recipient sees its own copy only; a stranger sees nothing.
    theirs = await clients[TWO].document(first["document_id"])
    seen = {r["organ_id"] for p in theirs["packages"] for r in p["recipients"]}
    assert seen == {TWO}
    assert (await clients[OTHER].document(first["document_id"]))["packages"] == []
    with pytest.raises(HubClientError) as missing:
        await clients[SENDER]._json("GET", "/v1/documents")
    assert (missing.value.status, missing.value.code) == (400, "request.invalid_parameter")


async def test_packages_only_labelled_as_update_or_revocation_concern_their_own_document_id(
    clients,
):
    """Field systems often label a re-send as an update (type 2) without naming the document:
    it concerns the sender's earlier version of the same DocumentId."""
    sent = await clients[SENDER].submit(original("601", (ONE,)))
    doc = sent["document_id"]
    resend = await clients[SENDER].submit(
        original("601", (ONE,), business_doc_type=2, subject="Công văn số 601 (gửi lại)")
    )
    assert resend["document_id"] == doc
    assert (await copies(clients[SENDER], sent["id"]))[ONE] == ("superseded", None, None)
    assert (await clients[SENDER].trail(resend["id"]))["links"][0]["package"] == sent["id"]
    # A labelled update of a DocumentId never sent before is taken as it is.
    alone = await clients[SENDER].submit(original("602", (ONE,), business_doc_type=2))
    assert (await clients[SENDER].trail(alone["id"]))["links"] == []
    # A labelled revocation recalls the newest version; of nothing, it is refused.
    await clients[SENDER].submit(
        original("601", (ONE,), business_doc_type=1, subject="Thu hồi công văn số 601")
    )
    assert (await copies(clients[SENDER], resend["id"]))[ONE] == ("recalled", None, None)
    await refused(
        clients[SENDER], original("603", (ONE,), business_doc_type=1), 422, "document.unknown"
    )


async def test_two_recalls_at_once_one_wins_the_other_is_pending(clients):
    sent = await clients[SENDER].submit(original("701", (ONE,)))
    await arrived(clients[ONE], sent["id"])
    await clients[ONE].fetch(sent["id"])
    doc = sent["document_id"]
    results = await asyncio.gather(
        clients[SENDER].recall(SENDER, doc, [ONE], code_number="702"),
        clients[SENDER].recall(SENDER, doc, [ONE], code_number="703"),
        clients[SENDER].submit(status(SENDER, ONE, doc, "13")),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, HubClientError)]
    assert len(won) == 1 and [e.code for e in lost] == ["recall.pending"] * 2, results
    one = (await clients[SENDER].dispositions(sent["id"]))[ONE]
    assert (one["disposition"], one["awaiting_answer"]) == ("recall_requested", True)
