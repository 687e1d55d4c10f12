"""The exceptions of :mod:`signing`: each says what went wrong in words a clerk or an operator
can act on; signing failures also carry a stable code.

* :class:`SigningError` (``code`` ``signing.*``): a key, a document or an option that signing
  refuses, or a service (token, TSA, OCSP) that failed while signing.
* :class:`TrustError`: the trust configuration (anchors, intermediates, revocation mode, time)
  cannot be used. Validation of a *document* never raises: a bad document is a report.
"""

from __future__ import annotations

__all__ = ["SigningError", "TrustError"]


class SigningError(Exception):
    """A signing or key failure with a stable ``code`` (``signing.*``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TrustError(Exception):
    """The trust configuration cannot be used (missing file, not a certificate, ...)."""
