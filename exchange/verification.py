"""Signature verification off the event loop: one read of a package, its signatures checked on
that same parse, in a worker process (:func:`inspect_package`, run by :class:`Inspector`).

Without trust anchors the hub cannot judge signatures at all: verification is off and the hub
logs so at start. What a report means is :mod:`exchange.policy`'s business.
"""

from __future__ import annotations

import logging
from pathlib import Path

from exchange.config import Settings
from exchange.workers import CpuPool
from schemas import Limits, Package, read_package
from signing import PackageReport, TrustSettings, validate_package

__all__ = ["Inspector", "inspect_package"]

log = logging.getLogger("lienthong.verification")


def inspect_package(
    path: str, limits: Limits, sender: str, trust: TrustSettings | None, digest: str
) -> tuple[Package, PackageReport | None]:
    """In a worker process: read the package once, then, if it comes from ``sender`` and
    ``trust`` is given, validate its signatures on that same parse. Raises FormatError."""
    parsed = read_package(path, limits)
    if trust is None or parsed.package.sender.organ_id != sender:
        return parsed.package, None  # the hub refuses a wrong sender without verifying
    return parsed.package, validate_package(parsed, trust, limits, digest=digest)


class Inspector:
    """Reads packages in the process pool, verifying them when the hub has trust anchors."""

    def __init__(self, settings: Settings, cpu: CpuPool, limits: Limits) -> None:
        self.cpu = cpu
        self.limits = limits
        self.trust: TrustSettings | None = None
        if settings.trust_anchors:
            self.trust = TrustSettings(
                anchors=[Path(p) for p in settings.trust_anchors],
                intermediates=[Path(p) for p in settings.trust_intermediates],
                revocation=settings.revocation_mode,
            )
            self.trust.load()  # fail at start, not at the first package, if a file is unusable
        else:
            log.warning("no trust anchors configured: package signatures are not verified")

    async def inspect(
        self, path: Path, sender: str, digest: bytes, verify: bool
    ) -> tuple[Package, PackageReport | None]:
        """The package's model and, when ``verify`` and the hub verifies, its report."""
        trust = self.trust if verify else None
        return await self.cpu.run(
            inspect_package, str(path), self.limits, sender, trust, digest.hex()
        )
