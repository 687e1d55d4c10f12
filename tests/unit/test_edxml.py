"""edXML parsing, rules, schemas (schemas/xsd) and builders (schemas.build).

Plain synchronous tests on the field samples in tests/fixtures/edxml-field: no services needed.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from pathlib import Path

import pytest
from lxml import etree

import schemas
from exchange.http.errors import ERROR_CODES
from schemas import (
    DSIG_NS,
    NS,
    FormatError,
    Limits,
    Party,
    build_document,
    build_status,
    iter_attachments,
    load_schema,
    parse_package,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "edxml-field"
NEW_ID = "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
THREE = ("000.00.00.H41", "000.00.00.H14", "000.00.00.G17")


def sample(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def http_status(error: FormatError) -> int:
    """The HTTP status the hub answers this refusal with (one table, exchange.openapi)."""
    return ERROR_CODES[error.code][0]


def refused(data: bytes, limits: Limits = Limits()) -> FormatError:  # noqa: B008
    with pytest.raises(FormatError) as caught:
        parse_package(data, limits)
    return caught.value


def small_document(**changes) -> bytes:
    arguments = {
        "sender": Party.of("000.00.00.G22", "Văn phòng Chính phủ"),
        "recipients": ["000.00.00.H49"],
        "code_number": "12",
        "code_notation": "VPCP-TH",
        "subject": "V/v thử nghiệm",
        "promulgation_date": "2024/05/02",
        "timestamp": "2024/05/02 08:00:00",
        "attachments": [("cv.pdf", "application/pdf", b"%PDF-1.7 test")],
    }
    return build_document(**(arguments | changes))


# ----- the field samples -------------------------------------------------------------------------

EDOCS = [
    # file, sender, recipients, BussinessDocType
    ("edoc_new.edxml", "000.00.00.A80", ("000.28.22.H17",), 0),
    ("edoc_update.edxml", "000.00.00.G22", THREE, 2),
    ("edoc_replacement.edxml", "000.00.00.G22", THREE, 3),
    ("edoc_revocation.edxml", "000.00.00.G22", THREE, 1),
]
STATUSES = [
    # file, sender, ResponseFor organ, StatusCode
    ("status.edxml", "000.00.00.H41", "000.00.00.G22", "01"),
    ("status_inbox_01.edxml", "000.00.00.H41", "000.00.00.G22", "01"),
    ("status_rejection_02.edxml", "000.00.00.H41", "000.00.00.G22", "02"),
    ("status_acceptance_03.edxml", "000.00.00.H41", "000.00.00.G22", "03"),
    ("status_assignment_04.edxml", "000.00.00.H41", "000.00.00.G22", "04"),
    ("status_processing_05.edxml", "000.00.00.H41", "000.00.00.G22", "05"),
    ("status_finish_06.edxml", "000.00.00.H41", "000.00.00.G22", "06"),
    ("status_cancellation_13.edxml", "000.00.00.G22", "000.00.00.H41", "13"),
    ("status_change-acceptance_15.edxml", "000.00.00.H41", "000.00.00.G22", "15"),
    ("status_change-rejection_16.edxml", "000.00.00.H41", "000.00.00.G22", "16"),
]


def test_the_corpus_is_complete():
    valid = {p.name for p in FIXTURES.glob("*.edxml")} - {"malformed_edoc.edxml"}
    assert valid == {row[0] for row in EDOCS + STATUSES}


@pytest.mark.parametrize(("name", "sender", "recipients", "doc_type"), EDOCS)
def test_field_documents_parse(name, sender, recipients, doc_type):
    package = parse_package(sample(name))
    assert package.kind == "edoc"
    assert package.sender.organ_id == sender
    assert tuple(p.organ_id for p in package.recipients) == recipients
    assert package.business_doc_type == doc_type
    assert package.document_id == NEW_ID
    assert package.code_notation == "VPCP-TTĐT"
    assert package.subject == "V/v kết nối, liên thông phần mềm quản lý văn bản"
    assert package.priority == 0
    assert package.status_code is None
    assert [t.organ_id for t in package.trace] == ["000.00.00.G22"]
    assert package.trace[0].timestamp == "2018/09/28 00:00:00"
    # Field quirk: <Signature> without a namespace falls into the edXML namespace.
    assert package.has_signature and package.signature_namespace == NS
    (attachment,) = package.attachments
    assert attachment.content_id == "cid:209"
    assert attachment.name == "1896_QD-TTg_m_294779.doc"
    assert attachment.content_type == "application/zip"
    assert attachment.size == 270823


def test_short_organ_id_is_normalised_and_raw_kept():
    package = parse_package(sample("edoc_new.edxml"))
    (recipient,) = package.recipients
    assert (recipient.organ_id, recipient.raw_organ_id) == ("000.28.22.H17", "28.22.H17")
    assert recipient.name == "UBND xã Hòa Sơn - UBND huyện Hòa Vang - Thành phố Đà Nẵng"
    assert package.sender.email == "vpcp@gov.vn"
    assert package.promulgation_date == "2019/01/16"
    assert package.business_doc_reason == "Văn bản điện tử mới"


def test_attachment_digest_is_of_the_decoded_bytes():
    data = sample("edoc_new.edxml")
    encoded = re.search(rb"<edXML:ContentTransferEncoded[^>]*>([^<]*)<", data)[1]
    decoded = base64.b64decode(encoded)
    (attachment,) = parse_package(data).attachments
    assert attachment.sha256 == hashlib.sha256(decoded).hexdigest()
    ((listed, content),) = list(iter_attachments(data))
    assert listed == attachment and content == decoded and content[:2] == b"PK"


def test_revocation_answers_another_document():
    package = parse_package(sample("edoc_revocation.edxml"))
    (response,) = package.response_for
    assert response.organ_id == "000.00.00.H14"
    assert response.document_id == "000.00.04.G14,2012/08/06,267/VPCP-TTĐT"
    assert response.code == "267/VPCP-TTĐT"


@pytest.mark.parametrize(("name", "sender", "target", "code"), STATUSES)
def test_field_statuses_parse(name, sender, target, code):
    package = parse_package(sample(name))
    assert package.kind == "status"
    assert package.sender.organ_id == sender
    assert [(p.organ_id, p.name) for p in package.recipients] == [(target, None)]
    assert package.status_code == code
    assert package.document_id == NEW_ID
    assert package.response_for[0].document_id == NEW_ID
    assert package.status_timestamp and package.status_description
    assert package.attachments == () and not package.has_signature


def test_path_and_bytes_give_the_same_package():
    path = FIXTURES / "edoc_update.edxml"
    assert parse_package(path) == parse_package(str(path)) == parse_package(path.read_bytes())


def test_xml_text_is_not_a_path():
    with pytest.raises(TypeError):
        parse_package("<edXML/>")


# ----- not well-formed, hostile ------------------------------------------------------------------


def test_malformed_sample_names_line_and_element():
    error = refused(sample("malformed_edoc.edxml"))
    assert (error.code, http_status(error), error.line) == ("xml.malformed", 400, 74)
    assert "line 74" in error.message
    assert (
        "mismatch" in error.message
        and "<edXML:From> opened at line 7 is not closed before </edXML:MessageHeader>"
        in error.message
    )


def test_malformed_from_a_file(tmp_path):
    path = tmp_path / "bad.edxml"
    path.write_bytes(sample("malformed_edoc.edxml"))
    with pytest.raises(FormatError) as caught:
        parse_package(path)
    assert caught.value.line == 74 and "edXML:From" in caught.value.message


@pytest.mark.parametrize("data", [b"", b"   ", b"<edXML", b"\x00\x01garbage"])
def test_not_xml_at_all(data):
    error = refused(data)
    assert (error.code, http_status(error)) == ("xml.malformed", 400)
    assert error.line is None or error.line >= 1


LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&lol9;</edXML>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&x;</edXML>"""
PARAMETER_ENTITY = b"""<!DOCTYPE edXML [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"/>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?><!-- a comment first -->
<!DOCTYPE edXML SYSTEM "http://example.invalid/edxml.dtd"><edXML/>"""


