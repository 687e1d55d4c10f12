"""The PDF validation service against the real test PKI (TSA, OCSP, CRL on 127.0.0.1).

Originals are signed with pyHanko directly (tests/support/attacks.py), not with signing/pdf/sign.py.
poppler's ``pdfsig`` is the independent oracle for the cryptographic part where it can speak
(``-nocert``: it cannot be told our test root, and does no modification analysis).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import pickle
import re
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko_certvalidator import ValidationContext

from signing import (
    INDETERMINATE,
    TOTAL_FAILED,
    TOTAL_PASSED,
    DocumentReport,
    TrustError,
    TrustSettings,
    async_validate_pdf,
    validate_pdf,
)
from signing import fetchers as fetchers_mod
from signing import trust as trust_mod
from signing.pdf.reading import UnreadablePdf, open_pdf
from signing.reports import render, report_to_dict, report_to_json, to_etsi_xml, to_html
from signing.reports.etsi import NS_DS, NS_VR
from signing.trust import load_certificates
from signing.validation.pdf import validate_pdf_in_pool
from signing.validation.policy import evaluate_policy
from signing.validation.report import SCHEMA, AlgorithmInfo
from tests.support.attacks import make_pdf, sign_pdf, signer_for, tsa_at
from tests.support.pdfgen import pillow_pdf

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schemas" / "xsd" / "validation-report.schema.json"
UTC = dt.UTC
NOW = dt.datetime.now(UTC)


# ----- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs(pki, stamper) -> dict[str, bytes]:
    """Signed documents shared by the tests of this module (signing takes the time)."""
    clerk = signer_for(pki.identity("clerk"))
    vc = ValidationContext(
        trust_roots=[_asn1(pki.root.cert)], other_certs=[_asn1(pki.issuing.cert)],
        allow_fetching=True,
    )  # fmt: skip
    lt = sign_pdf(make_pdf(), clerk, timestamper=stamper, validation_context=vc)
    writer = IncrementalPdfFileWriter(io.BytesIO(lt))
    lta = PdfTimeStamper(stamper).timestamp_pdf(writer, "sha256", validation_context=vc)
    return {
        "bt": sign_pdf(make_pdf(), clerk, timestamper=stamper),
        "lt": lt,
        "lta": lta.getvalue(),
        "seal": sign_pdf(make_pdf(), signer_for(pki.identity("seal")), timestamper=stamper),
        "ec384": sign_pdf(make_pdf(), signer_for(pki.identity("clerk_ec384")), timestamper=stamper),
    }


def _asn1(cert):
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def pdfsig(data: bytes, tmp_path: Path) -> str:
    """poppler's verdict line(s) for ``data`` (``-nocert``: crypto and ByteRange only)."""
    if shutil.which("pdfsig") is None:
        pytest.skip("pdfsig (poppler-utils) is not installed")
    path = tmp_path / f"doc-{time.monotonic_ns()}.pdf"
    path.write_bytes(data)
    out = subprocess.run(["pdfsig", "-nocert", str(path)], capture_output=True, timeout=60)
    return out.stdout.decode("utf-8", "replace")


