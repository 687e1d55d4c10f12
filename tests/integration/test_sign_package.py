"""XML-DSig of edXML packages (signing/xmldsig.py), with xmlsec1 as an independent oracle.

xmlsec1 1.2.37 (Debian, openssl) has no RSASSA-PSS: ``--list-transforms`` offers rsa-sha256 and
ecdsa-sha256/384 but no ``sha256-rsa-MGF1`` (it fails with "xmlSecTransformIdListFindByHref").
PSS, our default for RSA, is therefore checked with our verifier and with ``cryptography``
directly (RFC 6931: MGF1 with the same hash, salt as long as the hash).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from signxml import SignatureConfiguration, XMLSigner, XMLVerifier

from schemas import DSIG_NS, NS, build_document, build_status, parse_package
from signing import (
    KeySource,
    SigningError,
    async_sign_package,
    async_verify_package,
    open_key,
    sign_package,
    verify_package,
)
from tests.conftest import sample
from tests.support.pki import P12_PASSWORD

PSS = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
HEADER = f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader"
SIG = f"{{{DSIG_NS}}}Signature"
DS = {"ds": DSIG_NS, "e": NS}
needs_xmlsec1 = pytest.mark.skipif(not shutil.which("xmlsec1"), reason="xmlsec1 not installed")


def package(**changes) -> bytes:
    args = dict(
        sender="000.00.00.G22",
        recipients=["000.00.00.H49", "000.00.00.H17"],
        code_number="15",
        code_notation="VPCP-TTĐT",
        subject="V/v thử nghiệm ký số gói tin",
        attachments=[("cv.pdf", "application/pdf", b"%PDF-1.7 " + bytes(range(256)) * 20)],
    )
    return build_document(**(args | changes))


def sign_p12(pki, name: str, data: bytes, padding_: str = "pss", **options) -> bytes:
    source = KeySource(p12=pki.identity(name).p12, rsa_padding=padding_)
    with open_key(source, P12_PASSWORD.decode()) as key:
        return sign_package(data, key, **options)


def verify(pki, data: bytes, **options):
    return verify_package(data, trust_roots=[pki.root_pem], **options)


def xmlsec1(tmp_path: Path, *args: str, data: bytes) -> subprocess.CompletedProcess:
    path = tmp_path / "package.xml"
    path.write_bytes(data)
    return subprocess.run(
        ["xmlsec1", *args, str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def xmlsec1_verify(pki, tmp_path: Path, data: bytes) -> subprocess.CompletedProcess:
    return xmlsec1(
        tmp_path,
        "--verify",
        "--enabled-reference-uris",
        "empty",
        "--trusted-pem",
        str(pki.root_pem),
        "--untrusted-pem",
        str(pki.issuing_pem),
        data=data,
    )


def signature_bounds(data: bytes) -> tuple[int, int]:
    start = data.index(b"<ds:Signature")
    return start, data.index(b"</ds:Signature>") + len(b"</ds:Signature>")


# ----- signing and verifying ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rsa_padding", "algorithm"),
    [
        ("clerk", "pss", PSS),
        ("clerk", "pkcs1v15", RSA_SHA256),
        ("seal", "pss", ECDSA_SHA256),
        ("clerk_ec384", "pss", ECDSA_SHA384),
    ],
)
def test_signed_package_verifies_and_still_parses(pki, name, rsa_padding, algorithm):
    data = package()
    signed = sign_p12(pki, name, data, rsa_padding)
    result = verify(pki, signed)
    assert (result.status, result.reason, result.algorithm) == ("valid", None, algorithm)
    assert result.covers_whole_document and result.signer_cert == pki.identity(name).cert
    assert "000.00.00.G22" in result.signer_subject
    parsed = parse_package(signed)
    assert parsed.has_signature and parsed.signature_namespace == DSIG_NS
    header = etree.fromstring(signed).find(HEADER)
    signature = header[-1]
    assert signature.tag == SIG and header[-2].tag == f"{{{NS}}}TraceHeaderList"
    (reference,) = signature.findall("ds:SignedInfo/ds:Reference", DS)
    assert reference.get("URI") == ""
    assert [t.get("Algorithm") for t in reference.iterfind("ds:Transforms/*", DS)] == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        EXC_C14N,
    ]
    assert signature.find("ds:SignedInfo/ds:CanonicalizationMethod", DS).get("Algorithm") == (
        EXC_C14N
    )
    assert reference.find("ds:DigestMethod", DS).get("Algorithm").endswith("#sha256")
    certs = [e.text for e in signature.iterfind("ds:KeyInfo/ds:X509Data/ds:X509Certificate", DS)]
    chain = [pki.identity(name).cert_der, pki.issuing.cert_der]
    assert [base64.b64decode(c) for c in certs] == chain  # signer first, then its CA; no root


def test_signing_changes_no_byte_outside_the_signature(pki):
    data = package()
    signed = sign_p12(pki, "seal", data)
    start, end = signature_bounds(signed)
    assert signed[:start] + signed[end:] == data
    assert signed[end:].startswith(b"</edXML:edXMLHeader>")
    # A field sample (its own quotes, layout and quirky unnamespaced Signature): only the old
    # Signature goes, the new one takes its place.
    field = sample("edoc_new.edxml")
    resigned = sign_p12(pki, "seal", field, replace_existing=True)
    old_start, header_end = field.index(b"<Signature>"), field.index(b"</edXML:edXMLHeader>")
    start, end = signature_bounds(resigned)
    assert resigned[:start] + resigned[end:] == field[:old_start] + field[header_end:]
    assert verify(pki, resigned).valid
    assert parse_package(resigned).signature_namespace == DSIG_NS


def test_pss_signature_is_rfc6931_pss_checked_with_cryptography(pki):
    identity = pki.identity("clerk")
    signed = sign_p12(pki, "clerk", package())
    signature = etree.fromstring(signed).find(f"{HEADER}/{SIG}")
    signed_info = etree.tostring(signature.find("ds:SignedInfo", DS), method="c14n", exclusive=True)
    value = base64.b64decode(signature.find("ds:SignatureValue", DS).text)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    identity.cert.public_key().verify(value, signed_info, pss, hashes.SHA256())


def test_status_package_and_explicit_algorithm(pki):
    status = build_status(
        sender="000.00.00.H49",
        response_for_organ_id="000.00.00.G22",
        response_for_document_id="000.00.00.G22,2025/01/02,15/VPCP-TTĐT",
        status_code="03",
    )
    assert verify(pki, sign_p12(pki, "seal", status)).valid
    signed = sign_p12(pki, "clerk", package(), algorithm=RSA_SHA256)  # the key source says PSS
    assert verify(pki, signed).algorithm == RSA_SHA256
    with pytest.raises(SigningError) as refused:
        sign_p12(pki, "clerk", package(), algorithm=ECDSA_SHA256)
    assert refused.value.code == "signing.bad_option"


def test_already_signed_is_refused_unless_replacing(pki):
    with pytest.raises(SigningError) as refused:
        sign_p12(pki, "seal", sample("edoc_new.edxml"))
    assert refused.value.code == "signing.already_signed"
    signed = sign_p12(pki, "seal", package())
    with pytest.raises(SigningError) as twice:
        sign_p12(pki, "clerk", signed)
    assert twice.value.code == "signing.already_signed"
    resigned = sign_p12(pki, "clerk", signed, replace_existing=True)
    assert resigned.count(b"<ds:Signature ") == 1
    assert verify(pki, resigned).signer_cert == pki.identity("clerk").cert


def test_unsigned_and_field_samples_are_not_valid(pki):
    assert (verify(pki, package()).status, verify(pki, package()).reason) == (
        "invalid",
        "NO_SIGNATURE",
    )
    field = verify(pki, sample("edoc_new.edxml"))  # unnamespaced, rsa-sha1, truncated cert
    assert (field.status, field.reason) == ("invalid", "FORMAT_FAILURE")
    assert "namespace" in field.message


async def test_async_variants(pki):
    source = KeySource(p12=pki.identity("clerk").p12)
    with open_key(source, P12_PASSWORD.decode()) as key:
        signed = await async_sign_package(package(), key)
    result = await async_verify_package(signed, trust_roots=[pki.root.cert])
    assert result.valid


def test_large_attachment(pki):
    blob = bytes(range(256)) * (12 * 4096)  # 12 MiB: a text node beyond libxml2's default limit
    signed = sign_p12(pki, "seal", package(attachments=[("scan.pdf", "application/pdf", blob)]))
    assert verify(pki, signed).valid


# ----- PKCS#11 (SoftHSM2) ------------------------------------------------------------------------


def token_key(hsm_token, label: str, rsa_padding: str = "pss"):
    source = KeySource(
        pkcs11_lib=hsm_token.module, token=hsm_token.label, key_label=label, rsa_padding=rsa_padding
    )
    return open_key(source, hsm_token.pin)


@needs_xmlsec1
def test_token_keys_sign(pki, hsm_token, tmp_path):
    with token_key(hsm_token, "clerk") as key:
        pss = sign_package(package(), key, intermediates=[pki.issuing.cert])
    result = verify(pki, pss)
    assert (result.status, result.algorithm) == ("valid", PSS)
    with token_key(hsm_token, "clerk", "pkcs1v15") as key:
        rsa = sign_package(package(), key)  # the token holds no CA certificate: KeyInfo has one
    assert verify(pki, rsa).reason == "NO_CERTIFICATE_CHAIN_FOUND"
    assert verify(pki, rsa, intermediates=[pki.issuing_pem]).valid
    with token_key(hsm_token, "seal") as key:  # raw CKM_ECDSA, hashed on the host
        ecdsa = sign_package(package(), key)
    assert verify(pki, ecdsa, intermediates=[pki.issuing.cert]).algorithm == ECDSA_SHA256
    for data in (rsa, ecdsa):
        checked = xmlsec1_verify(pki, tmp_path, data)
        assert checked.returncode == 0, checked.stderr


# ----- xmlsec1 as the oracle ---------------------------------------------------------------------


@needs_xmlsec1
@pytest.mark.parametrize(
    ("name", "rsa_padding"), [("clerk", "pkcs1v15"), ("seal", "pss"), ("clerk_ec384", "pss")]
)
def test_xmlsec1_verifies_ours(pki, tmp_path, name, rsa_padding):
    signed = sign_p12(pki, name, package(), rsa_padding)
    checked = xmlsec1_verify(pki, tmp_path, signed)
    assert checked.returncode == 0 and "OK" in checked.stdout + checked.stderr, checked.stderr
    tampered = signed.replace("thử nghiệm".encode(), "thay đổi".encode())
    assert tampered != signed
    assert xmlsec1_verify(pki, tmp_path, tampered).returncode != 0
    assert verify(pki, tampered).reason == "HASH_FAILURE"


@needs_xmlsec1
def test_xmlsec1_has_no_rsa_pss(pki, tmp_path):
    listed = subprocess.run(["xmlsec1", "--list-transforms"], capture_output=True, text=True)
    assert "rsa-sha256" in listed.stdout + listed.stderr
    assert "MGF1" not in listed.stdout + listed.stderr
    checked = xmlsec1_verify(pki, tmp_path, sign_p12(pki, "clerk", package()))
    assert checked.returncode != 0 and f"href={PSS}" in checked.stderr  # unknown, not "invalid"


TEMPLATE = """<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>
<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
<SignatureMethod Algorithm="{algorithm}"/>
<Reference URI=""><Transforms>
<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
<Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></Transforms>
<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue/></Reference>
</SignedInfo><SignatureValue/><KeyInfo><X509Data/></KeyInfo></Signature>"""


def xmlsec1_sign(pki, tmp_path: Path, name: str, algorithm: str) -> bytes:
    """A package signed by xmlsec1 from a template (X509Data filled in by xmlsec1)."""
    root = etree.fromstring(package())
    root.find(HEADER).append(etree.fromstring(TEMPLATE.format(algorithm=algorithm)))
    template = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    identity, out = pki.identity(name), tmp_path / "xmlsec1-signed.xml"
    keys = f"{identity.key_pem},{identity.cert_pem},{pki.issuing_pem}"
    made = xmlsec1(tmp_path, "--sign", "--privkey-pem", keys, "--output", str(out), data=template)
    assert made.returncode == 0, made.stderr
    return out.read_bytes()


@needs_xmlsec1
@pytest.mark.parametrize(
    ("name", "algorithm"),
    [("clerk", RSA_SHA256), ("seal", ECDSA_SHA256), ("clerk_ec384", ECDSA_SHA384)],
)
def test_we_verify_what_xmlsec1_signs(pki, tmp_path, name, algorithm):
    signed = xmlsec1_sign(pki, tmp_path, name, algorithm)
    result = verify(pki, signed)
    assert (result.status, result.algorithm) == ("valid", algorithm), result.message
    assert result.signer_cert == pki.identity(name).cert and result.covers_whole_document
    assert parse_package(signed).signature_namespace == DSIG_NS
    tampered = signed.replace(b"<edXML:Paper>0<", b"<edXML:Paper>1<")
    assert tampered != signed and verify(pki, tampered).reason == "HASH_FAILURE"
    assert xmlsec1_verify(pki, tmp_path, tampered).returncode != 0


@needs_xmlsec1
def test_legacy_rsa_sha1_is_reported_not_accepted(pki, tmp_path):
    signed = xmlsec1_sign(pki, tmp_path, "clerk", "http://www.w3.org/2000/09/xmldsig#rsa-sha1")
    assert xmlsec1_verify(pki, tmp_path, signed).returncode == 0
    result = verify(pki, signed)
    assert (result.status, result.reason) == ("indeterminate", "CRYPTO_CONSTRAINTS_FAILURE")
    assert "rsa-sha1" in result.message


# ----- wrapping and tampering --------------------------------------------------------------------


def _signature(root):
    return root.find(f"{HEADER}/{SIG}")


def _find(root, path):
    return root.find(path.replace("e:", f"{{{NS}}}"))


def _move_signature_into_message_header(root):
    _find(root, "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader").append(_signature(root))


def _move_signature_to_attachments(root):
    _find(root, "e:AttachmentEncoded").append(_signature(root))


def _duplicate_signed_element(root):
    to = _find(root, "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader/e:To")
    to.addnext(copy.deepcopy(to))


def _move_signed_element(root):
    message = _find(root, "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader")
    message.insert(0, _find(message, "e:To"))


def _wrap_signed_header(root):  # XSW: a forged header keeps the Signature, the signed one hides
    header = _find(root, "e:edXMLEnvelope/e:edXMLHeader")
    forged = copy.deepcopy(header)
    _find(forged, "e:MessageHeader/e:Subject").text = "Giả mạo"
    header.addnext(forged)
    header.remove(header[-1])  # its Signature
    _find(root, "e:AttachmentEncoded").append(header)


def _second_signature_in_body(root):
    _find(root, "e:AttachmentEncoded").append(copy.deepcopy(_signature(root)))


def _second_signature_in_header(root):
    _signature(root).addprevious(copy.deepcopy(_signature(root)))


def _duplicated_ids(root):
    message = _find(root, "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader")
    for element in message.findall(f"{{{NS}}}To"):
        element.set("Id", "recipient")


def _reference_to_sub_element(root):
    _find(root, "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader").set("Id", "msg")
    _signature(root).find("ds:SignedInfo/ds:Reference", DS).set("URI", "#msg")


def _drop_enveloped_transform(root):
    transforms = _signature(root).find("ds:SignedInfo/ds:Reference/ds:Transforms", DS)
    transforms.remove(transforms[0])


def _change_header_text(root):
    _find(root, "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader/e:Subject").text += " (sửa)"


def _change_attachment(root):
    encoded = _find(root, "e:AttachmentEncoded/e:Attachment/e:ContentTransferEncoded")
    encoded.text = ("QUJD" if not encoded.text.startswith("QUJD") else "REVG") + encoded.text[4:]


def _change_signature_value(root):
    value = _signature(root).find("ds:SignatureValue", DS)
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()


def _change_digest_value(root):
    value = _signature(root).find("ds:SignedInfo/ds:Reference/ds:DigestValue", DS)
    value.text = base64.b64encode(b"\0" * 32).decode()


@pytest.mark.parametrize(
    ("tamper", "reason", "says"),
    [
        (_move_signature_into_message_header, "FORMAT_FAILURE", "last child"),  # (a) moved
        (_move_signature_to_attachments, "FORMAT_FAILURE", "last child"),
        (_duplicate_signed_element, "HASH_FAILURE", "changed"),  # (a) duplicated
        (_move_signed_element, "HASH_FAILURE", "changed"),
        (_wrap_signed_header, "HASH_FAILURE", "changed"),
        (_second_signature_in_body, "FORMAT_FAILURE", "2 Signature"),  # (b)
        (_second_signature_in_header, "FORMAT_FAILURE", "2 Signature"),
        (_duplicated_ids, "FORMAT_FAILURE", "Id values"),
        (_reference_to_sub_element, "FORMAT_FAILURE", "#msg"),  # (c)
        (_drop_enveloped_transform, "FORMAT_FAILURE", "transforms"),
        (_change_header_text, "HASH_FAILURE", "changed"),  # (d)
        (_change_attachment, "HASH_FAILURE", "changed"),  # (e)
        (_change_signature_value, "SIG_CRYPTO_FAILURE", "value"),
        (_change_digest_value, "SIG_CRYPTO_FAILURE", "value"),
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_tampered_packages_are_not_valid(pki, signed_clerk, tamper, reason, says):
    root = etree.fromstring(signed_clerk)
    tamper(root)
    result = verify(pki, etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    assert (result.status, result.reason) == ("invalid", reason), result.message
    assert says in result.message


@pytest.fixture(scope="module")
def signed_clerk(pki) -> bytes:
    return sign_p12(pki, "clerk", package(), "pkcs1v15")


def test_reference_to_a_sub_element_passes_plain_signxml_but_not_us(pki):
    """(c) A genuine signature over one element only: signxml alone accepts it, edited package and
    all; our verifier demands the whole document."""
    identity = pki.identity("clerk")
    root = etree.fromstring(package())
    message = _find(root, "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader")
    message.set("Id", "msg")
    root.find(HEADER).append(etree.Element(SIG, Id="placeholder", nsmap={"ds": DSIG_NS}))
    signed = XMLSigner(c14n_algorithm=EXC_C14N).sign(
        root, key=identity.key, cert=[identity.cert, pki.issuing.cert], reference_uri="#msg"
    )
    _change_attachment(signed)  # outside the signed element
    data = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    config = SignatureConfiguration(location=f"./{HEADER}/", expect_references=1)
    XMLVerifier().verify(data, x509_cert=identity.cert, expect_config=config)  # accepted!
    result = verify(pki, data)
    assert (result.status, result.reason) == ("invalid", "FORMAT_FAILURE")
    assert 'URI=""' in result.message


def test_key_info_swapped_or_missing(pki, signed_clerk):
    root = etree.fromstring(signed_clerk)
    node = _signature(root).find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", DS)
    assert base64.b64decode(node.text) == pki.identity("clerk").cert_der
    node.text = base64.b64encode(pki.identity("province").cert_der).decode()  # trusted, not the key
    result = verify(pki, etree.tostring(root))
    assert (result.status, result.reason) == ("invalid", "SIG_CRYPTO_FAILURE")
    _signature(root).remove(_signature(root).find("ds:KeyInfo", DS))
    result = verify(pki, etree.tostring(root))
    assert (result.status, result.reason) == ("indeterminate", "NO_SIGNING_CERTIFICATE_FOUND")


def test_key_not_matching_its_certificate_is_refused(pki):
    with open_key(KeySource(p12=pki.identity("clerk").p12), P12_PASSWORD.decode()) as key:
        other = asn1_x509.Certificate.load(pki.identity("province").cert_der)
        with pytest.raises(SigningError) as refused:
            sign_package(package(), dataclasses.replace(key, cert=other))
    assert refused.value.code == "signing.key_mismatch"


@pytest.mark.parametrize(
    "doctype",
    [
        b'<!DOCTYPE edXML [<!ENTITY boom "boom">]>',
        b'<!DOCTYPE edXML [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    ],
)
def test_doctype_and_entities_are_refused(pki, signed_clerk, doctype):
    def with_doctype(data: bytes) -> bytes:
        declaration_end = data.index(b"?>") + 2
        return data[:declaration_end] + b"\n" + doctype + data[declaration_end:]

    result = verify(pki, with_doctype(signed_clerk))
    assert (result.status, result.reason) == ("invalid", "FORMAT_FAILURE")
    assert "xml.dtd_forbidden" in result.message
    with pytest.raises(SigningError) as refused:
        sign_p12(pki, "seal", with_doctype(package()))
    assert refused.value.code == "signing.invalid_package"


# ----- certificates ------------------------------------------------------------------------------


def test_certificate_problems(pki):
    untrusted = verify(pki, sign_p12(pki, "untrusted", package()))
    assert (untrusted.status, untrusted.reason) == ("indeterminate", "NO_CERTIFICATE_CHAIN_FOUND")
    nobody = verify_package(sign_p12(pki, "clerk", package()), trust_roots=[])
    assert nobody.reason == "NO_CERTIFICATE_CHAIN_FOUND"
    expired = sign_p12(pki, "expired", package())
    assert (verify(pki, expired).status, verify(pki, expired).reason) == (
        "indeterminate",
        "EXPIRED",
    )
    ten_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    assert verify(pki, expired, at=ten_days_ago).valid


def test_shared_trust_managers_keep_each_set_of_anchors_apart(pki):
    """Contexts share certvalidator's trust manager per set of anchors: the rogue hierarchy's
    root trusts only its own signer, however the checks alternate."""
    rogue_root = pki.identity("untrusted").chain[-1]
    rogue, clerk = sign_p12(pki, "untrusted", package()), sign_p12(pki, "clerk", package())
    for _ in range(2):
        assert verify_package(rogue, trust_roots=[rogue_root]).valid
        assert verify_package(clerk, trust_roots=[rogue_root]).reason == (
            "NO_CERTIFICATE_CHAIN_FOUND"
        )
        assert verify(pki, clerk).valid
        assert verify(pki, rogue).reason == "NO_CERTIFICATE_CHAIN_FOUND"
        assert verify_package(rogue, trust_roots=[pki.root_pem, rogue_root]).valid


def test_revocation(pki):
    revoked = verify(pki, sign_p12(pki, "revoked", package()), check_revocation=True)
    assert (revoked.status, revoked.reason) == ("invalid", "REVOKED")
    assert verify(pki, sign_p12(pki, "clerk", package()), check_revocation=True).valid


def test_chain_check_uses_the_process_caches(pki, monkeypatch):
    """A second check with revocation asks no responder and opens no HTTP session."""
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import util as aiohttp_util

    from signing import fetchers, trust

    trust.clear_caches()
    signed = sign_p12(pki, "clerk", package())
    assert verify(pki, signed, check_revocation=True).valid
    asked = dict(pki.requests)

    def no_session(*args, **kwargs):
        raise AssertionError("an HTTP session was opened")

    monkeypatch.setattr(aiohttp_util.LazySession, "get_session", no_session)
    monkeypatch.setattr(fetchers._LazySession, "get_session", no_session)
    for _ in range(2):
        assert verify(pki, signed, check_revocation=True).valid
    assert pki.requests == asked
    monkeypatch.undo()
    # a revoked signer is still refused with the caches warm, and twice
    for _ in range(2):
        revoked = verify(pki, sign_p12(pki, "revoked", package()), check_revocation=True)
        assert (revoked.status, revoked.reason) == ("invalid", "REVOKED")
    trust.clear_caches()


def test_chain_check_keeps_certvalidator_algorithm_policy(pki, monkeypatch):
    """The package chain keeps certvalidator's default algorithm policy (not the PDF one)."""
    from pyhanko_certvalidator.policy_decl import DisallowWeakAlgorithmsPolicy

    from signing import xml as xmldsig

    seen = []
    original = xmldsig.make_validation_context

    def spy(*args, **kwargs):
        vc = original(*args, **kwargs)
        seen.append(vc.algorithm_policy)
        return vc

    monkeypatch.setattr(xmldsig, "make_validation_context", spy)
    assert verify(pki, sign_p12(pki, "clerk", package())).valid
    (policy,) = seen
    assert isinstance(policy, DisallowWeakAlgorithmsPolicy)
    assert "sha1" in policy.weak_hash_algos
