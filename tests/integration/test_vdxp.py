"""The VDXP facade driven as SDKVXP drives it (tests/support/vdxp.py): the full DMS cycle,
authentication, the body quirks, and every refusal in the SDK's envelope."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import time

import aiohttp
import pytest

from exchange.http.serve import running_hub
from exchange.store.vdxp import PostgresVdxpSystems
from exchange.vdxp_credentials import issue_vdxp_credentials
from schemas import build_document, build_status
from tests.conftest import make_settings, sample
from tests.support.vdxp import SdkClient

MINISTRY = "000.00.00.G09"
PROVINCE = "000.00.00.H27"
DISTRICT = "000.00.12.H27"
COMMUNE = "000.01.12.H27"
STRANGER = "000.00.00.H28"


@pytest.fixture(scope="module")
async def dms(exchange):
    """One SDK client per system: the ministry, the province (a centre that also serves the
    district and the commune), the stranger."""
    await exchange.register(
        (MINISTRY, "Bộ Giáo dục và Đào tạo"),
        (PROVINCE, "UBND tỉnh Hải Dương"),
        (DISTRICT, "UBND huyện Nam Sách"),
        (COMMUNE, "UBND xã An Lâm"),
        (STRANGER, "UBND tỉnh Hà Nam"),
    )
    clients = {}
    for organs in ([MINISTRY], [PROVINCE, DISTRICT, COMMUNE], [STRANGER]):
        clients[organs[0]] = await sdk_client(exchange, organs)
    return clients


async def sdk_client(exchange, organs: list[str], system_id: str | None = None) -> SdkClient:
    store = PostgresVdxpSystems(exchange.hub.pool)
    creds = await issue_vdxp_credentials(store, exchange.hub.secrets, organs, system_id)
    return SdkClient(exchange.session, f"{exchange.url}/vdxp", creds.systemid, creds.secret)


def document(number: str, sender: str = MINISTRY, recipients=(PROVINCE,)) -> bytes:
    return build_document(
        sender=sender,
        recipients=list(recipients),
        code_number=number,
        code_notation="BGDĐT-VP",
        subject=f"Về việc thử nghiệm liên thông số {number}",
        attachments=[("cv.pdf", "application/pdf", b"%PDF-1.4 thu nghiem")],
    )


async def wait_listed(client: SdkClient, doc_id: str, messagetype: str = "edoc") -> dict:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for item in await client.received(messagetype):
            if item["docId"] == doc_id:
                return item
        await asyncio.sleep(0.05)
    raise AssertionError(f"{doc_id} never listed")


def assert_fail(answer: dict, number: str, code: str) -> None:
    assert answer["status"] == "FAIL" and answer["ErrorCode"] == number, answer
    assert f"[{code}]" in answer["ErrorDesc"]
    assert answer["DocId"] == "" and answer["data"] == ""


async def test_full_dms_cycle(dms):
    ministry, province = dms[MINISTRY], dms[PROVINCE]
    agencies = await ministry.call("getAgenciesList")
    assert agencies["ErrorCode"] == "0"
    assert {PROVINCE, DISTRICT} <= {a["code"] for a in agencies["data"]}
    assert all(None not in a.values() for a in agencies["data"])

    package = document("101")
    sent = await ministry.send_edoc(package, "edoc", MINISTRY)
    assert (sent["status"], sent["ErrorCode"]) == ("OK", "0") and sent["DocId"]
    doc_id = sent["DocId"]
    assert "/" not in doc_id and ".." not in doc_id

    item = await wait_listed(province, doc_id)
    assert (item["from"], item["to"], item["messageType"]) == (MINISTRY, PROVINCE, "edoc")
    assert (await province.call("countReceiveEdoc", body=b"{}"))["count"] >= 1
    assert await province.get_edoc(doc_id) == package
    assert (await province.update_status(doc_id, "done"))["ErrorCode"] == "0"
    # the map still carries docId, docid and status: the item is gone all the same
    assert doc_id not in [i["docId"] for i in await province.received("edoc")]
    again = await province.update_status(doc_id, "done")  # the SDK retries: idempotent
    assert again["ErrorCode"] == "0"

    status = build_status(
        sender=PROVINCE,
        response_for_organ_id=MINISTRY,
        response_for_document_id=document_id(package),
        status_code="03",
        description="Đã tiếp nhận",
    )
    back = await province.send_edoc(status, "status", PROVINCE)
    assert back["ErrorCode"] == "0", back
    listed = await wait_listed(ministry, back["DocId"], "status")
    assert listed["messageType"] == "status" and listed["from"] == PROVINCE
    assert await ministry.get_edoc(back["DocId"]) == status
    assert (await ministry.update_status(back["DocId"]))["ErrorCode"] == "0"

    sent_list = (await ministry.call("getSentEdocList"))["data"]
    copies = [i for i in sent_list if i["senderDocId"] == doc_id]
    assert [(c["toCode"], c["receiveStatus"]) for c in copies] == [(PROVINCE, "done")]
    assert all(None not in c.values() for c in copies)


def document_id(package: bytes) -> str:
    text = package.decode()
    start = text.index("DocumentId>") + len("DocumentId>")
    return text[start : text.index("<", start)]


async def test_received_bytes_are_exact_and_the_crlf_is_stripped_once(dms):
    """The status fixture ends with its own CRLF: only the SDK's is removed."""
    ministry, province = dms[MINISTRY], dms[PROVINCE]
    package = document("102").rstrip(b"\n") + b"\r\n"
    sent = await ministry.send_edoc(package, "edoc", MINISTRY)
    assert sent["ErrorCode"] == "0", sent
    await wait_listed(province, sent["DocId"])
    got = await province.get_edoc(sent["DocId"])
    assert hashlib.sha256(got).digest() == hashlib.sha256(package).digest()
    raw = await province.call("downloadEdoc", {"docId": sent["DocId"]}, method="GET", raw=True)
    assert raw == package
    # the same bytes again (a retried sendEdoc) give the same DocId
    assert (await ministry.send_edoc(package, "edoc", MINISTRY))["DocId"] == sent["DocId"]