# ----- a tiny JSON Schema (draft 2020-12 subset) checker -----------------------------------------
# jsonschema is not a dependency; this covers the keywords our schema uses.

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _type_ok(value, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def check_schema(value, schema: dict, root: dict, where: str = "$") -> list[str]:
    errors: list[str] = []
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return check_schema(value, root["$defs"][name], root, where)
    if "anyOf" in schema:
        if not any(not check_schema(value, s, root, where) for s in schema["anyOf"]):
            errors.append(f"{where}: matches none of anyOf")
        return errors
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r} != const {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, t) for t in types):
            errors.append(f"{where}: {type(value).__name__} is not {types}")
            return errors
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, int) and "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value} < {schema['minimum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing {key}")
        for key, item in value.items():
            if key in props:
                errors += check_schema(item, props[key], root, f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: unexpected property {key}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += check_schema(item, schema["items"], root, f"{where}[{i}]")
    return errors


def assert_schema_valid(report: DocumentReport) -> dict:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    data = json.loads(report_to_json(report))
    errors = check_schema(data, schema, schema)
    assert not errors, "\n".join(errors[:20])
    return data


def test_schema_checker_catches_mistakes():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    bad = {"schema": "other/1", "summary": {"indication": "MAYBE"}}
    errors = check_schema(bad, schema, schema)
    assert any("const" in e for e in errors)
    assert any("missing signatures" in e for e in errors)
    assert any("MAYBE" in e for e in errors)


# ----- valid signatures -----------------------------------------------------------------------


def test_valid_pades_bt_full_report(docs, trust, pki, tmp_path):
    report = validate_pdf(docs["bt"], trust)
    assert report.schema == SCHEMA
    assert report.summary.indication == TOTAL_PASSED, report.summary
    (sig,) = report.signatures
    assert (sig.indication, sig.sub_indication, sig.kind) == (TOTAL_PASSED, None, "signature")
    assert sig.signer.common_name == "Nguyễn Văn An"
    assert sig.signer.organization == "Văn phòng Chính phủ"
    assert sig.signer.organization_identifier == "000.00.00.G22"
    assert "organizationIdentifier=000.00.00.G22" in sig.signer.subject
    assert sig.signing_time.source == "signature-timestamp" and sig.signing_time.proven
    assert sig.signing_time.claimed is not None
    assert sig.timestamps[0].trusted and sig.timestamps[0].tsa.common_name == "Lienthong Test TSA"
    root_fp = _asn1(pki.root.cert).sha256.hex()
    assert sig.chain.trusted and sig.chain.anchor.sha256 == root_fp
    assert [c.common_name for c in sig.chain.certificates] == [
        "Nguyễn Văn An",
        "Lienthong Test Issuing CA",
        "Lienthong Test Root CA",
    ]
    assert (sig.revocation.source, sig.revocation.kind, sig.revocation.status) == (
        "online",
        "ocsp",
        "good",
    )
    assert sig.coverage.level == "ENTIRE_FILE" and sig.modifications.level == "NONE"
    assert sig.algorithms.signature == "rsassa_pss" and sig.algorithms.digest == "sha256"
    assert (sig.algorithms.key_type, sig.algorithms.key_size) == ("rsa", 2048)
    assert sig.policy.name == "circular-15-2025" and sig.policy.passed
    assert sig.intact and sig.valid
    # the oracle agrees on the cryptography
    out = pdfsig(docs["bt"], tmp_path)
    assert "Signature is Valid" in out and "Total document signed" in out


@pytest.mark.parametrize(("name", "curve"), [("seal", "secp256r1"), ("ec384", "secp384r1")])
def test_ecdsa_signatures_pass(docs, trust, name, curve, tmp_path):
    report = validate_pdf(docs[name], trust)
    (sig,) = report.signatures
    assert sig.indication == TOTAL_PASSED, sig.messages
    assert (sig.algorithms.signature, sig.algorithms.curve) == ("ecdsa", curve)
    assert sig.policy.level == "ok"
    assert "Signature is Valid" in pdfsig(docs[name], tmp_path)


def test_long_term_signature_offline(docs, trust):
    """B-LT: the DSS carries the OCSP/CRL data, so offline (embedded-only) validation passes."""
    report = validate_pdf(docs["lt"], trust.replace(revocation="embedded-only"))
    (sig,) = report.signatures
    assert sig.indication == TOTAL_PASSED, sig.messages
    assert (sig.revocation.source, sig.revocation.status) == ("embedded", "good")
    assert sig.modifications.level == "LTA_UPDATES"  # the DSS revision after signing
    assert sig.coverage.level == "ENTIRE_REVISION"


def test_bt_offline_has_no_revocation_data(docs, trust):
    report = validate_pdf(docs["bt"], trust.replace(revocation="embedded-only"))
    (sig,) = report.signatures
    assert (sig.indication, sig.sub_indication) == (INDETERMINATE, "TRY_LATER")
    assert "revocation" in sig.messages[0]


def test_archive_timestamp(docs, trust):
    """B-LTA: the document timestamp is validated as well and counted in the summary."""
    report = validate_pdf(docs["lta"], trust.replace(revocation="embedded-only"))
    assert report.summary.indication == TOTAL_PASSED, report.summary
    assert (report.summary.signatures, report.summary.document_timestamps) == (1, 1)
    sig, ts = report.signatures
    assert ts.kind == "document-timestamp" and ts.indication == TOTAL_PASSED
    assert ts.signer.common_name == "Lienthong Test TSA"
    assert ts.signing_time.source == "document-timestamp"
    assert sig.signing_time.source == "signature-timestamp"
    assert report.revisions >= 4  # original, signature, DSS, document timestamp


# ----- time: proven signing times, past validation, point-in-time -------------------------------


def test_expired_certificate_with_timestamp_from_its_validity(pki, trust):
    """Signed (and timestamped) while the certificate was valid: past validation passes."""
    when = NOW - dt.timedelta(days=10)
    data = sign_pdf(make_pdf(), signer_for(pki.identity("expired")), timestamper=tsa_at(pki, when))
    (sig,) = validate_pdf(data, trust).signatures
    assert sig.indication == TOTAL_PASSED, sig.messages
    assert sig.signing_time.source == "signature-timestamp"
    assert sig.chain.validated_at.startswith(when.strftime("%Y-%m-%d"))


def test_revoked_after_signing_stays_valid(pki, trust):
    when = NOW - dt.timedelta(days=2)  # revoked one day ago
    data = sign_pdf(make_pdf(), signer_for(pki.identity("revoked")), timestamper=tsa_at(pki, when))
    (sig,) = validate_pdf(data, trust).signatures
    assert sig.indication == TOTAL_PASSED, sig.messages
    assert sig.revocation.status == "revoked" and sig.revocation.revoked_at
    assert any("after the proven signing time" in m for m in sig.messages)


@pytest.mark.parametrize(
    ("name", "sub"), [("revoked", "REVOKED_NO_POE"), ("expired", "OUT_OF_BOUNDS_NO_POE")]
)
def test_without_timestamp_a_claimed_time_proves_nothing(pki, trust, name, sub):
    data = sign_pdf(make_pdf(), signer_for(pki.identity(name)))
    (sig,) = validate_pdf(data, trust).signatures
    assert (sig.indication, sig.sub_indication) == (INDETERMINATE, sub)
    assert sig.signing_time.source == "signing-time-claimed" and not sig.signing_time.proven


def test_point_in_time_before_the_signature(docs, trust):
    report = validate_pdf(docs["bt"], trust.replace(at=NOW - dt.timedelta(days=3)))
    assert report.point_in_time
    (sig,) = report.signatures
    assert (sig.indication, sig.sub_indication) == (INDETERMINATE, "NO_POE")


def test_point_in_time_now(docs, trust):
    report = validate_pdf(docs["bt"], trust.replace(at=dt.datetime.now(UTC)))
    assert report.point_in_time and report.summary.indication == TOTAL_PASSED


def test_unreachable_responders_soft_and_hard_fail(docs, trust, monkeypatch):
    """OCSP and CRL cannot be fetched: soft-fail accepts (and says so), hard-fail does not."""
    from pyhanko_certvalidator.errors import CRLFetchError, OCSPFetchError

    async def no_ocsp(self, cert, authority):
        raise OCSPFetchError("responder unreachable")

    async def no_crl(self, cert, *, use_deltas=None):
        raise CRLFetchError("CRL unreachable")

    trust_mod.clear_caches()
    monkeypatch.setattr(fetchers_mod._CachingOCSPFetcher, "fetch", no_ocsp)
    monkeypatch.setattr(fetchers_mod._CachingCRLFetcher, "fetch", no_crl)
    (soft,) = validate_pdf(docs["bt"], trust).signatures
    assert soft.indication == TOTAL_PASSED, soft.messages
    assert soft.revocation.status == "unknown" and not soft.revocation.checked
    assert any("soft-fail" in m for m in soft.messages)
    (hard,) = validate_pdf(docs["bt"], trust.replace(revocation="hard-fail")).signatures
    assert (hard.indication, hard.sub_indication) == (INDETERMINATE, "TRY_LATER"), hard.messages
    trust_mod.clear_caches()


# ----- algorithm policy -------------------------------------------------------------------------

RSA_PSS = AlgorithmInfo("sha256", "rsassa_pss", "rsa", 2048)
RSA_V15 = AlgorithmInfo("sha256", "rsassa_pkcs1v15", "rsa", 2048)
RSA_V15_SHA1 = AlgorithmInfo("sha1", "rsassa_pkcs1v15", "rsa", 2048)
RSA_1024 = AlgorithmInfo("sha256", "rsassa_pss", "rsa", 1024)
EC_256 = AlgorithmInfo("sha384", "ecdsa", "ec", 256, "secp256r1")
MD5 = AlgorithmInfo("md5", "rsassa_pkcs1v15", "rsa", 2048)
NEW = dt.datetime(2025, 9, 1, tzinfo=UTC)
OLD = dt.datetime(2019, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("algs", "when", "proven", "name", "level", "sub"),
    [
        (RSA_PSS, NEW, True, "circular-15-2025", "ok", None),
        (EC_256, NEW, False, "circular-15-2025", "ok", None),
        (RSA_V15, NEW, True, "circular-15-2025", "warning", None),  # warning, not a failure
        (RSA_V15_SHA1, NEW, True, "circular-15-2025", "failure", "CRYPTO_CONSTRAINTS_FAILURE"),
        (RSA_1024, NEW, True, "circular-15-2025", "failure", "CRYPTO_CONSTRAINTS_FAILURE"),
        (RSA_V15, OLD, False, "historical", "ok", None),
        (RSA_V15_SHA1, OLD, True, "historical", "warning", None),
        (RSA_V15_SHA1, OLD, False, "historical", "failure", "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"),
        (MD5, OLD, True, "historical", "failure", "CRYPTO_CONSTRAINTS_FAILURE"),
    ],
)
def test_policy_rules(algs, when, proven, name, level, sub):
    result, got_sub = evaluate_policy(algs, algs.digest, when, proven)
    assert (result.name, result.level, got_sub) == (name, level, sub), result.notes
    assert result.notes or level == "ok"


def test_circular_cutoff_is_vietnam_time():
    just_before = dt.datetime(2025, 6, 30, 16, 59, tzinfo=UTC)  # 23:59 +07:00
    just_after = dt.datetime(2025, 6, 30, 17, 0, tzinfo=UTC)  # 00:00 +07:00
    assert evaluate_policy(RSA_PSS, "sha256", just_before, True)[0].name == "historical"
    assert evaluate_policy(RSA_PSS, "sha256", just_after, True)[0].name == "circular-15-2025"


def test_new_pkcs1v15_signature_is_a_warning(pki, trust, stamper):
    data = sign_pdf(make_pdf(), signer_for(pki.identity("clerk"), pss=False), timestamper=stamper)
    (sig,) = validate_pdf(data, trust).signatures
    assert sig.indication == TOTAL_PASSED
    assert sig.algorithms.signature == "rsassa_pkcs1v15"
    assert (sig.policy.passed, sig.policy.level) == (False, "warning")
    assert any("PKCS#1 v1.5" in m for m in sig.messages)


def test_new_sha1_signature_fails_the_policy(pki, trust, stamper, tmp_path):
    data = sign_pdf(
        make_pdf(),
        signer_for(pki.identity("clerk"), pss=False),
        timestamper=stamper,
        md_algorithm="sha1",
    )
    (sig,) = validate_pdf(data, trust).signatures
    assert (sig.indication, sig.sub_indication) == (INDETERMINATE, "CRYPTO_CONSTRAINTS_FAILURE")
    assert sig.intact and sig.valid  # the crypto itself verifies: SHA-1 is policy, not breakage
    assert "Signature is Valid" in pdfsig(data, tmp_path)


# ----- odd inputs -------------------------------------------------------------------------------


def test_not_a_pdf(trust):
    report = validate_pdf(b"%PDF-1.7\nnot really", trust)
    assert (report.summary.indication, report.summary.sub_indication) == (
        TOTAL_FAILED,
        "FORMAT_FAILURE",
    )
    assert report.errors and not report.signatures
    assert_schema_valid(report)


def test_unsigned_pdf(trust):
    report = validate_pdf(make_pdf(), trust)
    assert report.summary.indication == INDETERMINATE and not report.signatures
    assert "no signature" in report.summary.message
    assert_schema_valid(report)
    root = etree.fromstring(to_etsi_xml(report))
    assert root.find(f"{{{NS_VR}}}SignatureValidationReport") is not None


# ----- reports ----------------------------------------------------------------------------------


def test_only_the_free_list_head_quirk_is_tolerated(trust):
    """Pillow's ``0000000000 65536 f`` is read (the number is meaningless on entry 0); the same
    generation on a real object is still refused, by the verifier as by the signer's reader."""
    data = pillow_pdf()
    reader = open_pdf(data)
    reader.stream.seek(0)
    assert reader.stream.read() == data  # after opening, every read sees the file as it is
    report = validate_pdf(data, trust)
    assert (report.summary.indication, report.summary.signatures) == (INDETERMINATE, 0)
    assert report.summary.message == "the document carries no signature"
    entry = re.search(rb"(\d{10}) 00000 n", data)
    assert entry is not None
    bad = data[: entry.start()] + entry.group(1) + b" 65536 n" + data[entry.end() :]
    with pytest.raises(UnreadablePdf, match="Illegal generation 65536 for object ID 1"):
        open_pdf(bad)
    report = validate_pdf(bad, trust)
    assert (report.summary.indication, report.summary.sub_indication) == (
        TOTAL_FAILED,
        "FORMAT_FAILURE",
    )


def test_json_report_matches_schema(docs, trust, pki, stamper):
    reports = [
        validate_pdf(docs["bt"], trust),
        validate_pdf(docs["lta"], trust),
        validate_pdf(sign_pdf(make_pdf(), signer_for(pki.identity("untrusted"))), trust),
        validate_pdf(docs["bt"][:-300], trust),  # truncated file
    ]
    for report in reports:
        data = assert_schema_valid(report)
        assert data["schema"] == "lienthong.validation-report/1"
        assert list(data)[0] == "schema"
    assert report_to_dict(reports[0])["signatures"][0]["signer"]["der"]


def test_etsi_xml_report(docs, trust):
    report = validate_pdf(docs["lta"], trust)
    xml = to_etsi_xml(report)
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = etree.fromstring(xml)  # well-formed
    assert root.tag == f"{{{NS_VR}}}ValidationReport"
    assert root.nsmap["vr"] == "http://uri.etsi.org/19102/v1.2.1#"
    ns = {"vr": NS_VR, "ds": NS_DS}
    reports = root.findall("vr:SignatureValidationReport", ns)
    assert len(reports) == 1  # the document timestamp is a validation object
    svr = reports[0]
    order = [etree.QName(child).localname for child in svr]
    assert order == [
        "SignatureIdentifier",
        "ValidationConstraintsEvaluationReport",
        "ValidationTimeInfo",
        "SignersDocument",
        "SignatureAttributes",
        "SignerInformation",
        "SignatureValidationProcess",
        "SignatureValidationStatus",
    ]
    ident = svr.find("vr:SignatureIdentifier", ns)
    assert ident.get("id") == "sig-1"
    assert ident.find("vr:DigestAlgAndValue/ds:DigestMethod", ns) is not None
    assert ident.find("ds:SignatureValue", ns).text
    status = svr.find("vr:SignatureValidationStatus", ns)
    assert (
        status.findtext("vr:MainIndication", namespaces=ns)
        == "urn:etsi:019102:mainindication:total-passed"
    )
    assert svr.findtext("vr:SignatureAttributes/vr:SigningTime/vr:Time", namespaces=ns)
    assert svr.findtext("vr:SignerInformation/vr:Signer", namespaces=ns).startswith("CN=")
    assert (
        svr.findtext("vr:ValidationTimeInfo/vr:BestSignatureTime/vr:TypeOfProof", namespaces=ns)
        == "urn:etsi:019102:poetype:validation"
    )
    # every VOReference points at a validation object
    ids = {vo.get("id") for vo in root.iterfind(".//vr:ValidationObject", ns)}
    refs = {el.get("VOReference") for el in root.iter() if el.get("VOReference")}
    assert refs and refs <= ids
    ts_objects = [
        vo
        for vo in root.iterfind(".//vr:ValidationObject", ns)
        if vo.findtext("vr:ObjectType", namespaces=ns)
        == "urn:etsi:019102:validationObject:timestamp"
    ]
    assert len(ts_objects) == 1
    assert ts_objects[0].find("vr:POE/vr:POETime", ns) is not None
    assert ts_objects[0].find("vr:ValidationReport/vr:SignatureValidationStatus", ns) is not None


def test_etsi_xml_sub_indication(pki, trust):
    data = sign_pdf(make_pdf(), signer_for(pki.identity("untrusted")))
    root = etree.fromstring(to_etsi_xml(validate_pdf(data, trust)))
    ns = {"vr": NS_VR}
    status = root.find("vr:SignatureValidationReport/vr:SignatureValidationStatus", ns)
    assert (
        status.findtext("vr:MainIndication", namespaces=ns)
        == "urn:etsi:019102:mainindication:indeterminate"
    )
    assert (
        status.findtext("vr:SubIndication", namespaces=ns)
        == "urn:etsi:019102:subindication:NO_CERTIFICATE_CHAIN_FOUND"
    )


def test_html_report_is_self_contained_and_escaped(pki, trust, stamper):
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter

    meta = signers.PdfSignatureMetadata(
        field_name="Sig1",
        subfilter=SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason="<script>alert('x')</script> & <b>",
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(make_pdf()))
    data = signers.PdfSigner(
        meta, signer=signer_for(pki.identity("clerk")), timestamper=stamper
    ).sign_pdf(writer)
    report = validate_pdf(data.getvalue(), trust)
    assert report.signatures[0].pdf.reason.startswith("<script>")
    html = to_html(report)
    assert "HỢP LỆ / VALID" in html
    assert "<script" not in html.lower()
    assert "@media print" in html
    assert not re.search(r"(src|href)\s*=", html)  # nothing fetched: self-contained
    etree.fromstring(html.encode(), etree.HTMLParser())  # parses
    assert render(report, "html").decode() == html
    failed = to_html(validate_pdf(data.getvalue()[:-1] + b"\n", trust))
    assert "HỢP LỆ / VALID" in failed or "KHÔNG HỢP LỆ / INVALID" in failed


def test_html_verdict_words(pki, trust):
    data = sign_pdf(make_pdf(), signer_for(pki.identity("untrusted")))
    html = to_html(validate_pdf(data, trust))
    assert "CHƯA XÁC ĐỊNH / INDETERMINATE" in html
    assert "NO_CERTIFICATE_CHAIN_FOUND" in html


# ----- trust settings ---------------------------------------------------------------------------


def test_trust_loader_pem_der_and_folder(pki, tmp_path):
    der = tmp_path / "root.der"
    der.write_bytes(pki.root.cert.public_bytes(serialization.Encoding.DER))
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.root_pem.read_bytes() + pki.issuing_pem.read_bytes())
    assert len(load_certificates(der)) == 1
    assert len(load_certificates(bundle)) == 2
    folder = tmp_path / "anchors"
    folder.mkdir()
    (folder / "a.pem").write_bytes(pki.root_pem.read_bytes())
    (folder / "b.der").write_bytes(der.read_bytes())
    assert len(load_certificates(folder)) == 2
    (tmp_path / "junk.pem").write_bytes(b"not a certificate")
    with pytest.raises(TrustError):
        load_certificates(tmp_path / "junk.pem")
    with pytest.raises(TrustError):
        load_certificates(tmp_path / "missing.pem")
    with pytest.raises(TrustError):
        TrustSettings(anchors=[der], revocation="sometimes")  # type: ignore[arg-type]
    with pytest.raises(TrustError):
        TrustSettings(anchors=[der], at=dt.datetime(2024, 1, 1))  # naive time
    with pytest.raises(TrustError):
        TrustSettings(anchors=[])
    with pytest.raises(TrustError):  # a configuration error is raised, not reported
        validate_pdf(make_pdf(), TrustSettings(anchors=[tmp_path / "missing.pem"]))


