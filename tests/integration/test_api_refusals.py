"""Every refusal over real HTTP: a precise code, the right status, no stack trace, nothing kept."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from exchange.auth import issue_credentials, issue_token
from exchange.http.errors import ERROR_CODES
from exchange.http.serve import running_hub
from schemas import build_document
from tests.conftest import make_settings, sample
from tests.support.http import assert_error

SENDER = "000.00.00.G03"
RECIPIENT = "000.00.00.H30"
OTHER = "000.00.00.H31"


@pytest.fixture(scope="module")
async def ctx(exchange):
    await exchange.register((SENDER, "Bộ Tư pháp"), (RECIPIENT, "UBND tỉnh A"), (OTHER, "UBND B"))
    return {
        "sender": await exchange.token(SENDER),
        "recipient": await exchange.token(RECIPIENT),
        "other": await exchange.token(OTHER),
    }


def doc(number: str, recipients=(RECIPIENT,), sender=SENDER) -> bytes:
    return build_document(
        sender=sender,
        recipients=list(recipients),
        code_number=number,
        code_notation="BTP",
        subject="Thử",
        attachments=[("a.pdf", "application/pdf", b"%PDF-1.4")],
    )


async def post(exchange, token: str | None, body: bytes, ctype: str = "application/xml"):
    headers = {"Content-Type": ctype}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with exchange.session.post(
        f"{exchange.url}/v1/packages", data=body, headers=headers
    ) as r:
        return r.status, await r.json()


async def package_count(exchange) -> int:
    return await exchange.hub.pool.fetchval("SELECT count(*) FROM packages")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&lol3;</edXML>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE edXML [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&xxe;</edXML>"""


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (sample("malformed_edoc.edxml"), 400, "xml.malformed"),
        (BILLION_LAUGHS, 400, "xml.dtd_forbidden"),
        (XXE, 400, "xml.dtd_forbidden"),
        (b'<edXML xmlns="urn:not-edxml"/>', 422, "edxml.namespace"),
        (b"", 400, "body.empty"),
    ],
    ids=["malformed", "billion-laughs", "xxe", "namespace", "empty"],
)
async def test_unreadable_bodies(exchange, ctx, body, status, code):
    before = await package_count(exchange)
    got_status, got = await post(exchange, ctx["sender"], body)
    error = assert_error(got_status, got, status, code)
    if code == "xml.malformed":
        assert error["line"] == 74 and "74" in error["message"]
    if code == "xml.dtd_forbidden":
        assert "root:" not in str(got)
    assert await package_count(exchange) == before


async def test_schema_violation_names_the_element(exchange, ctx):
    body = doc("11").replace(
        b"<edXML:Priority>0</edXML:Priority>", b"<edXML:Priority>9</edXML:Priority>"
    )
    status, got = await post(exchange, ctx["sender"], body)
    error = assert_error(status, got, 422, "edxml.schema")
    assert "Priority" in error["message"] and error["line"] > 1


async def test_bad_base64_and_manifest_mismatches(exchange, ctx):
    good = doc("12")
    encoded = base64.b64encode(b"%PDF-1.4")
    status, got = await post(exchange, ctx["sender"], good.replace(encoded, b"!!not*base64!!"))
    assert_error(status, got, 422, "edxml.base64")
    # Drop the attachment: the manifest now references nothing.
    start = good.index(b"<AttachmentEncoded>")
    end = good.index(b"</AttachmentEncoded>") + len(b"</AttachmentEncoded>")
    status, got = await post(exchange, ctx["sender"], good[:start] + good[end:])
    assert_error(status, got, 422, "edxml.manifest_missing_attachment")
    # Drop the manifest: the attachment is now unlisted.
    start = good.index(b"<edXML:edXMLBody>")
    end = good.index(b"</edXML:edXMLBody>") + len(b"</edXML:edXMLBody>")
    status, got = await post(exchange, ctx["sender"], good[:start] + good[end:])
    assert_error(status, got, 422, "edxml.attachment_not_in_manifest")


async def test_unknown_recipient_and_forged_sender(exchange, ctx):
    before = await package_count(exchange)
    status, got = await post(exchange, ctx["sender"], doc("13", recipients=["000.00.00.H99"]))
    error = assert_error(status, got, 422, "recipient.unknown")
    assert "000.00.00.H99" in error["message"]
    status, got = await post(exchange, ctx["other"], doc("14"))
    error = assert_error(status, got, 403, "sender.mismatch")
    assert error["field"] == "From/OrganId"
    assert await package_count(exchange) == before


