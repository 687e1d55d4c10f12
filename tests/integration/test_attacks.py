"""Attacks on PDF signatures (tests/support/attacks.py) must never come out TOTAL-PASSED.

Each sample is made from a validly signed original; the test checks our indication and
sub-indication (or the modification finding) and compares with poppler's ``pdfsig -nocert``.

Where pdfsig is fooled: it verifies the digest over ``/ByteRange`` and the CMS signature,
and reports "Not total document signed" for any incremental update, legitimate or not; it does
no difference analysis. So every attack that keeps the signed bytes intact (ISA, the moved
signature dictionary, all shadow attacks) gets "Signature is Valid" from pdfsig. Our verdict is
what must be right there. With ``-nocert`` it also cannot judge certificates (it could not be
given our test root without an NSS database), so the untrusted/revoked/expired signers look
valid to it as well; when it can tell (a flipped byte, broken /ByteRange or /Contents) it
agrees with us.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from signing import INDETERMINATE, TOTAL_FAILED, TOTAL_PASSED, validate_pdf
from tests.support.attacks import ATTACKS, EVIL, Attack, Originals, make_pdf, sign_pdf, signer_for

PDFSIG_VERDICT = {
    "valid": "Signature is Valid",
    "digest-mismatch": "Digest Mismatch",
}


@pytest.fixture(scope="module")
def originals(pki, stamper) -> Originals:
    clerk = signer_for(pki.identity("clerk"))
    return Originals(
        signed=sign_pdf(make_pdf(), clerk, timestamper=stamper),
        signed_field=sign_pdf(make_pdf(form_field=True), clerk, timestamper=stamper),
        certified_field=sign_pdf(
            make_pdf(form_field=True), clerk, timestamper=stamper, certify=True
        ),
        signed_overlay=sign_pdf(make_pdf(shadow_overlay=True), clerk, timestamper=stamper),
        signed_shadow=sign_pdf(make_pdf(shadow_pages=True), clerk, timestamper=stamper),
    )


def pdfsig(data: bytes, tmp_path: Path) -> str:
    if shutil.which("pdfsig") is None:
        pytest.skip("pdfsig (poppler-utils) is not installed")
    path = tmp_path / f"sample-{time.monotonic_ns()}.pdf"
    path.write_bytes(data)
    out = subprocess.run(["pdfsig", "-nocert", str(path)], capture_output=True, timeout=60)
    return out.stdout.decode("utf-8", "replace")


def pdftotext(data: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / f"text-{time.monotonic_ns()}.pdf"
    path.write_bytes(data)
    out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, timeout=60)
    return out.stdout.decode("utf-8", "replace")


def test_originals_are_valid(originals, trust, tmp_path):
    for name in Originals.__dataclass_fields__:
        data = getattr(originals, name)
        report = validate_pdf(data, trust)
        assert report.summary.indication == TOTAL_PASSED, (name, report.summary)
        out = pdfsig(data, tmp_path)
        assert "Signature is Valid" in out and "Total document signed" in out, name


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_does_not_pass(attack: Attack, originals, trust, tmp_path):
    data = attack.make(originals)
    report = validate_pdf(data, trust)
    assert report.summary.indication != TOTAL_PASSED, report.summary
    sig = next(s for s in report.signatures if s.field == "Sig1")
    assert sig.indication == attack.indication, (sig.indication, sig.sub_indication, sig.messages)
    assert sig.sub_indication in attack.sub_indications, (sig.sub_indication, sig.messages)
    if attack.family in ("ISA", "shadow") or attack.name == "swa-moved-dictionary":
        # the finding names what happened after signing
        assert sig.modifications.findings, sig.modifications
        assert sig.modifications.changes, "the changed objects are listed"
        assert sig.modifications.level in ("OTHER", "FORM_FILLING")
    # the oracle
    out = pdfsig(data, tmp_path)
    expected = PDFSIG_VERDICT.get(attack.pdfsig)
    if expected is not None:
        assert expected in out, out
    else:  # "invalid": anything but a valid verdict
        assert "Signature is Valid" not in out, out


@pytest.mark.parametrize(
    "name", ["isa-page-content", "swa-moved-dictionary", "shadow-hide-and-replace"]
)
def test_attack_really_changes_what_is_shown(name, originals, tmp_path):
    """Sanity check of the samples: a viewer now shows the attacker's amount."""
    attack = next(a for a in ATTACKS if a.name == name)
    assert EVIL not in pdftotext(originals.signed, tmp_path)
    assert "9.000.000.000" in pdftotext(attack.make(originals), tmp_path)