async def test_a_centre_sends_and_receives_for_its_organs_only(dms):
    ministry, province = dms[MINISTRY], dms[PROVINCE]
    sent = await ministry.send_edoc(document("103", recipients=[COMMUNE]), "edoc", MINISTRY)
    item = await wait_listed(province, sent["DocId"])
    assert item["to"] == COMMUNE
    reply = build_document(
        sender=DISTRICT,
        recipients=[MINISTRY],
        code_number="7",
        code_notation="UBND",
        subject="Báo cáo",
    )
    answer = await province.send_edoc(reply, "edoc", DISTRICT)
    assert answer["ErrorCode"] == "0", answer
    await wait_listed(ministry, answer["DocId"])
    # for an organ it does not serve, or a package from another than `from`
    assert_fail(await province.send_edoc(reply, "edoc", STRANGER), "112", "vdxp.organ_not_served")
    assert_fail(await province.send_edoc(reply, "edoc", COMMUNE), "401", "sender.mismatch")
    # a document to the commune is not the stranger's to read
    assert_fail(
        await dms[STRANGER].call("getEdoc", {"docId": sent["DocId"]}, body=b"{}"),
        "601",
        "package.not_found",
    )


async def test_fail_is_recorded_for_the_sender(exchange, dms):
    ministry, province = dms[MINISTRY], dms[PROVINCE]
    sent = await ministry.send_edoc(document("104"), "edoc", MINISTRY)
    await wait_listed(province, sent["DocId"])
    assert (await province.update_status(sent["DocId"], "fail"))["ErrorCode"] == "0"
    assert (await province.update_status(sent["DocId"], "fail"))["ErrorCode"] == "0"  # a retry
    copies = [
        i
        for i in (await ministry.call("getSentEdocList"))["data"]
        if i["senderDocId"] == sent["DocId"]
    ]
    assert [c["receiveStatus"] for c in copies] == ["fail"]
    v1 = await exchange.client(MINISTRY)
    trail = await v1.trail(sent["DocId"])
    events = [(e["event"], e["organ_id"]) for e in trail["events"]]
    assert events.count(("import_failed", PROVINCE)) == 1
    # the copy stays listed; a later done takes it off
    await wait_listed(province, sent["DocId"])
    await province.update_status(sent["DocId"], "done")
    copies = [
        i
        for i in (await ministry.call("getSentEdocList"))["data"]
        if i["senderDocId"] == sent["DocId"]
    ]
    assert [c["receiveStatus"] for c in copies] == ["done"]


