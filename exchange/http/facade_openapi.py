"""The facades in the OpenAPI document: ``/vdxp/<operation>`` (SDKVXP's signed headers) and
``/lgsp/...`` (bearer token). Both answer HTTP 200 with their envelope whatever the outcome
(only a wrong method is a 405), ``ErrorCode``/``errorCode`` from
:data:`exchange.http.vdxp.envelope.FACADE_ERRORS`."""

from __future__ import annotations

from exchange.http.vdxp.envelope import FACADE_ERRORS
from exchange.http.vdxp.operations import OPERATIONS

__all__ = ["add_facades"]

_CODES = "; ".join(f"{n} {c}" for c, (n, _) in sorted(FACADE_ERRORS.items(), key=lambda i: i[1]))
_405 = {
    "description": "Wrong method (the envelope, with Allow)",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def _vdxp_header(name: str, description: str) -> dict:
    return {
        "name": f"XroadVnpt-{name}",
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


_VDXP_HEADERS = [
    _vdxp_header(
        "sign-header",
        'compact JSON {"XroadVnpt-<name>": "<value>", ...} of every parameter, systemid included',
    ),
    _vdxp_header("hash-header", "lower-case hex HMAC-SHA256 of sign-header's octets"),
]
_ENVELOPE = {
    "type": "object",
    "required": ["status", "ErrorCode", "ErrorDesc"],
    "properties": {
        "status": {"enum": ["OK", "FAIL"]},
        "ErrorCode": {"type": "string", "description": f"0 on success; else {_CODES}"},
        "ErrorDesc": {"type": "string"},
        "DocId": {"type": "string"},
        "data": {"type": ["string", "array"]},
        "count": {"type": "integer"},
    },
}
_LGSP_ENVELOPE = {
    "type": "object",
    "required": ["status", "errorCode", "errorDesc", "data"],
    "properties": {
        "status": {"enum": ["OK", "FAIL"]},
        "errorCode": {"type": "string", "description": f"0 on success; else {_CODES}"},
        "errorDesc": {"type": "string"},
        "data": {},
    },
}


def _answer(description: str, *, raw: bool = False, schema: dict = _ENVELOPE) -> dict:
    content = {"application/json": {"schema": schema}}
    if raw:
        content["application/xml"] = {"schema": {"type": "string"}}
    return {"200": {"description": description, "content": content}, "405": _405}


def _vdxp_paths() -> dict:
    paths: dict = {}
    for method, name, _, summary in OPERATIONS:
        operation = {
            "summary": f"VDXP {name}: {summary}",
            "security": [],
            "parameters": _VDXP_HEADERS,
            "responses": _answer(
                "The SDK's envelope" + ("; on success the raw package" if method == "GET" else ""),
                raw=method == "GET",
            ),
        }
        if method == "POST":
            operation["requestBody"] = {
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": {}},
                }
            }
        paths[f"/vdxp/{name}"] = {method.lower(): operation}
    return paths


def _lgsp(summary: str, *, body: dict | None = None, doc_id: bool = False, security=None) -> dict:
    operation: dict = {
        "summary": f"LGSP: {summary}",
        "responses": _answer("The LGSP envelope", schema=_LGSP_ENVELOPE),
    }
    if security is not None:
        operation["security"] = security
    if doc_id:
        operation["parameters"] = [
            {"name": "docId", "in": "path", "required": True, "schema": {"type": "string"}}
        ]
    if body is not None:
        operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
    return operation


def _lgsp_paths() -> dict:
    send = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {"type": "string", "description": "base64 of the edXML package"},
            "loaiVanBan": {"enum": ["edoc", "status"]},
        },
    }
    state = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"enum": ["INITIAL", "PROCESSING", "DONE", "FAIL"]}},
    }
    token = {
        "type": "object",
        "properties": {"client_id": {"type": "string"}, "client_secret": {"type": "string"}},
    }
    return {
        "/lgsp/token": {
            "post": _lgsp(
                "client credentials (HTTP Basic, form or JSON) → data.access_token",
                body=token,
                security=[],
            )
        },
        "/lgsp/vanbans": {
            "get": _lgsp(
                "documents and statuses waiting: serviceType, messageType, docId, from, "
                "to, status, statusDesc, createdTime"
            ),
            "post": _lgsp("send a package (base64 in data) → data.docId", body=send),
        },
        "/lgsp/vanbans/{docId}": {
            "get": _lgsp("one package: data is its base64", doc_id=True),
            "put": _lgsp(
                "DONE acknowledges, FAIL records a failed import", body=state, doc_id=True
            ),
        },
        "/lgsp/donvilienthongs": {"get": _lgsp("the registry: id, code, name, pid")},
    }


def add_facades(document: dict) -> dict:
    """``document`` with the facades' paths added."""
    document["paths"].update(_vdxp_paths())
    document["paths"].update(_lgsp_paths())
    return document
