"""The warnings a validation report carries, so that no summary says "valid" and hides them.

A signature can pass (``TOTAL-PASSED``) and still come with something an auditor must read: its
timestamp was not trusted and ignored, its revocation status could not be checked (soft-fail),
its algorithm is only allowed with a warning, its certificate was revoked after the proven
signing time... The JSON report says each of these in its fields (``timestamps[].trusted``,
``revocation.checked``, ``policy.level``) and in the signature's ``messages``;
:func:`signature_warnings` collects them from exactly those fields, so the console table, the
HTML pages and the summary line show every one of them.

The sentences are made here and nowhere else: the validator writes its messages with the same
functions, so a caveat found in a field and said in a message is listed once.
"""

from __future__ import annotations

import typing

from signing.validation.report import TOTAL_PASSED, DocumentReport, SignatureReport

__all__ = [
    "REVOCATION_NOT_FOUND",
    "REVOCATION_SOFT_FAILED",
    "VALID_MESSAGES",
    "document_warnings",
    "policy_warning",
    "revoked_after_proof",
    "signature_warnings",
    "timestamp_warning",
    "with_warnings",
]

REVOCATION_SOFT_FAILED = "revocation status could not be checked (accepted in soft-fail mode)"
REVOCATION_NOT_FOUND = "no revocation data for the certificate appears in the report"
VALID_MESSAGES = frozenset({"the signature is valid", "the document timestamp is valid"})


def timestamp_warning(
    kind: str, intact: bool, valid: bool, trusted: bool, problem: str | None
) -> str | None:
    """Why a signature's or content timestamp was ignored (None when it counts)."""
    what = kind.replace("-", " ")
    if not (intact and valid):
        return f"the {what} does not match the signature: ignored"
    if not trusted:
        return f"the {what} is not trusted ({problem}): ignored"
    return None


def policy_warning(notes: typing.Sequence[str]) -> str:
    """The algorithm policy passed only with a warning (e.g. PKCS#1 v1.5 after 2025-07-01)."""
    return "policy warning: " + "; ".join(notes)


def revoked_after_proof(revoked_at: str | None, proven: str | None) -> str:
    """The certificate is revoked now, but a timestamp proves the signature came before."""
    return (
        f"the certificate was revoked at {revoked_at}, after the proven signing "
        f"time {proven}: the signature stays valid"
    )


def signature_warnings(sig: SignatureReport, revocation_mode: str = "soft-fail") -> list[str]:
    """Every caveat of one signature or document timestamp, its verdict's reason excluded."""
    out: list[str] = []

    def add(text: str | None) -> None:
        if text and not any(have.startswith(text) for have in out):  # said, perhaps at length
            out.append(text)

    messages = list(sig.messages)
    if sig.indication != TOTAL_PASSED and messages:
        messages = messages[1:]  # the first message is the reason for the verdict
    for message in messages:
        if message not in VALID_MESSAGES:
            add(message)
    for ts in sig.timestamps:
        add(timestamp_warning(ts.kind, ts.intact, ts.valid, ts.trusted, ts.problem))
    if sig.chain.trusted and (not sig.revocation.checked or sig.revocation.status == "unknown"):
        add(REVOCATION_SOFT_FAILED if revocation_mode == "soft-fail" else REVOCATION_NOT_FOUND)
    if sig.chain.trusted and sig.indication == TOTAL_PASSED and sig.revocation.status == "revoked":
        add(revoked_after_proof(sig.revocation.revoked_at, sig.signing_time.best))
    if sig.policy is not None and sig.policy.level == "warning":
        add(policy_warning(sig.policy.notes))
    return out


def document_warnings(report: DocumentReport) -> list[str]:
    """Every caveat of a PDF's report, each prefixed with the field it belongs to."""
    out = [
        error
        for error in report.errors
        if error != report.summary.message  # an unreadable file: that is the verdict itself
    ]
    for sig in report.signatures:
        label = sig.field or sig.id
        out += [f"{label}: {text}" for text in signature_warnings(sig, report.revocation_mode)]
    return out


def with_warnings(message: str, warnings: typing.Sequence[str]) -> str:
    """``message`` followed by how many warnings there are: "…, with 2 warning(s)"."""
    if not warnings:
        return message
    return f"{message}, with {len(warnings)} warning(s)"