async def test_validation_context_mapping(pki):
    base = TrustSettings(anchors=[pki.root_pem], intermediates=[pki.issuing_pem])
    soft = base.validation_context()
    hard = base.replace(revocation="hard-fail").validation_context()
    offline = base.replace(revocation="embedded-only").validation_context()
    past = base.replace(at=NOW - dt.timedelta(days=1)).validation_context()
    try:
        assert soft.fetching_allowed and hard.fetching_allowed
        assert not offline.fetching_allowed
        assert soft.revinfo_policy.revocation_checking_policy.ee_certificate_rule.tolerant
        assert not hard.revinfo_policy.revocation_checking_policy.ee_certificate_rule.tolerant
        assert not offline.revinfo_policy.revocation_checking_policy.ee_certificate_rule.tolerant
        assert past.moment == base.replace(at=NOW - dt.timedelta(days=1)).at
        assert past.retroactive_revinfo and not soft.retroactive_revinfo
    finally:
        for vc in (soft, hard, offline, past):
            await vc.aclose()
    restored = pickle.loads(pickle.dumps(base))
    assert restored == base
    same = TrustSettings.from_mapping(
        {"anchors": [str(pki.root_pem)], "intermediates": [str(pki.issuing_pem)]}
    )
    assert same == base


# ----- concurrency, pickling, speed -------------------------------------------------------------


