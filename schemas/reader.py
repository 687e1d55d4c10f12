"""The hardened streaming reader: bytes (or a file) to an lxml tree, safely, within limits.

No DTD, no entities, no network, no external resources of any kind; the input is fed in 1 MiB
chunks while depth and element count are counted, so a hostile document is refused before it
is whole in memory. The root must be ``{http://www.mic.gov.vn/TBT/QCVN_102_2016}edXML``.
Every refusal is a :class:`~schemas.errors.FormatError` (``xml.*``, ``edxml.namespace``,
``body.too_large``) with the line where it was found.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from typing import IO

from lxml import etree

from schemas.errors import FormatError

__all__ = ["DSIG_NS", "NS", "Limits", "Source", "read_xml"]

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

_CHUNK = 1 << 20  # bytes fed to the parser at a time; also the window scanned for a DOCTYPE


@dataclass(frozen=True)
class Limits:
    """Resource limits for one package."""

    max_bytes: int = 50 * 1024 * 1024
    max_depth: int = 64
    max_attachments: int = 100
    max_elements: int = 200_000


Source = bytes | bytearray | memoryview | str | os.PathLike


def read_xml(source: Source, limits: Limits = Limits()) -> etree._Element:  # noqa: B008
    """The root of ``source`` (``bytes`` are the document, ``str``/``PathLike`` a file path),
    read safely; raises :class:`FormatError`, or ``OSError`` if the file cannot be opened."""
    _check_source(source)
    return _read(source, limits)


class _NoExternal(etree.Resolver):
    """Defence in depth: any external resource libxml2 might want resolves to nothing."""

    def resolve(self, system_url, public_id, context):  # noqa: D102 (lxml API)
        return self.resolve_string("", context)


def _read(source: Source, limits: Limits) -> etree._Element:
    if isinstance(source, bytes | bytearray | memoryview):
        _check_size(memoryview(source).nbytes, limits)
        return _parse_stream(io.BytesIO(source), source, limits)
    with open(source, "rb") as stream:  # OSError here is the hub's problem, not the client's
        _check_size(os.fstat(stream.fileno()).st_size, limits)
        return _parse_stream(stream, source, limits)


def _check_source(source: Source) -> None:
    if isinstance(source, str) and source.lstrip().startswith("<"):
        raise TypeError("pass the XML as bytes; a str is a file path")


def _check_size(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise FormatError(
            "body.too_large",
            f"the package is {size} bytes; the limit is {limits.max_bytes}",
        )


def _parse_stream(stream: IO[bytes], source: Source, limits: Limits) -> etree._Element:
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=True,
        remove_comments=False,
    )
    parser.resolvers.add(_NoExternal())
    depth = elements = total = 0
    first = True
    try:
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
            _check_size(total, limits)
            if first and _prolog_has_doctype(chunk):
                raise _dtd_forbidden()
            first = False
            parser.feed(chunk)
            for event, element in parser.read_events():
                if event == "end":
                    depth -= 1
                    continue
                depth, elements = depth + 1, elements + 1
                if depth > limits.max_depth:
                    raise _too_deep(limits, element.sourceline)
                if elements > limits.max_elements:
                    raise FormatError(
                        "xml.too_many_elements",
                        f"the package has more than {limits.max_elements} elements",
                        line=element.sourceline,
                    )
        root = parser.close()
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, source, limits) from None
    except etree.LxmlError as exc:
        raise FormatError("xml.malformed", f"XML is not well-formed: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise _dtd_forbidden()
    if root.tag != f"{{{NS}}}edXML":
        qname = etree.QName(root)
        raise FormatError(
            "edxml.namespace",
            f"the root element is <{qname.localname}> in namespace "
            f"{qname.namespace or '(none)'}; expected <edXML> in namespace {NS}",
            field=qname.localname,
            line=root.sourceline,
        )
    return root


_PROLOG_SKIP = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.S)


def _prolog_has_doctype(head: bytes) -> bool:
    """True if a DOCTYPE comes before the root element in ``head`` (the first bytes)."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[:2] in (b"<\x00", b"\x00<"):
        codec = "utf-16-le" if head[:1] in (b"\xff", b"<") else "utf-16-be"
        head = head[: len(head) // 2 * 2].decode(codec, "ignore").lstrip("\ufeff").encode()
    pos = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    while match := _PROLOG_SKIP.match(head, pos):
        pos = match.end()
    # Undecided prologs (a comment longer than the window) fall through to the docinfo check.
    return head[pos : pos + 9].upper() == b"<!DOCTYPE"


def _dtd_forbidden() -> FormatError:
    return FormatError("xml.dtd_forbidden", "a DOCTYPE (DTD, entities) is not allowed in edXML")


def _too_deep(limits: Limits, line: int | None) -> FormatError:
    return FormatError(
        "xml.too_deep", f"elements are nested deeper than {limits.max_depth} levels", line=line
    )


_MISMATCH = re.compile(r"Opening and ending tag mismatch: (\S+) line (\d+) and (\S+)")


def _syntax_error(exc: etree.XMLSyntaxError, source: Source, limits: Limits) -> FormatError:
    line, column = exc.position if exc.position else (exc.lineno, 0)
    cause = re.sub(r", line \d+, column \d+$", "", exc.msg or str(exc)).strip()
    if "Excessive depth" in cause:
        return _too_deep(limits, line)
    if "amplification" in cause:
        return _dtd_forbidden()
    if not line:  # nothing parsed at all
        return FormatError("xml.malformed", f"XML is not well-formed: {cause}")
    message = f"XML is not well-formed at line {line}, column {column}: {cause}"
    if match := _MISMATCH.search(cause):
        opened = _qualified_name(source, int(match[2]), match[1])
        closing = _qualified_name(source, line, match[3], closing=True)
        message += f" (<{opened}> opened at line {match[2]} is not closed before </{closing}>)"
    return FormatError("xml.malformed", message, line=line)


def _qualified_name(source: Source, line: int, local: str, closing: bool = False) -> str:
    """The tag as written (``edXML:From``) at ``line`` of the source, or ``local``."""
    limit = 1 << 16
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            stream: IO[bytes] = io.BytesIO(source)
        else:
            stream = open(source, "rb")  # noqa: SIM115 (closed below)
        with stream:
            text, current = b"", 1
            for part in iter(lambda: stream.readline(limit), b""):
                if current == line and len(text) < limit:
                    text += part
                if part.endswith(b"\n"):
                    current += 1
                    if current > line:
                        break
        start = rb"</" if closing else rb"<"
        name = rb"((?:[\w.-]+:)?" + re.escape(local.encode()) + rb")[\s>/]"
        found = re.search(start + name, text)
        return found[1].decode() if found else local
    except (OSError, UnicodeError):
        return local