@pytest.mark.parametrize(
    ("identity", "indication", "sub"),
    [
        ("revoked", TOTAL_FAILED, "REVOKED"),  # revoked yesterday, timestamp says today
        ("expired", INDETERMINATE, "EXPIRED"),  # expired two days ago, timestamp says today
        ("untrusted", INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND"),  # look-alike rogue root
    ],
)
def test_bad_signers(identity, indication, sub, pki, stamper, trust, tmp_path):
    data = sign_pdf(make_pdf(), signer_for(pki.identity(identity)), timestamper=stamper)
    report = validate_pdf(data, trust)
    (sig,) = report.signatures
    assert (sig.indication, sig.sub_indication) == (indication, sub), sig.messages
    assert sig.signing_time.source == "signature-timestamp"
    if identity == "revoked":
        assert sig.revocation.status == "revoked" and sig.revocation.revoked_at
    if identity == "untrusted":
        # same names as the real hierarchy, different keys: no anchor, nothing fetched for it
        assert sig.signer.common_name == "Nguyễn Văn An"
        assert not sig.chain.trusted and sig.chain.anchor is None
        assert sig.revocation.source == "none"
    # pdfsig -nocert only checks the cryptography: fooled by all three
    assert "Signature is Valid" in pdfsig(data, tmp_path)


def test_rogue_approval_on_certified_document(originals, pki, stamper, trust, tmp_path):
    """Certification (DocMDP P=2) by the clerk, then an approval signature by a rogue key."""
    certified = sign_pdf(make_pdf(), signer_for(pki.identity("clerk")), certify=True,
                         timestamper=stamper)  # fmt: skip
    data = sign_pdf(certified, signer_for(pki.identity("untrusted")), field="Sig2",
                    timestamper=stamper)  # fmt: skip
    report = validate_pdf(data, trust)
    first, second = report.signatures
    assert first.kind == "certification" and first.indication == TOTAL_PASSED
    assert first.modifications.docmdp == 2
    assert first.modifications.level == "FORM_FILLING"  # a signature was added: allowed
    assert first.modifications.permitted
    assert (second.indication, second.sub_indication) == (
        INDETERMINATE,
        "NO_CERTIFICATE_CHAIN_FOUND",
    )
    assert report.summary.indication == INDETERMINATE
    assert report.summary.sub_indication == "NO_CERTIFICATE_CHAIN_FOUND"
    # pdfsig sees two cryptographically valid signatures
    assert pdfsig(data, tmp_path).count("Signature is Valid") == 2


def test_legitimate_second_signature_passes(pki, stamper, trust):
    certified = sign_pdf(make_pdf(), signer_for(pki.identity("clerk")), certify=True,
                         timestamper=stamper)  # fmt: skip
    data = sign_pdf(certified, signer_for(pki.identity("leader")), field="Sig2",
                    timestamper=stamper)  # fmt: skip
    report = validate_pdf(data, trust)
    assert report.summary.indication == TOTAL_PASSED, report.summary
    assert [s.kind for s in report.signatures] == ["certification", "signature"]


def test_no_changes_allowed_certification(pki, stamper, trust, monkeypatch):
    """DocMDP P=1 forbids even a second signature (pyHanko refuses to add one: bypassed)."""
    from pyhanko.sign.fields import MDPPerm
    from pyhanko.sign.signers.pdf_signer import PdfSigner

    certified = sign_pdf(make_pdf(), signer_for(pki.identity("clerk")), certify=True,
                         docmdp=MDPPerm.NO_CHANGES, timestamper=stamper)  # fmt: skip
    monkeypatch.setattr(PdfSigner, "_enforce_certification_constraints", lambda self, r: None)
    data = sign_pdf(certified, signer_for(pki.identity("leader")), field="Sig2",
                    timestamper=stamper)  # fmt: skip
    report = validate_pdf(data, trust)
    first = report.signatures[0]
    assert (first.indication, first.sub_indication) == (TOTAL_FAILED, "FORMAT_FAILURE")
    assert first.modifications.docmdp == 1 and first.modifications.permitted is False
    assert report.summary.indication == TOTAL_FAILED