async def test_retired_recipient_goes_to_its_successor(exchange, ctx):
    """The default retired_recipient = redirect (refusing is tested in test_succession.py)."""
    from exchange.registry import Agency

    old = Agency(
        "000.00.00.H32",
        "UBND tỉnh cũ",
        None,
        "province",
        valid_to=__import__("datetime").date(2025, 6, 30),
        successor=RECIPIENT,
    )
    await exchange.hub.registry.upsert([old])
    exchange.codes.append(old.code)
    status, got = await post(exchange, ctx["sender"], doc("15", recipients=[old.code]))
    assert status == 202, got
    assert (got["recipients"], got["redirected_from"]) == ([RECIPIENT], {RECIPIENT: old.code})


async def test_wrong_media_type(exchange, ctx):
    status, got = await post(exchange, ctx["sender"], doc("16"), ctype="application/json")
    assert_error(status, got, 415, "request.unsupported_media_type")


async def test_tokens_missing_wrong_expired_and_revoked(exchange, ctx):
    status, got = await post(exchange, None, doc("17"))
    assert_error(status, got, 401, "auth.missing")
    status, got = await post(exchange, "not-a-token", doc("17"))
    assert_error(status, got, 401, "auth.invalid_token")
    creds = await issue_credentials(exchange.hub.credentials, SENDER)
    expired, _ = await issue_token(
        exchange.hub.credentials, creds.client_id, creds.client_secret, -5
    )
    status, got = await post(exchange, expired, doc("17"))
    assert_error(status, got, 401, "auth.token_expired")
    async with exchange.session.post(
        f"{exchange.url}/v1/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": "wrong",
        },
    ) as r:
        assert_error(r.status, await r.json(), 401, "auth.invalid_client")
    # HTTP Basic works too, as OAuth2 recommends.
    async with exchange.session.post(
        f"{exchange.url}/v1/token",
        data={"grant_type": "client_credentials"},
        headers={
            "Authorization": "Basic "
            + base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
        },
    ) as r:
        assert r.status == 200
        body = await r.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    from exchange.auth import revoke_credentials

    assert await revoke_credentials(exchange.hub.credentials, creds.client_id)
    exchange.hub.tokens = type(exchange.hub.tokens)()  # drop the few-seconds cache
    status, got = await post(exchange, body["access_token"], doc("17"))
    assert_error(status, got, 401, "auth.invalid_token")


async def test_other_agencies_get_404_not_403(exchange, ctx):
    status, sent = await post(exchange, ctx["sender"], doc("18"))
    assert status == 202
    headers = {"Authorization": f"Bearer {ctx['other']}"}
    for method, path in (
        ("GET", f"/v1/packages/{sent['id']}"),
        ("GET", f"/v1/packages/{sent['id']}/trail"),
        ("POST", f"/v1/packages/{sent['id']}/ack"),
        ("GET", "/v1/packages/00000000-0000-0000-0000-000000000000"),
        ("GET", "/v1/packages/not-a-uuid"),
    ):
        async with exchange.session.request(method, exchange.url + path, headers=headers) as r:
            assert_error(r.status, await r.json(), 404, "package.not_found")
    # The sender cannot acknowledge its own package: it is not a recipient.
    headers = {"Authorization": f"Bearer {ctx['sender']}"}
    async with exchange.session.post(
        f"{exchange.url}/v1/packages/{sent['id']}/ack", headers=headers
    ) as r:
        assert_error(r.status, await r.json(), 409, "delivery.not_recipient")


async def test_unknown_route_and_bad_parameters_are_json(exchange, ctx):
    headers = {"Authorization": f"Bearer {ctx['recipient']}"}
    async with exchange.session.get(f"{exchange.url}/v1/nope", headers=headers) as r:
        assert_error(r.status, await r.json(), 404, "http.not_found")
    async with exchange.session.get(f"{exchange.url}/v1/inbox?limit=0", headers=headers) as r:
        assert_error(r.status, await r.json(), 400, "request.invalid_parameter")
    async with exchange.session.get(f"{exchange.url}/v1/inbox?after=x", headers=headers) as r:
        assert_error(r.status, await r.json(), 400, "request.invalid_parameter")


