"""Attachments' ``ContentTransferEncoded``: strict base64, decoded in chunks.

Strict means what ``base64.b64decode(text, validate=True)`` accepts once ASCII whitespace is
removed: only the base64 alphabet, ``=`` padding at the very end, a length that is a multiple of
four. Decoding goes 1 MiB of text at a time, so a 50 MB attachment is never copied whole again.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator

from lxml import etree

from schemas.errors import FormatError
from schemas.tree import child_text, q

__all__ = ["Base64Error", "decode_base64", "decode_content"]

_B64_CHUNK = 1 << 20  # characters of base64 decoded at a time
_ASCII_WS = b" \t\r\n\x0b\x0c"


class Base64Error(ValueError):
    """Text that is not strict base64; the message says why and, for a bad character, where."""


def decode_base64(text: str, chunk: int = _B64_CHUNK) -> Iterator[bytes]:
    """Decode ``text`` as strict base64 (ASCII whitespace ignored), ``chunk`` characters at a
    time; raises :class:`Base64Error` when the bad part is reached."""
    carry, padded = b"", False
    for start in range(0, len(text), chunk):
        piece = text[start : start + chunk]
        try:
            data = carry + piece.encode("ascii").translate(None, _ASCII_WS)
        except UnicodeEncodeError:
            raise _bad_character(piece, start) from None
        if padded and data:
            raise Base64Error("data after the '=' padding")
        cut = len(data) - len(data) % 4
        carry, block = data[cut:], data[:cut]
        if block:
            try:
                yield binascii.a2b_base64(block, strict_mode=True)
            except binascii.Error as exc:
                raise (_bad_character(piece, start) or Base64Error(str(exc).lower())) from None
            padded = block.endswith(b"=")
    if carry:
        raise Base64Error("data after the '=' padding" if padded else "length not a multiple of 4")


def _bad_character(piece: str, start: int) -> Base64Error | None:
    # Only looked for once decoding failed: the happy path does not scan twice.
    bad = re.search(r"[^A-Za-z0-9+/=\s]", piece)
    return Base64Error(f"character {bad[0]!r} at offset {start + bad.start()}") if bad else None


def decode_content(attachment: etree._Element) -> Iterator[bytes]:
    """The decoded bytes of an ``Attachment`` element, in chunks; ``edxml.base64`` names the
    attachment's ContentId and the line when the text is not strict base64."""
    cid = child_text(attachment, "ContentId")
    encoded = attachment.find(q("ContentTransferEncoded"))
    # .text is one copy of the (possibly 50 MB) node; string() only if comments split the text.
    text = (encoded.text or "") if len(encoded) == 0 else str(encoded.xpath("string()"))
    try:
        yield from decode_base64(text)
    except Base64Error as exc:
        raise FormatError(
            "edxml.base64",
            f"attachment {cid!r}: ContentTransferEncoded is not valid base64 ({exc})",
            field="ContentTransferEncoded",
            line=encoded.sourceline,
        ) from None
