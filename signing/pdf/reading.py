"""Opening a PDF the one way both the signer and the verifier do, so they accept the same files.

    reader = open_pdf(data)          # a strict pyHanko PdfFileReader, or UnreadablePdf
    reader = open_for_signing(data)  # the same, or the SigningError a clerk is shown

The signer used to read leniently (pyHanko's ``strict=False``) and the verifier strictly, so a
file could be signed and then fail verification: both now go through :func:`open_pdf`.

The reader is strict. pyHanko's non-strict mode is not an option for the verifier: it keeps the
first of duplicated dictionary keys (another viewer may show the last), turns dangling
references into null, skips the cross-reference consistency checks and allows signatures in
hybrid-reference files. A hostile file could then switch all of that off just by carrying one
harmless quirk.

One quirk is tolerated, because common tools write it and every mainstream reader accepts it:
the head of the free list, entry 0 of a classic cross-reference table, with a generation above
65535. Pillow (``Image.save(..., "PDF")``) writes ``0000000000 65536 f``; ISO 32000-1 7.5.4
says entry 0 "shall have a generation number of 65535", and no reference may ever use object 0,
so the number means nothing (pyHanko skips entry 0 in any case). pyHanko's strict mode has no
finer switch than all-or-nothing, so while the reader parses the cross-reference sections (in
its constructor) that five-digit field reads as ``65535``; every other strict check still runs,
and every later read (objects, the ``/ByteRange`` digests, an incremental writer copying the
file) sees the bytes exactly as they are. Should pyHanko ever read the table again later, it
would see the original number and refuse the file: the failure is closed, never open.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path

from pyhanko.pdf_utils.reader import PdfFileReader

from signing.errors import SigningError

__all__ = [
    "UnreadablePdf",
    "check_not_locked",
    "free_head_quirks",
    "open_for_signing",
    "open_pdf",
    "read_document",
    "readable_output",
]

_CANONICAL = b"65535"
# "xref", the first subsection starting at object 0, then entry 0: 10-digit offset, generation.
# (It starts with the literal, so the scan of a large file runs at memory speed.)
_FREE_HEAD = re.compile(
    rb"xref[ \t]*(?:\r\n|\r|\n)[ \t]*0[ \t]+\d+[ \t]*(?:\r\n|\r|\n)\d{10} (\d{5}) f"
)


class UnreadablePdf(ValueError):
    """The bytes are not a PDF that the signer and the verifier can read; ``str()`` says why."""


def free_head_quirks(data: bytes) -> list[int]:
    """Offsets of the generation fields of entry 0 above 65535 in classic xref tables."""
    return [
        m.start(1)
        for m in _FREE_HEAD.finditer(data)
        if int(m.group(1)) > int(_CANONICAL) and (m.start() == 0 or data[m.start() - 1] in b"\r\n")
    ]


class _CanonicalFreeHead(io.BytesIO):
    """The document's bytes; while ``canonical`` is set, the given 5-byte generation fields
    read as ``65535``. Only :func:`open_pdf` sets it, for the reader's constructor."""

    def __init__(self, data: bytes, fields: Sequence[int]) -> None:
        super().__init__(data)
        self._fields = tuple(fields)
        self.canonical = False

    def _fix(self, start: int, chunk: bytes) -> bytes:
        if not self.canonical or not chunk:
            return chunk
        end = start + len(chunk)
        patched: bytearray | None = None
        for field in self._fields:
            lo, hi = max(field, start), min(field + len(_CANONICAL), end)
            if lo < hi:
                patched = patched if patched is not None else bytearray(chunk)
                patched[lo - start : hi - start] = _CANONICAL[lo - field : hi - field]
        return chunk if patched is None else bytes(patched)

    def read(self, size: int | None = -1) -> bytes:
        start = self.tell()
        return self._fix(start, super().read(size))

    def read1(self, size: int | None = -1) -> bytes:
        start = self.tell()
        return self._fix(start, super().read1(size))

    def readline(self, size: int | None = -1) -> bytes:
        start = self.tell()
        return self._fix(start, super().readline(size))

    def readinto(self, buffer) -> int:  # type: ignore[override]
        start = self.tell()
        count = super().readinto(buffer)
        if self.canonical and count:
            view = memoryview(buffer).cast("B")
            view[:count] = self._fix(start, bytes(view[:count]))
        return count


def open_pdf(data: bytes) -> PdfFileReader:
    """A strict pyHanko reader over ``data`` (see the module docstring for the one tolerance).

    Raises :class:`UnreadablePdf` with pyHanko's reason when the file cannot be read. Whether
    it is encrypted, has pages or signatures is for the caller to check.
    """
    if b"%PDF-" not in data[:1024]:
        raise UnreadablePdf("not a PDF file (no %PDF- header)")
    quirks = free_head_quirks(data)
    if not quirks:  # the usual case: nothing to tolerate, no wrapper in the way
        try:
            return PdfFileReader(io.BytesIO(data), strict=True)
        except Exception as exc:  # noqa: BLE001 - a malformed file breaks the parser in many ways
            raise UnreadablePdf(_reason(exc)) from None
    stream = _CanonicalFreeHead(data, quirks)
    stream.canonical = True
    try:
        return PdfFileReader(stream, strict=True)
    except Exception as exc:  # noqa: BLE001
        raise UnreadablePdf(_reason(exc)) from None
    finally:
        stream.canonical = False


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


# ----- for the signer -------------------------------------------------------------------


def read_document(pdf: bytes | Path) -> bytes:
    """The bytes of ``pdf`` (bytes, or a file never modified); ``signing.pdf_invalid`` if not."""
    if isinstance(pdf, bytes | bytearray | memoryview):
        return bytes(pdf)
    try:
        return Path(pdf).read_bytes()
    except OSError as exc:
        raise SigningError("signing.pdf_invalid", f"cannot read {pdf}: {exc}") from None


def open_for_signing(data: bytes) -> PdfFileReader:
    """The strict reader the verifier uses too (:func:`open_pdf`), for a file about to be signed:
    a file the verifier could not read is refused here, before anything is signed."""
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


def check_not_locked(reader: PdfFileReader) -> None:
    """Refuse a document that no signature may be added to (``signing.pdf_locked``)."""
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


def readable_output(data: bytes) -> bytes:
    """``data``, once it is known to open the way the verifier opens it (never hand out a file
    that ``lienthong verify`` would call unreadable)."""
    try:
        open_pdf(data)
    except UnreadablePdf as exc:
        raise SigningError(
            "signing.failed", f"the signed file would not read back as a PDF: {exc}"
        ) from None
    return data
