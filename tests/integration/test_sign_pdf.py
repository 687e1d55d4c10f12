"""PAdES signing of official documents, checked by three independent oracles:

* poppler's ``pdfsig`` (NSS underneath): every signature "Signature is Valid", the last one
  "Total document signed". On this poppler (22.12, NSS 3.87) RSASSA-PSS (SHA-256, MGF1-SHA-256,
  salt 222), PKCS#1 v1.5 and ECDSA (P-256/SHA-256, P-384/SHA-384) CMS signatures all verify,
  and tampering is caught (see test_tampering_is_detected_by_the_oracles); but pdfsig cannot verify
  ``ETSI.RFC3161`` document timestamps: it prints "Signature Type: unknown", "Signature has not
  yet been verified" and "Unimplemented Feature (0): Unable to validate this type of signature".
  For those we assert exactly that, plus "Total document signed", and verify them with openssl.
* ``openssl cms -verify`` on the CMS blob cut out of /Contents, over the bytes covered by
  /ByteRange (both found with a regex, not with a PDF library); ``openssl ts -verify`` for
  document timestamps;
* pyHanko's own validator with the trust root (intact, valid, trusted; timestamps; DSS).

``LIENTHONG_WRITE_DOCS=1 pytest tests/integration/test_sign_pdf.py -k render`` refreshes
docs/appearance-*.png.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from PIL import Image

from signing import (
    AnchorPlacement,
    BoxPlacement,
    FieldPlacement,
    KeySource,
    SigningError,
    SignOptions,
    add_archive_timestamp,
    async_add_archive_timestamp,
    async_sign_pdf,
    open_key,
    sign_pdf,
)
from signing.pdf.appearance import VN_TZ, format_signing_time
from signing.pdf.options import LEVELS, ROLES
from tests.support.pdfgen import official_document, seal_png, signature_png
from tests.support.pki import P12_PASSWORD

SECRET = P12_PASSWORD.decode()
DOCS = Path(__file__).resolve().parents[2] / "docs"
ANCHOR = AnchorPlacement("BỘ TRƯỞNG")

# ----- fixtures --------------------------------------------------------------------------


@dataclass(frozen=True)
class Docs:
    one: bytes
    fifty: bytes
    annex: bytes
    signature: bytes
    seal: bytes


@pytest.fixture(scope="module")
def docs() -> Docs:
    return Docs(
        official_document(),
        official_document(50),
        official_document(annex=True),
        signature_png(),
        seal_png(),
    )


ROLE_KEY = {"leader": "leader", "agency": "seal", "attachment": "clerk"}


def options(pki, docs: Docs, role: str, level: str, **changes) -> SignOptions:
    """Sensible options for a role: the leader and agency by anchor, the attachment default."""
    base = SignOptions(
        role=role,
        level=level,
        placement=None if role == "attachment" else ANCHOR,
        image={"leader": docs.signature, "agency": docs.seal}.get(role),
        tsa_url=pki.tsa_url,
        trust_roots=[pki.root_pem],
        document_number="123/QĐ-VPCP" if role == "attachment" else None,
        reason="Ký ban hành văn bản",
        location="Hà Nội",
    )
    return replace(base, **changes)


async def sign_as(pki, name: str, data, opts: SignOptions, padding: str = "pss") -> bytes:
    source = KeySource(p12=pki.identity(name).p12, rsa_padding=padding)
    with open_key(source, SECRET) as key:
        return await async_sign_pdf(data, key, opts)


# ----- oracles ---------------------------------------------------------------------------

BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


@dataclass(frozen=True)
class RawSig:
    covered: bytes
    der: bytes

    @property
    def is_timestamp(self) -> bool:
        content_type = cms.ContentInfo.load(self.der)["content"]["encap_content_info"]
        return content_type["content_type"].native == "tst_info"

    @property
    def algorithm(self) -> str:
        signed = cms.ContentInfo.load(self.der)["content"]
        algorithm = signed["signer_infos"][0]["signature_algorithm"]
        if algorithm["algorithm"].native == "rsassa_pss":
            # Salt as long as the hash (RFC 4055, ETSI TS 119 312): what verifiers expect.
            assert algorithm["parameters"]["salt_length"].native == 32
        return algorithm["algorithm"].native


def _der_length(blob: bytes) -> int:
    first = blob[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    return 2 + n + int.from_bytes(blob[2 : 2 + n], "big")


def raw_signatures(data: bytes) -> list[RawSig]:
    """Every signature in file order, cut out by /ByteRange alone (no PDF library)."""
    found = []
    for match in BYTE_RANGE.finditer(data):
        a, b, c, d = (int(v) for v in match.groups())
        assert a == 0 and c + d <= len(data)
        hexstr = data[a + b : c].strip().strip(b"<>")
        blob = bytes.fromhex(hexstr.decode())
        found.append(RawSig(data[a : a + b] + data[c : c + d], blob[: _der_length(blob)]))
    return found


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def openssl_verify(data: bytes, pki, tmp: Path) -> list[str]:
    """openssl accepts every signature (cms) and document timestamp (ts); returns the algorithms."""
    chain = tmp / "tsa-chain.pem"
    chain.write_bytes(pki.issuing_pem.read_bytes() + pki.identity("tsa").cert_pem.read_bytes())
    algorithms = []
    for i, sig in enumerate(raw_signatures(data)):
        covered, blob = tmp / f"covered-{i}.bin", tmp / f"sig-{i}.der"
        covered.write_bytes(sig.covered)
        blob.write_bytes(sig.der)
        if sig.is_timestamp:
            args = ["ts", "-verify", "-data", str(covered), "-in", str(blob), "-token_in"]
            out = run("openssl", *args, "-CAfile", str(pki.root_pem), "-untrusted", str(chain))
            assert out.returncode == 0 and "Verification: OK" in out.stdout, out.stderr
            algorithms.append("timestamp")
            continue
        out = run(
            "openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(blob),
            "-content", str(covered), "-CAfile", str(pki.root_pem),
            "-certfile", str(pki.issuing_pem), "-purpose", "any", "-out", os.devnull,
        )  # fmt: skip
        assert out.returncode == 0 and "Verification successful" in out.stderr, out.stderr
        algorithms.append(sig.algorithm)
    return algorithms


def pdfsig(data: bytes, tmp: Path) -> list[dict[str, str]]:
    """pdfsig's report, one dict per signature."""
    path = tmp / "pdfsig-input.pdf"
    path.write_bytes(data)
    out = run("pdfsig", "-nocert", str(path))
    sigs: list[dict[str, str]] = []
    for line in out.stdout.splitlines():
        if line.startswith("Signature #"):
            sigs.append({})
        elif sigs and line.strip().startswith("- "):
            text = line.strip()[2:]
            key, _, value = text.partition(": ")
            sigs[-1][key if value else text] = value or text
    return sigs


