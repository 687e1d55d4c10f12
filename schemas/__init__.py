"""The edXML wire format (QCVN 102:2016): read, check, model and build packages.

    parsed = read_package(data)                 # one hardened parse, XSD and rules
    parsed.package.sender.organ_id, parsed.package.recipients
    for attachment, content in parsed.attachments(): ...
    data = build_document(sender=..., recipients=[...], ...)

Depends on lxml only. Every refusal is a :class:`FormatError` with a stable code, the field and
the line; an organ id that cannot be understood is an :class:`OrganIdError`, which is also a
``ValueError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from schemas.build import (
    VN_TZ,
    build_document,
    build_replacement,
    build_revocation,
    build_status,
    build_update,
)
from schemas.business import (
    Business,
    BusinessDocType,
    BusinessDocumentInfo,
    Receiver,
    Replacement,
    StaffInfo,
)
from schemas.errors import FormatError
from schemas.model import (
    Attachment,
    Package,
    ParsedPackage,
    Party,
    ResponseFor,
    Trace,
    package_model,
)
from schemas.organ import GovLevel, OrganId, OrganIdError, normalise
from schemas.reader import DSIG_NS, NS, Limits, Source, read_xml
from schemas.rules import FIELD_LIMITS, attachment_name_problem, validate
from schemas.xsd import SCHEMA_DIR, load_schema

__all__ = [
    "DSIG_NS",
    "FIELD_LIMITS",
    "NS",
    "SCHEMA_DIR",
    "VN_TZ",
    "Attachment",
    "Business",
    "BusinessDocType",
    "BusinessDocumentInfo",
    "FormatError",
    "GovLevel",
    "Limits",
    "OrganId",
    "OrganIdError",
    "Package",
    "ParsedPackage",
    "Party",
    "Receiver",
    "Replacement",
    "ResponseFor",
    "StaffInfo",
    "Trace",
    "attachment_name_problem",
    "build_document",
    "build_replacement",
    "build_revocation",
    "build_status",
    "build_update",
    "iter_attachments",
    "load_schema",
    "normalise",
    "parse_package",
    "read_package",
]


def read_package(source: Source, limits: Limits = Limits()) -> ParsedPackage:  # noqa: B008
    """Read and check a package once: ``bytes`` are the document, ``str``/``PathLike`` a file.

    Raises :class:`FormatError` for anything wrong with the input; ``OSError`` only if the file
    cannot be opened.
    """
    with _only_format_errors():
        root = read_xml(source, limits)
        kind = validate(root, limits)
        return ParsedPackage(root, package_model(root, kind))


def parse_package(source: Source, limits: Limits = Limits()) -> Package:  # noqa: B008
    """The model of a package (:func:`read_package` without its tree)."""
    return read_package(source, limits).package


def iter_attachments(
    source: Source | ParsedPackage,
    limits: Limits = Limits(),  # noqa: B008
) -> Iterator[tuple[Attachment, bytes]]:
    """Each attachment's model and decoded bytes (a package read already is not read again)."""
    parsed = source if isinstance(source, ParsedPackage) else read_package(source, limits)
    with _only_format_errors():
        yield from parsed.attachments()


@contextlib.contextmanager
def _only_format_errors() -> Iterator[None]:
    """Bad input never surfaces as anything but a FormatError (or OSError for an unreadable
    file, MemoryError when the machine runs out)."""
    try:
        yield
    except (FormatError, OSError, MemoryError, TypeError):
        raise
    except Exception as exc:  # a bug of ours, but the caller still gets a FormatError
        raise FormatError(
            "internal", f"unexpected failure reading the package ({type(exc).__name__})"
        ) from exc
