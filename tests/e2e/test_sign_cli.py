"""`lienthong sign` as a clerk runs it: separate processes, a folder batch, a token, bad input."""

from __future__ import annotations

import os
import subprocess
import sys

from signing import verify_package
from tests.support.pdfgen import official_document, pillow_pdf, seal_png, signature_png
from tests.support.pki import P12_PASSWORD


def lienthong(*args: str, secret: str | None = None, env: dict | None = None):
    full = dict(os.environ, **(env or {}))
    full.pop("LIENTHONG_SIGN_SECRET", None)
    if secret is not None:
        full["LIENTHONG_SIGN_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "exchange.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def pdfsig_valid(path) -> bool:
    out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True)
    return "Signature is Valid." in out.stdout and "Invalid" not in out.stdout


def test_batch_signs_a_folder_and_reports_each_file(pki, tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for n in range(3):
        (src / f"cv-{n}.pdf").write_bytes(official_document(number=f"{n}/QĐ-VPCP"))
    (src / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really a pdf")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    image = tmp_path / "chu-ky.png"
    image.write_bytes(signature_png())
    out = lienthong(
        "sign",
        "pdf",
        str(src),
        str(dst),
        "--role",
        "leader",
        "--level",
        "B-T",
        "--tsa",
        pki.tsa_url,
        "--p12",
        str(pki.identity("leader").p12),
        "--image",
        str(image),
        "--anchor",
        "BỘ TRƯỞNG",
        secret=P12_PASSWORD.decode(),
    )
    assert out.returncode == 1  # one file could not be signed
    assert "3 signed, 1 failed" in out.stdout and "signing.pdf_invalid" in out.stdout
    for n in range(3):
        assert pdfsig_valid(dst / f"cv-{n}.pdf")
    assert not (dst / "broken.pdf").exists() and not list(dst.glob(".*part"))
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # inputs untouched


def test_token_signing_with_the_pin_from_the_environment(pki, hsm_token, tmp_path):
    doc = tmp_path / "cv.pdf"
    doc.write_bytes(official_document())
    seal = tmp_path / "dau.png"
    seal.write_bytes(seal_png())
    args = [
        "sign",
        "pdf",
        str(doc),
        str(tmp_path / "signed.pdf"),
        "--role",
        "agency",
        "--level",
        "B-B",
        "--pkcs11-lib",
        hsm_token.module,
        "--token",
        hsm_token.label,
        "--key",
        "seal",
        "--image",
        str(seal),
        "--anchor",
        "BỘ TRƯỞNG",
        "--extra-cert",
        str(pki.issuing_pem),
    ]
    env = {"SOFTHSM2_CONF": str(hsm_token.conf)}
    wrong = lienthong(*args, secret="000000", env=env)
    assert wrong.returncode == 1 and "signing.wrong_pin" in wrong.stderr
    assert not (tmp_path / "signed.pdf").exists()
    missing = lienthong(*args, env=env)  # no PIN and no terminal to ask at
    assert missing.returncode == 1 and "signing.secret_missing" in missing.stderr
    ok = lienthong(*args, secret=hsm_token.pin, env=env)
    assert ok.returncode == 0, ok.stderr
    assert pdfsig_valid(tmp_path / "signed.pdf")
    assert hsm_token.pin not in ok.stdout + ok.stderr


def test_sign_package_then_verify(pki, tmp_path):
    from schemas import build_document

    package = tmp_path / "goi.edxml"
    package.write_bytes(
        build_document(
            sender="000.00.00.G22",
            recipients=["000.00.00.H49"],
            code_number="5",
            code_notation="VPCP",
            subject="Ký gói",
        )
    )
    signed = tmp_path / "goi-ky.edxml"
    out = lienthong(
        "sign",
        "package",
        str(package),
        str(signed),
        "--p12",
        str(pki.identity("clerk").p12),
        secret=P12_PASSWORD.decode(),
    )
    assert out.returncode == 0, out.stderr
    result = verify_package(signed.read_bytes(), trust_roots=[pki.root_pem])
    assert result.valid, result.message
    again = lienthong(
        "sign",
        "package",
        str(signed),
        str(tmp_path / "twice.edxml"),
        "--p12",
        str(pki.identity("clerk").p12),
        secret=P12_PASSWORD.decode(),
    )
    assert again.returncode == 1 and "signing.already_signed" in again.stderr


def test_bad_options_are_explained(pki, tmp_path):
    doc = tmp_path / "cv.pdf"
    doc.write_bytes(official_document())
    out = lienthong(
        "sign",
        "pdf",
        str(doc),
        str(tmp_path / "o.pdf"),
        "--role",
        "leader",
        "--level",
        "B-T",
        "--p12",
        str(pki.identity("leader").p12),
        "--anchor",
        "X",
        secret=P12_PASSWORD.decode(),
    )
    assert out.returncode == 1 and "signing.bad_option" in out.stderr and "TSA" in out.stderr
    out = lienthong(
        "sign",
        "pdf",
        str(tmp_path / "nope.pdf"),
        str(tmp_path / "o.pdf"),
        "--role",
        "attachment",
        "--document-number",
        "1/QĐ",
        "--level",
        "B-B",
        "--p12",
        str(pki.identity("clerk").p12),
        secret=P12_PASSWORD.decode(),
    )
    assert out.returncode == 1 and "signing.input_missing" in out.stderr
    assert "Traceback" not in out.stderr


def _sign_attachment(pki, src, dst, *extra: str, level: str = "B-B"):
    args = ["sign", "pdf", str(src), str(dst), "--role", "attachment"]
    args += ["--document-number", "7/QĐ-VPCP", "--level", level]
    if level != "B-B":
        args += ["--tsa", pki.tsa_url]
    args += ["--p12", str(pki.identity("seal").p12), *extra]
    return lienthong(*args, secret=P12_PASSWORD.decode())


def _verify_json(pki, *paths) -> dict:
    import json

    out = lienthong("verify", "--trust", str(pki.root_pem), "--json", *map(str, paths))
    assert "Traceback" not in out.stderr
    return json.loads(out.stdout)


def test_a_pdf_written_by_pillow_signs_and_verifies(pki, tmp_path):
    """Pillow writes entry 0 of the xref table with generation 65536: every reader accepts it,
    so the verifier does too, and what the signer signs the verifier reads."""
    scan = tmp_path / "scan.pdf"
    original = pillow_pdf()
    assert b"0000000000 65536 f" in original
    scan.write_bytes(original)
    first = tmp_path / "scan-ky.pdf"
    out = _sign_attachment(pki, scan, first, level="B-T")
    assert out.returncode == 0, out.stderr
    image = tmp_path / "dau.png"
    image.write_bytes(seal_png())
    second = tmp_path / "scan-ky-dau.pdf"
    out = lienthong(
        *("sign", "pdf", str(first), str(second), "--role", "agency", "--level", "B-T"),
        *("--tsa", pki.tsa_url, "--p12", str(pki.identity("seal").p12)),
        *("--image", str(image), "--box", "1,300,150,560,260"),
        secret=P12_PASSWORD.decode(),
    )
    assert out.returncode == 0, out.stderr
    assert scan.read_bytes() == original
    assert second.read_bytes().startswith(original)  # the quirk is signed as it was
    assert pdfsig_valid(first) and pdfsig_valid(second)
    run = _verify_json(pki, first, second)
    assert [r["indication"] for r in run["results"]] == ["TOTAL-PASSED", "TOTAL-PASSED"], run
    assert run["results"][1]["report"]["summary"]["signatures"] == 2
    assert run["summary"]["exit_code"] == 0


def test_sign_and_verify_refuse_the_same_unreadable_pdf(pki, tmp_path):
    """A catalog with two /Pages entries is ambiguous (readers differ on which wins): the
    strict reader refuses it, and the signer must not sign what the verifier refuses, even
    when the file also carries Pillow's harmless quirk."""
    data = pillow_pdf()
    old = b"/Type /Catalog\n/Pages 4 0 R"
    assert old in data
    twice = b"/Pages 4 0 R /Pages 4 0 R"
    doc = tmp_path / "twice.pdf"
    doc.write_bytes(data.replace(old, twice.ljust(len(old))))
    out = _sign_attachment(pki, doc, tmp_path / "o.pdf")
    assert out.returncode == 1 and "signing.pdf_invalid" in out.stderr, out.stderr
    assert "Multiple definitions" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "o.pdf").exists()
    result = _verify_json(pki, doc)["results"][0]
    assert result["sub_indication"] == "FORMAT_FAILURE"
    assert "Multiple definitions" in result["message"]


def test_sign_never_writes_over_its_input(pki, tmp_path):
    doc = tmp_path / "a.pdf"
    doc.write_bytes(official_document())
    before = (doc.read_bytes(), doc.stat().st_ino, doc.stat().st_mtime_ns)
    (tmp_path / "link.pdf").symlink_to(doc)
    os.link(doc, tmp_path / "hard.pdf")
    for output in (doc, tmp_path / "." / "a.pdf", tmp_path / "link.pdf", tmp_path / "hard.pdf"):
        for force in ((), ("--force",)):
            out = _sign_attachment(pki, doc, output, *force)
            assert out.returncode == 1, out.stdout
            assert "signing.output_is_input" in out.stderr and "Traceback" not in out.stderr
    assert (doc.read_bytes(), doc.stat().st_ino, doc.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf", "hard.pdf", "link.pdf"]


def test_an_existing_output_is_replaced_only_with_force(pki, tmp_path):
    doc, output = tmp_path / "a.pdf", tmp_path / "a-ky.pdf"
    doc.write_bytes(official_document())
    output.write_bytes(b"the clerk's earlier file")
    out = _sign_attachment(pki, doc, output)
    assert out.returncode == 1 and "signing.output_exists" in out.stderr
    assert "--force" in out.stderr and output.read_bytes() == b"the clerk's earlier file"
    out = _sign_attachment(pki, doc, output, "--force")
    assert out.returncode == 0, out.stderr
    assert pdfsig_valid(output)
    signed = output.read_bytes()
    # a failure (no TSA answering) leaves the existing output whole and no temporary file
    out = _sign_attachment(pki, doc, output, "--force", "--tsa", "http://127.0.0.1:9/", level="B-T")
    assert out.returncode == 1 and "signing.tsa_unreachable" in out.stderr, out.stderr
    assert output.read_bytes() == signed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-ky.pdf", "a.pdf"]


def test_a_batch_refuses_existing_outputs_file_by_file(pki, tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    dst.mkdir()
    for n in range(3):
        (src / f"cv-{n}.pdf").write_bytes(official_document(number=f"{n}/QĐ-VPCP"))
    (dst / "cv-1.pdf").write_bytes(b"signed yesterday")
    out = _sign_attachment(pki, src, dst)
    assert out.returncode == 1
    assert "2 signed, 1 failed" in out.stdout and "signing.output_exists" in out.stdout
    assert "cv-1.pdf" in out.stdout
    assert (dst / "cv-1.pdf").read_bytes() == b"signed yesterday"
    assert pdfsig_valid(dst / "cv-0.pdf") and pdfsig_valid(dst / "cv-2.pdf")
    out = _sign_attachment(pki, src, dst, "--force")
    assert out.returncode == 0 and "3 signed, 0 failed" in out.stdout, out.stdout
    assert pdfsig_valid(dst / "cv-1.pdf")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    out = _sign_attachment(pki, src, src, "--force")
    assert out.returncode == 1 and "signing.output_is_input" in out.stderr
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_sign_package_keeps_its_input_and_existing_outputs(pki, tmp_path):
    from schemas import build_document

    package = tmp_path / "goi.edxml"
    package.write_bytes(
        build_document(
            sender="000.00.00.G22",
            recipients=["000.00.00.H49"],
            code_number="6",
            code_notation="VPCP",
            subject="Không ghi đè",
        )
    )
    original = package.read_bytes()
    key = ("--p12", str(pki.identity("clerk").p12))
    out = lienthong("sign", "package", str(package), str(package), *key, secret="test-pass")
    assert out.returncode == 1 and "signing.output_is_input" in out.stderr
    assert package.read_bytes() == original
    signed = tmp_path / "goi-ky.edxml"
    signed.write_bytes(b"<old/>")
    out = lienthong("sign", "package", str(package), str(signed), *key, secret="test-pass")
    assert out.returncode == 1 and "signing.output_exists" in out.stderr
    assert signed.read_bytes() == b"<old/>"
    out = lienthong(
        "sign", "package", str(package), str(signed), "--force", *key, secret="test-pass"
    )
    assert out.returncode == 0, out.stderr
    assert verify_package(signed.read_bytes(), trust_roots=[pki.root_pem]).valid


def test_long_term_signing_says_when_there_is_no_revocation_data(pki, tmp_path):
    """B-LT/B-LTA exist for offline verification: with a certificate that names no OCSP
    responder and no CRL, the signer refuses (naming it) unless told to go on, and then says
    what an offline verifier will find."""
    doc = tmp_path / "cv.pdf"
    doc.write_bytes(official_document())
    key = ("--p12", str(pki.identity("no_revinfo").p12), "--trust", str(pki.root_pem))

    def sign(output, level, *extra):
        return lienthong(
            *("sign", "pdf", str(doc), str(output), "--role", "attachment"),
            *("--document-number", "9/QĐ-VPCP", "--level", level, "--tsa", pki.tsa_url),
            *key,
            *extra,
            secret=P12_PASSWORD.decode(),
        )

    for level in ("B-LT", "B-LTA"):
        out = sign(tmp_path / f"{level}.pdf", level)
        assert out.returncode == 1, out.stdout
        assert "signing.revocation_unavailable" in out.stderr
        assert "Vũ Thị Hạnh" in out.stderr and "names no OCSP responder" in out.stderr
        assert "--allow-missing-revocation" in out.stderr and "Traceback" not in out.stderr
        assert not (tmp_path / f"{level}.pdf").exists()
    accepted = tmp_path / "accepted.pdf"
    out = sign(accepted, "B-LTA", "--allow-missing-revocation")
    assert out.returncode == 0, out.stderr
    assert "warning:" in out.stderr and "Traceback" not in out.stderr
    assert "INDETERMINATE/CHAIN_CONSTRAINTS_FAILURE" in out.stderr and "Vũ Thị Hạnh" in out.stderr
    assert pdfsig_valid(accepted)
    verified = lienthong(
        *("verify", "--trust", str(pki.root_pem), "--revocation", "embedded-only", "--json"),
        str(accepted),
    )
    import json

    (result,) = json.loads(verified.stdout)["results"]
    want = ("INDETERMINATE", "CHAIN_CONSTRAINTS_FAILURE")
    assert (result["indication"], result["sub_indication"]) == want
    # a batch shows it in its summary, file by file
    folder = tmp_path / "batch"
    folder.mkdir()
    for n in range(2):
        (folder / f"cv-{n}.pdf").write_bytes(official_document(number=f"{n}/QĐ-VPCP"))
    out = lienthong(
        *("sign", "pdf", str(folder), str(tmp_path / "batch-ky"), "--role", "attachment"),
        *("--document-number", "9/QĐ-VPCP", "--level", "B-LT", "--tsa", pki.tsa_url),
        *key,
        "--allow-missing-revocation",
        secret=P12_PASSWORD.decode(),
    )
    assert out.returncode == 0, out.stderr
    assert "2 signed, 0 failed, 2 with warnings" in out.stdout
    assert out.stdout.count("1 warning(s)") == 2
    assert "CHAIN_CONSTRAINTS_FAILURE" in out.stdout
    # the same level with a certificate that names its OCSP responder and CRL just works
    out = lienthong(
        *("sign", "pdf", str(doc), str(tmp_path / "ok.pdf"), "--role", "attachment"),
        *("--document-number", "9/QĐ-VPCP", "--level", "B-LT", "--tsa", pki.tsa_url),
        *("--p12", str(pki.identity("seal").p12), "--trust", str(pki.root_pem)),
        secret=P12_PASSWORD.decode(),
    )
    assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