def assert_pdfsig_ok(data: bytes, tmp: Path) -> list[dict[str, str]]:
    sigs = pdfsig(data, tmp)
    assert sigs, "pdfsig found no signature"
    for sig in sigs:
        if sig.get("Signature Type") == "unknown":  # ETSI.RFC3161: not supported by poppler 22
            assert sig["Signature Validation"] == "Signature has not yet been verified."
        else:
            assert sig["Signature Type"] == "ETSI.CAdES.detached"
            assert sig["Signature Validation"] == "Signature is Valid.", sig
    assert "Total document signed" in sigs[-1], sigs[-1]
    return sigs


async def pyhanko_verify(data: bytes, pki, level: str | None = None) -> list:
    """pyHanko: every signature intact, valid and trusted; the level's extras are there."""
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import (
        DocumentSecurityStore,
        async_validate_pdf_signature,
        async_validate_pdf_timestamp,
    )
    from pyhanko_certvalidator import ValidationContext

    root = asn1_x509.Certificate.load(pem.unarmor(pki.root_pem.read_bytes())[2])
    reader = PdfFileReader(io.BytesIO(data))
    statuses = []
    for sig in reader.embedded_regular_signatures:
        vc = ValidationContext(trust_roots=[root], allow_fetching=True)
        try:
            status = await async_validate_pdf_signature(sig, vc)
        finally:
            await vc.aclose()
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        statuses.append(status)
    for ts in reader.embedded_timestamp_signatures:
        vc = ValidationContext(trust_roots=[root], allow_fetching=True)
        try:
            status = await async_validate_pdf_timestamp(ts, vc)
        finally:
            await vc.aclose()
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    if "/DSS" in reader.root:
        dss = reader.root["/DSS"]
        assert dss["/Certs"] and (dss.get("/OCSPs") or dss.get("/CRLs"))
        # The DSS alone is enough: validate with no fetching and hard-fail revocation.
        for sig in reader.embedded_regular_signatures:
            offline = DocumentSecurityStore.read_dss(reader).as_validation_context(
                {"trust_roots": [root], "allow_fetching": False, "revocation_mode": "hard-fail"}
            )
            status = await async_validate_pdf_signature(sig, offline)
            assert status.trusted, status.pretty_print_details()
            if status.timestamp_validity is not None:
                assert status.timestamp_validity.trusted
    if level is not None:
        last = statuses[-1]
        assert (last.timestamp_validity is not None) == (level != "B-B")
        if level != "B-B":
            assert last.timestamp_validity.valid and last.timestamp_validity.trusted
        assert ("/DSS" in reader.root) == (level in ("B-LT", "B-LTA"))
        assert bool(reader.embedded_timestamp_signatures) == (level == "B-LTA")
    return statuses


