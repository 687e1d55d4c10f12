"""PAdES B-LTA: an archive (document) timestamp over a signed PDF, with fresh validation data
for every signature and every earlier document timestamp.

Run it after the last signature (leader, then agency), and again before the newest timestamp's
certificate expires, to keep an archived document verifiable.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from pathlib import Path

from signing.errors import SigningError
from signing.pdf.reading import check_not_locked, open_for_signing, read_document, readable_output
from signing.pdf.services import (
    load_certificates,
    signer_validation_context,
    signing_errors,
    timestamper,
)

__all__ = ["add_archive_timestamp", "async_add_archive_timestamp"]


async def async_add_archive_timestamp(
    pdf: bytes | Path,
    *,
    tsa_url: str,
    trust_roots: Sequence[Path],
    extra_certs: Sequence[Path] = (),
    network_timeout: float = 10.0,
) -> bytes:
    """Bring every signature of ``pdf`` to B-LTA: validation data for all of them (and for earlier
    document timestamps) into the DSS, then a document timestamp over the whole file."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.signers.pdf_signer import PdfTimeStamper, TimestampDSSContentSettings
    from pyhanko.sign.validation import DocumentSecurityStore, collect_validation_info

    if not trust_roots:
        raise SigningError("signing.bad_option", "an archive timestamp needs trust roots")
    data = read_document(pdf)
    reader = open_for_signing(data)
    check_not_locked(reader)
    roots = load_certificates(trust_roots)
    extra = load_certificates(extra_certs)
    vc = signer_validation_context(roots, extra, mode="require", timeout=network_timeout)
    try:
        with signing_errors():
            paths = []
            for sig in reader.embedded_signatures:
                paths.extend(await collect_validation_info(sig, vc))
            writer = IncrementalPdfFileWriter.from_reader(reader)
            DocumentSecurityStore.supply_dss_in_writer(
                writer, None, paths=paths, validation_context=vc
            )
            out = io.BytesIO()
            await PdfTimeStamper(timestamper(tsa_url, network_timeout)).async_timestamp_pdf(
                writer,
                "sha256",
                vc,
                output=out,
                dss_settings=TimestampDSSContentSettings(include_vri=False, update_before_ts=True),
            )
    finally:
        await vc.aclose()
    return readable_output(out.getvalue())


def add_archive_timestamp(
    pdf: bytes | Path,
    *,
    tsa_url: str,
    trust_roots: Sequence[Path],
    extra_certs: Sequence[Path] = (),
    network_timeout: float = 10.0,
) -> bytes:
    """:func:`async_add_archive_timestamp` for synchronous callers."""
    return asyncio.run(
        async_add_archive_timestamp(
            pdf,
            tsa_url=tsa_url,
            trust_roots=trust_roots,
            extra_certs=extra_certs,
            network_timeout=network_timeout,
        )
    )