async def test_wrong_revoked_and_unknown_systems_are_refused_in_the_envelope(exchange, dms):
    good = dms[MINISTRY]
    wrong = SdkClient(exchange.session, good.endpoint, MINISTRY, "not-the-secret")
    assert_fail(await wrong.call("getAgenciesList"), "111", "vdxp.bad_signature")
    unknown = SdkClient(exchange.session, good.endpoint, "nobody", "x")
    assert_fail(await unknown.call("getReceivedEdocList"), "111", "vdxp.bad_signature")
    answer = await good.call("getEdoc", {"docId": "x"}, body=b"{}")
    assert_fail(answer, "601", "package.not_found")

    victim = await sdk_client(exchange, [STRANGER], system_id="stranger-dms")
    assert (await victim.call("getAgenciesList"))["ErrorCode"] == "0"
    assert await PostgresVdxpSystems(exchange.hub.pool).revoke("stranger-dms")
    assert_fail(await victim.call("getAgenciesList"), "111", "vdxp.bad_signature")
    async with exchange.session.post(f"{exchange.url}/vdxp/getAgenciesList") as r:
        assert r.status == 200
        assert_fail(await r.json(), "110", "vdxp.unsigned")


async def test_a_tampered_parameter_breaks_the_signature(exchange, dms):
    client = dms[MINISTRY]
    headers = client.headers("application/json")
    signed = dict(headers)["XroadVnpt-sign-header"].replace(MINISTRY, PROVINCE)
    headers = [(k, signed if k == "XroadVnpt-sign-header" else v) for k, v in headers]
    async with exchange.session.post(
        f"{exchange.url}/vdxp/getReceivedEdocList", headers=headers
    ) as r:
        assert_fail(await r.json(), "111", "vdxp.bad_signature")


