"""A package read once (``schemas.ParsedPackage``) is verified and validated on its tree: the tree
is not changed, and neither the bytes nor the XSD are read again.

Runs against the real test PKI; the counters wrap the readers of our own modules (the hardened
reader and the XSD/rules check), nothing is replaced by a fake.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from lxml import etree

import schemas
import signing.xml
from schemas import build_document, read_package
from signing import (
    TOTAL_PASSED,
    KeySource,
    async_validate_package,
    async_verify_package,
    open_key,
    sign_package,
)
from tests.support.attacks import make_pdf, sign_pdf, signer_for
from tests.support.pki import P12_PASSWORD


def _c14n(root: etree._Element) -> bytes:
    return etree.tostring(root, method="c14n", exclusive=True, with_comments=True)


@pytest.fixture(scope="module")
def signed_package(pki) -> bytes:
    pdf = sign_pdf(make_pdf(), signer_for(pki.identity("clerk")))
    data = build_document(
        sender="000.00.00.G22",
        recipients=["000.00.00.H49"],
        code_number="9",
        code_notation="VPCP",
        subject="Gói tin đọc một lần",
        attachments=[("qd.pdf", "application/pdf", pdf), ("note.txt", "text/plain", b"x")],
    )
    with open_key(KeySource(p12=pki.identity("clerk").p12), P12_PASSWORD.decode()) as key:
        return sign_package(data, key)


@pytest.fixture
def reads(monkeypatch) -> Counter:
    """How often the package bytes are read and the XSD and rules checked, wherever."""
    seen: Counter = Counter()

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            seen[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    for module in (schemas, signing.xml):
        monkeypatch.setattr(module, "read_xml", counting("read_xml", module.read_xml))
        monkeypatch.setattr(module, "validate", counting("validate", module.validate))
    return seen


async def test_verifying_a_parsed_package_leaves_its_tree_unchanged(pki, signed_package):
    parsed = read_package(signed_package)
    before = _c14n(parsed.root)
    result = await async_verify_package(
        parsed, trust_roots=[pki.root_pem], intermediates=[pki.issuing_pem]
    )
    assert result.valid, result.message
    assert _c14n(parsed.root) == before
    again = await async_verify_package(parsed, trust_roots=[pki.root_pem])  # and again
    assert again.status == result.status
    assert _c14n(parsed.root) == before


async def test_validating_a_parsed_package_reads_nothing_again(pki, trust, signed_package, reads):
    parsed = read_package(signed_package)
    digest = hashlib.sha256(signed_package).hexdigest()
    before = _c14n(parsed.root)
    reads.clear()
    report = await async_validate_package(parsed, trust, digest=digest)
    assert reads == Counter()  # neither read_xml nor the XSD/rules check ran
    assert report.indication == TOTAL_PASSED, report.message
    assert report.package_sha256 == digest
    assert [a.name for a in report.attachments] == ["qd.pdf"]
    assert report.attachments[0].indication == TOTAL_PASSED
    assert len(report.skipped_attachments) == 1
    assert _c14n(parsed.root) == before
    # the same package as bytes is read (once) and gets the same verdict
    from_bytes = await async_validate_package(signed_package, trust)
    assert reads["read_xml"] == 1 and reads["validate"] == 1
    assert (from_bytes.indication, from_bytes.message) == (report.indication, report.message)


async def test_a_parsed_package_needs_the_digest_of_its_bytes(trust, signed_package):
    with pytest.raises(TypeError):
        await async_validate_package(read_package(signed_package), trust)