# ----- every role at every level ---------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("role", ROLES)
async def test_every_role_signs_at_every_level(pki, docs, tmp_path, role, level):
    data = docs.annex if role == "attachment" else docs.one
    signed = await sign_as(pki, ROLE_KEY[role], data, options(pki, docs, role, level))
    assert signed.startswith(data)  # an incremental update: the original bytes are untouched
    sigs = assert_pdfsig_ok(signed, tmp_path)
    algorithms = openssl_verify(signed, pki, tmp_path)
    expected = "sha256_ecdsa" if role == "agency" else "rsassa_pss"
    assert algorithms == [expected] + (["timestamp"] if level == "B-LTA" else [])
    statuses = await pyhanko_verify(signed, pki, level)
    assert statuses[0].md_algorithm == "sha256"
    if level == "B-LTA":
        assert sigs[-1]["Signature Type"] == "unknown"  # poppler can't check RFC 3161 doc TS
        assert "Not total document signed" in sigs[0]
    else:
        assert len(sigs) == 1 and "Total document signed" in sigs[0]


# ----- keys and algorithms ---------------------------------------------------------------


async def test_ecdsa_p384_uses_sha384(pki, docs, tmp_path):
    opts = options(pki, docs, "leader", "B-T")
    signed = await sign_as(pki, "clerk_ec384", docs.one, opts)
    assert_pdfsig_ok(signed, tmp_path)
    assert openssl_verify(signed, pki, tmp_path) == ["sha384_ecdsa"]
    (status,) = await pyhanko_verify(signed, pki, "B-T")
    assert status.md_algorithm == "sha384"


async def test_pkcs1v15_only_when_asked(pki, docs, tmp_path):
    opts = options(pki, docs, "leader", "B-B")
    signed = await sign_as(pki, "leader", docs.one, opts, padding="pkcs1v15")
    assert_pdfsig_ok(signed, tmp_path)
    assert openssl_verify(signed, pki, tmp_path) == ["sha256_rsa"]  # sha256WithRSAEncryption
    await pyhanko_verify(signed, pki, "B-B")


