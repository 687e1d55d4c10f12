"""ETSI TS 119 102-2 (v1.2.1) signature validation report, built with lxml.

Structure (elements in schema order; optional ones only when we have the data)::

    vr:ValidationReport
      vr:SignatureValidationReport            one per signature (not for document timestamps)
        vr:SignatureIdentifier id=...         DigestAlgAndValue of the DTBSR, ds:SignatureValue,
                                              HashOnly, DocHashOnly
        vr:ValidationConstraintsEvaluationReport   the algorithm policy as a constraint
        vr:ValidationTimeInfo                 ValidationTime, BestSignatureTime (POE)
        vr:SignersDocument                    digest of the /ByteRange
        vr:SignatureAttributes                SigningTime, SignatureTimeStamp, DocTimeStamp,
                                              Reason, Name, ContactInfo, SubFilter, ByteRange,
                                              Filter
        vr:SignerInformation                  SignerCertificate (VOReference), Signer
        vr:SignatureValidationProcess         Basic | LTVM | LTA
        vr:SignatureValidationStatus          MainIndication, SubIndication,
                                              AssociatedValidationReportData (chain, revocation,
                                              crypto)
      vr:SignatureValidationObjects           certificates (base64) and timestamps (with their
                                              own ValidationReport and POE)

The DigestAlgAndValue in SignatureIdentifier is the digest of the data to be signed (the DER
SET of signed attributes), as the standard and EU DSS use it; the signature value itself is
given in full in ``ds:SignatureValue``.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from lxml import etree

from signing.batch import SUFFIXES, FileResult, documents
from signing.outputs import write_output
from signing.validation.report import (
    INDETERMINATE,
    TOTAL_FAILED,
    TOTAL_PASSED,
    CertInfo,
    Digest,
    DocumentReport,
    SignatureReport,
)

__all__ = ["NS_DS", "NS_VR", "NS_XADES", "to_etsi_xml", "write_etsi_reports"]

NS_VR = "http://uri.etsi.org/19102/v1.2.1#"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XADES = "http://uri.etsi.org/01903/v1.3.2#"
_NSMAP = {"vr": NS_VR, "ds": NS_DS, "XAdES": NS_XADES}

_MAIN = {
    TOTAL_PASSED: "urn:etsi:019102:mainindication:total-passed",
    TOTAL_FAILED: "urn:etsi:019102:mainindication:total-failed",
    INDETERMINATE: "urn:etsi:019102:mainindication:indeterminate",
}
_DIGEST_URI = {
    "sha1": "http://www.w3.org/2000/09/xmldsig#sha1",
    "sha224": "http://www.w3.org/2001/04/xmldsig-more#sha224",
    "sha256": "http://www.w3.org/2001/04/xmlenc#sha256",
    "sha384": "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "sha512": "http://www.w3.org/2001/04/xmlenc#sha512",
    "sha3_256": "http://www.w3.org/2007/05/xmldsig-more#sha3-256",
    "sha3_384": "http://www.w3.org/2007/05/xmldsig-more#sha3-384",
    "sha3_512": "http://www.w3.org/2007/05/xmldsig-more#sha3-512",
}
_SIG_URI = {
    ("rsassa_pkcs1v15", "sha1"): "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    ("rsassa_pkcs1v15", "sha256"): "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    ("rsassa_pkcs1v15", "sha384"): "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    ("rsassa_pkcs1v15", "sha512"): "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    ("rsassa_pss", "sha256"): "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1",
    ("rsassa_pss", "sha384"): "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1",
    ("rsassa_pss", "sha512"): "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1",
    ("ecdsa", "sha1"): "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
    ("ecdsa", "sha256"): "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    ("ecdsa", "sha384"): "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    ("ecdsa", "sha512"): "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
}
_VO_CERT = "urn:etsi:019102:validationObject:certificate"
_VO_TIMESTAMP = "urn:etsi:019102:validationObject:timestamp"
_POLICY_CONSTRAINT = "urn:lienthong:validation-constraint:algorithm-policy"
_UNSAFE = re.compile(r"[^\w.-]+")
_TIMESTAMP_TAG = {
    "signature-timestamp": "vr:SignatureTimeStamp",
    "content-timestamp": "vr:AllDataObjectsTimeStamp",
}


def _vr(tag: str) -> str:
    return f"{{{NS_VR}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str):
    ns, _, name = tag.partition(":")
    el = etree.SubElement(parent, f"{{{_NSMAP[ns]}}}{name}", attrs)
    if text is not None:
        el.text = text
    return el


def _digest(parent: etree._Element, tag: str, digest: Digest) -> None:
    holder = _sub(parent, tag)
    uri = _DIGEST_URI.get(digest.algorithm, f"urn:lienthong:digest:{digest.algorithm}")
    _sub(holder, "ds:DigestMethod", Algorithm=uri)
    _sub(holder, "ds:DigestValue", base64.b64encode(bytes.fromhex(digest.value)).decode())


def _cert_id(cert: CertInfo) -> str:
    return f"cert-{cert.sha256[:24]}"


def _main(indication: str) -> str:
    return _MAIN[indication]


def _status(parent: etree._Element, tag: str, sig: SignatureReport) -> etree._Element:
    status = _sub(parent, tag)
    _sub(status, "vr:MainIndication", _main(sig.indication))
    if sig.sub_indication:
        _sub(status, "vr:SubIndication", f"urn:etsi:019102:subindication:{sig.sub_indication}")
    return status


def _process_id(sig: SignatureReport) -> str:
    if sig.signing_time.source == "document-timestamp" and sig.kind != "document-timestamp":
        return "urn:etsi:019102:validationprocess:LTA"
    if sig.signing_time.source == "signature-timestamp":
        return "urn:etsi:019102:validationprocess:LTVM"
    return "urn:etsi:019102:validationprocess:Basic"


def _signature_report(
    parent: etree._Element, sig: SignatureReport, report: DocumentReport, tag: str
) -> etree._Element:
    """One signature's (or document timestamp's) report, its elements in schema order."""
    svr = _sub(parent, tag)
    _identifier(svr, sig)
    if sig.policy is not None:
        _constraints(svr, sig)
    _time_info(svr, sig, report)
    if sig.document_digest is not None:
        _digest(_sub(svr, "vr:SignersDocument"), "vr:DigestAlgAndValue", sig.document_digest)
    _attributes(_sub(svr, "vr:SignatureAttributes"), sig)
    if sig.signer is not None:
        si = _sub(svr, "vr:SignerInformation")
        _sub(si, "vr:SignerCertificate", VOReference=_cert_id(sig.signer))
        _sub(si, "vr:Signer", sig.signer.subject)
    svp = _sub(svr, "vr:SignatureValidationProcess")
    _sub(svp, "vr:SignatureValidationProcessID", _process_id(sig))
    status = _status(svr, "vr:SignatureValidationStatus", sig)
    data = _sub(status, "vr:AssociatedValidationReportData")
    _chain(data, sig)
    _revocation(data, sig)
    _crypto(data, sig)
    if len(data) == 0:
        status.remove(data)
    return svr


def _identifier(svr: etree._Element, sig: SignatureReport) -> None:
    ident = _sub(svr, "vr:SignatureIdentifier", id=sig.id)
    if sig.dtbsr_digest is not None:
        _digest(ident, "vr:DigestAlgAndValue", sig.dtbsr_digest)
    if sig.signature_value is not None:
        _sub(ident, "ds:SignatureValue", sig.signature_value)
    _sub(ident, "vr:HashOnly", "false")
    _sub(ident, "vr:DocHashOnly", "false")


def _constraints(svr: etree._Element, sig: SignatureReport) -> None:
    """ValidationConstraintsEvaluationReport: the algorithm policy as a constraint."""
    assert sig.policy is not None
    vcer = _sub(svr, "vr:ValidationConstraintsEvaluationReport")
    vc = _sub(vcer, "vr:ValidationConstraint")
    _sub(vc, "vr:ValidationConstraintIdentifier", f"{_POLICY_CONSTRAINT}:{sig.policy.name}")
    param = _sub(vc, "vr:ValidationConstraintParameter")
    _sub(param, "vr:Type", "urn:lienthong:policy-notes")
    _sub(param, "vr:Value", "; ".join(sig.policy.notes) or sig.policy.level)
    cs = _sub(vc, "vr:ConstraintStatus")
    _sub(cs, "vr:Status", "urn:etsi:019102:constraintStatus:applied")
    vs = _sub(vc, "vr:ValidationStatus")
    ok = sig.policy.passed or sig.policy.level == "warning"
    _sub(vs, "vr:MainIndication", _main(TOTAL_PASSED if ok else INDETERMINATE))
    if not ok:
        _sub(vs, "vr:SubIndication", "urn:etsi:019102:subindication:CRYPTO_CONSTRAINTS_FAILURE")


def _time_info(svr: etree._Element, sig: SignatureReport, report: DocumentReport) -> None:
    vti = _sub(svr, "vr:ValidationTimeInfo")
    _sub(vti, "vr:ValidationTime", report.validation_time)
    if sig.signing_time.best is not None:
        bst = _sub(vti, "vr:BestSignatureTime")
        _sub(bst, "vr:POETime", sig.signing_time.best)
        proof = (
            "urn:etsi:019102:poetype:validation"
            if sig.signing_time.proven
            else "urn:etsi:019102:poetype:provided"
        )
        _sub(bst, "vr:TypeOfProof", proof)


def _attributes(attrs: etree._Element, sig: SignatureReport) -> None:
    """SignatureAttributes: signing time, signing certificate, timestamps, the PDF's entries."""
    if sig.signing_time.claimed:
        st = _sub(attrs, "vr:SigningTime", Signed="true")
        _sub(st, "vr:Time", sig.signing_time.claimed)
    if sig.signer is not None and sig.kind != "document-timestamp":
        sc = _sub(attrs, "vr:SigningCertificate", Signed="true")
        cid = _sub(sc, "vr:CertID")
        _sub(cid, "ds:DigestMethod", Algorithm=_DIGEST_URI["sha256"])
        _sub(cid, "ds:DigestValue", base64.b64encode(bytes.fromhex(sig.signer.sha256)).decode())
    for ts in sig.timestamps:
        tag = _TIMESTAMP_TAG.get(ts.kind)
        if tag is None or ts.time is None:
            continue
        el = _sub(attrs, tag, Signed="true" if ts.kind == "content-timestamp" else "false")
        _sub(el, "vr:TimeStampValue", ts.time)
    if sig.kind == "document-timestamp" and sig.signing_time.best:
        el = _sub(attrs, "vr:DocTimeStamp", Signed="false")
        _sub(el, "vr:TimeStampValue", sig.signing_time.best)
    pdf = sig.pdf
    if pdf is not None:
        for tag, inner, value in (
            ("vr:Reason", "vr:ReasonElement", pdf.reason),
            ("vr:Name", "vr:NameElement", pdf.name),
            ("vr:ContactInfo", "vr:ContactInfoElement", pdf.contact_info),
            ("vr:SubFilter", "vr:SubFilterElement", pdf.sub_filter),
        ):
            if value:
                el = _sub(attrs, tag, Signed="true")
                _sub(el, inner, value)
    if len(sig.coverage.byte_range) == 4:
        _sub(attrs, "vr:ByteRange", " ".join(str(x) for x in sig.coverage.byte_range))
    if pdf is not None and pdf.filter:
        el = _sub(attrs, "vr:Filter")
        _sub(el, "vr:Filter", pdf.filter)