@pytest.mark.parametrize(
    "data", [LAUGHS, XXE, PARAMETER_ENTITY, EXTERNAL_DTD], ids=["laughs", "xxe", "pe", "dtd"]
)
def test_doctype_is_refused_before_parsing(data):
    started = time.perf_counter()
    error = refused(data)
    assert (error.code, http_status(error)) == ("xml.dtd_forbidden", 400)
    assert time.perf_counter() - started < 0.5
    assert "root:" not in error.message


def test_doctype_behind_a_long_prolog_is_still_refused():
    # Past the window the prolog scan reads: the parser (no entity expansion, no external
    # loading) and the docinfo check after it must still refuse, without reading the file.
    data = b"<?xml version='1.0'?><!--" + b"x" * (2 << 20) + b"-->" + XXE.split(b"?>", 1)[1]
    error = refused(data)
    assert error.code == "xml.dtd_forbidden" and "root:" not in error.message


def test_utf16_doctype_is_refused():
    data = XXE.replace(b'"1.0"?>', b'"1.0" encoding="UTF-16"?>').decode().encode("utf-16")
    assert refused(data).code == "xml.dtd_forbidden"


def test_xinclude_is_not_processed():
    include = (
        b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"'
        b' parse="text"/>'
    )
    data = sample("status.edxml").replace(b"<edXML:StatusCode>", include + b"<edXML:StatusCode>")
    error = refused(data)
    assert error.code == "edxml.schema" and "XInclude}include" in error.message
    assert "root:" not in error.message


