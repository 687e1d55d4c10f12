"""Who may sign for an agency: a valid signature by the wrong agency is a forgery.

Rules, per agency (table ``agency_signers``):

* ``cert``: a certificate, by SHA-256 fingerprint (``lienthong agency signer ORGAN --cert F``);
* ``organization_identifier``: any certificate whose subject carries this organization
  identifier (OID 2.5.4.97), e.g. the agency's own organ id;
* ``delegate``: the signers allowed for another agency also sign for this one (a parent office
  signing for a unit, or a unit for its parent), one hop, never transitively.

With no rule at all, an agency's signers are the certificates whose organization identifier is
its own organ id: the convention of the government PKI's agency certificates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509

from schemas import OrganId

__all__ = ["SignerVerdict", "organization_identifier", "signer_allowed"]

_ORG_ID_OID = "2.5.4.97"


@dataclass(frozen=True)
class SignerVerdict:
    allowed: bool
    reason: str


def organization_identifier(cert: asn1_x509.Certificate) -> str | None:
    """The subject's organizationIdentifier (2.5.4.97), normalised when it is an organ id."""
    for rdn in cert.subject.chosen:
        for attribute in rdn:
            if attribute["type"].dotted == _ORG_ID_OID:
                value = attribute["value"].native
                try:
                    return str(OrganId.parse(str(value)))
                except ValueError:
                    return str(value)
    return None


def _matches(
    rules: list[tuple[str, str]], cert: asn1_x509.Certificate, organ_id: str
) -> str | None:
    fingerprint = hashlib.sha256(cert.dump()).hexdigest()
    org_id = organization_identifier(cert)
    explicit = [r for r in rules if r[0] != "delegate"]
    if not explicit:
        return (
            "its organization identifier is the agency's organ id" if org_id == organ_id else None
        )
    for rule, value in explicit:
        if rule == "cert" and value.lower() == fingerprint:
            return "its certificate is registered for the agency"
        if rule == "organization_identifier" and org_id == value:
            return f"its organization identifier {value} is registered for the agency"
    return None


def signer_allowed(
    rules: list[tuple[str, str, str]], organ_id: str, cert: asn1_x509.Certificate
) -> SignerVerdict:
    """Whether ``cert`` may sign packages sent by ``organ_id``, and why; ``rules`` are the
    (organ id, rule, value) rows of the agency and of the agencies it delegates to."""
    own = [(rule, value) for owner, rule, value in rules if owner == organ_id]
    why = _matches(own, cert, organ_id)
    if why:
        return SignerVerdict(True, f"the signer may sign for {organ_id}: {why}")
    for delegator in sorted({v for rule, v in own if rule == "delegate"}):
        theirs = [(rule, value) for owner, rule, value in rules if owner == delegator]
        why = _matches(theirs, cert, delegator)
        if why:
            return SignerVerdict(True, f"the signer signs for {delegator}, delegated by {organ_id}")
    subject = cert.subject.human_friendly
    return SignerVerdict(
        False, f"the signer ({subject}) is not registered to sign for {organ_id} nor delegated"
    )