async def test_core_refusals_come_back_mapped(dms):
    ministry = dms[MINISTRY]
    cases = [
        (b"<edXML", "301", "xml.malformed"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>', "302", "xml.dtd_forbidden"),
        (b"<edXML/>", "310", "edxml.namespace"),
        (document("201", recipients=["000.00.00.H99"]), "403", "recipient.unknown"),
        (sample("malformed_edoc.edxml"), None, None),
    ]
    for body, number, code in cases:
        answer = await ministry.send_edoc(body, "edoc", MINISTRY)
        if number is None:
            assert answer["status"] == "FAIL" and answer["DocId"] == "", answer
            continue
        assert_fail(answer, number, code)
    empty = await ministry.call(
        "sendEdoc", {"from": MINISTRY}, body=b"\r\n", content_type="application/octet-stream"
    )
    assert_fail(empty, "220", "body.empty")
    ministry.params.put("hash-file", "00")
    cut = await ministry.call(
        "sendEdoc", body=document("202") + b"\r\n", content_type="application/octet-stream"
    )
    assert_fail(cut, "224", "vdxp.hash_mismatch")
    bad_status = await ministry.call("updateStatus", {"status": "maybe", "docid": "x"}, body=b"{}")
    assert_fail(bad_status, "210", "request.invalid_parameter")
    assert_fail(
        await ministry.call("deleteAgency", {"AgencyCode": MINISTRY}, body=b"{}"),
        "610",
        "vdxp.registry_managed",
    )
    registered = await ministry.call(
        "registerAgency", body=b'{"id":"1","name":"B","pcode":"x","code":"000.00.00.G09"}'
    )
    assert registered["ErrorCode"] == "0", registered
    other = await ministry.call("registerAgency", body=b'{"code":"000.00.00.H27"}')
    assert_fail(other, "610", "vdxp.registry_managed")


async def test_paths_as_the_sdk_builds_them(exchange, dms):
    client = dms[MINISTRY]
    client.endpoint = f"{exchange.url}/vdxp/"  # a configured trailing slash: //operation
    try:
        assert (await client.call("getAgenciesListQD20"))["ErrorCode"] == "0"
        units = await client.call("getSynchronizeUnit")
        assert {type(u["deleted"]) for u in units["data"]} == {bool}
    finally:
        client.endpoint = f"{exchange.url}/vdxp"
    assert_fail(await client.call("noSuchOperation"), "213", "http.not_found")
    async with exchange.session.get(f"{exchange.url}/vdxp/sendEdoc") as r:
        assert (r.status, r.headers["Allow"]) == (405, "POST")
        assert_fail(await r.json(), "214", "http.method_not_allowed")


async def raw_request(url: str, method: str, path: str, headers, body: bytes) -> dict:
    """Header octets exactly as given (UTF-8, as sendEdoc's HttpURLConnection writes them),
    repeated names kept; the JSON answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    head += [f"Host: {host}:{port}", f"Content-Length: {len(body)}", "Connection: close"]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"200", answer[:300]
    return json.loads(rest.partition(b"\r\n\r\n")[2])


async def test_raw_utf8_octets_and_colliding_names_verify(exchange, dms):
    """After a getEdoc into a Vietnamese folder, the next sendEdoc carries that filePath as raw
    UTF-8 octets, and docId next to docid: the signature still verifies, on the octets."""
    ministry = dms[MINISTRY]
    ministry.params.put("filePath", "/srv/văn bản đến")
    ministry.params.put("docId", "stale-one")
    ministry.params.put("docid", "another-one")
    package = document("301")
    ministry.params.put("hash-file", hashlib.sha256(package).hexdigest())  # padded: also fine
    ministry.params.put("from", MINISTRY)
    ministry.params.put("messagetype", "edoc")
    headers = ministry.headers("application/octet-stream")
    assert sum(k.lower() == "xroadvnpt-docid" for k, _ in headers) == 2
    answer = await raw_request(exchange.url, "POST", "/vdxp/sendEdoc", headers, package + b"\r\n")
    assert (answer["status"], answer["ErrorCode"]) == ("OK", "0"), answer
    # a byte changed in the signed JSON: refused
    forged = [(k, v.replace("văn", "vân")) for k, v in headers]
    answer = await raw_request(exchange.url, "POST", "/vdxp/sendEdoc", forged, package + b"\r\n")
    assert_fail(answer, "111", "vdxp.bad_signature")


async def test_missing_parameters_are_named(exchange, dms):
    centre = await sdk_client(exchange, [PROVINCE, DISTRICT], system_id="centre-2")
    answer = await centre.call("getEdoc", body=b"{}")  # a fresh map: no docId at all
    assert_fail(answer, "212", "vdxp.missing_parameter")
    assert "docId" in answer["ErrorDesc"]
    answer = await centre.call(
        "sendEdoc", body=document("401") + b"\r\n", content_type="application/octet-stream"
    )
    assert_fail(answer, "212", "vdxp.missing_parameter")  # a centre must say `from`
    assert_fail(
        await centre.call("updateStatus", {"docid": "x"}, body=b"{}"),
        "210",
        "request.invalid_parameter",
    )  # no status


async def test_an_unreachable_database_is_an_envelope_too(tmp_path):
    """A DMS must never get HTML, plain text or a non-envelope JSON: 2.0.1 reads an unparsable
    getReceivedEdocList answer as "OK, nothing new"."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    settings = make_settings(tmp_path).replace(
        database_url=f"postgresql://postgres@127.0.0.1:{closed}/lienthong_test",
        amqp_url=f"amqp://guest:guest@127.0.0.1:{closed}/",
    )
    async with (
        running_hub(settings, ready_within=None) as (_, url),
        aiohttp.ClientSession() as session,
    ):
        client = SdkClient(session, f"{url}/vdxp", MINISTRY, "secret")
        assert_fail(await client.call("getReceivedEdocList"), "901", "service.unavailable")
        async with session.get(f"{url}/lgsp/vanbans") as r:
            body = await r.json()
            assert (r.status, body["status"], body["errorCode"]) == (200, "FAIL", "901")


