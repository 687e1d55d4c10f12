"""The LGSP facade's cycle, and the same documents crossing /vdxp, /lgsp and /v1: each is the
same core underneath, so whatever one flavour sends, the others receive."""

from __future__ import annotations

import asyncio
import base64
import time

import aiohttp
import pytest

from exchange.auth import issue_credentials
from exchange.store.vdxp import PostgresVdxpSystems
from exchange.vdxp_credentials import issue_vdxp_credentials
from schemas import build_document, build_status
from tests.integration.test_exchange import wait_for_inbox
from tests.support.vdxp import SdkClient

VDXP_AGENCY = "000.00.00.G12"  # a DMS on SDKVXP
LGSP_AGENCY = "000.00.00.H36"  # a DMS on the provincial platform's REST API
V1_AGENCY = "000.00.00.H40"  # a DMS on /v1


class LgspClient:
    """A provincial-platform client: token by HTTP Basic, then bearer calls; HTTP 200 always."""

    def __init__(self, session: aiohttp.ClientSession, url: str, client_id: str, secret: str):
        self.session, self.url = session, url
        pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        self.basic = {"Authorization": f"Basic {pair}"}
        self.token = ""

    async def call(self, method: str, path: str, *, auth: dict | None = None, **kwargs) -> dict:
        headers = auth or ({"Authorization": f"Bearer {self.token}"} if self.token else {})
        async with self.session.request(
            method, f"{self.url}/lgsp{path}", headers=headers, **kwargs
        ) as r:
            assert r.status == 200, await r.text()
            answer = await r.json()
        assert set(answer) == {"status", "errorCode", "errorDesc", "data"}, answer
        return answer

    async def login(self) -> None:
        answer = await self.call("POST", "/token", auth=self.basic)
        assert answer["errorCode"] == "0", answer
        self.token = answer["data"]["access_token"]

    async def waiting_for(self, doc_id: str) -> dict:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for item in (await self.call("GET", "/vanbans"))["data"]:
                if item["docId"] == doc_id:
                    return item
            await asyncio.sleep(0.05)
        raise AssertionError(f"{doc_id} never waiting")


def document(sender: str, recipient: str, number: str) -> bytes:
    return build_document(
        sender=sender,
        recipients=[recipient],
        code_number=number,
        code_notation="UBND-VP",
        subject=f"Liên thông ba chiều số {number}",
    )


_STATUSES: dict = {}


def status_about(package: bytes, sender: str, organ: str, code: str) -> bytes:
    """One status package per (document, code): the same bytes when asked again."""
    key = (package, code)
    if key not in _STATUSES:
        text = package.decode()
        start = text.index("DocumentId>") + len("DocumentId>")
        _STATUSES[key] = build_status(
            sender=sender,
            response_for_organ_id=organ,
            response_for_document_id=text[start : text.index("<", start)],
            status_code=code,
            description="Đã nhận",
        )
    return _STATUSES[key]


async def listed(sdk: SdkClient, doc_id: str, messagetype: str) -> dict:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for item in await sdk.received(messagetype):
            if item["docId"] == doc_id:
                return item
        await asyncio.sleep(0.05)
    raise AssertionError(f"{doc_id} never listed")


@pytest.fixture(scope="module")
async def parties(exchange):
    await exchange.register(
        (VDXP_AGENCY, "Bộ Xây dựng"),
        (LGSP_AGENCY, "UBND tỉnh Lạng Sơn"),
        (V1_AGENCY, "UBND tỉnh Nam Định"),
    )
    store = PostgresVdxpSystems(exchange.hub.pool)
    creds = await issue_vdxp_credentials(store, exchange.hub.secrets, [VDXP_AGENCY])
    sdk = SdkClient(exchange.session, f"{exchange.url}/vdxp", creds.systemid, creds.secret)
    pair = await issue_credentials(exchange.hub.credentials, LGSP_AGENCY)
    lgsp = LgspClient(exchange.session, exchange.url, pair.client_id, pair.client_secret)
    await lgsp.login()
    return sdk, lgsp, await exchange.client(V1_AGENCY)