@pytest.mark.parametrize(("name", "algorithm"), [("clerk", "rsassa_pss"), ("seal", "sha256_ecdsa")])
async def test_pkcs11_token_keys(pki, hsm_token, docs, tmp_path, name, algorithm):
    role = "agency" if name == "seal" else "leader"
    source = KeySource(pkcs11_lib=hsm_token.module, token=hsm_token.label, key_label=name)
    # The token holds only the signer's certificate: the issuing CA comes from extra_certs.
    opts = options(pki, docs, role, "B-LT", extra_certs=[pki.issuing_pem])
    signed = await async_sign_pdf(docs.one, source, opts, secret=hsm_token.pin)
    assert_pdfsig_ok(signed, tmp_path)
    assert openssl_verify(signed, pki, tmp_path) == [algorithm]
    await pyhanko_verify(signed, pki, "B-LT")


def flip_signature_value(data: bytes) -> bytes:
    """The same file with one bit of the first signature's value flipped (inside /Contents)."""
    match = BYTE_RANGE.search(data)
    assert match is not None
    a, b, c, _ = (int(v) for v in match.groups())
    hexstr = data[a + b + 1 : c - 1]
    blob = bytes.fromhex(hexstr.decode())
    info = cms.ContentInfo.load(blob[: _der_length(blob)])
    signer = info["content"]["signer_infos"][0]
    value = bytearray(signer["signature"].native)
    value[10] ^= 1
    signer["signature"] = bytes(value)
    new = info.dump(force=True).hex().encode()
    return data[: a + b + 1] + new.ljust(len(hexstr), b"0") + data[c - 1 :]


@pytest.mark.parametrize(("name", "role"), [("leader", "leader"), ("seal", "agency")])
async def test_tampering_is_detected_by_the_oracles(pki, docs, tmp_path, name, role):
    """The oracles are not vacuous, for RSASSA-PSS and ECDSA alike: a changed byte in the signed
    range (pdfsig: "Digest Mismatch.") and a flipped bit of the signature value itself (pdfsig:
    "Signature is Invalid.", so NSS really checks the PSS/ECDSA signature) fail all three."""
    signed = await sign_as(pki, name, docs.one, options(pki, docs, role, "B-B"))
    index = signed.index(b"%PDF-1.") + 7  # the minor version: still a readable PDF
    digit = b"6" if signed[index : index + 1] != b"6" else b"5"
    content_changed = signed[:index] + digit + signed[index + 1 :]
    for tampered, verdict in (
        (content_changed, "Digest Mismatch."),
        (flip_signature_value(signed), "Signature is Invalid."),
    ):
        assert pdfsig(tampered, tmp_path)[0]["Signature Validation"] == verdict
        with pytest.raises(AssertionError):
            openssl_verify(tampered, pki, tmp_path)
        with pytest.raises(AssertionError):
            await pyhanko_verify(tampered, pki)


# ----- sequential signatures -------------------------------------------------------------


async def test_leader_then_agency_then_archive_timestamp(pki, docs, tmp_path):
    leader = await sign_as(pki, "leader", docs.one, options(pki, docs, "leader", "B-LT"))
    both = await sign_as(pki, "seal", leader, options(pki, docs, "agency", "B-LT"))
    final = await async_add_archive_timestamp(both, tsa_url=pki.tsa_url, trust_roots=[pki.root_pem])
    assert both.startswith(leader) and final.startswith(both)
    sigs = assert_pdfsig_ok(final, tmp_path)
    assert [s["Signature Field Name"] for s in sigs[:2]] == ["ChuKyLanhDao1", "ChuKyCoQuan1"]
    assert "Not total document signed" in sigs[0] and "Not total document signed" in sigs[1]
    assert sigs[2]["Signature Type"] == "unknown" and "Total document signed" in sigs[2]
    assert openssl_verify(final, pki, tmp_path) == ["rsassa_pss", "sha256_ecdsa", "timestamp"]
    statuses = await pyhanko_verify(final, pki)  # including both with the DSS alone
    assert len(statuses) == 2
    for status in statuses:
        # later revisions only add a signature field, DSS data and a timestamp: allowed
        assert status.modification_level is not None and status.docmdp_ok


