"""One vetted fast path for PDF validation: hex strings read in chunks, not byte by byte.

pyHanko reads a hex string (``<…>``) one byte at a time; a signature's ``/Contents`` is 16-64 KB
of hex, about 20,000 Python calls per signature, most of a warm validation's time.
:func:`read_hex_string` reads the bytes up to the first ``>`` in chunks and, *only* when
everything before that ``>`` is hex digits and PDF white space, decodes them in one go: exactly
what pyHanko's byte loop computes for such input (white space skipped, an odd digit count padded
with ``0``, ``pdf_string`` on the result, the stream left just after the ``>``). Anything else (a
comment, a stray byte, no ``>`` before the end) rewinds the stream and calls pyHanko's own reader,
so every malformed string fails with pyHanko's own error.

Nothing happens at import. A process that validates documents installs it once, explicitly:

    install_fast_paths()        # the hub's worker initialiser, ``lienthong verify``, the batch
                                # runner, bench/verify.py; True when active

It replaces ``pyhanko.pdf_utils.generic.read_hex_string_from_stream`` (the one module-level
function pyHanko's object parser looks up at call time) only when pyHanko is a version this was
checked against (:data:`VETTED`) and its white space and hex digit sets are the ones expected;
otherwise nothing is replaced and validation runs pyHanko's code unchanged, only slower. Even
installed, the fast reader runs only inside :func:`fast_pdf_reading` (a context variable, so per
task and per thread: ``async_validate_pdf`` enters it); everywhere else pyHanko's reader runs.
"""

from __future__ import annotations

import binascii
import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, BinaryIO

__all__ = ["VETTED", "fast_pdf_reading", "fast_paths_installed", "install_fast_paths"]

#: The pyHanko versions the hex reader was checked against (version prefixes).
VETTED = ("0.38.",)

_PDF_WHITESPACE = b" \n\r\t\f\x00"  # pyhanko.pdf_utils.misc.PDF_WHITESPACE
_HEX_DIGITS = b"0123456789abcdefABCDEF"  # pyhanko.pdf_utils.generic.HEX_DIGITS
_NOT_HEX_BODY = re.compile(rb"[^0-9A-Fa-f \n\r\t\f\x00]")  # the first byte that ends the body
_CHUNK = 1 << 16
_ACTIVE: ContextVar[bool] = ContextVar("lienthong_fast_pdf_reading", default=False)
_LOCK = threading.Lock()


def read_hex_string(stream: BinaryIO, fallback: Callable[[BinaryIO], Any]) -> Any:
    """Read the hex string at ``stream``'s position as pyHanko does, in chunks.

    ``fallback`` is pyHanko's reader: it gets the stream back at its starting position whenever
    the string is anything but hex digits and white space up to a ``>``.
    """
    from pyhanko.pdf_utils import generic

    start = stream.tell()
    stream.read(1)  # the "<", skipped unread as pyHanko does
    parts: list[bytes] = []
    while chunk := stream.read(_CHUNK):
        stop = _NOT_HEX_BODY.search(chunk)
        if stop is None:
            parts.append(chunk)
            continue
        if chunk[stop.start()] != ord(">"):
            break  # a comment or a stray byte: pyHanko decides (and raises, or skips it)
        parts.append(chunk[: stop.start()])
        body = b"".join(parts)
        digits = body.translate(None, _PDF_WHITESPACE)
        if len(digits) % 2:
            digits += b"0"
        stream.seek(start + 1 + len(body) + 1)
        return generic.pdf_string(binascii.unhexlify(digits))
    stream.seek(start)  # no ">" before the end, or not plain hex: pyHanko's reader and error
    return fallback(stream)


@contextlib.contextmanager
def fast_pdf_reading() -> Iterator[None]:
    """Within this block (this task or thread only), hex strings are read by the fast reader,
    if :func:`install_fast_paths` installed it."""
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def fast_paths_installed() -> bool:
    """Whether the fast hex reader is installed in this process."""
    from pyhanko.pdf_utils import generic

    return bool(getattr(generic.read_hex_string_from_stream, "__lienthong_fast__", False))


def install_fast_paths() -> bool:
    """Install the fast hex reader if this pyHanko is vetted (idempotent, thread-safe).

    Returns whether it is active. Call it from process entry points, never from library code
    that merely validates: a process that does not call it runs pyHanko unchanged.
    """
    from importlib.metadata import PackageNotFoundError, version

    from pyhanko.pdf_utils import generic, misc

    with _LOCK:
        original = generic.read_hex_string_from_stream
        if getattr(original, "__lienthong_fast__", False):
            return True
        try:
            vetted = version("pyhanko").startswith(VETTED)
        except PackageNotFoundError:
            vetted = False
        if (
            not vetted
            or misc.PDF_WHITESPACE != _PDF_WHITESPACE
            or generic.HEX_DIGITS != _HEX_DIGITS
        ):
            return False  # not the reader this was checked against

        def read_hex_string_from_stream(stream):  # pyHanko's name and signature
            if _ACTIVE.get():
                return read_hex_string(stream, original)
            return original(stream)

        read_hex_string_from_stream.__lienthong_fast__ = True  # type: ignore[attr-defined]
        read_hex_string_from_stream.__wrapped__ = original  # type: ignore[attr-defined]
        read_hex_string_from_stream.__doc__ = original.__doc__
        generic.read_hex_string_from_stream = read_hex_string_from_stream
        return True
