"""Official-looking Vietnamese test documents, written with pyHanko's own PDF writer.

The layout follows Decree 30/2020 Appendix I in broad strokes: agency name and national motto on
top, number/notation and place-date line, a title, body text, then the "Nơi nhận" list on the
left and the signer's title line (``BỘ TRƯỞNG, CHỦ NHIỆM``) with the signer's name under a gap
for the signature on the right of the last page. DejaVu Sans is embedded (subset, with a
ToUnicode map) so that poppler's text extraction finds the Vietnamese words; it goes through
:class:`signing.pdf.appearance.FontProgram`, which rescales it to the 1000 units/em pyHanko assumes.

    data = official_document(pages=50)
    data = official_document(sig_field=("ChuKyLanhDao", (330, 150, 520, 230)))
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

from signing.pdf.appearance import FontProgram

__all__ = [
    "A4",
    "FONT_DIR",
    "LAYOUT",
    "VIETNAMESE",
    "Layout",
    "official_document",
    "pillow_pdf",
    "seal_png",
    "signature_png",
]

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
A4 = (595.28, 841.89)
VIETNAMESE = (
    "".join(chr(c) for c in range(32, 127))
    + "ÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝàáâãèéêìíòóôõùúýĂăĐđĨĩŨũƠơƯư"
    + "".join(chr(c) for c in range(0x1EA0, 0x1EFA))
)


@dataclass(frozen=True)
class Layout:
    """Where the signature block of the last page goes (PDF points, origin bottom left)."""

    left: float = 70.0
    right: float = 560.0
    signer_column_center: float = 430.0
    title_line_y: float = 250.0  # baseline of the title line "BỘ TRƯỞNG, CHỦ NHIỆM"
    name_y: float = 150.0  # baseline of the signer's name


LAYOUT = Layout()

BODY = (
    "Căn cứ Luật Giao dịch điện tử ngày 22 tháng 6 năm 2023; căn cứ Nghị định số "
    "30/2020/NĐ-CP ngày 05 tháng 3 năm 2020 của Chính phủ về công tác văn thư; căn cứ Thông tư "
    "số 15/2025/TT-BKHCN quy định danh mục tiêu chuẩn bắt buộc áp dụng về chữ ký số và dịch vụ "
    "chứng thực chữ ký số. Các cơ quan, tổ chức thực hiện gửi, nhận văn bản điện tử qua Trục "
    "liên thông văn bản quốc gia; "
    "văn bản điện tử được ký số bởi người có thẩm quyền và ký số của cơ quan, tổ chức theo đúng "
    "quy định, bảo đảm tính xác thực, toàn vẹn và chống chối bỏ. Văn thư cơ quan có trách nhiệm "
    "kiểm tra tính hợp lệ của văn bản đến, đăng ký và trình người có thẩm quyền xử lý trong ngày."
)


class _Page:
    """A page's content stream under construction."""

    def __init__(self, fonts: dict[str, GlyphAccumulator]) -> None:
        self.fonts = fonts
        self.ops: list[bytes] = []
        self._widths: dict[tuple[str, str], float] = {}

    def width(self, text: str, font: str = "F1", size: float = 13) -> float:
        key = (font, text)
        if key not in self._widths:
            self._widths[key] = self.fonts[font].shape(text, with_actual_text=False).x_advance
        return self._widths[key] * size

    def text(self, x: float, y: float, text: str, font: str = "F1", size: float = 13) -> None:
        engine = self.fonts[font]
        engine.font_size = size
        shaped = engine.shape(text, with_actual_text=False).graphics_ops
        tf = b"/%s %g Tf" % (font.encode(), size)
        self.ops.append(b"BT %s 1 0 0 1 %g %g Tm %s ET" % (tf, x, y, shaped))

    def centered(self, cx: float, y: float, text: str, font: str = "F1", size: float = 13) -> float:
        width = self.width(text, font, size)
        self.text(cx - width / 2, y, text, font, size)
        return width

    def rule(self, x1: float, y1: float, x2: float, y2: float, width: float = 0.6) -> None:
        self.ops.append(b"%g w %g %g m %g %g l S" % (width, x1, y1, x2, y2))

    def wrap(self, text: str, width: float, size: float = 13) -> list[str]:
        """Greedy word wrap to ``width`` points."""
        lines: list[str] = []
        line: list[str] = []
        for word in text.split():
            if line and self.width(" ".join([*line, word]), "F1", size) > width:
                lines.append(" ".join(line))
                line = [word]
            else:
                line.append(word)
        if line:
            lines.append(" ".join(line))
        return lines

    def paragraph(
        self, x: float, y: float, lines: list[str], size: float = 13, leading: float = 18
    ) -> float:
        """Draw wrapped ``lines``; returns the baseline after the last one."""
        for line in lines:
            self.text(x, y, line, "F1", size)
            y -= leading
        return y


