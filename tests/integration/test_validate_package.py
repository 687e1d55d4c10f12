"""Package validation: the XML signature and every signed PDF inside, one worst-case verdict."""

from __future__ import annotations

import json

import pytest

from schemas import build_document
from signing import (
    AnchorPlacement,
    KeySource,
    SignOptions,
    async_sign_package,
    async_sign_pdf,
    async_validate_package,
    open_key,
)
from signing.reports.json import report_to_json
from tests.conftest import sample
from tests.support.pdfgen import official_document, signature_png
from tests.support.pki import P12_PASSWORD

SECRET = P12_PASSWORD.decode()


@pytest.fixture(scope="module")
async def signed_pdf(pki) -> bytes:
    options = SignOptions(
        role="leader",
        level="B-T",
        tsa_url=pki.tsa_url,
        image=signature_png(),
        placement=AnchorPlacement("BỘ TRƯỞNG"),
    )
    with open_key(KeySource(p12=pki.identity("leader").p12), SECRET) as key:
        return await async_sign_pdf(official_document(), key, options)


def package(attachments) -> bytes:
    return build_document(
        sender="000.00.00.G22",
        recipients=["000.00.00.H49"],
        code_number="7",
        code_notation="VPCP",
        subject="Gói có chữ ký",
        attachments=attachments,
    )


async def sign(pki, data: bytes, who: str = "clerk") -> bytes:
    with open_key(KeySource(p12=pki.identity(who).p12), SECRET) as key:
        return await async_sign_package(data, key)


async def test_signed_package_with_signed_pdf_passes(pki, trust, signed_pdf):
    data = await sign(
        pki,
        package(
            [("qd.pdf", "application/pdf", signed_pdf), ("ghi-chu.txt", "text/plain", b"note")]
        ),
    )
    report = await async_validate_package(data, trust)
    assert report.indication == "TOTAL-PASSED", report.message
    assert report.xml_signature.signer_organization_identifier == "000.00.00.G22"
    assert [a.indication for a in report.attachments] == ["TOTAL-PASSED"]
    assert len(report.skipped_attachments) == 1
    body = json.loads(report_to_json(report))
    assert body["schema"] == "lienthong.package-validation-report/1"
    assert body["attachments"][0]["report"]["schema"] == "lienthong.validation-report/1"


async def test_tampered_pdf_inside_a_validly_signed_package_fails(pki, trust, signed_pdf):
    tampered = bytearray(signed_pdf)
    index = tampered.index(b"Quy ch") if b"Quy ch" in tampered else 200
    tampered[index] ^= 0x01
    data = await sign(pki, package([("qd.pdf", "application/pdf", bytes(tampered))]))
    report = await async_validate_package(data, trust)
    assert report.xml_signature.indication == "TOTAL-PASSED"
    assert report.indication == "TOTAL-FAILED"
    assert report.message.startswith("attachment qd.pdf")


async def test_unsigned_field_sample_and_broken_signatures(pki, trust):
    unsigned = await async_validate_package(package([]), trust)
    assert (unsigned.indication, unsigned.sub_indication) == (
        "INDETERMINATE",
        "SIGNED_DATA_NOT_FOUND",
    )
    field = await async_validate_package(sample("edoc_new.edxml"), trust)
    assert field.indication != "TOTAL-PASSED"  # a truncated test certificate, rsa-sha1
    data = await sign(pki, package([]))
    changed = data.replace("Gói có chữ ký".encode(), "Gói đã sửa".encode())
    assert (await async_validate_package(changed, trust)).sub_indication == "HASH_FAILURE"
    rogue = await sign(pki, package([]), who="untrusted")
    assert (await async_validate_package(rogue, trust)).sub_indication == (
        "NO_CERTIFICATE_CHAIN_FOUND"
    )


async def test_package_revocation_follows_the_trust_mode(pki, trust):
    data = await sign(pki, package([]))
    online = await async_validate_package(data, trust)
    assert online.indication == "TOTAL-PASSED"
    offline = await async_validate_package(data, trust.replace(revocation="embedded-only"))
    # An XML signature carries no revocation data: offline, its chain cannot be confirmed.
    assert (offline.indication, offline.sub_indication) == ("INDETERMINATE", "TRY_LATER")
    revoked = await async_validate_package(await sign(pki, package([]), who="revoked"), trust)
    assert revoked.sub_indication == "REVOKED"


async def test_attachments_are_told_apart_by_their_first_bytes(pki, trust, signed_pdf):
    # Only the start of each attachment's base64 is decoded to tell a PDF: a PDF labelled as
    # anything is still validated, a large file of another kind is skipped without a report.
    tampered = bytearray(signed_pdf)
    tampered[tampered.index(b"Quy ch") if b"Quy ch" in tampered else 200] ^= 0x01
    other = bytes(range(256)) * 800  # 200 KB, not a PDF
    spaces = b" " * 2000 + b"%PDF-1.7"  # the header must be within the first 1024 bytes
    data = await sign(
        pki,
        package(
            [
                ("qd.bin", "application/octet-stream", bytes(tampered)),
                ("du-lieu.bin", "application/octet-stream", other),
                ("khoang-trang.bin", None, spaces),
            ]
        ),
    )
    report = await async_validate_package(data, trust)
    assert [a.name for a in report.attachments] == ["qd.bin"]
    assert report.attachments[0].indication == "TOTAL-FAILED"
    assert len(report.skipped_attachments) == 2