async def test_async_api_and_process_pool(docs, trust):
    report = await async_validate_pdf(docs["bt"], trust)
    again = pickle.loads(pickle.dumps(report))
    assert again == report
    with ProcessPoolExecutor(max_workers=1) as pool:
        pooled = await validate_pdf_in_pool(pool, docs["bt"], trust)
    assert pooled.summary == report.summary
    assert pooled.signatures[0].signer == report.signatures[0].signer


# ----- the fast hex reader (signing/pdf/fasthex.py), the revocation cache ----------------------


def _hex_outcome(reader, data: bytes, fast: bool):
    """What a hex-string reader makes of ``data``: (type, value, encoding, position) or error."""
    from signing.pdf import fasthex as fastpaths

    stream = io.BytesIO(data)
    try:
        if fast:
            with fastpaths.fast_pdf_reading():
                value = reader(stream)
        else:
            value = reader(stream)
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return ("error", type(exc).__name__, str(exc))
    encoding = getattr(value, "autodetected_encoding", None)
    return (type(value).__name__, value, encoding, stream.tell())


def _hex_cases() -> list[bytes]:
    import random

    rng = random.Random(7)
    cases = [
        b"<>",
        b"<0>",
        b"<abc>",
        b"<ABCDEF0123456789>rest",
        b"<FEFF00410042>",  # UTF-16 BOM: a text string
        b"<EFBBBF41>",
        b"< a b\n\r\t\x0c\x00c d >",
        b"<ab%comment > here\ncd>",  # a comment inside: pyHanko skips it
        b"<ab%comment",
        b"<abxz>",
        b"<ab",
        b"<",
        b"<ab<cd>",
        b"<" + b"0123456789abcdef" * 8192 + b"\n" * 3 + b">",  # longer than one chunk
        b"<" + b"ab" * 40000,  # no end before EOF
        b"<" + b"ab" * 40000 + b"%x\nab>",
        b"<" + rng.randbytes(3000).hex().encode() + b"00" * 9000 + b">>",
    ]
    alphabet = b"0123456789abcdefABCDEF \n\r\t\x0c\x00%>x<"
    for _ in range(400):
        size = rng.randint(0, 40)
        cases.append(b"<" + bytes(rng.choice(alphabet) for _ in range(size)) + b"> tail")
    return cases