def test_undeclared_entity_is_malformed():
    data = edit("status.edxml", "Lưu trữ", "&nbsp;")
    assert refused(data).code == "xml.malformed"


def test_wrong_namespace():
    data = sample("status.edxml").replace(NS.encode(), b"urn:not-edxml")
    error = refused(data)
    assert (error.code, http_status(error)) == ("edxml.namespace", 422)
    assert "urn:not-edxml" in error.message and NS in error.message


def test_no_namespace():
    error = refused(b"<edXML><edXMLEnvelope/></edXML>")
    assert error.code == "edxml.namespace" and "(none)" in error.message


def test_nesting_past_the_limit():
    deep = b"<edXML xmlns='%s'>" % NS.encode() + b"<a>" * 100 + b"</a>" * 100 + b"</edXML>"
    error = refused(deep)
    assert (error.code, error.line) == ("xml.too_deep", 1)


def test_nesting_past_libxml2s_own_limit():
    # libxml2 stops at 2048 levels (with huge_tree) before our limit: same code.
    deep = b"<a>" * 5000 + b"</a>" * 5000
    assert refused(deep, Limits(max_depth=100_000)).code == "xml.too_deep"


def test_too_many_elements():
    many = b"<edXML xmlns='%s'>" % NS.encode() + b"<a/>" * 2000 + b"</edXML>"
    error = refused(many, Limits(max_elements=1000))
    assert (error.code, http_status(error)) == ("xml.too_many_elements", 400)


def test_too_large():
    error = refused(sample("status.edxml"), Limits(max_bytes=1000))
    assert (error.code, http_status(error)) == ("body.too_large", 413)


# ----- XSD and the rules checked in Python -------------------------------------------------------


def edit(name: str, old: str, new: str, count: int = 1) -> bytes:
    data = sample(name).decode()
    assert old in data
    return data.replace(old, new, count).encode()


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (
            edit("edoc_update.edxml", "<edXML:Priority>0<", "<edXML:Priority>9<"),
            "Priority",
            "greater than the maximum value allowed ('4')",
        ),
        (
            edit("status_finish_06.edxml", "<edXML:StatusCode>06<", "<edXML:StatusCode>99<"),
            "StatusCode",
            "'99' is not an element of the set",
        ),
        (
            edit(
                "status.edxml",
                "<edXML:StaffInfo>",
                "<edXML:Urgent>1</edXML:Urgent><edXML:StaffInfo>",
            ),
            "Urgent",
            "not expected",
        ),
        (
            edit("status.edxml", "2018/09/28 17:25:11", "28/09/2018 17:25"),
            "Timestamp",
            "the format yyyy/MM/dd HH:mm:ss",
        ),
        (
            edit(
                "edoc_new.edxml", "<edXML:PromulgationDate>2019/01/16", "<edXML:PromulgationDate>"
            ),
            "PromulgationDate",
            "the format yyyy/MM/dd",
        ),
        (
            edit("edoc_new.edxml", "<edXML:OrganId>28.22.H17</edXML:OrganId>", ""),
            "To",
            "Missing child element(s)",
        ),
        (
            edit("status.edxml", "<edXML:MessageHeader>", "<edXML:MessageHeader><edXML:To/>"),
            "To",
            "not expected",
        ),
    ],
    ids=[
        "priority",
        "status-code",
        "unknown",
        "timestamp",
        "empty-date",
        "to-no-organ",
        "status-to",
    ],
)
def test_schema_violations(data, field, words):
    error = refused(data)
    assert (error.code, http_status(error), error.field) == ("edxml.schema", 422, field)
    assert words in error.message and error.line