async def test_agency_seal_overlaps_left_third_of_the_leader(pki, docs):
    from pyhanko.pdf_utils.reader import PdfFileReader

    box = BoxPlacement(-1, 350, 170, 500, 235)  # the leader put by hand, not by the anchor
    leader_opts = options(pki, docs, "leader", "B-B", placement=box)
    leader = await sign_as(pki, "leader", docs.one, leader_opts)
    both = await sign_as(pki, "seal", leader, options(pki, docs, "agency", "B-B"))
    fields = {}
    for sig in PdfFileReader(io.BytesIO(both)).embedded_signatures:
        fields[sig.field_name] = [float(v) for v in sig.sig_field["/Rect"]]
    lx1, ly1, lx2, ly2 = fields["ChuKyLanhDao1"]
    ax1, ay1, ax2, ay2 = fields["ChuKyCoQuan1"]
    assert ax2 == pytest.approx(lx1 + (lx2 - lx1) / 3, abs=0.6)  # seal's right edge
    assert (ay1 + ay2) / 2 == pytest.approx((ly1 + ly2) / 2, abs=0.6)
    assert ay2 - ay1 == pytest.approx(36 * 72 / 25.4, abs=0.6)  # real size: 36 mm


async def test_fifty_pages_anchor_on_the_last_page(pki, docs, tmp_path):
    from pyhanko.pdf_utils.reader import PdfFileReader

    signed = await sign_as(pki, "leader", docs.fifty, options(pki, docs, "leader", "B-T"))
    reader = PdfFileReader(io.BytesIO(signed))
    (sig,) = reader.embedded_signatures
    last_page, _ = reader.find_page_for_modification(49)
    assert sig.sig_field.raw_get("/P").reference == last_page.reference
    assert_pdfsig_ok(signed, tmp_path)
    await pyhanko_verify(signed, pki, "B-T")


async def test_existing_field(pki, docs, tmp_path):
    data = official_document(sig_field=("ChuKyLanhDao", (360, 170, 500, 235)))
    opts = options(pki, docs, "leader", "B-T", placement=FieldPlacement("ChuKyLanhDao"))
    signed = await sign_as(pki, "leader", data, opts)
    sigs = assert_pdfsig_ok(signed, tmp_path)
    assert sigs[0]["Signature Field Name"] == "ChuKyLanhDao"
    await expect("signing.field_signed", sign_as(pki, "leader", signed, opts))


# ----- refusals --------------------------------------------------------------------------


async def expect(code: str, coro) -> SigningError:
    with pytest.raises(SigningError) as caught:
        await coro
    assert caught.value.code == code, caught.value.message
    return caught.value


async def test_expired_certificate(pki, docs):
    err = await expect(
        "signing.certificate_expired",
        sign_as(pki, "expired", docs.one, options(pki, docs, "leader", "B-B", trust_roots=[])),
    )
    assert "expired" in err.message


async def test_untrusted_certificate(pki, docs):
    opts = options(pki, docs, "leader", "B-B")
    await expect("signing.certificate_untrusted", sign_as(pki, "untrusted", docs.one, opts))


async def test_not_yet_valid_certificate(pki, docs):
    then = datetime.now(UTC) - timedelta(days=3650)
    opts = options(pki, docs, "leader", "B-B", now=then)
    await expect("signing.certificate_not_yet_valid", sign_as(pki, "leader", docs.one, opts))


async def test_revoked_certificate_refused_via_ocsp(pki, docs):
    opts = options(pki, docs, "leader", "B-T")
    err = await expect("signing.certificate_revoked", sign_as(pki, "revoked", docs.one, opts))
    assert "revoked" in err.message


