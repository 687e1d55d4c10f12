"""What a signature shows (Decree 30/2020/NĐ-CP Appendix I) and how it is drawn.

* ``leader``: the handwritten-signature image (PNG, transparent, blue);
* ``agency``: the red seal image at its real size, with the agency name and signing time
  (``hh:mm:ss dd/mm/yyyy``, +07:00) in small black text beside or under it;
* ``attachment``: no image; the document number/notation and signing time.

Text is set in DejaVu Sans (configurable), embedded as a subset. pyHanko's OpenType support
(``GlyphAccumulator``) writes glyph widths in font units as if every font had 1000 units per em;
DejaVu has 2048, which doubles the spacing of every glyph. So the font is first subset to the
characters needed and rescaled to 1000 units/em with fontTools (:class:`FontProgram`), then
handed to ``GlyphAccumulator``.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.content import ResourceType
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp import BaseStamp, BaseStampStyle

from signing.errors import SigningError
from signing.pdf.placement import TEXT_GAP

if TYPE_CHECKING:
    from PIL import Image
    from pyhanko.pdf_utils.font.opentype import GlyphAccumulator

__all__ = [
    "VN_TZ",
    "Appearance",
    "FontProgram",
    "OfficialStampStyle",
    "Role",
    "default_font_path",
    "format_signing_time",
    "load_png",
]

VN_TZ = timezone(timedelta(hours=7), "+07:00")
"""Vietnam's time zone (no daylight saving)."""


FONT_ENV = "LIENTHONG_SIGNATURE_FONT"
DEBIAN_DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGE_SIDE = 1200  # pixels kept: 36 mm at ~850 dpi, plenty for print


Role = Literal["leader", "agency", "attachment"]


def default_font_path() -> Path:
    """``$LIENTHONG_SIGNATURE_FONT`` or Debian's DejaVu Sans (package fonts-dejavu-core)."""
    return Path(os.environ.get(FONT_ENV) or DEBIAN_DEJAVU)


def format_signing_time(when: datetime) -> str:
    """``hh:mm:ss dd/mm/yyyy +07:00`` in Vietnam time (Decree 30/2020 Appendix I)."""
    if when.tzinfo is None:
        raise ValueError("the signing time must be timezone-aware")
    return when.astimezone(VN_TZ).strftime("%H:%M:%S %d/%m/%Y +07:00")


@dataclass(frozen=True)
class FontProgram:
    """A TrueType subset at 1000 units/em, ready for pyHanko's ``GlyphAccumulator``."""

    data: bytes
    advances: dict[str, int] = field(repr=False)  # char -> advance width (1/1000 em)
    ascent: float = 0.93
    descent: float = 0.24

    @classmethod
    def load(cls, path: Path, chars: str) -> FontProgram:
        """Subset the font at ``path`` to ``chars`` (plus space); fail clearly if it can't."""
        return _load_font(str(path), "".join(sorted(set(chars) | {" "})))

    def width(self, text: str, size: float) -> float:
        """Advance width of ``text`` at ``size`` points (no kerning: fine for layout)."""
        return sum(self.advances.get(c, 500) for c in text) * size / 1000

    def wrap(self, text: str, width: float, size: float) -> list[str]:
        """Greedy word wrap of one paragraph to ``width`` points."""
        lines: list[str] = []
        current = ""
        for word in text.split():
            trial = f"{current} {word}" if current else word
            if current and self.width(trial, size) > width:
                lines.append(current)
                current = word
            else:
                current = trial
        if current:
            lines.append(current)
        return lines or [""]

    def engine(self, writer: BasePdfFileWriter, size: float) -> GlyphAccumulator:
        """A pyHanko font engine that embeds this program (subset again on write) in ``writer``."""
        from pyhanko.pdf_utils.font.opentype import GlyphAccumulator  # fontTools: on first use

        return GlyphAccumulator(writer=writer, font_handle=io.BytesIO(self.data), font_size=size)


