"""The test PKI itself, checked with openssl as an independent oracle."""

from __future__ import annotations

import subprocess
import urllib.request

from cryptography import x509


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=60)


def test_chain_verifies_and_expired_does_not(pki, tmp_path):
    ok = openssl(
        "verify",
        "-CAfile",
        str(pki.root_pem),
        "-untrusted",
        str(pki.issuing_pem),
        str(pki.identity("clerk").cert_pem),
    )
    assert ok.returncode == 0, ok.stderr
    expired = openssl(
        "verify",
        "-CAfile",
        str(pki.root_pem),
        "-untrusted",
        str(pki.issuing_pem),
        str(pki.identity("expired").cert_pem),
    )
    assert expired.returncode != 0 and b"expired" in expired.stdout + expired.stderr
    rogue = openssl("verify", "-CAfile", str(pki.root_pem), str(pki.identity("untrusted").cert_pem))
    assert rogue.returncode != 0


def test_ocsp_says_good_and_revoked(pki):
    for name, want in (("clerk", b": good"), ("revoked", b": revoked")):
        out = openssl(
            "ocsp",
            "-issuer",
            str(pki.issuing_pem),
            "-cert",
            str(pki.identity(name).cert_pem),
            "-url",
            pki.ocsp_url,
            "-CAfile",
            str(pki.root_pem),
            "-VAfile",
            str(pki.identity("ocsp").cert_pem),
        )
        assert out.returncode == 0, out.stderr
        assert want in out.stdout, out.stdout


def test_crl_lists_the_revoked_certificate(pki):
    with urllib.request.urlopen(pki.crl_url, timeout=10) as resp:
        crl = x509.load_der_x509_crl(resp.read())
    revoked = pki.identity("revoked").cert.serial_number
    assert crl.get_revoked_certificate_by_serial_number(revoked) is not None
    assert (
        crl.get_revoked_certificate_by_serial_number(pki.identity("clerk").cert.serial_number)
        is None
    )
    assert crl.is_signature_valid(pki.issuing.cert.public_key())


def test_tsa_tokens_verify_with_openssl(pki, tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"lienthong")
    query = openssl("ts", "-query", "-data", str(data), "-sha256", "-cert")
    assert query.returncode == 0
    req = urllib.request.Request(
        pki.tsa_url, data=query.stdout, headers={"Content-Type": "application/timestamp-query"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        reply = resp.read()
    (tmp_path / "reply.tsr").write_bytes(reply)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.issuing_pem.read_bytes() + pki.root_pem.read_bytes())
    verify = openssl(
        "ts",
        "-verify",
        "-data",
        str(data),
        "-in",
        str(tmp_path / "reply.tsr"),
        "-CAfile",
        str(chain),
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert b"Verification: OK" in verify.stdout
