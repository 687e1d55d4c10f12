"""Find an anchor text (e.g. the signer's title line "BỘ TRƯỞNG") and where it sits on the page.

pyHanko writes PDFs but does not extract text. Word positions come from poppler's
``pdftotext -bbox-layout`` (package poppler-utils), run as a subprocess: it decodes every font
kind real documents use (Type 0/CID with ToUnicode, TrueType, Type 1, Type 3), groups words into
lines, and is already a system dependency of the project (installed by ``.ci/setup``), so no new
Python dependency is needed. Pure-Python alternatives were weighed: pypdf's text visitor gives
only the start of each text run (no widths), pdfminer.six is exact but slow on 50-page files.

Matching is exact after Unicode NFC normalisation and whitespace collapsing, and case-sensitive
on purpose: the title line is in capitals, while body text may mention "Bộ trưởng".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from signing.errors import SigningError
from signing.pdf.placement import Rect

__all__ = ["TextHit", "find_text", "find_text_in_bytes"]

PDFTOTEXT = os.environ.get("LIENTHONG_PDFTOTEXT", "pdftotext")


@dataclass(frozen=True)
class TextHit:
    """Where an anchor was found: 0-based ``page``, the matched words and their whole line."""

    page: int
    box: Rect
    line_box: Rect
    line_text: str


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


def _pdftotext(pdf_path: Path, first: int, last: int) -> bytes:
    exe = shutil.which(PDFTOTEXT)
    if exe is None:
        raise SigningError(
            "signing.text_extraction_unavailable",
            f"finding anchor text needs poppler's {PDFTOTEXT!r} (apt-get install poppler-utils)",
        )
    args = [exe, "-q", "-bbox-layout", "-f", str(first), "-l", str(last), str(pdf_path), "-"]
    try:
        proc = subprocess.run(args, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        raise SigningError(
            "signing.text_extraction_failed", "pdftotext took longer than 120 s"
        ) from None
    if proc.returncode != 0:
        raise SigningError(
            "signing.text_extraction_failed",
            f"pdftotext failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:300]}",
        )
    return proc.stdout


def _lines(xhtml: bytes, first: int) -> list[tuple[int, float, list[tuple[str, Rect]]]]:
    """(page index, page height, [(word, top-left box)]) per line, in reading order."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    root = etree.fromstring(xhtml, parser)
    out = []
    pages = [el for el in root.iter() if isinstance(el.tag, str) and el.tag.endswith("page")]
    for offset, page in enumerate(pages):
        height = float(page.get("height", "0"))
        for line in page.iter():
            if not (isinstance(line.tag, str) and line.tag.endswith("line")):
                continue
            words = []
            for word in line:
                if isinstance(word.tag, str) and word.tag.endswith("word"):
                    box = tuple(float(word.get(k, "0")) for k in ("xMin", "yMin", "xMax", "yMax"))
                    words.append(((word.text or ""), box))
            if words:
                out.append((first - 1 + offset, height, words))
    return out


def _search(lines: list[tuple[int, float, list[tuple[str, Rect]]]], needle: str) -> TextHit | None:
    """The last occurrence of ``needle`` (reading order) in ``lines``."""
    found: TextHit | None = None
    for page, height, words in lines:
        texts = [_norm(w) for w, _ in words]
        joined = " ".join(texts)
        start = joined.rfind(needle)
        if start < 0:
            continue
        end = start + len(needle)
        spans, pos = [], 0
        for text, (_, box) in zip(texts, words, strict=True):
            if pos < end and pos + len(text) > start:
                spans.append(box)
            pos += len(text) + 1

        def flip(boxes: list[Rect], h: float = height) -> Rect:
            x1 = min(b[0] for b in boxes)
            x2 = max(b[2] for b in boxes)
            top = min(b[1] for b in boxes)
            bottom = max(b[3] for b in boxes)
            return (x1, h - bottom, x2, h - top)

        found = TextHit(page, flip(spans), flip([b for _, b in words]), joined)
    return found


def find_text(
    pdf: Path,
    text: str,
    *,
    page_count: int,
    pages: Sequence[int] | None = None,
) -> TextHit:
    """Find the last occurrence of ``text`` in ``pdf`` (a file), searching from the last page.

    ``pages`` are 0-based page indexes to search (default: all). Boxes are in points relative
    to the lower-left corner of the page's crop box (add the crop box origin for user space).
    Raises ``SigningError`` ``signing.anchor_not_found`` naming the anchor and the pages searched.
    """
    needle = _norm(text)
    if not needle:
        raise SigningError("signing.bad_option", "the anchor text is empty")
    order = sorted(set(pages) if pages is not None else range(page_count), reverse=True)
    order = [p for p in order if 0 <= p < page_count]
    if not order:
        raise SigningError(
            "signing.anchor_not_found",
            f"anchor {text!r} not searched: no such pages (the document has {page_count})",
        )
    # The last page first (where the signature block is); then the rest in one run.
    batches = [order[:1], order[1:]] if len(order) > 1 else [order]
    for batch in batches:
        if not batch:
            continue
        lo, hi = min(batch), max(batch)
        lines = [ln for ln in _lines(_pdftotext(pdf, lo + 1, hi + 1), lo + 1) if ln[0] in batch]
        hit = _search(lines, needle)
        if hit is not None:
            return hit
    raise SigningError(
        "signing.anchor_not_found",
        f"anchor text {text!r} not found on {_describe_pages(order, page_count)}",
    )


def _describe_pages(order: list[int], page_count: int) -> str:
    if len(order) == page_count:
        return f"any of the {page_count} page(s) (searched pages {page_count}..1)"
    return "page(s) " + ", ".join(str(p + 1) for p in sorted(order))


def find_text_in_bytes(
    data: bytes, text: str, *, page_count: int, pages: Sequence[int] | None = None
) -> TextHit:
    """:func:`find_text` for a document held in memory (written to a private temporary file)."""
    with tempfile.TemporaryDirectory(prefix="lienthong-anchor-") as tmp:
        path = Path(tmp) / "document.pdf"
        path.write_bytes(data)
        return find_text(path, text, page_count=page_count, pages=pages)
