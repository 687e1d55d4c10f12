"""PAdES signatures on official documents (PDF): baseline B-B, B-T, B-LT and B-LTA.

    from signing.pdf import SignOptions, sign_pdf
    from signing.appearance import AnchorPlacement

    with open_key(KeySource(p12=Path("leader.p12")), secret) as key:
        signed = await sign_pdf(
            Path("qd-123.pdf"),
            key,
            SignOptions(role="leader", level="B-LT", image=Path("chu-ky.png"),
                        placement=AnchorPlacement("BỘ TRƯỞNG"),
                        tsa_url="http://tsa.example/", trust_roots=[Path("root.pem")]),
        )

Every signature is an incremental update (earlier signatures stay valid), made with pyHanko's
``PdfSigner`` and the ``ETSI.CAdES.detached`` sub-filter. Algorithms follow Circular 15/2025:
RSASSA-PSS with SHA-256 for RSA keys (PKCS#1 v1.5 only when the key source asks for it),
ECDSA with SHA-256 on P-256 and SHA-384 on P-384.

Levels:

* ``B-B``: the CMS signature only;
* ``B-T``: plus an RFC 3161 signature timestamp from ``tsa_url``;
* ``B-LT``: plus the certificates, OCSP responses and CRLs of the signer and the TSA in the
  document security store (DSS), fetched from the URLs in the certificates and checked against
  ``trust_roots``; written in the signature's own revision (no VRI), so the signature covers
  the whole file;
* ``B-LTA``: plus a document timestamp over all of it (its own validation data is written
  before it, so it too covers the whole file).

Before anything is signed the signer's certificate is checked: expired or not yet valid
(always), revoked (with OCSP/CRL, when trust roots are given). Every refusal is a
:class:`~signing.keys.SigningError` with a stable code; the output is returned only when complete
and the input is never modified.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from asn1crypto import x509 as asn1_x509

from signing.anchor import TextHit, find_text_in_bytes
from signing.appearance import (
    VN_TZ,
    AnchorPlacement,
    Appearance,
    BoxPlacement,
    FieldPlacement,
    FontProgram,
    Geometry,
    OfficialStampStyle,
    Placement,
    Rect,
    Role,
    agency_box,
    attachment_box,
    default_font_path,
    format_signing_time,
    leader_box,
    load_png,
)
from signing.errors import SigningError, TrustError
from signing.keys import KeyHandle, KeySource, open_key
from signing.revinfo_gaps import ACCEPT_HINT, offline_gaps, unreachable_revocation
from signing.trust import certificates, make_validation_context

__all__ = [
    "LEVELS",
    "ROLES",
    "Level",
    "SignOptions",
    "SignedPdf",
    "add_archive_timestamp",
    "add_archive_timestamp_sync",
    "load_certificates",
    "sign_pdf",
    "sign_pdf_detailed",
    "sign_pdf_sync",
]

Level = Literal["B-B", "B-T", "B-LT", "B-LTA"]
LEVELS: tuple[Level, ...] = ("B-B", "B-T", "B-LT", "B-LTA")
ROLES: tuple[Role, ...] = ("leader", "agency", "attachment")
FIELD_PREFIX = {"leader": "ChuKyLanhDao", "agency": "ChuKyCoQuan", "attachment": "ChuKyPhuLuc"}
_LT_HINT = (
    "; a B-LT/B-LTA signature must carry it, for offline verification (sign at B-T, or "
    f"accept signing without it: {ACCEPT_HINT}, SignOptions.allow_missing_revocation)"
)


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


# ----- certificates ----------------------------------------------------------------------


def load_certificates(paths: Sequence[Path]) -> list[asn1_x509.Certificate]:
    """Certificates from PEM (one or many per file) or DER files, or folders of them
    (:func:`signing.trust.certificates`); an unusable file is ``signing.bad_option``."""
    try:
        return certificates(paths)
    except TrustError as exc:
        raise SigningError("signing.bad_option", str(exc)) from None


def _validation_context(roots, others, *, mode: str, timeout: float):
    """certvalidator's ``require`` (an answer for every certificate below the anchor),
    ``hard-fail`` (for those naming an OCSP responder or CRL) or ``soft-fail``; fresh answers
    from the network (nothing from the verifier's cache), AIA certificates fetched, and
    certvalidator's default algorithm policy."""
    from pyhanko_certvalidator.policy_decl import DisallowWeakAlgorithmsPolicy

    return make_validation_context(
        roots,
        others,
        revocation_mode=mode,
        allow_fetching=True,
        fetch_timeout=timeout,
        revinfo_cache_seconds=0,
        fetch_certificates=True,
        algorithm_policy=DisallowWeakAlgorithmsPolicy(),
    )


async def _check_certificate(
    key: KeyHandle, moment: datetime, vc, others, *, long_term: bool = False
) -> None:
    """Refuse an expired, not yet valid, revoked or untrusted signer certificate, and for a
    long-term level (``vc`` in ``require`` mode) one without revocation data."""
    cert = key.cert
    names = cert.subject.native
    subject = names.get("common_name") or cert.subject.human_friendly
    if names.get("organization_name") and names["organization_name"] != subject:
        subject += f" ({names['organization_name']})"
    if moment < cert.not_valid_before:
        raise SigningError(
            "signing.certificate_not_yet_valid",
            f"the certificate of {subject} is valid only from {cert.not_valid_before:%Y-%m-%d}",
        )
    if moment > cert.not_valid_after:
        raise SigningError(
            "signing.certificate_expired",
            f"the certificate of {subject} expired on {cert.not_valid_after:%Y-%m-%d}",
        )
    usage = set(cert.key_usage_value.native) if cert.key_usage_value else set()
    if usage and not usage & {"digital_signature", "non_repudiation"}:
        raise SigningError(
            "signing.certificate_key_usage",
            f"the certificate of {subject} is not for signatures (key usage {sorted(usage)})",
        )
    if vc is None:
        return
    from pyhanko_certvalidator import CertificateValidator
    from pyhanko_certvalidator import errors as cv

    validator = CertificateValidator(cert, intermediate_certs=others, validation_context=vc)
    try:
        await validator.async_validate_path()
    except cv.RevokedError as exc:
        raise SigningError(
            "signing.certificate_revoked",
            f"the certificate of {subject} is revoked (checked with OCSP/CRL): {exc}",
        ) from None
    except cv.ExpiredError as exc:
        raise SigningError("signing.certificate_expired", f"{subject}: {exc}") from None
    except cv.NotYetValidError as exc:
        raise SigningError("signing.certificate_not_yet_valid", f"{subject}: {exc}") from None
    except cv.InsufficientRevinfoError as exc:
        raise SigningError(
            "signing.revocation_unavailable",
            f"cannot establish whether the certificate of {subject} is revoked: "
            f"{unreachable_revocation(exc)}" + (_LT_HINT if long_term else ""),
        ) from None
    except cv.PathBuildingError as exc:
        raise SigningError(
            "signing.certificate_untrusted",
            f"the certificate of {subject} does not chain to the trust roots: {exc}",
        ) from None
    except cv.PathValidationError as exc:
        raise SigningError(
            "signing.certificate_invalid", f"the certificate of {subject} is not valid: {exc}"
        ) from None


def _digest_for(cert: asn1_x509.Certificate) -> str:
    key = cert.public_key
    if key.algorithm == "ec":
        curve = key.curve[1]
        return {"secp384r1": "sha384", "secp521r1": "sha512"}.get(curve, "sha256")
    return "sha256"


# ----- the document ----------------------------------------------------------------------


def _read_input(pdf: bytes | Path) -> bytes:
    if isinstance(pdf, bytes | bytearray | memoryview):
        return bytes(pdf)
    try:
        return Path(pdf).read_bytes()
    except OSError as exc:
        raise SigningError("signing.pdf_invalid", f"cannot read {pdf}: {exc}") from None


def _open_reader(data: bytes):
    """The strict reader the verifier uses too (:func:`signing.pdfread.open_pdf`): a file the
    verifier could not read is refused here, before anything is signed."""
    from signing.pdfread import UnreadablePdf, open_pdf

    try:
        reader = open_pdf(data)
        encrypted = reader.encrypted
        if not encrypted:
            count = int(reader.root["/Pages"]["/Count"])
            if count < 1:
                raise ValueError("the document has no pages")
    except UnreadablePdf as exc:
        raise SigningError("signing.pdf_invalid", f"cannot read the PDF: {exc}") from None
    except Exception as exc:  # a malformed file can break the reader in many ways
        raise SigningError("signing.pdf_invalid", f"cannot read the PDF: {exc}") from None
    if encrypted:
        raise SigningError(
            "signing.pdf_encrypted",
            "the PDF is encrypted: official documents are exchanged unencrypted; "
            "remove the password before signing",
        )
    return reader


def _page_count(reader) -> int:
    return int(reader.root["/Pages"]["/Count"])


def _check_not_locked(reader) -> None:
    from pyhanko.sign.fields import MDPPerm
    from pyhanko.sign.validation import read_certification_data

    try:
        certification = read_certification_data(reader)
        locks = [s.docmdp_level for s in reader.embedded_signatures]
    except Exception as exc:
        raise SigningError("signing.pdf_invalid", f"cannot read its signatures: {exc}") from None
    if certification is not None and certification.permission == MDPPerm.NO_CHANGES:
        raise SigningError(
            "signing.pdf_locked",
            "the PDF is certified with 'no changes allowed' (DocMDP P=1): "
            "another signature would invalidate the certification",
        )
    if MDPPerm.NO_CHANGES in locks:
        raise SigningError(
            "signing.pdf_locked",
            "an earlier signature locked the document (no changes allowed)",
        )


def _get(pdf_dict, key: str, default=None):
    """``pdf_dict[key]`` dereferenced (pyHanko's ``dict.get`` would not resolve references)."""
    try:
        return pdf_dict[key]
    except (KeyError, TypeError):
        return default


def _inherited(page, key: str):
    node = page
    for _ in range(64):
        if key in node:
            return node[key]
        if "/Parent" not in node:
            return None
        node = node["/Parent"]
    return None


def _page(reader, index: int):
    page_ref, _ = reader.find_page_for_modification(index)
    return page_ref.get_object()


def _page_box(reader, index: int) -> Rect:
    page = _page(reader, index)
    box = _inherited(page, "/CropBox") or _inherited(page, "/MediaBox")
    if box is None:
        return (0.0, 0.0, 595.28, 841.89)
    x1, y1, x2, y2 = (float(v) for v in box)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def _page_index(page: int, count: int) -> int:
    index = page - 1 if page > 0 else count + page
    if page == 0 or not 0 <= index < count:
        raise SigningError(
            "signing.bad_option", f"page {page} does not exist (the document has {count})"
        )
    return index


def _sig_fields(reader) -> list[tuple[str, object, object]]:
    from pyhanko.sign.fields import enumerate_sig_fields

    try:
        return list(enumerate_sig_fields(reader))
    except Exception as exc:
        raise SigningError("signing.pdf_invalid", f"cannot read its form fields: {exc}") from None


def _field_rect(field) -> Rect | None:
    field = field.get_object() if hasattr(field, "get_object") else field
    candidates = [field] + [k.get_object() for k in _get(field, "/Kids", [])]
    for widget in candidates:
        if "/Rect" in widget:
            x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
            return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return None


def _signature_widgets(reader, index: int) -> list[Rect]:
    """Rectangles of signature widgets on a page (to find the leader's signature)."""
    rects = []
    for annot in _get(_page(reader, index), "/Annots", []):
        annot = annot.get_object()
        if _get(annot, "/Subtype") != "/Widget":
            continue
        field_type = _get(annot, "/FT") or _get(_get(annot, "/Parent", {}), "/FT")
        if field_type == "/Sig" and "/Rect" in annot:
            x1, y1, x2, y2 = (float(v) for v in annot["/Rect"])
            if x2 - x1 > 1 and y2 - y1 > 1:
                rects.append((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))
    return rects


def _overlap(a: Rect, b: Rect) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


@dataclass(frozen=True)
class _Target:
    field_name: str
    existing: bool
    page: int = 0
    rect: Rect | None = None


def _unique_name(prefix: str, taken: set[str]) -> str:
    for n in range(1, 1000):  # ChuKyLanhDao1, ChuKyLanhDao2, ...
        name = f"{prefix}{n}"
        if name not in taken:
            return name
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _appearance(
    options: SignOptions, key: KeyHandle, when: datetime, box: Rect | None
) -> Appearance:
    """The appearance content, text wrapped to ``box`` (None: the role's natural size)."""
    g = options.geometry
    time_text = format_signing_time(when)
    font_path = options.font_path or default_font_path()
    if options.role == "leader":
        return Appearance("leader", None, image=load_png(options.image, "signature image"))
    if options.role == "agency":
        agency = options.agency_name or _organisation(key.cert)
        size = g.agency_font_size
        font = FontProgram.load(font_path, agency + time_text)
        natural = font.width(time_text, size) + 1
        side = "left"
        wrap_to = natural
        if box is not None:
            w, h = box[2] - box[0], box[3] - box[1]
            if w < min(h, g.seal_diameter) + natural + 3:
                side, wrap_to = "below", w  # too narrow for text beside the seal
        lines = [*font.wrap(agency, wrap_to, size), *font.wrap(time_text, wrap_to, size)]
        return Appearance(
            "agency",
            font,
            tuple(lines),
            image=load_png(options.image, "seal image"),
            font_size=size,
            max_image_size=g.seal_diameter,
            text_side=side,
        )
    size = g.attachment_font_size
    paragraphs = [f"Số: {options.document_number}", f"Thời gian ký: {time_text}"]
    if options.agency_name:
        paragraphs.insert(0, options.agency_name)
    font = FontProgram.load(font_path, "".join(paragraphs))
    wrap_to = (box[2] - box[0] if box else g.attachment_width) - 4
    lines = [line for p in paragraphs for line in font.wrap(p, wrap_to, size)]
    return Appearance("attachment", font, tuple(lines), font_size=size)


def _organisation(cert: asn1_x509.Certificate) -> str:
    subject = cert.subject.native
    return subject.get("organization_name") or subject.get("common_name") or ""


async def _resolve_target(
    options: SignOptions, reader, data: bytes, key: KeyHandle, when: datetime
) -> tuple[_Target, Appearance]:
    placement = options.placement
    g = options.geometry
    count = _page_count(reader)
    fields = _sig_fields(reader)
    taken = {name for name, _, _ in fields}
    name = options.field_name or _unique_name(FIELD_PREFIX[options.role], taken)
    if isinstance(placement, FieldPlacement):
        matches = [(n, value, ref) for n, value, ref in fields if n == placement.name]
        if not matches:
            names = ", ".join(sorted(taken)) or "none"
            raise SigningError(
                "signing.field_not_found",
                f"no signature field named {placement.name!r} (fields in the document: {names})",
            )
        _, value, ref = matches[0]
        if value is not None:
            raise SigningError(
                "signing.field_signed", f"the field {placement.name!r} is already signed"
            )
        rect = _field_rect(ref)
        return _Target(placement.name, True), _appearance(options, key, when, rect)
    if name in taken:
        raise SigningError("signing.bad_option", f"a field named {name!r} already exists")
    if isinstance(placement, BoxPlacement):
        index = _page_index(placement.page, count)
        rect = (
            min(placement.x1, placement.x2),
            min(placement.y1, placement.y2),
            max(placement.x1, placement.x2),
            max(placement.y1, placement.y2),
        )
        if rect[2] - rect[0] < 1 or rect[3] - rect[1] < 1:
            raise SigningError("signing.bad_option", f"the box {rect} is empty")
        return _Target(name, False, index, rect), _appearance(options, key, when, rect)
    if isinstance(placement, AnchorPlacement):
        pages = None
        if placement.pages is not None:
            pages = [_page_index(p, count) for p in placement.pages]
        hit: TextHit = await asyncio.to_thread(
            find_text_in_bytes, data, placement.text, page_count=count, pages=pages
        )
        x0, y0, _, _ = _page_box(reader, hit.page)
        line = _shift(hit.line_box, x0, y0)
        found = _shift(hit.box, x0, y0)
        leader = leader_box(line, found, g)
        appearance = _appearance(options, key, when, None)
        if options.role == "leader":
            return _Target(name, False, hit.page, leader), appearance
        if options.role == "agency":
            # Over the leader's actual signature when it is there, else where it would be.
            widgets = sorted(
                _signature_widgets(reader, hit.page), key=lambda r: _overlap(r, leader)
            )
            if widgets and _overlap(widgets[-1], leader) > 0:
                leader = widgets[-1]
            rect = agency_box(leader, appearance.text_width(), appearance.text_height, g)
            return _Target(name, False, hit.page, rect), appearance
        # attachment under an anchor: the text box under the anchor's line
        cx = (line[0] + line[2]) / 2
        w, h = g.attachment_width, appearance.text_height + 4
        top = found[1] - g.anchor_gap
        return _Target(name, False, hit.page, (cx - w / 2, top - h, cx + w / 2, top)), appearance
    # no placement: the attachment's top right corner of page 1
    appearance = _appearance(options, key, when, None)
    rect = attachment_box(_page_box(reader, 0), appearance.text_height, g)
    return _Target(name, False, 0, rect), appearance


def _shift(box: Rect, dx: float, dy: float) -> Rect:
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


# ----- signing ---------------------------------------------------------------------------


@functools.cache
def _timestamper(url: str, timeout: float):
    """One time-stamper per TSA, kept: it remembers a token to size signatures with, so each
    signature costs one TSA request instead of two."""
    from pyhanko.sign.timestamps import HTTPTimeStamper

    class _TSA(HTTPTimeStamper):
        async def async_request_tsa_response(self, req):
            try:
                return await super().async_request_tsa_response(req)
            except Exception as exc:
                why = str(exc) or type(exc).__name__
                if exc.__cause__ is not None:
                    why += f" ({exc.__cause__})"
                raise SigningError(
                    "signing.tsa_unreachable",
                    f"the time-stamp authority at {url} did not answer: {why}",
                ) from exc

    return _TSA(url, timeout=timeout)


def _our_error(exc: BaseException) -> SigningError | None:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 20:
        if isinstance(current, SigningError):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _dss_settings():
    from pyhanko.sign.signers.pdf_signer import (
        DSSContentSettings,
        SigDSSPlacementPreference,
        TimestampDSSContentSettings,
    )

    # No VRI (deprecated by ETSI): validation data goes into the signature's own revision, and
    # a B-LTA document timestamp's data goes in before it, so the last signature covers the file.
    return DSSContentSettings(
        include_vri=False,
        placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE,
        next_ts_settings=TimestampDSSContentSettings(include_vri=False, update_before_ts=True),
    )


@dataclass(frozen=True)
class SignedPdf:
    """The signed bytes, and what an auditor will object to though signing went through
    (only with ``SignOptions.allow_missing_revocation``: the missing revocation data)."""

    data: bytes
    warnings: tuple[str, ...] = ()


async def sign_pdf(
    pdf: bytes | Path,
    key: KeyHandle | KeySource,
    options: SignOptions,
    *,
    secret: str | None = None,
) -> bytes:
    """Sign ``pdf`` (bytes or a file, never modified) and return the signed bytes.

    ``key`` is an opened :class:`~signing.keys.KeyHandle`, or a :class:`~signing.keys.KeySource`
    opened (with ``secret``: passphrase or PIN) and closed within this call. Raises
    :class:`~signing.keys.SigningError`; nothing is returned unless signing completed.
    """
    return (await sign_pdf_detailed(pdf, key, options, secret=secret)).data


async def sign_pdf_detailed(
    pdf: bytes | Path,
    key: KeyHandle | KeySource,
    options: SignOptions,
    *,
    secret: str | None = None,
) -> SignedPdf:
    """:func:`sign_pdf`, with the warnings a caller must show (see :class:`SignedPdf`)."""
    options.check()
    data = _read_input(pdf)
    reader = _open_reader(data)
    _check_not_locked(reader)
    if isinstance(key, KeySource):
        with open_key(key, secret) as handle:
            return await _sign(data, reader, handle, options)
    return await _sign(data, reader, key, options)


async def _sign(data: bytes, reader, key: KeyHandle, options: SignOptions) -> SignedPdf:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter

    when = options.now or datetime.now(VN_TZ)
    target, appearance = await _resolve_target(options, reader, data, key, when)
    roots = load_certificates(options.trust_roots)
    extra = load_certificates(options.extra_certs)
    if extra:
        key.signer.cert_registry.register_multiple(extra)
    others = [*key.chain, *extra]
    long_term = options.level in ("B-LT", "B-LTA")
    # B-LT/B-LTA: an answer for every certificate below the anchor, unless the clerk accepts
    # going without (then whatever can be had is embedded, and offline_gaps says what is not)
    mode = "require" if long_term and not options.allow_missing_revocation else "soft-fail"
    vc = None
    if roots:
        vc = _validation_context(roots, others, mode=mode, timeout=options.network_timeout)
    try:
        with _signing_errors():
            await _check_certificate(key, when.astimezone(UTC), vc, others, long_term=long_term)
            meta = signers.PdfSignatureMetadata(
                field_name=target.field_name,
                reason=options.reason,
                location=options.location,
                subfilter=SigSeedSubFilter.PADES,
                md_algorithm=_digest_for(key.cert),
                embed_validation_info=long_term,
                use_pades_lta=options.level == "B-LTA",
                validation_context=vc if long_term else None,
                signer_key_usage=set(),
                dss_settings=_dss_settings(),
            )
            field_spec = None
            if not target.existing:
                assert target.rect is not None
                field_spec = SigFieldSpec(target.field_name, on_page=target.page, box=target.rect)
            pdf_signer = signers.PdfSigner(
                meta,
                key.signer,
                timestamper=(
                    _timestamper(options.tsa_url, options.network_timeout)
                    if options.level != "B-B" and options.tsa_url
                    else None
                ),
                stamp_style=OfficialStampStyle(appearance=appearance),
                new_field_spec=field_spec,
            )
            writer = IncrementalPdfFileWriter.from_reader(reader)
            out = io.BytesIO()
            await pdf_signer.async_sign_pdf(
                writer, existing_fields_only=target.existing, output=out
            )
    finally:
        if vc is not None:
            await vc.aclose()
    signed = _readable_output(out.getvalue())
    warnings: list[str] = []
    if long_term and options.allow_missing_revocation:
        warnings = await offline_gaps(
            signed, target.field_name, options.trust_roots, options.extra_certs
        )
    return SignedPdf(signed, tuple(warnings))


def _readable_output(data: bytes) -> bytes:
    """``data``, once it is known to open the way the verifier opens it (never hand out a file
    that ``lienthong verify`` would call unreadable)."""
    from signing.pdfread import UnreadablePdf, open_pdf

    try:
        open_pdf(data)
    except UnreadablePdf as exc:
        raise SigningError(
            "signing.failed", f"the signed file would not read back as a PDF: {exc}"
        ) from None
    return data


@contextlib.contextmanager
def _signing_errors() -> Iterator[None]:
    """Whatever pyHanko, the token or the network raised, as one precise SigningError."""
    try:
        yield
    except SigningError:
        raise
    except Exception as exc:
        raise (_our_error(exc) or _translate(exc)) from exc


def _translate(exc: BaseException) -> SigningError:
    """A precise code for what pyHanko, the token or the network reported."""
    from pyhanko.sign.timestamps.common_utils import TimestampRequestError
    from pyhanko_certvalidator import errors as cv

    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 20:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for item in chain:
        if isinstance(item, TimestampRequestError):
            return SigningError("signing.tsa_error", f"the time-stamp authority failed: {item}")
        if isinstance(item, cv.RevokedError):
            return SigningError("signing.certificate_revoked", str(item))
        if isinstance(item, cv.InsufficientRevinfoError):
            return SigningError(
                "signing.revocation_unavailable",
                f"cannot collect revocation data: {unreachable_revocation(item)}{_LT_HINT}",
            )
        if isinstance(item, cv.PathBuildingError | cv.PathValidationError):
            return SigningError("signing.certificate_untrusted", str(item))
        if type(item).__module__.startswith("pkcs11"):
            return SigningError("signing.token_error", f"the token failed: {item!r}")
    return SigningError("signing.failed", f"signing failed: {exc}")


def sign_pdf_sync(
    pdf: bytes | Path,
    key: KeyHandle | KeySource,
    options: SignOptions,
    *,
    secret: str | None = None,
) -> bytes:
    """:func:`sign_pdf` for synchronous callers (not from inside a running event loop)."""
    return asyncio.run(sign_pdf(pdf, key, options, secret=secret))


async def add_archive_timestamp(
    pdf: bytes | Path,
    *,
    tsa_url: str,
    trust_roots: Sequence[Path],
    extra_certs: Sequence[Path] = (),
    network_timeout: float = 10.0,
) -> bytes:
    """Bring every signature of ``pdf`` to B-LTA: validation data for all of them (and for earlier
    document timestamps) into the DSS, then a document timestamp over the whole file.

    Run it after the last signature (leader, then agency), and again before the newest
    timestamp's certificate expires, to keep an archived document verifiable.
    """
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.signers.pdf_signer import PdfTimeStamper, TimestampDSSContentSettings
    from pyhanko.sign.validation import DocumentSecurityStore, collect_validation_info

    if not trust_roots:
        raise SigningError("signing.bad_option", "an archive timestamp needs trust roots")
    data = _read_input(pdf)
    reader = _open_reader(data)
    _check_not_locked(reader)
    roots = load_certificates(trust_roots)
    extra = load_certificates(extra_certs)
    vc = _validation_context(roots, extra, mode="require", timeout=network_timeout)
    try:
        with _signing_errors():
            paths = []
            for sig in reader.embedded_signatures:
                paths.extend(await collect_validation_info(sig, vc))
            writer = IncrementalPdfFileWriter.from_reader(reader)
            DocumentSecurityStore.supply_dss_in_writer(
                writer, None, paths=paths, validation_context=vc
            )
            out = io.BytesIO()
            await PdfTimeStamper(_timestamper(tsa_url, network_timeout)).async_timestamp_pdf(
                writer,
                "sha256",
                vc,
                output=out,
                dss_settings=TimestampDSSContentSettings(include_vri=False, update_before_ts=True),
            )
    finally:
        await vc.aclose()
    return _readable_output(out.getvalue())


def add_archive_timestamp_sync(
    pdf: bytes | Path,
    *,
    tsa_url: str,
    trust_roots: Sequence[Path],
    extra_certs: Sequence[Path] = (),
    network_timeout: float = 10.0,
) -> bytes:
    """:func:`add_archive_timestamp` for synchronous callers."""
    return asyncio.run(
        add_archive_timestamp(
            pdf,
            tsa_url=tsa_url,
            trust_roots=trust_roots,
            extra_certs=extra_certs,
            network_timeout=network_timeout,
        )
    )