def test_fast_hex_reader_matches_pyhanko():
    """Same value, type, encoding, stream position and error as pyHanko's own reader."""
    from pyhanko.pdf_utils import generic

    from signing.pdf import fasthex as fastpaths

    assert fastpaths.install_fast_paths()
    fast = generic.read_hex_string_from_stream
    original = fast.__wrapped__
    for data in _hex_cases():
        assert _hex_outcome(fast, data, True) == _hex_outcome(original, data, False), data[:80]
    # outside validate_pdf the original runs
    assert _hex_outcome(fast, b"<ab>", False) == _hex_outcome(original, b"<ab>", False)


def _stable(report: DocumentReport) -> dict:
    """A report without the wall-clock fields (which differ from run to run)."""
    import dataclasses

    data = dataclasses.asdict(report)
    data.pop("validated_at")
    data.pop("validation_time")
    for sig in data["signatures"]:
        sig["chain"]["validated_at"] = None
    return data


def test_warm_caches_give_the_same_report(docs, trust):
    trust_mod.clear_caches()
    for name in ("bt", "lt", "lta"):
        first = validate_pdf(docs[name], trust)
        second = validate_pdf(docs[name], trust)  # revocation data from the cache
        assert first.summary.indication == TOTAL_PASSED, first.summary
        assert _stable(second) == _stable(first), name
    trust_mod.clear_caches()


