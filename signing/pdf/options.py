"""How to sign a PDF: the role (what the signature shows), the PAdES level and what each needs.

Levels (every signature is an incremental update, so earlier signatures stay valid):

* ``B-B``: the CMS signature only (``ETSI.CAdES.detached``);
* ``B-T``: plus an RFC 3161 signature timestamp from ``tsa_url``;
* ``B-LT``: plus the certificates, OCSP responses and CRLs of the signer and the TSA in the
  document security store (DSS), fetched from the URLs in the certificates and checked against
  ``trust_roots``; written in the signature's own revision (no VRI), so the signature covers
  the whole file;
* ``B-LTA``: plus a document timestamp over all of it (its own validation data is written
  before it, so it too covers the whole file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from signing.errors import SigningError
from signing.pdf.appearance import Role
from signing.pdf.placement import Geometry, Placement

__all__ = ["FIELD_PREFIX", "LEVELS", "ROLES", "Level", "SignOptions"]

Level = Literal["B-B", "B-T", "B-LT", "B-LTA"]
LEVELS: tuple[Level, ...] = ("B-B", "B-T", "B-LT", "B-LTA")
ROLES: tuple[Role, ...] = ("leader", "agency", "attachment")
FIELD_PREFIX = {"leader": "ChuKyLanhDao", "agency": "ChuKyCoQuan", "attachment": "ChuKyPhuLuc"}


@dataclass(frozen=True)
class SignOptions:
    """How to sign: the role (appearance), the PAdES level and what each needs.

    * ``role``: ``leader`` (needs ``image``: the handwritten signature PNG), ``agency`` (needs
      ``image``: the red seal PNG; shows ``agency_name``, default the certificate's organisation)
      or ``attachment`` (needs ``document_number``; no image).
    * ``level``: ``B-B``, ``B-T`` (needs ``tsa_url``), ``B-LT`` and ``B-LTA`` (need ``tsa_url``
      and ``trust_roots``).
    * ``placement``: :class:`BoxPlacement`, :class:`FieldPlacement` or :class:`AnchorPlacement`;
      optional for ``attachment`` (default: top right of page 1).
    * ``trust_roots``: PEM/DER files of trust anchors; when given, the signer's certificate is
      checked for revocation (OCSP/CRL) before signing. ``extra_certs``: intermediate CA
      certificates missing from the key's chain (e.g. a token holding only the signer's cert);
      they are also embedded in the signature.
    * ``now``: the signing time shown and checked against the certificate (default: the
      clock); the CMS signing time and timestamps always come from the clock and the TSA.
    * ``allow_missing_revocation``: B-LT and B-LTA need an OCSP response or CRL for every
      certificate of the signer's and the TSA's chains (below the anchor), else
      ``signing.revocation_unavailable`` names the certificate and why (it names no OCSP
      responder and no CRL, or they did not answer). True signs anyway with what can be had,
      and :func:`sign_pdf_detailed` returns as warnings what an offline verifier will object
      to (for a PKI that publishes no revocation data, knowingly).
    """

    role: Role
    level: Level
    placement: Placement | None = None
    image: Path | bytes | None = None
    tsa_url: str | None = None
    trust_roots: Sequence[Path] = ()
    extra_certs: Sequence[Path] = ()
    reason: str | None = None
    location: str | None = None
    document_number: str | None = None
    agency_name: str | None = None
    field_name: str | None = None
    font_path: Path | None = None
    geometry: Geometry = Geometry()
    now: datetime | None = None
    network_timeout: float = 10.0
    allow_missing_revocation: bool = False

    def check(self) -> None:
        """Refuse inconsistent options with ``signing.bad_option`` / ``signing.image_missing``."""
        if self.role not in ROLES:
            raise SigningError("signing.bad_option", f"role must be one of {', '.join(ROLES)}")
        if self.level not in LEVELS:
            raise SigningError("signing.bad_option", f"level must be one of {', '.join(LEVELS)}")
        if self.level != "B-B" and not self.tsa_url:
            raise SigningError("signing.bad_option", f"level {self.level} needs a TSA URL")
        if self.level in ("B-LT", "B-LTA") and not self.trust_roots:
            raise SigningError(
                "signing.bad_option",
                f"level {self.level} needs trust roots to collect and check revocation data",
            )
        if self.role in ("leader", "agency") and self.image is None:
            what = "handwritten signature" if self.role == "leader" else "seal"
            raise SigningError(
                "signing.image_missing", f"the {self.role} role needs the {what} image (PNG)"
            )
        if self.role == "attachment" and not self.document_number:
            raise SigningError(
                "signing.bad_option", "the attachment role shows the document number: give it"
            )
        if self.role in ("leader", "agency") and self.placement is None:
            raise SigningError(
                "signing.bad_option",
                f"say where the {self.role}'s signature goes (box, field or anchor text)",
            )
        if self.now is not None and self.now.tzinfo is None:
            raise SigningError("signing.bad_option", "now must be timezone-aware")
