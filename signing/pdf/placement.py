"""Where a signature goes on the page: an explicit box, an existing field or a text anchor, and
the geometry of the appearances of Decree 30/2020/NĐ-CP Appendix I.

* ``leader``: the handwritten-signature box, centred under the signer's title line;
* ``agency``: the red seal at its real size (36 mm by default), over the left third of the
  leader's signature, with the agency name and signing time beside it;
* ``attachment``: the document number and signing time at the top right of page 1.

All rectangles are ``(x1, y1, x2, y2)`` in PDF points, origin at the bottom left of the page.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MM",
    "TEXT_GAP",
    "AnchorPlacement",
    "BoxPlacement",
    "FieldPlacement",
    "Geometry",
    "Placement",
    "Rect",
    "agency_box",
    "attachment_box",
    "leader_box",
    "seal_box",
]

MM = 72 / 25.4
"""One millimetre in PDF points."""

Rect = tuple[float, float, float, float]
"""(x1, y1, x2, y2) in PDF points, origin at the bottom left of the page."""

TEXT_GAP = 3.0  # points between the seal and its text


@dataclass(frozen=True)
class BoxPlacement:
    """An explicit rectangle on ``page`` (1-based; -1 is the last page), in PDF points."""

    page: int
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class FieldPlacement:
    """Sign into the existing, empty signature field called ``name``."""

    name: str


@dataclass(frozen=True)
class AnchorPlacement:
    """Place relative to the last occurrence of ``text`` (e.g. the title line "BỘ TRƯỞNG").

    ``pages`` (1-based) limits the search; by default every page is searched, last page first.
    The leader's signature goes under the anchor's line, centred on it; the agency's seal goes
    over the left third of that leader box (or of the leader's signature widget already there).
    """

    text: str
    pages: tuple[int, ...] | None = None


Placement = BoxPlacement | FieldPlacement | AnchorPlacement


@dataclass(frozen=True)
class Geometry:
    """Sizes (PDF points) of the appearances; defaults follow common practice under Decree 30."""

    leader_width: float = 45 * MM
    leader_height: float = 20 * MM
    anchor_gap: float = 1.5 * MM  # between the title line and the top of the signature
    seal_diameter: float = 36 * MM  # "real size" of the agency seal
    seal_overlap: float = 1 / 3  # share of the leader's signature the seal covers, on its left
    agency_font_size: float = 7.0
    attachment_font_size: float = 9.0
    attachment_width: float = 80 * MM
    attachment_margin: float = 5 * MM  # from the top and right edges of page 1


def leader_box(line_box: Rect, anchor_box: Rect, geometry: Geometry = Geometry()) -> Rect:
    """The leader's signature box: under the anchor, centred on the anchor's whole line."""
    cx = (line_box[0] + line_box[2]) / 2
    top = anchor_box[1] - geometry.anchor_gap
    w, h = geometry.leader_width, geometry.leader_height
    return (cx - w / 2, top - h, cx + w / 2, top)


def seal_box(leader: Rect, g: Geometry = Geometry()) -> Rect:
    """The seal over the left third of ``leader``: its right edge at ``seal_overlap`` of the
    leader box's width from the box's left edge, vertically centred on the box."""
    d = g.seal_diameter
    right = leader[0] + (leader[2] - leader[0]) * g.seal_overlap
    cy = (leader[1] + leader[3]) / 2
    return (right - d, cy - d / 2, right, cy + d / 2)


def agency_box(
    leader: Rect, text_width: float, text_height: float, g: Geometry = Geometry()
) -> Rect:
    """The agency widget: :func:`seal_box` plus, on its left, room for the text block
    (agency name and signing time), vertically centred on the seal."""
    x1, y1, x2, y2 = seal_box(leader, g)
    extra = max(0.0, (text_height - (y2 - y1)) / 2)
    return (x1 - text_width - TEXT_GAP, y1 - extra, x2, y2 + extra)


def attachment_box(page_box: Rect, text_height: float, g: Geometry = Geometry()) -> Rect:
    """Top right of the page, ``attachment_margin`` from both edges."""
    x2 = page_box[2] - g.attachment_margin
    y2 = page_box[3] - g.attachment_margin
    return (x2 - g.attachment_width, y2 - text_height - 4, x2, y2)