def test_blank_subject_even_a_huge_one():
    subject = "<edXML:Subject>V/v kết nối, liên thông phần mềm quản lý văn bản</edXML:Subject>"
    for blank, words in ((" ", "(not blank)"), (" " * 1000, "(not blank)"), (" " * (2 << 20), "")):
        data = edit("edoc_update.edxml", subject, f"<edXML:Subject>{blank}</edXML:Subject>")
        error = refused(data)
        assert (error.code, error.field) == ("edxml.schema", "Subject")
        assert "[facet 'pattern']" in error.message and words in error.message
        assert len(error.message) <= 300


def test_missing_from():
    data = re.sub(rb"<edXML:From>.*?</edXML:From>", b"", sample("status.edxml"), flags=re.S)
    error = refused(data)
    assert (error.code, error.field) == ("edxml.schema", "From")
    assert "exactly one edXML:From" in error.message


def test_document_with_no_recipient():
    data = re.sub(rb"<edXML:To>.*?</edXML:To>", b"", sample("edoc_update.edxml"), flags=re.S)
    error = refused(data)
    assert (error.code, error.field) == ("edxml.schema", "To")
    assert "at least one edXML:To" in error.message


def test_two_senders():
    data = sample("status.edxml")
    sender = re.search(rb"<edXML:From>.*?</edXML:From>", data, flags=re.S)[0]
    error = refused(data.replace(sender, sender + sender))
    assert (error.code, error.field, error.line) == ("edxml.schema", "From", 15)


def test_status_must_name_its_document():
    data = re.sub(rb"<edXML:DocumentId>[^<]*</edXML:DocumentId>", b"", sample("status.edxml"))
    assert refused(data).field == "DocumentId"


def test_bad_organ_id():
    data = edit("edoc_new.edxml", "28.22.H17", "28.22.#17")
    error = refused(data)
    assert (error.code, http_status(error), error.field) == (
        "organ_id.invalid",
        422,
        "To[1]/OrganId",
    )
    assert error.line == 18 and "'28.22.#17'" in error.message


def test_children_in_any_order():
    data = edit(
        "status.edxml",
        "<edXML:StatusCode>01</edXML:StatusCode>",
        "",
    ).replace(
        b"<edXML:MessageHeader>", b"<edXML:MessageHeader><edXML:StatusCode>01</edXML:StatusCode>"
    )
    assert parse_package(data).status_code == "01"


def test_proper_dsig_signature_is_accepted_and_other_dsig_elements_are_not():
    signature = f'<ds:Signature xmlns:ds="{DSIG_NS}"><ds:SignedInfo/></ds:Signature>'
    data = edit("status.edxml", "</edXML:MessageHeader>", "</edXML:MessageHeader>" + signature)
    assert parse_package(data).signature_namespace == DSIG_NS
    key_info = signature.replace("Signature", "KeyInfo")
    error = refused(
        edit("status.edxml", "</edXML:MessageHeader>", "</edXML:MessageHeader>" + key_info)
    )
    assert (error.code, error.field) == ("edxml.schema", "KeyInfo")


# ----- attachments -----------------------------------------------------------------------------


def test_bad_base64_names_the_attachment():
    data = sample("edoc_new.edxml").replace(b"UEsDBBQACAgIAEuSPE0", b"UEsDBBQACAgIAEuSP!0", 1)
    error = refused(data)
    assert (error.code, http_status(error), error.field) == (
        "edxml.base64",
        422,
        "ContentTransferEncoded",
    )
    assert "'cid:209'" in error.message and "'!'" in error.message


def test_truncated_base64():
    data = sample("edoc_new.edxml").replace(b"AAAAA==</edXML:Content", b"AAAA==</edXML:Content")
    error = refused(data)
    assert error.code == "edxml.base64" and "cid:209" in error.message


def test_base64_with_line_breaks_is_fine():
    payload = bytes(range(256)) * 50
    wrapped = base64.encodebytes(payload).decode()  # MIME style: a newline every 76 characters
    document = small_document(attachments=[("a.bin", "application/octet-stream", payload)])
    data = document.replace(base64.b64encode(payload), wrapped.encode())
    assert parse_package(data).attachments[0].sha256 == hashlib.sha256(payload).hexdigest()


