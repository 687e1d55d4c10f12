"""The signature policy at the hub's door: what a package's validation report means.

* ``enforce`` (default): a package without an XML signature is refused (``signature.missing``);
  TOTAL-FAILED is refused (``signature.invalid``, with the sub-indication, as a status 02 would
  say it); INDETERMINATE is refused (``signature.indeterminate``: a chain to no trust anchor
  proves nothing), except TRY_LATER (a revocation service that cannot be asked right now),
  which ``verify_indeterminate = accept`` accepts with a warning; a valid signature by someone
  not allowed to sign for the sender is refused (``signature.wrong_signer``), whatever the
  cryptography says. Unsigned PDF attachments are noted, not judged.
* ``report-only``: everything is accepted and the report recorded, for agencies whose systems
  do not sign correctly yet. An agency's own ``verify_policy`` in the registry wins.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509

from exchange.config import Settings
from exchange.errors import HubError
from exchange.signers import SignerVerdict, signer_allowed
from exchange.store.registry import PostgresRegistry
from signing import INDETERMINATE, TOTAL_FAILED, AttachmentReport, PackageReport

__all__ = ["Policy", "Verdict", "decide"]


@dataclass(frozen=True)
class Verdict:
    """The report, its canonical bytes, and what the policy made of it."""

    report: PackageReport
    report_bytes: bytes
    policy: str
    warning: str | None = None

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.report_bytes).digest()

    def summary(self) -> dict:
        return {
            "indication": self.report.indication,
            "sub_indication": self.report.sub_indication,
            "message": self.report.message,
            "policy": self.policy,
            "warning": self.warning,
            "report_digest": self.digest.hex(),
        }


class Policy:
    """The policy in force: the hub's settings, and each agency's own choice."""

    def __init__(self, settings: Settings, registry: PostgresRegistry) -> None:
        self.settings = settings
        self.registry = registry

    async def judge(self, sender: str, report: PackageReport) -> Verdict:
        """Apply the sender's policy; raises :class:`HubError` when the package is refused."""
        policy = await self.registry.verify_policy(sender) or self.settings.verify_policy
        signer = None
        cert_b64 = report.xml_signature.signer_certificate
        if cert_b64:  # whoever signed, valid or not yet confirmed, must be allowed to
            cert = asn1_x509.Certificate.load(base64.b64decode(cert_b64))
            signer = signer_allowed(await self.registry.signer_rules(sender), sender, cert)
        return decide(report, policy, self.settings.verify_indeterminate, signer)


def decide(
    report: PackageReport,
    policy: str,
    verify_indeterminate: str,
    signer: SignerVerdict | None,
) -> Verdict:
    """What the policy makes of a report (``signer``: whether the package's signer may sign
    for its sender, None when nobody signed); raises :class:`HubError` to refuse.

    Under ``enforce`` only one kind of doubt may be accepted (``verify_indeterminate``):
    TRY_LATER, a revocation service that could not be asked right now. A missing package
    signature, a chain to no trust anchor or any other indeterminate verdict is refused.
    Unsigned attachments are reported, not judged: only signatures that exist are.
    ``report-only`` refuses nothing and records what ``enforce`` would have said.
    """
    data = dataclasses.asdict(report)
    report_bytes = json.dumps(
        {"schema": data.pop("schema"), **data}, ensure_ascii=False, sort_keys=True
    ).encode()
    problem, retryable = _problem(report, signer)
    if problem is None:
        return Verdict(report, report_bytes, policy, _unsigned_note(report))
    if policy == "report-only":
        return Verdict(report, report_bytes, policy, f"recorded only: {problem.message}")
    if retryable and verify_indeterminate == "accept":
        return Verdict(report, report_bytes, policy, problem.message)
    problem.detail = {
        "indication": report.indication,
        "sub_indication": report.sub_indication,
        "report_digest": hashlib.sha256(report_bytes).hexdigest(),
    }
    raise problem


def _problem(report: PackageReport, signer: SignerVerdict | None) -> tuple[HubError | None, bool]:
    """What is wrong with the signatures, and whether it is only TRY_LATER."""
    xml = report.xml_signature
    if xml.indication == INDETERMINATE and xml.sub_indication == _UNSIGNED:
        return HubError(
            "signature.missing",
            "Từ chối: gói tin không có chữ ký số (the package carries no XML signature; "
            "the sender's policy requires one)",
        ), False
    sub = f"{report.sub_indication}: " if report.sub_indication else ""
    if report.indication == TOTAL_FAILED:
        return HubError(
            "signature.invalid",
            f"Từ chối: không bảo đảm tính xác thực, toàn vẹn. {sub}{report.message}",
        ), False
    if signer is not None and not signer.allowed:
        return HubError("signature.wrong_signer", signer.reason), False
    undecided = [
        (name, sub_indication, message)
        for name, indication, sub_indication, message in _judged_parts(report)
        if indication == INDETERMINATE
    ]
    if not undecided:
        return None, False
    name, first_sub, message = undecided[0]
    retryable = all(part[1] == _TRY_LATER for part in undecided)
    return HubError(
        "signature.indeterminate",
        f"the signatures could not be confirmed: {name}: {first_sub}: {message}",
    ), retryable


_UNSIGNED = "SIGNED_DATA_NOT_FOUND"
_TRY_LATER = "TRY_LATER"


def _judged_parts(report: PackageReport) -> list[tuple[str, str, str | None, str]]:
    """(name, indication, sub-indication, message) of every signature there is: the package's
    and each signed PDF attachment's."""
    xml = report.xml_signature
    parts = [("package signature", xml.indication, xml.sub_indication, xml.message)]
    for attachment in report.attachments:
        summary = attachment.report["summary"]
        if _unsigned(attachment):
            continue
        name = f"attachment {attachment.name or attachment.content_id}"
        parts.append((name, attachment.indication, summary["sub_indication"], summary["message"]))
    return parts


def _unsigned(attachment: AttachmentReport) -> bool:
    summary = attachment.report["summary"]
    return not summary["signatures"] and not summary["document_timestamps"]


def _unsigned_note(report: PackageReport) -> str | None:
    unsigned = [a.name or a.content_id for a in report.attachments if _unsigned(a)]
    return f"PDF attachments without a signature: {', '.join(unsigned)}" if unsigned else None
