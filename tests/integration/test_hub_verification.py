"""Signatures checked at the hub's door: policy, signer-is-sender, reports in the trail and the
ledger, refusals that store nothing but a 'rejected' leaf."""

from __future__ import annotations

import hashlib
import json

import aiohttp
import pytest

from adapters.client import HubClient, HubClientError
from exchange.auth import issue_credentials
from exchange.http.serve import running_hub
from exchange.registry import Agency
from exchange.store import database as db
from schemas import build_document
from signing import (
    AnchorPlacement,
    KeySource,
    SignOptions,
    async_sign_package,
    async_sign_pdf,
    open_key,
)
from tests.conftest import cleanup_broker, make_settings, sample
from tests.support.pdfgen import official_document, signature_png
from tests.support.pki import P12_PASSWORD

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
            await h.registry.upsert(
                [
                    Agency(G22, "Văn phòng Chính phủ", None, "central"),
                    Agency(H49, "UBND tỉnh Quảng Ninh", None, "province"),
                    Agency(H41, "UBND Tỉnh Nghệ An", None, "province", verify_policy="report-only"),
                ],
            )
            clients = {}
            for code in codes:
                await h.broker.ensure_agency(code)
                creds = await issue_credentials(h.credentials, code)
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
        recipients=[G22] if sender != G22 else [H49],
        code_number=number,
        code_notation="VPCP",
        subject="Kiểm tra chữ ký",
        attachments=list(attachments),
    )


async def signed(pki, data: bytes, who: str = "clerk") -> bytes:
    with open_key(KeySource(p12=pki.identity(who).p12), SECRET) as key:
        return await async_sign_package(data, key)


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
    await h.registry.add_signer_rule(G22, "delegate", H49)
    sent = await clients[G22].submit(forged)
    assert sent["verification"]["indication"] == "TOTAL-PASSED"


async def test_unsigned_is_refused_under_enforce_and_recorded_under_report_only(hub, pki):
    h, clients = hub
    data = document("4")
    with pytest.raises(HubClientError) as info:
        await clients[G22].submit(data)
    assert (info.value.status, info.value.code) == (422, "signature.missing")
    leaves = await rejected_leaves(h, hashlib.sha256(data).hexdigest())
    assert leaves and leaves[0]["detail"]["code"] == "signature.missing"
    # H41 is registered report-only: its unsigned and its broken packages are recorded, not
    # refused.
    unsigned = await clients[H41].submit(document("4a", sender=H41))
    assert unsigned["verification"]["policy"] == "report-only"
    assert "recorded only" in unsigned["verification"]["warning"]
    broken = (await signed(pki, document("4b", sender=H41), who="province")).replace(
        "Kiểm tra".encode(), "Sửa đổi".encode()
    )
    recorded = await clients[H41].submit(broken)
    assert recorded["verification"]["indication"] == "TOTAL-FAILED"
    # A field sample's test signature from an enforcing agency is refused.
    with pytest.raises(HubClientError) as info:
        await clients[G22].submit(sample("edoc_update.edxml"))
    assert info.value.code in ("signature.invalid", "signature.indeterminate")


async def test_a_chain_to_no_trust_anchor_is_refused_even_when_it_copies_the_organ_id(hub, pki):
    """A certificate from another hierarchy (or self-signed) that names G22's organ id proves
    nothing: refused, whatever verify_indeterminate says, since it is not a TRY_LATER."""
    h, clients = hub
    assert h.settings.verify_indeterminate == "accept"
    rogue = await signed(pki, document("6"), who="untrusted")
    with pytest.raises(HubClientError) as info:
        await clients[G22].submit(rogue)
    assert (info.value.status, info.value.code) == (422, "signature.indeterminate")
    assert "NO_CERTIFICATE_CHAIN_FOUND" in info.value.message
    self_signed = await signed_by(self_signed_p12(pki, G22), document("7"))
    with pytest.raises(HubClientError) as info:
        await clients[G22].submit(self_signed)
    assert info.value.code == "signature.indeterminate"