def test_comment_inside_base64_is_ignored():
    payload = b"0123456789" * 100
    encoded = base64.b64encode(payload)
    data = small_document(attachments=[("a.txt", "text/plain", payload)])
    data = data.replace(encoded, encoded[:40] + b"<!-- split -->" + encoded[40:])
    (attachment,) = parse_package(data).attachments
    assert attachment.sha256 == hashlib.sha256(payload).hexdigest()


def test_manifest_reference_without_attachment():
    data = re.sub(rb"<Attachment>.*</Attachment>", b"", small_document(), flags=re.S)
    error = refused(data)
    assert (error.code, http_status(error), error.field) == (
        "edxml.manifest_missing_attachment",
        422,
        "ContentId",
    )


def test_attachment_not_in_manifest():
    data = re.sub(rb"<edXML:Reference>.*</edXML:Reference>", b"", small_document(), flags=re.S)
    assert refused(data).code == "edxml.attachment_not_in_manifest"


def test_duplicate_content_id():
    data = small_document()
    item = re.search(rb"<Attachment>.*</Attachment>", data, flags=re.S)[0]
    assert refused(data.replace(item, item + item)).code == "edxml.duplicate_content_id"


def test_too_many_attachments():
    files = [(f"{i}.txt", "text/plain", b"x") for i in range(3)]
    error = refused(small_document(attachments=files), Limits(max_attachments=2))
    assert (error.code, http_status(error)) == ("edxml.too_many_attachments", 413)
    assert len(parse_package(small_document(attachments=files)).attachments) == 3


# ----- builders ----------------------------------------------------------------------------------


def test_built_document_round_trips():
    data = small_document(
        recipients=["28.22.h17", Party.of("000.00.00.H49", "UBND tỉnh Quảng Ninh")],
        priority=3,
        business_doc_type=2,
        business_doc_reason="Cập nhật",
    )
    assert data.startswith(b"<?xml") and b"<edXML:edXMLEnvelope xmlns:edXML=" in data
    assert load_schema("edxml").validate(etree.fromstring(data).getroottree())
    package = parse_package(data)
    assert package.kind == "edoc"
    assert package.sender == Party.of("000.00.00.G22", "Văn phòng Chính phủ")
    assert [p.organ_id for p in package.recipients] == ["000.28.22.H17", "000.00.00.H49"]
    assert package.document_id == "000.00.00.G22,2024/05/02,12/VPCP-TH"
    assert (package.code_number, package.code_notation) == ("12", "VPCP-TH")
    assert (package.priority, package.business_doc_type) == (3, 2)
    assert package.trace[0].timestamp == "2024/05/02 08:00:00"
    (attachment,) = package.attachments
    assert (attachment.name, attachment.content_type, attachment.size) == (
        "cv.pdf",
        "application/pdf",
        13,
    )


def test_built_status_round_trips():
    data = build_status(
        sender="000.00.00.H49",
        response_for_organ_id="000.00.00.G22",
        response_for_document_id=NEW_ID,
        response_for_code="7816/VPCP-TTĐT",
        status_code="03",
        description="Đã vào sổ",
        staff="Nguyễn Thị A",
        department="Văn thư",
        timestamp="2024/05/02 09:30:00",
    )
    assert load_schema("status").validate(etree.fromstring(data).getroottree())
    package = parse_package(data)
    assert (package.kind, package.status_code, package.document_id) == ("status", "03", NEW_ID)
    assert [p.organ_id for p in package.recipients] == ["000.00.00.G22"]
    assert package.status_timestamp == "2024/05/02 09:30:00"


def test_builders_are_part_of_the_curated_api():
    from schemas import build as build_module

    assert schemas.build_document is build_module.build_document
    assert schemas.build_status is build_module.build_status


def test_builder_refuses_bad_arguments():
    with pytest.raises(ValueError, match="Priority"):
        small_document(priority=9)
    with pytest.raises(ValueError, match="StatusCode"):
        build_status(
            sender="000.00.00.H49",
            response_for_organ_id="000.00.00.G22",
            response_for_document_id=NEW_ID,
            status_code="99",
        )
    with pytest.raises(ValueError, match="recipient"):
        small_document(recipients=[])
    with pytest.raises(FormatError, match="organ id"):
        small_document(recipients=["not an id"])


def test_one_megabyte_attachment():
    payload = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
    package = parse_package(small_document(attachments=[("big.pdf", "application/pdf", payload)]))
    (attachment,) = package.attachments
    assert attachment.size == 1 << 20
    assert attachment.sha256 == hashlib.sha256(payload).hexdigest()