def _chain(data: etree._Element, sig: SignatureReport) -> None:
    anchor = sig.chain.anchor
    if anchor is not None:
        _sub(data, "vr:TrustAnchor", VOReference=_cert_id(anchor))
    certs = sig.chain.certificates
    if not certs:
        return
    chain = _sub(data, "vr:CertificateChain")
    _sub(chain, "vr:SigningCertificate", VOReference=_cert_id(certs[0]))
    for cert in certs[1:]:
        if anchor is None or cert.sha256 != anchor.sha256:
            _sub(chain, "vr:IntermediateCertificate", VOReference=_cert_id(cert))
    if anchor is not None:
        _sub(chain, "vr:TrustAnchor", VOReference=_cert_id(anchor))


def _revocation(data: etree._Element, sig: SignatureReport) -> None:
    if sig.revocation.status == "revoked" and sig.revocation.revoked_at and sig.signer:
        rsi = _sub(data, "vr:RevocationStatusInformation")
        _sub(rsi, "vr:ValidationObjectId", VOReference=_cert_id(sig.signer))
        _sub(rsi, "vr:RevocationTime", sig.revocation.revoked_at)
        if sig.revocation.reason:
            _sub(rsi, "vr:RevocationReason", sig.revocation.reason)


def _crypto(data: etree._Element, sig: SignatureReport) -> None:
    algs = sig.algorithms
    if algs.signature and sig.signer is not None:
        ci = _sub(data, "vr:CryptoInformation")
        _sub(ci, "vr:ValidationObjectId", VOReference=_cert_id(sig.signer))
        uri = _SIG_URI.get(
            (algs.signature, algs.digest or ""),
            f"urn:lienthong:signature-algorithm:{algs.signature}-{algs.digest}",
        )
        _sub(ci, "vr:Algorithm", uri)
        secure = sig.policy is not None and sig.policy.level != "failure"
        _sub(ci, "vr:SecureAlgorithm", "true" if secure else "false")