@functools.lru_cache(maxsize=64)
def _load_font(path: str, chars: str) -> FontProgram:
    from fontTools import subset, ttLib
    from fontTools.ttLib.scaleUpem import scale_upem

    if not Path(path).is_file():
        raise SigningError(
            "signing.font_missing",
            f"font file {path} not found: install fonts-dejavu-core or set {FONT_ENV}",
        )
    try:
        font = ttLib.TTFont(path)
        cmap = font.getBestCmap() or {}
        missing = sorted({c for c in chars if not c.isspace() and ord(c) not in cmap})
        if missing:
            raise SigningError(
                "signing.font_invalid",
                f"font {path} has no glyph for {''.join(missing)!r}",
            )
        if "FFTM" in font:
            del font["FFTM"]  # FontForge timestamps: fontTools can't subset them (and warns)
        options = subset.Options()
        options.hinting = False  # hinting programs don't survive rescaling
        options.layout_features = ["*"]
        options.name_IDs = ["*"]
        options.notdef_outline = True
        subsetter = subset.Subsetter(options)
        subsetter.populate(text=chars)
        subsetter.subset(font)
        if font["head"].unitsPerEm != 1000:
            scale_upem(font, 1000)
        cmap = font.getBestCmap() or {}
        metrics = font["hmtx"].metrics
        advances = {c: metrics[cmap[ord(c)]][0] for c in chars if ord(c) in cmap}
        hhea = font["hhea"]
        out = io.BytesIO()
        font.save(out)
    except SigningError:
        raise
    except Exception as exc:  # fontTools raises many kinds on a bad file
        raise SigningError("signing.font_invalid", f"cannot use font {path}: {exc}") from None
    return FontProgram(out.getvalue(), advances, hhea.ascent / 1000, -hhea.descent / 1000)


def load_png(image: Path | bytes, what: str = "image") -> Image.Image:
    """Open a PNG (path or bytes) as an RGBA/LA/L Pillow image; ``signing.image_invalid`` if not.

    Transparent margins are trimmed (the seal is drawn at its real size, edge to edge), and
    large images are scaled down to at most 1200 pixels a side (they are shown a few cm wide).
    """
    from PIL import Image

    if isinstance(image, Path | str):
        path = Path(image)
        if not path.is_file():
            raise SigningError("signing.image_invalid", f"no {what} file at {path}")
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise SigningError("signing.image_invalid", f"the {what} {path.name} is over 5 MB")
        data = path.read_bytes()
        name = path.name
    else:
        data = bytes(image)
        name = f"the {what}"
    if len(data) > MAX_IMAGE_BYTES:
        raise SigningError("signing.image_invalid", f"{name} is over 5 MB")
    if not data.startswith(PNG_MAGIC):
        raise SigningError("signing.image_invalid", f"{name} is not a PNG image")
    try:
        img = Image.open(io.BytesIO(data), formats=["PNG"])
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise SigningError(
            "signing.image_invalid", f"{name} is not a readable PNG: {exc}"
        ) from None
    try:
        if img.mode not in ("RGBA", "LA"):
            has_alpha = "transparency" in img.info or img.mode in ("PA",)
            img = img.convert("RGBA" if has_alpha or img.mode not in ("L", "1") else "L")
    except ValueError as exc:
        raise SigningError("signing.image_invalid", f"{name}: unsupported PNG: {exc}") from None
    if img.mode in ("RGBA", "LA"):
        # Trim transparent margins, so that "real size" is the size of the seal itself.
        bbox = img.getchannel("A").getbbox()
        if bbox is None:
            raise SigningError("signing.image_invalid", f"{name} is fully transparent")
        img = img.crop(bbox)
    if max(img.size) > MAX_IMAGE_SIDE:
        img.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    return img


