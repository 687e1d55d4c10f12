"""Signature verification at the hub's door, by the deployment's policy, off the event loop.

Each package is validated in a process pool (:func:`signing.validate_package`):
its XML signature and every signed PDF inside. Then the policy decides:

* ``enforce`` (default): a package without an XML signature is refused (``signature.missing``);
  TOTAL-FAILED is refused (``signature.invalid``, with the sub-indication, as a status 02 would
  say it); INDETERMINATE is refused (``signature.indeterminate``: a chain to no trust anchor
  proves nothing), except TRY_LATER (a revocation service that cannot be asked right now), which
  ``verify_indeterminate = accept`` accepts with a warning; a valid signature by someone not
  allowed to sign for the sender is refused (``signature.wrong_signer``), whatever the
  cryptography says. Unsigned PDF attachments are noted, not judged.
* ``report-only``: everything is accepted and the report recorded, for agencies whose systems
  do not sign correctly yet. An agency's own ``verify_policy`` in the registry wins.

Without trust anchors the hub cannot judge signatures at all: verification is off and the hub
logs so at start.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from asn1crypto import x509 as asn1_x509

from exchange.config import Settings
from exchange.errors import HubError
from exchange.signers import signer_allowed
from schemas import Limits, Package, read_package
from signing import (
    INDETERMINATE,
    TOTAL_FAILED,
    AttachmentReport,
    PackageReport,
    TrustSettings,
    validate_package,
)

__all__ = ["Verdict", "Verifier"]

log = logging.getLogger("lienthong.verification")


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


def inspect_package(
    path: str, limits: Limits, sender: str, trust: TrustSettings | None, digest: str
) -> tuple[Package, PackageReport | None]:
    """In a worker process: read the package once, then, if it comes from ``sender`` and
    ``trust`` is given, validate its signatures on that same parse. Raises FormatError."""
    parsed = read_package(path, limits)
    if trust is None or parsed.package.sender.organ_id != sender:
        return parsed.package, None  # the hub refuses a wrong sender without verifying
    return parsed.package, validate_package(parsed, trust, limits, digest=digest)


class Verifier:
    """The trust to validate packages with (in workers, :func:`inspect_package`), and the
    policy applied to the reports."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.trust = TrustSettings(
            anchors=[Path(p) for p in settings.trust_anchors],
            intermediates=[Path(p) for p in settings.trust_intermediates],
            revocation=settings.revocation_mode,
        )
        self.trust.load()  # fail at start, not at the first package, if a file is unusable

    async def judge(self, pool: asyncpg.Pool, sender: str, report: PackageReport) -> Verdict:
        """Apply the sender's policy; raises :class:`HubError` when the package is refused.

        Under ``enforce`` only one kind of doubt may be accepted (``verify_indeterminate``):
        TRY_LATER, a revocation service that could not be asked right now. A missing package
        signature, a chain to no trust anchor or any other indeterminate verdict is refused.
        Unsigned attachments are reported, not judged: only signatures that exist are.
        """
        own = await pool.fetchval("SELECT verify_policy FROM agencies WHERE code = $1", sender)
        policy = own or self.settings.verify_policy
        data = dataclasses.asdict(report)
        report_bytes = json.dumps(
            {"schema": data.pop("schema"), **data}, ensure_ascii=False, sort_keys=True
        ).encode()
        problem, retryable = await self._problem(pool, sender, report)
        if problem is None:
            return Verdict(report, report_bytes, policy, _unsigned_note(report))
        if policy == "report-only":
            return Verdict(report, report_bytes, policy, f"recorded only: {problem.message}")
        if retryable and self.settings.verify_indeterminate == "accept":
            return Verdict(report, report_bytes, policy, problem.message)
        problem.detail = {
            "indication": report.indication,
            "sub_indication": report.sub_indication,
            "report_digest": hashlib.sha256(report_bytes).hexdigest(),
        }
        raise problem

    async def _problem(
        self, pool, sender: str, report: PackageReport
    ) -> tuple[HubError | None, bool]:
        """What is wrong with the signatures, and whether it is only TRY_LATER."""
        xml = report.xml_signature
        if xml.indication == INDETERMINATE and xml.sub_indication == _UNSIGNED:
            return HubError(
                "signature.missing",
                "Từ chối: gói tin không có chữ ký số (the package carries no XML signature; "
                "the sender's policy requires one)",
                status=422,
            ), False
        sub = f"{report.sub_indication}: " if report.sub_indication else ""
        if report.indication == TOTAL_FAILED:
            return HubError(
                "signature.invalid",
                f"Từ chối: không bảo đảm tính xác thực, toàn vẹn. {sub}{report.message}",
                status=422,
            ), False
        cert_b64 = xml.signer_certificate
        if cert_b64:  # whoever signed, valid or not yet confirmed, must be allowed to
            cert = asn1_x509.Certificate.load(base64.b64decode(cert_b64))
            verdict = await signer_allowed(pool, sender, cert)
            if not verdict.allowed:
                return HubError("signature.wrong_signer", verdict.reason, status=403), False
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
            status=422,
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