async def test_a_centre_registers_a_new_unit_below_it_and_serves_it(exchange, dms):
    province, ministry = dms[PROVINCE], dms[MINISTRY]
    new_unit = "000.02.12.H27"  # a commune under the district the province serves
    body = json.dumps(
        {"id": "9", "name": "UBND xã Mới", "pcode": PROVINCE, "code": new_unit, "mail": ""}
    ).encode()
    assert (await province.call("registerAgency", body=body))["ErrorCode"] == "0"
    exchange.codes.append(new_unit)  # its queue is removed with the others
    assert (await province.call("registerAgency", body=body))["ErrorCode"] == "0"  # served now
    codes = {a["code"]: a for a in (await ministry.call("getAgenciesList"))["data"]}
    assert codes[new_unit]["pid"] == DISTRICT and codes[new_unit]["name"] == "UBND xã Mới"
    # routed at once; delivered once the hub has declared the new agency's queue (it hears
    # of registry changes), the outbox retrying until then
    sent = await ministry.send_edoc(document("501", recipients=[new_unit]), "edoc", MINISTRY)
    assert sent["ErrorCode"] == "0", sent
    assert (await wait_listed(province, sent["DocId"]))["to"] == new_unit
    # an existing code, or one under nobody the system serves, stays the operators'
    for code in (STRANGER, "000.01.00.H28", MINISTRY):
        refused = await province.call(
            "registerAgency", body=json.dumps({"code": code, "name": "x"}).encode()
        )
        assert_fail(refused, "610", "vdxp.registry_managed")


@pytest.mark.parametrize(
    "sign_header",
    [
        "not json",
        '["XroadVnpt-systemid"]',
        '{"XroadVnpt-systemid":"000.00.00.G09","XroadVnpt-systemid":"000.00.00.H27"}',
        '{"XroadVnpt-systemid":1}',
        '{"XroadVnpt-x":"' + "a" * 5000 + '"}',
    ],
    ids=["not-json", "array", "duplicate-key", "number", "too-long"],
)
async def test_malformed_signed_headers_are_unsigned(exchange, dms, sign_header):
    headers = [("XroadVnpt-sign-header", sign_header), ("XroadVnpt-hash-header", "00")]
    async with exchange.session.post(f"{exchange.url}/vdxp/getAgenciesList", headers=headers) as r:
        assert r.status == 200
        assert_fail(await r.json(), "110", "vdxp.unsigned")


async def test_two_signatures_are_refused(exchange, dms):
    headers = dms[MINISTRY].headers("application/json")
    headers += [(k, v) for k, v in headers if k == "XroadVnpt-sign-header"]
    async with exchange.session.post(f"{exchange.url}/vdxp/getAgenciesList", headers=headers) as r:
        assert_fail(await r.json(), "110", "vdxp.unsigned")