def _cert_object(parent: etree._Element, cert: CertInfo) -> None:
    vo = _sub(parent, "vr:ValidationObject", id=_cert_id(cert))
    _sub(vo, "vr:ObjectType", _VO_CERT)
    rep = _sub(vo, "vr:ValidationObjectRepresentation")
    _sub(rep, "vr:base64", cert.der)


def to_etsi_xml(report: DocumentReport) -> bytes:
    """The ETSI TS 119 102-2 report as UTF-8 XML bytes (with declaration)."""
    root = etree.Element(_vr("ValidationReport"), nsmap=_NSMAP)
    signatures = [s for s in report.signatures if s.kind != "document-timestamp"]
    for sig in signatures:
        _signature_report(root, sig, report, "vr:SignatureValidationReport")
    if not signatures:
        # The element is mandatory: report the document itself as not signed.
        svr = _sub(root, "vr:SignatureValidationReport")
        status = _sub(svr, "vr:SignatureValidationStatus")
        _sub(status, "vr:MainIndication", _main(report.summary.indication))
        if report.summary.sub_indication:
            sub = f"urn:etsi:019102:subindication:{report.summary.sub_indication}"
            _sub(status, "vr:SubIndication", sub)
    objects = _sub(root, "vr:SignatureValidationObjects")
    _certificate_objects(objects, report)
    _timestamp_objects(objects, report)
    if len(objects) == 0:
        root.remove(objects)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _certificate_objects(objects: etree._Element, report: DocumentReport) -> None:
    """Every certificate the report names, once."""
    seen: set[str] = set()
    for sig in report.signatures:
        certs = list(sig.chain.certificates)
        if sig.chain.anchor is not None:
            certs.append(sig.chain.anchor)
        if sig.signer is not None:
            certs.append(sig.signer)
        certs += [ts.tsa for ts in sig.timestamps if ts.tsa is not None]
        for cert in certs:
            if cert.sha256 not in seen:
                seen.add(cert.sha256)
                _cert_object(objects, cert)


