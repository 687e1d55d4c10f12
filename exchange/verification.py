"""Signature verification at the hub's door, by the deployment's policy, off the event loop.

Each package is validated in a process pool (:func:`signing.validate_package.validate_package`):
its XML signature and every signed PDF inside. Then the policy decides:

* ``enforce`` (default): TOTAL-FAILED is refused (``signature.invalid``, with the sub-indication,
  as a status 02 would say it); INDETERMINATE is accepted with a warning or refused
  (``verify_indeterminate``); a valid signature by someone not allowed to sign for the sender is
  refused (``signature.wrong_signer``), whatever the cryptography says.
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
from exchange.edxml import Limits
from exchange.errors import HubError
from exchange.signers import signer_allowed
from signing.trust import TrustSettings
from signing.validate_package import PackageReport, validate_package_sync

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


def _validate_file(path: str, trust: TrustSettings, limits: Limits) -> PackageReport:
    return validate_package_sync(Path(path).read_bytes(), trust, limits)


class Verifier:
    """Validates packages in worker processes and applies the policy."""

    def __init__(self, settings: Settings, run_in_worker, limits: Limits) -> None:
        self.settings = settings
        self._run = run_in_worker  # async (fn, *args) -> result, in the hub's process pool
        self._limits = limits
        self.trust = TrustSettings(
            anchors=[Path(p) for p in settings.trust_anchors],
            intermediates=[Path(p) for p in settings.trust_intermediates],
            revocation=settings.revocation_mode,
        )
        self.trust.load()  # fail at start, not at the first package, if a file is unusable

    async def validate(self, path: Path) -> PackageReport:
        return await self._run(_validate_file, str(path), self.trust, self._limits)

    async def judge(self, pool: asyncpg.Pool, sender: str, report: PackageReport) -> Verdict:
        """Apply the sender's policy; raises :class:`HubError` when the package is refused."""
        own = await pool.fetchval("SELECT verify_policy FROM agencies WHERE code = $1", sender)
        policy = own or self.settings.verify_policy
        data = dataclasses.asdict(report)
        report_bytes = json.dumps(
            {"schema": data.pop("schema"), **data}, ensure_ascii=False, sort_keys=True
        ).encode()
        problem = await self._problem(pool, sender, report)
        if problem is None:
            return Verdict(report, report_bytes, policy)
        if policy == "report-only":
            return Verdict(report, report_bytes, policy, f"recorded only: {problem.message}")
        if problem.code == "signature.indeterminate" and (
            self.settings.verify_indeterminate == "accept"
        ):
            return Verdict(report, report_bytes, policy, problem.message)
        problem.detail = {
            "indication": report.indication,
            "sub_indication": report.sub_indication,
            "report_digest": hashlib.sha256(report_bytes).hexdigest(),
        }
        raise problem

    async def _problem(self, pool, sender: str, report: PackageReport) -> HubError | None:
        sub = f"{report.sub_indication}: " if report.sub_indication else ""
        if report.indication == "TOTAL-FAILED":
            return HubError(
                "signature.invalid",
                f"Từ chối: không bảo đảm tính xác thực, toàn vẹn. {sub}{report.message}",
                status=422,
            )
        cert_b64 = report.xml_signature.signer_certificate
        if cert_b64:  # whoever signed, valid or not yet confirmed, must be allowed to
            cert = asn1_x509.Certificate.load(base64.b64decode(cert_b64))
            verdict = await signer_allowed(pool, sender, cert)
            if not verdict.allowed:
                return HubError("signature.wrong_signer", verdict.reason, status=403)
        if report.indication == "INDETERMINATE":
            return HubError(
                "signature.indeterminate",
                f"the signatures could not be confirmed: {sub}{report.message}",
                status=422,
            )
        return None