async def test_bad_documents(pki, docs):
    leader = options(pki, docs, "leader", "B-B")
    encrypted = official_document(encrypt_with="secret")
    await expect("signing.pdf_encrypted", sign_as(pki, "leader", encrypted, leader))
    await expect("signing.pdf_invalid", sign_as(pki, "leader", b"not a pdf at all", leader))
    broken = b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\nendobj\ntrailer << >>\n%%EOF\n"
    await expect("signing.pdf_invalid", sign_as(pki, "leader", broken, leader))
    await expect(
        "signing.pdf_invalid", sign_as(pki, "leader", docs.one[: len(docs.one) // 2], leader)
    )


async def test_certified_no_changes_document_is_locked(pki, docs):
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import MDPPerm

    signer = signers.SimpleSigner.load_pkcs12(pki.identity("clerk").p12, passphrase=P12_PASSWORD)
    meta = signers.PdfSignatureMetadata(
        field_name="Certification", certify=True, docmdp_permissions=MDPPerm.NO_CHANGES
    )
    out = await signers.PdfSigner(meta, signer).async_sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(docs.one))
    )
    opts = options(pki, docs, "agency", "B-B")
    err = await expect("signing.pdf_locked", sign_as(pki, "seal", out.getvalue(), opts))
    assert "P=1" in err.message


async def test_unreachable_tsa_writes_nothing(pki, docs, tmp_path):
    source = tmp_path / "input.pdf"
    source.write_bytes(docs.one)
    before = (source.stat().st_mtime_ns, sorted(p.name for p in tmp_path.iterdir()))
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/tsa"
    for level in ("B-T", "B-LTA"):
        opts = options(pki, docs, "leader", level, tsa_url=dead, network_timeout=3)
        err = await expect("signing.tsa_unreachable", sign_as(pki, "leader", source, opts))
        assert dead in err.message
    assert source.read_bytes() == docs.one
    assert (source.stat().st_mtime_ns, sorted(p.name for p in tmp_path.iterdir())) == before


async def test_image_must_be_png(pki, docs):
    jpeg = io.BytesIO()
    Image.new("RGB", (40, 20), "blue").save(jpeg, "JPEG")
    for image in (jpeg.getvalue(), b"\x89PNG\r\n\x1a\n truncated", Path("/nonexistent.png")):
        opts = options(pki, docs, "leader", "B-B", image=image)
        await expect("signing.image_invalid", sign_as(pki, "leader", docs.one, opts))
    opts = options(pki, docs, "agency", "B-B", image=None)
    await expect("signing.image_missing", sign_as(pki, "seal", docs.one, opts))


async def test_anchor_not_found_says_what_and_where(pki, docs):
    opts = options(pki, docs, "leader", "B-B", placement=AnchorPlacement("CHỦ TỊCH"))
    err = await expect("signing.anchor_not_found", sign_as(pki, "leader", docs.fifty, opts))
    assert "'CHỦ TỊCH'" in err.message and "50 page" in err.message
    # Case matters: body text says "Bộ trưởng"-style words, the title line is in capitals.
    opts = options(pki, docs, "leader", "B-B", placement=AnchorPlacement("QUYẾT ĐỊNH", pages=(2,)))
    err = await expect("signing.anchor_not_found", sign_as(pki, "leader", docs.fifty, opts))
    assert "page(s) 2" in err.message


async def test_field_not_found(pki, docs):
    opts = options(pki, docs, "leader", "B-B", placement=FieldPlacement("KhongCo"))
    err = await expect("signing.field_not_found", sign_as(pki, "leader", docs.one, opts))
    assert "'KhongCo'" in err.message


async def test_wrong_pin_and_missing_token(pki, hsm_token, docs):
    opts = options(pki, docs, "leader", "B-B")
    source = KeySource(pkcs11_lib=hsm_token.module, token=hsm_token.label, key_label="clerk")
    await expect("signing.wrong_pin", async_sign_pdf(docs.one, source, opts, secret="000000"))
    missing = replace(source, token="no-such-token")
    await expect(
        "signing.token_not_found", async_sign_pdf(docs.one, missing, opts, secret="123456")
    )