async def test_field_samples_cross_the_facade_byte_for_byte(exchange):
    """Real packages: the ministry's update to a province, and the province's status back
    (the status sample ends with its own CRLF CRLF: only the SDK's CRLF is removed)."""
    await exchange.register(("000.00.00.G22", "Văn phòng Chính phủ"), ("000.00.00.H41", "Nghệ An"))
    ministry = await sdk_client(exchange, ["000.00.00.G22"])
    province = await sdk_client(exchange, ["000.00.00.H41"])
    update = sample("edoc_update.edxml")
    recipients = ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"]
    for code in recipients[1:]:
        await exchange.register((code, code))
    original = build_document(  # the document the update names
        sender="000.00.00.G22",
        recipients=recipients,
        code_number="7806",
        code_notation="VPCP-TTĐT",
        subject="Văn bản gốc",
        document_id="000.00.00.G22,2014/02/30,7806/VPCP-TTĐT",
    )
    first = await ministry.send_edoc(original, "edoc", "000.00.00.G22")
    assert first["ErrorCode"] == "0", first
    await wait_listed(province, first["DocId"])
    sent = await ministry.send_edoc(update, "edoc", "000.00.00.G22")
    assert sent["ErrorCode"] == "0", sent
    await wait_listed(province, sent["DocId"])
    assert await province.get_edoc(sent["DocId"]) == update
    await province.update_status(sent["DocId"])
    status = sample("status.edxml")
    assert status.endswith(b"\r\n")
    back = await province.send_edoc(status, "status", "000.00.00.H41")
    assert back["ErrorCode"] == "0", back
    await wait_listed(ministry, back["DocId"], "status")
    assert await ministry.get_edoc(back["DocId"]) == status


async def _raw_answer(url: str, head: bytes) -> tuple[bytes, dict]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return status_line, json.loads(rest.partition(b"\r\n\r\n")[2])


async def test_heads_refused_before_routing_get_the_envelope_too(exchange):
    many = b"".join(b"X-Filler-%d: x\r\n" % i for i in range(120))
    status, body = await _raw_answer(
        exchange.url, b"POST /vdxp/getAgenciesList HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"
    )
    assert status.split()[1] == b"200"
    assert_fail(body, "206", "request.header_too_large")
    status, body = await _raw_answer(
        exchange.url, b"GET /lgsp/vanbans/" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"
    )
    assert status.split()[1] == b"200" and body["errorCode"] == "205", body
    status, body = await _raw_answer(  # /v1 keeps its own shape
        exchange.url, b"GET /v1/agencies HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"
    )
    assert status.split()[1] == b"431" and body["error"]["code"] == "request.header_too_large"


async def test_secrets_follow_a_key_rotation(exchange, dms):
    from exchange.sealing import SecretBox
    from exchange.vdxp_credentials import load_system

    old, new = os.urandom(32), os.urandom(32)
    store = PostgresVdxpSystems(exchange.hub.pool)
    creds = await issue_vdxp_credentials(store, SecretBox([old]), [MINISTRY], "rotating")
    rotated = SecretBox([new, old])
    system = await load_system(store, rotated, "rotating")
    assert system is not None and system.secret == creds.secret.encode()
    sealed, _ = await store.system("rotating")
    assert not rotated.needs_reseal(sealed)  # now under the new key
    assert (await load_system(store, SecretBox([new]), "rotating")).secret == system.secret
    assert await load_system(store, SecretBox([os.urandom(32)]), "rotating") is None


async def test_update_status_takes_docid_not_the_stale_docId(dms):
    """A DMS that fetches several documents before confirming them sends the last getEdoc's
    docId next to the right docid."""
    ministry, province = dms[MINISTRY], dms[PROVINCE]
    first = (await ministry.send_edoc(document("601"), "edoc", MINISTRY))["DocId"]
    second = (await ministry.send_edoc(document("602"), "edoc", MINISTRY))["DocId"]
    for doc_id in (first, second):
        await wait_listed(province, doc_id)
        await province.get_edoc(doc_id)
    assert province.params.get("docId") == second
    assert (await province.update_status(first))["ErrorCode"] == "0"
    waiting = [i["docId"] for i in await province.received()]
    assert first not in waiting and second in waiting
    await province.update_status(second)