def _header(page: _Page, number: str, agency: str, annex: bool) -> float:
    left_c, right_c = 170.0, 410.0
    if annex:
        page.centered(297, 770, "PHỤ LỤC", "F2", 14)
        page.centered(297, 752, "DANH SÁCH CƠ QUAN THỰC HIỆN GỬI, NHẬN VĂN BẢN ĐIỆN TỬ", "F2", 12)
        page.centered(297, 735, f"(Kèm theo Quyết định số {number})", "F3", 12.5)
        return 700.0
    page.centered(left_c, 790, agency, "F2", 12)
    page.rule(left_c - 30, 783, left_c + 30, 783)
    page.centered(right_c, 790, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "F2", 11.5)
    w = page.centered(right_c, 774, "Độc lập - Tự do - Hạnh phúc", "F2", 12.5)
    page.rule(right_c - w / 2, 767, right_c + w / 2, 767)
    page.centered(left_c, 750, f"Số: {number}", "F1", 12.5)
    page.centered(right_c, 750, "Hà Nội, ngày 12 tháng 5 năm 2025", "F3", 12.5)
    page.centered(297, 712, "QUYẾT ĐỊNH", "F2", 14)
    page.centered(297, 695, "Về việc ban hành Quy chế gửi, nhận văn bản điện tử", "F2", 13)
    page.rule(257, 686, 337, 686)
    return 660.0


def _signature_block(page: _Page, title_line: str, signer_name: str, layout: Layout) -> None:
    page.text(layout.left, layout.title_line_y + 12, "Nơi nhận:", "F4", 12)
    for i, item in enumerate(("- Như Điều 3;", "- Các bộ, cơ quan ngang bộ;", "- Lưu: VT, TCCB.")):
        page.text(layout.left, layout.title_line_y - 2 - 13 * i, item, "F1", 11)
    cx = layout.signer_column_center
    page.centered(cx, layout.title_line_y, title_line, "F2", 13)
    page.centered(cx, layout.name_y, signer_name, "F2", 13)