async def test_lgsp_cycle_and_refusals(exchange, parties):
    sdk, lgsp, v1 = parties
    units = (await lgsp.call("GET", "/donvilienthongs"))["data"]
    assert {
        "id": LGSP_AGENCY,
        "code": LGSP_AGENCY,
        "name": "UBND tỉnh Lạng Sơn",
        "pid": "",
    } in units

    package = document(LGSP_AGENCY, V1_AGENCY, "11")
    body = {"data": base64.b64encode(package).decode(), "loaiVanBan": "edoc"}
    sent = await lgsp.call("POST", "/vanbans", json=body)
    assert sent["errorCode"] == "0", sent
    doc_id = sent["data"]["docId"]
    await wait_for_inbox(v1, doc_id)
    assert await v1.fetch(doc_id) == package

    reply = document(V1_AGENCY, LGSP_AGENCY, "12")
    answered = await v1.submit(reply)
    item = await lgsp.waiting_for(answered["id"])
    assert (item["from"], item["to"], item["messageType"]) == (V1_AGENCY, LGSP_AGENCY, "edoc")
    got = await lgsp.call("GET", f"/vanbans/{answered['id']}")
    assert base64.b64decode(got["data"]) == reply
    processing = await lgsp.call("PUT", f"/vanbans/{answered['id']}", json={"status": "PROCESSING"})
    assert processing["errorCode"] == "0"
    await lgsp.waiting_for(answered["id"])  # PROCESSING changes nothing
    done = await lgsp.call("PUT", f"/vanbans/{answered['id']}", json={"status": "DONE"})
    assert done["errorCode"] == "0"
    assert answered["id"] not in [i["docId"] for i in (await lgsp.call("GET", "/vanbans"))["data"]]
    assert (await v1.trail(answered["id"]))["recipients"][0]["state"] == "acknowledged"

    refusals = [
        (("PUT", f"/vanbans/{answered['id']}"), {"json": {"status": "LATER"}}, "210"),
        (("POST", "/vanbans"), {"json": {"data": "***", "loaiVanBan": "edoc"}}, "210"),
        (("POST", "/vanbans"), {"json": {"data": "", "loaiVanBan": "x"}}, "210"),
        (("POST", "/vanbans"), {"data": b"not json"}, "211"),
        (("POST", "/vanbans"), {"json": {"data": base64.b64encode(b"<a").decode()}}, "301"),
        (("GET", "/vanbans/00000000-0000-0000-0000-000000000000"), {}, "601"),
        (("GET", "/nothing"), {}, "213"),
    ]
    for (method, path), kwargs, number in refusals:
        answer = await lgsp.call(method, path, **kwargs)
        assert (answer["status"], answer["errorCode"], answer["data"]) == ("FAIL", number, None), (
            path,
            answer,
        )
    stranger = document(V1_AGENCY, LGSP_AGENCY, "13")  # From is not the caller
    answer = await lgsp.call("POST", "/vanbans", json={"data": base64.b64encode(stranger).decode()})
    assert answer["errorCode"] == "401" and "[sender.mismatch]" in answer["errorDesc"]

    anonymous = LgspClient(exchange.session, exchange.url, "lt-nobody", "wrong")
    assert (await anonymous.call("POST", "/token", auth=anonymous.basic))["errorCode"] == "104"
    assert (await anonymous.call("GET", "/vanbans"))["errorCode"] == "101"
    anonymous.token = "forged"
    assert (await anonymous.call("GET", "/vanbans"))["errorCode"] == "102"


async def test_one_document_crosses_all_three_flavours(exchange, parties):
    sdk, lgsp, v1 = parties
    # VDXP -> /v1
    package = document(VDXP_AGENCY, V1_AGENCY, "21")
    sent = await sdk.send_edoc(package, "edoc", VDXP_AGENCY)
    assert sent["ErrorCode"] == "0", sent
    await wait_for_inbox(v1, sent["DocId"])
    assert await v1.fetch(sent["DocId"]) == package
    await v1.ack(sent["DocId"])
    sent_list = (await sdk.call("getSentEdocList"))["data"]
    assert [i["receiveStatus"] for i in sent_list if i["senderDocId"] == sent["DocId"]] == ["done"]
    status = await v1.submit(status_about(package, V1_AGENCY, VDXP_AGENCY, "01"))
    assert await listed(sdk, status["id"], "status")
    assert await sdk.get_edoc(status["id"]) == status_about(package, V1_AGENCY, VDXP_AGENCY, "01")

    # /v1 -> VDXP
    reply = document(V1_AGENCY, VDXP_AGENCY, "22")
    answered = await v1.submit(reply)
    deadline = time.monotonic() + 15
    while answered["id"] not in [i["docId"] for i in await sdk.received()]:
        assert time.monotonic() < deadline, "never listed"
        await asyncio.sleep(0.05)
    assert await sdk.get_edoc(answered["id"]) == reply
    await sdk.update_status(answered["id"], "done")
    assert (await v1.trail(answered["id"]))["recipients"][0]["state"] == "acknowledged"
    back = status_about(reply, VDXP_AGENCY, V1_AGENCY, "03")
    answer = await sdk.send_edoc(back, "status", VDXP_AGENCY)
    assert answer["ErrorCode"] == "0", answer
    await wait_for_inbox(v1, answer["DocId"])
    assert await v1.fetch(answer["DocId"]) == back

    # LGSP -> VDXP, and VDXP -> LGSP
    onward = document(LGSP_AGENCY, VDXP_AGENCY, "23")
    posted = await lgsp.call("POST", "/vanbans", json={"data": base64.b64encode(onward).decode()})
    doc_id = posted["data"]["docId"]
    while doc_id not in [i["docId"] for i in await sdk.received()]:
        assert time.monotonic() < deadline + 15, "never listed"
        await asyncio.sleep(0.05)
    assert await sdk.get_edoc(doc_id) == onward
    await sdk.update_status(doc_id, "fail")
    trail = await (await exchange.client(LGSP_AGENCY)).trail(doc_id)
    assert ("import_failed", VDXP_AGENCY) in [(e["event"], e["organ_id"]) for e in trail["events"]]

    back = document(VDXP_AGENCY, LGSP_AGENCY, "24")
    sent = await sdk.send_edoc(back, "edoc", VDXP_AGENCY)
    await lgsp.waiting_for(sent["DocId"])
    got = await lgsp.call("GET", f"/vanbans/{sent['DocId']}")
    assert base64.b64decode(got["data"]) == back
    assert (await lgsp.call("PUT", f"/vanbans/{sent['DocId']}", json={"status": "FAIL"}))[
        "errorCode"
    ] == "0"
    sent_list = (await sdk.call("getSentEdocList"))["data"]
    assert [i["receiveStatus"] for i in sent_list if i["senderDocId"] == sent["DocId"]] == ["fail"]
