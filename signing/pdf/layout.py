"""Where a signature goes in *this* document and what it shows there: the field, the page and
the rectangle, from a :class:`~signing.pdf.placement.Placement` and the document itself.

* :class:`~signing.pdf.placement.BoxPlacement`: the rectangle as given (``page`` 1-based, -1 the
  last page).
* :class:`~signing.pdf.placement.FieldPlacement`: an existing empty signature field
  (``signing.field_not_found``, ``signing.field_signed``).
* :class:`~signing.pdf.placement.AnchorPlacement`: the last occurrence of the text, searching from
  the last page (:mod:`signing.pdf.anchor`); the leader's box goes under the anchor, centred on
  its whole line; the agency's seal over the left third of the leader's signature widget if one
  is there, else of where the leader's box would be.
* none: only for ``attachment`` (top right of page 1).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader

from signing.errors import SigningError
from signing.keys import KeyHandle
from signing.pdf.anchor import TextHit, find_text_in_bytes
from signing.pdf.appearance import (
    Appearance,
    FontProgram,
    default_font_path,
    format_signing_time,
    load_png,
)
from signing.pdf.options import FIELD_PREFIX, SignOptions
from signing.pdf.placement import (
    AnchorPlacement,
    BoxPlacement,
    FieldPlacement,
    Rect,
    agency_box,
    attachment_box,
    leader_box,
)

__all__ = ["Target", "appearance_for", "resolve_target"]


@dataclass(frozen=True)
class Target:
    """The signature field to fill (``existing``) or to create on ``page`` (0-based) at ``rect``."""

    field_name: str
    existing: bool
    page: int = 0
    rect: Rect | None = None


async def resolve_target(
    options: SignOptions, reader: PdfFileReader, data: bytes, key: KeyHandle, when: datetime
) -> tuple[Target, Appearance]:
    """Where the signature goes and what it shows, for ``options`` in this document."""
    placement = options.placement
    fields = _sig_fields(reader)
    taken = {name for name, _, _ in fields}
    if isinstance(placement, FieldPlacement):
        rect = _in_field(placement, fields, taken)
        return Target(placement.name, True), appearance_for(options, key, when, rect)
    name = options.field_name or _unique_name(FIELD_PREFIX[options.role], taken)
    if name in taken:
        raise SigningError("signing.bad_option", f"a field named {name!r} already exists")
    if isinstance(placement, BoxPlacement):
        page, rect = _in_box(placement, _page_count(reader))
        return Target(name, False, page, rect), appearance_for(options, key, when, rect)
    appearance = appearance_for(options, key, when, None)
    if isinstance(placement, AnchorPlacement):
        page, rect = await _at_anchor(placement, options, reader, data, appearance)
        return Target(name, False, page, rect), appearance
    # no placement: the attachment's top right corner of page 1
    rect = attachment_box(_page_box(reader, 0), appearance.text_height, options.geometry)
    return Target(name, False, 0, rect), appearance


def _in_field(placement: FieldPlacement, fields: list, taken: set[str]) -> Rect | None:
    """The widget rectangle of the existing, empty signature field ``placement`` names."""
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
    return _field_rect(ref)


def _in_box(placement: BoxPlacement, count: int) -> tuple[int, Rect]:
    """The page index and the (normalised) rectangle of an explicit box."""
    index = _page_index(placement.page, count)
    rect = (
        min(placement.x1, placement.x2),
        min(placement.y1, placement.y2),
        max(placement.x1, placement.x2),
        max(placement.y1, placement.y2),
    )
    if rect[2] - rect[0] < 1 or rect[3] - rect[1] < 1:
        raise SigningError("signing.bad_option", f"the box {rect} is empty")
    return index, rect


async def _at_anchor(
    placement: AnchorPlacement,
    options: SignOptions,
    reader: PdfFileReader,
    data: bytes,
    appearance: Appearance,
) -> tuple[int, Rect]:
    """The page index and rectangle for the role, relative to the anchor text."""
    g, count = options.geometry, _page_count(reader)
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
    if options.role == "leader":
        return hit.page, leader
    if options.role == "agency":
        # Over the leader's actual signature when it is there, else where it would be.
        widgets = sorted(_signature_widgets(reader, hit.page), key=lambda r: _overlap(r, leader))
        if widgets and _overlap(widgets[-1], leader) > 0:
            leader = widgets[-1]
        return hit.page, agency_box(leader, appearance.text_width(), appearance.text_height, g)
    # attachment under an anchor: the text box under the anchor's line
    cx = (line[0] + line[2]) / 2
    w, h = g.attachment_width, appearance.text_height + 4
    top = found[1] - g.anchor_gap
    return hit.page, (cx - w / 2, top - h, cx + w / 2, top)


def appearance_for(
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


def _unique_name(prefix: str, taken: set[str]) -> str:
    for n in range(1, 1000):  # ChuKyLanhDao1, ChuKyLanhDao2, ...
        name = f"{prefix}{n}"
        if name not in taken:
            return name
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _page_count(reader) -> int:
    return int(reader.root["/Pages"]["/Count"])


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


def _shift(box: Rect, dx: float, dy: float) -> Rect:
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)