def _timestamp_objects(objects: etree._Element, report: DocumentReport) -> None:
    """Each document timestamp, with its POE when it passed and its own validation report."""
    for ts in report.signatures:
        if ts.kind != "document-timestamp":
            continue
        vo = _sub(objects, "vr:ValidationObject", id=f"ts-{ts.id}")
        _sub(vo, "vr:ObjectType", _VO_TIMESTAMP)
        rep = _sub(vo, "vr:ValidationObjectRepresentation")
        if ts.signature_value_digest is not None:
            _digest(rep, "vr:DigestAlgAndValue", ts.signature_value_digest)
        if ts.signing_time.best and ts.indication == TOTAL_PASSED:
            poe = _sub(vo, "vr:POE")
            _sub(poe, "vr:POETime", ts.signing_time.best)
            _sub(poe, "vr:TypeOfProof", "urn:etsi:019102:poetype:validation")
        _signature_report(vo, ts, report, "vr:ValidationReport")


def write_etsi_reports(results: Sequence[FileResult], folder: Path) -> dict[str, list[str]]:
    """One ETSI TS 119 102-2 XML per PDF and per PDF attachment; returns the names per input.

    Names come from the input names, reduced to letters, digits and ``._-`` (so they stay in
    ``folder``), ``<file>.etsi.xml`` or ``<package>--<attachment>.etsi.xml``; a clash gets
    ``-2``, ``-3``... Existing files of the same name are replaced.
    """
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    written: dict[str, list[str]] = {}
    for result in results:
        names: list[str] = []
        for attachment, report in documents(result):
            if report is None:
                continue
            stem = _safe_stem(result.display)
            if attachment is not None:
                stem += "--" + _safe_stem(attachment, "attachment")
            name, n = f"{stem}.etsi.xml", 1
            while name.lower() in taken:
                n += 1
                name = f"{stem}-{n}.etsi.xml"
            taken.add(name.lower())
            write_output(folder / name, to_etsi_xml(report), force=True)
            names.append(name)
        written[result.path] = names
    return written


def _safe_stem(name: str, fallback: str = "document") -> str:
    """A file name part that cannot leave the folder or hide: letters, digits, ``._-`` only."""
    stem = unicodedata.normalize("NFC", Path(name).name)
    for suffix in SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = _UNSAFE.sub("_", stem).strip("._-")[:100]
    return stem or fallback
