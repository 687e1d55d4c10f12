"""Finding one's way in an edXML tree: qualified names, children, text, attachments, manifest."""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from schemas.reader import NS

__all__ = [
    "REFERENCES",
    "attachment_elements",
    "child_text",
    "children",
    "manifest_references",
    "q",
]


def q(name: str) -> str:
    """``name`` in the edXML namespace, as lxml writes it (``{ns}name``)."""
    return f"{{{NS}}}{name}"


REFERENCES = "/".join(q(n) for n in ("edXMLEnvelope", "edXMLBody", "edXMLManifest", "Reference"))


def children(parent: etree._Element) -> Iterator[etree._Element]:
    """Element children (no comments or processing instructions)."""
    return parent.iterchildren(etree.Element)


def child_text(parent: etree._Element | None, name: str) -> str | None:
    """Stripped text of child ``name`` (comments excluded), or None if absent or empty."""
    child = None if parent is None else parent.find(q(name))
    if child is None:
        return None
    return str(child.xpath("string()")).strip() or None


def attachment_elements(root: etree._Element) -> list[etree._Element]:
    """``AttachmentEncoded/Attachment`` elements, in document order."""
    return root.findall(f"{q('AttachmentEncoded')}/{q('Attachment')}")


def manifest_references(root: etree._Element) -> dict[str | None, etree._Element]:
    """Manifest ``Reference`` elements by ContentId."""
    return {child_text(element, "ContentId"): element for element in root.findall(REFERENCES)}