async def test_body_limit_streamed_and_declared(tmp_path):
    """Over the limit: refused while streaming (chunked) and up front (Content-Length)."""
    settings = make_settings(tmp_path, max_body_bytes=64 * 1024)
    from exchange.registry import Agency
    from exchange.store import database as db

    async with (
        aiohttp.ClientSession() as session,
        running_hub(settings, consume=False) as (hub, url),
    ):
        await hub.registry.upsert([Agency(SENDER, "Bộ", None, "central")])
        creds = await issue_credentials(hub.credentials, SENDER)
        token, _ = await issue_token(hub.credentials, creds.client_id, creds.client_secret, 60)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
        big = b"<edXML>" + b"x" * (200 * 1024) + b"</edXML>"

        async def chunks():
            for i in range(0, len(big), 8192):
                yield big[i : i + 8192]

        async with session.post(f"{url}/v1/packages", data=chunks(), headers=headers) as r:
            assert_error(r.status, await r.json(), 413, "body.too_large")
        async with session.post(f"{url}/v1/packages", data=big, headers=headers) as r:
            assert_error(r.status, await r.json(), 413, "body.too_large")
        leftovers = list((tmp_path / "blobs" / "tmp").iterdir())
        assert leftovers == []
        assert await hub.pool.fetchval("SELECT count(*) FROM packages") == 0
    await db.drop_schema(settings)


async def test_token_endpoint_rejects_other_grants(exchange, ctx):
    async with exchange.session.post(
        f"{exchange.url}/v1/token",
        data={"grant_type": "password", "client_id": "a", "client_secret": "b"},
    ) as r:
        assert_error(r.status, await r.json(), 400, "auth.unsupported_grant_type")