def self_signed_p12(pki, organ_id: str):
    """A self-signed certificate that copies an agency's organ id, as a PKCS#12 file."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    from tests.support.pki import ORGANIZATION_IDENTIFIER

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Văn phòng Chính phủ"),
            x509.NameAttribute(ORGANIZATION_IDENTIFIER, organ_id),
            x509.NameAttribute(NameOID.COMMON_NAME, "Giả mạo"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    path = pki.dir / f"self-signed-{organ_id}.p12"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"fake", key, cert, None, serialization.BestAvailableEncryption(P12_PASSWORD)
        )
    )
    return path


async def signed_by(p12, data: bytes) -> bytes:
    with open_key(KeySource(p12=p12), SECRET) as key:
        return await async_sign_package(data, key)


@pytest.mark.parametrize("indeterminate", ["accept", "refuse"])
async def test_only_try_later_may_be_accepted_by_policy(tmp_path, indeterminate):
    """A revocation service that cannot be reached right now (TRY_LATER) is the one doubt the
    policy may accept; refused when verify_indeterminate = refuse."""
    from tests.support.pki import running_pki

    with running_pki(tmp_path / "gone") as gone:  # its OCSP and CRL stop with the block
        roots = (str(gone.root_pem),), (str(gone.issuing_pem),)
        data = await signed_by(gone.identity("clerk").p12, document("8"))
    settings = make_settings(
        tmp_path,
        trust_anchors=roots[0],
        trust_intermediates=roots[1],
        revocation_mode="hard-fail",
        verify_indeterminate=indeterminate,
        cpu_workers=1,
    )
    try:
        async with running_hub(settings) as (h, url), aiohttp.ClientSession() as session:
            await h.registry.upsert(
                [
                    Agency(G22, "Văn phòng Chính phủ", None, "central"),
                    Agency(H49, "UBND tỉnh Quảng Ninh", None, "province"),
                ],
            )
            creds = await issue_credentials(h.credentials, G22)
            client = HubClient(url, creds.client_id, creds.client_secret, session=session)
            if indeterminate == "accept":
                sent = await client.submit(data)
                assert sent["verification"]["indication"] == "INDETERMINATE"
                assert "TRY_LATER" in sent["verification"]["warning"]
            else:
                with pytest.raises(HubClientError) as info:
                    await client.submit(data)
                assert info.value.code == "signature.indeterminate"
                assert "TRY_LATER" in info.value.message
    finally:
        await cleanup_broker(settings, [G22, H49])
        await db.drop_schema(settings)


async def test_a_certificate_naming_no_revocation_source_is_refused_under_hard_fail(tmp_path, pki):
    """Under hard-fail the doubt that may be accepted is a responder that did not answer; a
    signer whose certificate names no OCSP responder and no CRL gives nothing to wait for, so
    even ``verify_indeterminate = accept`` refuses it, and the clerk's ordinary certificate
    still passes."""
    settings = make_settings(
        tmp_path,
        trust_anchors=(str(pki.root_pem),),
        trust_intermediates=(str(pki.issuing_pem),),
        revocation_mode="hard-fail",
        verify_indeterminate="accept",
        cpu_workers=1,
    )
    try:
        async with running_hub(settings) as (h, url), aiohttp.ClientSession() as session:
            await h.registry.upsert(
                [
                    Agency(G22, "Văn phòng Chính phủ", None, "central"),
                    Agency(H49, "UBND tỉnh Quảng Ninh", None, "province"),
                ],
            )
            creds = await issue_credentials(h.credentials, G22)
            client = HubClient(url, creds.client_id, creds.client_secret, session=session)
            with pytest.raises(HubClientError) as info:
                await client.submit(await signed(pki, document("10"), who="no_revinfo"))
            assert (info.value.status, info.value.code) == (422, "signature.indeterminate")
            assert info.value.body["error"]["detail"]["sub_indication"] == (
                "CHAIN_CONSTRAINTS_FAILURE"
            )
            assert "names no OCSP responder" in info.value.message
            sent = await client.submit(await signed(pki, document("11")))
            assert sent["verification"]["indication"] == "TOTAL-PASSED"
    finally:
        await cleanup_broker(settings, [G22, H49])
        await db.drop_schema(settings)


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
        pdf = bytearray(await async_sign_pdf(official_document(), key, options))
    pdf[300] ^= 0x01
    data = await signed(pki, document("5", attachments=[("qd.pdf", "application/pdf", bytes(pdf))]))
    with pytest.raises(HubClientError) as info:
        await clients[G22].submit(data)
    assert info.value.code == "signature.invalid" and "qd.pdf" in info.value.message


async def test_an_unsigned_pdf_attachment_is_reported_not_refused(hub, pki):
    _, clients = hub
    attachment = ("phu-luc.pdf", "application/pdf", official_document())
    data = await signed(pki, document("9", attachments=[attachment]))
    sent = await clients[G22].submit(data)
    assert sent["verification"]["indication"] == "INDETERMINATE"
    assert "phu-luc.pdf" in sent["verification"]["warning"]


async def test_a_signer_whose_organization_identifier_is_in_etsi_form_is_judged(hub, pki):
    """An organizationIdentifier that is not an organ id (ETSI form ``VATVN-...``) is the
    signer's business, not a malformed package: refused as the wrong signer until the agency
    registers that identifier, then accepted."""
    h, clients = hub
    etsi = pki.issue_signer(
        "etsi_signer", "Văn phòng Chính phủ (ETSI)", "Văn phòng Chính phủ", "VATVN-0123456789"
    )
    with open_key(KeySource(p12=etsi.p12), SECRET) as key:
        package = await async_sign_package(document("etsi-1"), key)
    with pytest.raises(HubClientError) as info:
        await clients[G22].submit(package)
    assert (info.value.status, info.value.code) == (403, "signature.wrong_signer")
    assert G22 in info.value.message
    await h.registry.add_signer_rule(G22, "organization_identifier", "VATVN-0123456789")
    try:
        sent = await clients[G22].submit(package)
        assert sent["verification"]["indication"] == "TOTAL-PASSED"
    finally:
        await h.pool.execute(
            "DELETE FROM agency_signers WHERE organ_id = $1 AND value = $2",
            G22,
            "VATVN-0123456789",
        )
