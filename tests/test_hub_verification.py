"""Signatures checked at the hub's door: policy, signer-is-sender, reports in the trail and the
ledger, refusals that store nothing but a 'rejected' leaf."""

from __future__ import annotations

import hashlib
import json

import aiohttp
import pytest

from adapters.client import HubClient, HubClientError
from exchange import db
from exchange.auth import issue_credentials
from exchange.edxml_build import build_document
from exchange.registry import Agency, upsert_agencies
from exchange.serve import running_hub
from exchange.signers import add_signer_rule
from signing.appearance import AnchorPlacement
from signing.keys import KeySource, open_key
from signing.pdf import SignOptions, sign_pdf
from signing.xmldsig import sign_package_async
from tests.conftest import cleanup_broker, make_settings, sample
from tests.pdfgen import official_document, signature_png
from tests.pki import P12_PASSWORD

SECRET = P12_PASSWORD.decode()
G22, H49, H41 = "000.00.00.G22", "000.00.00.H49", "000.00.00.H41"


@pytest.fixture(scope="module")
async def hub(pki, tmp_path_factory):
    settings = make_settings(
        tmp_path_factory.mktemp("verify"),
        trust_anchors=(str(pki.root_pem),),
        trust_intermediates=(str(pki.issuing_pem),),
        cpu_workers=2,
    )
    codes = [G22, H49, H41]
    try:
        async with running_hub(settings) as (h, url), aiohttp.ClientSession() as session:
            await upsert_agencies(
                h.pool,
                [
                    Agency(G22, "Văn phòng Chính phủ", None, "central"),
                    Agency(H49, "UBND tỉnh Quảng Ninh", None, "province"),
                    Agency(H41, "UBND Tỉnh Nghệ An", None, "province", verify_policy="report-only"),
                ],
            )
            clients = {}
            for code in codes:
                await h.broker.ensure_agency(code)
                creds = await issue_credentials(h.pool, code)
                clients[code] = HubClient(
                    url, creds.client_id, creds.client_secret, session=session
                )
            yield h, clients
    finally:
        await cleanup_broker(settings, codes)
        await db.drop_schema(settings)


def document(number: str, sender=G22, attachments=()) -> bytes:
    return build_document(
        sender=sender,
        recipients=[H49] if sender != H49 else [G22],
        code_number=number,
        code_notation="VPCP",
        subject="Kiểm tra chữ ký",
        attachments=list(attachments),
    )


async def signed(pki, data: bytes, who: str = "clerk") -> bytes:
    with open_key(KeySource(p12=pki.identity(who).p12), SECRET) as key:
        return await sign_package_async(data, key)


async def rejected_leaves(h, digest: str) -> list[dict]:
    rows = await h.pool.fetch("SELECT leaf FROM events WHERE event = 'rejected'")
    return [json.loads(r["leaf"]) for r in rows if json.loads(r["leaf"])["digest"] == digest]


async def test_valid_signature_is_accepted_and_its_report_linked(hub, pki):
    h, clients = hub
    sent = await clients[G22].submit(await signed(pki, document("1")))
    assert sent["verification"]["indication"] == "TOTAL-PASSED"
    assert sent["verification"]["warning"] is None
    trail = await clients[G22].trail(sent["id"])
    verified = [e for e in trail["events"] if e["event"] == "verified"]
    assert verified and verified[0]["detail"]["indication"] == "TOTAL-PASSED"
    headers = {"Authorization": f"Bearer {await clients[H49].token()}"}
    async with clients[H49].session.get(
        f"{clients[H49].base_url}/v1/packages/{sent['id']}/report", headers=headers
    ) as r:
        body = await r.read()
    assert hashlib.sha256(body).hexdigest() == verified[0]["detail"]["report_digest"]
    assert json.loads(body)["schema"] == "lienthong.package-validation-report/1"


async def test_tampered_package_is_refused_with_a_status_02_reason(hub, pki):
    h, clients = hub
    data = (await signed(pki, document("2"))).replace("Kiểm tra".encode(), "Sửa đổi".encode())
    before = await h.pool.fetchval("SELECT count(*) FROM packages")
    with pytest.raises(HubClientError) as info:
        await clients[G22].submit(data)
    error = info.value
    assert (error.status, error.code) == (422, "signature.invalid")
    assert "HASH_FAILURE" in error.message and error.message.startswith("Từ chối")
    assert error.body["error"]["detail"]["sub_indication"] == "HASH_FAILURE"
    assert await h.pool.fetchval("SELECT count(*) FROM packages") == before
    leaves = await rejected_leaves(h, hashlib.sha256(data).hexdigest())
    assert leaves and leaves[0]["detail"]["code"] == "signature.invalid"


async def test_a_valid_signature_by_another_agency_is_a_forgery(hub, pki):
    h, clients = hub
    forged = await signed(pki, document("3"), who="province")  # H49's signer, sent as G22
    with pytest.raises(HubClientError) as info:
        await clients[G22].submit(forged)
    assert (info.value.status, info.value.code) == (403, "signature.wrong_signer")
    assert G22 in info.value.message
    # Once G22 delegates to H49, the same package is accepted.
    await add_signer_rule(h.pool, G22, "delegate", H49)
    sent = await clients[G22].submit(forged)
    assert sent["verification"]["indication"] == "TOTAL-PASSED"


async def test_unsigned_is_accepted_with_a_warning_and_field_samples_under_report_only(hub):
    _, clients = hub
    sent = await clients[G22].submit(document("4"))
    assert sent["verification"]["indication"] == "INDETERMINATE"
    assert "SIGNED_DATA_NOT_FOUND" in sent["verification"]["warning"]
    # H41 is registered report-only: its field status packages (test signatures that cannot
    # verify) are recorded, not refused.
    status = await clients[H41].submit(sample("status_inbox_01.edxml"))
    assert status["verification"]["policy"] == "report-only"
    # The same kind of broken signature from an enforcing agency is refused.
    with pytest.raises(HubClientError) as info:
        await clients[G22].submit(sample("edoc_update.edxml"))
    assert info.value.code in ("signature.invalid", "signature.indeterminate")


async def test_a_tampered_signed_pdf_inside_is_refused(hub, pki):
    _, clients = hub
    options = SignOptions(
        role="leader",
        level="B-T",
        tsa_url=pki.tsa_url,
        image=signature_png(),
        placement=AnchorPlacement("BỘ TRƯỞNG"),
    )
    with open_key(KeySource(p12=pki.identity("leader").p12), SECRET) as key:
        pdf = bytearray(await sign_pdf(official_document(), key, options))
    pdf[300] ^= 0x01
    data = await signed(pki, document("5", attachments=[("qd.pdf", "application/pdf", bytes(pdf))]))
    with pytest.raises(HubClientError) as info:
        await clients[G22].submit(data)
    assert info.value.code == "signature.invalid" and "qd.pdf" in info.value.message