def test_a_changed_revocation_answer_is_seen_once_fetched(pki, trust, docs):
    """A cached OCSP/CRL answer stands for its lifetime; a fresh one changes the verdict."""
    trust_mod.clear_caches()
    assert validate_pdf(docs["bt"], trust).summary.indication == TOTAL_PASSED
    serial = pki.identity("clerk").cert.serial_number
    pki.revoked[serial] = NOW - dt.timedelta(days=1)  # before the signature's timestamp
    try:
        # within the revocation cache's lifetime the old answer stands, cached or not
        assert validate_pdf(docs["bt"], trust).summary.indication == TOTAL_PASSED
        fetchers_mod.clear_revocation_cache()  # new OCSP/CRL answers are fetched
        (sig,) = validate_pdf(docs["bt"], trust).signatures
        assert (sig.indication, sig.sub_indication) == (TOTAL_FAILED, "REVOKED"), sig.messages
        assert sig.revocation.status == "revoked"
        (again,) = validate_pdf(docs["bt"], trust).signatures
        assert (again.indication, again.sub_indication) == (TOTAL_FAILED, "REVOKED")
    finally:
        del pki.revoked[serial]
        trust_mod.clear_caches()


def test_a_failure_stays_a_failure_with_warm_caches(pki, trust):
    data = sign_pdf(make_pdf(), signer_for(pki.identity("revoked")))
    trust_mod.clear_caches()
    first = validate_pdf(data, trust)
    second = validate_pdf(data, trust)
    assert first.summary.sub_indication == "REVOKED_NO_POE"
    assert _stable(second) == _stable(first)
    trust_mod.clear_caches()