async def test_openapi_lists_every_route_and_code(exchange):
    async with exchange.session.get(f"{exchange.url}/v1/openapi.json") as r:
        doc_ = await r.json()
    assert doc_["openapi"].startswith("3.")
    for path in (
        "/v1/token",
        "/v1/packages",
        "/v1/inbox",
        "/v1/packages/{id}",
        "/v1/packages/{id}/ack",
        "/v1/packages/{id}/trail",
        "/v1/agencies",
    ):
        assert path in doc_["paths"]
    enum = doc_["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    assert set(enum["enum"]) == set(ERROR_CODES)


async def test_metrics_count_each_refusal_once(exchange, ctx):
    async def malformed_count() -> int:
        async with exchange.session.get(f"{exchange.url}/metrics") as r:
            text = await r.text()
        line = [
            x
            for x in text.splitlines()
            if x.startswith('lienthong_requests_refused_total{code="xml.malformed"}')
        ]
        return int(float(line[0].split()[-1])) if line else 0

    before = await malformed_count()
    await post(exchange, ctx["sender"], b"<not xml")
    assert await malformed_count() == before + 1


async def test_missing_stored_bytes_are_a_json_error(exchange, ctx):
    status, sent = await post(exchange, ctx["sender"], doc("19"))
    assert status == 202
    exchange.hub.blobs.path_for(bytes.fromhex(sent["digest"])).unlink()
    headers = {"Authorization": f"Bearer {ctx['sender']}"}
    async with exchange.session.get(
        f"{exchange.url}/v1/packages/{sent['id']}", headers=headers
    ) as r:
        assert_error(r.status, await r.json(), 500, "package.bytes_missing")


HOSTILE_NAMES = [
    "../../../../etc/cron.d/x",
    "/etc/passwd",
    "..\\..\\Windows\\win.ini",
    "C:\\boot.ini",
    "a\tb.pdf",  # XML 1.0 carries no C0 controls but tab and newlines
    "two\nlines.pdf",
    "report\u009b31m.pdf",  # a C1 control (CSI), which XML 1.0 does allow
    "..",
    "NUL.txt",
    "con .txt",
    "invoice\u202efdp.exe",  # a right-to-left override shows it as invoiceexe.pdf
    "x.pdf:evil.exe",  # an NTFS alternate data stream
    "a\u2028b.pdf",
    "trailing.",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_attachment_names_that_could_climb_out_of_a_folder(exchange, ctx, name):
    package = build_document(
        sender=SENDER,
        recipients=[RECIPIENT],
        code_number="30",
        code_notation="BTP",
        subject="Thử",
        attachments=[(name, "application/pdf", b"%PDF-1.4")],
    )
    before = await package_count(exchange)
    status, got = await post(exchange, ctx["sender"], package)
    error = assert_error(status, got, 422, "edxml.attachment_name")
    assert error["field"] == "AttachmentName" and "cid:" in error["message"]
    assert await package_count(exchange) == before


async def test_ordinary_attachment_names_pass(exchange, ctx):
    package = build_document(
        sender=SENDER,
        recipients=[RECIPIENT],
        code_number="31",
        code_notation="BTP",
        subject="Thử",
        attachments=[("Quyết định số 12 (bản ký).PDF", "application/pdf", b"%PDF-1.4")],
    )
    status, got = await post(exchange, ctx["sender"], package)
    assert status == 202, got


@pytest.mark.parametrize(
    ("field", "size"),
    [("subject", 3_000_000), ("signer", 5_000), ("description", 10_000)],
)
async def test_oversize_text_fields_are_refused(exchange, ctx, field, size):
    from schemas import build_status

    if field == "description":
        package = build_status(
            sender=RECIPIENT,
            response_for_organ_id=SENDER,
            response_for_document_id="x",
            status_code="02",
            description="lý do " * (size // 6),
        )
        token = ctx["recipient"]
        want = "Description"
    else:
        args = {"subject": "Thử"} | {field: "Đ" * size}
        package = build_document(
            sender=SENDER, recipients=[RECIPIENT], code_number="32", code_notation="BTP", **args
        )
        token, want = ctx["sender"], {"subject": "Subject", "signer": "FullName"}[field]
    before = await package_count(exchange)
    status, got = await post(exchange, token, package)
    error = assert_error(status, got, 422, "edxml.field_too_long")
    assert error["field"] == want and "limit" in error["message"]
    assert await package_count(exchange) == before


async def test_inbox_pages_stop_at_a_byte_budget(exchange, ctx):
    from exchange.auth import Caller

    for n in range(4):
        status, _ = await post(
            exchange,
            ctx["sender"],
            build_document(
                sender=SENDER,
                recipients=[OTHER],
                code_number=f"4{n}",
                code_notation="BTP",
                subject="Đ" * 1_900,
            ),
        )
        assert status == 202
    caller = Caller(OTHER, "test", 0)
    import asyncio

    for _ in range(200):
        full = await exchange.hub.deliveries.inbox(caller, 0, 100, 1 << 20)
        if len(full["items"]) == 4:
            break
        await asyncio.sleep(0.05)
    assert len(full["items"]) == 4
    one_item = len(str(full["items"][0]).encode())
    small = await exchange.hub.deliveries.inbox(caller, 0, 100, one_item * 2)
    assert 1 <= len(small["items"]) < 4
    assert small["items"] == full["items"][: len(small["items"])]
    tiny = await exchange.hub.deliveries.inbox(caller, 0, 100, 1)
    assert len(tiny["items"]) == 1  # never an empty page while items wait


@pytest.mark.parametrize("trick", ["comment", "cdata"])
async def test_a_long_field_split_by_a_comment_or_cdata_is_still_too_long(exchange, ctx, trick):
    """The length is the field's whole text, as stored and listed, however it is written."""
    package = build_document(
        sender=SENDER, recipients=[RECIPIENT], code_number="33", code_notation="BTP", subject="S"
    )
    long = "Đ" * 5_000
    split = f"S<!---->{long}" if trick == "comment" else f"S<![CDATA[{long}]]>"
    package = package.replace(
        b"<edXML:Subject>S</edXML:Subject>", f"<edXML:Subject>{split}</edXML:Subject>".encode()
    )
    before = await package_count(exchange)
    status, got = await post(exchange, ctx["sender"], package)
    error = assert_error(status, got, 422, "edxml.field_too_long")
    assert error["field"] == "Subject"
    assert await package_count(exchange) == before


async def test_manifest_descriptions_are_bounded_too(exchange, ctx):
    package = build_document(
        sender=SENDER,
        recipients=[RECIPIENT],
        code_number="34",
        code_notation="BTP",
        subject="Thử",
        attachments=[("a.pdf", "application/pdf", b"%PDF-1.4")],
    )
    package = package.replace(
        b"<edXML:Description>a.pdf</edXML:Description>",
        b"<edXML:Description>" + b"x" * 500_000 + b"</edXML:Description>",
        1,
    )
    status, got = await post(exchange, ctx["sender"], package)
    assert_error(status, got, 422, "edxml.field_too_long")