def official_document(
    pages: int = 1,
    *,
    number: str = "123/QĐ-VPCP",
    agency: str = "VĂN PHÒNG CHÍNH PHỦ",
    title_line: str = "BỘ TRƯỞNG, CHỦ NHIỆM",
    signer_name: str = "Trần Thị Bình",
    sig_field: tuple[str, tuple[float, float, float, float]] | None = None,
    encrypt_with: str | None = None,
    annex: bool = False,
    layout: Layout = LAYOUT,
) -> bytes:
    """A Decree 30-style decision of ``pages`` A4 pages; the signature block is on the last page.

    ``annex`` makes it an attachment instead ("PHỤ LỤC ... Kèm theo Quyết định số ...", no
    signature block). ``sig_field`` adds an empty signature field (name, box) on the last page;
    ``encrypt_with`` encrypts the file with that user password.
    """
    writer = PdfFileWriter(stream_xrefs=False)
    fonts = {
        name: FontProgram.load(FONT_DIR / file, VIETNAMESE).engine(writer, 13)
        for name, file in (
            ("F1", "DejaVuSans.ttf"),
            ("F2", "DejaVuSans-Bold.ttf"),
            ("F3", "DejaVuSans-Oblique.ttf"),
            ("F4", "DejaVuSans-BoldOblique.ttf"),
        )
    }
    for engine in fonts.values():
        engine.shape(" ")  # pyHanko can't write a font subset with no glyph at all
    font_dict = generic.DictionaryObject(
        {pdf_name(f"/{name}"): engine.as_resource() for name, engine in fonts.items()}
    )
    resources = writer.add_object(generic.DictionaryObject({pdf_name("/Font"): font_dict}))
    text_width = layout.right - layout.left
    for index in range(pages):
        page = _Page(fonts)
        last = index == pages - 1
        y = _header(page, number, agency, annex) if index == 0 else 790.0
        floor = layout.title_line_y + 30 if last and not annex else 70.0
        article = index * 3
        lines = page.wrap(BODY, text_width - 58)
        while (room := int((y - floor) // 18)) >= 3:
            article += 1
            page.text(layout.left, y, f"Điều {article}.", "F2", 13)
            y = page.paragraph(layout.left + 58, y, lines[:room]) - 6
        if last and not annex:
            _signature_block(page, title_line, signer_name, layout)
        page.centered(297, 40, f"{index + 1}/{pages}", "F1", 10)
        content = writer.add_object(generic.StreamObject(stream_data=b"\n".join(page.ops)))
        page_obj = PageObject(contents=content, media_box=(0, 0, *A4), resources=resources)
        writer.insert_page(page_obj)
    if sig_field is not None:
        from pyhanko.sign.fields import SigFieldSpec, append_signature_field

        name, box = sig_field
        append_signature_field(
            writer, SigFieldSpec(name, on_page=pages - 1, box=tuple(int(v) for v in box))
        )
    if encrypt_with is not None:
        writer.encrypt(owner_pass=encrypt_with + "-owner", user_pass=encrypt_with)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "document.pdf")
    target.write_bytes(official_document(int(sys.argv[2]) if len(sys.argv) > 2 else 1))
    print(target)


# ----- test images -----------------------------------------------------------------------


def signature_png() -> bytes:
    """A blue handwritten-looking signature (looped cursive and a flourish), transparent."""
    img = Image.new("RGBA", (600, 260), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    blue = (18, 42, 160, 255)
    # a prolate cycloid makes loops like joined-up handwriting
    loops = [
        (70 + 13 * t - 30 * math.sin(t), 125 - (34 + 3 * t) * math.cos(t) * 0.8)
        for t in (i / 10 for i in range(0, 300))
    ]
    draw.line(loops, fill=blue, width=6, joint="curve")
    flourish = [(60 + 4.6 * i, 205 - 50 * math.sin(i / 32) - 0.12 * i) for i in range(105)]
    draw.line(flourish, fill=blue, width=5, joint="curve")
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()


def seal_png(text: str = "VĂN PHÒNG CHÍNH PHỦ") -> bytes:
    """A red round seal: two rings, the agency name around, a star in the middle."""
    size, red = 600, (205, 22, 32, 235)
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((8, 8, size - 8, size - 8), outline=red, width=16)
    draw.ellipse((150, 150, size - 150, size - 150), outline=red, width=7)
    draw.regular_polygon((size / 2, size / 2, 85), 5, fill=red, rotation=0)
    font = ImageFont.truetype(str(FONT_DIR / "DejaVuSans-Bold.ttf"), 56)
    step = 270 / len(text)
    for i, char in enumerate(text):
        angle = -135 + step * (i + 0.5)  # degrees, 0 = top
        glyph = Image.new("RGBA", (80, 80), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((40, 40), char, font=font, fill=red, anchor="mm")
        glyph = glyph.rotate(-angle, resample=Image.BICUBIC)
        r = 218
        x = size / 2 + r * math.sin(math.radians(angle)) - 40
        y = size / 2 - r * math.cos(math.radians(angle)) - 40
        img.alpha_composite(glyph, (int(x), int(y)))
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()


def pillow_pdf(size: tuple[int, int] = (595, 842)) -> bytes:
    """A one-page PDF as Pillow writes it (a scanned page, in effect): its cross-reference table
    gives entry 0 generation 65536 (``0000000000 65536 f``), where ISO 32000 says 65535."""
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).rectangle((40, 40, size[0] - 40, 120), outline="black", width=3)
    out = io.BytesIO()
    img.save(out, "PDF", resolution=72.0)
    return out.getvalue()