@dataclass(frozen=True)
class Appearance:
    """What one signature shows: image and/or text lines (already wrapped to the box)."""

    role: Role
    font: FontProgram | None
    lines: tuple[str, ...] = ()
    image: object | None = None  # a Pillow image
    font_size: float = 7.0
    max_image_size: float | None = None  # the seal is never drawn larger than its real size
    text_side: Literal["left", "below"] = "left"  # where an image's text goes

    @property
    def leading(self) -> float:
        return self.font_size * 1.25

    @property
    def text_height(self) -> float:
        return len(self.lines) * self.leading

    def text_width(self) -> float:
        """The width of the widest text line, in points."""
        if not self.lines or self.font is None:
            return 0.0
        return max(self.font.width(line, self.font_size) for line in self.lines)


@dataclass(frozen=True)
class OfficialStampStyle(BaseStampStyle):
    """pyHanko stamp style drawing an :class:`Appearance` (no border, no background)."""

    appearance: Appearance | None = None
    border_width: int = 0

    def create_stamp(
        self, writer: BasePdfFileWriter, box: layout.BoxConstraints, text_params: dict
    ) -> OfficialStamp:
        """The stamp pyHanko draws into the signature widget."""
        return OfficialStamp(writer=writer, style=self, box=box)


class OfficialStamp(BaseStamp):
    """Renders image and text into the signature widget's appearance stream."""

    style: OfficialStampStyle

    def _image_ops(self, img, x: float, y: float, w: float, h: float) -> bytes:
        from pyhanko.pdf_utils.images import pil_image

        ref = pil_image(img, self.writer)
        name = "/Im0"
        self.set_resource(category=ResourceType.XOBJECT, name=pdf_name(name), value=ref)
        return b"q %.3f 0 0 %.3f %.3f %.3f cm %s Do Q" % (w, h, x, y, name.encode())

    def _text_ops(self, spec: Appearance, x: float, top: float, width: float, align: str):
        assert spec.font is not None
        engine = spec.font.engine(self.writer, spec.font_size)
        self.set_resource(
            category=ResourceType.FONT, name=pdf_name("/F1"), value=engine.as_resource()
        )
        ops = [b"q 0 0 0 rg"]
        baseline = top - spec.font_size * spec.font.ascent
        for line in spec.lines:
            free = width - spec.font.width(line, spec.font_size)
            lx = x + {"left": 0.0, "center": free / 2, "right": free}[align]
            shaped = engine.shape(line).graphics_ops
            ops.append(
                b"BT /F1 %.2f Tf 1 0 0 1 %.3f %.3f Tm %s ET"
                % (spec.font_size, lx, baseline, shaped)
            )
            baseline -= spec.leading
        ops.append(b"Q")
        return b" ".join(ops)

    def _render_inner_content(self) -> list[bytes]:
        spec = self.style.appearance
        assert spec is not None
        w, h = self.box.width, self.box.height
        text_h, text_w = spec.text_height, spec.text_width()
        if spec.image is None:
            if not spec.lines:
                return []
            top = h - max(0.0, (h - text_h) / 2)
            return [self._text_ops(spec, 2, top, w - 4, "left")]
        img = spec.image
        beside = bool(spec.lines) and spec.text_side == "left"
        area_w = w - (text_w + TEXT_GAP if beside else 0)
        area_h = h - (text_h if spec.lines and not beside else 0)
        scale = min(area_w / img.width, area_h / img.height)
        if spec.max_image_size is not None:
            scale = min(scale, spec.max_image_size / max(img.width, img.height))
        iw, ih = img.width * scale, img.height * scale
        if not spec.lines:  # the leader's signature: centred
            return [self._image_ops(img, (w - iw) / 2, (h - ih) / 2, iw, ih)]
        if beside:  # the seal at the right, its text right-aligned on its left
            ops = [self._image_ops(img, w - iw, (h - ih) / 2, iw, ih)]
            text_x = w - iw - TEXT_GAP - text_w
            ops.append(self._text_ops(spec, text_x, (h + text_h) / 2, text_w, "right"))
            return ops
        ops = [self._image_ops(img, (w - iw) / 2, h - ih, iw, ih)]
        ops.append(self._text_ops(spec, 0, h - ih - 1, w, "center"))
        return ops