def test_each_point_in_time_is_judged_on_its_own(docs, trust, pki):
    trust_mod.clear_caches()
    at = dt.datetime.now(UTC)
    assert validate_pdf(docs["bt"], trust.replace(at=at)).summary.indication == TOTAL_PASSED
    expiry = pki.identity("clerk").cert.not_valid_after_utc
    later = validate_pdf(docs["bt"], trust.replace(at=expiry + dt.timedelta(days=1)))
    (sig,) = later.signatures
    assert sig.indication != TOTAL_PASSED
    assert validate_pdf(docs["bt"], trust.replace(at=at)).summary.indication == TOTAL_PASSED
    trust_mod.clear_caches()


def test_soft_fail_result_is_not_cached(docs, trust, monkeypatch):
    """An unreachable responder passes in soft-fail mode, but that pass is never reused."""
    from pyhanko_certvalidator.errors import CRLFetchError, OCSPFetchError

    async def no_ocsp(self, cert, authority):
        raise OCSPFetchError("responder unreachable")

    async def no_crl(self, cert, *, use_deltas=None):
        raise CRLFetchError("CRL unreachable")

    trust_mod.clear_caches()
    monkeypatch.setattr(fetchers_mod._CachingOCSPFetcher, "fetch", no_ocsp)
    monkeypatch.setattr(fetchers_mod._CachingCRLFetcher, "fetch", no_crl)
    for _ in range(2):
        (soft,) = validate_pdf(docs["bt"], trust).signatures
        assert soft.indication == TOTAL_PASSED and soft.revocation.status == "unknown"
    monkeypatch.undo()
    (good,) = validate_pdf(docs["bt"], trust).signatures  # responders back: checked
    assert good.revocation.status == "good" and good.revocation.checked
    trust_mod.clear_caches()
