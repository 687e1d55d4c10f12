"""The VDXP wire details that need no service: the SDK's signature, its parameter order, its
hash-file, and the error table behind the envelope."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from exchange.http.errors import ERROR_CODES
from exchange.http.vdxp.auth import hash_file
from exchange.http.vdxp.envelope import FACADE_ERRORS
from tests.support.vdxp import JavaHashMap, java_timestamp, sign_header

VECTOR_HEADER = (
    '{"XroadVnpt-systemid":"SYS-A","XroadVnpt-timestamp":"01122026T155739+0438",'
    '"XroadVnpt-Content-Type":"application/json"}'
)


def test_recorded_hmac_vector():
    digest = hmac.new(b"sEcReT-a+/=", VECTOR_HEADER.encode(), hashlib.sha256).hexdigest()
    assert digest == "cc668d327a08972a33127a7a22bb226eaf8d737739ca1b2f76a211853b87cece"


def test_the_test_client_orders_and_encodes_as_the_sdk():
    params = JavaHashMap()
    params.put("timestamp", "01122026T155739+0438")
    params.put("systemid", "SYS-A")
    params.put("Content-Type", "application/json")
    assert sign_header(params.items()) == VECTOR_HEADER
    for name in ("servicetype", "messagetype", "docId", "filePath", "docid", "status"):
        params.put(name, "x")
    assert ";".join(k for k, _ in params.items()) == (
        "systemid;servicetype;messagetype;docId;docid;filePath;timestamp;Content-Type;status"
    )


def test_timestamp_is_milliseconds_not_an_offset():
    assert re.fullmatch(r"\d{8}T\d{6}\+\d{4}", java_timestamp())


def test_hash_file_has_no_zero_padding():
    digest = bytes.fromhex("3388e9f4b6af06ce") + bytes(24)
    assert hash_file(digest).startswith("3388e9f4b6af6ce")
    assert len(hash_file(hashlib.sha256(b"").digest())) in range(56, 65)


def test_every_hub_error_has_a_stable_vdxp_code():
    assert set(ERROR_CODES) - set(FACADE_ERRORS) == set()
    numbers = [number for number, _ in FACADE_ERRORS.values()]
    assert len(numbers) == len(set(numbers)) and "0" not in numbers
    assert all(desc and not desc.isascii() for _, desc in FACADE_ERRORS.values())


def test_readme_lists_the_mapping():
    readme = Path("README.md").read_text()
    for code, (number, description) in FACADE_ERRORS.items():
        assert f"| `{number}` | `{code}` | {description} |" in readme, code


def test_envelopes_are_ascii_json_with_every_field():
    import json

    from exchange.errors import HubError
    from exchange.http.vdxp.envelope import lgsp_refusal, ok, refusal

    failed = refusal(HubError("recipient.unknown", "000.00.00.H99 is not registered"))
    assert failed.status == 200 and failed.text.isascii()
    body = json.loads(failed.text)
    assert body == {
        "status": "FAIL",
        "ErrorCode": "403",
        "ErrorDesc": "Đơn vị nhận không có trong danh bạ [recipient.unknown] "
        "000.00.00.H99 is not registered",
        "DocId": "",
        "data": "",
    }
    assert json.loads(ok(DocId="x").text)["ErrorDesc"] == "Thành công"
    unknown = json.loads(lgsp_refusal(HubError("something.new", "later")).text)
    assert (unknown["errorCode"], unknown["data"]) == ("998", None)