async def test_missing_font_is_clear(pki, docs):
    opts = options(pki, docs, "attachment", "B-B", font_path=Path("/nonexistent/DejaVuSans.ttf"))
    err = await expect("signing.font_missing", sign_as(pki, "clerk", docs.annex, opts))
    assert "fonts-dejavu-core" in err.message


# ----- appearances, rendered -------------------------------------------------------------


def render_page1(data: bytes, target: Path) -> Path:
    """Page 1 at 100 dpi with pdftoppm, reduced to a 128-colour palette to stay small."""
    pdf = target.with_suffix(".pdf")
    pdf.write_bytes(data)
    out = run("pdftoppm", "-png", "-r", "100", "-f", "1", "-l", "1", "-singlefile", str(pdf),
              str(target.with_suffix("")))  # fmt: skip
    assert out.returncode == 0, out.stderr
    image = Image.open(target).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(target, optimize=True)
    return target


async def test_render_appearances(pki, docs, tmp_path):
    leader = await sign_as(pki, "leader", docs.one, options(pki, docs, "leader", "B-B"))
    both = await sign_as(pki, "seal", leader, options(pki, docs, "agency", "B-B"))
    attachment = await sign_as(pki, "clerk", docs.annex, options(pki, docs, "attachment", "B-B"))
    shots = {
        "leader": render_page1(leader, tmp_path / "appearance-leader.png"),
        "agency": render_page1(both, tmp_path / "appearance-agency.png"),
        "attachment": render_page1(attachment, tmp_path / "appearance-attachment.png"),
    }
    for shot in shots.values():
        assert shot.stat().st_size < 150_000, shot
    # The signed text is real text: poppler extracts it from the appearance streams.
    text = run("pdftotext", "-f", "1", "-l", "1", str(shots["attachment"].with_suffix(".pdf")),
               "-").stdout  # fmt: skip
    assert "Số: 123/QĐ-VPCP" in text and "Thời gian ký:" in text and "+07:00" in text
    # The red of the seal shows up left of the blue signature.
    img = Image.open(shots["agency"]).convert("RGB")
    red = [(x, y) for x in range(0, img.width, 2) for y in range(img.height // 2, img.height, 2)
           if _is(img.getpixel((x, y)), "red")]  # fmt: skip
    blue = [(x, y) for x in range(0, img.width, 2) for y in range(img.height // 2, img.height, 2)
            if _is(img.getpixel((x, y)), "blue")]  # fmt: skip
    assert red and blue and min(x for x, _ in red) < min(x for x, _ in blue)
    if os.environ.get("LIENTHONG_WRITE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        for shot in shots.values():
            shutil.copy(shot, DOCS / shot.name)


def _is(rgb: tuple[int, int, int], colour: str) -> bool:
    r, g, b = rgb
    if colour == "red":
        return r > 150 and g < 90 and b < 90
    return b > 120 and r < 90 and g < 110


def test_sync_wrappers(pki, docs, tmp_path):
    """The synchronous entry points, as a CLI would call them (no event loop running)."""
    opts = options(pki, docs, "attachment", "B-T", agency_name="Văn phòng Chính phủ")
    source = KeySource(p12=pki.identity("clerk").p12)
    signed = sign_pdf(docs.annex, source, opts, secret=SECRET)
    final = add_archive_timestamp(signed, tsa_url=pki.tsa_url, trust_roots=[pki.root_pem])
    sigs = assert_pdfsig_ok(final, tmp_path)
    assert len(sigs) == 2 and sigs[1]["Signature Type"] == "unknown"
    assert openssl_verify(final, pki, tmp_path) == ["rsassa_pss", "timestamp"]


def test_signing_time_format():
    when = datetime(2025, 5, 12, 2, 30, 5, tzinfo=UTC)
    assert format_signing_time(when) == "09:30:05 12/05/2025 +07:00"
    assert format_signing_time(when.astimezone(VN_TZ)) == "09:30:05 12/05/2025 +07:00"
