"""The Bussiness block, ResponseFor and TraceHeaderList: model, builders, and the round trip
parse → build → parse on every field sample (no services needed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from schemas import (
    Business,
    BusinessDocType,
    BusinessDocumentInfo,
    Package,
    Party,
    Receiver,
    Replacement,
    ResponseFor,
    StaffInfo,
    Trace,
    build_document,
    build_replacement,
    build_revocation,
    build_status,
    build_update,
    parse_package,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "edxml-field"
SAMPLES = sorted(p.name for p in FIXTURES.glob("*.edxml") if not p.name.startswith("malformed"))
KEPT = ("attachments", "has_signature", "signature_namespace")  # not written by the builders


def rebuild(package: Package) -> bytes:
    """A package built from nothing but a parsed model."""
    if package.kind == "status":
        answered = package.response_for[0]
        return build_status(
            sender=package.sender,
            response_for_organ_id=answered.organ_id,
            response_for_document_id=answered.document_id,
            response_for_code=answered.code,
            response_for_date=answered.promulgation_date,
            status_code=package.status_code,
            description=package.status_description,
            timestamp=package.status_timestamp,
        )
    return build_document(
        sender=package.sender,
        recipients=package.recipients,
        document_id=package.document_id,
        code_number=package.code_number,
        code_notation=package.code_notation,
        subject=package.subject,
        promulgation_date=package.promulgation_date,
        priority=package.priority or 0,
        business=package.business,
        response_for=package.response_for,
        trace=package.trace,
    )


def comparable(package: Package) -> Package:
    """The model without what builders do not write; organ ids as the builders write them
    (normalised: ``28.22.H17`` is written ``000.28.22.H17``)."""

    def normalised(party: Party) -> Party:
        return dataclasses.replace(party, raw_organ_id=party.organ_id)

    package = dataclasses.replace(
        package,
        sender=normalised(package.sender),
        recipients=tuple(normalised(p) for p in package.recipients),
    )
    return dataclasses.replace(
        package, **{name: Package.__dataclass_fields__[name].default for name in KEPT}
    )


@pytest.mark.parametrize("name", SAMPLES)
def test_every_field_sample_survives_parse_build_parse(name):
    first = parse_package((FIXTURES / name).read_bytes())
    again = parse_package(rebuild(first))
    assert comparable(again) == comparable(first)


def test_the_flow_samples_name_what_they_concern():
    def read(name):
        return parse_package((FIXTURES / name).read_bytes())

    update, replacement, revocation = (
        read(f"edoc_{n}.edxml") for n in ("update", "replacement", "revocation")
    )
    assert update.business.doc_type is BusinessDocType.UPDATE
    assert update.concerns == ("000.00.00.G22,2014/02/30,7806/VPCP-TTĐT",)
    assert update.business.document_info.receivers == (
        Receiver("000.00.00.H41", 0),
        Receiver("000.00.00.H14", 1),
    )
    assert replacement.business.replacements[0].organ_ids == ("000.00.00.H41", "000.00.00.H14")
    assert replacement.concerns == ("000.00.00.G22,2014/01/30,7806/VPCP-TTĐT",)  # once
    assert revocation.business.document_id is None  # named by ResponseFor, as in the field
    assert revocation.concerns == ("000.00.04.G14,2012/08/06,267/VPCP-TTĐT",)
    assert revocation.business.staff == StaffInfo(
        "Văn thư văn phòng", "Nguyễn Thị Ngọc Trâm", "vanthuvanphong@gov.vn", "84912000001"
    )


COMMON = {
    "sender": Party.of("000.00.00.G22", "Văn phòng Chính phủ"),
    "recipients": ["000.00.00.H49", "000.00.10.H49"],
    "code_number": "15",
    "code_notation": "VPCP-TH",
    "subject": "V/v thay đổi",
    "promulgation_date": "2024/05/03",
    "timestamp": "2024/05/03 08:00:00",
}
EARLIER = "000.00.00.G22,2024/05/02,12/VPCP-TH"


def test_revocation_update_and_replacement_builders_write_the_document_concerned():
    revocation = parse_package(
        build_revocation(revoked_document_id=EARLIER, reason="Sai", **COMMON)
    )
    assert revocation.business == Business(BusinessDocType.REVOKE, "Sai", EARLIER, paper=0)
    assert revocation.concerns == (EARLIER,)
    update = parse_package(build_update(updated_document_id=EARLIER, **COMMON))
    assert (update.business.doc_type, update.concerns) == (BusinessDocType.UPDATE, (EARLIER,))
    other = "000.00.00.G22,2024/04/01,3/VPCP-TH"
    replacement = parse_package(
        build_replacement(replaced=[EARLIER, Replacement(other, ("000.00.10.H49",))], **COMMON)
    )
    assert replacement.concerns == (EARLIER, other)
    assert replacement.business.replacements[1].organ_ids == ("000.00.10.H49",)


def test_a_full_business_block_and_several_hops_round_trip():
    business = Business(
        BusinessDocType.UPDATE,
        "Cập nhật",
        EARLIER,
        paper=1,
        staff=StaffInfo("Văn thư", "Nguyễn Văn A", "a@gov.vn", "0912"),
        document_info=BusinessDocumentInfo(1, 0, (Receiver("000.00.10.H49", 1),)),
    )
    hops = (
        Trace("000.00.00.G22", "2024/05/03 08:00:00"),
        Trace("000.00.00.H49", "2024/05/03 08:00:05"),
    )
    answered = (ResponseFor("000.00.00.H49", "12/VPCP-TH", EARLIER, "2024/05/02"),)
    package = parse_package(
        build_document(business=business, trace=hops, response_for=answered, **COMMON)
    )
    assert (package.business, package.trace, package.response_for) == (business, hops, answered)


def test_a_replacement_without_documents_is_a_value_error():
    with pytest.raises(ValueError, match="at least one document"):
        build_replacement(replaced=[], **COMMON)


def test_status_14_is_read_as_received():
    data = build_status(
        sender="000.00.00.H49",
        response_for_organ_id="000.00.00.G22",
        response_for_document_id=EARLIER,
        status_code="14",
    )
    assert parse_package(data).status_code == "14"
