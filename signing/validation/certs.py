"""Certificates as a report shows them: names in RFC 4514 form, :class:`CertInfo` values, and
the chain from the signer to its anchor."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Sequence

from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator.path import ValidationPath

from signing.validation.report import CertInfo, ChainInfo, iso

__all__ = ["cert_info", "chain_info", "format_name", "path_certs"]


_SHORT = {
    "2.5.4.3": "CN",
    "2.5.4.5": "SERIALNUMBER",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "T",
    "2.5.4.97": "organizationIdentifier",
    "1.2.840.113549.1.9.1": "E",
    "0.9.2342.19200300.100.1.1": "UID",
}


def _escape_rdn(value: str) -> str:
    value = re.sub(r'([,+"\\<>;=])', r"\\\1", value)
    if value.startswith((" ", "#")):
        value = "\\" + value
    if value.endswith(" "):
        value = value[:-1] + "\\ "
    return value


def format_name(name: asn1_x509.Name) -> str:
    """RFC 4514-style string, most specific attribute first (``CN=...,O=...,C=VN``)."""
    parts = []
    for rdn in reversed(list(name.chosen)):
        bits = []
        for attr in rdn:
            oid = attr["type"].dotted
            try:
                value = attr["value"].native
            except ValueError:
                value = attr["value"].dump().hex()
            bits.append(f"{_SHORT.get(oid, oid)}={_escape_rdn(str(value))}")
        parts.append("+".join(bits))
    return ",".join(parts)


def _name_attr(name: asn1_x509.Name, key: str) -> str | None:
    try:
        value = name.native.get(key)
    except ValueError:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value is not None else None


_CERT_INFO: dict[bytes, CertInfo] = {}
_CERT_INFO_MAX = 1024


def cert_info(cert: asn1_x509.Certificate) -> CertInfo:
    """The certificate as reported; memoized by its DER (a frozen value of the DER alone)."""
    der = cert.dump()
    info = _CERT_INFO.get(der)
    if info is None:
        info = _make_cert_info(cert)
        if len(_CERT_INFO) >= _CERT_INFO_MAX:
            _CERT_INFO.clear()
        _CERT_INFO[der] = info
    return info


def _make_cert_info(cert: asn1_x509.Certificate) -> CertInfo:
    validity = cert["tbs_certificate"]["validity"]
    return CertInfo(
        subject=format_name(cert.subject),
        common_name=_name_attr(cert.subject, "common_name"),
        organization=_name_attr(cert.subject, "organization_name"),
        organization_identifier=_name_attr(cert.subject, "organization_identifier"),
        issuer=format_name(cert.issuer),
        serial=format(cert.serial_number, "x"),
        sha256=cert.sha256.hex(),
        not_before=iso(validity["not_before"].native) or "",
        not_after=iso(validity["not_after"].native) or "",
        der=base64.b64encode(cert.dump()).decode("ascii"),
    )


def _chain_from_cms(
    signer: asn1_x509.Certificate, others: Sequence[asn1_x509.Certificate]
) -> list[asn1_x509.Certificate]:
    """The issuer chain the signature carries, leaf first (best effort, for display)."""
    chain = [signer]
    pool = list(others)
    while pool:
        last = chain[-1]
        if last.self_signed != "no":
            break
        nxt = next((c for c in pool if c.subject == last.issuer), None)
        if nxt is None or nxt in chain:
            break
        chain.append(nxt)
        pool.remove(nxt)
    return chain


def path_certs(
    path: ValidationPath,
) -> tuple[list[asn1_x509.Certificate], asn1_x509.Certificate | None]:
    """The path's certificates leaf first (anchor included), and the anchor's certificate."""
    certs = list(path.iter_certs(include_root=True))
    anchor_cert = getattr(path.trust_anchor, "certificate", None)
    ordered = list(reversed(certs))  # leaf first
    return ordered, anchor_cert


def chain_info(
    path: ValidationPath | None,
    signer: asn1_x509.Certificate | None,
    others: Sequence[asn1_x509.Certificate],
    trusted: bool,
    moment: dt.datetime | None,
) -> ChainInfo:
    """The chain as reported: the validated ``path`` when there is one, else the issuer chain
    the signature carries (``others``), untrusted."""
    if path is not None:
        certs, anchor = path_certs(path)
        if signer is not None and (not certs or certs[0].sha256 != signer.sha256):
            certs = [signer, *certs]
        return ChainInfo(
            trusted=trusted,
            validated_at=iso(moment),
            anchor=cert_info(anchor) if anchor is not None else None,
            certificates=[cert_info(c) for c in certs],
        )
    certs = _chain_from_cms(signer, others) if signer is not None else []
    return ChainInfo(False, iso(moment), None, [cert_info(c) for c in certs])
